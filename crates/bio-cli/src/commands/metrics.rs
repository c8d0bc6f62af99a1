//! `bio eval metrics`: the biological metrics of a trained model, per layer.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use bio_core::Backend;
use bio_data::{Dataset, ModelFile, Split};
use serde::{Deserialize, Serialize};

use super::eval::EVAL_BATCH;
use super::train::{load_model, restrict};
use crate::backend::with_backend;
use crate::cli::MetricsArgs;
use crate::output::{percent, print_json, print_table};

/// Name of the file `bio eval metrics` saves into the model directory.
pub const BIOLOGY_FILE: &str = "biology.json";

/// What `bio eval metrics` prints as JSON and saves as `DIR/biology.json`.
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
    /// One entry per weight matrix (hidden layers first, then the readout).
    pub layers: Vec<bio_eval::LayerMetrics>,
    /// Class selectivity of each hidden layer on the same test images (empty in files written
    /// before it was measured).
    #[serde(default)]
    pub class_selectivity: Vec<bio_eval::LayerSelectivity>,
}

/// The test split of the model's dataset, restricted to the classes it was trained on, first `limit` images.
pub fn model_test_set(file: &ModelFile, data_dir: Option<&Path>, limit: Option<usize>) -> Result<(Dataset, Split)> {
    test_set_for(file, &file.dataset, data_dir, limit)
}

/// Like [`model_test_set`] on another dataset `spec` (same classes restriction).
pub fn test_set_for(
    file: &ModelFile,
    spec: &str,
    data_dir: Option<&Path>,
    limit: Option<usize>,
) -> Result<(Dataset, Split)> {
    if limit == Some(0) {
        bail!("invalid value for `limit`: must be ≥ 1");
    }
    let data = bio_data::load(spec, data_dir)?;
    let all = file.trained_classes.len() == data.classes;
    let classes = (!all).then(|| file.trained_classes.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(","));
    let (_, mut test, _) = restrict(&data, classes.as_deref())?;
    if let Some(n) = limit {
        test = test.take(n);
    }
    if test.is_empty() {
        bail!("the test set of {} is empty", data.name);
    }
    Ok((data, test))
}

/// Reads `dir/name` as JSON if it exists (`None` when absent or unreadable, with a warning for the latter).
pub fn read_saved<T: serde::de::DeserializeOwned>(dir: &Path, name: &str) -> Option<T> {
    let path: PathBuf = dir.join(name);
    if !path.exists() {
        return None;
    }
    match bio_data::read_json(&path) {
        Ok(v) => Some(v),
        Err(e) => {
            eprintln!("warning: ignoring {}: {e}", path.display());
            None
        }
    }
}

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map(|v| format!("{v:.digits$}")).unwrap_or_else(|| "—".into())
}

/// Table rows of the biology table (without a leading run column).
pub fn biology_rows(layers: &[bio_eval::LayerMetrics]) -> Vec<Vec<String>> {
    layers
        .iter()
        .map(|l| {
            vec![
                l.layer.clone(),
                l.active_fraction.map(percent).unwrap_or_else(|| "—".into()),
                opt(l.lifetime_sparseness, 3),
                l.dead_units.map(|d| d.to_string()).unwrap_or_else(|| "—".into()),
                opt(l.hoyer, 3),
                percent(l.kept_fraction),
                opt(l.log_weight_mu, 2),
                opt(l.log_weight_sigma, 2),
                opt(l.log_weight_skew, 2),
                opt(l.ks_distance, 3),
                opt(l.dale_index, 3),
                l.excitatory_fraction.map(percent).unwrap_or_else(|| "—".into()),
                l.inhibitory_fraction.map(percent).unwrap_or_else(|| "—".into()),
            ]
        })
        .collect()
}

/// Header of [`biology_rows`].
pub const BIOLOGY_HEADER: [&str; 13] = [
    "layer",
    "active",
    "lifetime sparseness",
    "dead",
    "Hoyer",
    "kept",
    "log-w μ",
    "log-w σ",
    "log-w skew",
    "KS",
    "Dale",
    "excitatory",
    "inhibitory",
];

/// Table rows of the class-selectivity table.
pub fn selectivity_rows(layers: &[bio_eval::LayerSelectivity]) -> Vec<Vec<String>> {
    layers
        .iter()
        .map(|l| vec![l.layer.clone(), opt(l.selectivity, 3), opt(l.mutual_information_bits, 3), l.units.to_string()])
        .collect()
}

/// Header of [`selectivity_rows`].
pub const SELECTIVITY_HEADER: [&str; 4] = ["layer", "selectivity", "MI bits", "units"];

/// `bio eval metrics`.
pub fn run(args: MetricsArgs) -> Result<()> {
    with_backend!(args.backend, args.json, |b| run_on(&b, &args))
}

/// `bio eval metrics` on one backend.
fn run_on<B: Backend>(b: &B, args: &MetricsArgs) -> Result<()> {
    let (file, model) = load_model(b, &args.model)?;
    let (data, test) = model_test_set(&file, args.data.as_deref(), args.limit)?;
    let report = bio_eval::biological_report(&model, &test.images, EVAL_BATCH)?;
    let class_selectivity = bio_eval::class_selectivity(&model, &test.images, &test.labels, data.classes, EVAL_BATCH)?;
    let out = BiologyFile {
        model: args.model.display().to_string(),
        rule: file.model.rule().to_string(),
        dataset: data.name.clone(),
        inputs: report.inputs,
        layers: report.layers,
        class_selectivity,
    };
    let path = args.model.join(BIOLOGY_FILE);
    bio_data::write_json(&path, &out).with_context(|| format!("saving {}", path.display()))?;
    if args.json {
        return print_json(&out);
    }
    println!(
        "{} ({}) on {} test images of {}; saved to {}",
        out.model,
        out.rule,
        out.inputs,
        out.dataset,
        path.display()
    );
    print_table(&BIOLOGY_HEADER, &biology_rows(&out.layers));
    println!();
    println!("class selectivity of the hidden layers (units: active at least once)");
    print_table(&SELECTIVITY_HEADER, &selectivity_rows(&out.class_selectivity));
    Ok(())
}
