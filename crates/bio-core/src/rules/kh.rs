//! The `kh` peer: Krotov & Hopfield (2019), "Unsupervised learning by competing hidden units"
//! (PNAS 116(16):7723), one hidden layer learned without labels, then a linear readout on the frozen
//! features.
//!
//! **Unsupervised phase** (the first `U` epochs, see [`phase_split`]). For a batch `x` (`B×D`, pixels
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
//! The readout Adam trainer ([`ReadoutTrainer`]) and the phase split are shared with
//! [`super::softhebb`].

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};
use serde::{Deserialize, Serialize};

use super::{BatchReport, LearningRule, Rule, RuleOption, RuleState, check_loss, count_correct};
use crate::backend::{AdamStep, Backend, Binary, Dim, Reduce, Unary, guard};
use crate::error::CoreError;
use crate::model::{Classifier, Params, add_bias, softmax_cross_entropy};
use crate::tensor::Matrix;

/// Unchecked hyper-parameters of the `kh` rule. Call [`KhParams::check`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KhParams {
    /// Hidden layer width; exactly one hidden layer.
    pub hidden: Vec<usize>,
    /// Lebesgue norm `p ≥ 2` of the weights (the drive weights each synapse by `|w|^(p−1)`).
    pub p: f32,
    /// Rank `k ≥ 2` of the unit pushed away from the input (anti-Hebbian).
    pub k: usize,
    /// Strength `Δ ≥ 0` of the anti-Hebbian push.
    pub delta: f32,
    /// Power `n ≥ 1` of the rectified-polynomial response `ReLU(·)ⁿ`.
    pub n: f32,
    /// Initial rate `ε₀` of the unsupervised phase: the largest weight change of the first step.
    /// The reference notebook uses 0.02 over 200 epochs of 600 batches (`Σε ≈ 1200` max-steps);
    /// 0.4 gives the same total over 10 epochs of full Fashion-MNIST in batches of 100.
    pub hebbian_rate: f32,
    /// Epochs of the unsupervised phase (at most half the run, see [`phase_split`]).
    pub hidden_epochs: usize,
    /// Adam learning rate of the readout.
    pub readout_rate: f32,
}

impl Default for KhParams {
    fn default() -> Self {
        Self {
            hidden: vec![2000],
            p: 2.0,
            k: 2,
            delta: 0.4,
            n: 4.5,
            hebbian_rate: 0.4,
            hidden_epochs: 10,
            readout_rate: 1e-2,
        }
    }
}

/// Validated hyper-parameters of the `kh` rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KhConfig(KhParams);

impl std::ops::Deref for KhConfig {
    type Target = KhParams;
    fn deref(&self) -> &KhParams {
        &self.0
    }
}

/// `v` must be finite and at least `min`.
pub(crate) fn check_at_least(name: &'static str, v: f32, min: f32) -> Result<(), CoreError> {
    if !(v.is_finite() && v >= min) {
        return Err(CoreError::invalid(name, format!("must be a finite number ≥ {min}, got {v}")));
    }
    Ok(())
}

/// `v` must be finite and positive.
pub(crate) fn check_positive(name: &'static str, v: f32) -> Result<(), CoreError> {
    if !(v.is_finite() && v > 0.0) {
        return Err(CoreError::invalid(name, format!("must be a finite number > 0, got {v}")));
    }
    Ok(())
}

/// One hidden layer of at least `min` units.
pub(crate) fn check_one_hidden(rule: &str, hidden: &[usize], min: usize) -> Result<usize, CoreError> {
    match hidden {
        [w] if *w >= min => Ok(*w),
        [w] => Err(CoreError::invalid("hidden", format!("the `{rule}` layer needs at least {min} units, got {w}"))),
        _ => Err(CoreError::invalid(
            "hidden",
            format!("the `{rule}` rule has exactly one hidden layer, got {} widths", hidden.len()),
        )),
    }
}

impl KhParams {
    /// Validates every field, naming the first bad one by its CLI flag.
    pub fn check(self) -> Result<KhConfig, CoreError> {
        if self.k < 2 {
            return Err(CoreError::invalid("kh-k", format!("must be ≥ 2, got {}", self.k)));
        }
        check_one_hidden("kh", &self.hidden, self.k)?;
        check_at_least("kh-p", self.p, 2.0)?;
        check_at_least("kh-delta", self.delta, 0.0)?;
        check_at_least("kh-n", self.n, 1.0)?;
        check_at_least("kh-rate", self.hebbian_rate, 0.0)?;
        check_positive("kh-readout-rate", self.readout_rate)?;
        Ok(KhConfig(self))
    }
}

/// How a run of `epochs` epochs is split: the first `U = min(hidden_epochs, ⌊epochs/2⌋)` epochs are
/// unsupervised (hidden weights learn), the rest train the readout on frozen features, so that at
/// least half of any run trains the readout. Returns `U`.
pub fn phase_split(hidden_epochs: usize, epochs: usize) -> usize {
    hidden_epochs.min(epochs / 2)
}

