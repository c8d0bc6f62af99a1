//! Row-wise k-th largest, softmax and argmax.

use std::cmp::Ordering;

use bio_core::SelectOps;
use ndarray::{Array2, ArrayView1, ArrayViewMut1, Axis, parallel::prelude::*};

use crate::CpuBackend;

/// Descending total order (NaN-safe): the order in which the reference sorts a row.
fn descending(x: &f32, y: &f32) -> Ordering {
    y.total_cmp(x)
}

/// The `k`-th largest of `row`, selected in the scratch buffer `buf`.
fn kth(buf: &mut Vec<f32>, row: ArrayView1<'_, f32>, k: usize) -> f32 {
    buf.clear();
    buf.extend(row.iter().copied());
    *buf.select_nth_unstable_by(k - 1, descending).1
}

/// Stable softmax of one row, in place (same arithmetic as the reference).
fn softmax_row(mut row: ArrayViewMut1<'_, f32>) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f64;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v as f64;
    }
    for v in row.iter_mut() {
        *v = (*v as f64 / sum) as f32;
    }
}

/// Index of the first largest entry (`0` for an empty row or when nothing beats the first entry).
fn argmax(row: ArrayView1<'_, f32>) -> usize {
    let mut best = 0;
    let mut best_v = row.first().copied().unwrap_or(f32::NAN);
    for (j, &v) in row.iter().enumerate() {
        if v > best_v {
            best = j;
            best_v = v;
        }
    }
    best
}

impl SelectOps for CpuBackend {
    fn row_kth_largest(&self, a: &Array2<f32>, k: usize) -> Array2<f32> {
        let (rows, cols) = a.dim();
        assert!(k >= 1 && k <= cols, "k = {k} outside 1..={cols}");
        let v: Vec<f32> = if self.parallel(a.len()) {
            self.install(|| {
                a.axis_iter(Axis(0))
                    .into_par_iter()
                    .map_init(|| Vec::with_capacity(cols), |buf, row| kth(buf, row, k))
                    .collect()
            })
        } else {
            let mut buf = Vec::with_capacity(cols);
            a.rows().into_iter().map(|row| kth(&mut buf, row, k)).collect()
        };
        Array2::from_shape_vec((rows, 1), v).expect("one value per row")
    }

    fn softmax_rows(&self, a: &Array2<f32>) -> Array2<f32> {
        let mut out = a.as_standard_layout().into_owned();
        if self.parallel(out.len()) {
            self.install(|| out.axis_iter_mut(Axis(0)).into_par_iter().for_each(softmax_row));
        } else {
            out.rows_mut().into_iter().for_each(softmax_row);
        }
        out
    }

    fn argmax_rows(&self, a: &Array2<f32>) -> Vec<usize> {
        if self.parallel(a.len()) {
            self.install(|| a.axis_iter(Axis(0)).into_par_iter().map(argmax).collect())
        } else {
            a.rows().into_iter().map(argmax).collect()
        }
    }
}
