//! Stacks: the layout of population training (issue 29), where `members` networks of one shape
//! train together. A stack holds `members` matrices of one shape one under another
//! (`members·r × c`, member `p` in rows `p·r .. (p+1)·r`); row-wise and elementwise operations
//! apply to a stack as they are, and the `*_stacked` operations of the families do the rest
//! (products, column and total reductions, the plasticity step) member by member.

use super::plasticity::composed_plasticity_step;
use super::{
    Backend, Binary, Dim, ElementwiseOps, HebbianTerms, LinalgOps, PlasticityStep, Reduce, ReduceOps, TensorStore,
    Unary,
};
use crate::tensor::Matrix;

/// Rows of one member of a stack of `members` with shape `(rows, cols)`; panics (a programming
/// error) when `members` is 0 or does not divide `rows`.
pub fn member_rows((rows, cols): (usize, usize), members: usize, what: &str) -> usize {
    assert!(members > 0, "{what}: a stack needs at least one member");
    assert!(rows % members == 0, "{what}: {rows}×{cols} is not a stack of {members} equal members");
    rows / members
}

/// The members of a stack, through the host (the defaults' way: exact copies).
pub fn split_members<B: TensorStore>(b: &B, t: &B::Tensor, members: usize) -> Vec<B::Tensor> {
    let rows = member_rows(b.shape(t), members, "split_members");
    let host = b.download(t);
    let len = rows * host.cols();
    (0..members)
        .map(|p| {
            let data = host.as_slice()[p * len..(p + 1) * len].to_vec();
            b.upload(&Matrix::new(rows, host.cols(), data).expect("a member's slice has its shape"))
        })
        .collect()
}

/// One stack of `parts` (each the same shape), through the host; panics when the shapes differ
/// or there are none.
pub fn stack_members<B: TensorStore>(b: &B, parts: &[B::Tensor]) -> B::Tensor {
    let shape = b.shape(parts.first().expect("stack_members needs at least one member"));
    let mut data = Vec::with_capacity(parts.len() * shape.0 * shape.1);
    for part in parts {
        assert_eq!(b.shape(part), shape, "stack_members: members of different shapes");
        data.extend_from_slice(b.download(part).as_slice());
    }
    b.upload(&Matrix::new(parts.len() * shape.0, shape.1, data).expect("the stack has its shape"))
}

/// `op(a)·op(c)` of one network (`members == 1`: [`LinalgOps::matmul`], so a single run keeps
/// its bits on every backend) or of every member of two stacks ([`LinalgOps::matmul_stacked`]).
pub fn matmul_members<B: LinalgOps>(
    b: &B,
    members: usize,
    a: &B::Tensor,
    ta: bool,
    c: &B::Tensor,
    tc: bool,
) -> B::Tensor {
    if members == 1 { b.matmul(a, ta, c, tc) } else { b.matmul_stacked(members, a, ta, c, tc) }
}

/// [`ReduceOps::reduce`] of one network, or [`ReduceOps::reduce_stacked`] of every member.
pub fn reduce_members<B: ReduceOps>(b: &B, members: usize, t: &B::Tensor, dim: Dim, op: Reduce) -> B::Tensor {
    if members == 1 { b.reduce(t, dim, op) } else { b.reduce_stacked(members, t, dim, op) }
}

/// `x + v` with one row of `v` per member (`v`: `members×cols`, a bias per member) added to every
/// row of that member's block of `x` (`members·rows × cols`). One network: `zip` with broadcasting.
/// Several: `v` is first copied onto each member's rows by a product with a column of ones (`k = 1`:
/// each entry is `1·v`, exactly `v`, except that a `−0` becomes `+0`), so every sum is `zip`'s,
/// bit for bit, wherever `v` holds no `−0` (a bias that starts at `+0` and changes by additions
/// never becomes `−0`).
pub fn add_member_rows<B: LinalgOps + ElementwiseOps>(
    b: &B,
    members: usize,
    x: &B::Tensor,
    v: &B::Tensor,
) -> B::Tensor {
    if members == 1 {
        return b.zip(x, v, Binary::Add);
    }
    let rows = b.shape(x).0;
    b.zip(x, &b.matmul_stacked(members, &b.full(rows, 1, 1.0), false, v, false), Binary::Add)
}

