//! GEMM through ndarray's `matrixmultiply` backend, and a sparse-times-dense product for k-WTA codes.

use bio_core::LinalgOps;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis, linalg::general_mat_mul};
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
        let parts = if m * n * ka >= GEMM_SPLIT_MIN_WORK { self.num_threads() } else { 1 };
        self.install(|| gemm_in_parts(av, bv, c.view_mut(), parts));
        c
    }

    fn sparse_matmul(&self, a: &Array2<f32>, trans_a: bool, b: &Array2<f32>) -> Array2<f32> {
        let ((_, ka), (kb, n)) = (if trans_a { (a.ncols(), a.nrows()) } else { a.dim() }, b.dim());
        assert_eq!(ka, kb, "matmul inner dimensions differ: {ka} vs {kb}");
        let rows = if trans_a { SparseRows::of_transposed(a.view()) } else { SparseRows::of(a.view()) };
        if rows.too_dense_for(ka) || n == 0 {
            return self.matmul(a, trans_a, b, false);
        }
        self.sparse_product(&rows, b)
    }
}

impl CpuBackend {
    /// `A·b` for the sparse `A` of `rows`: output rows in parallel, each by
    /// [`SparseRows::add_row_product`].
    pub(crate) fn sparse_product(&self, rows: &SparseRows, b: &Array2<f32>) -> Array2<f32> {
        let n = b.ncols();
        let b = b.as_standard_layout();
        let b = b.as_slice().expect("standard layout is contiguous");
        let mut c = Array2::<f32>::zeros((rows.rows(), n));
        let Some(out) = c.as_slice_mut().filter(|_| n > 0) else { return c };
        let row_job = |(i, out_row): (usize, &mut [f32])| rows.add_row_product(i, b, out_row);
        if self.parallel(out.len()) {
            self.install(|| out.par_chunks_mut(n).enumerate().for_each(row_job));
        } else {
            out.chunks_mut(n).enumerate().for_each(row_job);
        }
        c
    }
}

/// Products with at least this many multiply-adds are split across the backend's threads.
pub const GEMM_SPLIT_MIN_WORK: usize = 1 << 20;

/// `c = a·b`, the output cut into `parts` blocks along its longer side, one single-threaded
/// `matrixmultiply` GEMM per block on rayon. Every entry of `c` is summed over `k` in the same blocks
/// and order whatever the cut, so the result does not depend on `parts` (tested); one thread pool
/// (rayon's) instead of two competing for the cores.
fn gemm_in_parts(a: ArrayView2<f32>, b: ArrayView2<f32>, mut c: ArrayViewMut2<f32>, parts: usize) {
    let (m, n) = c.dim();
    if parts <= 1 || (m < 2 && n < 2) {
        general_mat_mul(1.0, &a, &b, 0.0, &mut c);
        return;
    }
    let (left, right) = (parts / 2, parts - parts / 2);
    if n >= m {
        let mid = n * left / parts;
        let (b1, b2) = b.split_at(Axis(1), mid);
        let (c1, c2) = c.split_at(Axis(1), mid);
        rayon::join(|| gemm_in_parts(a, b1, c1, left), || gemm_in_parts(a, b2, c2, right));
    } else {
        let mid = m * left / parts;
        let (a1, a2) = a.split_at(Axis(0), mid);
        let (c1, c2) = c.split_at(Axis(0), mid);
        rayon::join(|| gemm_in_parts(a1, b, c1, left), || gemm_in_parts(a2, b, c2, right));
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

    /// Number of rows.
    pub(crate) fn rows(&self) -> usize {
        self.starts.len() - 1
    }

    /// More non-zeros than [`SPARSE_MAX_DENSITY`] of a matrix with these rows and `cols` columns:
    /// the dense GEMM is faster.
    pub(crate) fn too_dense_for(&self, cols: usize) -> bool {
        self.values.len() as f64 > SPARSE_MAX_DENSITY * (self.rows() * cols) as f64
    }

    /// `out += Σ_k a_ik·b_k`, row `i` of `A·b` over the non-zero `a_ik` only, in the order stored
    /// (`b` row-major with `out.len()` columns). The one place both sparse paths sum, so they agree
    /// bit for bit.
    #[inline(always)]
    pub(crate) fn add_row_product(&self, i: usize, b: &[f32], out: &mut [f32]) {
        let n = out.len();
        for (k, v) in self.of_row(i) {
            for (o, &x) in out.iter_mut().zip(&b[k * n..(k + 1) * n]) {
                *o += v * x;
            }
        }
    }

    #[inline(always)]
    pub(crate) fn of_row(&self, i: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        let range = self.starts[i]..self.starts[i + 1];
        self.columns[range.clone()].iter().copied().zip(self.values[range].iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bio_core::conformance::{random_matrix, rng};
    use bio_core::{Matrix, TensorStore};

    /// Cutting the output into blocks (how the product uses several threads) changes no bit.
    #[test]
    fn gemm_result_does_not_depend_on_the_cut() {
        let cpu = CpuBackend::new();
        let mut rng = rng(8);
        for &(m, k, n) in &[(100, 784, 2000), (2000, 100, 784), (100, 2000, 784), (37, 513, 3)] {
            let a: Matrix = random_matrix(&mut rng, m, k, -1.0, 1.0);
            let b: Matrix = random_matrix(&mut rng, k, n, -1.0, 1.0);
            let (a, b) = (cpu.upload(&a), cpu.upload(&b));
            let whole = {
                let mut c = Array2::zeros((m, n));
                gemm_in_parts(a.view(), b.view(), c.view_mut(), 1);
                c
            };
            for parts in [2, 3, 7] {
                let mut c = Array2::zeros((m, n));
                gemm_in_parts(a.view(), b.view(), c.view_mut(), parts);
                assert_eq!(c, whole, "{m}×{k}·{k}×{n} in {parts} parts");
            }
        }
    }
}
