//! The `bio` rule: competitive, multiplicative Hebbian plasticity with synaptic scaling, homeostasis
//! and structural plasticity in the hidden layers, and a local sign-preserving readout.
//!
//! Each mechanism is a named function with its equation: here, and for the weight-sized ones
//! (Hebbian change, pruning, scaling) in [`crate::backend::PlasticityOps`], which a backend may fuse
//! into one pass. `docs/LEARNING_RULE.md` gives the whole rule and says which properties hold by construction and which must emerge.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use serde::{Deserialize, Serialize};

use super::{BatchReport, LearningRule, RngState, Rule, RuleOption, RuleState, check_loss, count_correct};
use crate::backend::{
    Backend, Binary, Dim, HebbianTerms, PlasticityStep, Reduce, Unary, WeightChange, guard, row_norm,
};
use crate::error::CoreError;
use crate::model::{
    BioLayer, BioNet, Classifier, LayerTrace, Params, Readout, one_hot, softmax_cross_entropy, target_total,
};
use crate::params::{BIO_COPIES_PER_WEIGHT, BioConfig, BioParams, InitSign, ReadoutRule, ScalingNorm};
use crate::tensor::Matrix;

/// The `bio` trainer: hyper-parameters, the learning-rate schedule and its random stream.
#[derive(Clone, Debug)]
pub struct BioRule {
    config: BioConfig,
    /// Multiplier of the readout's learning rate for the current epoch (linear decay).
    schedule: f32,
    /// Multiplier of the plastic hidden layers' rate (the same decay, restarted per block when layer-wise).
    hebbian_schedule: f32,
    /// The hidden layers that learn in the current epoch, `start..end` (none during consolidation).
    plastic_layers: (usize, usize),
    regrow_pending: bool,
    rng: ChaCha8Rng,
    /// Metaplasticity: the inputs each hidden unit has won over its life, `A_j`, per layer (empty
    /// until the layer first learns; only kept with [`BioParams::metaplasticity`]).
    usage: Vec<Vec<f32>>,
}

impl BioRule {
    /// A trainer; `seed` drives node-perturbation noise and synapse regrowth.
    pub fn new(config: BioConfig, seed: u64) -> Self {
        let layers = config.hidden.len();
        Self {
            config,
            schedule: 1.0,
            hebbian_schedule: 1.0,
            plastic_layers: (0, layers),
            regrow_pending: false,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0xB10),
            usage: Vec::new(),
        }
    }

    /// The validated hyper-parameters.
    pub fn config(&self) -> &BioConfig {
        &self.config
    }

    /// Follows the schedule: linear decay of every plasticity rate, `1, 1 − 1/E, …, 1/E`; the hidden
    /// layers frozen in the last `consolidation_epochs` epochs (when `E` is larger than that); with
    /// `layerwise`, the `P` plastic epochs split into one block per layer (layer `l` learns in epochs
    /// `⌈lP/L⌉ … ⌈(l+1)P/L⌉ − 1`, its rate decaying over its own block); and regrowth of pruned
    /// synapses at the start of each plastic epoch after the first. With `hebbian_rate_end`, the
    /// hidden layers' multiplier is geometric instead, `(η_end/η)^(e/(P−1))` over the `P` plastic epochs
    /// (of the layer's block when layer-wise).
    pub fn start_epoch(&mut self, epoch: usize, epochs: usize) {
        let decay = |done: usize, of: usize| 1.0 - done as f32 / of.max(1) as f32;
        let end_ratio = self.config.hebbian_rate_end.map(|end| end / self.config.hebbian_rate);
        let hebbian = |done: usize, of: usize| match end_ratio {
            Some(ratio) => ratio.powf(done as f32 / of.saturating_sub(1).max(1) as f32),
            None => decay(done, of),
        };
        self.schedule = decay(epoch, epochs);
        let consolidation = self.config.consolidation_epochs;
        let plastic_epochs = if epochs <= consolidation { epochs } else { epochs - consolidation };
        let layers = self.config.hidden.len();
        (self.plastic_layers, self.hebbian_schedule) = if epoch >= plastic_epochs {
            ((0, 0), 0.0)
        } else if !self.config.layerwise {
            // Without an end rate the hidden layers keep the readout's decay over all epochs.
            ((0, layers), if end_ratio.is_some() { hebbian(epoch, plastic_epochs) } else { self.schedule })
        } else {
            let layer = epoch * layers / plastic_epochs;
            let block_start = (layer * plastic_epochs).div_ceil(layers);
            let block_end = ((layer + 1) * plastic_epochs).div_ceil(layers);
            ((layer, layer + 1), hebbian(epoch - block_start, block_end - block_start))
        };
        let any_plastic = self.plastic_layers.0 < self.plastic_layers.1;
        self.regrow_pending = any_plastic && epoch > 0 && self.config.regrow_probability > 0.0;
    }

    /// The hidden layers that learn in the current epoch, `start..end`.
    pub fn plastic_layers(&self) -> std::ops::Range<usize> {
        self.plastic_layers.0..self.plastic_layers.1
    }
}

