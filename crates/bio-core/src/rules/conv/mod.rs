//! Convolutional local learning (`conv`) and its backprop control (`bpconv`), on [`ConvNet`].
//!
//! **`conv`**: each layer learns without labels, one after another (greedy, SoftHebb style): in the
//! epochs of layer `l` only its filters change, by the `bio` rule's multiplicative Hebbian step
//! with every output position of every image as one presynaptic pattern ([`conv_plasticity`]);
//! then the readout learns on the frozen features with Adam ([`ReadoutTrainer`]). The competition
//! across channels at each position is k-WTA or soft (the triangle in the forward pass, a softmax
//! of the drive as the plasticity signal). Per filter, synaptic scaling brings the weight norm back
//! to 1 after each step. With `--conv-plasticity softhebb` the filters follow SoftHebb's step
//! instead ([`softhebb_step`]: its own rate schedule, no scaling). `--conv-frozen` skips every
//! plasticity step (same architecture, same readout, same schedule): the random-features control.
//!
//! **`bpconv`**: the same architecture with ReLU, every weight trained by Adam on the
//! cross-entropy (exact gradients through [`ConvNet::backward`]); optionally on PGD adversarial
//! examples (Madry et al. 2018, [`AdversarialTraining`], shared with `bp`).

mod model;
pub mod whiten;

pub use model::{
    Activation, ConvInit, ConvLayer, ConvNet, EFFECTIVE_WEIGHT, LayerShape, LayerTrace, WHITEN, WIDE_RADIUS, Whitening,
    architecture, forward_words, image_of, parse_layers, parse_pools,
};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::adversarial::{self, AdversarialTraining};
use super::checks::{check_at_least, check_positive};
use super::frozen::{FeatureLayer, FrozenRule, FrozenState, LinearReadout, Phase, host_mean, score_batch};
use super::optim::{Adam, AdamState};
use super::softhebb::rule::{by_largest, soft_hebbian_change};
use super::{BatchReport, LearningRule, RngState, Rule, RuleOption, RuleState};
use crate::backend::{Backend, Binary, Dim, PlasticityStep, Reduce, Unary, WeightChange, row_norm};
use crate::error::CoreError;
use crate::forward::Op;
use crate::model::{Classifier, Params};
use crate::params::ScalingNorm;
use crate::tensor::Matrix;

/// Competition of the `conv` rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConvCompetition {
    /// k-WTA across channels at each position.
    Hard,
    /// Triangle forward, softmax plasticity signal.
    Soft,
}

crate::option_choices!(ConvCompetition { ConvCompetition::Hard => "hard", ConvCompetition::Soft => "soft" });
crate::option_choices!(ConvInit {
    ConvInit::Positive => "positive",
    ConvInit::Signed => "signed",
    ConvInit::Uniform => "uniform",
    ConvInit::Wide => "wide",
});

/// How the `conv` rule's filters change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConvPlasticity {
    /// The `bio` rule's multiplicative Hebbian step, then synaptic scaling to unit norm
    /// ([`conv_hebbian_step`]).
    Bio,
    /// SoftHebb's step (Journé et al. 2023): soft winner-take-all with anti-Hebbian losers, an
    /// Oja-like decay and a rate that shrinks as each filter's norm reaches 1 ([`softhebb_step`]).
    Softhebb,
    /// The `bio` step with each synapse's pull taken in its own sign ([`conv_hebbian_step`]):
    /// `|W|` grows where the pattern agrees with the weight's sign, so that every synapse of a
    /// signed filter is Hebbian (the `bio` step's pull is sign-blind: on a negative weight it is
    /// anti-Hebbian). The same as `bio` on a positive start.
    Aligned,
    /// Classic competitive learning (Grossberg's instar; Rumelhart & Zipser 1985): an additive step
    /// of each filter toward the patterns it wins, `W_j ← W_j + c·(Σ r_j p − wins_j·W_j)`, then unit
    /// norm ([`conv_hebbian_step`]). With one winner per position it is online spherical k-means
    /// (the dictionary of Coates & Ng 2011). Weights may change sign.
    Instar,
}

crate::option_choices!(ConvPlasticity {
    ConvPlasticity::Bio => "bio",
    ConvPlasticity::Softhebb => "softhebb",
    ConvPlasticity::Aligned => "aligned",
    ConvPlasticity::Instar => "instar",
});

/// Unchecked hyper-parameters of the `conv` rule. Call [`ConvParams::check`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConvParams {
    /// Unused: the architecture is `layers` (kept so that `--hidden` and checkpoints agree).
    pub hidden: Vec<usize>,
    /// Layers as `channels:kernel,…` (stride 1, padding `⌊k/2⌋`).
    pub layers: String,
    /// Max pooling after each layer, `kernel:stride:padding` or `none`.
    pub pool: String,
    /// Competition across channels: hard (k-WTA) or soft.
    pub competition: ConvCompetition,
    /// k-WTA density `ρ`: `k = round(ρ·C')` winners per position.
    pub density: f32,
    /// k-WTA density of the plasticity signal (the winners per position that learn, `k_learn =
    /// round(ρ_learn·C')`); `None`: `density`. The forward pass keeps `density`'s `k`.
    pub learn_density: Option<f32>,
    /// Temperature `τ` of the soft plasticity signal `softmax(u/τ)`.
    pub temperature: f32,
    /// Hebbian rate `η` (log-space step per unit of normalized pull, as `bio`'s `--hebbian-rate`).
    pub rate: f32,
    /// Unsupervised epochs per layer (the run's first `layers·this` epochs, at most half of it).
    pub layer_epochs: usize,
    /// Adam learning rate of the readout.
    pub readout_rate: f32,
    /// Initial filters: positive or signed (both unit L2 norm), or wide (SoftHebb's start).
    pub init: ConvInit,
    /// No plasticity at all: the random-features control.
    pub frozen: bool,
    /// Ridge `ε` of the first layer's patch whitening ([`whiten`]), relative to the mean
    /// eigenvalue; 0: no whitening.
    pub whiten: f32,
    /// How the filters change: the `bio` step or SoftHebb's.
    pub plasticity: ConvPlasticity,
    /// Remove each first-layer patch's own mean before whitening (a centre–surround stage).
    pub centre: bool,
}

