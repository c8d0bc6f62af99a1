//! The `bio` trainer: its schedule, its step and its state.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::model::{BioLayer, BioNet};
use super::params::{BIO_COPIES_PER_WEIGHT, BioConfig, BioParams, ReadoutRule};
use super::plasticity::{
    assembly_homeostasis, assembly_trace, consolidated_homeostasis, consolidation_factor, count_wins,
    homeostasis_of_members, modulated_plasticity_of_members, perturbation_error, readout_update_of_members,
    readout_votes, regrow, taught_error,
};
use crate::backend::{Backend, Binary, Dim, Reduce, Unary, reduce_members};
use crate::error::CoreError;
use crate::forward::Op;
use crate::model::{Classifier, Params, one_hot, softmax_cross_entropy};
use crate::rules::{
    BatchReport, LearningRule, RngState, Rule, RuleOption, RuleState, SavedModel, check_loss, count_correct,
};
use crate::tensor::Matrix;

/// The `bio` trainer: hyper-parameters, the learning-rate schedule and its random stream.
#[derive(Clone, Debug)]
pub struct BioRule {
    pub(super) config: BioConfig,
    /// Multiplier of the readout's learning rate for the current epoch (linear decay).
    pub(super) schedule: f32,
    /// Multiplier of the plastic hidden layers' rate (the same decay, restarted per block when layer-wise).
    pub(super) hebbian_schedule: f32,
    /// The hidden layers that learn in the current epoch, `start..end` (none during consolidation).
    pub(super) plastic_layers: (usize, usize),
    pub(super) regrow_pending: bool,
    pub(super) rng: ChaCha8Rng,
    /// Metaplasticity: the inputs each hidden unit has won over its life, `A_j`, per layer (empty
    /// until the layer first learns; only kept with [`BioParams::metaplasticity`]).
    pub(super) usage: Vec<Vec<f32>>,
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