/// Where a frozen-feature rule stands in its schedule.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// True in the unsupervised phase (the hidden weights learn, the readout is frozen).
    pub unsupervised: bool,
    /// The hidden layer's learning rate in the current epoch (0 in the supervised phase).
    pub rate: f32,
}

impl Schedule {
    /// The schedule of epoch `epoch` (0-based) of `epochs`: unsupervised with rate
    /// `rate₀·(1 − epoch/U)` for `epoch < U` ([`phase_split`]), then supervised.
    pub fn at(rate0: f32, hidden_epochs: usize, epoch: usize, epochs: usize) -> Self {
        let u = phase_split(hidden_epochs, epochs);
        if epoch < u {
            Self { unsupervised: true, rate: rate0 * (1.0 - epoch as f32 / u as f32) }
        } else {
            Self { unsupervised: false, rate: 0.0 }
        }
    }
}

impl Default for Schedule {
    /// Before any `start_epoch`: the first epoch of a run with an unsupervised phase.
    fn default() -> Self {
        Self { unsupervised: true, rate: 0.0 }
    }
}

/// A linear readout `z = h Vᵀ + c` on frozen features `h`.
#[derive(Clone, Debug)]
pub struct LinearReadout<B: Backend> {
    /// `V`, `classes×features`.
    pub weights: B::Tensor,
    /// `c`, `1×classes`.
    pub bias: B::Tensor,
}

impl<B: Backend> LinearReadout<B> {
    /// `V ~ U(−1/√N, 1/√N)`, `c = 0`.
    pub fn init(b: &B, classes: usize, features: usize, rng: &mut ChaCha8Rng) -> Self {
        let bound = 1.0 / (features.max(1) as f32).sqrt();
        let dist = Uniform::new(-bound, bound).expect("a finite, non-empty range");
        let v = Matrix::from_fn(classes, features, |_, _| dist.sample(rng));
        Self { weights: b.upload(&v), bias: b.full(1, classes, 0.0) }
    }

    /// Class scores of features `h` (`batch×features`).
    pub fn logits(&self, b: &B, h: &B::Tensor) -> B::Tensor {
        add_bias(b, &b.matmul(h, false, &self.weights, true), &self.bias)
    }

    /// `Vᵀ·g`: the gradient reaching the features from a logit gradient `g`.
    pub fn backward(&self, b: &B, g: &B::Tensor) -> B::Tensor {
        b.matmul(g, false, &self.weights, false)
    }
}

/// Adam on a [`LinearReadout`] with the mean softmax cross-entropy: the supervised phase of the
/// frozen-feature rules. β₁ = 0.9, β₂ = 0.999, ε = 1e-8, as the backprop baseline.
#[derive(Clone, Debug)]
pub struct ReadoutTrainer<B: Backend> {
    /// `(m, v)` of `V` then of `c`; `None` before the first step.
    moments: Option<[B::Tensor; 4]>,
    /// Adam steps taken.
    steps: u64,
}

impl<B: Backend> Default for ReadoutTrainer<B> {
    fn default() -> Self {
        Self { moments: None, steps: 0 }
    }
}

/// The host form of a [`ReadoutTrainer`]'s state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReadoutState {
    /// Adam steps taken.
    pub steps: u64,
    /// `m_V, v_V, m_c, v_c`, or empty before the first step.
    pub moments: Vec<Matrix>,
}

impl<B: Backend> ReadoutTrainer<B> {
    /// One Adam step on the mean cross-entropy of `probs` (softmax of the readout's logits on `h`).
    pub fn step(&mut self, b: &B, readout: &mut LinearReadout<B>, h: &B::Tensor, dlogits: &B::Tensor, lr: f32) {
        let (batch, _) = b.shape(h);
        let scale = 1.0 / batch.max(1) as f32;
        let gv = b.map(&b.matmul(dlogits, true, h, false), Unary::Scale(scale));
        let gc = b.map(&b.reduce(dlogits, Dim::PerCol, Reduce::Sum), Unary::Scale(scale));
        let moments = self.moments.get_or_insert_with(|| {
            let (c, n) = b.shape(&readout.weights);
            [b.full(c, n, 0.0), b.full(c, n, 0.0), b.full(1, c, 0.0), b.full(1, c, 0.0)]
        });
        self.steps += 1;
        let (beta1, beta2) = (0.9f32, 0.999f32);
        let t = self.steps.min(i32::MAX as u64) as i32;
        let s = AdamStep { lr_t: lr * (1.0 - beta2.powi(t)).sqrt() / (1.0 - beta1.powi(t)), beta1, beta2, eps: 1e-8 };
        let [mv, vv, mc, vc] = moments;
        b.adam_step(&mut readout.weights, &gv, mv, vv, s);
        b.adam_step(&mut readout.bias, &gc, mc, vc, s);
    }

    /// Host copy of the state.
    pub fn save(&self, b: &B) -> ReadoutState {
        let moments = self.moments.as_ref().map(|m| m.iter().map(|t| b.download(t)).collect()).unwrap_or_default();
        ReadoutState { steps: self.steps, moments }
    }

