//! The training loop shared by every rule and backend: batches in, reports out, divergence caught.

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
    let mut total = EpochReport::default();
    let (mut loss_sum, mut correct, mut active_sum) = (0.0f64, 0usize, 0.0f64);
    for (images, labels) in batches {
        if images.rows() != labels.len() {
            return Err(CoreError::Shape(format!("{} images but {} labels in a batch", images.rows(), labels.len())));
        }
        let x = backend.upload(&images);
        let report = rule.train_batch(model, &x, &labels)?;
        loss_sum += report.loss as f64 * report.samples as f64;
        active_sum += report.active_fraction as f64 * report.samples as f64;
        correct += report.correct;
        total.samples += report.samples;
        on_batch(&report);
    }
    let n = total.samples.max(1) as f64;
    total.loss = (loss_sum / n) as f32;
    total.accuracy = (correct as f64 / n) as f32;
    total.active_fraction = (active_sum / n) as f32;
    Ok(total)
}
