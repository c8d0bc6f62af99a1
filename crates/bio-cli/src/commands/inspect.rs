//! `bio inspect`: what a model is made of.

use anyhow::Result;
use serde::Serialize;

use crate::output::{print_json, print_table};

#[derive(Serialize)]
struct TensorSummary {
    name: String,
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
    parameters: usize,
    tensors: Vec<TensorSummary>,
}

/// `bio inspect`.
pub fn run(args: crate::cli::InspectArgs) -> Result<()> {
    let file = bio_data::load_model(&args.model)?;
    let params = file.model.params();
    let tensors = params
        .tensors
        .iter()
        .map(|(name, m)| {
            let v = m.as_slice();
            TensorSummary {
                name: name.clone(),
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
        dataset: file.dataset.clone(),
        trained_classes: file.trained_classes.clone(),
        epochs: file.epochs,
        seed: file.seed,
        version: file.version.clone(),
        hidden: file.model.hidden().to_vec(),
        parameters: params.count(),
        tensors,
    };
    if args.json {
        return print_json(&report);
    }
    println!(
        "{}: rule {}, hidden {:?}, {} parameters, trained {} epochs on {} (classes {:?}), seed {}, biorule {}",
        args.model.display(),
        report.rule,
        report.hidden,
        report.parameters,
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
                format!("{}×{}", t.rows, t.cols),
                t.nonzero.to_string(),
                t.positive.to_string(),
                t.negative.to_string(),
                format!("{:.4}", t.min),
                format!("{:.4}", t.max),
                format!("{:.5}", t.mean),
            ]
        })
        .collect();
    print_table(&["tensor", "shape", "nonzero", "positive", "negative", "min", "max", "mean"], &rows);
    Ok(())
}
