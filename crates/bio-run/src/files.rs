//! The model directory's files beyond the checkpoints (which `bio_data::model_dir` owns):
//! `metrics.json` ([`TrainMetrics`]), `validation.json` ([`ValidationLog`]), and the JSON files the
//! evaluation entry points add (`robustness.json`, `fewshot.json`, `biology.json`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use bio_core::{Backend, Classifier};
use bio_data::ModelFile;
use serde::{Deserialize, Serialize};

/// One epoch's line in `metrics.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochLog {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss.
    pub loss: f32,
    /// Training accuracy (before each batch's update).
    pub train_accuracy: f32,
    /// Mean active fraction of the last hidden layer during training.
    pub active_fraction: f32,
    /// Seconds since training started.
    pub seconds: f64,
    /// Accuracy on the held-out validation images at the end of the epoch (`--validation N`); absent
    /// without validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_accuracy: Option<f32>,
    /// Fraction of the hidden synapses present at the end of the epoch (structural plasticity; all
    /// masks pooled); absent for a rule without masks and for the epochs before a `--resume`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synapses_kept: Option<f32>,
}

/// `metrics.json`: what a finished training session measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainMetrics {
    /// `bio` or `bp`.
    pub rule: String,
    /// Dataset name or directory.
    pub dataset: String,
    /// Where the data came from.
    pub data_source: String,
    /// Accuracy on the test set (of the trained classes).
    pub test_accuracy: f64,
    /// Number of test images.
    pub test_samples: usize,
    /// Accuracy on the validation images held out of the training set (`--validation N`); `None`
    /// without validation. Tune on this, not on `test_accuracy`.
    #[serde(default)]
    pub validation_accuracy: Option<f64>,
    /// Number of validation images held out of the training set (0: none).
    #[serde(default)]
    pub validation_samples: usize,
    /// Wall-clock training time.
    pub train_seconds: f64,
    /// Epochs.
    pub epochs: usize,
    /// The trained model's hidden widths ([`bio_core::rules::Rule::widths`]: `--hidden` for the
    /// dense rules, each layer's flattened output map for the conv rules).
    pub hidden: Vec<usize>,
    /// Seed.
    pub seed: u64,
    /// Backend name.
    pub backend: String,
    /// Per-epoch log.
    pub history: Vec<EpochLog>,
    /// Biological metrics on the test set.
    pub biology: bio_eval::BiologicalReport,
}

/// Writes `DIR/metrics.json`: what a finished training measured. The one writer of the file, for a
/// session that finishes and for a model saved from Python (`Model.save`), so that `bio report` and
/// `bio eval` find the same file whichever front end trained the model.
pub fn save_metrics(dir: &Path, metrics: &TrainMetrics) -> Result<()> {
    Ok(bio_data::write_json(dir.join(bio_data::model_dir::METRICS_FILE), metrics)?)
}

/// File name, in a model directory, of the validation accuracy after each completed epoch
/// ([`ValidationLog`]).
pub use bio_data::model_dir::VALIDATION_FILE;

/// `DIR/validation.json`: the validation accuracy after each completed epoch. The training state
/// (`state.ckpt`) has no place for it, so it is kept beside it, and written before it at each epoch
/// end, so that a resumed run's history has it too.
#[derive(Debug, Serialize, Deserialize)]
pub struct ValidationLog {
    /// Number of validation images.
    pub samples: usize,
    /// Accuracy after each completed epoch (`None` where unknown).
    pub accuracy: Vec<Option<f32>>,
}

/// The validation accuracies of the `epochs` epochs a resumed run in `dir` has completed, from its
/// [`ValidationLog`] (`None` for any the log lacks).
pub fn resumed_validation(dir: &Path, samples: usize, epochs: usize) -> Result<Vec<Option<f32>>> {
    let path = dir.join(VALIDATION_FILE);
    let mut accuracy = vec![None; epochs];
    if path.exists() {
        let log: ValidationLog = bio_data::read_json(&path).context("--resume")?;
        if log.samples != samples {
            crate::invalid!(
                "validation",
                "the resumed run in {} measured validation accuracy on {} images, this run holds out {samples}",
                dir.display(),
                log.samples
            );
        }
        for (slot, acc) in accuracy.iter_mut().zip(log.accuracy) {
            *slot = acc;
        }
    }
    Ok(accuracy)
}

pub use bio_data::model_dir::RUN_FILES;

