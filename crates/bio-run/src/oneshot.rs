//! `bio eval oneshot`: Lake's 20 Omniglot one-shot runs on the shipped data, with the reference rows
//! (the Modified Hausdorff Distance, pixels) and, given a model directory, the model's rows; saved as
//! `DIR/oneshot.json`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use bio_core::{Backend, Classifier};
use bio_data::omniglot::{self, InkImage, OneShotRun};
use bio_eval::oneshot::{self as protocol, OneShotRow, OneShotRuns};
use serde::{Deserialize, Serialize};

use crate::EVAL_BATCH;
use crate::files::load_model;

/// Name of the file [`oneshot`] saves into the model directory.
pub use bio_data::model_dir::ONESHOT_FILE;

/// The one-shot table.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OneShotReport {
    /// Model directory (absent for the reference rows alone).
    pub model: Option<String>,
    /// The model's rule.
    pub rule: Option<String>,
    /// The dataset the model was trained on.
    pub dataset: Option<String>,
    /// Side the images were resized to for the pixel and model rows.
    pub side: usize,
    /// Runs scored.
    pub runs: usize,
    /// Rows: `mhd` first, then `pixels`, then the model's.
    pub rows: Vec<OneShotRow>,
    /// CRC-32 of the `model.ckpt` measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_crc32: Option<u32>,
    /// Where the table was saved.
    #[serde(skip)]
    pub saved_to: Option<PathBuf>,
}

/// The runs at `side × side` ([`InkImage::resize_area`]), stacked as the protocol takes them.
pub fn runs_at(runs: &[OneShotRun], side: usize) -> OneShotRuns {
    OneShotRuns {
        training: omniglot::to_matrix(runs.iter().flat_map(|r| &r.training), side),
        test: omniglot::to_matrix(runs.iter().flat_map(|r| &r.test), side),
        answers: runs.iter().map(|r| r.answers.clone()).collect(),
    }
}

fn points(images: &[InkImage]) -> Vec<Vec<[f64; 2]>> {
    images.iter().map(|im| protocol::ink_points_centred(&im.ink, im.width)).collect()
}

/// The Modified Hausdorff Distance row on the native images of `runs`.
pub fn mhd_row(runs: &[OneShotRun]) -> Result<OneShotRow> {
    let training: Vec<_> = runs.iter().map(|r| points(&r.training)).collect();
    let test: Vec<_> = runs.iter().map(|r| points(&r.test)).collect();
    let answers: Vec<_> = runs.iter().map(|r| r.answers.clone()).collect();
    Ok(OneShotRow::new(protocol::MHD, protocol::NO_CENTRING, protocol::mhd_errors(&training, &test, &answers)?))
}

/// The side of a square input of `dim` values, if it is one no larger than Omniglot's.
fn square_side(dim: usize) -> Option<usize> {
    let side = (dim as f64).sqrt().round() as usize;
    (side * side == dim && (1..=omniglot::NATIVE_SIDE).contains(&side)).then_some(side)
}

/// The one-shot table of a `model` (or the reference rows alone): the `mhd` and `pixels` rows (at
/// `side`, default the model's input side or [`omniglot::DEFAULT_SIDE`]), and with a model its hidden
/// layer `layer` (default the last) as activity and drive, plain and centred on the mean over the
/// background small 1 images (all 2720, the images models learn from). Returns the side and the rows.
pub fn table<B: Backend, M: Classifier<B>>(
    model: Option<&M>,
    side: Option<usize>,
    layer: Option<usize>,
) -> Result<(usize, Vec<OneShotRow>)> {
    let side = match (model, side) {
        (Some(model), asked) => {
            let dim = model.input_dim();
            let Some(s) = square_side(dim) else {
                bail!("the model takes {dim} inputs, not a square image of side at most {}", omniglot::NATIVE_SIDE);
            };
            if let Some(a) = asked.filter(|&a| a != s) {
                crate::invalid!("side", "{a}, but the model takes {s}×{s} images");
            }
            s
        }
        (None, Some(s)) if !(1..=omniglot::NATIVE_SIDE).contains(&s) => {
            crate::invalid!("side", "must be in 1..={}, got {s}", omniglot::NATIVE_SIDE)
        }
        (None, s) => s.unwrap_or(omniglot::DEFAULT_SIDE),
    };
    let runs = omniglot::all_runs()?;
    let background = omniglot::background_small1()?;
    let background = omniglot::to_matrix(background.iter().map(|b| &b.image), side);
    let stacked = runs_at(&runs, side);
    let mut rows = vec![mhd_row(&runs)?];
    rows.extend(protocol::feature_rows(
        protocol::PIXELS,
        &stacked.training,
        &stacked.test,
        &background,
        &stacked.answers,
    )?);
    if let Some(model) = model {
        rows.extend(protocol::model_rows(model, &stacked, &background, layer, EVAL_BATCH)?);
    }
    Ok((side, rows))
}

/// [`table`] for the model saved in `dir` (or the reference rows alone), saved as
/// `DIR/oneshot.json` when there is a model.
pub fn oneshot<B: Backend>(
    b: &B,
    dir: Option<&Path>,
    side: Option<usize>,
    layer: Option<usize>,
) -> Result<OneShotReport> {
    let loaded = dir.map(|d| load_model(b, d)).transpose()?;
    let (side, rows) = table(loaded.as_ref().map(|(_, m)| m), side, layer)?;
    let mut report = OneShotReport {
        model: dir.map(|d| d.display().to_string()),
        rule: None,
        dataset: None,
        side,
        runs: omniglot::RUNS,
        rows,
        model_crc32: None,
        saved_to: None,
    };
    if let (Some((file, _)), Some(dir)) = (loaded, dir) {
        report.rule = Some(file.model.rule().to_string());
        report.dataset = Some(file.dataset.clone());
        report.model_crc32 = Some(crate::files::model_crc32(dir)?);
        let path = dir.join(ONESHOT_FILE);
        bio_data::write_json(&path, &report).with_context(|| format!("saving {}", path.display()))?;
        report.saved_to = Some(path);
    }
    Ok(report)
}
