//! Patch extraction and pooling: the operations a convolutional network is built from.
//!
//! Feature maps are stored channel-last (NHWC) and row-major: a batch of `n` maps of `H×W` pixels
//! and `C` channels is any 2-D tensor with `n·H·W·C` entries, read in row-major order, so a
//! `n×(H·W·C)` image batch and a `(n·H·W)×C` tensor of per-position activities (the output of a
//! convolution as one matrix product) hold the same data. A convolution with weights `W`
//! (`C_out×k·k·C`) is then `unfold(x)·Wᵀ`, its input gradient `fold(g·W)`.
//!
//! Each method's default is the definition: it runs the per-image functions below on the host
//! (`download`, compute, `upload`). A backend may override any of them and is checked against the
//! defaults by [`crate::conformance::check_unfold`] and the checks next to it. The per-image
//! functions are public so that a host-memory backend can run them in parallel over images.

use serde::{Deserialize, Serialize};

use super::{Binary, Dim, ElementwiseOps, LinalgOps, Reduce, ReduceOps, SelectOps, TensorStore, Unary, guard};
use crate::error::CoreError;
use crate::tensor::Matrix;

/// The geometry of a sliding window over a channel-last map: input size, window size, stride and
/// zero padding. Used for both convolutions (patch extraction) and pooling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Input height `H`.
    pub height: usize,
    /// Input width `W`.
    pub width: usize,
    /// Input channels `C`.
    pub channels: usize,
    /// Window side `k` (square windows).
    pub kernel: usize,
    /// Step between windows.
    pub stride: usize,
    /// Zero padding added on every side (for pooling: positions outside the map are ignored).
    pub padding: usize,
}

impl Window {
    /// Checks that the window fits: every size ≥ 1, `padding < kernel ≤ H + 2·padding` (and the
    /// same for `W`), so that every window holds at least one input position.
    pub fn check(&self) -> Result<(), CoreError> {
        let Window { height, width, channels, kernel, stride, padding } = *self;
        if height == 0 || width == 0 || channels == 0 || kernel == 0 || stride == 0 {
            return Err(CoreError::Shape(format!("window {self:?}: every size must be at least 1")));
        }
        if padding >= kernel || kernel > height + 2 * padding || kernel > width + 2 * padding {
            return Err(CoreError::Shape(format!(
                "a {kernel}×{kernel} window with padding {padding} does not fit a {height}×{width} map"
            )));
        }
        Ok(())
    }

    /// [`Window::check`] at the start of a window operation: panics with one line, `{op}: {the
    /// check's message}`, unless the window fits. Every backend's [`ConvOps`] window operations
    /// call it before touching any data, so a window that does not fit is refused with the same
    /// message everywhere (held by [`crate::conformance::check_window_refusal`]) instead of
    /// producing garbage or an index panic deep inside.
    #[track_caller]
    pub fn assert_fits(&self, op: &str) {
        if let Err(e) = self.check() {
            panic!("{op}: {e}");
        }
    }

    /// Output height `⌊(H + 2p − k)/s⌋ + 1`.
    pub fn out_height(&self) -> usize {
        (self.height + 2 * self.padding - self.kernel) / self.stride + 1
    }

    /// Output width `⌊(W + 2p − k)/s⌋ + 1`.
    pub fn out_width(&self) -> usize {
        (self.width + 2 * self.padding - self.kernel) / self.stride + 1
    }

    /// Output positions per image, `out_height·out_width`.
    pub fn positions(&self) -> usize {
        self.out_height() * self.out_width()
    }

    /// Entries of one patch, `k·k·C`, ordered `(row in window, column in window, channel)`.
    pub fn patch_len(&self) -> usize {
        self.kernel * self.kernel * self.channels
    }

