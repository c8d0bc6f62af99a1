//! The `kh` peer: Krotov & Hopfield (2019), "Unsupervised learning by competing hidden units"
//! (PNAS 116(16):7723), one hidden layer learned without labels, then a linear readout on the frozen
//! features.
//!
//! **Unsupervised phase** (the first `U` epochs, see [`phase_split`](super::phase_split)). For a batch `x` (`B×D`, pixels
//! as given) and hidden weights `W` (`N×D`, started `N(0, 1)`):
//!
//! * drive of unit `μ`: `I_μ = ⟨w_μ, x⟩_p = Σ_i sign(w_μi)·|w_μi|^(p−1)·x_i`;
//! * ranking per input: `g_μ = 1` for the unit with the largest drive, `g_μ = −Δ` for the `k`-th
//!   ranked unit, `0` otherwise;
//! * plasticity summed over the batch: `ΔW_μ = Σ_b g_bμ·(x_b − I_bμ·w_μ)`, divided by its largest
//!   absolute entry (over the whole matrix), times the linearly annealed rate
//!   `ε = ε₀·(1 − epoch/U)`: `W ← W + ε·ΔW/max|ΔW|`.
//!
//! There is no normalization step: the `−I·w` term drives every row that keeps winning toward the
//! unit `p`-sphere, `‖w_μ‖_p = 1`, by itself (the paper's fixed point with `R = 1`).
//!
//! **Supervised phase** (the remaining epochs): `W` is frozen and only the readout learns.
//! The response uses the paper's plain dot product (not the `p`-weighted drive; both agree at
//! `p = 2`): `r = ReLU(x Wᵀ)`, `h = rⁿ`. Since `rⁿ` spans many orders of magnitude (and `N(0,1)`
//! rows give drives in the hundreds before learning), the readout sees the response normalized
//! per sample, `ĥ = h/‖h‖₂` (a scale-free code; `0` when no unit responds), and the class scores
//! are `z = ĥ Vᵀ + c`. The paper's readout is `tanh(β·Σ S h)` trained on `|c − t|^m`; here `V, c`
//! are trained by Adam on the softmax cross-entropy, like the other rules' readouts.
//!
//! The input gradient is exact: `∂L/∂r_μ = n·(ĥ_μ/r_μ)·(g_μ − ĥ_μ·⟨g, ĥ⟩)` with `g = Vᵀ∂L/∂z`
//! (`0` where `r_μ = 0`), then `∂L/∂x = (∂L/∂r) W`. It is computed from `(r/max r)^(n−1)` so that
//! nothing overflows however large the drives are.
//!
//! The readout Adam trainer ([`ReadoutTrainer`](super::ReadoutTrainer)) and the phase split are
//! shared with the other frozen-feature rules ([`super::frozen`]).

mod model;
mod params;
mod rule;
#[cfg(test)]
mod tests;

pub use model::KhNet;
pub use params::{KhConfig, KhParams};
pub use rule::{KH_COPIES_PER_WEIGHT, KhRule, KhState, kh_plasticity};