impl Default for ConvParams {
    fn default() -> Self {
        Self {
            hidden: vec![2000],
            layers: "96:5".into(),
            pool: "4:2:1".into(),
            competition: ConvCompetition::Hard,
            density: 0.1,
            learn_density: None,
            temperature: 0.1,
            rate: 0.02,
            layer_epochs: 1,
            readout_rate: 1e-3,
            init: ConvInit::Positive,
            frozen: false,
            whiten: 0.0,
            plasticity: ConvPlasticity::Bio,
            centre: false,
        }
    }
}

/// Validated hyper-parameters of the `conv` rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConvConfig(ConvParams);

impl std::ops::Deref for ConvConfig {
    type Target = ConvParams;
    fn deref(&self) -> &ConvParams {
        &self.0
    }
}

impl ConvParams {
    /// Validates every field, naming the first bad one by its CLI flag.
    pub fn check(self) -> Result<ConvConfig, CoreError> {
        let layers = parse_layers("conv", &self.layers)?;
        parse_pools("conv-pool", &self.pool, layers.len())?;
        if !(self.density > 0.0 && self.density < 1.0) {
            return Err(CoreError::invalid("conv-density", format!("must be in (0, 1), got {}", self.density)));
        }
        if let Some(d) = self.learn_density {
            if !(d > 0.0 && d < 1.0) {
                return Err(CoreError::invalid("conv-learn-density", format!("must be in (0, 1), got {d}")));
            }
            if self.competition != ConvCompetition::Hard || self.plasticity == ConvPlasticity::Softhebb {
                return Err(CoreError::invalid(
                    "conv-learn-density",
                    "needs --conv-competition hard and the bio, aligned or instar step",
                ));
            }
        }
        check_positive("conv-temperature", self.temperature)?;
        check_at_least("conv-rate", self.rate, 0.0)?;
        check_positive("conv-readout-rate", self.readout_rate)?;
        check_at_least("conv-whiten", self.whiten, 0.0)?;
        if self.init == ConvInit::Uniform {
            return Err(CoreError::invalid("conv-init", "must be positive, signed or wide"));
        }
        if self.plasticity == ConvPlasticity::Softhebb && self.init == ConvInit::Positive {
            return Err(CoreError::invalid(
                "conv-init",
                "softhebb plasticity changes signs: start from signed or wide filters",
            ));
        }
        Ok(ConvConfig(self))
    }
}

impl ConvConfig {
    /// The architecture for inputs of `input_dim` pixels ([`image_of`]).
    pub fn shapes(&self, input_dim: usize) -> Result<Vec<LayerShape>, CoreError> {
        let layers = parse_layers("conv", &self.layers)?;
        architecture(image_of(input_dim), &layers, &parse_pools("conv-pool", &self.pool, layers.len())?)
    }

    /// Whether the first layer's patches pass a fixed transform (whitening, centring or both).
    pub fn whitens(&self) -> bool {
        self.whiten > 0.0 || self.centre
    }

    /// The forward competition.
    pub fn activation(&self) -> Activation {
        match self.competition {
            ConvCompetition::Hard => Activation::Kwta { density: self.density },
            ConvCompetition::Soft => Activation::Triangle,
        }
    }
}

/// Where the `conv` rule stands: the layer learning this epoch (`None`: the readout learns).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvSchedule {
    /// The layer whose filters learn this epoch, or `None` in the supervised phase.
    pub layer: Option<usize>,
}

impl Default for ConvSchedule {
    /// Before any `start_epoch`: the first layer learns.
    fn default() -> Self {
        Self { layer: Some(0) }
    }
}

impl Phase for ConvSchedule {
    fn trains_readout(&self) -> bool {
        self.layer.is_none()
    }
}

impl ConvSchedule {
    /// Epoch `epoch` of `epochs` with `layers` layers of `per_layer` epochs each: the first
    /// `U = min(layers·per_layer, ⌊epochs/2⌋)` epochs go to the layers in order (`⌊epoch·layers/U⌋`),
    /// the rest to the readout.
    pub fn at(layers: usize, per_layer: usize, epoch: usize, epochs: usize) -> Self {
        let u = super::phase_split(layers * per_layer, epochs);
        Self { layer: (epoch < u).then(|| epoch * layers / u) }
    }
}

/// The plasticity signal of the soft variant: `softmax(u/τ)` per position, gated to positions
/// with any activity (`Σ_c y > 0`), so that blank patches (constant drive) teach nothing.
pub fn soft_signal<B: Backend>(b: &B, trace: &LayerTrace<B::Tensor>, temperature: f32) -> B::Tensor {
    let (drive, activity) = trace.full();
    let soft = b.softmax_rows(&b.map(drive, Unary::Scale(1.0 / temperature)));
    let gate = b.map(&b.reduce(activity, Dim::PerRow, Reduce::Sum), Unary::Step);
    b.zip(&soft, &gate, Binary::Mul)
}