    /// Entries of one input map, `H·W·C`.
    pub fn image_len(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// How many maps a tensor of `entries` values holds; panics unless it is a whole number.
    pub fn batch_of(&self, entries: usize) -> usize {
        assert!(
            entries.is_multiple_of(self.image_len()),
            "a tensor of {entries} entries is not a batch of {}×{}×{} maps",
            self.height,
            self.width,
            self.channels
        );
        entries / self.image_len()
    }

    /// The input position `(y, x)` of window row `i`, column `j` at output position `(oy, ox)`, or
    /// `None` in the padding.
    fn source(&self, oy: usize, ox: usize, i: usize, j: usize) -> Option<(usize, usize)> {
        let y = (oy * self.stride + i).checked_sub(self.padding)?;
        let x = (ox * self.stride + j).checked_sub(self.padding)?;
        (y < self.height && x < self.width).then_some((y, x))
    }
}

/// Patch extraction of one image: `out[(oy·OW + ox), (i·k + j)·C + c] = x[(y·W + x')·C + c]` with
/// `y = oy·s + i − p`, `x' = ox·s + j − p`, and `0` in the padding. `image` holds `H·W·C` entries,
/// `out` `positions·k·k·C` (overwritten). The window columns of one window row that fall inside
/// the image are one contiguous run of the input, copied at once.
///
/// Inlined into its callers so that a backend's per-image loop compiles it for its own
/// instruction set (the CPU backend's AVX2 context); the same operations, the same values.
#[inline(always)]
pub fn unfold_image(g: &Window, image: &[f32], out: &mut [f32]) {
    let (c, k, ow, s, p) = (g.channels, g.kernel, g.out_width(), g.stride, g.padding);
    let len = g.patch_len();
    for oy in 0..g.out_height() {
        for ox in 0..ow {
            let patch = &mut out[(oy * ow + ox) * len..(oy * ow + ox + 1) * len];
            // Window columns j with 0 ≤ ox·s + j − p < W: j_lo ≤ j < j_hi.
            let left = ox * s;
            let j_lo = p.saturating_sub(left).min(k);
            let j_hi = (g.width + p).saturating_sub(left).min(k).max(j_lo);
            for (i, row) in patch.chunks_exact_mut(k * c).enumerate() {
                match (oy * s + i).checked_sub(p).filter(|&y| y < g.height) {
                    Some(y) => {
                        let start = (y * g.width + left + j_lo - p) * c;
                        row[..j_lo * c].fill(0.0);
                        row[j_lo * c..j_hi * c].copy_from_slice(&image[start..start + (j_hi - j_lo) * c]);
                        row[j_hi * c..].fill(0.0);
                    }
                    None => row.fill(0.0),
                }
            }
        }
    }
}

/// The adjoint of [`unfold_image`] (col2im): every patch entry is added back to the input
/// position it was copied from, in the order of output positions then window entries (entries in
/// the padding are dropped). `out` holds `H·W·C` entries (overwritten).
pub fn fold_image(g: &Window, cols: &[f32], out: &mut [f32]) {
    let (c, k, ow) = (g.channels, g.kernel, g.out_width());
    let len = g.patch_len();
    out.fill(0.0);
    for oy in 0..g.out_height() {
        for ox in 0..ow {
            let patch = &cols[(oy * ow + ox) * len..(oy * ow + ox + 1) * len];
            for i in 0..k {
                for j in 0..k {
                    if let Some((y, x)) = g.source(oy, ox, i, j) {
                        let src = &patch[(i * k + j) * c..(i * k + j + 1) * c];
                        let dst = &mut out[(y * g.width + x) * c..(y * g.width + x + 1) * c];
                        dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                    }
                }
            }
        }
    }
}

/// For output position `(oy, ox)`: the input index of each channel's window maximum, written to
/// `best` (`C` entries), the first in window order on ties (NaN never wins). Window positions
/// outer, channels inner, so the inner loop runs over contiguous memory.
fn pool_argmax(g: &Window, image: &[f32], oy: usize, ox: usize, best: &mut [usize]) {
    let c = g.channels;
    best.fill(usize::MAX);
    for i in 0..g.kernel {
        for j in 0..g.kernel {
            if let Some((y, x)) = g.source(oy, ox, i, j) {
                let base = (y * g.width + x) * c;
                for (ch, b) in best.iter_mut().enumerate() {
                    if *b == usize::MAX || image[base + ch] > image[*b] {
                        *b = base + ch;
                    }
                }
            }
        }
    }
}

/// Max pooling of one image per channel: `out[(oy·OW + ox)·C + c] = max over the window of x`,
/// positions in the padding ignored. `out` holds `positions·C` entries.
///
/// The window's first position (in window order) starts each channel's maximum and a later one
/// replaces it only when strictly greater, so the result is the value `pool_argmax` picks (the
/// first maximum; NaN never wins), computed on values over contiguous channels instead of indices.
///
/// Inlined into its callers like [`unfold_image`].
#[inline(always)]
pub fn max_pool_image(g: &Window, image: &[f32], out: &mut [f32]) {
    let (c, k, ow) = (g.channels, g.kernel, g.out_width());
    // The window's rows (columns) inside the map: `start..end` of `o·s − p .. o·s − p + k`.
    let span = |o: usize, size: usize| {
        let first = o * g.stride;
        (first.saturating_sub(g.padding), (first + k).saturating_sub(g.padding).min(size))
    };
    // Each channel's maximum over the window for a run of `L` channels (`L = 8`: one AVX
    // register), kept in registers across the window instead of in `out`: the same comparisons
    // in the same order for each channel.
    #[inline(always)]
    fn window<const L: usize>(
        image: &[f32],
        dst: &mut [f32],
        at: impl Fn(usize, usize) -> usize,
        (y0, y1): (usize, usize),
        (x0, x1): (usize, usize),
    ) {
        let mut m = [0f32; L];
        m.copy_from_slice(&image[at(y0, x0)..][..L]);
        for y in y0..y1 {
            for x in x0..x1 {
                if (y, x) != (y0, x0) {
                    let v = &image[at(y, x)..][..L];
                    m.iter_mut().zip(v).for_each(|(d, &v)| *d = if v > *d { v } else { *d });
                }
            }
        }
        dst[..L].copy_from_slice(&m);
    }
    for oy in 0..g.out_height() {
        let (y0, y1) = span(oy, g.height);
        for ox in 0..ow {
            let (x0, x1) = span(ox, g.width);
            let dst = &mut out[(oy * ow + ox) * c..(oy * ow + ox + 1) * c];
            let mut c0 = 0;
            while c0 + 8 <= c {
                window::<8>(image, &mut dst[c0..], |y, x| (y * g.width + x) * c + c0, (y0, y1), (x0, x1));
                c0 += 8;
            }
            for c0 in c0..c {
                window::<1>(image, &mut dst[c0..], |y, x| (y * g.width + x) * c + c0, (y0, y1), (x0, x1));
            }
        }
    }
}

/// The vector–Jacobian product of [`max_pool_image`]: each output gradient goes to the input
/// position that won its window (the first on ties), summed where windows overlap. `out` holds
/// `H·W·C` entries (overwritten).
pub fn max_pool_backward_image(g: &Window, image: &[f32], grad: &[f32], out: &mut [f32]) {
    let (c, ow) = (g.channels, g.out_width());
    let mut best = vec![0usize; c];
    out.fill(0.0);
    for oy in 0..g.out_height() {
        for ox in 0..ow {
            pool_argmax(g, image, oy, ox, &mut best);
            let src = &grad[(oy * ow + ox) * c..(oy * ow + ox + 1) * c];
            best.iter().zip(src).for_each(|(&b, &v)| out[b] += v);
        }
    }
}

/// Runs a per-image function over a host batch: `f(image, out_image)` for each of `batch` images.
fn per_image(
    input: &[f32],
    in_len: usize,
    out_rows: usize,
    out_cols: usize,
    batch: usize,
    f: impl Fn(&[f32], &mut [f32]),
) -> Matrix {
    let mut out = Matrix::zeros(out_rows, out_cols);
    let out_len = out.len() / batch.max(1);
    for (n, dst) in out.as_mut_slice().chunks_mut(out_len.max(1)).enumerate().take(batch) {
        f(&input[n * in_len..(n + 1) * in_len], dst);
    }
    out
}

/// [`ConvOps::kwta_rows`] as a chain of the other families' operations: `row_kth_largest`, then
/// `zip(Sub)` and `map(Relu)`.
pub fn composed_kwta_rows<B: ElementwiseOps + SelectOps>(b: &B, u: &B::Tensor, k: usize) -> (B::Tensor, B::Tensor) {
    let threshold = b.row_kth_largest(u, k);
    let activity = b.map(&b.zip(u, &threshold, Binary::Sub), Unary::Relu);
    (threshold, activity)
}

/// One convolutional layer's forward pass with k-WTA across channels, as
/// [`ConvOps::kwta_layer`] returns it.
#[derive(Clone, Debug)]
pub struct KwtaLayer<T> {
    /// `P = unfold(x)`, `(n·positions)×(k·k·C)`.
    pub patches: T,
    /// `u = P Wᵀ + c`, `(n·positions)×C'`; may be left out (`None`) when the relative activity
    /// was asked for (a Hebbian step needs neither the drive nor the activity).
    pub drive: Option<T>,
    /// `θ`, each position's `k`-th largest drive (`(n·positions)×1`).
    pub threshold: T,
    /// `y = relu(u − θ)`; may be left out (`None`) when the relative activity was asked for.
    pub activity: Option<T>,
    /// `y` max-pooled (or `y` itself without pooling).
    pub output: T,
    /// `r = y / max_c y` per position ([`ConvOps::relative_to_row_max`] of `y`), when it was asked
    /// for: the relative activity of the layer's Hebbian step.
    pub relative: Option<T>,
    /// [`ConvOps::fraction_positive`] of `y`, where the operation counted it on the way (the CPU
    /// does, while each image's activity is in cache); `None` leaves it to the caller.
    pub fraction_positive: Option<f32>,
}

/// The geometry and competition of one k-WTA conv layer, as [`ConvOps::kwta_layer`] takes them.
#[derive(Clone, Copy, Debug)]
pub struct KwtaSpec<'a> {
    /// The convolution's window over the input maps.
    pub conv: &'a Window,
    /// Winners per position (`1 ≤ k ≤` the filters).
    pub k: usize,
    /// Max pooling of the activity, if any.
    pub pool: Option<&'a Window>,
    /// Whether to return the relative activity ([`KwtaLayer::relative`]): the pass of a Hebbian
    /// step, which may then leave out the drive and the activity.
    pub relative: bool,
}

