//! Patch extraction and pooling on the CPU: the per-image definitions of `bio_core::backend`,
//! run in parallel over the images of a batch on rayon, without host round trips; and the
//! per-position competition and plasticity steps fused into one pass per row (each entry computed
//! with the same operations in the same order as the composed definition: the same bits).

use bio_core::backend::{
    ConvOps, KwtaLayer, KwtaSpec, NORM_GUARD, Window, composed_kwta_layer, fold_image, max_pool_backward_image,
    max_pool_image, unfold_image,
};
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;
use std::mem::MaybeUninit;

use crate::CpuBackend;
use crate::linalg::{GemmKernel, gemm_block_into};
use crate::reduce::sum_f64_of;
use crate::select::kth_of_rows;
use crate::uninit::{written, zeroed};

/// Rows handed to one rayon task at least, so that short rows (a conv layer's channels) do not
/// cost one task each.
const ROWS_PER_TASK: usize = 64;

/// [`bio_core::backend::guard`] of one value: `max(x, NORM_GUARD)`, as `Unary::Clamp` computes it.
/// Not `clamp`: that keeps a NaN, `max` turns it into the guard, as the composed chain does.
#[inline(always)]
#[allow(clippy::manual_clamp)]
fn guarded(x: f32) -> f32 {
    x.max(NORM_GUARD).min(f32::MAX)
}

/// One block of [`CpuBackend::row_value_then_entries`]: its rows of the input, of the output (to be
/// written) and of the row values.
type RowBlock<'a> = ((&'a [f32], &'a mut [MaybeUninit<f32>]), &'a mut [f32]);

/// One image of [`ConvOps::kwta_layer`]: its index, its blocks of the patches, drive, activity
/// and pooled map (to be written), of the thresholds and of the relative activity (empty when not
/// asked for), and its count of positive activity.
type ImageBlock<'a> =
    (usize, ((((((Uninit<'a>, Uninit<'a>), Uninit<'a>), Uninit<'a>), &'a mut [f32]), Uninit<'a>), &'a mut usize));

/// A block of an output not written yet.
type Uninit<'a> = &'a mut [MaybeUninit<f32>];

/// `dst[i] = f(src[i])` for every entry of `dst` (as long as `src`), returned initialized.
#[inline(always)]
fn map_into<'a>(dst: &'a mut [MaybeUninit<f32>], src: &[f32], f: impl Fn(f32) -> f32) -> &'a mut [f32] {
    assert_eq!(dst.len(), src.len(), "map_into: one source entry per output entry");
    dst.iter_mut().zip(src).for_each(|(d, &x)| {
        d.write(f(x));
    });
    // SAFETY: every entry was written just above.
    #[allow(unsafe_code)]
    unsafe {
        written(dst)
    }
}

/// The largest entry of a row without NaN (`−∞` for an empty row), eight running maxima side by
/// side (one vector register) and then their largest: without NaN the maximum does not depend
/// on the order, so this is the left fold's value, up to the sign of a zero maximum.
#[inline(always)]
fn peak_of(row: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let mut chunks = row.chunks_exact(8);
    for chunk in &mut chunks {
        lanes.iter_mut().zip(chunk).for_each(|(m, &v)| *m = if v > *m { v } else { *m });
    }
    let tail = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    lanes.iter().fold(tail, |m, &v| if v > m { v } else { m })
}

/// A value per row for [`CpuBackend::row_value_then_entries`] from a function of one row
/// (`cols` entries; with none, one value of the empty row per value asked for).
fn per_row(cols: usize, f: impl Fn(&[f32]) -> f32 + Sync) -> impl Fn(&[f32], &mut [f32], &mut Vec<i32>) + Sync {
    move |rows, values, _| {
        if cols == 0 {
            values.iter_mut().for_each(|v| *v = f(&[]));
        } else {
            rows.chunks_exact(cols).zip(values).for_each(|(row, v)| *v = f(row));
        }
    }
}

/// A tensor's entries as one row-major slice (a copy only for non-standard layouts).
fn entries(t: &Array2<f32>) -> std::borrow::Cow<'_, [f32]> {
    match t.as_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(t.iter().copied().collect()),
    }
}

