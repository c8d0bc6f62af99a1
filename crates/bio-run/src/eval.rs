//! Evaluation of a saved model directory: the work behind `bio eval accuracy | metrics | fewshot`,
//! writing each result's JSON next to the model where the CLI does. Generic over the backend; the
//! caller chooses it (see [`on_backend!`](crate::on_backend)).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use bio_core::LearningRule;
use bio_core::rules::{Rule, RuleVisitor};
use bio_core::{Backend, Matrix};
use bio_eval::fewshot::{TrainSpec, train_bio_strict, train_bio_with_unlabelled, train_rule};
use bio_eval::{EpisodeParams, FewLabelData, FewLabelParams, FewLabelResult, FewShotResult};
use serde::{Deserialize, Serialize};

use crate::EVAL_BATCH;
use crate::data::{model_test_set, test_set_for};
use crate::files::{load_model, read_saved};
use crate::spec::{RuleName, RuleOptions};

/// Clean accuracy of a saved model with its confusion matrix.
#[derive(Clone, Debug, Serialize)]
pub struct AccuracyReport {
    /// Model directory.
    pub model: String,
    /// `bio` or `bp`.
    pub rule: String,
    /// Dataset name.
    pub dataset: String,
    /// Where the data came from.
    #[serde(skip)]
    pub data_source: String,
    /// Accuracy.
    pub accuracy: f64,
    /// Correct predictions.
    pub correct: usize,
    /// Test images.
    pub samples: usize,
    /// Recall per class (`None` for classes absent from the test images).
    pub per_class: Vec<Option<f64>>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
}

/// Accuracy of the model in `dir` on the test split of `dataset` (default: the one it was trained
/// on), restricted to its trained classes, first `limit` images.
pub fn accuracy<B: Backend>(
    b: &B,
    dir: &Path,
    dataset: Option<&str>,
    data_dir: Option<&Path>,
    limit: Option<usize>,
) -> Result<AccuracyReport> {
    let (file, model) = load_model(b, dir)?;
    let (data, test) = match dataset {
        Some(spec) => test_set_for(&file, spec, data_dir, limit)?,
        None => model_test_set(&file, data_dir, limit)?,
    };
    let eval = bio_eval::evaluate(&model, &test.images, &test.labels, EVAL_BATCH)?;
    Ok(AccuracyReport {
        model: dir.display().to_string(),
        rule: file.model.rule().to_string(),
        dataset: data.name.clone(),
        data_source: data.source.to_string(),
        accuracy: eval.accuracy,
        correct: eval.correct,
        samples: eval.total,
        per_class: eval.confusion.per_class_accuracy(),
        confusion: eval.confusion.counts,
    })
}

/// Name of the file [`biology`] saves into the model directory.
pub use bio_data::model_dir::BIOLOGY_FILE;

/// `DIR/biology.json`: the biological metrics of a model, per layer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BiologyFile {
    /// Model directory.
    pub model: String,
    /// `bio` or `bp`.
    pub rule: String,
    /// Dataset name.
    pub dataset: String,
    /// Test images the activity was measured on.
    pub inputs: usize,
    /// One entry per weight matrix (hidden layers first, then the readout), named as
    /// [`bio_eval::layers`] names them (also when an older file stored `bp`'s `layer.k`).
    #[serde(deserialize_with = "bio_eval::metrics::layer_metrics_in_one_naming")]
    pub layers: Vec<bio_eval::LayerMetrics>,
    /// Class selectivity of each hidden layer on the same test images (empty in files written
    /// before it was measured).
    #[serde(default, deserialize_with = "bio_eval::metrics::selectivity_in_one_naming")]
    pub class_selectivity: Vec<bio_eval::LayerSelectivity>,
    /// CRC-32 of the `model.ckpt` measured (absent in files written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_crc32: Option<u32>,
    /// Unit diversity of each layer at initialisation (the parameters recomputed from the model's
    /// configuration and seed, [`bio_eval::initial_params`]), beside `layers`' trained figures;
    /// empty in files written before it was measured.
    #[serde(default)]
    pub initial_diversity: Vec<bio_eval::LayerDiversity>,
    /// The same measure on what the first layer sees, drawn from the measured test images (the
    /// images themselves for a fully connected layer, one patch per image for a convolution;
    /// [`bio_eval::input_diversity`]; whitened patches for a whitened convolution): the reference
    /// for the first layer's trained units, which learn prototypes of those inputs (absent in files
    /// written before it was measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_diversity: Option<bio_eval::Diversity>,
}