/// [`ConvOps::kwta_layer`] as a chain of the other operations: [`ConvOps::unfold`], `matmul`, the
/// bias by `zip_assign(Add)`, [`ConvOps::kwta_rows`], [`ConvOps::max_pool`], and
/// [`ConvOps::relative_to_row_max`] when the spec asks for it (no fraction counted).
pub fn composed_kwta_layer<B: ConvOps>(
    b: &B,
    x: &B::Tensor,
    weights: &B::Tensor,
    bias: &B::Tensor,
    spec: &KwtaSpec<'_>,
) -> KwtaLayer<B::Tensor> {
    let KwtaSpec { conv, k, pool, relative } = *spec;
    let patches = b.unfold(x, conv);
    let mut drive = b.matmul(&patches, false, weights, true);
    b.zip_assign(&mut drive, bias, Binary::Add);
    let (threshold, activity) = b.kwta_rows(&drive, k);
    let output = match pool {
        Some(p) => b.max_pool(&activity, p),
        None => activity.clone(),
    };
    let relative = relative.then(|| b.relative_to_row_max(&activity));
    KwtaLayer {
        patches,
        drive: Some(drive),
        threshold,
        activity: Some(activity),
        output,
        relative,
        fraction_positive: None,
    }
}

/// [`ConvOps::relative_to_row_max`] as a chain: `reduce(PerRow, Max)`, [`guard`], `zip(Div)`.
pub fn composed_relative_to_row_max<B: ElementwiseOps + ReduceOps>(b: &B, y: &B::Tensor) -> B::Tensor {
    let peak = guard(b, &b.reduce(y, Dim::PerRow, Reduce::Max));
    b.zip(y, &peak, Binary::Div)
}

