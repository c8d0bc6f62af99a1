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
//! **Unsupervised phase** (first `U` epochs, [`phase_split`](super::phase_split)), summed over the batch:
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

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use super::kh::{
    LinearReadout, ReadoutState, ReadoutTrainer, Schedule, check_at_least, check_one_hidden, check_positive, host_mean,
    score_batch,
};
use super::{BatchReport, LearningRule, Rule, RuleOption, RuleState};
use crate::backend::{Backend, Binary, Dim, Reduce, Unary};
use crate::error::CoreError;
use crate::model::{Classifier, Params, add_bias};
use crate::tensor::Matrix;

/// `ε` of the input normalization `x̂ = x/(ε + ‖x‖₂)`.
pub const SOFTHEBB_INPUT_EPS: f32 = 1e-6;

/// Unchecked hyper-parameters of the `softhebb` rule. Call [`SoftHebbParams::check`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SoftHebbParams {
    /// Hidden layer width; exactly one hidden layer.
    pub hidden: Vec<usize>,
    /// Inverse temperature `β > 0` of the soft winner-take-all.
    pub beta: f32,
    /// Initial rate `η₀` of the unsupervised phase: the largest weight change of the first step.
    pub hebbian_rate: f32,
    /// Epochs of the unsupervised phase (at most half the run, see [`phase_split`](super::phase_split)).
    pub hidden_epochs: usize,
    /// Adam learning rate of the readout.
    pub readout_rate: f32,
}

impl Default for SoftHebbParams {
    fn default() -> Self {
        Self { hidden: vec![2000], beta: 20.0, hebbian_rate: 0.4, hidden_epochs: 10, readout_rate: 1e-2 }
    }
}

/// Validated hyper-parameters of the `softhebb` rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SoftHebbConfig(SoftHebbParams);

impl std::ops::Deref for SoftHebbConfig {
    type Target = SoftHebbParams;
    fn deref(&self) -> &SoftHebbParams {
        &self.0
    }
}

impl SoftHebbParams {
    /// Validates every field, naming the first bad one by its CLI flag.
    pub fn check(self) -> Result<SoftHebbConfig, CoreError> {
        check_one_hidden("softhebb", &self.hidden, 2)?;
        check_positive("softhebb-beta", self.beta)?;
        check_at_least("softhebb-rate", self.hebbian_rate, 0.0)?;
        check_positive("softhebb-readout-rate", self.readout_rate)?;
        Ok(SoftHebbConfig(self))
    }
}

/// The SoftHebb network: a soft-WTA hidden layer and a linear readout on its posterior `y`.
#[derive(Clone, Debug)]
pub struct SoftHebbNet<B: Backend> {
    backend: B,
    /// Its hyper-parameters (`β`).
    pub config: SoftHebbConfig,
    input_dim: usize,
    classes: usize,
    /// Hidden weights `W`, `N×D`.
    pub weights: B::Tensor,
    /// Hidden biases (log-priors) `b`, `1×N`.
    pub bias: B::Tensor,
    /// The readout.
    pub readout: LinearReadout<B>,
}

/// The intermediate values of the forward pass for one batch.
struct SoftHebbTrace<T> {
    /// `‖x‖₂` per row (`batch×1`).
    input_norm: T,
    /// `x̂`.
    normalized: T,
    /// `y = softmax(β(x̂Wᵀ + b))`.
    posterior: T,
}

impl<B: Backend> SoftHebbNet<B> {
    /// Hidden weights `N(0, 1)` (rows of norm ≈ √D, far from the unit sphere: as in `kh`, a
    /// frequent winner's norm shrinks, its drive falls and other units get their turn; a start on
    /// the sphere lets one unit take every input), uniform priors `b = −ln N/β`, readout
    /// `U(−1/√N, 1/√N)` with zero bias.
    pub fn init(backend: &B, config: SoftHebbConfig, input_dim: usize, classes: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = config.hidden[0];
        let normal = Normal::new(0.0f32, 1.0).expect("unit normal");
        let w = Matrix::from_fn(n, input_dim, |_, _| normal.sample(&mut rng));
        let bias = backend.full(1, n, -(n as f32).ln() / config.beta);
        let readout = LinearReadout::init(backend, classes, n, &mut rng);
        Self { backend: backend.clone(), config, input_dim, classes, weights: backend.upload(&w), bias, readout }
    }