impl CpuBackend {
    /// `out` (`rows×cols`) filled image by image: `f(n, out_image)` for each of `batch` images,
    /// in parallel when the output is large.
    fn per_image(&self, rows: usize, cols: usize, batch: usize, f: impl Fn(usize, &mut [f32]) + Sync) -> Array2<f32> {
        let mut out = vec![0.0f32; rows * cols];
        let len = (rows * cols) / batch.max(1);
        if batch > 0 && len > 0 {
            if self.parallel(rows * cols) {
                self.install(|| out.par_chunks_mut(len).enumerate().for_each(|(n, dst)| f(n, dst)));
            } else {
                out.chunks_mut(len).enumerate().for_each(|(n, dst)| f(n, dst));
            }
        }
        Array2::from_shape_vec((rows, cols), out).expect("rows·cols entries")
    }

    /// Per block of rows of `a`: each row's value `t` (`values(rows, t, scratch)` fills one per row
    /// of the block), then every entry `entry(a_ij, t_i)` written while the block is still in
    /// cache: one read of `a` instead of a reduction pass and a second elementwise pass (each value
    /// and entry computed as the two passes computed them). Blocks of [`ROWS_PER_TASK`] rows, in
    /// parallel when `a` is large. Returns `(t, out)`.
    fn row_value_then_entries(
        &self,
        a: &Array2<f32>,
        values: impl Fn(&[f32], &mut [f32], &mut Vec<i32>) + Sync,
        entry: impl Fn(f32, f32) -> f32 + Sync,
    ) -> (Array2<f32>, Array2<f32>) {
        let (rows, cols) = a.dim();
        let a = a.as_standard_layout();
        let src = a.as_slice().expect("standard layout");
        let mut theta = vec![0f32; rows];
        let mut out: Vec<f32> = Vec::with_capacity(rows * cols);
        if cols == 0 {
            values(&[], &mut theta, &mut Vec::new());
        } else {
            let dst = &mut out.spare_capacity_mut()[..rows * cols];
            let block = |buf: &mut Vec<i32>, ((src, dst), theta): RowBlock<'_>| {
                values(src, theta, buf);
                for ((row, dst), t) in src.chunks(cols).zip(dst.chunks_mut(cols)).zip(theta) {
                    for (d, &x) in dst.iter_mut().zip(row) {
                        d.write(entry(x, *t));
                    }
                }
            };
            let scratch = || Vec::with_capacity(cols);
            let len = ROWS_PER_TASK * cols;
            if self.parallel(rows * cols) {
                self.install(|| {
                    src.par_chunks(len)
                        .zip(dst.par_chunks_mut(len))
                        .zip(theta.par_chunks_mut(ROWS_PER_TASK))
                        .for_each_init(scratch, block)
                });
            } else {
                let mut buf = scratch();
                src.chunks(len)
                    .zip(dst.chunks_mut(len))
                    .zip(theta.chunks_mut(ROWS_PER_TASK))
                    .for_each(|job| block(&mut buf, job));
            }
            // SAFETY: the blocks above cover the `rows·cols` spare entries exactly (the same `len`
            // cuts `src`, of that length, and `dst`), and each block writes every entry of its rows.
            #[allow(unsafe_code)]
            unsafe {
                out.set_len(rows * cols);
            }
        }
        let theta = Array2::from_shape_vec((rows, 1), theta).expect("one value per row");
        (theta, Array2::from_shape_vec((rows, cols), out).expect("rows·cols entries"))
    }
}