/// The Hebbian terms of one conv layer's step ([`conv_hebbian_terms`]): each neuron's
/// `wins_j = Σ_rows r_j` is summed by the plasticity step itself
/// ([`crate::PlasticityOps::plasticity_step_from_relative`], in its pass over `relative`).
#[derive(Clone, Debug)]
pub struct ConvTerms<T> {
    /// Relative activity `r` per position (`positions×C'`).
    pub relative: T,
    /// Pattern `p = P/‖P‖₂` per position (`positions×k·k·C`).
    pub pattern: T,
    /// The target fraction of active channels `ρ` (`k/C'` hard, `1/C'` soft).
    pub density: f32,
}

/// The Hebbian terms of one conv layer's step, the `bio` rule's form with positions as samples:
/// relative activity `r = y/max_c y` per position (hard: the trace's own where its forward pass
/// computed it, [`ConvNet::trace_for`], else [`crate::backend::ConvOps::relative_to_row_max`]; with
/// `--conv-learn-density`, of the drive's own k-WTA at `k_learn` winners) or
/// [`soft_signal`] (soft), pattern `p = P/‖P‖₂` per position
/// ([`crate::backend::ConvOps::unit_l2_rows`]), and the target fraction of active channels `ρ`
/// (`k/C'` hard, `1/C'` soft).
pub fn conv_hebbian_terms<B: Backend>(
    b: &B,
    trace: LayerTrace<B::Tensor>,
    config: &ConvConfig,
) -> ConvTerms<B::Tensor> {
    let (relative, density) = match config.competition {
        ConvCompetition::Hard => {
            let relative = if let Some(learn) = config.learn_density {
                let drive = trace.full().0;
                let k = crate::params::winners_at(learn, b.shape(drive).1);
                b.relative_to_row_max(&b.kwta_rows(drive, k + 1).1)
            } else {
                match trace.relative {
                    Some(r) => r,
                    None => b.relative_to_row_max(trace.full().1),
                }
            };
            let channels = b.shape(&relative).1;
            let k = crate::params::winners_at(config.learn_density.unwrap_or(config.density), channels);
            (relative, k as f32 / channels as f32)
        }
        ConvCompetition::Soft => {
            let soft = soft_signal(b, &trace, config.temperature);
            let channels = b.shape(&soft).1;
            (soft, 1.0 / channels as f32)
        }
    };
    let pattern = b.unit_l2_rows(&trace.patches);
    ConvTerms { relative, pattern, density }
}

/// One plastic step of a conv layer: [`conv_hebbian_terms`], then [`conv_hebbian_step`]
/// (`--conv-plasticity bio` or `aligned`), or [`softhebb_step`].
pub fn conv_plasticity<B: Backend>(
    b: &B,
    layer: &mut ConvLayer<B>,
    trace: LayerTrace<B::Tensor>,
    config: &ConvConfig,
    rate: f32,
) {
    match config.plasticity {
        ConvPlasticity::Bio | ConvPlasticity::Aligned | ConvPlasticity::Instar => {
            let terms = conv_hebbian_terms(b, trace, config);
            conv_hebbian_step(b, layer, terms, config, rate);
        }
        ConvPlasticity::Softhebb => softhebb_step(b, layer, &trace, config.temperature, rate),
    }
}

/// The exponent of SoftHebb's norm-dependent rate `η_j = η·|‖W_j‖₂ − 1|^this`.
pub const SOFTHEBB_RATE_POWER: f32 = 0.5;

/// SoftHebb's post-synaptic signal per position: `s = softmax(u/τ)` across channels, negated
/// for every channel but the position's strongest (`y_j = s_j` for the winner, `−s_j` for the
/// others: soft anti-Hebbian competition).
pub fn softhebb_signal<B: Backend>(b: &B, drive: &B::Tensor, temperature: f32) -> B::Tensor {
    let soft = b.softmax_rows(&b.map(drive, Unary::Scale(1.0 / temperature)));
    // relu(u − second largest) is positive at the strict winner only.
    let (_, top) = b.kwta_rows(drive, 2);
    let sign = b.map(&b.map(&top, Unary::Step), Unary::Scale(2.0));
    b.zip(&soft, &b.map(&sign, Unary::Offset(-1.0)), Binary::Mul)
}

/// SoftHebb's step (Journé et al. 2023, their `SoftHebbConv2d`): with `y` the
/// [`softhebb_signal`], `P` the layer's patches and `u` its drive, summed over every position of
/// every image, `Δ_j = Σ y_j p − (Σ y_j u_j)·W_j` (Oja-like: a filter stops moving where it
/// matches the patches it wins), `Δ ← Δ/max|Δ|`, and `W_j ← W_j + η_j Δ_j` with
/// `η_j = η·|‖W_j‖₂ − 1|^½` ([`SOFTHEBB_RATE_POWER`]): a filter's rate falls as its norm reaches 1.
/// No scaling, clipping or sign constraint: the norm's approach to 1 is the rule's own.
pub fn softhebb_step<B: Backend>(
    b: &B,
    layer: &mut ConvLayer<B>,
    trace: &LayerTrace<B::Tensor>,
    temperature: f32,
    rate: f32,
) {
    let channels = b.shape(&layer.weights).0;
    if channels < 2 {
        return;
    }
    let drive = trace.full().0;
    let y = softhebb_signal(b, drive, temperature);
    let delta = by_largest(b, &soft_hebbian_change(b, &layer.weights, &trace.patches, &y, drive));
    let norms = row_norm(b, &layer.weights, ScalingNorm::L2);
    let rates = b.map(
        &b.map(&b.map(&b.map(&norms, Unary::Offset(-1.0)), Unary::Abs), Unary::Offset(1e-10)),
        Unary::Powf(SOFTHEBB_RATE_POWER),
    );
    let step = b.zip(&delta, &b.map(&rates, Unary::Scale(rate)), Binary::Mul);
    b.zip_assign(&mut layer.weights, &step, Binary::Add);
}

