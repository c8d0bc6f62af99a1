//! The `bio` rule's mechanisms, each a named function with its equation.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use super::model::{BioLayer, LayerTrace, Readout, target_total};
use super::params::{BioConfig, InitSign, ScalingNorm};
use crate::backend::{
    Backend, Binary, Dim, HebbianTerms, PlasticityStep, Reduce, Unary, WeightChange, guard, matmul_members,
    reduce_members, row_norm,
};
use crate::model::{one_hot, softmax_cross_entropy};
use crate::tensor::Matrix;

/// Column vector of per-neuron sums of `r` over the batch: `rᵀ·1` (`neurons×1`; of each member of a
/// stack: `members·neurons × 1`).
pub(super) fn per_neuron_sum<B: Backend>(b: &B, members: usize, r: &B::Tensor) -> B::Tensor {
    let (batch, _) = b.shape(r);
    matmul_members(b, members, r, true, &b.full(batch, 1, 1.0), false)
}

/// The pre- and postsynaptic terms of the Hebbian rule for one layer, from its trace: the relative
/// activity `r_bj = y_bj / max_k y_bk` (k-WTA sparse), the normalized presynaptic pattern
/// `p_b = x_b/‖x_b‖` (norm: [`ScalingNorm`]) and each neuron's `wins_j = Σ_b r_bj` (`neurons×1`).
/// The backend's plasticity step forms the pull `Σ_b r_bj·p_b` from them.
pub fn hebbian_drive<B: Backend>(b: &B, trace: &LayerTrace<B>, config: &BioConfig) -> HebbianTerms<B::Tensor> {
    hebbian_drive_of_members(b, 1, trace, config)
}

/// [`hebbian_drive`] of a trace that holds `members` networks (a population's stacked members).
pub(super) fn hebbian_drive_of_members<B: Backend>(
    b: &B,
    members: usize,
    trace: &LayerTrace<B>,
    config: &BioConfig,
) -> HebbianTerms<B::Tensor> {
    let (input, activity) = (&trace.input, &trace.activity);
    let peak = b.reduce(activity, Dim::PerRow, Reduce::Max);
    let relative = b.zip(activity, &guard(b, &peak), Binary::Div);
    let relative =
        if config.hebbian_exponent == 1.0 { relative } else { b.map(&relative, Unary::Powf(config.hebbian_exponent)) };
    let relative = if config.anti_hebbian > 0.0 && config.mechanisms.competition {
        b.lincomb(1.0, &relative, config.anti_hebbian, &near_losers(b, trace, config))
    } else {
        relative
    };
    let relative = match population_rates(b, b.shape(activity).1, config) {
        Some(speeds) => b.zip(&relative, &speeds, Binary::Mul),
        None => relative,
    };
    let pattern = b.zip(input, &guard(b, &row_norm(b, input, config.scaling_norm)), Binary::Div);
    let wins = per_neuron_sum(b, members, &relative);
    HebbianTerms { relative, pattern, wins }
}

/// Two populations ([`BioParams::fast_fraction`](super::params::BioParams::fast_fraction)): each
/// unit's Hebbian rate as a multiple of `hebbian_rate` (`1×neurons`), the fast units first; `None`
/// with one population. Scaling a unit's plasticity signal scales its whole step (the pull toward
/// the input and the decay of its normalized weights alike), so this is exactly a per-unit rate.
pub(super) fn population_rates<B: Backend>(b: &B, neurons: usize, config: &BioConfig) -> Option<B::Tensor> {
    let fast = config.fast_units(neurons);
    if fast == 0 {
        return None;
    }
    let ratio = config.fast_hebbian_rate / config.hebbian_rate;
    Some(b.upload(&Matrix::from_fn(1, neurons, |_, j| if j < fast { ratio } else { 1.0 })))
}

