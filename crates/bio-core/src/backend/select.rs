//! Row-wise selection: k-th largest (for k-winners-take-all), softmax and argmax.

use super::TensorStore;

/// Operations that look across a row.
pub trait SelectOps: TensorStore {
    /// For each row, its `k`-th largest value (`k` counts from 1), as a `rows×1` tensor.
    /// Panics unless `1 ≤ k ≤ cols`.
    fn row_kth_largest(&self, a: &Self::Tensor, k: usize) -> Self::Tensor;
    /// Numerically stable softmax of each row.
    fn softmax_rows(&self, a: &Self::Tensor) -> Self::Tensor;
    /// Index of each row's largest value (the first one on ties), copied to the host.
    fn argmax_rows(&self, a: &Self::Tensor) -> Vec<usize>;
}
