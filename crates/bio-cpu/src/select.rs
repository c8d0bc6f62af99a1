//! Row-wise k-th largest, softmax and argmax.

#[cfg(test)]
use std::cmp::Ordering;

use bio_core::SelectOps;
use ndarray::{Array2, ArrayView1, ArrayViewMut1, Axis, parallel::prelude::*};

use crate::CpuBackend;

/// The integer whose signed order is [`f32::total_cmp`]'s order (the same bit trick `total_cmp`
/// applies to both operands of every comparison, done once per entry here).
fn total_key(x: f32) -> i32 {
    let bits = x.to_bits() as i32;
    bits ^ (((bits >> 31) as u32) >> 1) as i32
}

/// Inverse of [`total_key`]: the key's `f32`, bit for bit.
fn from_total_key(key: i32) -> f32 {
    f32::from_bits((key ^ (((key >> 31) as u32) >> 1) as i32) as u32)
}

/// The `k`-th largest of `row` in descending total order, selected in the scratch buffer `buf`.
///
/// Selects on integer keys: the `k`-th largest is the `(n − k)`-th smallest key, and integer
/// comparisons cost a fraction of `total_cmp`'s. The bits of the result are exactly those of the
/// entry the reference's sort puts at position `k − 1`.
fn kth(buf: &mut Vec<i32>, row: ArrayView1<'_, f32>, k: usize) -> f32 {
    buf.clear();
    buf.extend(row.iter().map(|&x| total_key(x)));
    let n = buf.len();
    from_total_key(*buf.select_nth_unstable(n - k).1)
}

/// The reference's order, kept for the unit test of the key transform.
#[cfg(test)]
fn descending(x: &f32, y: &f32) -> Ordering {
    y.total_cmp(x)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_keys_order_like_total_cmp_and_round_trip() {
        let values = [
            f32::NEG_INFINITY,
            -f32::MAX,
            -1.5,
            -f32::MIN_POSITIVE,
            -1e-45,
            -0.0,
            0.0,
            1e-45,
            f32::MIN_POSITIVE,
            1.0,
            f32::MAX,
            f32::INFINITY,
            f32::NAN,
            -f32::NAN,
        ];
        for &x in &values {
            assert_eq!(from_total_key(total_key(x)).to_bits(), x.to_bits());
            for &y in &values {
                assert_eq!(total_key(x).cmp(&total_key(y)), x.total_cmp(&y), "{x} vs {y}");
                assert_eq!(descending(&x, &y), total_key(y).cmp(&total_key(x)));
            }
        }
    }
}
