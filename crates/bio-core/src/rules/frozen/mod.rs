//! The scaffolding the frozen-feature rules (`kh`, `softhebb`, `conv`) share, written once: a
//! feature network that learns without labels in the first epochs of a run, then a linear readout
//! ([`LinearReadout`]) trained by Adam ([`ReadoutTrainer`]) on the frozen features.
//!
//! A rule says what is its own by implementing [`FeatureLayer`] on its validated configuration
//! (its network, forward pass, plasticity step and schedule); [`FrozenRule`] is then its
//! [`LearningRule`]: the phase split, the batch's score, the readout step and the checkpointed
//! state ([`FrozenState`]).

mod readout;

pub use readout::{LinearReadout, ReadoutState, ReadoutTrainer};
pub(crate) use readout::{host_mean, score_batch, score_batch_of};

use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{BatchReport, LearningRule, Rule, RuleState};
use crate::backend::Backend;
use crate::error::CoreError;
use crate::model::{Classifier, Params};
use crate::tensor::Matrix;

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

/// A `rows×cols` matrix of `N(0, 1)` draws, row by row: the start of the `kh` and `softhebb`
/// hidden weights (rows of norm ≈ √cols, far from the unit sphere their plasticity pulls them to).
pub fn unit_normal(rows: usize, cols: usize, rng: &mut ChaCha8Rng) -> Matrix {
    let normal = Normal::new(0.0f32, 1.0).expect("unit normal");
    Matrix::from_fn(rows, cols, |_, _| normal.sample(rng))
}

/// The schedule of a frozen-feature rule: which part of the network learns in an epoch.
pub trait Phase: Copy + Default + std::fmt::Debug + PartialEq + Serialize + DeserializeOwned + 'static {
    /// True when the readout learns (the features are frozen); otherwise the features learn.
    fn trains_readout(&self) -> bool;
}

impl Phase for Schedule {
    fn trains_readout(&self) -> bool {
        !self.unsupervised
    }
}

/// What a frozen-feature rule has of its own, implemented on its validated configuration: its
/// network (features, then a [`LinearReadout`]), the forward pass its plasticity needs, the
/// plasticity step and the schedule. [`FrozenRule`] does the rest.
pub trait FeatureLayer<B: Backend>: Clone + std::fmt::Debug + 'static {
    /// The network.
    type Model: Classifier<B> + Clone + 'static;
    /// Where the rule stands in its run (saved in checkpoints).
    type Schedule: Phase;
    /// The intermediate values of a batch's forward pass that the plasticity step needs.
    type Trace;
    /// A freshly initialized network for `input_dim` inputs and `classes` classes.
    fn init(&self, backend: &B, input_dim: usize, classes: usize, seed: u64) -> Self::Model;
    /// The network rebuilt from saved parameters (every shape checked).
    fn model_from_params(
        &self,
        backend: &B,
        input_dim: usize,
        classes: usize,
        params: &Params,
    ) -> Result<Self::Model, CoreError>;
    /// The schedule of epoch `epoch` (0-based) of `epochs`.
    fn schedule(&self, epoch: usize, epochs: usize) -> Self::Schedule;
    /// Adam learning rate of the readout.
    fn readout_rate(&self) -> f32;
    /// The network's readout.
    fn readout(model: &Self::Model) -> &LinearReadout<B>;
    /// The network's readout, to train it.
    fn readout_mut(model: &mut Self::Model) -> &mut LinearReadout<B>;
    /// The forward pass of a batch `x` up to the features, in an epoch of `schedule` (a layer that
    /// will learn may keep what its plasticity step needs from the same pass).
    fn trace(&self, model: &Self::Model, x: &B::Tensor, schedule: Self::Schedule) -> Self::Trace;
    /// The features the readout sees (`batch×features`).
    fn features(trace: &Self::Trace) -> &B::Tensor;
    /// The fraction of active feature units, for the batch's report.
    fn active_fraction(b: &B, trace: &Self::Trace) -> f32;
    /// One plasticity step of the features from a batch `x` and its trace, in an epoch of
    /// `schedule` that does not train the readout.
    fn learn(&self, b: &B, model: &mut Self::Model, x: &B::Tensor, trace: Self::Trace, schedule: Self::Schedule);
    /// Fits fixed input statistics of the model on the first batch it sees (its trace before any
    /// update); `true` when it changed the model, and then the batch makes no other update. The
    /// default fits nothing.
    fn prepare(&self, _b: &B, _model: &mut Self::Model, _trace: &Self::Trace) -> Result<bool, CoreError> {
        Ok(false)
    }

    /// Refuses a restored schedule that does not fit `model` (the default accepts any).
    fn check_schedule(_schedule: &Self::Schedule, _model: &Self::Model) -> Result<(), CoreError> {
        Ok(())
    }
}