/// Loads a model directory (or checkpoint file) and uploads the model to `b`.
pub fn load_model<B: Backend>(b: &B, dir: &Path) -> Result<(ModelFile, bio_core::AnyModel<B>)> {
    let file = bio_data::load_model(dir)?;
    let model = file.model.load(b).with_context(|| format!("loading {}", dir.display()))?;
    if model.input_dim() == 0 {
        bail!("{}: model has no inputs", dir.display());
    }
    Ok((file, model))
}

/// Reads `dir/name` as JSON: `Ok(None)` when absent, an error naming the file when unreadable.
pub fn read_saved<T: serde::de::DeserializeOwned>(dir: &Path, name: &str) -> Result<Option<T>> {
    let path: PathBuf = dir.join(name);
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(bio_data::read_json(&path)?))
}

/// Refuses to resume the run in `dir` whose saved `state` trained all its epochs and whose
/// `metrics.json` was written: resuming it
/// would only measure it again (and rewrite its `metrics.json` without the per-epoch history the
/// finished run recorded). The error says what can be done instead.
pub fn refuse_finished_resume(dir: &Path, state: &bio_data::TrainingState) -> Result<()> {
    // Killed between its last checkpoint and `metrics.json`: resuming it writes the metrics.
    let measured = dir.join(bio_data::model_dir::METRICS_FILE).exists();
    if measured && state.epoch >= state.epochs && state.progress.batches == 0 {
        bail!(
            "--resume: {} holds a finished run ({} of {} epochs trained): there is nothing to resume; to train a `bp` run longer give --epochs N (more than {}), to start again use --force",
            dir.display(),
            state.epoch,
            state.epochs,
            state.epochs
        );
    }
    Ok(())
}

/// A one-line note when the model directory `dir` holds a run that did not finish (interrupted,
/// or still training): its `model.ckpt` has fewer epochs than its `config.json` asks for, or it
/// has no `metrics.json`. `None` for a finished run, a checkpoint file, or a directory without a
/// `config.json` (a model saved outside a training run).
pub fn unfinished_note(dir: &Path) -> Option<String> {
    if !dir.is_dir() {
        return None;
    }
    let spec: crate::SessionSpec = bio_data::read_json(dir.join(bio_data::model_dir::CONFIG_FILE)).ok()?;
    let planned = spec.epochs();
    let done = bio_data::load_model(dir).map(|f| f.epochs).unwrap_or(0);
    let resume = format!("`bio train --resume {}` continues it", dir.display());
    if done < planned {
        Some(format!(
            "{} holds an UNFINISHED run: {done} of {planned} epochs trained (the results are those of the epoch-{done}              model); {resume}",
            dir.display()
        ))
    } else if !dir.join(bio_data::model_dir::METRICS_FILE).exists() {
        Some(format!("{} holds a run that did not finish (no metrics.json); {resume}", dir.display()))
    } else {
        None
    }
}

/// Writes a finished evaluation's results to `path` as JSON. A failure does not lose the results:
/// it is returned as one line (`saving PATH: why`) for the caller to report after presenting them,
/// and then to end with a failure status.
pub fn save_results<T: serde::Serialize>(path: &Path, value: &T) -> Option<String> {
    bio_data::write_json(path, value).err().map(|e| format!("saving {}: {e}", path.display()))
}

/// CRC-32 of a model directory's `model.ckpt` (or of the checkpoint file itself): what result files
/// record, so that results of another model (retrained into the same directory) are recognised.
pub fn model_crc32(dir: &Path) -> Result<u32> {
    let path = if dir.is_dir() { dir.join(bio_data::model_dir::CHECKPOINT_FILE) } else { dir.to_path_buf() };
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(crc32fast::hash(&bytes))
}

/// Whether a result file was measured on the model now in its directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provenance {
    /// It records the current checkpoint's checksum.
    Current,
    /// It records another checksum: measured on a model since replaced.
    OtherModel,
    /// It records none (written before checksums were recorded, or the model cannot be read).
    Unknown,
}

impl Provenance {
    /// Compares the checksum a result file recorded with the current `model_crc32`.
    pub fn of(recorded: Option<u32>, current: Option<u32>) -> Self {
        match (recorded, current) {
            (Some(r), Some(c)) if r == c => Provenance::Current,
            (Some(_), Some(_)) => Provenance::OtherModel,
            _ => Provenance::Unknown,
        }
    }
}
