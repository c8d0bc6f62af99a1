//! Row, column and total reductions, accumulated in `f64` like the reference.

use bio_core::{Dim, Reduce, ReduceOps};
use ndarray::{Array2, ArrayView1, Axis, parallel::prelude::*};

use crate::CpuBackend;

fn init(op: Reduce) -> f64 {
    match op {
        Reduce::Sum | Reduce::Mean => 0.0,
        Reduce::Max => f64::NEG_INFINITY,
        Reduce::Min => f64::INFINITY,
    }
}

/// Folds one value in; also combines two partial results.
fn step(op: Reduce, acc: f64, v: f64) -> f64 {
    match op {
        Reduce::Sum | Reduce::Mean => acc + v,
        Reduce::Max => acc.max(v),
        Reduce::Min => acc.min(v),
    }
}

fn finish(op: Reduce, acc: f64, n: usize) -> f32 {
    if op == Reduce::Mean { (acc / n.max(1) as f64) as f32 } else { acc as f32 }
}

/// Sum of `values` in `f64`, in [`LANES`] independent partial sums combined at the end: the
/// additions no longer wait on each other (a latency-bound chain of one `f64` add per entry
/// before), and the loop vectorizes. Each partial sum is exact to `f64` rounding, so the result
/// is at least as accurate as one running sum.
fn sum_f64(values: &[f32]) -> f64 {
    sum_f64_of(values, f64::from)
}

/// `Σ f(v)` over `values`, summed like [`sum_f64`] (also the row norms of the fused plasticity kernel).
#[inline(always)]
pub(crate) fn sum_f64_of(values: &[f32], f: impl Fn(f32) -> f64) -> f64 {
    let mut acc = [0.0f64; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a += f(v);
        }
    }
    let mut total = acc.iter().sum::<f64>();
    for &v in tail {
        total += f(v);
    }
    total
}

/// Independent partial sums of [`sum_f64`].
const LANES: usize = 8;

fn fold_lane(op: Reduce, lane: ArrayView1<'_, f32>) -> f64 {
    match (op, lane.as_slice()) {
        (Reduce::Sum | Reduce::Mean, Some(values)) => sum_f64(values),
        _ => lane.iter().fold(init(op), |acc, &v| step(op, acc, v as f64)),
    }
}

/// Folds `row` into the per-column accumulators `acc`.
fn fold_into(op: Reduce, mut acc: Vec<f64>, row: ArrayView1<'_, f32>) -> Vec<f64> {
    for (a, &v) in acc.iter_mut().zip(row.iter()) {
        *a = step(op, *a, v as f64);
    }
    acc
}

fn combine(op: Reduce, mut x: Vec<f64>, y: Vec<f64>) -> Vec<f64> {
    for (a, b) in x.iter_mut().zip(y) {
        *a = step(op, *a, b);
    }
    x
}

impl ReduceOps for CpuBackend {
    fn reduce(&self, a: &Array2<f32>, dim: Dim, op: Reduce) -> Array2<f32> {
        let (rows, cols) = a.dim();
        let parallel = self.parallel(a.len());
        match dim {
            Dim::PerRow => {
                let lane = |row| finish(op, fold_lane(op, row), cols);
                let v: Vec<f32> = if parallel {
                    self.install(|| a.axis_iter(Axis(0)).into_par_iter().map(lane).collect())
                } else {
                    a.rows().into_iter().map(lane).collect()
                };
                Array2::from_shape_vec((rows, 1), v).expect("one value per row")
            }
            Dim::PerCol => {
                let fresh = || vec![init(op); cols];
                let acc = if parallel {
                    self.install(|| {
                        a.axis_iter(Axis(0))
                            .into_par_iter()
                            .fold(fresh, |acc, row| fold_into(op, acc, row))
                            .reduce(fresh, |x, y| combine(op, x, y))
                    })
                } else {
                    a.rows().into_iter().fold(fresh(), |acc, row| fold_into(op, acc, row))
                };
                Array2::from_shape_vec((1, cols), acc.into_iter().map(|s| finish(op, s, rows)).collect())
                    .expect("one value per column")
            }
            Dim::All => {
                let total = if parallel {
                    self.install(|| {
                        a.axis_iter(Axis(0))
                            .into_par_iter()
                            .map(|row| fold_lane(op, row))
                            .reduce(|| init(op), |x, y| step(op, x, y))
                    })
                } else {
                    a.rows().into_iter().map(|row| fold_lane(op, row)).fold(init(op), |x, y| step(op, x, y))
                };
                Array2::from_elem((1, 1), finish(op, total, a.len()))
            }
        }
    }
}