/// `−1` on the units the anti-Hebbian push reaches, `0` elsewhere (`batch×neurons`). One loser
/// (`anti_hebbian_ranks = 1`): the strongest, which sits exactly at the threshold, marked by
/// `1 − step(|u − θ|)`. Under k-WTA with `m > 1` ranks: the losers ranked `k+1 … k+m`, those at or
/// below `θ` (the (k+1)-th drive) and above the (k+m+1)-th drive, `step(u − θ) − step(u − θ_m)`.
pub(super) fn near_losers<B: Backend>(b: &B, trace: &LayerTrace<B>, config: &BioConfig) -> B::Tensor {
    let (drive, threshold) = (&trace.drive, &trace.threshold);
    if config.anti_hebbian_ranks == 1 {
        let gap = b.map(&b.zip(drive, threshold, Binary::Sub), Unary::Abs);
        return b.map(&b.map(&gap, Unary::Step), Unary::Offset(-1.0));
    }
    let (_, n) = b.shape(drive);
    // The reach stops one short of the weakest unit, so the floor (its drive) is always defined.
    let reach = (config.winners(n) + config.anti_hebbian_ranks).min(n - 1);
    let floor = b.row_kth_largest(drive, reach + 1);
    let winners = b.map(&b.zip(drive, threshold, Binary::Sub), Unary::Step);
    let above_floor = b.map(&b.zip(drive, &floor, Binary::Sub), Unary::Step);
    b.lincomb(1.0, &winners, -1.0, &above_floor)
}

/// The hidden layer's plasticity in one backend operation ([`PlasticityOps::plasticity_step`](crate::backend::PlasticityOps::plasticity_step)):
///
/// * multiplicative Hebbian change, each neuron moving its normalized weights `w̃_j = |W_j|/‖W_j‖`
///   toward the pattern in proportion to its relative activity, in log space:
///   `ΔlogW_ji = η·c_D/(B·ρ) · Σ_b r_bj (p_bi − w̃_ji)` with `c_D = D` (L1) or `√D` (L2),
///   `W ← W ⊙ exp(ΔlogW)`. The exponential keeps every weight's sign (and zero stays zero):
///   positivity holds by construction. With `multiplicative` switched off (ablation) the same step
///   is taken additively, `ΔW = (S/c_D)·ΔlogW`, which can cross zero;
/// * structural plasticity (when on): synapses below `prune_below` times their neuron's mean
///   present weight are removed;
/// * synaptic scaling (when on): each neuron's weight norm returns to its target `S`.
pub fn hidden_plasticity<B: Backend>(
    b: &B,
    layer: &mut BioLayer<B>,
    trace: &LayerTrace<B>,
    rate: f32,
    config: &BioConfig,
) {
    modulated_plasticity(b, layer, trace, rate, config, None);
}

/// [`hidden_plasticity`] with a third factor: each sample's plasticity signal multiplied by `m_b`
/// (`modulator`, `batch×1`), `r_bj ← m_b·r_bj`, so a negative `m_b` moves that sample's winners away
/// from it ([`BioParams::reward_modulation`](super::params::BioParams::reward_modulation)).
pub fn modulated_plasticity<B: Backend>(
    b: &B,
    layer: &mut BioLayer<B>,
    trace: &LayerTrace<B>,
    rate: f32,
    config: &BioConfig,
    modulator: Option<&B::Tensor>,
) {
    modulated_plasticity_of_members(b, 1, layer, trace, rate, config, modulator);
}

/// [`modulated_plasticity`] of a layer and trace that hold `members` networks (a population's
/// stacked members).
pub(super) fn modulated_plasticity_of_members<B: Backend>(
    b: &B,
    members: usize,
    layer: &mut BioLayer<B>,
    trace: &LayerTrace<B>,
    rate: f32,
    config: &BioConfig,
    modulator: Option<&B::Tensor>,
) {
    let mut terms = hebbian_drive_of_members(b, members, trace, config);
    if let Some(m) = modulator {
        terms.relative = b.zip(&terms.relative, m, Binary::Mul);
        terms.wins = per_neuron_sum(b, members, &terms.relative);
    }
    if config.pattern_per_unit {
        assert_eq!(members, 1, "pattern_per_unit is refused for populations");
        // The pull only reaches present synapses, so rescaling `r_bj` by `‖x_b‖/‖x_b⊙m_j‖` turns
        // `Σ_b r_bj·p_b` into the pull toward each unit's own view of the input; `wins` stays.
        terms.relative = b.zip(&terms.relative, &own_view_gain(b, &trace.input, &layer.mask, config), Binary::Mul);
    }
    let (rows, fan_in) = b.shape(&trace.input);
    let settings = plasticity_settings((rows / members, fan_in), rate, config);
    if members == 1 {
        b.plasticity_step(&mut layer.weights, &mut layer.mask, &terms, &settings);
    } else {
        b.plasticity_step_stacked(members, &mut layer.weights, &mut layer.mask, &terms, &settings);
    }
}