/// [`ConvOps::unit_l2_rows`] as a chain: `map(Square)`, `reduce(PerRow, Sum)`, `map(Sqrt)`,
/// [`guard`], `zip(Div)`.
pub fn composed_unit_l2_rows<B: ElementwiseOps + ReduceOps>(b: &B, p: &B::Tensor) -> B::Tensor {
    let norms = b.map(&b.reduce(&b.map(p, Unary::Square), Dim::PerRow, Reduce::Sum), Unary::Sqrt);
    b.zip(p, &guard(b, &norms), Binary::Div)
}

/// [`ConvOps::fraction_positive`] as a chain: `map(Step)`, `reduce(All, Mean)`, then the host. The
/// sum of zeros and ones is exact in `f64` in any order, so every backend's mean is `count/n`
/// rounded once.
pub fn composed_fraction_positive<B: ElementwiseOps + ReduceOps>(b: &B, y: &B::Tensor) -> f32 {
    b.download(&b.reduce(&b.map(y, Unary::Step), Dim::All, Reduce::Mean)).get(0, 0)
}

/// Patch extraction, its adjoint, max pooling and its adjoint, a free reshape (see the module docs
/// for the layout), and the per-position steps of a convolutional layer's competition and
/// plasticity as single passes over its `(n·positions)×C` tensors. Every method has a default,
/// which is the definition: host functions for the first five, a chain of the other families'
/// operations for the per-position ones (a fused override must compute every entry with the same
/// operations in the same order, so that it changes no bit: [`crate::conformance::check_kwta_rows`]
/// and the checks next to it hold it to exact equality).
pub trait ConvOps: TensorStore + ElementwiseOps + ReduceOps + SelectOps + LinalgOps {
    /// im2col: `x` (`n·H·W·C` entries, NHWC) → patches `(n·positions)×(k·k·C)`, one row per output
    /// position ([`unfold_image`]).
    fn unfold(&self, x: &Self::Tensor, g: &Window) -> Self::Tensor {
        g.assert_fits("unfold");
        let host = self.download(x);
        let batch = g.batch_of(host.len());
        let out = per_image(host.as_slice(), g.image_len(), batch * g.positions(), g.patch_len(), batch, |i, o| {
            unfold_image(g, i, o)
        });
        self.upload(&out)
    }