    /// Rebuilds a network from [`Classifier::to_params`] output, checking every shape.
    pub fn from_params(
        backend: &B,
        config: SoftHebbConfig,
        input_dim: usize,
        classes: usize,
        params: &Params,
    ) -> Result<Self, CoreError> {
        let n = config.hidden[0];
        let weights = backend.upload(params.get("hidden.0.weight", (n, input_dim))?);
        let bias = backend.upload(params.get("hidden.0.bias", (1, n))?);
        let readout = LinearReadout {
            weights: backend.upload(params.get("readout.weight", (classes, n))?),
            bias: backend.upload(params.get("readout.bias", (1, classes))?),
        };
        Ok(Self { backend: backend.clone(), config, input_dim, classes, weights, bias, readout })
    }

    fn trace(&self, x: &B::Tensor) -> SoftHebbTrace<B::Tensor> {
        let b = &self.backend;
        let input_norm = b.map(&b.reduce(&b.map(x, Unary::Square), Dim::PerRow, Reduce::Sum), Unary::Sqrt);
        let normalized = b.zip(x, &b.map(&input_norm, Unary::Offset(SOFTHEBB_INPUT_EPS)), Binary::Div);
        let u = add_bias(b, &b.matmul(&normalized, false, &self.weights, true), &self.bias);
        let posterior = b.softmax_rows(&b.map(&u, Unary::Scale(self.config.beta)));
        SoftHebbTrace { input_norm, normalized, posterior }
    }

    /// The soft-WTA activations `y` (`batch×N`, each row sums to 1).
    pub fn posterior(&self, x: &B::Tensor) -> B::Tensor {
        self.trace(x).posterior
    }
}