/// [`BioParams::pattern_per_unit`](super::params::BioParams::pattern_per_unit): `‖x_b‖/‖x_b⊙m_j‖`
/// (`batch×neurons`), the factor between the pattern normalized over every input and over unit
/// `j`'s present synapses (`m_j`, its row of the mask). One product of the input with the mask.
pub(super) fn own_view_gain<B: Backend>(b: &B, input: &B::Tensor, mask: &B::Tensor, config: &BioConfig) -> B::Tensor {
    let seen = match config.scaling_norm {
        ScalingNorm::L1 => b.matmul(&b.map(input, Unary::Abs), false, mask, true),
        ScalingNorm::L2 => b.map(&b.matmul(&b.map(input, Unary::Square), false, mask, true), Unary::Sqrt),
    };
    b.zip(&b.map(&guard(b, &seen), Unary::Recip), &row_norm(b, input, config.scaling_norm), Binary::Mul)
}

/// Readout gating ([`BioParams::readout_gating`](super::params::BioParams::readout_gating)): `m_bj = 1`
/// when unit `j`'s readout synapse onto sample `b`'s class is above the unit's mean synapse over
/// the classes, `V[y_b, j] > mean_c V[c, j]`, else `−κ` (`batch×neurons`).
pub fn readout_votes<B: Backend>(b: &B, readout: &Readout<B>, labels: &[usize], kappa: f32) -> B::Tensor {
    let (classes, _) = b.shape(&readout.weights);
    let onto_true = b.matmul(&one_hot(b, labels, classes), false, &readout.weights, false);
    let mean = b.reduce(&readout.weights, Dim::PerCol, Reduce::Mean);
    let votes = b.map(&b.zip(&onto_true, &mean, Binary::Sub), Unary::Step);
    b.map(&b.map(&votes, Unary::Scale(1.0 + kappa)), Unary::Offset(-kappa))
}

/// Class assemblies ([`BioParams::class_assemblies`](super::params::BioParams::class_assemblies)):
/// the layer's trace with its activity replaced by the label-gated competition, for the plasticity
/// step only. Unit `j` belongs to class `j mod C`; sample `b` lets only the units of its class `y_b`
/// compete, on the same drive `u`: `u'_bj = u_bj` in the assembly and `u_bj − 10⁴` outside it,
/// `θ'_b` the `(k_a+1)`-th largest `u'_b`, `y'_bj = relu(u'_bj − θ'_b)` with
/// `k_a = max(1, round(ρ·N/C))`. Every other unit's signal is exactly zero, so a sample never moves
/// another class's units. `None` when the layer has fewer units than there are classes (a class
/// would have no assembly).
pub fn assembly_trace<B: Backend>(
    b: &B,
    trace: &LayerTrace<B>,
    labels: &[usize],
    classes: usize,
    config: &BioConfig,
) -> Option<Assembly<B>> {
    let (batch, neurons) = b.shape(&trace.drive);
    if neurons < classes || classes == 0 {
        return None;
    }
    let winners = ((config.active_fraction * neurons as f32 / classes as f32).round() as usize).max(1);
    let member = b.upload(&Matrix::from_fn(batch, neurons, |i, j| if j % classes == labels[i] { 1.0 } else { 0.0 }));
    let outside = b.map(&member, Unary::Offset(-1.0));
    let gated = b.lincomb(1.0, &b.zip(&trace.drive, &member, Binary::Mul), 1e4, &outside);
    // Ties at the threshold stay silent, as in the forward pass; `k_a + 1 ≤ N` since `k_a ≤ N/C`.
    let threshold = b.row_kth_largest(&gated, (winners + 1).min(neurons));
    let activity = b.map(&b.zip(&gated, &threshold, Binary::Sub), Unary::Relu);
    Some(Assembly { trace: LayerTrace { drive: gated, threshold, activity, ..trace.clone() }, member })
}

