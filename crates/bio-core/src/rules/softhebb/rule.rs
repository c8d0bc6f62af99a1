//! The SoftHebb plasticity and trainer.

use serde::{Deserialize, Serialize};

use super::{SOFTHEBB_INPUT_EPS, SoftHebbConfig, SoftHebbNet, SoftHebbParams};
use crate::backend::{Backend, Binary, Dim, Reduce, Unary};
use crate::error::CoreError;
use crate::model::Params;
use crate::rules::frozen::{ReadoutState, ReadoutTrainer, Schedule, host_mean, score_batch};
use crate::rules::{BatchReport, LearningRule, Rule, RuleOption, RuleState};

/// `t / max|t|` (the whole tensor; a zero tensor stays zero).
fn by_largest<B: Backend>(b: &B, t: &B::Tensor) -> B::Tensor {
    let largest = b.map(&b.reduce(&b.map(t, Unary::Abs), Dim::All, Reduce::Max), Unary::Clamp(1e-30, f32::MAX));
    b.zip(t, &largest, Binary::Div)
}

/// One SoftHebb plasticity step of the hidden layer from the batch's normalized inputs `x̂` and
/// posteriors `y`, with rate `rate` (see the module docs for the equations).
pub fn softhebb_plasticity<B: Backend>(
    b: &B,
    net: &mut SoftHebbNet<B>,
    normalized: &B::Tensor,
    posterior: &B::Tensor,
    rate: f32,
) {
    let beta = net.config.beta;
    let (batch, _) = b.shape(normalized);
    let ones = b.full(batch, 1, 1.0);
    // u without the bias, and Σ_b y_bk·u_bk per unit (N×1).
    let u = b.matmul(normalized, false, &net.weights, true);
    let decay = b.matmul(&b.zip(posterior, &u, Binary::Mul), true, &ones, false);
    let dw =
        b.lincomb(1.0, &b.matmul(posterior, true, normalized, false), -1.0, &b.zip(&net.weights, &decay, Binary::Mul));
    // Σ_b (y_bk·e^(−β b_k) − 1) = e^(−β b_k)·Σ_b y_bk − B (1×N).
    let inv_prior = b.map(&b.map(&net.bias, Unary::Scale(-beta)), Unary::Clamp(-80.0, 80.0));
    let usage = b.reduce(posterior, Dim::PerCol, Reduce::Sum);
    let db = b.map(&b.zip(&usage, &b.map(&inv_prior, Unary::Exp), Binary::Mul), Unary::Offset(-(batch as f32)));
    net.weights = b.lincomb(1.0, &net.weights, rate, &by_largest(b, &dw));
    net.bias = b.lincomb(1.0, &net.bias, rate / beta, &by_largest(b, &db));
}

/// The host form of a [`SoftHebbRule`]'s state between batches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SoftHebbState {
    /// The current epoch's schedule.
    pub schedule: Schedule,
    /// The readout's optimizer.
    pub readout: ReadoutState,
}

/// The `softhebb` trainer: the schedule and the readout's Adam state. It draws no random numbers.
#[derive(Clone, Debug)]
pub struct SoftHebbRule<B: Backend> {
    config: SoftHebbConfig,
    schedule: Schedule,
    trainer: ReadoutTrainer<B>,
}

impl<B: Backend> SoftHebbRule<B> {
    /// A trainer with a fresh schedule and optimizer.
    pub fn new(config: SoftHebbConfig) -> Self {
        Self { config, schedule: Schedule::default(), trainer: ReadoutTrainer::default() }
    }

    /// The validated hyper-parameters.
    pub fn config(&self) -> &SoftHebbConfig {
        &self.config
    }

    /// The current epoch's schedule.
    pub fn schedule(&self) -> Schedule {
        self.schedule
    }
}

impl<B: Backend> LearningRule<B> for SoftHebbRule<B> {
    type Model = SoftHebbNet<B>;