/// A conv layer's multiplicative step from its Hebbian terms, with `s = η·√fan_in/(rows·ρ)`, `ρ`
/// the target fraction of active channels, and `wins_j = Σ_rows r_j`:
///
/// - `--conv-plasticity bio`: the backend's [`crate::PlasticityOps::plasticity_step_from_relative`],
///   `W_j ← W_j ⊙ exp(s·(Σ_rows r_j p − wins_j·|W_j|/‖W_j‖))` (the pull is sign-blind: on a signed
///   filter a negative weight's magnitude grows where the pattern is positive);
/// - `aligned`: each synapse's pull in its own sign,
///   `W_j ← W_j ⊙ exp(s·(sign(W_j) ⊙ Σ_rows r_j p − wins_j·|W_j|/‖W_j‖))`: a magnitude grows where
///   the patterns its filter wins agree with its sign and shrinks where they disagree, so the drive
///   `⟨W_j, p⟩` of a won pattern rises through every synapse. Composed from backend operations
///   ([`crate::backend::composed_plasticity_step`]); on a positive start it is the `bio` step;
/// - `instar`: competitive learning, additive, `W_j ← W_j + c·(Σ_rows r_j p − wins_j·W_j)` with
///   `c = η/(rows·ρ)` (`s` in weight units: the pull's entries are of order `1/√fan_in`), so that a
///   filter of average wins moves the fraction `η` of the way to the (relative-activity weighted)
///   mean of the unit patterns it won; composed from backend operations, signs may change.
///
/// Then `W_j ← W_j/‖W_j‖₂`. For `bio` and `aligned` a positive factor: no weight changes sign.
pub fn conv_hebbian_step<B: Backend>(
    b: &B,
    layer: &mut ConvLayer<B>,
    ConvTerms { relative, pattern, density }: ConvTerms<B::Tensor>,
    config: &ConvConfig,
    rate: f32,
) {
    let rows = b.shape(&relative).0;
    let (neurons, fan_in) = b.shape(&layer.weights);
    let step = PlasticityStep {
        step: rate * (fan_in as f32).sqrt() / (rows.max(1) as f32 * density),
        norm: ScalingNorm::L2,
        signed: config.init != ConvInit::Positive,
        change: WeightChange::Multiplicative,
        prune_below: None,
        scale_to: Some(1.0),
    };
    // The plasticity steps take a mask; every synapse of a conv filter is present.
    let all_present = || b.full(neurons, fan_in, 1.0);
    let wins = |relative: &B::Tensor| b.matmul(relative, true, &b.full(rows, 1, 1.0), false);
    match config.plasticity {
        ConvPlasticity::Instar => {
            let c = step.step / (fan_in as f32).sqrt();
            let decay = b.zip(&layer.weights, &wins(&relative), Binary::Mul);
            let delta = b.lincomb(c, &b.sparse_matmul(&relative, true, &pattern), -c, &decay);
            b.zip_assign(&mut layer.weights, &delta, Binary::Add);
            crate::backend::scale_synapses(b, &mut layer.weights, ScalingNorm::L2, 1.0);
        }
        ConvPlasticity::Aligned => {
            let pull =
                b.zip(&b.sparse_matmul(&relative, true, &pattern), &b.map(&layer.weights, Unary::Sign), Binary::Mul);
            let mut mask = all_present();
            crate::backend::composed_plasticity_step(b, &mut layer.weights, &mut mask, &pull, &wins(&relative), &step);
        }
        // `bio` (softhebb has its own step, [`softhebb_step`]).
        ConvPlasticity::Bio | ConvPlasticity::Softhebb => {
            b.plasticity_step_from_relative(&mut layer.weights, &mut all_present(), relative, pattern, &step)
        }
    }
}

/// The host form of a [`ConvRule`]'s state between batches.
pub type ConvState = FrozenState<ConvSchedule>;

/// The `conv` trainer: the schedule and the readout's Adam state. It draws no random numbers.
pub type ConvRule<B> = FrozenRule<ConvConfig, B>;

/// Builds the architecture or panics with the configuration's message (the configuration was
/// validated; only an input size the windows do not fit can fail here).
fn shapes_or_panic(config: &ConvConfig, input_dim: usize) -> Vec<LayerShape> {
    config.shapes(input_dim).unwrap_or_else(|e| panic!("conv architecture for {input_dim} inputs: {e}"))
}

/// The smallest square image of side at least 4 whose size `fits` (a 4×4 image at the default
/// architectures; the side is capped at 28).
fn example_image(fits: impl Fn(usize) -> bool) -> usize {
    (4..=28).map(|side| side * side).find(|&d| fits(d)).unwrap_or(28 * 28)
}