    /// Puts back a saved state, checking its shapes against `readout`.
    pub fn restore(&mut self, b: &B, readout: &LinearReadout<B>, state: ReadoutState) -> Result<(), CoreError> {
        let (c, n) = b.shape(&readout.weights);
        self.moments = match state.moments.as_slice() {
            [] => None,
            [mv, vv, mc, vc] => {
                for (m, shape) in [(mv, (c, n)), (vv, (c, n)), (mc, (1, c)), (vc, (1, c))] {
                    if m.shape() != shape || !m.all_finite() {
                        return Err(CoreError::Incompatible(format!(
                            "readout optimizer moment is {}×{}, expected a finite {}×{}",
                            m.rows(),
                            m.cols(),
                            shape.0,
                            shape.1
                        )));
                    }
                }
                Some([b.upload(mv), b.upload(vv), b.upload(mc), b.upload(vc)])
            }
            other => {
                return Err(CoreError::Incompatible(format!(
                    "readout optimizer state holds {} tensors, expected 4",
                    other.len()
                )));
            }
        };
        self.steps = state.steps;
        Ok(())
    }
}

/// Loss, correct count and `∂(Σ loss)/∂z` of a batch's logits (with the divergence check).
pub(crate) fn score_batch<B: Backend>(
    b: &B,
    logits: &B::Tensor,
    labels: &[usize],
    classes: usize,
    what: &str,
) -> Result<(f32, usize, B::Tensor), CoreError> {
    let (_, losses, dlogits) = softmax_cross_entropy(b, logits, labels);
    let loss = losses.iter().sum::<f32>() / labels.len().max(1) as f32;
    check_loss(loss, classes, what)?;
    Ok((loss, count_correct(&b.argmax_rows(logits), labels), dlogits))
}

/// The mean of a tensor, on the host.
pub(crate) fn host_mean<B: Backend>(b: &B, t: &B::Tensor) -> f32 {
    b.download(&b.reduce(t, Dim::All, Reduce::Mean)).get(0, 0)
}

/// The Krotov–Hopfield network: `N` rectified-polynomial hidden units and a linear readout.
#[derive(Clone, Debug)]
pub struct KhNet<B: Backend> {
    backend: B,
    /// Its hyper-parameters (the response power `n`).
    pub config: KhConfig,
    input_dim: usize,
    classes: usize,
    /// Hidden weights `W`, `N×D`.
    pub weights: B::Tensor,
    /// The readout.
    pub readout: LinearReadout<B>,
}

/// The intermediate values of the response for one batch.
struct KhResponse<T> {
    /// `r = ReLU(x Wᵀ)`.
    r: T,
    /// `max_μ r_μ` per row, guarded (`batch×1`).
    peak: T,
    /// `‖(r/peak)ⁿ‖₂` per row, guarded (`batch×1`).
    norm: T,
    /// `ĥ = rⁿ/‖rⁿ‖₂`.
    code: T,
}

impl<B: Backend> KhNet<B> {
    /// Hidden weights `N(0, 1)` (the paper's start), readout `U(−1/√N, 1/√N)`, zero bias.
    pub fn init(backend: &B, config: KhConfig, input_dim: usize, classes: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = config.hidden[0];
        let normal = Normal::new(0.0f32, 1.0).expect("unit normal");
        let w = Matrix::from_fn(n, input_dim, |_, _| normal.sample(&mut rng));
        let readout = LinearReadout::init(backend, classes, n, &mut rng);
        Self { backend: backend.clone(), config, input_dim, classes, weights: backend.upload(&w), readout }
    }

    /// Rebuilds a network from [`Classifier::to_params`] output, checking every shape.
    pub fn from_params(
        backend: &B,
        config: KhConfig,
        input_dim: usize,
        classes: usize,
        params: &Params,
    ) -> Result<Self, CoreError> {
        let n = config.hidden[0];
        let weights = backend.upload(params.get("hidden.0.weight", (n, input_dim))?);
        let readout = LinearReadout {
            weights: backend.upload(params.get("readout.weight", (classes, n))?),
            bias: backend.upload(params.get("readout.bias", (1, classes))?),
        };
        Ok(Self { backend: backend.clone(), config, input_dim, classes, weights, readout })
    }

    fn response(&self, x: &B::Tensor) -> KhResponse<B::Tensor> {
        let b = &self.backend;
        let r = b.map(&b.matmul(x, false, &self.weights, true), Unary::Relu);
        let peak = guard(b, &b.reduce(&r, Dim::PerRow, Reduce::Max));
        // (r/peak)ⁿ has the same direction as rⁿ and never overflows.
        let q = b.map(&b.zip(&r, &peak, Binary::Div), Unary::Powf(self.config.n));
        let norm = guard(b, &b.map(&b.reduce(&b.map(&q, Unary::Square), Dim::PerRow, Reduce::Sum), Unary::Sqrt));
        let code = b.zip(&q, &norm, Binary::Div);
        KhResponse { r, peak, norm, code }
    }

    /// The per-sample normalized code `ĥ` the readout sees (`batch×N`).
    pub fn code(&self, x: &B::Tensor) -> B::Tensor {
        self.response(x).code
    }
}

