//! The training loop shared by every rule and backend: batches in, reports out, divergence caught.

use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::error::CoreError;
use crate::rules::{BatchReport, LearningRule};
use crate::tensor::Matrix;

/// Totals over one epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    /// Mean training loss (over samples).
    pub loss: f32,
    /// Training accuracy measured on each batch before its update.
    pub accuracy: f32,
    /// Mean active fraction of the last hidden layer.
    pub active_fraction: f32,
    /// Samples seen.
    pub samples: usize,
}

/// Running totals of a partly done epoch: how many batches it has trained and the sums its
/// [`EpochReport`] is made of. Saved in checkpoints so a resumed epoch reports the same totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochProgress {
    /// Batches of this epoch already trained (the first ones of its deterministic order).
    pub batches: usize,
    /// `Σ loss·samples` over those batches.
    pub loss_sum: f64,
    /// `Σ active_fraction·samples`.
    pub active_sum: f64,
    /// Correct predictions.
    pub correct: usize,
    /// Samples seen.
    pub samples: usize,
}

impl EpochProgress {
    /// Adds one batch.
    pub fn add(&mut self, r: &BatchReport) {
        self.batches += 1;
        self.loss_sum += r.loss as f64 * r.samples as f64;
        self.active_sum += r.active_fraction as f64 * r.samples as f64;
        self.correct += r.correct;
        self.samples += r.samples;
    }

    /// The epoch's report from the totals so far.
    pub fn report(&self) -> EpochReport {
        let n = self.samples.max(1) as f64;
        EpochReport {
            loss: (self.loss_sum / n) as f32,
            accuracy: (self.correct as f64 / n) as f32,
            active_fraction: (self.active_sum / n) as f32,
            samples: self.samples,
        }
    }
}

/// Runs one epoch of `rule` on `model` over host batches `(images, labels)`, calling `on_batch`
/// after each. Stops with [`CoreError::Diverged`] at the first non-finite loss, leaving the caller's
/// last saved checkpoint as the one to keep.
pub fn train_epoch<B, R>(
    backend: &B,
    rule: &mut R,
    model: &mut R::Model,
    batches: impl IntoIterator<Item = (Matrix, Vec<usize>)>,
    mut on_batch: impl FnMut(&BatchReport),
) -> Result<EpochReport, CoreError>
where
    B: Backend,
    R: LearningRule<B>,
{
    let mut progress = EpochProgress::default();
    let done = train_epoch_from(backend, rule, model, batches, &mut progress, |_, _, _, r| {
        on_batch(r);
        ControlFlow::Continue(())
    })?;
    debug_assert!(done, "the callback never stops");
    Ok(progress.report())
}

/// Like [`train_epoch`], but resumable: `batches` are the epoch's batches not yet trained (the
/// caller skips the first `progress.batches`), `progress` accumulates the totals, and after each
/// batch `after_batch` sees the rule, the model and the totals, e.g. to write a checkpoint, and
/// may stop the epoch early with [`ControlFlow::Break`]. Returns `true` when every batch was
/// trained, `false` when `after_batch` stopped it.
pub fn train_epoch_from<B, R>(
    backend: &B,
    rule: &mut R,
    model: &mut R::Model,
    batches: impl IntoIterator<Item = (Matrix, Vec<usize>)>,
    progress: &mut EpochProgress,
    mut after_batch: impl FnMut(&R, &R::Model, &EpochProgress, &BatchReport) -> ControlFlow<()>,
) -> Result<bool, CoreError>
where
    B: Backend,
    R: LearningRule<B>,
{
    for (images, labels) in batches {
        if images.rows() != labels.len() {
            return Err(CoreError::Shape(format!("{} images but {} labels in a batch", images.rows(), labels.len())));
        }
        let x = backend.upload(&images);
        let report = rule.train_batch(model, &x, &labels)?;
        progress.add(&report);
        if after_batch(rule, model, progress, &report).is_break() {
            return Ok(false);
        }
    }
    Ok(true)
}