/// The label-gated competition of one batch ([`assembly_trace`]).
pub struct Assembly<B: Backend> {
    /// The layer's trace with the gated drive, threshold and activity.
    pub trace: LayerTrace<B>,
    /// `[j mod C = y_b]` (`batch×neurons`): which units sample `b` may reach.
    pub member: B::Tensor,
}

/// Homeostasis of class assemblies: each unit's running rate counts only the samples of its own
/// class, `r_j ← r_j + τ·(f_j − r_j)` with `f_j` the fraction of them it won in the gated
/// competition, and `b_j ← b_j + η_h(ρ − r_j)`, both only when the batch holds its class. A unit
/// whose class is absent keeps its rate and excitability (it is not silent, it is not asked), and
/// within an assembly the units share its class's inputs evenly.
pub fn assembly_homeostasis<B: Backend>(
    b: &B,
    layer: &mut BioLayer<B>,
    assembly: &Assembly<B>,
    rate: f32,
    config: &BioConfig,
) {
    let asked = b.reduce(&assembly.member, Dim::PerCol, Reduce::Sum);
    let present = b.map(&asked, Unary::Step);
    let won = b.reduce(&b.map(&assembly.trace.activity, Unary::Step), Dim::PerCol, Reduce::Sum);
    let (_, neurons) = b.shape(&asked);
    let fraction = b.zip(&won, &b.zip(&asked, &b.full(1, neurons, 1.0), Binary::Max), Binary::Div);
    let moved = b.zip(&present, &b.lincomb(1.0, &fraction, -1.0, &layer.rate), Binary::Mul);
    layer.rate = b.lincomb(1.0, &layer.rate, config.rate_smoothing, &moved);
    let error = b.map(&b.map(&layer.rate, Unary::Scale(-1.0)), Unary::Offset(config.active_fraction));
    layer.bias = b.lincomb(1.0, &layer.bias, rate, &b.zip(&present, &error, Binary::Mul));
}

/// The scalars of one [`PlasticityStep`] for a layer fed `(batch, fan_in)` inputs.
pub fn plasticity_settings((batch, fan_in): (usize, usize), rate: f32, config: &BioConfig) -> PlasticityStep {
    // Normalized entries are of order 1/D (L1) or 1/√D (L2): scale the step so η means the same.
    let typical = match config.scaling_norm {
        ScalingNorm::L1 => fan_in as f32,
        ScalingNorm::L2 => (fan_in as f32).sqrt(),
    };
    let m = &config.mechanisms;
    PlasticityStep {
        step: rate * typical / (batch as f32 * config.active_fraction),
        norm: config.scaling_norm,
        signed: config.hidden_init != InitSign::Positive,
        change: if m.multiplicative {
            WeightChange::Multiplicative
        } else {
            WeightChange::Additive { unit: target_total(config, fan_in) / typical }
        },
        prune_below: m.structural.then_some(config.prune_below),
        scale_to: m.synaptic_scaling.then_some(target_total(config, fan_in)),
    }
}

