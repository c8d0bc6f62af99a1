//! `bio eval accuracy`: clean accuracy and the confusion matrix of a saved model.

use anyhow::Result;
use bio_core::Backend;

use crate::backend::with_backend;
use crate::cli::AccuracyArgs;
use crate::output::{outln, percent, print_json, print_table};

/// `bio eval accuracy`.
pub fn accuracy(args: AccuracyArgs) -> Result<()> {
    with_backend!(args.backend, args.json, |b| accuracy_on(b, &args))
}

/// `bio eval accuracy` on one backend.
fn accuracy_on<B: Backend>(b: &B, args: &AccuracyArgs) -> Result<()> {
    crate::output::warn_unfinished(&args.model);
    let report = bio_run::eval::accuracy(b, &args.model, args.dataset.as_deref(), args.data.as_deref(), args.limit)?;
    if args.json {
        return print_json(&report);
    }
    outln!(
        "{} ({}) on {} [{}]: {} ({}/{})",
        report.model,
        report.rule,
        report.data_source,
        b.name(),
        percent(report.accuracy),
        report.correct,
        report.samples
    );
    // Rows and columns: the classes present in the test images (those the model was trained on).
    let present: Vec<usize> = (0..report.confusion.len()).filter(|&c| report.per_class[c].is_some()).collect();
    let names = bio_data::class_names(&report.dataset);
    let label = |c: usize| match names {
        Some(n) => format!("{c} {}", n[c]),
        None => c.to_string(),
    };
    let rows: Vec<Vec<String>> = present
        .iter()
        .map(|&c| {
            let mut cells = vec![label(c), report.per_class[c].map(percent).unwrap_or_default()];
            cells.extend(present.iter().map(|&p| report.confusion[c][p].to_string()));
            cells
        })
        .collect();
    let columns: Vec<String> = present.iter().map(|c| format!("→{c}")).collect();
    let mut header = vec!["true class", "recall"];
    header.extend(columns.iter().map(|s| s.as_str()));
    print_table(&header, &rows);
    outln!("columns: predicted class");
    Ok(())
}
