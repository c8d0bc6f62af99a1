//! Patch extraction and pooling on the CPU: the per-image definitions of `bio_core::backend`,
//! run in parallel over the images of a batch on rayon, without host round trips; and the
//! per-position competition and plasticity steps fused into one pass per row (each entry computed
//! with the same operations in the same order as the composed definition: the same bits).

use bio_core::backend::{
    ConvOps, NORM_GUARD, Window, fold_image, max_pool_backward_image, max_pool_image, unfold_image,
};
use ndarray::Array2;
use rayon::prelude::*;
use std::mem::MaybeUninit;

use crate::CpuBackend;
use crate::reduce::sum_f64_of;
use crate::select::kth_of_rows;

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