/// Random regrowth of removed synapses: each absent synapse returns with probability `p`, at
/// `2·prune_below` times the neuron's mean weight, with the sign its neuron's init gave it (positive).
pub fn regrow<B: Backend>(b: &B, layer: &mut BioLayer<B>, config: &BioConfig, rng: &mut ChaCha8Rng) {
    let (rows, cols) = b.shape(&layer.weights);
    let p = config.regrow_probability as f64;
    let lottery = Matrix::from_fn(rows, cols, |_, _| if rng.random_bool(p) { 1.0 } else { 0.0 });
    let absent = b.map(&b.map(&layer.mask, Unary::Scale(-1.0)), Unary::Offset(1.0));
    let reborn = b.zip(&absent, &b.upload(&lottery), Binary::Mul);
    let mean = b.download(&b.reduce(&b.map(&layer.weights, Unary::Abs), Dim::All, Reduce::Sum)).get(0, 0)
        / b.download(&b.reduce(&layer.mask, Dim::All, Reduce::Sum)).get(0, 0).max(1.0);
    let fresh = b.map(&reborn, Unary::Scale(2.0 * config.prune_below * mean));
    layer.weights = b.lincomb(1.0, &layer.weights, 1.0, &fresh);
    layer.mask = b.lincomb(1.0, &layer.mask, 1.0, &reborn);
}

/// Metaplasticity ([`BioParams::metaplasticity`]): each unit's plasticity factor
/// `f_j = 1/(1 + A_j/τ)` from the inputs it has won over its life, `A_j` (`usage`), as a
/// `rows×neurons` matrix (every row the same), to multiply a batch's plasticity signal `r_bj` with:
/// that scales the unit's whole Hebbian step, so its rate is `η·f_j`.
pub fn consolidation_factor(usage: &[f32], tau: f32, rows: usize) -> Matrix {
    Matrix::from_fn(rows, usage.len(), |_, j| 1.0 / (1.0 + usage[j] / tau))
}

/// The inputs each unit won in a batch, `Σ_b [y_bj > 0]`, added to its lifetime count `A_j`.
pub fn count_wins<B: Backend>(b: &B, activity: &B::Tensor, usage: &mut Vec<f32>) {
    let won = b.download(&b.reduce(&b.map(activity, Unary::Step), Dim::PerCol, Reduce::Sum));
    usage.resize(won.cols(), 0.0);
    for (j, a) in usage.iter_mut().enumerate() {
        *a += won.get(0, j);
    }
}

/// A homeostatic step (`step`: [`homeostasis`] or [`assembly_homeostasis`]) with each unit's
/// excitability change scaled by its metaplastic factor `f_j` (`factor`, `1×neurons`):
/// `b_j ← b_j + f_j·Δb_j` ([`BioParams::metaplastic_homeostasis`]). The running rate itself is
/// measured as before.
pub fn consolidated_homeostasis<B: Backend>(
    b: &B,
    layer: &mut BioLayer<B>,
    factor: &B::Tensor,
    step: impl FnOnce(&mut BioLayer<B>),
) {
    let before = layer.bias.clone();
    step(layer);
    let change = b.zip(&b.lincomb(1.0, &layer.bias, -1.0, &before), factor, Binary::Mul);
    layer.bias = b.lincomb(1.0, &before, 1.0, &change);
}

/// Homeostatic excitability: the running firing rate `r ← (1−τ)r + τ·mean_b[y > 0]`, and the bias
/// `b ← b + η_h(ρ − r)`, so a silent unit grows more excitable until it fires.
pub fn homeostasis<B: Backend>(b: &B, layer: &mut BioLayer<B>, activity: &B::Tensor, rate: f32, config: &BioConfig) {
    homeostasis_of_members(b, 1, layer, activity, rate, config);
}

/// [`homeostasis`] of a layer that holds `members` networks (a population's stacked members, one
/// rate row each).
pub(super) fn homeostasis_of_members<B: Backend>(
    b: &B,
    members: usize,
    layer: &mut BioLayer<B>,
    activity: &B::Tensor,
    rate: f32,
    config: &BioConfig,
) {
    let fired = reduce_members(b, members, &b.map(activity, Unary::Step), Dim::PerCol, Reduce::Mean);
    let tau = config.rate_smoothing;
    layer.rate = b.lincomb(1.0 - tau, &layer.rate, tau, &fired);
    let error = b.map(&b.map(&layer.rate, Unary::Scale(-1.0)), Unary::Offset(config.active_fraction));
    layer.bias = b.lincomb(1.0, &layer.bias, rate, &error);
}

