//! The SoftHebb plasticity and trainer.

use super::model::SoftHebbTrace;
use super::{SOFTHEBB_INPUT_EPS, SoftHebbConfig, SoftHebbNet, SoftHebbParams};
use crate::backend::{Backend, Binary, Dim, Reduce, Unary};
use crate::error::CoreError;
use crate::model::Params;
use crate::rules::frozen::{FeatureLayer, FrozenRule, FrozenState, LinearReadout, Schedule, host_mean};
use crate::rules::{Rule, RuleOption};

/// `t / max|t|` (the whole tensor; a zero tensor stays zero).
pub(crate) fn by_largest<B: Backend>(b: &B, t: &B::Tensor) -> B::Tensor {
    let largest = b.map(&b.reduce(&b.map(t, Unary::Abs), Dim::All, Reduce::Max), Unary::Clamp(1e-30, f32::MAX));
    b.zip(t, &largest, Binary::Div)
}

/// SoftHebb's weight change before its scaling, shared by `softhebb` and the conv rule's
/// `--conv-plasticity softhebb`: with `y` the post-synaptic signal, `x` the inputs (rows) and
/// `u = x Wᵀ` the drive, `ΔW_j = Σ_rows y_j x − (Σ_rows y_j u_j)·W_j` (Oja-like: zero where `W_j`
/// matches, at unit norm, the inputs it answers to).
pub(crate) fn soft_hebbian_change<B: Backend>(
    b: &B,
    weights: &B::Tensor,
    inputs: &B::Tensor,
    signal: &B::Tensor,
    drive: &B::Tensor,
) -> B::Tensor {
    let ones = b.full(b.shape(inputs).0, 1, 1.0);
    // Σ_rows y_j·u_j per unit (N×1).
    let decay = b.matmul(&b.zip(signal, drive, Binary::Mul), true, &ones, false);
    b.lincomb(1.0, &b.matmul(signal, true, inputs, false), -1.0, &b.zip(weights, &decay, Binary::Mul))
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
    let batch = b.shape(normalized).0;
    // u without the bias.
    let u = b.matmul(normalized, false, &net.weights, true);
    let dw = soft_hebbian_change(b, &net.weights, normalized, posterior, &u);
    // Σ_b (y_bk·e^(−β b_k) − 1) = e^(−β b_k)·Σ_b y_bk − B (1×N).
    let inv_prior = b.map(&b.map(&net.bias, Unary::Scale(-beta)), Unary::Clamp(-80.0, 80.0));
    let usage = b.reduce(posterior, Dim::PerCol, Reduce::Sum);
    let db = b.map(&b.zip(&usage, &b.map(&inv_prior, Unary::Exp), Binary::Mul), Unary::Offset(-(batch as f32)));
    net.weights = b.lincomb(1.0, &net.weights, rate, &by_largest(b, &dw));
    net.bias = b.lincomb(1.0, &net.bias, rate / beta, &by_largest(b, &db));
}

/// The host form of a [`SoftHebbRule`]'s state between batches.
pub type SoftHebbState = FrozenState<Schedule>;

/// The `softhebb` trainer: the schedule and the readout's Adam state. It draws no random numbers.
pub type SoftHebbRule<B> = FrozenRule<SoftHebbConfig, B>;

impl<B: Backend> FeatureLayer<B> for SoftHebbConfig {
    type Model = SoftHebbNet<B>;
    type Schedule = Schedule;
    type Trace = SoftHebbTrace<B::Tensor>;

    fn init(&self, backend: &B, input_dim: usize, classes: usize, seed: u64) -> SoftHebbNet<B> {
        SoftHebbNet::init(backend, self.clone(), input_dim, classes, seed)
    }

    fn model_from_params(
        &self,
        backend: &B,
        input_dim: usize,
        classes: usize,
        params: &Params,
    ) -> Result<SoftHebbNet<B>, CoreError> {
        SoftHebbNet::from_params(backend, self.clone(), input_dim, classes, params)
    }

    /// [`Schedule::at`].
    fn schedule(&self, epoch: usize, epochs: usize) -> Schedule {
        Schedule::at(self.hebbian_rate, self.hidden_epochs, epoch, epochs)
    }

    fn readout_rate(&self) -> f32 {
        self.readout_rate
    }

    fn readout(model: &SoftHebbNet<B>) -> &LinearReadout<B> {
        &model.readout
    }

    fn readout_mut(model: &mut SoftHebbNet<B>) -> &mut LinearReadout<B> {
        &mut model.readout
    }

    fn trace(&self, model: &SoftHebbNet<B>, x: &B::Tensor, _schedule: Schedule) -> SoftHebbTrace<B::Tensor> {
        model.trace(x)
    }

    /// The posterior `y`.
    fn features(trace: &SoftHebbTrace<B::Tensor>) -> &B::Tensor {
        &trace.posterior
    }

    /// The units whose `y` exceeds the uniform `1/N`.
    fn active_fraction(b: &B, trace: &SoftHebbTrace<B::Tensor>) -> f32 {
        let (_, n) = b.shape(&trace.posterior);
        let uniform = b.full(1, 1, 1.0 / n as f32);
        host_mean(b, &b.zip(&trace.posterior, &uniform, Binary::Greater))
    }

    /// [`softhebb_plasticity`] at the schedule's rate.
    fn learn(
        &self,
        b: &B,
        model: &mut SoftHebbNet<B>,
        _x: &B::Tensor,
        trace: SoftHebbTrace<B::Tensor>,
        schedule: Schedule,
    ) {
        if schedule.rate > 0.0 {
            softhebb_plasticity(b, model, &trace.normalized, &trace.posterior, schedule.rate);
        }
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
    fn forward_pass(
        config: &SoftHebbConfig,
        _input_dim: usize,
        _classes: usize,
    ) -> Result<Vec<crate::forward::Op>, CoreError> {
        use crate::forward::Op;
        Ok(vec![
            Op::L2Normalize { eps: SOFTHEBB_INPUT_EPS },
            Op::Linear { weight: "hidden.0.weight".into(), bias: Some("hidden.0.bias".into()) },
            Op::Softmax { beta: config.beta },
            Op::Linear { weight: "readout.weight".into(), bias: Some("readout.bias".into()) },
        ])
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
