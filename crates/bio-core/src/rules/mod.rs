//! The [`LearningRule`] trait and its two implementations, generic over the backend.

mod bio;
mod bp;

pub use bio::{BioRule, hebbian_update, homeostasis, readout_update, regrow, structural_plasticity, synaptic_scaling};
pub use bp::BackpropRule;

use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::error::CoreError;
use crate::model::Classifier;

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
}

/// Counts predictions equal to the labels.
pub(crate) fn count_correct(predicted: &[usize], labels: &[usize]) -> usize {
    predicted.iter().zip(labels).filter(|(p, l)| p == l).count()
}

/// Fails with [`CoreError::Diverged`] if the loss is not finite.
pub(crate) fn check_finite(loss: f32, what: &str) -> Result<(), CoreError> {
    if loss.is_finite() {
        Ok(())
    } else {
        Err(CoreError::Diverged(format!("{what} loss became {loss}; lower the learning rate")))
    }
}
