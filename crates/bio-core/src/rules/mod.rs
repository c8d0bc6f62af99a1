//! The [`LearningRule`] trait and its two implementations, generic over the backend.

mod bio;
mod bp;
mod kh;
mod softhebb;

pub use bio::{BioRule, hebbian_drive, hidden_plasticity, homeostasis, plasticity_settings, readout_update, regrow};
pub use bp::BackpropRule;
pub use kh::{
    KhConfig, KhNet, KhParams, KhRule, KhState, LinearReadout, ReadoutState, ReadoutTrainer, Schedule, kh_plasticity,
    phase_split,
};
pub use softhebb::{
    SOFTHEBB_INPUT_EPS, SoftHebbConfig, SoftHebbNet, SoftHebbParams, SoftHebbRule, SoftHebbState, softhebb_plasticity,
};

use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::error::CoreError;
use crate::model::Classifier;
use crate::tensor::Matrix;

/// What one training step observed (before its update).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchReport {
    /// Mean cross-entropy of the readout on the batch.
    pub loss: f32,
    /// Number of correctly classified samples in the batch.
    pub correct: usize,
    /// Batch size.
    pub samples: usize,
    /// Mean fraction of active units in the last hidden layer.
    pub active_fraction: f32,
}

/// A way of training a model, generic over the backend it runs on.
///
/// The rule owns its own state (optimizer moments, schedules, random streams); the model owns only
/// what is needed to use it.
pub trait LearningRule<B: Backend> {
    /// The model this rule trains.
    type Model: Classifier<B>;
    /// `"bio"` or `"bp"`.
    fn name(&self) -> &'static str;
    /// A freshly initialized model for `input_dim` inputs and `classes` classes.
    fn init_model(&self, backend: &B, input_dim: usize, classes: usize, seed: u64) -> Self::Model;
    /// Called before each epoch (0-based) so the rule can follow its schedule.
    fn start_epoch(&mut self, epoch: usize, epochs: usize);
    /// One update on a batch `x` (`batch×input_dim`) with its labels.
    fn train_batch(
        &mut self,
        model: &mut Self::Model,
        x: &B::Tensor,
        labels: &[usize],
    ) -> Result<BatchReport, CoreError>;
    /// Everything this rule carries from one batch to the next (schedule, random stream, optimizer
    /// moments), in host form, so that training can be checkpointed and resumed bit for bit.
    fn save_state(&self, model: &Self::Model) -> RuleState;
    /// Puts back a state from [`LearningRule::save_state`]; `model` is the model it will train (its
    /// shapes are checked). Errors with [`CoreError::Incompatible`] if the state belongs to the other
    /// rule or to another architecture.
    fn restore_state(&mut self, model: &Self::Model, state: RuleState) -> Result<(), CoreError>;
}

/// Position of a ChaCha8 random stream: seed, stream and 128-bit word position (split in two `u64`
/// so every serde format can hold it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    /// The 32-byte key the generator was seeded with.
    pub seed: [u8; 32],
    /// Stream number.
    pub stream: u64,
    /// High 64 bits of the word position.
    pub word_pos_hi: u64,
    /// Low 64 bits of the word position.
    pub word_pos_lo: u64,
}

impl RngState {
    /// Captures `rng`'s exact position.
    pub fn capture(rng: &rand_chacha::ChaCha8Rng) -> Self {
        let pos = rng.get_word_pos();
        Self {
            seed: rng.get_seed(),
            stream: rng.get_stream(),
            word_pos_hi: (pos >> 64) as u64,
            word_pos_lo: pos as u64,
        }
    }

    /// A generator at exactly the captured position.
    pub fn restore(&self) -> rand_chacha::ChaCha8Rng {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::from_seed(self.seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(((self.word_pos_hi as u128) << 64) | self.word_pos_lo as u128);
        rng
    }
}

/// A learning rule's state between two batches, in backend-free form (see [`LearningRule::save_state`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RuleState {
    /// State of [`BioRule`].
    Bio {
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
    },
    /// State of [`BackpropRule`].
    Bp {
        /// Optimizer steps taken.
        steps: u64,
        /// First and (Adam) second moments of each tensor, weights then bias of each layer; empty
        /// before the first step.
        moments: Vec<(Matrix, Option<Matrix>)>,
    },
}

impl RuleState {
    /// `"bio"` or `"bp"`: the rule this state belongs to.
    pub fn rule(&self) -> &'static str {
        match self {
            RuleState::Bio { .. } => "bio",
            RuleState::Bp { .. } => "bp",
        }
    }
}

/// Counts predictions equal to the labels.
pub(crate) fn count_correct(predicted: &[usize], labels: &[usize]) -> usize {
    predicted.iter().zip(labels).filter(|(p, l)| p == l).count()
}

/// A mean cross-entropy this many times that of a uniform guess (`ln C`) means training has blown up:
/// no model that learned anything is that confidently wrong on average.
pub const DIVERGENCE_FACTOR: f32 = 20.0;

/// Fails with [`CoreError::Diverged`] if the loss is not finite or exceeds
/// [`DIVERGENCE_FACTOR`]`·ln(classes)`.
pub(crate) fn check_loss(loss: f32, classes: usize, what: &str) -> Result<(), CoreError> {
    let limit = DIVERGENCE_FACTOR * (classes.max(2) as f32).ln();
    if !loss.is_finite() {
        // No advice here: which settings to change depends on the run, which the caller knows.
        Err(CoreError::Diverged(format!("{what} loss became {loss}")))
    } else if loss > limit {
        Err(CoreError::Diverged(format!(
            "{what} loss {loss:.1} exceeds {limit:.1} ({DIVERGENCE_FACTOR}× a uniform guess)"
        )))
    } else {
        Ok(())
    }
}
