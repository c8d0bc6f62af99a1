//! The `bio` rule's weight-sized plasticity arithmetic as one backend operation, so a backend can do
//! it in one pass over each neuron's synapses instead of a chain of a dozen weight-sized temporaries.
//!
//! The default method composes the other families' operations; it is the definition every fused
//! implementation is checked against ([`crate::conformance::check_plasticity_step`]). Each mechanism
//! is a named function below with its equation (the rule as a whole: `docs/LEARNING_RULE.md`).

use super::stacked::{split_members, stack_members};
use super::{Binary, Dim, ElementwiseOps, LinalgOps, Reduce, ReduceOps, Unary};
use crate::params::ScalingNorm;

/// How the Hebbian step changes a weight.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum WeightChange {
    /// `W ← W ⊙ exp(Δ)`: a positive factor, so no weight changes sign and zero stays zero.
    Multiplicative,
    /// `W ← (W + unit·Δ) ⊙ mask` (the ablation of the multiplicative form; can cross zero).
    Additive {
        /// Converts a log-space step into a weight change: `S/c_D`.
        unit: f32,
    },
}

/// One plasticity step's settings (all per-step scalars already folded in by the rule).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlasticityStep {
    /// Log-space step `s = η·c_D/(B·ρ)` (rate, norm constant, batch and target activity folded in).
    pub step: f32,
    /// The norm in which weights are normalized and scaled.
    pub norm: ScalingNorm,
    /// Weights may be negative (a mixed-sign start): normalize magnitudes `|W|`.
    pub signed: bool,
    /// Multiplicative or additive change.
    pub change: WeightChange,
    /// Structural plasticity: remove synapses below this fraction of their neuron's mean present weight.
    pub prune_below: Option<f32>,
    /// Synaptic scaling: bring each neuron's weight norm back to this total.
    pub scale_to: Option<f32>,
}

/// The pre- and postsynaptic terms of one layer's Hebbian step, from one batch.
#[derive(Clone, Debug)]
pub struct HebbianTerms<T> {
    /// Relative activity `r` (`batch×neurons`), mostly zeros under k-WTA.
    pub relative: T,
    /// Normalized presynaptic pattern `p` (`batch×inputs`).
    pub pattern: T,
    /// Each neuron's summed relative activity `wins_j = Σ_b r_bj` (`neurons×1`).
    pub wins: T,
}

/// The hidden-layer plasticity of the `bio` rule: Hebbian change, then structural plasticity, then
/// synaptic scaling, each neuron (row) independently of the others.
pub trait PlasticityOps: LinalgOps + ElementwiseOps + ReduceOps {
    /// One step on `weights` and `mask` (`neurons×inputs`) from the batch's Hebbian terms.
    ///
    /// The default forms the pull `Σ_b r_bj·p_b` with [`LinalgOps::sparse_matmul`] and composes
    /// [`hebbian_change`], [`prune_weak_synapses`] and [`scale_synapses`]; a backend may override it
    /// with a fused kernel that matches it within the conformance tolerance.
    fn plasticity_step(
        &self,
        weights: &mut Self::Tensor,
        mask: &mut Self::Tensor,
        terms: &HebbianTerms<Self::Tensor>,
        step: &PlasticityStep,
    ) {
        let pull = self.sparse_matmul(&terms.relative, true, &terms.pattern);
        composed_plasticity_step(self, weights, mask, &pull, &terms.wins, step);
    }

    /// [`PlasticityOps::plasticity_step`] with each neuron's `wins_j = Σ_b r_bj` summed by the step
    /// from `relative`: by definition (the default) `matmul(relative, true, ones)` and then the
    /// step. A backend may sum on the way through `relative` (the CPU does, in the pass that forms
    /// the pull) if the result has the default's bits
    /// ([`crate::conformance::check_plasticity_step_from_relative`]).
    fn plasticity_step_from_relative(
        &self,
        weights: &mut Self::Tensor,
        mask: &mut Self::Tensor,
        relative: Self::Tensor,
        pattern: Self::Tensor,
        step: &PlasticityStep,
    ) {
        let rows = self.shape(&relative).0;
        let wins = self.matmul(&relative, true, &self.full(rows, 1, 1.0), false);
        self.plasticity_step(weights, mask, &HebbianTerms { relative, pattern, wins }, step);
    }

    /// [`plasticity_step`](Self::plasticity_step) on every member of stacks (population training):
    /// `weights` and `mask` hold `members` layers one under another, the terms each member's batch
    /// (`relative`, `pattern`) and wins (`wins`). The default steps member by member through the
    /// host, so each member has `plasticity_step`'s bits.
    fn plasticity_step_stacked(
        &self,
        members: usize,
        weights: &mut Self::Tensor,
        mask: &mut Self::Tensor,
        terms: &HebbianTerms<Self::Tensor>,
        step: &PlasticityStep,
    ) {
        let split = |t: &Self::Tensor| split_members(self, t, members);
        let (mut w, mut m) = (split(weights), split(mask));
        let (relative, pattern, wins) = (split(&terms.relative), split(&terms.pattern), split(&terms.wins));
        for p in 0..members {
            let terms =
                HebbianTerms { relative: relative[p].clone(), pattern: pattern[p].clone(), wins: wins[p].clone() };
            self.plasticity_step(&mut w[p], &mut m[p], &terms, step);
        }
        (*weights, *mask) = (stack_members(self, &w), stack_members(self, &m));
    }
}

