//! The `Backend` trait: the small set of tensor operations the learning rules, models and attacks need.
//!
//! Split in the manner of burn: one trait per family of operations, each in its own file, so a backend
//! author sees exactly what to implement. [`Backend`] is the union, implemented automatically.
//! Every operation works on 2-D `f32` tensors; vectors are `1×n` or `n×1` tensors.
//! To add a backend: implement the six families (`PlasticityOps` has a default built from the others), then run [`crate::conformance`] against it.

mod conv;
mod elementwise;
mod linalg;
mod optim;
mod plasticity;
mod reduce;
mod reference;
mod select;
mod stacked;

pub use conv::{
    ConvOps, KwtaLayer, KwtaSpec, Window, composed_fraction_positive, composed_kwta_layer, composed_kwta_rows,
    composed_relative_to_row_max, composed_unit_l2_rows, fold_image, max_pool_backward_image, max_pool_image,
    unfold_image,
};
pub use elementwise::{Binary, ElementwiseOps, Unary};
pub use linalg::LinalgOps;
pub use optim::{AdamStep, OptimOps};
pub use plasticity::{
    HebbianTerms, NORM_GUARD, PlasticityOps, PlasticityStep, WeightChange, composed_plasticity_step, guard,
    hebbian_change, prune_weak_synapses, row_norm, scale_synapses,
};
pub use reduce::{Dim, Reduce, ReduceOps};
pub use reference::ReferenceBackend;
pub use select::SelectOps;
pub use stacked::{
    StackedGemm, add_member_rows, composed_plasticity_step_stacked, composed_reduce_stacked, matmul_members,
    member_rows, reduce_members, split_members, stack_members,
};

use std::fmt::Debug;

use crate::tensor::Matrix;

/// Where tensors live and how they travel to and from the host.
pub trait TensorStore: Clone + Debug + Send + Sync + 'static {
    /// The backend's tensor handle (a 2-D `f32` array in its memory).
    type Tensor: Clone + Debug + Send + Sync;

    /// A short human-readable name, e.g. `cpu (2 threads)`.
    fn name(&self) -> String;
    /// Copies a host matrix into the backend.
    fn upload(&self, m: &Matrix) -> Self::Tensor;
    /// Copies a tensor back to the host.
    fn download(&self, t: &Self::Tensor) -> Matrix;
    /// `(rows, cols)` of a tensor.
    fn shape(&self, t: &Self::Tensor) -> (usize, usize);
    /// A new tensor filled with `value`.
    fn full(&self, rows: usize, cols: usize, value: f32) -> Self::Tensor;
    /// Waits until queued work is finished. Does nothing on synchronous backends; lets benchmarks
    /// time asynchronous ones honestly through the same code path.
    fn sync(&self) {}
}

/// A complete backend: every operation family. Implemented for any type that implements all of them.
pub trait Backend:
    TensorStore + LinalgOps + ElementwiseOps + ReduceOps + SelectOps + OptimOps + PlasticityOps + ConvOps
{
}

impl<B> Backend for B where
    B: TensorStore + LinalgOps + ElementwiseOps + ReduceOps + SelectOps + OptimOps + PlasticityOps + ConvOps
{
}

/// Checks the broadcasting rule shared by every backend's [`ElementwiseOps::zip`]: `b` has the shape
/// of `a`, or is `rows×1` (one value per row), `1×cols` (one per column) or `1×1`.
/// Returns how to index `b` for entry `(i, j)` as strides `(row_stride, col_stride)`.
pub fn broadcast_strides(a: (usize, usize), b: (usize, usize)) -> (usize, usize) {
    match b {
        _ if b == a => (b.1, 1),
        (r, 1) if r == a.0 => (1, 0),
        (1, c) if c == a.1 => (0, 1),
        (1, 1) => (0, 0),
        _ => panic!("cannot broadcast {}×{} onto {}×{}", b.0, b.1, a.0, a.1),
    }
}