/// One thread's scratch for [`LayerJob::image`]: the selection's keys, and the image's drive and
/// activity where the call does not return them (empty otherwise).
struct ImageScratch {
    keys: Vec<i32>,
    drive: Vec<MaybeUninit<f32>>,
    activity: Vec<MaybeUninit<f32>>,
}

impl ImageScratch {
    fn new(channels: usize, image_len: usize, drive: bool, activity: bool) -> Self {
        let block = |wanted: bool| {
            std::iter::repeat_with(MaybeUninit::uninit).take(if wanted { image_len } else { 0 }).collect()
        };
        Self { keys: Vec::with_capacity(channels), drive: block(drive), activity: block(activity) }
    }
}

/// What every image of one fused [`ConvOps::kwta_layer`] call shares.
struct LayerJob<'a> {
    conv: &'a Window,
    pool: Option<&'a Window>,
    x: &'a [f32],
    kernel: GemmKernel,
    weights_t: ArrayView2<'a, f32>,
    bias: &'a [f32],
    k: usize,
}

impl LayerJob<'_> {
    /// One image's forward pass, compiled for AVX2 where the CPU has it: what [`LayerJob::body`]
    /// inlines (the per-position loops, the per-image functions of `bio_core::backend`) then runs
    /// on 256-bit registers; the same operations without FMA contraction, so the same bits.
    fn image(&self, scratch: &mut ImageScratch, block: ImageBlock<'_>) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above), the only requirement of `body_avx2`.
            #[allow(unsafe_code)]
            unsafe {
                return self.body_avx2(scratch, block);
            }
        }
        self.body(scratch, block)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn body_avx2(&self, scratch: &mut ImageScratch, block: ImageBlock<'_>) {
        self.body(scratch, block)
    }

    /// Unfold, drive (bias included), the `k`-th largest per position, the activity, its count,
    /// the relative activity (when its block is not empty) and the pooled map of image `n`.
    #[inline(always)]
    fn body(&self, scratch: &mut ImageScratch, (n, ((((((p, d), a), o), t), r), count)): ImageBlock<'_>) {
        let ImageScratch { keys: buf, drive, activity } = scratch;
        // The drive and the activity not returned go to the scratch (an empty block: not kept).
        let d = if d.is_empty() { &mut drive[..] } else { d };
        let a = if a.is_empty() { &mut activity[..] } else { a };
        let &LayerJob { conv, pool, x, kernel, weights_t, bias: bias_row, k } = self;
        let (image, positions, patch_len, channels) =
            (conv.image_len(), conv.positions(), conv.patch_len(), bias_row.len());
        // Every row of the activity (and of the relative activity, when asked for) is written
        // below, one per row of the drive.
        assert!(a.len() == d.len() && (r.is_empty() || r.len() == d.len()), "one block per image");
        let p = zeroed(p);
        unfold_image(conv, &x[n * image..(n + 1) * image], p);
        let pv = ArrayView2::from_shape((positions, patch_len), &*p).expect("the image's patches");
        // The drive is written by the product without a zero fill first (the kernel's
        // `gemm_in_parts` block for this image, the same call).
        let d = gemm_block_into(kernel, pv, weights_t, d);
        for row in d.chunks_exact_mut(channels) {
            row.iter_mut().zip(bias_row).for_each(|(u, &c)| *u += c);
        }
        kth_of_rows(buf, d, channels, k, t);
        let mut positive = 0;
        let mut r_rows = r.chunks_exact_mut(channels);
        let mut a_rows = a.chunks_exact_mut(channels);
        for (u, &t) in d.chunks_exact(channels).zip(t.iter()) {
            let a = map_into(a_rows.next().expect("a row per position"), u, |u| (u - t).max(0.0));
            // Counted per row in 32 bits (a row has far fewer than 2³² entries), which vectorizes.
            positive += a.iter().map(|&v| u32::from(v > 0.0)).sum::<u32>() as usize;
            // The row's relative activity while it is in L1. `relu` leaves no NaN, so the
            // `f32` maximum is the `f64` fold's of `relative_to_row_max` (zeros of either
            // sign end at the guard alike).
            if let Some(r) = r_rows.next() {
                let peak = guarded(peak_of(a));
                map_into(r, a, |y| y / peak);
            }
        }
        *count = positive;
        // SAFETY: the loop above wrote every row of `a` (one per row of the drive, as many).
        #[allow(unsafe_code)]
        let a = unsafe { written(a) };
        if let Some(pool) = pool {
            max_pool_image(pool, a, zeroed(o));
        }
    }
}