    /// col2im, the adjoint of [`ConvOps::unfold`]: patches `(n·positions)×(k·k·C)` → `n×(H·W·C)`
    /// ([`fold_image`]).
    fn fold(&self, cols: &Self::Tensor, g: &Window) -> Self::Tensor {
        g.assert_fits("fold");
        let host = self.download(cols);
        let per = g.positions() * g.patch_len();
        assert!(host.len().is_multiple_of(per), "fold: {} entries are not whole images of patches", host.len());
        let batch = host.len() / per;
        let out = per_image(host.as_slice(), per, batch, g.image_len(), batch, |i, o| fold_image(g, i, o));
        self.upload(&out)
    }

    /// Max pooling per channel: `x` (`n·H·W·C` entries) → `(n·positions)×C` ([`max_pool_image`]).
    fn max_pool(&self, x: &Self::Tensor, g: &Window) -> Self::Tensor {
        g.assert_fits("max_pool");
        let host = self.download(x);
        let batch = g.batch_of(host.len());
        let out = per_image(host.as_slice(), g.image_len(), batch * g.positions(), g.channels, batch, |i, o| {
            max_pool_image(g, i, o)
        });
        self.upload(&out)
    }

    /// The vector–Jacobian product of [`ConvOps::max_pool`] at `x` for the output gradient `grad`
    /// (`(n·positions)×C`): `(n·H·W)×C` ([`max_pool_backward_image`]).
    fn max_pool_backward(&self, x: &Self::Tensor, g: &Window, grad: &Self::Tensor) -> Self::Tensor {
        g.assert_fits("max_pool_backward");
        let (host, grad) = (self.download(x), self.download(grad));
        let batch = g.batch_of(host.len());
        assert_eq!(grad.len(), batch * g.positions() * g.channels, "max_pool_backward: gradient of the wrong size");
        let (in_len, out_len) = (g.image_len(), g.positions() * g.channels);
        let mut out = Matrix::zeros(batch * g.height * g.width, g.channels);
        for (n, dst) in out.as_mut_slice().chunks_mut(in_len).enumerate() {
            let image = &host.as_slice()[n * in_len..(n + 1) * in_len];
            max_pool_backward_image(g, image, &grad.as_slice()[n * out_len..(n + 1) * out_len], dst);
        }
        self.upload(&out)
    }

    /// k-winners-take-all across each row: the threshold `θ_i`, row `i`'s `k`-th largest entry
    /// ([`SelectOps::row_kth_largest`], `rows×1`), and the activity `y = relu(u − θ)` (`u`'s shape).
    /// Panics unless `1 ≤ k ≤ cols`. Default: [`composed_kwta_rows`].
    fn kwta_rows(&self, u: &Self::Tensor, k: usize) -> (Self::Tensor, Self::Tensor) {
        composed_kwta_rows(self, u, k)
    }

