//! `bio eval oneshot`: Lake's 20 Omniglot one-shot runs on the shipped data, with the reference rows
//! (the Modified Hausdorff Distance, pixels) and, given a model directory, the model's rows; saved as
//! `DIR/oneshot.json`. With `--episodes`, the episodic N-way K-shot curves on the classes the model
//! never saw ([`curves`]), saved as `DIR/oneshot-curves.json` with a plot of accuracy against K.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use bio_core::{Backend, Classifier, Matrix, SavedModel};
use bio_data::omniglot::{self, InkImage, OneShotRun};
use bio_data::{Dataset, ModelFile};
use bio_eval::Series;
use bio_eval::oneshot::{self as protocol, CurveParams, CurveRow, OneShotRow, OneShotRuns};
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

pub use bio_data::model_dir::{CURVES_FILE, CURVES_PLOT};

/// The images of the episodic curves of a model.
#[derive(Clone, Debug)]
pub struct EpisodeImages {
    /// Every image, training and test split, of the classes the model never saw.
    pub images: Matrix,
    /// Their classes.
    pub labels: Vec<usize>,
    /// The classes the model never saw, ascending.
    pub novel: Vec<usize>,
    /// The training images of the classes it was trained on (the background of the centring).
    pub background: Matrix,
}

/// The images of the episodic curves of a model trained on `trained` classes of `data`: episodes are
/// drawn from every image of the other classes (none of which the model saw, in either split: on
/// `omniglot-small1` all 20 drawers of each held-out character), and the background mean is taken
/// over the training images of the trained classes.
pub fn episode_images(data: &Dataset, trained: &[usize]) -> Result<EpisodeImages> {
    let novel = crate::eval::novel_classes(trained, &data.train.labels);
    if novel.is_empty() {
        bail!(
            "the model was trained on all {} classes of {}, so none is novel; train on some with --classes, e.g. \
             `bio train --dataset omniglot-small1 --classes {} --out DIR` (Korean held out)",
            data.classes,
            data.name,
            KOREAN_HELD_OUT
        );
    }
    let (train, test) = (data.train.filter_classes(&novel), data.test.filter_classes(&novel));
    let mut values = train.images.as_slice().to_vec();
    values.extend_from_slice(test.images.as_slice());
    let images = Matrix::new(train.len() + test.len(), data.input_dim(), values)?;
    let labels = train.labels.iter().chain(&test.labels).copied().collect();
    let background = data.train.filter_classes(trained).images;
    if background.rows() == 0 {
        bail!("no training image of the trained classes {trained:?} in {}", data.name);
    }
    Ok(EpisodeImages { images, labels, novel, background })
}

/// `--classes` of the models the README and RESULTS score by episodic curves on `omniglot-small1`:
/// every character but the 40 of the Korean alphabet (labels 70–109), which are the novel classes.
pub const KOREAN_HELD_OUT: &str = "0-69,110-135";

/// The curve rows of the model saved as `file` (uploaded to `b`): pixels, the model's hidden layer
/// `layer` (default the last) and the same layer of the model's own initialization (the same
/// architecture and seed, never trained: the frozen random-features control, rows `init.…`), on
/// `images`. Every feature set is scored on the same episodes.
pub fn curve_table<B: Backend>(
    b: &B,
    file: &ModelFile,
    images: &EpisodeImages,
    params: &CurveParams,
    layer: Option<usize>,
) -> Result<Vec<CurveRow>> {
    params.check(&images.labels, &images.novel)?;
    let model = file.model.load(b)?;
    let initial = SavedModel { params: file.model.initial_params(file.seed)?, ..file.model.clone() }.load(b)?;
    let (labels, novel, background) = (&images.labels, &images.novel, &images.background);
    let mut rows = protocol::centred_curve_rows(
        protocol::PIXELS,
        &images.images,
        background,
        labels,
        novel,
        &[protocol::NO_CENTRING, protocol::BACKGROUND_CENTRING],
        params,
    )?;
    for (prefix, net) in [("", &model), (protocol::INITIAL, &initial)] {
        rows.extend(protocol::model_curve_rows(
            net,
            prefix,
            &images.images,
            labels,
            novel,
            background,
            layer,
            params,
            EVAL_BATCH,
        )?);
    }
    Ok(rows)
}

/// The episodic curves of a model.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CurvesReport {
    /// Model directory.
    pub model: String,
    /// The model's rule.
    pub rule: String,
    /// The dataset it was trained on.
    pub dataset: String,
    /// Classes it was trained on.
    pub trained_classes: Vec<usize>,
    /// Classes the episodes are drawn from.
    pub novel_classes: Vec<usize>,
    /// Images of the novel classes.
    pub images: usize,
    /// The protocol's parameters.
    pub params: CurveParams,
    /// One row per features × centring × classifier × ways × shots.
    pub rows: Vec<CurveRow>,
    /// CRC-32 of the `model.ckpt` measured.
    pub model_crc32: u32,
    /// Where the table was saved.
    #[serde(skip)]
    pub saved_to: Option<PathBuf>,
    /// The plot drawn.
    #[serde(skip)]
    pub plot: Option<PathBuf>,
    /// What went wrong but did not stop the protocol (e.g. no plot).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// The episodic curves of the model saved in `dir` ([`curve_table`] on [`episode_images`] of its