    /// One step of every network `model` holds (one, or a population's stacked members: `x` and
    /// `labels` then hold each member's batch one after another), with one report per member. The
    /// members share this trainer's schedule; what a member draws from the trainer's random stream
    /// (regrowth, node perturbation) is refused for populations ([`super::population`]).
    pub(super) fn train_members<B: Backend>(
        &mut self,
        model: &mut BioNet<B>,
        x: &B::Tensor,
        labels: &[usize],
    ) -> Result<Vec<BatchReport>, CoreError> {
        let b = model.backend().clone();
        let members = model.members();
        let batch = labels.len() / members;
        let config = self.config.clone();
        let trace = model.trace(x);
        let (probs, losses, _) = softmax_cross_entropy(&b, &trace.logits, labels);
        let mut losses_per_member = Vec::with_capacity(members);
        for p in 0..members {
            let loss = losses[p * batch..(p + 1) * batch].iter().sum::<f32>() / batch.max(1) as f32;
            let what = if members == 1 { "bio readout".to_string() } else { format!("bio readout (member {p})") };
            check_loss(loss, model.classes(), &what)?;
            losses_per_member.push(loss);
        }
        let predicted = b.argmax_rows(&trace.logits);
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
        let active = b.download(&reduce_members(&b, members, &b.map(last, Unary::Step), Dim::All, Reduce::Mean));
        let reports: Vec<BatchReport> = (0..members)
            .map(|p| BatchReport {
                loss: losses_per_member[p],
                correct: count_correct(&predicted[p * batch..(p + 1) * batch], &labels[p * batch..(p + 1) * batch]),
                samples: batch,
                active_fraction: active.get(p, 0),
            })
            .collect();

        let m = &config.mechanisms;
        let regrow_now = std::mem::take(&mut self.regrow_pending) && m.structural;
        let plastic = self.plastic_layers();
        let rate = config.hebbian_rate * self.hebbian_schedule;
        let layers = model.layers.len();
        let classes = model.classes();
        for (i, (layer, t)) in model.layers.iter_mut().zip(&trace.layers).enumerate() {
            if !plastic.contains(&i) {
                continue;
            }
            if regrow_now {
                regrow(&b, layer, &config, &mut self.rng);
            }
            let gate = if i + 1 == layers { last_gate.as_ref().or(modulator.as_ref()) } else { modulator.as_ref() };
            // Class assemblies: the last layer learns from the label-gated competition instead,
            // and its homeostasis asks each unit only about its own class's samples.
            let gated = (config.class_assemblies && i + 1 == layers)
                .then(|| {
                    assembly_trace(&b, t, labels, classes, &config).ok_or_else(|| {
                        CoreError::invalid(
                            "class-assemblies",
                            format!("the last hidden layer needs at least one unit per class ({classes})"),
                        )
                    })
                })
                .transpose()?;
            let learn = gated.as_ref().map_or(t, |a| &a.trace);
            // Metaplasticity: each unit's signal scaled by 1/(1 + A_j/τ), then its wins counted.
            let meta = config.metaplasticity.map(|tau| {
                let (batch, neurons) = b.shape(&learn.activity);
                self.usage.resize(layers, Vec::new());
                self.usage[i].resize(neurons, 0.0);
                let factor = b.upload(&consolidation_factor(&self.usage[i], tau, batch));
                let row = b.upload(&consolidation_factor(&self.usage[i], tau, 1));
                (gate.map_or_else(|| factor.clone(), |g| b.zip(&factor, g, Binary::Mul)), row)
            });
            modulated_plasticity_of_members(
                &b,
                members,
                layer,
                learn,
                rate,
                &config,
                meta.as_ref().map(|(f, _)| f).or(gate),
            );
            if let Some(usage) = config.metaplasticity.and(self.usage.get_mut(i)) {
                count_wins(&b, &learn.activity, usage);
            }
            // Homeostasis regulates the forward code, or with assemblies each unit on its own class.
            let step = |layer: &mut BioLayer<B>| match &gated {
                Some(assembly) => assembly_homeostasis(&b, layer, assembly, config.homeostasis_rate, &config),
                None => homeostasis_of_members(&b, members, layer, &t.activity, config.homeostasis_rate, &config),
            };
            match &meta {
                _ if !m.homeostasis => {}
                Some((_, row)) if config.metaplastic_homeostasis => consolidated_homeostasis(&b, layer, row, step),
                _ => step(layer),
            }
        }

        let error = match config.readout_rule {
            // The assemblies' readout is fixed by construction.
            ReadoutRule::Assembly => return Ok(reports),
            ReadoutRule::DeltaEg => b.lincomb(1.0, &one_hot(&b, labels, model.classes()), -1.0, &probs),
            ReadoutRule::Perturbation => {
                perturbation_error(&b, &trace.logits, labels, &losses, config.perturbation_sigma, &mut self.rng)
            }
            ReadoutRule::Taught => taught_error(&b, labels, &probs),
        };
        let rate = config.readout_rate * self.schedule;
        let kept_bias = (config.readout_rule == ReadoutRule::Taught).then(|| model.readout.bias.clone());
        readout_update_of_members(
            &b,
            members,
            &mut model.readout,
            &error,
            &trace.code,
            rate,
            m.sign_preserving_readout,
        );
        if let Some(bias) = kept_bias {
            model.readout.bias = bias;
        }
        Ok(reports)
    }
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
        let mut reports = self.train_members(model, x, labels)?;
        assert_eq!(reports.len(), 1, "train_batch trains one network; populations train through BioPopulation");
        Ok(reports.remove(0))
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

impl<B: Backend> BioNet<B> {
    /// Backend-free form.
    pub fn to_saved(&self) -> SavedModel {
        SavedModel::of::<BioRule, B>(&self.config, self)
    }
}

impl Rule for BioRule {
    const NAME: &'static str = "bio";
    const SUMMARY: &'static str = "competitive multiplicative Hebbian hidden layers with homeostasis, pruning and a local sign-preserving readout";
    const FORWARD: &'static str = "per hidden layer i: xn = x / (1e-6 + ||x||_2) per row; u = xn @ hidden.i.weight^T + \
hidden.i.bias; theta = per-row threshold (k-winners: (k+1)-th largest u, k = round(active_fraction * width); \
inhibitory: mean(u) + gain * std(u)); x = relu(u - theta). Readout: h = x / (normalization_sigma + sum(x)) per row; \
logits = h @ readout.weight^T + readout.bias. hidden.i.mask is already applied to the weights.";
    const OPTIONS: &'static [RuleOption] = super::params::BIO_OPTIONS;
    const DIVERGENCE_HINT: &'static [&'static str] = &["readout-rate", "hebbian-rate"];
    const LEARNS_FROM_UNLABELLED: bool = true;
    const SCHEDULE_DEPENDS_ON_EPOCHS: bool = true;
    const COPIES_PER_WEIGHT: u64 = BIO_COPIES_PER_WEIGHT;
    type Params = BioParams;
    type Config = BioConfig;

    fn forward_text(config: &BioConfig, input_dim: usize, classes: usize) -> String {
        crate::rules::describe::bio_forward_text(config, input_dim, classes)
    }

    /// `input_eps`, `feedforward_inhibition` (g), `normalization_sigma`, `response_power` and
    /// `threshold`: `{"kind": "k_winners", "k": [k per hidden layer]}`, `{"kind": "inhibitory",
    /// "gain": γ}` or `{"kind": "none"}` (see [`crate::rules::describe::bio_forward_text`]).
    fn forward_pass(config: &BioConfig, _input_dim: usize, _classes: usize) -> Result<Vec<Op>, CoreError> {
        let mut ops = Vec::new();
        for (i, &width) in config.hidden.iter().enumerate() {
            ops.push(Op::L2Normalize { eps: super::model::INPUT_EPS });
            if config.feedforward_inhibition != 0.0 {
                ops.push(Op::SubtractMean { gain: config.feedforward_inhibition });
            }
            ops.push(Op::Linear { weight: format!("hidden.{i}.weight"), bias: Some(format!("hidden.{i}.bias")) });
            ops.push(match (config.mechanisms.competition, config.competition) {
                (false, _) => Op::Relu,
                (true, super::params::Competition::KWinners) => Op::KWinners { k: config.winners(width) },
                (true, super::params::Competition::Inhibitory { gain }) => Op::Inhibitory { gain },
            });
        }
        let n = config.response_power;
        if n != 1.0 {
            ops.push(Op::Power { n });
        }
        ops.push(Op::DivisiveNorm { constant: config.normalization_sigma.powf(n) });
        ops.push(Op::Linear { weight: "readout.weight".into(), bias: Some("readout.bias".into()) });
        Ok(ops)
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