impl ConvOps for CpuBackend {
    fn unfold(&self, x: &Array2<f32>, g: &Window) -> Array2<f32> {
        g.assert_fits("unfold");
        let x = entries(x);
        let batch = g.batch_of(x.len());
        let len = g.image_len();
        self.per_image(batch * g.positions(), g.patch_len(), batch, |n, dst| {
            unfold_image(g, &x[n * len..(n + 1) * len], dst)
        })
    }

    fn fold(&self, cols: &Array2<f32>, g: &Window) -> Array2<f32> {
        g.assert_fits("fold");
        let c = entries(cols);
        let per = g.positions() * g.patch_len();
        assert!(c.len().is_multiple_of(per), "fold: {} entries are not whole images of patches", c.len());
        let batch = c.len() / per;
        self.per_image(batch, g.image_len(), batch, |n, dst| fold_image(g, &c[n * per..(n + 1) * per], dst))
    }

    fn max_pool(&self, x: &Array2<f32>, g: &Window) -> Array2<f32> {
        g.assert_fits("max_pool");
        let x = entries(x);
        let batch = g.batch_of(x.len());
        let len = g.image_len();
        self.per_image(batch * g.positions(), g.channels, batch, |n, dst| {
            max_pool_image(g, &x[n * len..(n + 1) * len], dst)
        })
    }

    fn max_pool_backward(&self, x: &Array2<f32>, g: &Window, grad: &Array2<f32>) -> Array2<f32> {
        g.assert_fits("max_pool_backward");
        let (x, grad) = (entries(x), entries(grad));
        let batch = g.batch_of(x.len());
        let (len, out_len) = (g.image_len(), g.positions() * g.channels);
        assert_eq!(grad.len(), batch * out_len, "max_pool_backward: gradient of the wrong size");
        self.per_image(batch * g.height * g.width, g.channels, batch, |n, dst| {
            max_pool_backward_image(g, &x[n * len..(n + 1) * len], &grad[n * out_len..(n + 1) * out_len], dst)
        })
    }