    fn name(&self) -> &'static str {
        <Self as Rule>::NAME
    }

    fn init_model(&self, backend: &B, input_dim: usize, classes: usize, seed: u64) -> SoftHebbNet<B> {
        SoftHebbNet::init(backend, self.config.clone(), input_dim, classes, seed)
    }

    fn model_from_params(
        &self,
        backend: &B,
        input_dim: usize,
        classes: usize,
        params: &Params,
    ) -> Result<SoftHebbNet<B>, CoreError> {
        SoftHebbNet::from_params(backend, self.config.clone(), input_dim, classes, params)
    }

    /// Follows the schedule ([`Schedule::at`]).
    fn start_epoch(&mut self, epoch: usize, epochs: usize) {
        self.schedule = Schedule::at(self.config.hebbian_rate, self.config.hidden_epochs, epoch, epochs);
    }

    /// One batch: in the unsupervised phase a SoftHebb step of the hidden layer, in the supervised
    /// phase an Adam step of the readout. The report is measured before the update; its active
    /// fraction counts the units whose `y` exceeds the uniform `1/N`.
    fn train_batch(
        &mut self,
        model: &mut SoftHebbNet<B>,
        x: &B::Tensor,
        labels: &[usize],
    ) -> Result<BatchReport, CoreError> {
        let b = model.backend.clone();
        let t = model.trace(x);
        let logits = model.readout.logits(&b, &t.posterior);
        let (loss, correct, dlogits) = score_batch(&b, &logits, labels, model.classes, "softhebb readout")?;
        let (_, n) = b.shape(&t.posterior);
        let uniform = b.full(1, 1, 1.0 / n as f32);
        let active_fraction = host_mean(&b, &b.zip(&t.posterior, &uniform, Binary::Greater));
        if self.schedule.unsupervised {
            if self.schedule.rate > 0.0 {
                softhebb_plasticity(&b, model, &t.normalized, &t.posterior, self.schedule.rate);
            }
        } else {
            self.trainer.step(&b, &mut model.readout, &t.posterior, &dlogits, self.config.readout_rate);
        }
        Ok(BatchReport { loss, correct, samples: labels.len(), active_fraction })
    }

    fn save_state(&self, model: &SoftHebbNet<B>) -> RuleState {
        let state = SoftHebbState { schedule: self.schedule, readout: self.trainer.save(&model.backend) };
        RuleState::encode(<Self as Rule>::NAME, &state)
    }

    fn restore_state(&mut self, model: &SoftHebbNet<B>, state: RuleState) -> Result<(), CoreError> {
        let state: SoftHebbState = state.decode(<Self as Rule>::NAME)?;
        self.trainer.restore(&model.backend, &model.readout, state.readout)?;
        self.schedule = state.schedule;
        Ok(())
    }
}

/// Peak host copies of the hidden weights while training: `W`, `Yᵀx̂`, `W ⊙ Σ yu`, `ΔW`, `|ΔW|`
/// and `ΔW/max` (some freed before the next is made).
pub const SOFTHEBB_COPIES_PER_WEIGHT: u64 = 6;

impl<B: Backend> Rule for SoftHebbRule<B> {
    const NAME: &'static str = "softhebb";
    const SUMMARY: &'static str = "Moraitis et al. 2022: soft winner-take-all with Hebbian weights and Bayesian priors (unsupervised), Adam readout on the posterior";
    const FORWARD: &'static str = "xn = x / (1e-6 + ||x||_2) per row; u = xn @ hidden.0.weight^T + hidden.0.bias; \
        y = softmax(beta * u) per row (beta from the config); logits = y @ readout.weight^T + readout.bias.";
    const OPTIONS: &'static [RuleOption] = &[
        crate::rule_option!(
            SoftHebbParams,
            "softhebb-beta",
            beta,
            "inverse temperature β > 0 of the soft winner-take-all"
        ),
        crate::rule_option!(
            SoftHebbParams,
            "softhebb-rate",
            hebbian_rate,
            "initial unsupervised rate η₀ (largest weight change of a step), annealed linearly to 0"
        ),
        crate::rule_option!(
            SoftHebbParams,
            "softhebb-hidden-epochs",
            hidden_epochs,
            "unsupervised epochs (at most half the run; the rest trains the readout)"
        ),
        crate::rule_option!(SoftHebbParams, "softhebb-readout-rate", readout_rate, "Adam learning rate of the readout"),
    ];
    const DIVERGENCE_HINT: &'static [&'static str] = &["softhebb-rate", "softhebb-readout-rate"];
    const DEFAULT_EPOCHS: usize = 20;
    const SCHEDULE_DEPENDS_ON_EPOCHS: bool = true;
    const COPIES_PER_WEIGHT: u64 = SOFTHEBB_COPIES_PER_WEIGHT;
    type Params = SoftHebbParams;
    type Config = SoftHebbConfig;

    /// `input_eps` and `beta`.
    fn forward_constants(
        config: &SoftHebbConfig,
        _input_dim: usize,
        _classes: usize,
    ) -> Result<serde_json::Value, CoreError> {
        Ok(serde_json::json!({ "input_eps": SOFTHEBB_INPUT_EPS, "beta": config.beta }))
    }

    fn set_hidden(params: &mut SoftHebbParams, hidden: &[usize]) {
        params.hidden = hidden.to_vec();
    }

    fn check(params: SoftHebbParams) -> Result<SoftHebbConfig, CoreError> {
        params.check()
    }

    fn hidden(config: &SoftHebbConfig) -> &[usize] {
        &config.hidden
    }

    /// The rule draws no random numbers: `seed` is unused.
    fn new(config: SoftHebbConfig, _seed: u64) -> Self {
        SoftHebbRule::new(config)
    }
}
