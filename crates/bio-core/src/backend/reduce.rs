//! Reductions along rows, columns or the whole tensor.

use serde::{Deserialize, Serialize};

use super::TensorStore;

/// Which entries a reduction combines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Dim {
    /// One value per row: the result is `rows×1`.
    PerRow,
    /// One value per column: the result is `1×cols`.
    PerCol,
    /// One value: the result is `1×1`.
    All,
}

/// How entries are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reduce {
    /// Sum.
    Sum,
    /// Arithmetic mean.
    Mean,
    /// Largest value.
    Max,
    /// Smallest value.
    Min,
}

/// Row, column and total reductions.
pub trait ReduceOps: TensorStore {
    /// Reduces `a` along `dim` with `op`.
    fn reduce(&self, a: &Self::Tensor, dim: Dim, op: Reduce) -> Self::Tensor;
}