impl ConvConfig {
    /// The layer whose filters a batch of `schedule` changes: the schedule's, unless the filters
    /// are frozen or the rate is zero.
    fn learning_layer(&self, schedule: ConvSchedule) -> Option<usize> {
        schedule.layer.filter(|_| !self.frozen && self.rate > 0.0)
    }
}

impl<B: Backend> FeatureLayer<B> for ConvConfig {
    type Model = ConvNet<B>;
    type Schedule = ConvSchedule;
    /// Every layer's trace, and the features (the last layer's pooled output, flattened).
    type Trace = (Vec<LayerTrace<B::Tensor>>, B::Tensor);

    fn init(&self, backend: &B, input_dim: usize, classes: usize, seed: u64) -> ConvNet<B> {
        let shapes = shapes_or_panic(self, input_dim);
        ConvNet::init(backend, shapes, self.activation(), self.init, self.whitens(), input_dim, classes, seed)
    }

    fn model_from_params(
        &self,
        backend: &B,
        input_dim: usize,
        classes: usize,
        params: &Params,
    ) -> Result<ConvNet<B>, CoreError> {
        let shapes = self.shapes(input_dim)?;
        ConvNet::from_params(backend, shapes, self.activation(), self.whitens(), input_dim, classes, params)
    }

    /// Fits the first layer's whitening on the first batch's raw patches ([`whiten::patch_transform`]), in
    /// the learned net and in its frozen control alike.
    fn prepare(&self, b: &B, model: &mut ConvNet<B>, (traces, _): &Self::Trace) -> Result<bool, CoreError> {
        let Some(w) = model.whitening.as_mut().filter(|w| !w.fitted()) else { return Ok(false) };
        let patches = b.download(&traces[0].patches);
        w.matrix = b.upload(&whiten::patch_transform(&patches, self.whiten, self.centre)?);
        w.samples = patches.rows();
        Ok(true)
    }

    /// [`ConvSchedule::at`].
    fn schedule(&self, epoch: usize, epochs: usize) -> ConvSchedule {
        let layers = parse_layers("conv", &self.layers).map(|l| l.len()).unwrap_or(1);
        ConvSchedule::at(layers, self.layer_epochs, epoch, epochs)
    }

    fn readout_rate(&self) -> f32 {
        self.readout_rate
    }

    fn readout(model: &ConvNet<B>) -> &LinearReadout<B> {
        &model.readout
    }

    fn readout_mut(model: &mut ConvNet<B>) -> &mut LinearReadout<B> {
        &mut model.readout
    }

    /// [`ConvNet::trace_for`] the layer a Hebbian step of `schedule` will change (the `bio` step
    /// with k-WTA takes its relative activity from the forward pass).
    fn trace(&self, model: &ConvNet<B>, x: &B::Tensor, schedule: ConvSchedule) -> Self::Trace {
        let fused = matches!(self.plasticity, ConvPlasticity::Bio | ConvPlasticity::Aligned | ConvPlasticity::Instar)
            && self.competition == ConvCompetition::Hard
            && self.learn_density.is_none();
        let traces = model.trace_for(x, self.learning_layer(schedule).filter(|_| fused));
        let features = model.features(&traces);
        (traces, features)
    }

    fn features(trace: &Self::Trace) -> &B::Tensor {
        &trace.1
    }

    /// The last layer's channels over all positions.
    fn active_fraction(b: &B, (traces, _): &Self::Trace) -> f32 {
        let last = traces.last().expect("at least one layer");
        last.fraction_positive.unwrap_or_else(|| b.fraction_positive(last.full().1))
    }

    /// [`conv_plasticity`] of the schedule's layer (none when frozen).
    fn learn(
        &self,
        b: &B,
        model: &mut ConvNet<B>,
        _x: &B::Tensor,
        (mut traces, _): Self::Trace,
        schedule: ConvSchedule,
    ) {
        if let Some(l) = self.learning_layer(schedule) {
            conv_plasticity(b, &mut model.layers[l], traces.swap_remove(l), self, self.rate);
        }
    }

    fn check_schedule(schedule: &ConvSchedule, model: &ConvNet<B>) -> Result<(), CoreError> {
        if schedule.layer.is_some_and(|l| l >= model.layers.len()) {
            return Err(CoreError::Incompatible("the conv schedule names a layer this network lacks".into()));
        }
        Ok(())
    }
}

/// Peak host copies of the largest weight-sized tensor while training (patches, pattern, drive,
/// activity and their gradients dominate; the filters themselves are small).
pub const CONV_COPIES_PER_WEIGHT: u64 = 6;

