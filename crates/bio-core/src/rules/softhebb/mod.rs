//! The `softhebb` peer: Moraitis et al. (2022), "SoftHebb: Bayesian inference in unsupervised
//! Hebbian soft winner-take-all networks" (Neuromorph. Comput. Eng. 2 044017), one soft-WTA hidden
//! layer learned without labels, then a linear readout on the frozen features.
//!
//! **Forward pass.** The input is normalized, `x̂ = x/(ε + ‖x‖₂)` (the paper's theory takes inputs
//! and weights on the unit sphere, so that `w·x̂` is a cosine similarity, the log-likelihood of a
//! von Mises–Fisher component), then `u = x̂ Wᵀ + b` and the soft winner-take-all
//! `y = softmax(β·u)` with inverse temperature `β`. The bias is the log-prior of each hidden cause:
//! `e^(β·b_k)` plays the role of `Q(C_k)` (started uniform, `b_k = −ln N/β`).
//! The readout sees the posterior `y` itself (the network's output, as the paper evaluates it, a
//! linear classifier on top of the SoftHebb layer): `z = y Vᵀ + c`, trained by Adam on the softmax
//! cross-entropy with `W, b` frozen.
//!
//! **Unsupervised phase** (first `U` epochs, [`phase_split`](crate::rules::phase_split)), summed over the batch:
//!
//! * weights: `Δw_k = Σ_b y_bk·(x̂_b − u_bk·w_k)`, where `u_bk = w_k·x̂_b` is the weighted input
//!   **without the bias**: with it the fixed point of the norm would be
//!   `‖w‖² = w·x̂/(w·x̂ + b)`, not 1; without it, `d‖w‖² ∝ y·u·(1 − ‖w‖²)`, the Oja-like term by
//!   which the paper's weights converge to the unit sphere with no explicit normalization.
//!   (The authors' later code, NeuromorphicComputing/SoftHebb, uses the biased pre-activation.)
//! * bias (prior): `Δb_k = Σ_b (y_bk·e^(−β·b_k) − 1)`, the paper's `e^(−b)(y − e^b)` with the
//!   temperature folded in: the prior `e^(β·b_k)` tracks the mean posterior `mean_b y_bk`.
//!   `e^(−β·b)` is computed with its exponent clamped to ±80 so a long-silent unit stays finite.
//! * each update is divided by its largest absolute entry (as the authors' code does; it only
//!   rescales a step, so the fixed points are unchanged) and taken with the linearly annealed rate
//!   `η = η₀·(1 − epoch/U)`: `W ← W + η·ΔW/max|ΔW|`, `b ← b + (η/β)·Δb/max|Δb|` (the bias
//!   rate divided by `β` as in the authors' code, since `b` enters the softmax times `β`).
//!
//! The input gradient is exact: `∂L/∂u = β·y ⊙ (g − ⟨g, y⟩)` with `g = Vᵀ∂L/∂z`, `∂L/∂x̂ = (∂L/∂u) W`,
//! then back through the normalization.

mod model;
mod params;
pub(crate) mod rule;
#[cfg(test)]
mod tests;

pub use model::{SOFTHEBB_INPUT_EPS, SoftHebbNet};
pub use params::{SoftHebbConfig, SoftHebbParams};
pub use rule::{SOFTHEBB_COPIES_PER_WEIGHT, SoftHebbRule, SoftHebbState, softhebb_plasticity};