impl<B: Backend> Classifier<B> for KhNet<B> {
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
        self.readout.logits(&self.backend, &self.code(x))
    }
    fn hidden_activity(&self, x: &B::Tensor) -> Vec<B::Tensor> {
        vec![self.code(x)]
    }
    /// `x Wᵀ`, before the rectified power.
    fn hidden_drive(&self, x: &B::Tensor) -> Vec<B::Tensor> {
        vec![self.backend.matmul(x, false, &self.weights, true)]
    }
    fn logits_and_input_vjp(
        &self,
        x: &B::Tensor,
        dlogits: &mut dyn FnMut(&B::Tensor) -> B::Tensor,
    ) -> (B::Tensor, B::Tensor) {
        let b = &self.backend;
        let t = self.response(x);
        let logits = self.readout.logits(b, &t.code);
        let g = self.readout.backward(b, &dlogits(&logits));
        // Through ĥ = q/‖q‖: the tangential part g − ĥ⟨g, ĥ⟩.
        let along = b.reduce(&b.zip(&g, &t.code, Binary::Mul), Dim::PerRow, Reduce::Sum);
        let tangential = b.lincomb(1.0, &g, -1.0, &b.zip(&t.code, &along, Binary::Mul));
        // ∂ĥ_μ/∂r_μ factor n·ĥ_μ/r_μ = n·(r_μ/peak)^(n−1)/(peak·‖q‖), zero where r_μ = 0.
        let ratio = b.zip(&t.r, &t.peak, Binary::Div);
        let slope = b.zip(&b.map(&ratio, Unary::Powf(self.config.n - 1.0)), &b.map(&t.r, Unary::Step), Binary::Mul);
        let denom = b.map(&b.zip(&t.peak, &t.norm, Binary::Mul), Unary::Scale(1.0 / self.config.n));
        let dr = b.zip(&b.zip(&slope, &tangential, Binary::Mul), &denom, Binary::Div);
        let dx = b.matmul(&dr, false, &self.weights, false);
        (logits, dx)
    }
    fn to_params(&self) -> Params {
        let b = &self.backend;
        let mut p = Params::default();
        p.push("hidden.0.weight", b.download(&self.weights));
        p.push("readout.weight", b.download(&self.readout.weights));
        p.push("readout.bias", b.download(&self.readout.bias));
        p
    }
}

/// `1` where `d` exceeds the row's `j`-th largest value (`j` counting from 1), i.e. the row's top
/// `j − 1` entries; all ones when `j` exceeds the row length.
fn above_rank<B: Backend>(b: &B, d: &B::Tensor, j: usize) -> B::Tensor {
    let (rows, cols) = b.shape(d);
    if j > cols {
        return b.full(rows, cols, 1.0);
    }
    b.zip(d, &b.row_kth_largest(d, j), Binary::Greater)
}

/// One step of the Krotov–Hopfield plasticity on `w` (`N×D`) from a batch `x` (`B×D`), with
/// rate `rate` (see the module docs for the equations).
pub fn kh_plasticity<B: Backend>(b: &B, w: &mut B::Tensor, x: &B::Tensor, config: &KhConfig, rate: f32) {
    let wp = if config.p == 2.0 {
        w.clone()
    } else {
        b.zip(&b.map(w, Unary::Sign), &b.map(&b.map(w, Unary::Abs), Unary::Powf(config.p - 1.0)), Binary::Mul)
    };
    let drive = b.matmul(x, false, &wp, true);
    let first = above_rank(b, &drive, 2);
    let g = if config.delta > 0.0 {
        // Exactly the k-th ranked unit: in the top k but not in the top k − 1.
        let kth = b.lincomb(1.0, &above_rank(b, &drive, config.k + 1), -1.0, &above_rank(b, &drive, config.k));
        b.lincomb(1.0, &first, -config.delta, &kth)
    } else {
        first
    };
    let (batch, _) = b.shape(x);
    // Σ_b g_bμ·I_bμ per unit (N×1).
    let decay = b.matmul(&b.zip(&g, &drive, Binary::Mul), true, &b.full(batch, 1, 1.0), false);
    let ds = b.lincomb(1.0, &b.matmul(&g, true, x, false), -1.0, &b.zip(w, &decay, Binary::Mul));
    let largest = b.map(&b.reduce(&b.map(&ds, Unary::Abs), Dim::All, Reduce::Max), Unary::Clamp(1e-30, f32::MAX));
    *w = b.lincomb(1.0, w, rate, &b.zip(&ds, &largest, Binary::Div));
}

/// The host form of a [`KhRule`]'s state between batches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KhState {
    /// The current epoch's schedule.
    pub schedule: Schedule,
    /// The readout's optimizer.
    pub readout: ReadoutState,
}

/// The `kh` trainer: the schedule and the readout's Adam state. It draws no random numbers.
#[derive(Clone, Debug)]
pub struct KhRule<B: Backend> {
    config: KhConfig,
    schedule: Schedule,
    trainer: ReadoutTrainer<B>,
}