/// The readout's local update from an error signal `E` (`batch×classes`) and the code `h̃`:
/// sign-preserving exponentiated gradient `V ← V ⊙ exp(η·sign(V) ⊙ Eᵀh̃)` (post-synaptic error ×
/// pre-synaptic activity), or the additive delta rule `V ← V + η·Eᵀh̃` when sign preservation is
/// ablated. The bias follows `c ← c + η·mean_b E`.
pub fn readout_update<B: Backend>(
    b: &B,
    readout: &mut Readout<B>,
    error: &B::Tensor,
    code: &B::Tensor,
    rate: f32,
    sign_preserving: bool,
) {
    readout_update_of_members(b, 1, readout, error, code, rate, sign_preserving);
}

/// [`readout_update`] of a readout that holds `members` networks (a population's stacked members).
pub(super) fn readout_update_of_members<B: Backend>(
    b: &B,
    members: usize,
    readout: &mut Readout<B>,
    error: &B::Tensor,
    code: &B::Tensor,
    rate: f32,
    sign_preserving: bool,
) {
    let batch = b.shape(error).0 / members;
    let hebb = matmul_members(b, members, error, true, code, false);
    if sign_preserving {
        let signed = b.zip(&hebb, &b.map(&readout.weights, Unary::Sign), Binary::Mul);
        b.zip_assign(&mut readout.weights, &b.map(&b.map(&signed, Unary::Scale(rate)), Unary::Exp), Binary::Mul);
    } else {
        readout.weights = b.lincomb(1.0, &readout.weights, rate, &hebb);
    }
    if sign_preserving {
        // Synaptic scaling of the class units too: each keeps Σ|V_c| = N (its initial budget), so the
        // multiplicative update re-allocates synaptic weight instead of inflating it without bound.
        let (_, hidden) = b.shape(&readout.weights);
        let total = b.reduce(&b.map(&readout.weights, Unary::Abs), Dim::PerRow, Reduce::Sum);
        let factor = b.map(&b.map(&guard(b, &total), Unary::Recip), Unary::Scale(hidden as f32));
        b.zip_assign(&mut readout.weights, &factor, Binary::Mul);
    }
    let mean_error = reduce_members(b, members, error, Dim::PerCol, Reduce::Sum);
    readout.bias = b.lincomb(1.0, &readout.bias, rate / batch as f32, &mean_error);
}

/// The taught-class readout's error ([`ReadoutRule::Taught`]): `E_bc = t_bc·(1 − p_bc)`, the delta
/// rule's error on the taught class alone (`batch×classes`); every other class unit gets 0, so
/// classes absent from the current inputs keep their synapses.
pub fn taught_error<B: Backend>(b: &B, labels: &[usize], probs: &B::Tensor) -> B::Tensor {
    let (_, classes) = b.shape(probs);
    let taught = one_hot(b, labels, classes);
    b.zip(&taught, &b.lincomb(1.0, &taught, -1.0, probs), Binary::Mul)
}

/// Node perturbation: an estimate of `t − p` from one random perturbation `ξ ~ N(0, σ²)` of the class
/// units and the change `δ` it causes in each sample's loss: `Ê = −δ·ξ/σ²`. Gradient-free: each class
/// unit needs only its own noise and one global scalar per sample.
pub(super) fn perturbation_error<B: Backend>(
    b: &B,
    logits: &B::Tensor,
    labels: &[usize],
    base_losses: &[f32],
    sigma: f32,
    rng: &mut ChaCha8Rng,
) -> B::Tensor {
    let (batch, classes) = b.shape(logits);
    let normal = Normal::new(0.0f32, sigma).expect("sigma was validated > 0");
    let noise = Matrix::from_fn(batch, classes, |_, _| normal.sample(rng));
    let noise_t = b.upload(&noise);
    let (_, perturbed, _) = softmax_cross_entropy(b, &b.lincomb(1.0, logits, 1.0, &noise_t), labels);
    let delta: Vec<f32> =
        perturbed.iter().zip(base_losses).map(|(after, before)| -(after - before) / (sigma * sigma)).collect();
    b.zip(&noise_t, &b.upload(&Matrix::col_vector(delta)), Binary::Mul)
}