/// [`ReduceOps::reduce_stacked`] from whole-stack operations, for a device backend (no host round
/// trip): `All` reduces each member's block as one row of a reshape (`members × rows·cols`), `PerCol`
/// sums each member's columns by a stacked product with a column of ones (divided by the rows for
/// `Mean`). Within the conformance tolerance of `reduce`, not its bits. `PerCol` `Max` and `Min`
/// (not used in training) take the default's host path.
pub fn composed_reduce_stacked<B: Backend>(b: &B, members: usize, t: &B::Tensor, dim: Dim, op: Reduce) -> B::Tensor {
    let (rows, cols) = b.shape(t);
    let member = member_rows((rows, cols), members, "reduce_stacked");
    match (dim, op) {
        (Dim::PerRow, _) => b.reduce(t, dim, op),
        (Dim::All, _) => b.reduce(&b.reshape(t, members, member * cols), Dim::PerRow, op),
        (Dim::PerCol, Reduce::Sum | Reduce::Mean) => {
            let sums = b.matmul_stacked(members, &b.full(rows, 1, 1.0), true, t, false);
            if op == Reduce::Mean { b.map(&sums, Unary::Scale(1.0 / member as f32)) } else { sums }
        }
        (Dim::PerCol, Reduce::Max | Reduce::Min) => {
            let parts: Vec<_> = split_members(b, t, members).iter().map(|m| b.reduce(m, dim, op)).collect();
            stack_members(b, &parts)
        }
    }
}

/// [`crate::backend::PlasticityOps::plasticity_step_stacked`] from whole-stack operations, for a
/// device backend: every member's pull `rᵀ·p` in one stacked product, then the composed step
/// ([`composed_plasticity_step`], whose operations are all per neuron, so it steps every member's
/// rows at once). Within the conformance tolerance of the per-member step.
pub fn composed_plasticity_step_stacked<B: Backend>(
    b: &B,
    members: usize,
    weights: &mut B::Tensor,
    mask: &mut B::Tensor,
    terms: &HebbianTerms<B::Tensor>,
    step: &PlasticityStep,
) {
    let pull = b.matmul_stacked(members, &terms.relative, true, &terms.pattern, false);
    composed_plasticity_step(b, weights, mask, &pull, &terms.wins, step);
}

/// The shapes of a [`LinalgOps::matmul_stacked`] call, checked: each member of `a` is
/// `a_rows × a.1`, of `b` `b_rows × b.1`, and each member's product `rows × cols`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackedGemm {
    /// Rows of one member of `a`.
    pub a_rows: usize,
    /// Rows of one member of `b`.
    pub b_rows: usize,
    /// Rows of one member's product.
    pub rows: usize,
    /// Columns of the product.
    pub cols: usize,
    /// The inner dimension.
    pub inner: usize,
}

impl StackedGemm {
    /// The plan of `members` products of the stacks `a` (`a_shape`) and `b` (`b_shape`); panics
    /// (a programming error) where the stacks do not split into `members` equal members or the
    /// members' inner dimensions differ.
    pub fn new(members: usize, a_shape: (usize, usize), trans_a: bool, b_shape: (usize, usize), trans_b: bool) -> Self {
        let a_rows = member_rows(a_shape, members, "matmul_stacked (a)");
        let b_rows = member_rows(b_shape, members, "matmul_stacked (b)");
        let (rows, ka) = if trans_a { (a_shape.1, a_rows) } else { (a_rows, a_shape.1) };
        let (kb, cols) = if trans_b { (b_shape.1, b_rows) } else { (b_rows, b_shape.1) };
        assert_eq!(ka, kb, "matmul inner dimensions differ: {ka} vs {kb}");
        Self { a_rows, b_rows, rows, cols, inner: ka }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::ReferenceBackend;
    use crate::conformance::{check_plasticity_step_stacked_by, check_reduce_stacked_by};

    /// The device forms of the stacked operations meet the conformance suite's checks of the
    /// operations they implement (run here on the reference backend).
    #[test]
    fn the_composed_stacked_operations_pass_the_conformance_checks() {
        check_reduce_stacked_by(&ReferenceBackend, composed_reduce_stacked);
        check_plasticity_step_stacked_by(&ReferenceBackend, composed_plasticity_step_stacked);
    }
}