impl<B: Backend> Rule for ConvRule<B> {
    const NAME: &'static str = "conv";
    const SUMMARY: &'static str = "convolutional local learning: per-position k-WTA (or soft) competition across channels, the bio rule's multiplicative Hebbian step over positions, greedy layers, max pooling, Adam readout";
    const FORWARD: &'static str = "conv layers (unfold, product, competition across channels, max pool), then a linear readout; \
        the exported forward text gives the constants.";
    const OPTIONS: &'static [RuleOption] = &[
        crate::rule_option!(
            ConvParams,
            "conv",
            layers,
            "layers as channels:kernel,… (stride 1, zero padding kernel/2, each followed by --conv-pool)"
        ),
        crate::rule_option!(
            ConvParams,
            "conv-pool",
            pool,
            "max pooling after each layer, kernel:stride:padding, or none; one for all layers or one per layer, comma-separated (4:2:1,7:7:0)"
        ),
        crate::rule_option!(
            ConvParams,
            "conv-competition",
            competition,
            "hard (k-WTA across channels per position) or soft (triangle forward, softmax(u/τ) plasticity)"
        ),
        crate::rule_option!(ConvParams, "conv-density", density, "k-WTA density ρ, k = round(ρ·channels)"),
        crate::rule_option!(
            ConvParams,
            "conv-learn-density",
            learn_density,
            "k-WTA density of the plasticity signal: the winners per position that learn (default: --conv-density); the forward pass keeps --conv-density"
        ),
        crate::rule_option!(
            ConvParams,
            "conv-temperature",
            temperature,
            "temperature τ of the soft plasticity signal (and of softhebb's)"
        ),
        crate::rule_option!(ConvParams, "conv-rate", rate, "Hebbian rate η of the filters"),
        crate::rule_option!(
            ConvParams,
            "conv-layer-epochs",
            layer_epochs,
            "unsupervised epochs per layer, greedy, first (at most half the run)"
        ),
        crate::rule_option!(ConvParams, "conv-readout-rate", readout_rate, "Adam rate of the readout"),
        crate::rule_option!(
            ConvParams,
            "conv-init",
            init,
            "initial filters: positive or signed (unit norm), or wide (Gaussian, norm about 25: SoftHebb's start)"
        ),
        crate::rule_option!(
            ConvParams,
            "conv-plasticity",
            plasticity,
            "how filters change: bio (multiplicative Hebbian step, scaled to unit norm), aligned (the bio step with each synapse's pull in its own sign: Hebbian for negative weights too), instar (competitive learning: an additive step toward the won patterns, W += c·(Σ r p − wins·W), unit norm; signs may change) or softhebb (soft WTA with anti-Hebbian losers, Oja-like decay, norm-dependent rate; --conv-rate is its η, --conv-temperature its τ)"
        ),
        crate::rule_option!(
            ConvParams,
            "conv-frozen",
            frozen,
            "no plasticity, filters stay at their initialization (random-features control)"
        ),
        crate::rule_option!(
            ConvParams,
            "conv-whiten",
            whiten,
            "whiten the first layer's patches (ZCA of their uncentred second moment, fitted on the first batch) with ridge ε = this × the mean eigenvalue; 0: off"
        ),
        crate::rule_option!(
            ConvParams,
            "conv-centre",
            centre,
            "take each first-layer patch's own mean away before --conv-whiten (a centre-surround stage, fitted with the whitening)"
        ),
    ];
    const DEFAULT_EPOCHS: usize = 10;
    const SCHEDULE_DEPENDS_ON_EPOCHS: bool = true;
    const COPIES_PER_WEIGHT: u64 = CONV_COPIES_PER_WEIGHT;
    type Params = ConvParams;
    type Config = ConvConfig;

    fn forward_pass(config: &ConvConfig, input_dim: usize, _classes: usize) -> Result<Vec<Op>, CoreError> {
        Ok(forward_ops(&config.shapes(input_dim)?, config.activation(), config.whitens(), input_dim))
    }

    fn forward_text(config: &ConvConfig, input_dim: usize, classes: usize) -> String {
        match config.shapes(input_dim) {
            Ok(shapes) => forward_words(&shapes, config.activation(), config.whitens(), classes),
            Err(e) => format!("{} (architecture does not fit {input_dim} inputs: {e})", Self::FORWARD),
        }
    }

    /// The conv rules read their input as a square image: the smallest one (side ≥ 4) that the
    /// architecture accepts.
    fn example_input_dim(config: &ConvConfig) -> usize {
        example_image(|d| config.shapes(d).is_ok())
    }

    fn check(params: ConvParams) -> Result<ConvConfig, CoreError> {
        params.check()
    }

    fn hidden(config: &ConvConfig) -> &[usize] {
        &config.hidden
    }

    /// Each layer's output map (pooled when pooling is on), flattened: `h·w·C'` per layer.
    fn widths(config: &ConvConfig, input_dim: usize) -> Result<Vec<usize>, CoreError> {
        Ok(flat_widths(&config.shapes(input_dim)?))
    }

    /// The rule draws no random numbers: `seed` is unused.
    fn new(config: ConvConfig, _seed: u64) -> Self {
        FrozenRule::new(config)
    }
}

// ============================================================================================
// bpconv: the backprop control
// ============================================================================================

/// Unchecked hyper-parameters of the `bpconv` rule. Call [`BpConvParams::check`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BpConvParams {
    /// Unused: the architecture is `layers`.
    pub hidden: Vec<usize>,
    /// Layers as `channels:kernel,…`, as `conv`.
    pub layers: String,
    /// Max pooling after each layer, as `conv`.
    pub pool: String,
    /// Adam learning rate of every weight.
    pub rate: f32,
    /// L∞ radius of PGD adversarial training; 0 trains on clean inputs.
    pub adversarial_eps: f32,
    /// PGD steps per batch (step size `2.5·ε/steps`, random start; see [`AdversarialTraining`]).
    pub adversarial_steps: usize,
}

impl Default for BpConvParams {
    fn default() -> Self {
        Self {
            hidden: vec![2000],
            layers: "96:5".into(),
            pool: "4:2:1".into(),
            rate: 1e-3,
            adversarial_eps: 0.0,
            adversarial_steps: adversarial::DEFAULT_STEPS,
        }
    }
}

/// Validated hyper-parameters of the `bpconv` rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BpConvConfig(BpConvParams);