/// The host form of a [`FrozenRule`]'s state between batches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrozenState<S> {
    /// The current epoch's schedule.
    pub schedule: S,
    /// The readout's optimizer.
    pub readout: ReadoutState,
}

/// A frozen-feature trainer: the configuration, the schedule and the readout's Adam state. It
/// draws no random numbers.
#[derive(Clone, Debug)]
pub struct FrozenRule<C: FeatureLayer<B>, B: Backend> {
    config: C,
    schedule: C::Schedule,
    trainer: ReadoutTrainer<B>,
}

impl<C: FeatureLayer<B>, B: Backend> FrozenRule<C, B> {
    /// A trainer with a fresh schedule and optimizer.
    pub fn new(config: C) -> Self {
        Self { config, schedule: C::Schedule::default(), trainer: ReadoutTrainer::default() }
    }

    /// The validated hyper-parameters.
    pub fn config(&self) -> &C {
        &self.config
    }

    /// The current epoch's schedule.
    pub fn schedule(&self) -> C::Schedule {
        self.schedule
    }
}

impl<C: FeatureLayer<B>, B: Backend> LearningRule<B> for FrozenRule<C, B>
where
    Self: Rule,
{
    type Model = C::Model;

    fn name(&self) -> &'static str {
        <Self as Rule>::NAME
    }

    fn init_model(&self, backend: &B, input_dim: usize, classes: usize, seed: u64) -> C::Model {
        self.config.init(backend, input_dim, classes, seed)
    }

    fn model_from_params(
        &self,
        backend: &B,
        input_dim: usize,
        classes: usize,
        params: &Params,
    ) -> Result<C::Model, CoreError> {
        self.config.model_from_params(backend, input_dim, classes, params)
    }

    /// Follows the rule's schedule ([`FeatureLayer::schedule`]).
    fn start_epoch(&mut self, epoch: usize, epochs: usize) {
        self.schedule = self.config.schedule(epoch, epochs);
    }

    /// One batch: while the features learn, a plasticity step ([`FeatureLayer::learn`]); then an
    /// Adam step of the readout. The report is measured before the update.
    fn train_batch(&mut self, model: &mut C::Model, x: &B::Tensor, labels: &[usize]) -> Result<BatchReport, CoreError> {
        let b = model.backend().clone();
        let trace = self.config.trace(model, x, self.schedule);
        let features = C::features(&trace);
        let logits = C::readout(model).logits(&b, features);
        let what = format!("{} readout", <Self as Rule>::NAME);
        // While the hidden layers learn, the readout is frozen at its start: a large loss of it
        // is not a divergence (a wide start's large features give large random logits).
        let trained = self.schedule.trains_readout();
        let (loss, correct, dlogits) = score_batch_of(&b, &logits, labels, model.classes(), &what, trained)?;
        let active_fraction = C::active_fraction(&b, &trace);
        if self.config.prepare(&b, model, &trace)? {
            // The batch fitted the input statistics: no update on features seen before them.
        } else if self.schedule.trains_readout() {
            self.trainer.step(&b, C::readout_mut(model), features, &dlogits, self.config.readout_rate());
        } else {
            self.config.learn(&b, model, x, trace, self.schedule);
        }
        Ok(BatchReport { loss, correct, samples: labels.len(), active_fraction })
    }

    fn save_state(&self, model: &C::Model) -> RuleState {
        let state = FrozenState { schedule: self.schedule, readout: self.trainer.save(model.backend()) };
        RuleState::encode(<Self as Rule>::NAME, &state)
    }

    fn restore_state(&mut self, model: &C::Model, state: RuleState) -> Result<(), CoreError> {
        let state: FrozenState<C::Schedule> = state.decode(<Self as Rule>::NAME)?;
        C::check_schedule(&state.schedule, model)?;
        self.trainer.restore(model.backend(), C::readout(model), state.readout)?;
        self.schedule = state.schedule;
        Ok(())
    }
}