    /// Image by image, each image's patches, drive, activity and pooled map written while they
    /// are in cache instead of one pass of each operation over the whole batch: the same
    /// per-image functions ([`unfold_image`], [`max_pool_image`]), the product of the image's
    /// block of rows by the batch product's own kernel (each entry summed over the same `k`
    /// chunks in the same order whatever the block: `gemm_result_does_not_depend_on_the_cut`), the
    /// bias as `zip_assign(Add)` adds it, and `kwta_rows`'s selection and `relu(u − θ)`; each
    /// image's positive activity counted (the fraction is `fraction_positive`'s `count/n`) and,
    /// when asked, its relative activity written as `relative_to_row_max` computes it. Shapes
    /// whose per-image block the kernel would compute by another algorithm (tiny maps), and
    /// geometries that do not chain, take the composed chain.
    fn kwta_layer(
        &self,
        x: &Array2<f32>,
        weights: &Array2<f32>,
        bias: &Array2<f32>,
        spec: &KwtaSpec<'_>,
    ) -> KwtaLayer<Array2<f32>> {
        let KwtaSpec { conv, k, pool, relative: want_relative } = *spec;
        conv.assert_fits("kwta_layer");
        let (positions, patch_len, channels) = (conv.positions(), conv.patch_len(), weights.nrows());
        let batch = conv.batch_of(x.len());
        let rows = batch * positions;
        let kernel = self.gemm_kernel();
        let chains = pool.is_none_or(|p| p.image_len() == positions * channels && p.channels == channels);
        let bias_row = bias.as_slice().filter(|b| bias.nrows() == 1 && b.len() == channels);
        let fits = chains
            && (1..=channels).contains(&k)
            && weights.ncols() == patch_len
            && batch > 0
            && kernel.may_cut(rows, channels, positions, channels);
        let Some(bias_row) = bias_row.filter(|_| fits) else {
            return composed_kwta_layer(self, x, weights, bias, spec);
        };
        let x = entries(x);
        let pooled = pool.map_or(0, |p| p.positions() * channels);
        let drive_len = positions * channels;
        // A Hebbian step's pass (`relative`) returns neither the drive nor a pooled activity: each
        // image's are written to its thread's scratch instead, where they stay in cache.
        let keep_drive = !want_relative;
        let keep_activity = !want_relative || pool.is_none();
        let kept = |keep: bool| if keep { rows * channels } else { 0 };
        let mut patches = Vec::with_capacity(rows * patch_len);
        let mut drive = Vec::with_capacity(kept(keep_drive));
        let mut activity = Vec::with_capacity(kept(keep_activity));
        let mut output = Vec::with_capacity(batch * pooled);
        let mut threshold = vec![0f32; rows];
        let mut relative = Vec::with_capacity(kept(want_relative));
        let mut positives = vec![0usize; batch];
        let weights_t = weights.t();
        let job = LayerJob { conv, pool, x: &x, kernel, weights_t, bias: bias_row, k };
        let one_image = |scratch: &mut ImageScratch, block: ImageBlock<'_>| job.image(scratch, block);
        {
            // A kept output's blocks, else one empty block per image (the scratch takes its place).
            fn blocks(v: &mut Vec<f32>, len: usize, batch: usize) -> Vec<Uninit<'_>> {
                if v.capacity() > 0 {
                    v.spare_capacity_mut()[..len * batch].chunks_mut(len).collect()
                } else {
                    (0..batch).map(|_| <Uninit<'_>>::default()).collect()
                }
            }
            let p = &mut patches.spare_capacity_mut()[..rows * patch_len];
            let d_blocks = blocks(&mut drive, drive_len, batch);
            let a_blocks = blocks(&mut activity, drive_len, batch);
            // Without pooling, one empty block per image (the output is the activity).
            let o_blocks = blocks(&mut output, pooled, batch);
            // Without the relative activity, one empty block per image.
            let r_blocks = blocks(&mut relative, drive_len, batch);
            let scratch = || ImageScratch::new(channels, drive_len, !keep_drive, !keep_activity);
            if self.parallel(rows * channels) {
                self.install(|| {
                    p.par_chunks_mut(positions * patch_len)
                        .zip(d_blocks.into_par_iter())
                        .zip(a_blocks.into_par_iter())
                        .zip(o_blocks.into_par_iter())
                        .zip(threshold.par_chunks_mut(positions))
                        .zip(r_blocks.into_par_iter())
                        .zip(positives.par_iter_mut())
                        .enumerate()
                        .for_each_init(scratch, one_image)
                });
            } else {
                let mut buf = scratch();
                p.chunks_mut(positions * patch_len)
                    .zip(d_blocks)
                    .zip(a_blocks)
                    .zip(o_blocks)
                    .zip(threshold.chunks_mut(positions))
                    .zip(r_blocks)
                    .zip(positives.iter_mut())
                    .enumerate()
                    .for_each(|job| one_image(&mut buf, job));
            }
        }
        // SAFETY: each image's `LayerJob::body` initialized its whole block of every buffer it was
        // given (the patches and the pooled map by a zero fill first, the drive by the product,
        // the activity and the relative activity row by row, one row per row of the drive), and
        // the blocks cover the spare capacity taken above exactly: `batch` blocks of
        // `positions·patch_len`, `positions·C'` (drive, activity, relative activity, each when
        // kept) and `pooled` entries.
        #[allow(unsafe_code)]
        unsafe {
            patches.set_len(rows * patch_len);
            drive.set_len(kept(keep_drive));
            activity.set_len(kept(keep_activity));
            output.set_len(batch * pooled);
            relative.set_len(kept(want_relative));
        }
        let matrix = |v: Vec<f32>, cols: usize| Array2::from_shape_vec((v.len() / cols, cols), v).expect("whole rows");
        let activity = keep_activity.then(|| matrix(activity, channels));
        let output = match (pool, &activity) {
            (Some(_), _) => matrix(output, channels),
            (None, Some(activity)) => activity.clone(),
            (None, None) => unreachable!("without pooling the activity is kept"),
        };
        // The same `count/n` in `f64` rounded once as `fraction_positive`.
        let fraction = (positives.iter().sum::<usize>() as f64 / (rows * channels).max(1) as f64) as f32;
        KwtaLayer {
            patches: matrix(patches, patch_len),
            drive: keep_drive.then(|| matrix(drive, channels)),
            threshold: matrix(threshold, 1),
            activity,
            output,
            relative: want_relative.then(|| matrix(relative, channels)),
            fraction_positive: Some(fraction),
        }
    }