    /// One convolutional layer with k-WTA across channels ([`KwtaSpec`]): `P = unfold(x)` (`conv`),
    /// the drive `u = P Wᵀ + c` (`weights` `C'×(k·k·C)`, `bias` `1×C'`), `(θ, y) = kwta_rows(u, k)`
    /// and `y` max-pooled by `pool` (or `y` itself); with `relative`, also `relative_to_row_max(y)` (the
    /// Hebbian step's relative activity), and then `u` and `y` may be left out. Default:
    /// [`composed_kwta_layer`] (which returns them); an override (the CPU runs it image by image,
    /// each image's tensors in cache, and with `relative` returns neither `u` nor a pooled `y`) must
    /// give the chain's bits for everything it returns, and a fraction of positive activity it
    /// counts must be [`ConvOps::fraction_positive`]'s ([`crate::conformance::check_kwta_layer`]).
    fn kwta_layer(
        &self,
        x: &Self::Tensor,
        weights: &Self::Tensor,
        bias: &Self::Tensor,
        spec: &KwtaSpec<'_>,
    ) -> KwtaLayer<Self::Tensor> {
        composed_kwta_layer(self, x, weights, bias, spec)
    }

    /// Each row relative to its peak: `r = y / max(max_j y_j, NORM_GUARD)` ([`guard`]), the relative
    /// activity of a conv layer's Hebbian step (every position one presynaptic pattern). Default:
    /// [`composed_relative_to_row_max`].
    fn relative_to_row_max(&self, y: &Self::Tensor) -> Self::Tensor {
        composed_relative_to_row_max(self, y)
    }

    /// Each row scaled to unit L2 norm: `p = P / max(√Σ_j P_j², NORM_GUARD)` ([`guard`]), the
    /// normalized patterns of a conv layer's Hebbian step. Default: [`composed_unit_l2_rows`].
    fn unit_l2_rows(&self, p: &Self::Tensor) -> Self::Tensor {
        composed_unit_l2_rows(self, p)
    }

    /// The fraction of entries above zero, `mean(step(y))` over the whole tensor (a layer's active
    /// fraction), on the host. Default: [`composed_fraction_positive`].
    fn fraction_positive(&self, y: &Self::Tensor) -> f32 {
        composed_fraction_positive(self, y)
    }

    /// The same entries, row-major, as a `rows×cols` tensor; panics unless the count matches.
    fn reshape(&self, t: &Self::Tensor, rows: usize, cols: usize) -> Self::Tensor {
        let host = self.download(t);
        self.upload(&Matrix::new(rows, cols, host.into_vec()).expect("reshape keeps the number of entries"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{LinalgOps, ReferenceBackend};

    fn ramp(n: usize) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * 0.37).sin()).collect()
    }

    #[test]
    fn unfold_of_a_one_by_one_kernel_is_the_identity() {
        let g = Window { height: 3, width: 4, channels: 2, kernel: 1, stride: 1, padding: 0 };
        let x = ramp(24);
        let mut out = vec![0.0; 24];
        unfold_image(&g, &x, &mut out);
        assert_eq!(out, x);
    }

    #[test]
    fn unfold_places_each_pixel_and_the_padding() {
        // 2×2 single-channel image, 3×3 kernel, padding 1: the centre patch is the whole image
        // surrounded by zeros.
        let g = Window { height: 2, width: 2, channels: 1, kernel: 3, stride: 1, padding: 1 };
        assert_eq!((g.out_height(), g.out_width()), (2, 2));
        let mut out = vec![9.0; 4 * 9];
        unfold_image(&g, &[1.0, 2.0, 3.0, 4.0], &mut out);
        assert_eq!(&out[..9], &[0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 0.0, 3.0, 4.0]);
        assert_eq!(&out[27..], &[1.0, 2.0, 0.0, 3.0, 4.0, 0.0, 0.0, 0.0, 0.0]);
    }

    /// The run-by-run copy places every entry where the definition, entry by entry, puts it:
    /// strides, paddings, channels and windows that overhang both sides of a narrow image.
    #[test]
    fn unfold_copies_each_entry_by_the_definition() {
        for g in [
            Window { height: 5, width: 4, channels: 3, kernel: 3, stride: 1, padding: 1 },
            Window { height: 6, width: 6, channels: 2, kernel: 2, stride: 2, padding: 0 },
            Window { height: 7, width: 5, channels: 1, kernel: 4, stride: 3, padding: 2 },
            Window { height: 28, width: 28, channels: 1, kernel: 5, stride: 1, padding: 2 },
            Window { height: 3, width: 2, channels: 2, kernel: 5, stride: 1, padding: 4 },
        ] {
            g.check().expect("fits");
            let x = ramp(g.image_len());
            let mut out = vec![f32::NAN; g.positions() * g.patch_len()];
            unfold_image(&g, &x, &mut out);
            for (oy, ox) in (0..g.out_height()).flat_map(|oy| (0..g.out_width()).map(move |ox| (oy, ox))) {
                for (i, j, ch) in (0..g.kernel)
                    .flat_map(|i| (0..g.kernel).flat_map(move |j| (0..g.channels).map(move |ch| (i, j, ch))))
                {
                    let want = g.source(oy, ox, i, j).map_or(0.0, |(y, xx)| x[(y * g.width + xx) * g.channels + ch]);
                    let at = (oy * g.out_width() + ox) * g.patch_len() + (i * g.kernel + j) * g.channels + ch;
                    assert_eq!(out[at].to_bits(), want.to_bits(), "{g:?} at {oy},{ox} window {i},{j} channel {ch}");
                }
            }
        }
    }

