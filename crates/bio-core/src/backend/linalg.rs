//! Matrix products.

use super::TensorStore;
use super::stacked::{StackedGemm, split_members, stack_members};

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

    /// `members` products in one call, for population training (issue 29: many networks of one shape
    /// trained together). `a` is a **stack**: `members` matrices of one shape written one under
    /// another (`members·r × c`, member `p` in rows `p·r .. (p+1)·r`), `b` likewise, and the result
    /// is the stack of `op(a_p) · op(b_p)` (`members·m × n`); a transpose applies to each member,
    /// never to the stack. Each member's product is [`matmul`](Self::matmul)'s up to rounding (a
    /// backend may use a batched kernel); the default is, bit for bit: it multiplies member by member
    /// through the host. Panics if `members` is 0, a stack's rows are not a multiple of it, or the
    /// members' inner dimensions disagree.
    fn matmul_stacked(
        &self,
        members: usize,
        a: &Self::Tensor,
        trans_a: bool,
        b: &Self::Tensor,
        trans_b: bool,
    ) -> Self::Tensor {
        StackedGemm::new(members, self.shape(a), trans_a, self.shape(b), trans_b);
        let (a, b) = (split_members(self, a, members), split_members(self, b, members));
        let products: Vec<_> = a.iter().zip(&b).map(|(a, b)| self.matmul(a, trans_a, b, trans_b)).collect();
        stack_members(self, &products)
    }
}