    /// The `k`-th largest per row by the same integer-key selection as `row_kth_largest`, then
    /// `relu(u − θ)` in one pass (the composed chain's `zip(Sub)` then `map(Relu)`).
    fn kwta_rows(&self, u: &Array2<f32>, k: usize) -> (Array2<f32>, Array2<f32>) {
        let cols = u.ncols();
        assert!(k >= 1 && k <= cols, "k = {k} outside 1..={cols}");
        let kths = |rows: &[f32], t: &mut [f32], buf: &mut Vec<i32>| kth_of_rows(buf, rows, cols, k, t);
        self.row_value_then_entries(u, kths, |x, t| (x - t).max(0.0))
    }

    /// The peak per row folded in `f64` like `reduce(Max)`, guarded, then the division (`zip(Div)`).
    fn relative_to_row_max(&self, y: &Array2<f32>) -> Array2<f32> {
        let peak = |y: &[f32]| guarded(y.iter().fold(f64::NEG_INFINITY, |acc, &v| acc.max(v as f64)) as f32);
        self.row_value_then_entries(y, per_row(y.ncols(), peak), |y, peak| y / peak).1
    }

    /// `Σ (p·p)` per row summed in `f64` like `reduce(Sum)` of `map(Square)`, the `f32` square
    /// root and the guard, then the division (`zip(Div)`).
    fn unit_l2_rows(&self, p: &Array2<f32>) -> Array2<f32> {
        let norm = |p: &[f32]| guarded((sum_f64_of(p, |x| f64::from(x * x)) as f32).sqrt());
        self.row_value_then_entries(p, per_row(p.ncols(), norm), |p, norm| p / norm).1
    }

    /// The positive entries counted in one pass (no `0/1` tensor), then `count/n` in `f64`
    /// rounded once: the exact value `reduce(All, Mean)` of `map(Step)` computes.
    fn fraction_positive(&self, y: &Array2<f32>) -> f32 {
        let y = y.as_standard_layout();
        let values = y.as_slice().expect("standard layout");
        let count = |chunk: &[f32]| chunk.iter().map(|&v| usize::from(v > 0.0)).sum::<usize>();
        let total: usize = if self.parallel(values.len()) {
            self.install(|| values.par_chunks(4096).map(count).sum())
        } else {
            count(values)
        };
        (total as f64 / values.len().max(1) as f64) as f32
    }

    fn reshape(&self, t: &Array2<f32>, rows: usize, cols: usize) -> Array2<f32> {
        Array2::from_shape_vec((rows, cols), entries(t).into_owned()).expect("reshape keeps the number of entries")
    }
}