/// Column vector of per-neuron sums of `r` over the batch: `rᵀ·1` (`neurons×1`).
fn per_neuron_sum<B: Backend>(b: &B, r: &B::Tensor) -> B::Tensor {
    let (batch, _) = b.shape(r);
    b.matmul(r, true, &b.full(batch, 1, 1.0), false)
}

/// The pre- and postsynaptic terms of the Hebbian rule for one layer, from its trace: the relative
/// activity `r_bj = y_bj / max_k y_bk` (k-WTA sparse), the normalized presynaptic pattern
/// `p_b = x_b/‖x_b‖` (norm: [`ScalingNorm`]) and each neuron's `wins_j = Σ_b r_bj` (`neurons×1`).
/// The backend's plasticity step forms the pull `Σ_b r_bj·p_b` from them.
pub fn hebbian_drive<B: Backend>(b: &B, trace: &LayerTrace<B>, config: &BioConfig) -> HebbianTerms<B::Tensor> {
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
    let wins = per_neuron_sum(b, &relative);
    HebbianTerms { relative, pattern, wins }
}

/// Two populations ([`BioParams::fast_fraction`](crate::params::BioParams::fast_fraction)): each
/// unit's Hebbian rate as a multiple of `hebbian_rate` (`1×neurons`), the fast units first; `None`
/// with one population. Scaling a unit's plasticity signal scales its whole step (the pull toward
/// the input and the decay of its normalized weights alike), so this is exactly a per-unit rate.
fn population_rates<B: Backend>(b: &B, neurons: usize, config: &BioConfig) -> Option<B::Tensor> {
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
fn near_losers<B: Backend>(b: &B, trace: &LayerTrace<B>, config: &BioConfig) -> B::Tensor {
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
/// from it ([`BioParams::reward_modulation`](crate::params::BioParams::reward_modulation)).
pub fn modulated_plasticity<B: Backend>(
    b: &B,
    layer: &mut BioLayer<B>,
    trace: &LayerTrace<B>,
    rate: f32,
    config: &BioConfig,
    modulator: Option<&B::Tensor>,
) {
    let mut terms = hebbian_drive(b, trace, config);
    if let Some(m) = modulator {
        terms.relative = b.zip(&terms.relative, m, Binary::Mul);
        terms.wins = per_neuron_sum(b, &terms.relative);
    }
    if config.pattern_per_unit {
        // The pull only reaches present synapses, so rescaling `r_bj` by `‖x_b‖/‖x_b⊙m_j‖` turns
        // `Σ_b r_bj·p_b` into the pull toward each unit's own view of the input; `wins` stays.
        terms.relative = b.zip(&terms.relative, &own_view_gain(b, &trace.input, &layer.mask, config), Binary::Mul);
    }
    let settings = plasticity_settings(b.shape(&trace.input), rate, config);
    b.plasticity_step(&mut layer.weights, &mut layer.mask, &terms, &settings);
}

/// [`BioParams::pattern_per_unit`](crate::params::BioParams::pattern_per_unit): `‖x_b‖/‖x_b⊙m_j‖`
/// (`batch×neurons`), the factor between the pattern normalized over every input and over unit
/// `j`'s present synapses (`m_j`, its row of the mask). One product of the input with the mask.
fn own_view_gain<B: Backend>(b: &B, input: &B::Tensor, mask: &B::Tensor, config: &BioConfig) -> B::Tensor {
    let seen = match config.scaling_norm {
        ScalingNorm::L1 => b.matmul(&b.map(input, Unary::Abs), false, mask, true),
        ScalingNorm::L2 => b.map(&b.matmul(&b.map(input, Unary::Square), false, mask, true), Unary::Sqrt),
    };
    b.zip(&b.map(&guard(b, &seen), Unary::Recip), &row_norm(b, input, config.scaling_norm), Binary::Mul)
}

/// Readout gating ([`BioParams::readout_gating`](crate::params::BioParams::readout_gating)): `m_bj = 1`
/// when unit `j`'s readout synapse onto sample `b`'s class is above the unit's mean synapse over
/// the classes, `V[y_b, j] > mean_c V[c, j]`, else `−κ` (`batch×neurons`).
pub fn readout_votes<B: Backend>(b: &B, readout: &Readout<B>, labels: &[usize], kappa: f32) -> B::Tensor {
    let (classes, _) = b.shape(&readout.weights);
    let onto_true = b.matmul(&one_hot(b, labels, classes), false, &readout.weights, false);
    let mean = b.reduce(&readout.weights, Dim::PerCol, Reduce::Mean);
    let votes = b.map(&b.zip(&onto_true, &mean, Binary::Sub), Unary::Step);
    b.map(&b.map(&votes, Unary::Scale(1.0 + kappa)), Unary::Offset(-kappa))
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

/// [`homeostasis`] with each unit's excitability change scaled by its metaplastic factor `f_j`
/// (`factor`, `1×neurons`): `b_j ← b_j + f_j·η_h(ρ − r_j)` ([`BioParams::metaplastic_homeostasis`]).
/// The running rate itself is measured as before.
pub fn consolidated_homeostasis<B: Backend>(
    b: &B,
    layer: &mut BioLayer<B>,
    activity: &B::Tensor,
    rate: f32,
    config: &BioConfig,
    factor: &B::Tensor,
) {
    let before = layer.bias.clone();
    homeostasis(b, layer, activity, rate, config);
    let change = b.zip(&b.lincomb(1.0, &layer.bias, -1.0, &before), factor, Binary::Mul);
    layer.bias = b.lincomb(1.0, &before, 1.0, &change);
}

/// Homeostatic excitability: the running firing rate `r ← (1−τ)r + τ·mean_b[y > 0]`, and the bias
/// `b ← b + η_h(ρ − r)`, so a silent unit grows more excitable until it fires.
pub fn homeostasis<B: Backend>(b: &B, layer: &mut BioLayer<B>, activity: &B::Tensor, rate: f32, config: &BioConfig) {
    let fired = b.reduce(&b.map(activity, Unary::Step), Dim::PerCol, Reduce::Mean);
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
    let (batch, _) = b.shape(error);
    let hebb = b.matmul(error, true, code, false);
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
    let mean_error = b.reduce(error, Dim::PerCol, Reduce::Sum);
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
fn perturbation_error<B: Backend>(
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

impl<B: Backend> LearningRule<B> for BioRule {
    type Model = BioNet<B>;

    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn init_model(&self, backend: &B, input_dim: usize, classes: usize, seed: u64) -> BioNet<B> {
        BioNet::init(backend, self.config.clone(), input_dim, classes, seed)
    }

    fn model_from_params(
        &self,
        backend: &B,
        input_dim: usize,
        classes: usize,
        params: &Params,
    ) -> Result<BioNet<B>, CoreError> {
        BioNet::from_params(backend, self.config.clone(), input_dim, classes, params)
    }

    fn start_epoch(&mut self, epoch: usize, epochs: usize) {
        BioRule::start_epoch(self, epoch, epochs);
    }

    fn train_batch(
        &mut self,
        model: &mut BioNet<B>,
        x: &B::Tensor,
        labels: &[usize],
    ) -> Result<BatchReport, CoreError> {
        let b = model.backend().clone();
        let config = self.config.clone();
        let trace = model.trace(x);
        let (probs, losses, _) = softmax_cross_entropy(&b, &trace.logits, labels);
        let loss = losses.iter().sum::<f32>() / labels.len().max(1) as f32;
        check_loss(loss, model.classes(), "bio readout")?;
        let predicted = b.argmax_rows(&trace.logits);
        let correct = count_correct(&predicted, labels);
        // The third factor: one global reward signal per sample, broadcast to every hidden layer.
        let modulator = config.reward_modulation.map(|kappa| {
            b.upload(&Matrix::from_fn(labels.len(), 1, |i, _| if predicted[i] == labels[i] { 1.0 } else { -kappa }))
        });
        // The last hidden layer (the readout's input) may also be gated per unit by its own vote.
        let last_gate = config.readout_gating.map(|kappa| {
            let votes = readout_votes(&b, &model.readout, labels, kappa);
            match &modulator {
                Some(m) => b.zip(&votes, m, Binary::Mul),
                None => votes,
            }
        });
        let last = &trace.layers.last().expect("at least one hidden layer").activity;
        let active_fraction = b.download(&b.reduce(&b.map(last, Unary::Step), Dim::All, Reduce::Mean)).get(0, 0);

        let m = &config.mechanisms;
        let regrow_now = std::mem::take(&mut self.regrow_pending) && m.structural;
        let plastic = self.plastic_layers();
        let rate = config.hebbian_rate * self.hebbian_schedule;
        let layers = model.layers.len();
        for (i, (layer, t)) in model.layers.iter_mut().zip(&trace.layers).enumerate() {
            if !plastic.contains(&i) {
                continue;
            }
            if regrow_now {
                regrow(&b, layer, &config, &mut self.rng);
            }
            let gate = if i + 1 == layers { last_gate.as_ref().or(modulator.as_ref()) } else { modulator.as_ref() };
            // Metaplasticity: each unit's signal scaled by 1/(1 + A_j/τ), then its wins counted.
            let meta = config.metaplasticity.map(|tau| {
                let (batch, neurons) = b.shape(&t.activity);
                self.usage.resize(layers, Vec::new());
                self.usage[i].resize(neurons, 0.0);
                let factor = b.upload(&consolidation_factor(&self.usage[i], tau, batch));
                let row = b.upload(&consolidation_factor(&self.usage[i], tau, 1));
                (gate.map_or_else(|| factor.clone(), |g| b.zip(&factor, g, Binary::Mul)), row)
            });
            modulated_plasticity(&b, layer, t, rate, &config, meta.as_ref().map(|(f, _)| f).or(gate));
            if let Some(usage) = config.metaplasticity.and(self.usage.get_mut(i)) {
                count_wins(&b, &t.activity, usage);
            }
            match &meta {
                Some((_, row)) if m.homeostasis && config.metaplastic_homeostasis => {
                    consolidated_homeostasis(&b, layer, &t.activity, config.homeostasis_rate, &config, row);
                }
                _ if m.homeostasis => homeostasis(&b, layer, &t.activity, config.homeostasis_rate, &config),
                _ => {}
            }
        }

        let error = match config.readout_rule {
            ReadoutRule::DeltaEg => b.lincomb(1.0, &one_hot(&b, labels, model.classes()), -1.0, &probs),
            ReadoutRule::Perturbation => {
                perturbation_error(&b, &trace.logits, labels, &losses, config.perturbation_sigma, &mut self.rng)
            }
            ReadoutRule::Taught => taught_error(&b, labels, &probs),
        };
        let rate = config.readout_rate * self.schedule;
        let kept_bias = (config.readout_rule == ReadoutRule::Taught).then(|| model.readout.bias.clone());
        readout_update(&b, &mut model.readout, &error, &trace.code, rate, m.sign_preserving_readout);
        if let Some(bias) = kept_bias {
            model.readout.bias = bias;
        }
        Ok(BatchReport { loss, correct, samples: labels.len(), active_fraction })
    }

    fn save_state(&self, _model: &BioNet<B>) -> RuleState {
        let state = BioState {
            schedule: self.schedule,
            hebbian_schedule: self.hebbian_schedule,
            plastic_layers: self.plastic_layers,
            regrow_pending: self.regrow_pending,
            rng: RngState::capture(&self.rng),
        };
        if self.config.metaplasticity.is_some() {
            // Only then is there more to carry, so every other run's state keeps its old encoding.
            return RuleState::encode(Self::NAME, &MetaplasticState { state, usage: self.usage.clone() });
        }
        RuleState::encode(Self::NAME, &state)
    }

    fn restore_state(&mut self, _model: &BioNet<B>, state: RuleState) -> Result<(), CoreError> {
        let state = if self.config.metaplasticity.is_some() {
            let MetaplasticState { state, usage } = state.decode(Self::NAME)?;
            self.usage = usage;
            state
        } else {
            state.decode(Self::NAME)?
        };
        let BioState { schedule, hebbian_schedule, plastic_layers, regrow_pending, rng } = state;
        (self.schedule, self.hebbian_schedule, self.plastic_layers) = (schedule, hebbian_schedule, plastic_layers);
        self.regrow_pending = regrow_pending;
        self.rng = rng.restore();
        Ok(())
    }
}

/// [`BioState`] and the units' lifetime wins, with [`BioParams::metaplasticity`].
#[derive(Serialize, Deserialize)]
struct MetaplasticState {
    state: BioState,
    /// `A_j` per layer.
    usage: Vec<Vec<f32>>,
}

/// What [`BioRule`] carries from one batch to the next.
#[derive(Serialize, Deserialize)]
struct BioState {
    /// Learning-rate multiplier of the current epoch (readout).
    schedule: f32,
    /// Learning-rate multiplier of the plastic hidden layers in the current epoch.
    hebbian_schedule: f32,
    /// The hidden layers that are plastic in the current epoch, `start..end`.
    plastic_layers: (usize, usize),
    /// Whether regrowth is still due in the current epoch.
    regrow_pending: bool,
    /// The rule's random stream (noise and regrowth).
    rng: RngState,
}

impl Rule for BioRule {
    const NAME: &'static str = "bio";
    const SUMMARY: &'static str = "competitive multiplicative Hebbian hidden layers with homeostasis, pruning and a local sign-preserving readout";
    const FORWARD: &'static str = "per hidden layer i: xn = x / (1e-6 + ||x||_2) per row; u = xn @ hidden.i.weight^T + \
hidden.i.bias; theta = per-row threshold (k-winners: (k+1)-th largest u, k = round(active_fraction * width); \
inhibitory: mean(u) + gain * std(u)); x = relu(u - theta). Readout: h = x / (normalization_sigma + sum(x)) per row; \
logits = h @ readout.weight^T + readout.bias. hidden.i.mask is already applied to the weights.";
    const OPTIONS: &'static [RuleOption] = crate::params::BIO_OPTIONS;
    const DIVERGENCE_HINT: &'static [&'static str] = &["readout-rate", "hebbian-rate"];
    const LEARNS_FROM_UNLABELLED: bool = true;
    const SCHEDULE_DEPENDS_ON_EPOCHS: bool = true;
    const COPIES_PER_WEIGHT: u64 = BIO_COPIES_PER_WEIGHT;
    type Params = BioParams;
    type Config = BioConfig;

    fn forward_text(config: &BioConfig, input_dim: usize, classes: usize) -> String {
        super::describe::bio_forward_text(config, input_dim, classes)
    }

    /// `input_eps`, `feedforward_inhibition` (g), `normalization_sigma`, `response_power` and
    /// `threshold`: `{"kind": "k_winners", "k": [k per hidden layer]}`, `{"kind": "inhibitory",
    /// "gain": γ}` or `{"kind": "none"}` (see [`super::describe::bio_forward_text`]).
    fn forward_constants(
        config: &BioConfig,
        _input_dim: usize,
        _classes: usize,
    ) -> Result<serde_json::Value, CoreError> {
        use serde_json::json;
        let threshold = if !config.mechanisms.competition {
            json!({ "kind": "none" })
        } else {
            match config.competition {
                crate::params::Competition::KWinners => {
                    let k: Vec<usize> = config.hidden.iter().map(|&n| config.winners(n)).collect();
                    json!({ "kind": "k_winners", "k": k })
                }
                crate::params::Competition::Inhibitory { gain } => json!({ "kind": "inhibitory", "gain": gain }),
            }
        };
        Ok(json!({
            "input_eps": crate::model::INPUT_EPS,
            "feedforward_inhibition": config.feedforward_inhibition,
            "normalization_sigma": config.normalization_sigma,
            "response_power": config.response_power,
            "threshold": threshold,
        }))
    }

    fn set_hidden(params: &mut BioParams, hidden: &[usize]) {
        params.hidden = hidden.to_vec();
    }

    fn check(params: BioParams) -> Result<BioConfig, CoreError> {
        params.check()
    }

    fn hidden(config: &BioConfig) -> &[usize] {
        &config.hidden
    }

    fn new(config: BioConfig, seed: u64) -> Self {
        BioRule::new(config, seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::ReferenceBackend;
    use crate::params::BioParams;

    fn rule(hidden: Vec<usize>, layerwise: bool, consolidation: usize) -> BioRule {
        let params = BioParams { hidden, layerwise, consolidation_epochs: consolidation, ..Default::default() };
        BioRule::new(params.check().expect("valid"), 0)
    }

    /// (plastic layers, Hebbian schedule) for each epoch of a run.
    fn plan(mut r: BioRule, epochs: usize) -> Vec<(std::ops::Range<usize>, f32)> {
        (0..epochs)
            .map(|e| {
                r.start_epoch(e, epochs);
                (r.plastic_layers(), r.hebbian_schedule)
            })
            .collect()
    }

    #[test]
    fn all_layers_learn_until_consolidation() {
        let p = plan(rule(vec![8, 8], false, 1), 4);
        assert_eq!(p.iter().map(|(l, _)| l.clone()).collect::<Vec<_>>(), [0..2, 0..2, 0..2, 0..0]);
        assert_eq!(p.iter().map(|(_, s)| *s).collect::<Vec<_>>(), [1.0, 0.75, 0.5, 0.0]);
    }

    #[test]
    fn an_end_rate_makes_the_hebbian_schedule_geometric() {
        // 0.001 → 0.0001 over 4 plastic epochs (one consolidation epoch after): ×10^(−e/3); the reverse
        // schedule rises the same way; the readout keeps its linear decay.
        let schedule = |start: f32, end: f32| {
            let params = BioParams {
                hidden: vec![8],
                hebbian_rate: start,
                hebbian_rate_end: Some(end),
                consolidation_epochs: 1,
                ..Default::default()
            };
            plan(BioRule::new(params.check().expect("valid"), 0), 5).into_iter().map(|(_, s)| s).collect::<Vec<_>>()
        };
        let close = |got: Vec<f32>, want: [f32; 5]| {
            assert!(got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-5), "{got:?} against {want:?}");
        };
        let third = 10f32.powf(-1.0 / 3.0);
        close(schedule(0.001, 0.0001), [1.0, third, third * third, 0.1, 0.0]);
        close(schedule(0.0001, 0.001), [1.0, 1.0 / third, 1.0 / (third * third), 10.0, 0.0]);
    }

    #[test]
    fn layerwise_blocks_cover_the_plastic_epochs_in_layer_order() {
        // 9 plastic epochs over 2 layers: layer 0 in epochs 0..5, layer 1 in 5..9, then consolidation.
        let p = plan(rule(vec![8, 8], true, 1), 10);
        let layers: Vec<_> = p.iter().map(|(l, _)| l.clone()).collect();
        assert_eq!(layers[..5], [0..1, 0..1, 0..1, 0..1, 0..1]);
        assert_eq!(layers[5..9], [1..2, 1..2, 1..2, 1..2]);
        assert_eq!(layers[9], 0..0);
        // Each block restarts the decay.
        assert_eq!(p[0].1, 1.0);
        assert_eq!(p[5].1, 1.0);
        assert_eq!(p[8].1, 0.25);
    }

    /// The anti-Hebbian push reaches exactly ranks k+1…k+m of each input (distinct drives), and one
    /// rank is the unit at the threshold.
    #[test]
    fn near_losers_are_the_ranks_below_the_winners() {
        let b = ReferenceBackend;
        let (width, k) = (20, 5);
        for ranks in [1, 4, 14, 30] {
            let params = BioParams {
                hidden: vec![width],
                active_fraction: k as f32 / width as f32,
                anti_hebbian: 0.5,
                anti_hebbian_ranks: ranks,
                ..Default::default()
            };
            let config = params.check().expect("valid");
            let net = BioNet::init(&b, config.clone(), 12, 3, 2);
            let x = Matrix::from_fn(6, 12, |i, j| ((i * 5 + j * 7) % 13) as f32 / 12.0 + 0.05 * i as f32);
            let trace = net.trace(&x);
            let t = &trace.layers[0];
            let marks = near_losers(&b, t, &config);
            let reach = (k + ranks).min(width - 1);
            for row in 0..6 {
                let mut order: Vec<usize> = (0..width).collect();
                order.sort_by(|&p, &q| t.drive.get(row, q).total_cmp(&t.drive.get(row, p)));
                for (rank, &unit) in order.iter().enumerate() {
                    let expected = if (k..reach).contains(&rank) { -1.0 } else { 0.0 };
                    assert_eq!(marks.get(row, unit), expected, "ranks {ranks}, row {row}, rank {rank}");
                }
            }
        }
    }

    /// The third factor: a sample whose reward signal is `−1` moves its winners away from it by
    /// exactly the step a `+1` signal moves them toward it (in log space, with pruning and scaling off
    /// so that nothing else changes the weights), and a zero signal leaves them unchanged.
    #[test]
    fn a_negative_reward_reverses_the_hebbian_change() {
        let b = ReferenceBackend;
        let mut params = BioParams { hidden: vec![10], active_fraction: 0.3, hebbian_rate: 0.05, ..Default::default() };
        params.mechanisms.synaptic_scaling = false;
        params.mechanisms.structural = false;
        let config = params.check().expect("valid");
        let net = BioNet::init(&b, config.clone(), 12, 3, 1);
        let x = Matrix::from_fn(6, 12, |i, j| ((i * 7 + j * 3) % 11) as f32 / 10.0 + 0.01);
        let trace = net.trace(&x);
        let log_change = |signal: Option<f32>| {
            let mut layer = net.layers[0].clone();
            let m = signal.map(|s| Matrix::from_fn(6, 1, |_, _| s));
            modulated_plasticity(&b, &mut layer, &trace.layers[0], config.hebbian_rate, &config, m.as_ref());
            Matrix::from_fn(10, 12, |i, j| (layer.weights.get(i, j) / net.layers[0].weights.get(i, j)).ln())
        };
        let (plain, toward, away, none) =
            (log_change(None), log_change(Some(1.0)), log_change(Some(-1.0)), log_change(Some(0.0)));
        let mut moved = 0.0f32;
        for i in 0..10 {
            for j in 0..12 {
                assert!((plain.get(i, j) - toward.get(i, j)).abs() < 1e-6);
                assert!((toward.get(i, j) + away.get(i, j)).abs() < 1e-5, "unit {i}, input {j}");
                assert!(none.get(i, j).abs() < 1e-6);
                moved += toward.get(i, j).abs();
            }
        }
        assert!(moved > 1e-3, "the plain step moved nothing, so the test would prove nothing");
    }

    /// Readout gating: a unit learns from a sample when its synapse onto the sample's class is above
    /// its mean over the classes, and is pushed away (−κ) otherwise.
    #[test]
    fn readout_votes_follow_each_units_synapse_onto_the_true_class() {
        let b = ReferenceBackend;
        // 3 classes × 2 units: unit 0 votes for class 0 (3 > mean 5/3), unit 1 for classes 1 and 2.
        let weights = Matrix::from_fn(3, 2, |c, j| [[3.0, 1.0], [1.0, 2.0], [1.0, 2.0]][c][j]);
        let readout = Readout { weights, bias: Matrix::from_fn(1, 3, |_, _| 0.0) };
        let votes = readout_votes(&b, &readout, &[0, 1, 2], 0.5);
        let want = [[1.0, -0.5], [-0.5, 1.0], [-0.5, 1.0]];
        for (row, w) in want.iter().enumerate() {
            for (j, &expected) in w.iter().enumerate() {
                assert_eq!(votes.get(row, j), expected, "sample {row}, unit {j}");
            }
        }
    }

    /// Two populations: after one batch the fast units' weights are those of a one-population net
    /// at the fast rate and the slow units' those of one at the slow rate (the forward pass, and so
    /// the winners, are the same in all three; each unit's step depends on its own signal only).
    #[test]
    fn each_population_learns_at_its_own_rate() {
        let b = ReferenceBackend;
        let (width, fan_in, fast) = (10, 12, 4);
        let x = Matrix::from_fn(8, fan_in, |i, j| ((i * 7 + j * 3) % 11) as f32 / 10.0);
        let labels: Vec<usize> = (0..8).map(|i| i % 3).collect();
        let trained = |hebbian_rate: f32, fast_fraction: f32, fast_hebbian_rate: f32| {
            let params = BioParams {
                hidden: vec![width],
                active_fraction: 0.3,
                hebbian_rate,
                fast_fraction,
                fast_hebbian_rate,
                ..Default::default()
            };
            let config = params.check().expect("valid");
            let mut net = BioNet::init(&b, config.clone(), fan_in, 3, 1);
            let mut r = BioRule::new(config, 0);
            r.start_epoch(0, 2);
            LearningRule::<ReferenceBackend>::train_batch(&mut r, &mut net, &x, &labels).expect("finite");
            net.layers[0].weights.clone()
        };
        let (slow_rate, fast_rate) = (0.01, 0.1);
        let mixed = trained(slow_rate, fast as f32 / width as f32, fast_rate);
        let all_slow = trained(slow_rate, 0.0, 0.0);
        let all_fast = trained(fast_rate, 0.0, 0.0);
        let start = trained(0.0, 0.0, 0.0);
        let mut learned = [0, 0];
        for j in 0..width {
            let reference = if j < fast { &all_fast } else { &all_slow };
            let mut moved = 0.0f32;
            for i in 0..fan_in {
                let (got, want) = (mixed.get(j, i), reference.get(j, i));
                assert!((got - want).abs() <= 1e-5 * want.abs().max(1e-3), "unit {j}, synapse {i}: {got} vs {want}");
                moved += (got - start.get(j, i)).abs();
            }
            learned[usize::from(j >= fast)] += usize::from(moved > 1e-4);
        }
        // Units that won nothing in this batch do not move; each population must have learners.
        assert!(learned[0] > 0 && learned[1] > 0, "units that learned (fast, slow): {learned:?}");
    }

    /// Metaplasticity: a unit that has won `A_j = 3τ` inputs learns at a quarter of the rate (its
    /// weights after a batch equal those of a plain net at `η/4`), a unit that has won none at the
    /// full rate; its homeostatic change is scaled alike with `metaplastic_homeostasis`; and each
    /// unit's lifetime count grows by the inputs it won.
    #[test]
    fn a_much_used_unit_learns_and_adapts_at_a_consolidated_rate() {
        let b = ReferenceBackend;
        let (width, fan_in, used, tau) = (10, 12, 5, 4.0);
        let x = Matrix::from_fn(8, fan_in, |i, j| ((i * 7 + j * 3) % 11) as f32 / 10.0);
        let labels: Vec<usize> = (0..8).map(|i| i % 3).collect();
        let trained = |hebbian_rate: f32, metaplasticity: Option<f32>, metaplastic_homeostasis: bool| {
            let params = BioParams {
                hidden: vec![width],
                active_fraction: 0.3,
                hebbian_rate,
                metaplasticity,
                metaplastic_homeostasis,
                ..Default::default()
            };
            let config = params.check().expect("valid");
            let mut net = BioNet::init(&b, config.clone(), fan_in, 3, 1);
            let mut r = BioRule::new(config, 0);
            if metaplasticity.is_some() {
                r.usage = vec![(0..width).map(|j| if j < used { 3.0 * tau } else { 0.0 }).collect()];
            }
            r.start_epoch(0, 2);
            LearningRule::<ReferenceBackend>::train_batch(&mut r, &mut net, &x, &labels).expect("finite");
            (net.layers[0].weights.clone(), net.layers[0].bias.clone(), r.usage)
        };
        let rate = 0.1;
        let (meta, meta_bias, usage) = trained(rate, Some(tau), true);
        let (full, full_bias, _) = trained(rate, None, false);
        let (quarter, _, _) = trained(rate / 4.0, None, false);
        let (start, _, _) = trained(0.0, None, false);
        let untrained = {
            let params = BioParams { hidden: vec![width], active_fraction: 0.3, ..Default::default() };
            BioNet::init(&b, params.check().expect("valid"), fan_in, 3, 1)
        };
        let (start_bias, start_activity) = (&untrained.layers[0].bias, untrained.trace(&x).layers[0].activity.clone());
        let (_, plain_bias, _) = trained(rate, Some(tau), false);
        let mut learned = [0, 0];
        for j in 0..width {
            let (reference, factor) = if j < used { (&quarter, 0.25) } else { (&full, 1.0) };
            let mut moved = 0.0f32;
            for i in 0..fan_in {
                let (got, want) = (meta.get(j, i), reference.get(j, i));
                assert!((got - want).abs() <= 1e-5 * want.abs().max(1e-3), "unit {j}, synapse {i}: {got} vs {want}");
                moved += (got - start.get(j, i)).abs();
            }
            learned[usize::from(j >= used)] += usize::from(moved > 1e-4);
            let want = start_bias.get(0, j) + factor * (full_bias.get(0, j) - start_bias.get(0, j));
            assert!((meta_bias.get(0, j) - want).abs() <= 1e-6, "unit {j}: bias {} vs {want}", meta_bias.get(0, j));
            // Without metaplastic homeostasis the excitability changes as in a plain net.
            assert_eq!(plain_bias.get(0, j), full_bias.get(0, j), "unit {j}");
            let won = (0..8).filter(|&s| start_activity.get(s, j) > 0.0).count() as f32;
            let before = if j < used { 3.0 * tau } else { 0.0 };
            assert_eq!(usage[0][j], before + won, "unit {j}: lifetime wins");
        }
        assert!(learned[0] > 0 && learned[1] > 0, "units that learned (used, fresh): {learned:?}");
        assert!(usage[0].iter().zip(0..).any(|(&a, j)| a > if j < used { 3.0 * tau } else { 0.0 }), "some unit won");
    }

    /// The taught readout: a batch of one class leaves every other class unit's synapses and every
    /// bias as they were, and moves the taught class's synapses (the delta rule moves all of them).
    #[test]
    fn the_taught_readout_leaves_absent_classes_alone() {
        let b = ReferenceBackend;
        let x = Matrix::from_fn(8, 12, |i, j| ((i * 7 + j * 3) % 11) as f32 / 10.0);
        let labels = vec![1; 8];
        let readout_after = |readout_rule: ReadoutRule| {
            let params = BioParams { hidden: vec![10], active_fraction: 0.3, readout_rule, ..Default::default() };
            let config = params.check().expect("valid");
            let mut net = BioNet::init(&b, config.clone(), 12, 3, 1);
            let mut r = BioRule::new(config, 0);
            r.start_epoch(0, 2);
            // The first update also brings every class unit to its synaptic budget; watch the second.
            LearningRule::<ReferenceBackend>::train_batch(&mut r, &mut net, &x, &labels).expect("finite");
            let before = (net.readout.weights.clone(), net.readout.bias.clone());
            LearningRule::<ReferenceBackend>::train_batch(&mut r, &mut net, &x, &labels).expect("finite");
            (before, (net.readout.weights.clone(), net.readout.bias.clone()))
        };
        // Beyond rounding: class units are rescaled to their synaptic budget after every update.
        let row_moved =
            |a: &Matrix, b: &Matrix, c: usize| (0..a.cols()).any(|j| (a.get(c, j) - b.get(c, j)).abs() > 1e-5);
        let ((w0, b0), (w1, b1)) = readout_after(ReadoutRule::Taught);
        assert!(row_moved(&w0, &w1, 1), "the taught class learns");
        assert!(!row_moved(&w0, &w1, 0) && !row_moved(&w0, &w1, 2), "absent classes keep their synapses");
        assert_eq!(b0, b1, "biases stay");
        let ((w0, _), (w1, _)) = readout_after(ReadoutRule::DeltaEg);
        assert!(row_moved(&w0, &w1, 0) && row_moved(&w0, &w1, 2), "the delta rule pushes absent classes down");
    }

    #[test]
    fn a_unit_normalizing_over_its_own_synapses_learns_as_if_it_saw_only_them() {
        // Every unit keeps the first 5 of 12 inputs. With the pattern normalized per unit, learning
        // from x must equal learning, with the pattern over all inputs, from x with the rest zeroed:
        // the drive is the same (absent synapses are zero) and so is each unit's view of the input.
        let b = ReferenceBackend;
        let (width, fan_in, seen) = (10, 12, 5);
        let x = Matrix::from_fn(8, fan_in, |i, j| ((i * 7 + j * 3) % 11) as f32 / 10.0 + 0.05);
        let window = Matrix::from_fn(8, fan_in, |i, j| if j < seen { x.get(i, j) } else { 0.0 });
        let labels: Vec<usize> = (0..8).map(|i| i % 3).collect();
        for scaling_norm in [ScalingNorm::L1, ScalingNorm::L2] {
            let trained = |input: &Matrix, pattern_per_unit: bool| {
                let params = BioParams {
                    hidden: vec![width],
                    active_fraction: 0.3,
                    hebbian_rate: 0.05,
                    scaling_norm,
                    pattern_per_unit,
                    ..Default::default()
                };
                let config = params.check().expect("valid");
                let mut net = BioNet::init(&b, config.clone(), fan_in, 3, 1);
                for j in 0..width {
                    for i in seen..fan_in {
                        net.layers[0].weights.set(j, i, 0.0);
                        net.layers[0].mask.set(j, i, 0.0);
                    }
                }
                let mut r = BioRule::new(config, 0);
                r.start_epoch(0, 2);
                LearningRule::<ReferenceBackend>::train_batch(&mut r, &mut net, input, &labels).expect("finite");
                net.layers[0].weights.clone()
            };
            let own = trained(&x, true);
            let windowed = trained(&window, false);
            let all_inputs = trained(&x, false);
            let mut differs = 0.0f32;
            for j in 0..width {
                for i in 0..fan_in {
                    let (got, want) = (own.get(j, i), windowed.get(j, i));
                    assert!(
                        (got - want).abs() <= 1e-5 * want.abs().max(1e-3),
                        "{scaling_norm:?} {j},{i}: {got} vs {want}"
                    );
                    differs = differs.max((got - all_inputs.get(j, i)).abs());
                }
            }
            // And the switch matters: over all inputs the same unit learns something else.
            assert!(differs > 1e-4, "{scaling_norm:?}: per-unit normalization changed nothing ({differs})");
        }
    }

    #[test]
    fn frozen_layers_do_not_change() {
        let params = BioParams { hidden: vec![6, 5], layerwise: true, consolidation_epochs: 0, ..Default::default() };
        let config = params.check().expect("valid");
        let b = ReferenceBackend;
        let mut net = BioNet::init(&b, config.clone(), 12, 3, 1);
        let mut r = BioRule::new(config, 0);
        let x = Matrix::from_fn(8, 12, |i, j| ((i * 7 + j * 3) % 11) as f32 / 10.0);
        let labels: Vec<usize> = (0..8).map(|i| i % 3).collect();
        let before = net.to_params();
        r.start_epoch(0, 2);
        LearningRule::<ReferenceBackend>::train_batch(&mut r, &mut net, &x, &labels).expect("finite");
        let after = net.to_params();
        let changed =
            |name: &str| before.tensors.iter().zip(&after.tensors).any(|((n, a), (_, b))| n.contains(name) && a != b);
        assert!(changed("hidden.0"), "layer 0 learns in its block");
        assert!(!changed("hidden.1"), "layer 1 is frozen in layer 0's block");
    }
}