impl<B: Backend> KhRule<B> {
    /// A trainer with a fresh schedule and optimizer.
    pub fn new(config: KhConfig) -> Self {
        Self { config, schedule: Schedule::default(), trainer: ReadoutTrainer::default() }
    }

    /// The validated hyper-parameters.
    pub fn config(&self) -> &KhConfig {
        &self.config
    }

    /// The current epoch's schedule.
    pub fn schedule(&self) -> Schedule {
        self.schedule
    }
}

impl<B: Backend> LearningRule<B> for KhRule<B> {
    type Model = KhNet<B>;

    fn name(&self) -> &'static str {
        <Self as Rule>::NAME
    }

    fn init_model(&self, backend: &B, input_dim: usize, classes: usize, seed: u64) -> KhNet<B> {
        KhNet::init(backend, self.config.clone(), input_dim, classes, seed)
    }

    fn model_from_params(
        &self,
        backend: &B,
        input_dim: usize,
        classes: usize,
        params: &Params,
    ) -> Result<KhNet<B>, CoreError> {
        KhNet::from_params(backend, self.config.clone(), input_dim, classes, params)
    }

    /// Follows the schedule ([`Schedule::at`]).
    fn start_epoch(&mut self, epoch: usize, epochs: usize) {
        self.schedule = Schedule::at(self.config.hebbian_rate, self.config.hidden_epochs, epoch, epochs);
    }

    /// One batch: in the unsupervised phase a plasticity step of the hidden weights, in the
    /// supervised phase an Adam step of the readout. The report is measured before the update; its
    /// active fraction counts the units with a positive response.
    fn train_batch(&mut self, model: &mut KhNet<B>, x: &B::Tensor, labels: &[usize]) -> Result<BatchReport, CoreError> {
        let b = model.backend.clone();
        let t = model.response(x);
        let logits = model.readout.logits(&b, &t.code);
        let (loss, correct, dlogits) = score_batch(&b, &logits, labels, model.classes, "kh readout")?;
        let active_fraction = host_mean(&b, &b.map(&t.r, Unary::Step));
        if self.schedule.unsupervised {
            if self.schedule.rate > 0.0 {
                kh_plasticity(&b, &mut model.weights, x, &self.config, self.schedule.rate);
            }
        } else {
            self.trainer.step(&b, &mut model.readout, &t.code, &dlogits, self.config.readout_rate);
        }
        Ok(BatchReport { loss, correct, samples: labels.len(), active_fraction })
    }

    fn save_state(&self, model: &KhNet<B>) -> RuleState {
        let state = KhState { schedule: self.schedule, readout: self.trainer.save(&model.backend) };
        RuleState::encode(<Self as Rule>::NAME, &state)
    }

    fn restore_state(&mut self, model: &KhNet<B>, state: RuleState) -> Result<(), CoreError> {
        let state: KhState = state.decode(<Self as Rule>::NAME)?;
        self.trainer.restore(&model.backend, &model.readout, state.readout)?;
        self.schedule = state.schedule;
        Ok(())
    }
}

/// Peak host copies of the hidden weights while training: `W`, `sign(W)|W|^(p−1)` (or its clone),
/// `GᵀX`, `W ⊙ Σ gI`, `ΔW`, `|ΔW|` and `ΔW/max` (some freed before the next is made).
pub const KH_COPIES_PER_WEIGHT: u64 = 6;