/// [`PlasticityOps::plasticity_step`] written as a chain of the other families' operations.
pub fn composed_plasticity_step<B: ElementwiseOps + ReduceOps>(
    b: &B,
    weights: &mut B::Tensor,
    mask: &mut B::Tensor,
    pull: &B::Tensor,
    wins: &B::Tensor,
    step: &PlasticityStep,
) {
    hebbian_change(b, weights, mask, pull, wins, step);
    if let Some(fraction) = step.prune_below {
        prune_weak_synapses(b, weights, mask, fraction);
    }
    if let Some(total) = step.scale_to {
        scale_synapses(b, weights, step.norm, total);
    }
}

/// Multiplicative Hebbian change: each neuron moves its normalized weights `w̃_j = |W_j|/‖W_j‖`
/// toward the pull, in log space: `Δ_j = s·(pull_j − wins_j·w̃_j)`, `W_j ← W_j ⊙ exp(Δ_j)`
/// (or additively, [`WeightChange::Additive`]).
pub fn hebbian_change<B: ElementwiseOps + ReduceOps>(
    b: &B,
    weights: &mut B::Tensor,
    mask: &B::Tensor,
    pull: &B::Tensor,
    wins: &B::Tensor,
    step: &PlasticityStep,
) {
    let magnitude = if step.signed { b.map(weights, Unary::Abs) } else { weights.clone() };
    let normalized = b.zip(&magnitude, &guard(b, &row_norm(b, &magnitude, step.norm)), Binary::Div);
    let delta = b.lincomb(step.step, pull, -step.step, &b.zip(&normalized, wins, Binary::Mul));
    match step.change {
        WeightChange::Multiplicative => b.zip_assign(weights, &b.map(&delta, Unary::Exp), Binary::Mul),
        WeightChange::Additive { unit } => {
            *weights = b.lincomb(1.0, weights, unit, &delta);
            b.zip_assign(weights, mask, Binary::Mul);
        }
    }
}

/// Structural plasticity: a synapse whose magnitude falls below `fraction` times its neuron's mean
/// present weight is removed, `mask ← mask ⊙ [|W| > c·mean_j]`, `W ← W ⊙ mask`.
pub fn prune_weak_synapses<B: ElementwiseOps + ReduceOps>(
    b: &B,
    weights: &mut B::Tensor,
    mask: &mut B::Tensor,
    fraction: f32,
) {
    let magnitude = b.map(weights, Unary::Abs);
    let present = guard(b, &b.reduce(mask, Dim::PerRow, Reduce::Sum));
    let mean = b.zip(&b.reduce(&magnitude, Dim::PerRow, Reduce::Sum), &present, Binary::Div);
    let keep = b.zip(&magnitude, &b.map(&mean, Unary::Scale(fraction)), Binary::Greater);
    b.zip_assign(mask, &keep, Binary::Mul);
    b.zip_assign(weights, mask, Binary::Mul);
}

/// Multiplicative synaptic scaling: each neuron's weight norm returns to `total`,
/// `W_j ← W_j · S / ‖W_j‖` (a positive factor: it never changes a sign).
pub fn scale_synapses<B: ElementwiseOps + ReduceOps>(b: &B, weights: &mut B::Tensor, norm: ScalingNorm, total: f32) {
    let current = row_norm(b, weights, norm);
    let factor = b.map(&b.map(&guard(b, &current), Unary::Recip), Unary::Scale(total));
    b.zip_assign(weights, &factor, Binary::Mul);
}

/// Per-row norm (`rows×1`) of `t`: `Σ|t|` or `√Σt²`.
pub fn row_norm<B: ElementwiseOps + ReduceOps>(b: &B, t: &B::Tensor, norm: ScalingNorm) -> B::Tensor {
    match norm {
        ScalingNorm::L1 => b.reduce(&b.map(t, Unary::Abs), Dim::PerRow, Reduce::Sum),
        ScalingNorm::L2 => b.map(&b.reduce(&b.map(t, Unary::Square), Dim::PerRow, Reduce::Sum), Unary::Sqrt),
    }
}

/// The smallest norm divided by: keeps an all-zero row at zero instead of `0/0`.
pub const NORM_GUARD: f32 = 1e-12;

/// `max(t, NORM_GUARD)`: a norm or peak safe to divide by.
pub fn guard<B: ElementwiseOps>(b: &B, t: &B::Tensor) -> B::Tensor {
    b.map(t, Unary::Clamp(NORM_GUARD, f32::MAX))
}