impl std::ops::Deref for BpConvConfig {
    type Target = BpConvParams;
    fn deref(&self) -> &BpConvParams {
        &self.0
    }
}

impl BpConvParams {
    /// Validates every field, naming the first bad one by its CLI flag.
    pub fn check(self) -> Result<BpConvConfig, CoreError> {
        let layers = parse_layers("bpconv", &self.layers)?;
        parse_pools("bpconv-pool", &self.pool, layers.len())?;
        check_positive("bpconv-rate", self.rate)?;
        self.adversarial().check("bpconv-adversarial-eps", "bpconv-adversarial-steps")?;
        Ok(BpConvConfig(self))
    }

    /// The PGD adversarial training these params ask for.
    pub fn adversarial(&self) -> AdversarialTraining {
        AdversarialTraining { eps: self.adversarial_eps, steps: self.adversarial_steps }
    }

    /// The architecture for inputs of `input_dim` pixels ([`image_of`]).
    pub fn shapes(&self, input_dim: usize) -> Result<Vec<LayerShape>, CoreError> {
        let layers = parse_layers("bpconv", &self.layers)?;
        architecture(image_of(input_dim), &layers, &parse_pools("bpconv-pool", &self.pool, layers.len())?)
    }
}

/// The host form of a [`BpConvRule`]'s state: Adam's step count and moments, and the random
/// stream of the adversarial starts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BpConvState {
    /// Adam steps taken.
    pub steps: u64,
    /// `(m, v)` per parameter in [`Classifier::to_params`] order, or empty before the first step.
    pub moments: Vec<Matrix>,
    /// The random stream.
    pub rng: RngState,
}

/// The `bpconv` trainer: Adam on every weight, optionally on PGD examples.
#[derive(Clone, Debug)]
pub struct BpConvRule<B: Backend> {
    config: BpConvConfig,
    adam: Adam<B>,
    rng: ChaCha8Rng,
}

/// Mutable references to every parameter of `net`, in [`Classifier::to_params`] order.
fn parameters_mut<B: Backend>(net: &mut ConvNet<B>) -> Vec<&mut B::Tensor> {
    let mut out = Vec::new();
    for l in net.layers.iter_mut() {
        out.push(&mut l.weights);
        out.push(&mut l.bias);
    }
    out.push(&mut net.readout.weights);
    out.push(&mut net.readout.bias);
    out
}

impl<B: Backend> LearningRule<B> for BpConvRule<B> {
    type Model = ConvNet<B>;

    fn name(&self) -> &'static str {
        <Self as Rule>::NAME
    }

    fn init_model(&self, backend: &B, input_dim: usize, classes: usize, seed: u64) -> ConvNet<B> {
        let shapes =
            self.config.shapes(input_dim).unwrap_or_else(|e| panic!("bpconv architecture for {input_dim} inputs: {e}"));
        ConvNet::init(backend, shapes, Activation::Relu, ConvInit::Uniform, false, input_dim, classes, seed)
    }

    fn model_from_params(
        &self,
        backend: &B,
        input_dim: usize,
        classes: usize,
        params: &Params,
    ) -> Result<ConvNet<B>, CoreError> {
        ConvNet::from_params(
            backend,
            self.config.shapes(input_dim)?,
            Activation::Relu,
            false,
            input_dim,
            classes,
            params,
        )
    }

    fn start_epoch(&mut self, _epoch: usize, _epochs: usize) {}

    /// One Adam step on the mean cross-entropy of the batch (or of its PGD examples); the report
    /// is of the clean batch, before the update.
    fn train_batch(
        &mut self,
        model: &mut ConvNet<B>,
        x: &B::Tensor,
        labels: &[usize],
    ) -> Result<BatchReport, CoreError> {
        let b = model.backend().clone();
        let traces = model.trace(x);
        let features = model.features(&traces);
        let logits = model.readout.logits(&b, &features);
        let (loss, correct, dlogits) = score_batch(&b, &logits, labels, model.classes(), "bpconv")?;
        let active_fraction = host_mean(&b, &b.map(traces.last().expect("at least one layer").full().1, Unary::Step));
        let adversarial = self.config.adversarial().examples(model, x, labels, &mut self.rng);
        let (traces, features, dlogits) = if let Some(adv) = adversarial {
            let traces = model.trace(&adv);
            let features = model.features(&traces);
            let logits = model.readout.logits(&b, &features);
            let (_, _, dlogits) = score_batch(&b, &logits, labels, model.classes(), "bpconv adversarial")?;
            (traces, features, dlogits)
        } else {
            (traces, features, dlogits)
        };
        let scale = 1.0 / labels.len().max(1) as f32;
        let g = model.readout.backward(&b, &dlogits);
        let (drives, _) = model.backward(&traces, &g);
        let mut grads = Vec::new();
        for (t, du) in traces.iter().zip(&drives) {
            grads.push(b.map(&b.matmul(du, true, &t.patches, false), Unary::Scale(scale)));
            grads.push(b.map(&b.reduce(du, Dim::PerCol, Reduce::Sum), Unary::Scale(scale)));
        }
        grads.extend(model.readout.gradients(&b, &features, &dlogits));
        self.adam.step(&b, &mut parameters_mut(model), &grads, self.config.rate);
        Ok(BatchReport { loss, correct, samples: labels.len(), active_fraction })
    }

    fn save_state(&self, model: &ConvNet<B>) -> RuleState {
        let b = model.backend();
        let adam = self.adam.save(b);
        let state = BpConvState { steps: adam.steps, moments: adam.moments, rng: RngState::capture(&self.rng) };
        RuleState::encode(<Self as Rule>::NAME, &state)
    }

    fn restore_state(&mut self, model: &ConvNet<B>, state: RuleState) -> Result<(), CoreError> {
        let state: BpConvState = state.decode(<Self as Rule>::NAME)?;
        let shapes: Vec<(usize, usize)> = model.to_params().tensors.iter().map(|(_, m)| m.shape()).collect();
        let adam = AdamState { steps: state.steps, moments: state.moments };
        self.adam.restore(model.backend(), &shapes, adam, "bpconv")?;
        self.rng = state.rng.restore();
        Ok(())
    }
}

