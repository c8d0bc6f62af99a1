//! Reductions along rows, columns or the whole tensor.

use serde::{Deserialize, Serialize};

use super::TensorStore;
use super::stacked::{split_members, stack_members};

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

    /// [`reduce`](Self::reduce) of each member of a stack (`members` matrices one under another;
    /// [`crate::backend::stack_members`]): `PerCol` gives one row per member (`members×cols`),
    /// `All` one value per member (`members×1`), `PerRow` is `reduce`'s. The default reduces member
    /// by member through the host, so each member has `reduce`'s bits; a backend that overrides it
    /// must keep them (population members equal their single runs).
    fn reduce_stacked(&self, members: usize, a: &Self::Tensor, dim: Dim, op: Reduce) -> Self::Tensor {
        if dim == Dim::PerRow {
            return self.reduce(a, dim, op);
        }
        let parts: Vec<_> = split_members(self, a, members).iter().map(|m| self.reduce(m, dim, op)).collect();
        stack_members(self, &parts)
    }
}
