//! `bio eval …`: evaluate a trained model.

use anyhow::Result;
use bio_core::Backend;
use serde::Serialize;

use super::train::load_model;
use crate::backend::with_backend;
use crate::cli::AccuracyArgs;
use crate::output::{percent, print_json, print_table};

/// Images per forward pass when evaluating a model (accuracy, biology, few-shot features).
pub const EVAL_BATCH: usize = 1000;

#[derive(Serialize)]
struct AccuracyReport {
    model: String,
    rule: String,
    dataset: String,
    accuracy: f64,
    correct: usize,
    samples: usize,
    per_class: Vec<Option<f64>>,
    confusion: Vec<Vec<usize>>,
}

/// `bio eval accuracy`.
pub fn accuracy(args: AccuracyArgs) -> Result<()> {
    with_backend!(args.backend, args.json, |b| accuracy_on(&b, &args))
}

/// `bio eval accuracy` on one backend.
fn accuracy_on<B: Backend>(b: &B, args: &AccuracyArgs) -> Result<()> {
    let (file, model) = load_model(b, &args.model)?;
    let spec = args.dataset.as_deref().unwrap_or(&file.dataset);
    let (data, test) = super::metrics::test_set_for(&file, spec, args.data.as_deref(), args.limit)?;
    let eval = bio_eval::evaluate(&model, &test.images, &test.labels, EVAL_BATCH)?;
    let report = AccuracyReport {
        model: args.model.display().to_string(),
        rule: file.model.rule().to_string(),
        dataset: data.name.clone(),
        accuracy: eval.accuracy,
        correct: eval.correct,
        samples: eval.total,
        per_class: eval.confusion.per_class_accuracy(),
        confusion: eval.confusion.counts.clone(),
    };
    if args.json {
        return print_json(&report);
    }
    println!(
        "{} ({}) on {} [{}]: {} ({}/{})",
        report.model,
        report.rule,
        data.source,
        b.name(),
        percent(report.accuracy),
        report.correct,
        report.samples
    );
    let rows: Vec<Vec<String>> = report
        .confusion
        .iter()
        .enumerate()
        .filter(|(c, _)| report.per_class[*c].is_some())
        .map(|(c, row)| {
            let mut cells = vec![c.to_string(), report.per_class[c].map(percent).unwrap_or_default()];
            cells.extend(row.iter().map(|n| n.to_string()));
            cells
        })
        .collect();
    let names: Vec<String> = (0..report.confusion.len()).map(|c| format!("→{c}")).collect();
    let mut header = vec!["class", "recall"];
    header.extend(names.iter().map(|s| s.as_str()));
    print_table(&header, &rows);
    Ok(())
}
