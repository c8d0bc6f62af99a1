//! A model directory: `model.ckpt` (the checkpoint), `config.json` (how it was trained) and
//! `metrics.json` (what it scored), and the results the evaluations add beside them. Every file
//! name of a model directory is spelled here and nowhere else. Every file is written atomically. A run that can be resumed
//! also keeps `state.ckpt` ([`TrainingState`]): the model together with the rule's state and the
//! position in the run, in one file, so the two can never disagree.

use std::path::{Path, PathBuf};

use bio_core::SavedModel;
use bio_core::rules::RuleState;
use bio_core::train::{EpochProgress, EpochReport};
use serde::{Deserialize, Serialize};

use crate::error::DataError;
use crate::store::{load_checkpoint, save_checkpoint};

/// File name of the checkpoint inside a model directory.
pub const CHECKPOINT_FILE: &str = "model.ckpt";
/// File name of the resumable training state.
pub const STATE_FILE: &str = "state.ckpt";
/// File name of the training configuration.
pub const CONFIG_FILE: &str = "config.json";
/// File name of the metrics.
pub const METRICS_FILE: &str = "metrics.json";
/// File name of the validation accuracy after each completed epoch.
pub const VALIDATION_FILE: &str = "validation.json";
/// File name of the biological metrics (`bio eval metrics`).
pub const BIOLOGY_FILE: &str = "biology.json";
/// File name of the few-shot results (`bio eval fewshot`, `bio eval few-labels`).
pub const FEWSHOT_FILE: &str = "fewshot.json";
/// File name of the attacks' results (`bio eval robustness`).
pub const ROBUSTNESS_FILE: &str = "robustness.json";
/// File name of the Omniglot one-shot results (`bio eval oneshot`).
pub const ONESHOT_FILE: &str = "oneshot.json";
/// File name of the episodic N-way K-shot curves (`bio eval oneshot --episodes`).
pub const CURVES_FILE: &str = "oneshot-curves.json";
/// File name of the plot of those curves: accuracy against shots.
pub const CURVES_PLOT: &str = "oneshot-curves.png";
/// File name of a continual-learning run's results, in its output directory (`bio eval continual`).
pub const CONTINUAL_FILE: &str = "continual.json";
/// File name, in each run directory of a sweep, of that run's results.
pub const SWEEP_RUN_FILE: &str = "sweep-run.json";

/// Files of a model directory that belong to one trained model: its checkpoints and every result
/// measured on it. A fresh run into the directory removes them all (with `force`), or is refused.
pub const RUN_FILES: [&str; 11] = [
    CHECKPOINT_FILE,
    STATE_FILE,
    METRICS_FILE,
    VALIDATION_FILE,
    BIOLOGY_FILE,
    FEWSHOT_FILE,
    ROBUSTNESS_FILE,
    ONESHOT_FILE,
    CURVES_FILE,
    CURVES_PLOT,
    CONFIG_FILE,
];

/// What a checkpoint holds: the model and where it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    /// The model in backend-free form.
    pub model: SavedModel,
    /// Dataset name or directory it was trained on.
    pub dataset: String,
    /// Classes whose images it saw in training (all, unless trained on base classes only).
    pub trained_classes: Vec<usize>,
    /// Completed epochs.
    pub epochs: usize,
    /// Seed of the run.
    pub seed: u64,
    /// Version of biorule that wrote it.
    pub version: String,
}

/// Everything needed to continue a run exactly where it stopped (`DIR/state.ckpt`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingState {
    /// The model at the checkpoint, with its provenance.
    pub model: ModelFile,
    /// The learning rule's state at the checkpoint.
    pub rule: RuleState,
    /// Epochs of the whole run.
    pub epochs: usize,
    /// The epoch in progress (0-based); equal to `epochs` once training is complete.
    pub epoch: usize,
    /// How far the epoch in progress got (`batches == 0`: it has not started).
    pub progress: EpochProgress,
    /// Each completed epoch's report, with the training seconds at its end.
    pub history: Vec<(EpochReport, f64)>,
    /// Training seconds spent before the checkpoint.
    pub seconds: f64,
}

/// Writes `DIR/state.ckpt` atomically.
pub fn save_state(dir: &Path, state: &TrainingState) -> Result<(), DataError> {
    save_checkpoint(dir.join(STATE_FILE), state)
}

/// Reads `DIR/state.ckpt`.
pub fn load_state(dir: &Path) -> Result<TrainingState, DataError> {
    load_checkpoint(dir.join(STATE_FILE))
}

/// Paths of a model directory's files.
pub fn model_paths(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    (dir.join(CHECKPOINT_FILE), dir.join(CONFIG_FILE), dir.join(METRICS_FILE))
}

/// Writes `DIR/model.ckpt` atomically.
pub fn save_model(dir: &Path, file: &ModelFile) -> Result<(), DataError> {
    save_checkpoint(dir.join(CHECKPOINT_FILE), file)
}

/// Reads `DIR/model.ckpt` (or the file itself if `path` is a file).
pub fn load_model(path: &Path) -> Result<ModelFile, DataError> {
    let file = if path.is_dir() { path.join(CHECKPOINT_FILE) } else { path.to_path_buf() };
    let mut loaded: ModelFile = load_checkpoint(file)?;
    // Older conv checkpoints hold the unused `--hidden`; every reader sees the model's widths. (A
    // configuration that does not parse is refused where the model is loaded.)
    if let Ok(widths) = loaded.model.widths() {
        loaded.model.hidden = widths;
    }
    Ok(loaded)
}
