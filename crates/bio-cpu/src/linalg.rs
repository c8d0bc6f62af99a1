//! GEMM through ndarray's `matrixmultiply` backend, and a sparse-times-dense product for k-WTA codes.

use bio_core::LinalgOps;
use ndarray::{Array2, ArrayView2, linalg::general_mat_mul};
use rayon::prelude::*;

use crate::CpuBackend;

/// Above this fraction of non-zeros in `a`, [`LinalgOps::sparse_matmul`] runs the dense GEMM: a
/// row update (`axpy`) runs at a fraction of the packed GEMM's FLOP rate, so skipping zeros only pays
/// when most entries are zero (k-WTA codes are about 5 % non-zero).
pub const SPARSE_MAX_DENSITY: f64 = 0.15;

impl LinalgOps for CpuBackend {
    fn matmul(&self, a: &Array2<f32>, trans_a: bool, b: &Array2<f32>, trans_b: bool) -> Array2<f32> {
        // Transposes are strided views: matrixmultiply packs its panels from any strides, so no copy.
        let av = if trans_a { a.t() } else { a.view() };
        let bv = if trans_b { b.t() } else { b.view() };
        let ((m, ka), (kb, n)) = (av.dim(), bv.dim());
        assert_eq!(ka, kb, "matmul inner dimensions differ: {ka} vs {kb}");
        // Written into a row-major output (ndarray's `dot` would return a column-major one when both
        // operands are transposed). With β = 0 the zeros are overwritten, never read.
        let mut c = Array2::zeros((m, n));
        general_mat_mul(1.0, &av, &bv, 0.0, &mut c);
        c
    }

    fn sparse_matmul(&self, a: &Array2<f32>, trans_a: bool, b: &Array2<f32>) -> Array2<f32> {
        let ((m, ka), (kb, n)) = (if trans_a { (a.ncols(), a.nrows()) } else { a.dim() }, b.dim());
        assert_eq!(ka, kb, "matmul inner dimensions differ: {ka} vs {kb}");
        let rows = if trans_a { SparseRows::of_transposed(a.view()) } else { SparseRows::of(a.view()) };
        if rows.len() as f64 > SPARSE_MAX_DENSITY * (m * ka) as f64 || n == 0 {
            return self.matmul(a, trans_a, b, false);
        }
        let b = b.as_standard_layout();
        let b = b.as_slice().expect("standard layout is contiguous");
        let mut c = Array2::<f32>::zeros((m, n));
        let out = c.as_slice_mut().expect("a fresh array is contiguous");
        // Row i of the product is Σ_k a_ik·b_k over the non-zero a_ik only.
        let row_job = |(i, out_row): (usize, &mut [f32])| {
            for (k, v) in rows.of_row(i) {
                for (o, &x) in out_row.iter_mut().zip(&b[k * n..(k + 1) * n]) {
                    *o += v * x;
                }
            }
        };
        if self.parallel(m * n) {
            self.install(|| out.par_chunks_mut(n).enumerate().for_each(row_job));
        } else {
            out.chunks_mut(n).enumerate().for_each(row_job);
        }
        c
    }
}

/// The non-zero entries of a matrix, grouped by row (compressed sparse rows).
pub(crate) struct SparseRows {
    starts: Vec<usize>,
    columns: Vec<usize>,
    values: Vec<f32>,
}

impl SparseRows {
    /// Collects the non-zeros of `a` (`NaN` counts as non-zero).
    pub(crate) fn of(a: ArrayView2<f32>) -> Self {
        let mut starts = Vec::with_capacity(a.nrows() + 1);
        let (mut columns, mut values) = (Vec::new(), Vec::new());
        starts.push(0);
        for row in a.rows() {
            for (k, &v) in row.iter().enumerate() {
                if v != 0.0 {
                    columns.push(k);
                    values.push(v);
                }
            }
            starts.push(values.len());
        }
        Self { starts, columns, values }
    }

    /// Collects the non-zeros of `aᵀ`, reading `a` in its own row order (a counting sort by column),
    /// so a row-major `a` is never walked down its columns.
    pub(crate) fn of_transposed(a: ArrayView2<f32>) -> Self {
        let mut starts = vec![0usize; a.ncols() + 1];
        for row in a.rows() {
            for (j, &v) in row.iter().enumerate() {
                starts[j + 1] += usize::from(v != 0.0);
            }
        }
        for j in 0..a.ncols() {
            starts[j + 1] += starts[j];
        }
        let total = starts[a.ncols()];
        let (mut columns, mut values) = (vec![0usize; total], vec![0f32; total]);
        let mut next = starts.clone();
        for (k, row) in a.rows().into_iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                if v != 0.0 {
                    columns[next[j]] = k;
                    values[next[j]] = v;
                    next[j] += 1;
                }
            }
        }
        Self { starts, columns, values }
    }

    /// How many non-zeros in all.
    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }

    #[inline(always)]
    pub(crate) fn of_row(&self, i: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        let range = self.starts[i]..self.starts[i + 1];
        self.columns[range.clone()].iter().copied().zip(self.values[range].iter().copied())
    }
}
