//! Matrix products.

use super::TensorStore;

/// GEMM with optional transposes: the bulk of every forward pass, backward pass and Hebbian update.
pub trait LinalgOps: TensorStore {
    /// `op(a) · op(b)` where `op` transposes when the flag is set.
    /// Panics if the inner dimensions disagree (a programming error, not a data error).
    fn matmul(&self, a: &Self::Tensor, trans_a: bool, b: &Self::Tensor, trans_b: bool) -> Self::Tensor;

    /// `op(a) · b` for an `a` that is mostly zeros (k-WTA activities and their gradients, about 5 %
    /// non-zero): the same product as [`matmul`](Self::matmul) up to rounding, except that an entry
    /// of `b` facing a zero of `a` contributes nothing (`0·∞` and `0·NaN` count as 0). A backend may
    /// skip the zeros; the default is the dense product.
    fn sparse_matmul(&self, a: &Self::Tensor, trans_a: bool, b: &Self::Tensor) -> Self::Tensor {
        self.matmul(a, trans_a, b, false)
    }
}