    /// ⟨unfold(x), c⟩ = ⟨x, fold(c)⟩ for every geometry: fold is the adjoint.
    #[test]
    fn fold_is_the_adjoint_of_unfold() {
        let b = ReferenceBackend;
        for g in [
            Window { height: 5, width: 4, channels: 3, kernel: 3, stride: 1, padding: 1 },
            Window { height: 6, width: 6, channels: 2, kernel: 2, stride: 2, padding: 0 },
            Window { height: 7, width: 5, channels: 1, kernel: 4, stride: 3, padding: 2 },
        ] {
            g.check().expect("fits");
            let x = Matrix::new(2, g.image_len(), ramp(2 * g.image_len())).unwrap();
            let cols = b.unfold(&x, &g);
            assert_eq!(cols.shape(), (2 * g.positions(), g.patch_len()));
            let c = Matrix::from_fn(cols.rows(), cols.cols(), |i, j| ((i * 7 + j * 3) % 11) as f32 - 5.0);
            let lhs: f64 = cols.as_slice().iter().zip(c.as_slice()).map(|(a, b)| (*a as f64) * (*b as f64)).sum();
            let folded = b.fold(&c, &g);
            assert_eq!(folded.shape(), (2, g.image_len()));
            let rhs: f64 = x.as_slice().iter().zip(folded.as_slice()).map(|(a, b)| (*a as f64) * (*b as f64)).sum();
            assert!((lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0), "{g:?}: {lhs} vs {rhs}");
        }
    }