impl<B: Backend> Classifier<B> for SoftHebbNet<B> {
    fn backend(&self) -> &B {
        &self.backend
    }
    fn input_dim(&self) -> usize {
        self.input_dim
    }
    fn classes(&self) -> usize {
        self.classes
    }
    fn logits(&self, x: &B::Tensor) -> B::Tensor {
        self.readout.logits(&self.backend, &self.posterior(x))
    }
    fn hidden_activity(&self, x: &B::Tensor) -> Vec<B::Tensor> {
        vec![self.posterior(x)]
    }
    /// `u = x̂ Wᵀ + b`, before the soft winner-take-all.
    fn hidden_drive(&self, x: &B::Tensor) -> Vec<B::Tensor> {
        let b = &self.backend;
        let t = self.trace(x);
        vec![add_bias(b, &b.matmul(&t.normalized, false, &self.weights, true), &self.bias)]
    }
    fn logits_and_input_vjp(
        &self,
        x: &B::Tensor,
        dlogits: &mut dyn FnMut(&B::Tensor) -> B::Tensor,
    ) -> (B::Tensor, B::Tensor) {
        let b = &self.backend;
        let t = self.trace(x);
        let logits = self.readout.logits(b, &t.posterior);
        let g = self.readout.backward(b, &dlogits(&logits));
        // Softmax: ∂L/∂u = β·y ⊙ (g − ⟨g, y⟩).
        let mean = b.reduce(&b.zip(&g, &t.posterior, Binary::Mul), Dim::PerRow, Reduce::Sum);
        let du =
            b.map(&b.zip(&t.posterior, &b.zip(&g, &mean, Binary::Sub), Binary::Mul), Unary::Scale(self.config.beta));
        let dxhat = b.matmul(&du, false, &self.weights, false);
        // x̂ = x/d, d = ε + ‖x‖: ∂L/∂x = ∂L/∂x̂/d − x·⟨x, ∂L/∂x̂⟩/(‖x‖·d²) (the second term is
        // 0 at x = 0, where ⟨x, ·⟩ vanishes).
        let d = b.map(&t.input_norm, Unary::Offset(SOFTHEBB_INPUT_EPS));
        let dot = b.reduce(&b.zip(x, &dxhat, Binary::Mul), Dim::PerRow, Reduce::Sum);
        let safe_norm = b.map(&t.input_norm, Unary::Clamp(1e-30, f32::MAX));
        let coef = b.zip(&b.zip(&dot, &safe_norm, Binary::Div), &b.map(&d, Unary::Square), Binary::Div);
        let dx = b.lincomb(1.0, &b.zip(&dxhat, &d, Binary::Div), -1.0, &b.zip(x, &coef, Binary::Mul));
        (logits, dx)
    }
    fn to_params(&self) -> Params {
        let b = &self.backend;
        let mut p = Params::default();
        p.push("hidden.0.weight", b.download(&self.weights));
        p.push("hidden.0.bias", b.download(&self.bias));
        p.push("readout.weight", b.download(&self.readout.weights));
        p.push("readout.bias", b.download(&self.readout.bias));
        p
    }
}

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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::backend::{ReferenceBackend, TensorStore};
    use crate::rules::kh::tests::{changed, check_resume, gradient_error, tensor, train, two_blobs, uniform};

    type Ref = ReferenceBackend;

    fn config(hidden: usize, f: impl FnOnce(&mut SoftHebbParams)) -> SoftHebbConfig {
        let mut p = SoftHebbParams {
            hidden: vec![hidden],
            beta: 2.0,
            hebbian_rate: 0.05,
            readout_rate: 0.05,
            ..Default::default()
        };
        f(&mut p);
        p.check().expect("valid")
    }

    /// A network with weights of norm ≈ 1, random biases and readout (no ties, a lively softmax).
    fn lively(seed: u64, beta: f32) -> SoftHebbNet<Ref> {
        let mut net = SoftHebbNet::init(&ReferenceBackend, config(16, |c| c.beta = beta), 12, 3, seed);
        net.weights = uniform(16, 12, -0.5, 0.5, seed + 1);
        net.bias = uniform(1, 16, -0.3, 0.3, seed + 2);
        net.readout.weights = uniform(3, 16, -3.0, 3.0, seed + 3);
        net.readout.bias = uniform(1, 3, -0.5, 0.5, seed + 4);
        net
    }

    #[test]
    fn gradient_matches_finite_differences() {
        for (seed, beta) in [(0u64, 1.0f32), (1, 4.0), (2, 10.0)] {
            let net = lively(seed, beta);
            let err = gradient_error(&net, &uniform(4, 12, 0.05, 1.0, seed + 20), &[0, 1, 2, 1]);
            assert!(err < 2e-2, "seed {seed}, β {beta}: relative error {err}");
        }
    }

    #[test]
    fn zero_input_is_finite() {
        let net = lively(3, 4.0);
        let x = Matrix::zeros(2, 12);
        let (losses, g) = net.loss_and_input_gradient(&x, &[0, 1]);
        assert!(losses.iter().all(|l| l.is_finite()) && g.all_finite());
    }

    #[test]
    fn hidden_learns_first_then_only_the_readout() {
        let cfg = config(8, |c| {
            c.hidden_epochs = 3;
            c.readout_rate = 0.2;
        });
        let mut rule = SoftHebbRule::<Ref>::new(cfg);
        let mut net = rule.init_model(&ReferenceBackend, 8, 2, 3);
        let (x, labels) = two_blobs(16, 8, 4);
        let start = net.to_params();
        let history = train(&mut rule, &mut net, &x, &labels, 8);
        let params: Vec<&Params> = std::iter::once(&start).chain(history.iter().map(|(_, p)| p)).collect();
        for e in 0..8 {
            let (before, after) = (params[e], params[e + 1]);
            let unsupervised = e < 3;
            assert_eq!(changed(before, after, "hidden.0.weight"), unsupervised, "epoch {e}: hidden weights");
            assert_eq!(changed(before, after, "hidden.0.bias"), unsupervised, "epoch {e}: hidden bias");
            assert_eq!(changed(before, after, "readout.weight"), !unsupervised, "epoch {e}: readout");
            assert!(after.tensors.iter().all(|(_, m)| m.all_finite()));
        }
        let losses: Vec<f32> = history.iter().map(|(l, _)| *l).collect();
        assert!(losses[3..].windows(2).all(|w| w[1] < w[0]), "the readout learns the two blobs: {losses:?}");
        assert!(losses[7] < 0.7 * losses[3], "the readout learns the two blobs: {losses:?}");
    }

    #[test]
    fn resumes_bit_for_bit() {
        let make = || SoftHebbRule::<Ref>::new(config(6, |c| c.hidden_epochs = 2));
        check_resume(make, 8, 6, 2);
        check_resume(make, 8, 6, 4);
        check_resume(make, 8, 6, 6);
    }

    #[test]
    fn refuses_another_rules_state_and_wrong_shapes() {
        let b = ReferenceBackend;
        let mut rule = SoftHebbRule::<Ref>::new(config(6, |_| {}));
        let net = rule.init_model(&b, 8, 2, 1);
        assert!(matches!(rule.restore_state(&net, RuleState::encode("kh", &0u8)), Err(CoreError::Incompatible(_))));
        let mut params = net.to_params();
        params.tensors[1].1 = Matrix::zeros(1, 5);
        assert!(matches!(rule.model_from_params(&b, 8, 2, &params), Err(CoreError::Incompatible(_))));
    }

    #[test]
    fn params_round_trip_reproduces_the_logits() {
        let b = ReferenceBackend;
        let net = lively(5, 3.0);
        let back = SoftHebbNet::from_params(&b, net.config.clone(), 12, 3, &net.to_params()).expect("fits");
        let x = uniform(5, 12, 0.0, 1.0, 9);
        assert_eq!(net.logits(&x), back.logits(&x));
        let params = net.to_params();
        let names: Vec<&str> = params.tensors.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["hidden.0.weight", "hidden.0.bias", "readout.weight", "readout.bias"]);
        assert_eq!(tensor(&params, "hidden.0.bias"), &b.download(&net.bias));
    }

    #[test]
    fn check_names_the_flag() {
        let bad = |f: fn(&mut SoftHebbParams)| {
            let mut p = SoftHebbParams::default();
            f(&mut p);
            match p.check() {
                Err(CoreError::InvalidParam { name, .. }) => name,
                other => panic!("expected an invalid parameter, got {other:?}"),
            }
        };
        assert_eq!(bad(|p| p.beta = 0.0), "softhebb-beta");
        assert_eq!(bad(|p| p.hebbian_rate = -1.0), "softhebb-rate");
        assert_eq!(bad(|p| p.readout_rate = f32::INFINITY), "softhebb-readout-rate");
        assert_eq!(bad(|p| p.hidden = vec![10, 10]), "hidden");
        assert!(SoftHebbParams::default().check().is_ok());
    }

    /// Mean distance of the rows' L2 norms from 1.
    fn sphere_distance(w: &Matrix) -> f32 {
        let d: f32 = (0..w.rows()).map(|i| (w.row(i).iter().map(|v| v * v).sum::<f32>().sqrt() - 1.0).abs()).sum();
        d / w.rows() as f32
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]

        /// The soft winner-take-all is a distribution over the hidden units for any input, weights
        /// and priors.
        #[test]
        fn activations_sum_to_one(seed in 0u64..1000, scale in 0.0f32..100.0, beta in 0.01f32..50.0) {
            let mut net = lively(seed, beta);
            net.bias = uniform(1, 16, -5.0, 5.0, seed + 7);
            let y = net.posterior(&uniform(3, 12, -scale, scale, seed + 8));
            for i in 0..3 {
                let total: f32 = y.row(i).iter().sum();
                prop_assert!(y.row(i).iter().all(|&v| (0.0..=1.0).contains(&v)));
                prop_assert!((total - 1.0).abs() < 1e-5, "row {} sums to {}", i, total);
            }
        }

        /// The paper's weight-norm behaviour: with no normalization step, the rows move toward the
        /// unit sphere, from inside or from outside.
        #[test]
        fn weights_move_toward_the_unit_sphere(seed in 0u64..1000, scale in prop::sample::select(vec![0.3f32, 3.0])) {
            let b = ReferenceBackend;
            let mut net = SoftHebbNet::init(&b, config(6, |c| c.beta = 4.0), 10, 2, seed);
            // Positive rows of norm `scale`: every unit has a positive drive from positive inputs.
            let w = uniform(6, 10, 0.1, 1.0, seed + 1);
            net.weights = Matrix::from_fn(6, 10, |i, j| {
                scale * w.get(i, j) / w.row(i).iter().map(|v| v * v).sum::<f32>().sqrt()
            });
            let before = sphere_distance(&net.weights);
            for step in 0..150u64 {
                let t = net.trace(&uniform(8, 10, 0.0, 1.0, seed.wrapping_mul(1000) + step));
                softhebb_plasticity(&b, &mut net, &t.normalized, &t.posterior, 0.05);
            }
            prop_assert!(net.weights.all_finite() && net.bias.all_finite());
            let after = sphere_distance(&net.weights);
            prop_assert!(after < 0.5 * before, "mean |‖w‖ − 1| {} → {}", before, after);
        }
    }
}
