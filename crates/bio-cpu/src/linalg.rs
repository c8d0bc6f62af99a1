//! GEMM through ndarray's `matrixmultiply` backend.

use bio_core::LinalgOps;
use ndarray::{Array2, linalg::general_mat_mul};

use crate::CpuBackend;

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
}
