//! Matrix products.

use super::TensorStore;

/// GEMM with optional transposes: the bulk of every forward pass, backward pass and Hebbian update.
pub trait LinalgOps: TensorStore {
    /// `op(a) · op(b)` where `op` transposes when the flag is set.
    /// Panics if the inner dimensions disagree (a programming error, not a data error).
    fn matmul(&self, a: &Self::Tensor, trans_a: bool, b: &Self::Tensor, trans_b: bool) -> Self::Tensor;
}