    /// A convolution as unfold + product equals the direct sum over the window.
    #[test]
    fn unfold_then_product_is_a_convolution() {
        let b = ReferenceBackend;
        let g = Window { height: 4, width: 5, channels: 2, kernel: 3, stride: 1, padding: 1 };
        let x = Matrix::new(1, g.image_len(), ramp(g.image_len())).unwrap();
        let w = Matrix::from_fn(1, g.patch_len(), |_, j| (j as f32 * 0.11).cos());
        let y = b.matmul(&b.unfold(&x, &g), false, &w, true);
        for oy in 0..4 {
            for ox in 0..5 {
                let mut want = 0.0f32;
                for i in 0..3 {
                    for j in 0..3 {
                        let (sy, sx) = (oy as isize + i as isize - 1, ox as isize + j as isize - 1);
                        if (0..4).contains(&sy) && (0..5).contains(&sx) {
                            for c in 0..2 {
                                want += x.get(0, ((sy * 5 + sx) as usize) * 2 + c) * w.get(0, (i * 3 + j) * 2 + c);
                            }
                        }
                    }
                }
                assert!((y.get(oy * 5 + ox, 0) - want).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn max_pool_and_its_gradient() {
        let b = ReferenceBackend;
        // SoftHebb's pooling: kernel 4, stride 2, padding 1 on an 8×8 map → 4×4.
        let g = Window { height: 8, width: 8, channels: 2, kernel: 4, stride: 2, padding: 1 };
        assert_eq!((g.out_height(), g.out_width()), (4, 4));
        let x = Matrix::new(2 * 64, 2, ramp(256)).unwrap();
        let y = b.max_pool(&x, &g);
        assert_eq!(y.shape(), (2 * 16, 2));
        // Finite differences of Σ y⊙c (no ties in the ramp).
        let c = Matrix::from_fn(32, 2, |i, j| (i + 3 * j) as f32 * 0.1 - 1.0);
        let grad = b.max_pool_backward(&x, &g, &c);
        assert_eq!(grad.shape(), x.shape());
        let f = |x: &Matrix| b.max_pool(x, &g).as_slice().iter().zip(c.as_slice()).map(|(a, b)| a * b).sum::<f32>();
        for idx in [0usize, 17, 100, 201, 255] {
            let mut xp = x.clone();
            xp.as_mut_slice()[idx] += 1e-3;
            let fd = (f(&xp) - f(&x)) / 1e-3;
            assert!((fd - grad.as_slice()[idx]).abs() < 1e-2, "entry {idx}: {fd} vs {}", grad.as_slice()[idx]);
        }
    }

    /// Pooling on values picks the entry the index search of the backward pass picks (its first
    /// maximum in window order; NaN never wins unless it starts the window), bit for bit, with
    /// ties, signed zeros and NaNs.
    #[test]
    fn max_pool_takes_the_value_at_the_backward_pass_argmax() {
        let values = [0.0f32, -0.0, 0.5, 0.5, -1.0, f32::NAN, 2.0];
        for g in [
            Window { height: 8, width: 8, channels: 3, kernel: 4, stride: 2, padding: 1 },
            Window { height: 7, width: 5, channels: 2, kernel: 3, stride: 3, padding: 2 },
            Window { height: 5, width: 6, channels: 4, kernel: 2, stride: 1, padding: 0 },
        ] {
            let image: Vec<f32> = (0..g.image_len()).map(|i| values[(i * 7 + i / 3) % values.len()]).collect();
            let mut out = vec![9.0; g.positions() * g.channels];
            max_pool_image(&g, &image, &mut out);
            let mut best = vec![0usize; g.channels];
            for oy in 0..g.out_height() {
                for ox in 0..g.out_width() {
                    pool_argmax(&g, &image, oy, ox, &mut best);
                    for (ch, &b) in best.iter().enumerate() {
                        let got = out[(oy * g.out_width() + ox) * g.channels + ch];
                        assert_eq!(got.to_bits(), image[b].to_bits(), "{g:?} at ({oy}, {ox}), channel {ch}");
                    }
                }
            }
        }
    }

    /// Ties go to the window's first map position, by hand: `+0.0` and `-0.0` compare equal, so
    /// the maximum of a window of zeros is the zero it starts with, and a window of equal values
    /// routes its gradient to its first position (a `>=` in either function fails this).
    #[test]
    fn ties_go_to_the_first_position_of_the_window() {
        let b = ReferenceBackend;
        let bits = |m: &Matrix| m.as_slice().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        // One 2×2 window over a 2×2 map.
        let g = Window { height: 2, width: 2, channels: 1, kernel: 2, stride: 1, padding: 0 };
        for (x, want) in [([0.0f32, -0.0, -0.0, -0.0], 0.0f32), ([-0.0, 0.0, 0.0, 0.0], -0.0)] {
            let pooled = b.max_pool(&Matrix::new(4, 1, x.to_vec()).unwrap(), &g);
            assert_eq!(bits(&pooled), vec![want.to_bits()], "{x:?}");
        }
        let grad = b.max_pool_backward(&Matrix::full(4, 1, 0.5), &g, &Matrix::full(1, 1, 1.0));
        assert_eq!(grad.as_slice(), &[1.0, 0.0, 0.0, 0.0]);
        // Padding 1 on a 2×1 map (1 channel): windows (2×2) start outside the map; the first map
        // position inside each one wins.
        let g = Window { height: 2, width: 1, channels: 1, kernel: 2, stride: 1, padding: 1 };
        assert_eq!((g.out_height(), g.out_width()), (3, 2));
        let x = Matrix::new(2, 1, vec![-0.0, 0.0]).unwrap();
        let pooled = b.max_pool(&x, &g);
        let (n, p) = ((-0.0f32).to_bits(), 0.0f32.to_bits());
        assert_eq!(bits(&pooled), vec![n, n, n, n, p, p]);
        let upstream = Matrix::new(6, 1, vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0]).unwrap();
        let grad = b.max_pool_backward(&Matrix::full(2, 1, 0.5), &g, &upstream);
        assert_eq!(grad.as_slice(), &[1.0 + 2.0 + 4.0 + 8.0, 16.0 + 32.0]);
    }

    #[test]
    fn windows_that_do_not_fit_are_refused() {
        let ok = Window { height: 28, width: 28, channels: 1, kernel: 5, stride: 1, padding: 2 };
        assert!(ok.check().is_ok());
        assert!(Window { padding: 5, ..ok }.check().is_err());
        assert!(Window { kernel: 40, ..ok }.check().is_err());
        assert!(Window { stride: 0, ..ok }.check().is_err());
    }
}