/// Biological metrics of the model in `dir` on its first `limit` test images; saved as
/// `DIR/biology.json`, whose path is returned too, with why it could not be saved (`None`: it was;
/// the measured metrics are returned either way, for the caller to present before failing).
pub fn biology<B: Backend>(
    b: &B,
    dir: &Path,
    data_dir: Option<&Path>,
    limit: Option<usize>,
) -> Result<(BiologyFile, PathBuf, Option<String>)> {
    let (file, model) = load_model(b, dir)?;
    let (data, test) = model_test_set(&file, data_dir, limit)?;
    let report = bio_eval::biological_report(&model, &test.images, EVAL_BATCH)?;
    let class_selectivity = bio_eval::class_selectivity(&model, &test.images, &test.labels, data.classes, EVAL_BATCH)?;
    let whiten = file.model.params.find(bio_core::rules::CONV_WHITEN);
    let input_diversity =
        report.layers.first().and_then(|l| bio_eval::input_diversity(&test.images, l.shape[1], whiten));
    let out = BiologyFile {
        model: dir.display().to_string(),
        rule: file.model.rule().to_string(),
        dataset: data.name.clone(),
        inputs: report.inputs,
        layers: report.layers,
        class_selectivity,
        model_crc32: Some(crate::files::model_crc32(dir)?),
        initial_diversity: bio_eval::layer_diversity(&file.model.initial_params(file.seed)?),
        input_diversity,
    };
    let path = dir.join(BIOLOGY_FILE);
    let not_saved = crate::files::save_results(&path, &out);
    Ok((out, path, not_saved))
}

/// Name of the file the few-shot protocols save.
pub use bio_data::model_dir::FEWSHOT_FILE;

/// `DIR/fewshot.json`: the latest results of each protocol.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FewshotFile {
    /// Novel classes of the episodic protocol.
    #[serde(default)]
    pub novel_classes: Vec<usize>,
    /// Episodic protocol rows (pixels reference rows first).
    #[serde(default)]
    pub episodic: Vec<FewShotResult>,
    /// CRC-32 of the `model.ckpt` the episodic rows were measured on (absent in files written before
    /// it was recorded). The few-labels rows train models of their own, so no checksum applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub episodic_model_crc32: Option<u32>,
    /// Few-labels protocol rows.
    #[serde(default)]
    pub few_labels: Vec<FewLabelResult>,
}

/// Reads `dir/fewshot.json` to update it: an unreadable file is replaced, and the reason returned.
fn fewshot_file(dir: &Path) -> (FewshotFile, Option<String>) {
    match read_saved(dir, FEWSHOT_FILE) {
        Ok(f) => (f.unwrap_or_default(), None),
        Err(e) => (FewshotFile::default(), Some(format!("replacing {}: {e}", dir.join(FEWSHOT_FILE).display()))),
    }
}