impl<B: Backend> Rule for BpConvRule<B> {
    const NAME: &'static str = "bpconv";
    const SUMMARY: &'static str = "backprop control of conv: the same conv architecture with ReLU, Adam on every weight, optional PGD adversarial training";
    const FORWARD: &'static str = "conv layers (unfold, product, relu, max pool), then a linear readout; the exported forward text gives the constants.";
    const OPTIONS: &'static [RuleOption] = &[
        crate::rule_option!(BpConvParams, "bpconv", layers, "layers as channels:kernel,… as --conv"),
        crate::rule_option!(BpConvParams, "bpconv-pool", pool, "max pooling after each layer as --conv-pool"),
        crate::rule_option!(BpConvParams, "bpconv-rate", rate, "Adam learning rate"),
        crate::rule_option!(BpConvParams, "bpconv-adversarial-eps", adversarial_eps, adversarial::EPS_HELP),
        crate::rule_option!(BpConvParams, "bpconv-adversarial-steps", adversarial_steps, adversarial::STEPS_HELP),
    ];
    const DEFAULT_EPOCHS: usize = 10;
    const SCHEDULE_DEPENDS_ON_EPOCHS: bool = false;
    const COPIES_PER_WEIGHT: u64 = CONV_COPIES_PER_WEIGHT;
    type Params = BpConvParams;
    type Config = BpConvConfig;

    fn forward_pass(config: &BpConvConfig, input_dim: usize, _classes: usize) -> Result<Vec<Op>, CoreError> {
        Ok(forward_ops(&config.shapes(input_dim)?, Activation::Relu, false, input_dim))
    }

    fn forward_text(config: &BpConvConfig, input_dim: usize, classes: usize) -> String {
        match config.shapes(input_dim) {
            Ok(shapes) => forward_words(&shapes, Activation::Relu, false, classes),
            Err(e) => format!("{} (architecture does not fit {input_dim} inputs: {e})", Self::FORWARD),
        }
    }

    /// As `conv`'s: the smallest square image (side ≥ 4) that the architecture accepts.
    fn example_input_dim(config: &BpConvConfig) -> usize {
        example_image(|d| config.shapes(d).is_ok())
    }

    fn check(params: BpConvParams) -> Result<BpConvConfig, CoreError> {
        params.check()
    }

    fn hidden(config: &BpConvConfig) -> &[usize] {
        &config.hidden
    }

    /// Each layer's output map (pooled when pooling is on), flattened: `h·w·C'` per layer.
    fn widths(config: &BpConvConfig, input_dim: usize) -> Result<Vec<usize>, CoreError> {
        Ok(flat_widths(&config.shapes(input_dim)?))
    }

    fn new(config: BpConvConfig, seed: u64) -> Self {
        Self { config, adam: Adam::default(), rng: ChaCha8Rng::seed_from_u64(seed ^ 0xb9c0_4e3d) }
    }
}

/// The flattened width `h·w·C'` of each layer's output map: the model's hidden widths.
fn flat_widths(shapes: &[LayerShape]) -> Vec<usize> {
    shapes
        .iter()
        .map(|s| {
            let (h, w, c) = s.output();
            h * w * c
        })
        .collect()
}

#[cfg(test)]
mod tests;

/// The constants of a conv model's forward pass for export and `to_torch`: the input map, the
/// competition's kind, and per layer its kernel, padding, output channels, (k-WTA) winners per
/// position and pooling window (`[kernel, stride, padding]`, or null). A whitened first layer
/// convolves with its effective filters `W Z` ([`EFFECTIVE_WEIGHT`]).
fn forward_ops(shapes: &[LayerShape], activation: Activation, whiten: bool, input_dim: usize) -> Vec<Op> {
    let (height, width, channels) = image_of(input_dim);
    let mut ops = vec![Op::ToImage { height, width, channels }];
    for (i, s) in shapes.iter().enumerate() {
        ops.push(Op::Conv2d {
            weight: if whiten && i == 0 { EFFECTIVE_WEIGHT.into() } else { format!("conv.{i}.weight") },
            bias: format!("conv.{i}.bias"),
            kernel: s.conv.kernel,
            padding: s.conv.padding,
        });
        ops.push(match activation {
            Activation::Kwta { density } => Op::KWinners { k: crate::params::winners_at(density, s.channels) },
            Activation::Triangle => Op::Triangle,
            Activation::Relu => Op::Relu,
        });
        if let Some(p) = s.pool {
            ops.push(Op::MaxPool2d { kernel: p.kernel, stride: p.stride, padding: p.padding });
        }
    }
    ops.push(Op::FromImage);
    ops.push(Op::Linear { weight: "readout.weight".into(), bias: Some("readout.bias".into()) });
    ops
}