impl<B: Backend> Rule for KhRule<B> {
    const NAME: &'static str = "kh";
    const SUMMARY: &'static str = "Krotov & Hopfield 2019: competing hidden units (unsupervised, p-norm, anti-Hebbian k-th unit), ReLU^n features, Adam readout";
    const FORWARD: &'static str = "r = relu(x @ hidden.0.weight^T); h = r^n (n from the config); code = h / ||h||_2 per row \
        (0 where h is all 0); logits = code @ readout.weight^T + readout.bias.";
    const OPTIONS: &'static [RuleOption] = &[
        crate::rule_option!(KhParams, "kh-p", p, "Lebesgue norm p ≥ 2 of the hidden weights"),
        crate::rule_option!(KhParams, "kh-k", k, "rank k ≥ 2 of the unit pushed away from the input"),
        crate::rule_option!(KhParams, "kh-delta", delta, "anti-Hebbian strength Δ ≥ 0 of the k-th unit"),
        crate::rule_option!(KhParams, "kh-n", n, "power n ≥ 1 of the ReLU^n response"),
        crate::rule_option!(
            KhParams,
            "kh-rate",
            hebbian_rate,
            "initial unsupervised rate ε₀ (largest weight change of a step), annealed linearly to 0"
        ),
        crate::rule_option!(
            KhParams,
            "kh-hidden-epochs",
            hidden_epochs,
            "unsupervised epochs (at most half the run; the rest trains the readout)"
        ),
        crate::rule_option!(KhParams, "kh-readout-rate", readout_rate, "Adam learning rate of the readout"),
    ];
    const DIVERGENCE_HINT: &'static [&'static str] = &["kh-rate", "kh-readout-rate"];
    const DEFAULT_EPOCHS: usize = 20;
    const SCHEDULE_DEPENDS_ON_EPOCHS: bool = true;
    const COPIES_PER_WEIGHT: u64 = KH_COPIES_PER_WEIGHT;
    type Params = KhParams;
    type Config = KhConfig;

    /// `n` (the response power) and `guard` (the floor of the peak and norm divided by).
    fn forward_pass(
        config: &KhConfig,
        _input_dim: usize,
        _classes: usize,
    ) -> Result<Vec<crate::forward::Op>, CoreError> {
        use crate::forward::Op;
        let guard = crate::backend::NORM_GUARD;
        Ok(vec![
            Op::Linear { weight: "hidden.0.weight".into(), bias: None },
            Op::Relu,
            // Dividing by the row's peak first keeps rⁿ from overflowing; the unit-norm code is the same.
            Op::PeakNorm { guard },
            Op::Power { n: config.n },
            Op::UnitNorm { guard },
            Op::Linear { weight: "readout.weight".into(), bias: Some("readout.bias".into()) },
        ])
    }

    fn set_hidden(params: &mut KhParams, hidden: &[usize]) {
        params.hidden = hidden.to_vec();
    }

    fn check(params: KhParams) -> Result<KhConfig, CoreError> {
        params.check()
    }

    fn hidden(config: &KhConfig) -> &[usize] {
        &config.hidden
    }

    /// The rule draws no random numbers: `seed` is unused.
    fn new(config: KhConfig, _seed: u64) -> Self {
        KhRule::new(config)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;
    use rand::Rng;

    use super::*;
    use crate::backend::ReferenceBackend;
    use crate::rules::config_from_settings;

    type Ref = ReferenceBackend;

    /// Entries uniform in `[lo, hi)`.
    pub(crate) fn uniform(rows: usize, cols: usize, lo: f32, hi: f32, seed: u64) -> Matrix {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Matrix::from_fn(rows, cols, |_, _| rng.random_range(lo..hi))
    }

    pub(crate) use crate::conformance::input_gradient_error as gradient_error;

    /// A tiny separable problem: class 0 lights the first half of the pixels, class 1 the second.
    pub(crate) fn two_blobs(rows: usize, dim: usize, seed: u64) -> (Matrix, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let labels: Vec<usize> = (0..rows).map(|i| i % 2).collect();
        let x = Matrix::from_fn(rows, dim, |i, j| {
            let lit = (j < dim / 2) == (labels[i] == 0);
            if lit { rng.random_range(0.6f32..1.0) } else { rng.random_range(0.0f32..0.2) }
        });
        (x, labels)
    }

    /// The named tensor of a parameter set.
    pub(crate) fn tensor<'a>(p: &'a Params, name: &str) -> &'a Matrix {
        &p.tensors.iter().find(|(n, _)| n == name).expect("present").1
    }

    fn config(hidden: usize, f: impl FnOnce(&mut KhParams)) -> KhConfig {
        let mut p = KhParams { hidden: vec![hidden], hebbian_rate: 0.05, readout_rate: 0.05, ..Default::default() };
        f(&mut p);
        p.check().expect("valid")
    }

    fn random_readout(net: &mut KhNet<Ref>, seed: u64) {
        let (c, n) = net.readout.weights.shape();
        net.readout.weights = uniform(c, n, -2.0, 2.0, seed);
        net.readout.bias = uniform(1, c, -0.5, 0.5, seed + 1);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        for (seed, n, p) in [(0u64, 4.5f32, 2.0f32), (1, 3.0, 3.0), (2, 1.0, 2.0), (3, 2.0, 2.0)] {
            let cfg = config(16, |c| {
                c.n = n;
                c.p = p;
            });
            let mut net = KhNet::init(&ReferenceBackend, cfg, 12, 3, seed);
            random_readout(&mut net, seed + 10);
            let err = gradient_error(&net, &uniform(4, 12, 0.05, 1.0, seed + 20), &[0, 1, 2, 1]);
            assert!(err < 2e-2, "seed {seed}, n {n}: relative error {err}");
        }
    }

    #[test]
    fn code_is_a_unit_vector_or_zero() {
        let net = KhNet::init(&ReferenceBackend, config(16, |_| {}), 12, 3, 4);
        let mut x = uniform(3, 12, 0.0, 1.0, 5);
        x.row_mut(2).fill(0.0);
        let h = net.code(&x);
        for i in 0..2 {
            let norm = h.row(i).iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "row {i}: ‖ĥ‖ = {norm}");
        }
        assert!(h.row(2).iter().all(|&v| v == 0.0), "no response, no code");
        // The zero input still has a finite gradient.
        let (_, g) = net.loss_and_input_gradient(&x, &[0, 1, 2]);
        assert!(g.all_finite());
    }

    /// Trains `epochs` epochs of full-batch steps on `x`; returns each epoch's mean loss and the
    /// parameters after each epoch.
    pub(crate) fn train<R: LearningRule<Ref>>(
        rule: &mut R,
        model: &mut R::Model,
        x: &Matrix,
        labels: &[usize],
        epochs: usize,
    ) -> Vec<(f32, Params)> {
        (0..epochs)
            .map(|e| {
                rule.start_epoch(e, epochs);
                let mut loss = 0.0;
                for chunk in 0..2 {
                    let rows: Vec<usize> = (0..x.rows()).filter(|i| i % 2 == chunk).collect();
                    let labels: Vec<usize> = rows.iter().map(|&i| labels[i]).collect();
                    let r = rule.train_batch(model, &x.select_rows(&rows), &labels).expect("finite");
                    assert!(r.loss.is_finite() && (0.0..=1.0).contains(&r.active_fraction));
                    loss += r.loss / 2.0;
                }
                (loss, model.to_params())
            })
            .collect()
    }

    /// Which of `names` changed between two parameter sets.
    pub(crate) fn changed(a: &Params, b: &Params, name: &str) -> bool {
        tensor(a, name) != tensor(b, name)
    }

    #[test]
    fn hidden_learns_first_then_only_the_readout() {
        let cfg = config(8, |c| c.hidden_epochs = 3);
        let mut rule = KhRule::<Ref>::new(cfg);
        let mut net = rule.init_model(&ReferenceBackend, 8, 2, 3);
        let (x, labels) = two_blobs(16, 8, 4);
        let start = net.to_params();
        let history = train(&mut rule, &mut net, &x, &labels, 8);
        let params: Vec<&Params> = std::iter::once(&start).chain(history.iter().map(|(_, p)| p)).collect();
        for e in 0..8 {
            let (before, after) = (params[e], params[e + 1]);
            let unsupervised = e < 3;
            assert_eq!(changed(before, after, "hidden.0.weight"), unsupervised, "epoch {e}: hidden weights");
            assert_eq!(changed(before, after, "readout.weight"), !unsupervised, "epoch {e}: readout");
            assert_eq!(changed(before, after, "readout.bias"), !unsupervised, "epoch {e}: readout bias");
            assert!(after.tensors.iter().all(|(_, m)| m.all_finite()));
        }
        let losses: Vec<f32> = history.iter().map(|(l, _)| *l).collect();
        assert!(losses[3..].windows(2).all(|w| w[1] < w[0]), "the readout learns the two blobs: {losses:?}");
        assert!(losses[7] < 0.7 * losses[3], "the readout learns the two blobs: {losses:?}");
    }

    #[test]
    fn schedule_anneals_over_the_unsupervised_epochs_only() {
        assert_eq!(phase_split(10, 20), 10);
        assert_eq!(phase_split(10, 8), 4);
        assert_eq!(phase_split(10, 1), 0);
        let s: Vec<Schedule> = (0..6).map(|e| Schedule::at(0.4, 4, e, 6)).collect();
        assert_eq!(s.iter().map(|s| s.unsupervised).collect::<Vec<_>>(), [true, true, true, false, false, false]);
        assert_eq!(s[0].rate, 0.4);
        assert!((s[2].rate - 0.4 / 3.0).abs() < 1e-7);
        assert_eq!(s[3].rate, 0.0);
    }

    /// Saves before batch `resume_at` (even: the first of an epoch's two batches, after its
    /// `start_epoch`), then checks that the epoch's two batches from the saved state (a new rule and
    /// a model rebuilt from parameters) equal the uninterrupted run bit for bit.
    pub(crate) fn check_resume<R: LearningRule<Ref>>(
        make: impl Fn() -> R,
        input_dim: usize,
        epochs: usize,
        resume_at: usize,
    ) {
        let b = ReferenceBackend;
        let (x, labels) = two_blobs(8, input_dim, 9);
        let mut rule = make();
        let mut model = rule.init_model(&b, input_dim, 2, 1);
        let (mut saved, mut saved_params) = (None, None);
        let mut step = 0;
        let mut uninterrupted = None;
        'run: for e in 0..epochs {
            rule.start_epoch(e, epochs);
            for _ in 0..2 {
                if step == resume_at {
                    saved = Some(rule.save_state(&model));
                    saved_params = Some(model.to_params());
                }
                rule.train_batch(&mut model, &x, &labels).expect("finite");
                step += 1;
                if step == resume_at + 2 {
                    uninterrupted = Some(model.to_params());
                    break 'run;
                }
            }
        }
        let mut resumed_rule = make();
        let mut resumed =
            resumed_rule.model_from_params(&b, input_dim, 2, &saved_params.expect("saved")).expect("fits");
        resumed_rule.restore_state(&resumed, saved.expect("saved")).expect("restores");
        for _ in 0..2 {
            resumed_rule.train_batch(&mut resumed, &x, &labels).expect("finite");
        }
        assert_eq!(resumed.to_params(), uninterrupted.expect("ran"));
    }

    #[test]
    fn resumes_bit_for_bit() {
        let make = || KhRule::<Ref>::new(config(6, |c| c.hidden_epochs = 2));
        check_resume(make, 8, 6, 2); // inside the unsupervised phase (epoch 1)
        check_resume(make, 8, 6, 4); // at the first readout step (no moments yet)
        check_resume(make, 8, 6, 6); // after two readout steps (Adam moments set)
    }

    #[test]
    fn refuses_another_rules_state_and_wrong_shapes() {
        let b = ReferenceBackend;
        let mut rule = KhRule::<Ref>::new(config(6, |_| {}));
        let net = rule.init_model(&b, 8, 2, 1);
        let other = RuleState::encode("softhebb", &0u8);
        assert!(matches!(rule.restore_state(&net, other), Err(CoreError::Incompatible(_))));
        let bad = KhState {
            schedule: Schedule::default(),
            readout: ReadoutState { steps: 1, moments: vec![Matrix::zeros(1, 1); 4] },
        };
        assert!(rule.restore_state(&net, RuleState::encode("kh", &bad)).is_err());
        let mut params = net.to_params();
        params.tensors[0].1 = Matrix::zeros(5, 8);
        assert!(matches!(rule.model_from_params(&b, 8, 2, &params), Err(CoreError::Incompatible(_))));
    }

    #[test]
    fn params_round_trip_reproduces_the_logits() {
        let b = ReferenceBackend;
        let cfg = config(10, |_| {});
        let mut net = KhNet::init(&b, cfg.clone(), 12, 3, 7);
        random_readout(&mut net, 8);
        let back = KhNet::from_params(&b, cfg, 12, 3, &net.to_params()).expect("fits");
        let x = uniform(5, 12, 0.0, 1.0, 9);
        assert_eq!(net.logits(&x), back.logits(&x));
        let params = net.to_params();
        let names: Vec<&str> = params.tensors.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["hidden.0.weight", "readout.weight", "readout.bias"]);
    }

    #[test]
    fn check_names_the_flag() {
        let bad = |f: fn(&mut KhParams)| {
            let mut p = KhParams::default();
            f(&mut p);
            match p.check() {
                Err(CoreError::InvalidParam { name, .. }) => name,
                other => panic!("expected an invalid parameter, got {other:?}"),
            }
        };
        assert_eq!(bad(|p| p.p = 1.5), "kh-p");
        assert_eq!(bad(|p| p.k = 1), "kh-k");
        assert_eq!(bad(|p| p.delta = -0.1), "kh-delta");
        assert_eq!(bad(|p| p.n = 0.5), "kh-n");
        assert_eq!(bad(|p| p.hebbian_rate = f32::NAN), "kh-rate");
        assert_eq!(bad(|p| p.readout_rate = 0.0), "kh-readout-rate");
        assert_eq!(bad(|p| p.hidden = vec![100, 100]), "hidden");
        assert_eq!(bad(|p| p.hidden = vec![1]), "hidden");
        assert!(KhParams::default().check().is_ok());
    }

    #[test]
    fn settings_reach_their_fields() {
        let mut settings = crate::rules::Settings::new();
        for (flag, value) in [("kh-p", 3.0), ("kh-delta", 0.2), ("kh-n", 2.0), ("kh-rate", 0.1)] {
            settings.insert(flag.into(), serde_json::json!(value));
        }
        settings.insert("kh-k".into(), serde_json::json!(3));
        settings.insert("kh-hidden-epochs".into(), serde_json::json!(4));
        settings.insert("kh-readout-rate".into(), serde_json::json!(0.01));
        let c = config_from_settings::<KhRule<Ref>>(&[50], &settings).expect("valid");
        assert_eq!((c.p, c.k, c.delta, c.n, c.hebbian_rate), (3.0, 3, 0.2, 2.0, 0.1));
        assert_eq!((c.hidden_epochs, c.readout_rate, c.hidden.clone()), (4, 0.01, vec![50]));
    }

    /// Mean distance of the rows' `p`-norms from 1.
    fn sphere_distance(w: &Matrix, p: f32) -> f32 {
        let d: f32 = (0..w.rows())
            .map(|i| (w.row(i).iter().map(|v| v.abs().powf(p)).sum::<f32>().powf(1.0 / p) - 1.0).abs())
            .sum();
        d / w.rows() as f32
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]

        /// The paper's invariant: from an `N(0, 1)` start the rule itself pulls the rows toward the
        /// unit `p`-sphere.
        #[test]
        fn weights_move_toward_the_unit_p_sphere(seed in 0u64..1000, p in prop::sample::select(vec![2.0f32, 3.0]), delta in 0.0f32..0.5) {
            let b = ReferenceBackend;
            let cfg = config(6, |c| { c.p = p; c.delta = delta; c.hebbian_rate = 0.05; });
            let mut w = KhNet::init(&b, cfg.clone(), 10, 2, seed).weights;
            let before = sphere_distance(&w, p);
            for step in 0..150u64 {
                let x = uniform(8, 10, 0.0, 1.0, seed.wrapping_mul(1000) + step);
                kh_plasticity(&b, &mut w, &x, &cfg, 0.05);
            }
            prop_assert!(w.all_finite());
            let after = sphere_distance(&w, p);
            prop_assert!(after < 0.8 * before, "mean |‖w‖_p − 1| {} → {}", before, after);
        }
    }
}