/// The episodic protocol's results on a model trained on base classes.
#[derive(Clone, Debug, Serialize)]
pub struct EpisodicReport {
    /// Model directory.
    pub model: String,
    /// `bio` or `bp`.
    pub rule: String,
    /// Dataset name.
    pub dataset: String,
    /// Classes the model was trained on.
    pub trained_classes: Vec<usize>,
    /// The other classes, from which episodes are drawn.
    pub novel_classes: Vec<usize>,
    /// One row per feature × classifier × shots (pixels reference rows first).
    pub results: Vec<FewShotResult>,
    /// Where the results were saved.
    #[serde(skip)]
    pub saved_to: PathBuf,
    /// What went wrong but did not stop the protocol (e.g. an unreadable old file replaced).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// The default novel classes of the episodic protocol: the classes present in `labels` that a model
/// trained on `trained` never saw, ascending and each once. Shared by every front end (`bio eval
/// fewshot`, Python's `biorule.fewshot`), so that they draw episodes from the same classes.
pub fn novel_classes(trained: &[usize], labels: &[usize]) -> Vec<usize> {
    let present: std::collections::BTreeSet<usize> = labels.iter().copied().collect();
    present.into_iter().filter(|c| !trained.contains(c)).collect()
}

/// Few-shot episodes on the novel classes of the model in `dir` (those it was not trained on), with
/// the hidden layer `layer` (default: the last) as features; saved into `DIR/fewshot.json`.
pub fn episodic<B: Backend>(
    b: &B,
    dir: &Path,
    data_dir: Option<&Path>,
    params: &EpisodeParams,
    layer: Option<usize>,
) -> Result<EpisodicReport> {
    let (file, model) = load_model(b, dir)?;
    let data = bio_data::load(&file.dataset, data_dir)?;
    let novel = novel_classes(&file.trained_classes, &data.test.labels);
    if novel.is_empty() {
        bail!(
            "{} was trained on all {} classes, so none is novel; train on base classes first, e.g. `bio train --classes 0-4 --out DIR`",
            dir.display(),
            data.classes
        );
    }
    let results = bio_eval::episodic(&model, &data.test.images, &data.test.labels, &novel, layer, params, EVAL_BATCH)?;
    let (mut saved, warning) = fewshot_file(dir);
    saved.novel_classes = novel.clone();
    saved.episodic = results.clone();
    saved.episodic_model_crc32 = Some(crate::files::model_crc32(dir)?);
    let path = dir.join(FEWSHOT_FILE);
    bio_data::write_json(&path, &saved).with_context(|| format!("saving {}", path.display()))?;
    Ok(EpisodicReport {
        model: dir.display().to_string(),
        rule: file.model.rule().to_string(),
        dataset: data.name.clone(),
        trained_classes: file.trained_classes.clone(),
        novel_classes: novel,
        results,
        saved_to: path,
        warnings: warning.into_iter().collect(),
    })
}

/// Fewest readout updates of the few-labels protocol's labelled phase (unless epochs are given).
pub const MIN_LABELLED_UPDATES: usize = 500;

/// The few-labels protocol: train from scratch with K labels per class.
#[derive(Clone, Debug)]
pub struct FewLabelsSpec {
    /// Rule trained.
    pub rule: RuleName,
    /// Its options (hidden widths, seed, batch; `epochs` of the labelled phase, default the rule's).
    pub options: RuleOptions,
    /// Dataset name or directory.
    pub dataset: String,
    /// Extra directory to search for datasets.
    pub data_dir: Option<PathBuf>,
    /// Labelled images per class, one protocol run each.
    pub shots: Vec<usize>,
    /// Repetitions, each with its own labelled subset and seed.
    pub seeds: usize,
    /// `bio` only: also the variant whose hidden layers see the rest of the training set, unlabelled.
    pub unlabelled: bool,
    /// Epochs of label-free hidden-layer training on the unlabelled images.
    pub hidden_epochs: usize,
    /// Save `fewshot.json` here.
    pub out: Option<PathBuf>,
}

/// The few-labels protocol's results.
#[derive(Clone, Debug, Serialize)]
pub struct FewLabelsReport {
    /// `bio` or `bp`.
    pub rule: String,
    /// Dataset name.
    pub dataset: String,
    /// Hidden widths.
    pub hidden: Vec<usize>,
    /// Epochs of the labelled phase (at least; more when few labels make few batches).
    pub epochs: usize,
    /// Test images.
    #[serde(skip)]
    pub test_samples: usize,
    /// One row per variant × shots.
    pub results: Vec<FewLabelResult>,
    /// What went wrong but did not stop the protocol.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

impl FewLabelsSpec {
    /// Checks the settings before any work; errors name the flag.
    pub fn check(&self) -> Result<()> {
        if self.shots.contains(&0) {
            crate::invalid!("shots", "every number of shots must be ≥ 1");
        }
        if self.unlabelled && !self.rule.info()?.learns_from_unlabelled {
            crate::invalid!("unlabelled", "the `{}` rule cannot learn from unlabelled images", self.rule);
        }
        if self.seeds == 0 {
            crate::invalid!("seeds", "must be ≥ 1");
        }
        if self.options.epochs == Some(0) {
            crate::invalid!("epochs", "must be ≥ 1");
        }
        Ok(())
    }
}

/// Runs the few-labels protocol on `b`; `on_phase(variant)` is called as each variant starts
/// (`bp`, `bio-strict`, `bio-unlabelled`).
pub fn few_labels<B: Backend>(b: &B, spec: &FewLabelsSpec, mut on_phase: impl FnMut(&str)) -> Result<FewLabelsReport> {
    spec.check()?;
    if let Some(out) = &spec.out {
        bio_data::ensure_output_dir(out)?;
    }
    let data = bio_data::load(&spec.dataset, spec.data_dir.as_deref())?;
    let epochs = spec.options.epochs.unwrap_or(spec.rule.default_epochs());
    let batch = spec.options.batch;
    // Few labelled images make few batches: unless epochs are given, train the labelled phase for at
    // least MIN_LABELLED_UPDATES updates so K = 1 is not judged after a handful of steps.
    let explicit_epochs = spec.options.epochs.is_some();
    let spec_for = |labelled: usize| {
        let batches = labelled.div_ceil(batch).max(1);
        let labelled_epochs = if explicit_epochs { epochs } else { epochs.max(MIN_LABELLED_UPDATES.div_ceil(batches)) };
        bio_eval::TrainSpec { classes: data.classes, epochs: labelled_epochs, hidden_epochs: spec.hidden_epochs, batch }
    };
    let fl_data = FewLabelData {
        train_images: &data.train.images,
        train_labels: &data.train.labels,
        test_images: &data.test.images,
        test_labels: &data.test.labels,
    };
    let params = |unlabelled| FewLabelParams {
        shots: spec.shots.clone(),
        seeds: spec.seeds,
        seed: spec.options.seed,
        unlabelled,
    };
    let mut results = Vec::new();
    if spec.rule != RuleName::BIO {
        // Any other rule: its strict variant, through the rule's own training steps.
        struct Strict<'a, B> {
            b: &'a B,
            config: String,
            name: &'a str,
            data: FewLabelData<'a>,
            params: FewLabelParams,
            spec_for: &'a dyn Fn(usize) -> TrainSpec,
        }
        impl<B: Backend> RuleVisitor<B> for Strict<'_, B> {
            type Output = Result<Vec<FewLabelResult>>;
            fn visit<R: Rule + LearningRule<B>>(self) -> Self::Output {
                let config: R::Config = serde_json::from_str(&self.config)?;
                Ok(bio_eval::few_labels(self.name, self.data, &self.params, EVAL_BATCH, |x, y, _, seed| {
                    train_rule::<B, R>(self.b, &config, (self.spec_for)(x.rows()), x, y, seed)
                })?)
            }
        }
        on_phase(spec.rule.name());
        let strict = Strict {
            b,
            config: spec.options.config_json(&spec.rule.info()?)?,
            name: spec.rule.name(),
            data: fl_data,
            params: params(false),
            spec_for: &spec_for,
        };
        results.extend(bio_core::rules::dispatch(spec.rule.name(), strict)??);
    } else {
        let cfg = spec.options.config::<bio_core::BioRule>()?;
        {
            on_phase("bio-strict");
            results.extend(bio_eval::few_labels(
                "bio-strict",
                fl_data,
                &params(false),
                EVAL_BATCH,
                |x, y, _, seed| train_bio_strict(b, &cfg, spec_for(x.rows()), x, y, seed),
            )?);
            if spec.unlabelled {
                on_phase("bio-unlabelled");
                results.extend(bio_eval::few_labels(
                    "bio-unlabelled",
                    fl_data,
                    &params(true),
                    EVAL_BATCH,
                    |x, y, u, seed| {
                        let empty;
                        let u = match u {
                            Some(u) => u,
                            None => {
                                empty = Matrix::zeros(0, x.cols());
                                &empty
                            }
                        };
                        train_bio_with_unlabelled(b, &cfg, spec_for(x.rows()), x, y, u, seed)
                    },
                )?);
            }
        }
    }
    let mut warnings = Vec::new();
    if let Some(out) = &spec.out {
        let (mut saved, warning) = fewshot_file(out);
        warnings.extend(warning);
        saved.few_labels = results.clone();
        bio_data::write_json(out.join(FEWSHOT_FILE), &saved)?;
    }
    Ok(FewLabelsReport {
        rule: spec.rule.name().to_string(),
        dataset: data.name.clone(),
        hidden: spec.options.hidden.clone(),
        epochs,
        test_samples: data.test.len(),
        results,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::novel_classes;

    #[test]
    fn novel_classes_are_the_unseen_labels_in_order() {
        assert_eq!(novel_classes(&[0, 1, 2], &[4, 0, 3, 4, 1, 9]), vec![3, 4, 9]);
        assert!(novel_classes(&[0, 1], &[1, 0, 1]).is_empty());
        assert_eq!(novel_classes(&[], &[2, 2]), vec![2]);
    }
}