/// dataset, looked for in `data_dir` too), saved as `DIR/oneshot-curves.json`, with `DIR/oneshot-curves.png`:
/// cosine NCM accuracy against shots for each `(ways, features)` (code and drive plain, pixels, the
/// initial model's code).
pub fn curves<B: Backend>(
    b: &B,
    dir: &Path,
    data_dir: Option<&Path>,
    params: &CurveParams,
    layer: Option<usize>,
) -> Result<CurvesReport> {
    let file = bio_data::load_model(dir)?;
    let data = bio_data::load(&file.dataset, data_dir)
        .with_context(|| format!("loading {}, the dataset {} was trained on", file.dataset, dir.display()))?;
    let images = episode_images(&data, &file.trained_classes)?;
    let rows = curve_table(b, &file, &images, params, layer)?;
    let mut report = CurvesReport {
        model: dir.display().to_string(),
        rule: file.model.rule().to_string(),
        dataset: data.name.clone(),
        trained_classes: file.trained_classes.clone(),
        novel_classes: images.novel.clone(),
        images: images.labels.len(),
        params: params.clone(),
        rows,
        model_crc32: crate::files::model_crc32(dir)?,
        saved_to: None,
        plot: None,
        warnings: Vec::new(),
    };
    let path = dir.join(CURVES_FILE);
    bio_data::write_json(&path, &report).with_context(|| format!("saving {}", path.display()))?;
    report.saved_to = Some(path);
    let plot = dir.join(CURVES_PLOT);
    let title =
        format!("{} ({}): N-way K-shot, {} novel classes", dir.display(), report.rule, report.novel_classes.len());
    match bio_eval::line_chart(&plot, &title, "shots K", "accuracy (cosine NCM)", &curve_series(&report.rows)) {
        Ok(drawn) => {
            report.warnings.extend(drawn.warning);
            report.plot = Some(plot);
        }
        Err(e) => report.warnings.push(format!("no plot: {e}")),
    }
    Ok(report)
}

/// The plotted series: for every number of ways, NCM accuracy against shots of the plain code, the
/// plain drive, pixels and the initial model's code.
pub fn curve_series(rows: &[CurveRow]) -> Vec<Series> {
    let mut ways: Vec<usize> = rows.iter().map(|r| r.ways).collect();
    ways.sort_unstable();
    ways.dedup();
    let mut features: Vec<&str> = Vec::new();
    for r in rows.iter().filter(|r| r.centring == protocol::NO_CENTRING) {
        if !features.contains(&r.features.as_str()) {
            features.push(&r.features);
        }
    }
    let mut series = Vec::new();
    for &w in &ways {
        for &f in &features {
            let points: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| {
                    r.ways == w
                        && r.features == f
                        && r.centring == protocol::NO_CENTRING
                        && r.classifier == bio_eval::fewshot::NCM
                })
                .map(|r| (r.shots as f64, r.mean))
                .collect();
            let initial_drive = f.starts_with(protocol::INITIAL) && f.ends_with(".drive");
            if !points.is_empty() && !initial_drive {
                series.push(Series::new(format!("{w}-way {f}"), points));
            }
        }
    }
    series
}

#[cfg(test)]
mod tests {
    use super::*;
    use bio_data::{DataSource, Split};

    /// Four classes; image `i` of a split is the constant `label + i/100` (so every image differs).
    fn dataset() -> Dataset {
        let split = |per_class: usize| {
            let labels: Vec<usize> = (0..4).flat_map(|c| std::iter::repeat_n(c, per_class)).collect();
            let values = labels.iter().enumerate().flat_map(|(i, &c)| [c as f32 + i as f32 / 100.0; 4]).collect();
            Split::new(Matrix::new(labels.len(), 4, values).unwrap(), labels).unwrap()
        };
        Dataset {
            name: "four".into(),
            source: DataSource::Embedded,
            train: split(3),
            test: split(2),
            classes: 4,
            image_shape: (2, 2),
        }
    }

    #[test]
    fn episodes_come_from_every_image_of_the_untrained_classes_only() {
        let data = dataset();
        let images = episode_images(&data, &[0, 2]).unwrap();
        assert_eq!(images.novel, vec![1, 3]);
        assert_eq!(images.labels, vec![1, 1, 1, 3, 3, 3, 1, 1, 3, 3], "training split, then test split");
        assert!((0..images.images.rows()).all(|i| [1.0, 3.0].contains(&images.images.row(i)[0].floor())));
        assert_eq!(images.background.rows(), 6, "the training images of classes 0 and 2");
        assert!((0..6).all(|i| [0.0, 2.0].contains(&images.background.row(i)[0].floor())));
        let params = CurveParams { ways: vec![2], shots: vec![2], queries: 3, episodes: 10, seed: 1 };
        for e in params.episodes_of(&images.labels, &images.novel, 2, 2).unwrap() {
            assert!(e.classes.iter().all(|c| images.novel.contains(c)), "{:?}", e.classes);
        }
        let err = episode_images(&data, &[0, 1, 2, 3]).unwrap_err().to_string();
        assert!(err.contains("so none is novel") && err.contains(KOREAN_HELD_OUT), "{err}");
    }
}
