//! Fused optimizer steps: one pass over the parameters instead of a chain of elementwise maps.

use super::TensorStore;

/// One Adam step's scalars (bias corrections already folded into `lr_t` by the caller).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    /// Step size with bias correction: `lr · √(1-β₂ᵗ) / (1-β₁ᵗ)`.
    pub lr_t: f32,
    /// First-moment decay β₁.
    pub beta1: f32,
    /// Second-moment decay β₂.
    pub beta2: f32,
    /// Denominator guard ε.
    pub eps: f32,
}

/// Parameter updates of the backprop baseline.
pub trait OptimOps: TensorStore {
    /// Adam: `m ← β₁m + (1-β₁)g`, `v ← β₂v + (1-β₂)g²`, `p ← p - lr_t·m/(√v + ε)`.
    fn adam_step(
        &self,
        p: &mut Self::Tensor,
        g: &Self::Tensor,
        m: &mut Self::Tensor,
        v: &mut Self::Tensor,
        s: AdamStep,
    );
    /// SGD with momentum: `m ← μm + g`, `p ← p - lr·m`.
    fn momentum_step(&self, p: &mut Self::Tensor, g: &Self::Tensor, m: &mut Self::Tensor, lr: f32, momentum: f32);
}
