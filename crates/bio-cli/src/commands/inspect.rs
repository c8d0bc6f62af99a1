//! `bio inspect`: what a model is made of.

use anyhow::Result;
use bio_core::Backend;
use serde::Serialize;

use crate::backend::with_backend;
use crate::output::{outln, print_json, print_table};

#[derive(Serialize)]
struct TensorSummary {
    name: String,
    /// The layer it belongs to, named as every output names layers (`hidden.0`, `readout`).
    #[serde(skip_serializing_if = "Option::is_none")]
    layer: Option<String>,
    rows: usize,
    cols: usize,
    nonzero: usize,
    positive: usize,
    negative: usize,
    min: f32,
    max: f32,
    mean: f32,
}

#[derive(Serialize)]
struct Inspection {
    rule: String,
    dataset: String,
    trained_classes: Vec<usize>,
    epochs: usize,
    seed: u64,
    version: String,
    hidden: Vec<usize>,
    /// Learnable parameters (weights and biases); the binary synapse masks are not counted.
    parameters: usize,
    /// Entries of the binary synapse masks (0: none).
    #[serde(skip_serializing_if = "is_zero")]
    mask_entries: usize,
    /// Synapses present (mask entries equal to 1), for a model with masks.
    #[serde(skip_serializing_if = "Option::is_none")]
    synapses_present: Option<usize>,
    tensors: Vec<TensorSummary>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pictures: Vec<crate::pictures::Picture>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// `bio inspect`.
pub fn run(args: crate::cli::InspectArgs) -> Result<()> {
    let file = bio_data::load_model(&args.model)?;
    crate::output::warn_unfinished(&args.model);
    let params = file.model.params();
    let count = bio_eval::parameter_count(params);
    let tensors = params
        .tensors
        .iter()
        .map(|(name, m)| {
            let v = m.as_slice();
            TensorSummary {
                name: name.clone(),
                layer: bio_eval::layers::layer_of_tensor(params, name),
                rows: m.rows(),
                cols: m.cols(),
                nonzero: v.iter().filter(|x| **x != 0.0).count(),
                positive: v.iter().filter(|x| **x > 0.0).count(),
                negative: v.iter().filter(|x| **x < 0.0).count(),
                min: v.iter().copied().fold(f32::INFINITY, f32::min),
                max: v.iter().copied().fold(f32::NEG_INFINITY, f32::max),
                mean: v.iter().sum::<f32>() / v.len().max(1) as f32,
            }
        })
        .collect();
    let report = Inspection {
        rule: file.model.rule().to_string(),
        dataset: bio_data::load::dataset_name(&file.dataset),
        trained_classes: file.trained_classes.clone(),
        epochs: file.epochs,
        seed: file.seed,
        version: file.version.clone(),
        hidden: file.model.hidden().to_vec(),
        parameters: count.learnable,
        mask_entries: count.mask_entries,
        synapses_present: count.synapses_present,
        tensors,
        pictures: match &args.out {
            Some(out) => pictures(&args, &file, out)?,
            None => Vec::new(),
        },
    };
    if args.json {
        return print_json(&report);
    }
    let parameters = match report.synapses_present {
        Some(present) => format!(
            "{} parameters (weights and biases; {present} of the {} masked synapses present, the binary masks not counted)",
            report.parameters, report.mask_entries
        ),
        None => format!("{} parameters", report.parameters),
    };
    outln!(
        "{}: rule {}, hidden {:?}, {parameters}, trained {} epochs on {} (classes {:?}), seed {}, biorule {}",
        args.model.display(),
        report.rule,
        report.hidden,
        report.epochs,
        report.dataset,
        report.trained_classes,
        report.seed,
        report.version
    );
    let rows: Vec<Vec<String>> = report
        .tensors
        .iter()
        .map(|t| {
            vec![
                t.name.clone(),
                t.layer.clone().unwrap_or_else(|| "—".into()),
                format!("{}×{}", t.rows, t.cols),
                t.nonzero.to_string(),
                t.positive.to_string(),
                t.negative.to_string(),
                crate::output::fixed(t.min as f64, 4),
                crate::output::fixed(t.max as f64, 4),
                crate::output::fixed(t.mean as f64, 5),
            ]
        })
        .collect();
    print_table(&["tensor", "layer", "shape", "nonzero", "positive", "negative", "min", "max", "mean"], &rows);
    for p in &report.pictures {
        outln!("wrote {} ({})", p.path.display(), p.caption);
    }
    Ok(())
}

/// Writes the pictures of `--out` on the backend of `--backend` (the only part of `bio inspect` that
/// runs the model).
fn pictures(
    args: &crate::cli::InspectArgs,
    file: &bio_data::ModelFile,
    out: &std::path::Path,
) -> Result<Vec<crate::pictures::Picture>> {
    with_backend!(args.backend, args.json, |b| pictures_on(b, args, file, out))
}

/// [`pictures`] on one backend; the activity histogram needs the dataset and is skipped (with a
/// warning) when it cannot be loaded.
fn pictures_on<B: Backend>(
    b: &B,
    args: &crate::cli::InspectArgs,
    file: &bio_data::ModelFile,
    out: &std::path::Path,
) -> Result<Vec<crate::pictures::Picture>> {
    let (_, model) = bio_run::load_model(b, &args.model)?;
    let test = match bio_run::model_test_set(file, args.data.as_deref(), Some(crate::pictures::ACTIVITY_IMAGES)) {
        Ok((_, test)) => Some(test.images),
        Err(e) => {
            eprintln!("warning: no activity histogram: {e}");
            None
        }
    };
    crate::pictures::write_pictures(file, &model, test.as_ref(), out)
}
