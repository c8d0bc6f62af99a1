//! `bio demo`: both rules, same data, one table.

use std::sync::Arc;

use anyhow::Result;
use bio_data::DataError;
use bio_run::{RuleName, RuleOptions, Session, SessionSpec, TrainMetrics};
use serde::Serialize;

use crate::cli::DemoArgs;
use crate::output::{outln, percent, print_json, print_table};
use crate::progress::TrainProgress;

#[derive(Serialize)]
struct DemoReport {
    dataset: String,
    data_source: String,
    runs: Vec<TrainMetrics>,
}

/// Loads the requested dataset; a missing Fashion-MNIST falls back to the embedded subset, saying so.
fn load_or_embedded(args: &DemoArgs, quiet: bool) -> Result<bio_data::Dataset> {
    match bio_data::load(&args.data.dataset, args.data.data.as_deref()) {
        Ok(d) => Ok(d),
        Err(DataError::NotFound { .. }) if args.data.dataset == "fashion-mnist" => {
            if !quiet {
                eprintln!(
                    "full Fashion-MNIST not found (apt-get install dataset-fashion-mnist, or see `bio train --help`); \
                     using the embedded subset"
                );
            }
            Ok(bio_data::load("embedded", None)?)
        }
        Err(e) => Err(e.into()),
    }
}

/// `bio demo`.
pub fn run(args: DemoArgs) -> Result<()> {
    let quiet = crate::output::quiet() || args.json;
    let data = Arc::new(load_or_embedded(&args, quiet)?);
    let backend = crate::backend::resolve(args.backend, quiet)?;
    if !quiet {
        eprintln!(
            "data: {} ({} train / {} test images); backend: {}",
            data.source,
            data.train.len(),
            data.test.len(),
            backend.name()
        );
    }
    let mut dataset = args.data.clone();
    if data.source == bio_data::DataSource::Embedded {
        dataset.dataset = "embedded".into();
    }
    // Both sessions are checked (and their directories prepared) before either trains.
    let sessions = [(RuleName::BIO, args.bio_epochs), (RuleName::BP, args.bp_epochs)]
        .into_iter()
        .map(|(rule, epochs)| {
            let spec = SessionSpec {
                rule: rule.clone(),
                data: dataset.clone(),
                options: RuleOptions { hidden: vec![args.hidden], epochs, seed: args.seed, ..RuleOptions::default() },
                out: args.out.as_ref().map(|d| d.join(rule.name())),
                backend: args.backend,
                // The demo's runs are replaced on every demo (its --out help says so).
                force: true,
                ..SessionSpec::default()
            };
            Session::builder(spec).data(data.clone()).backend(backend.clone()).build()
        })
        .collect::<Result<Vec<_>>>()?;
    let mut runs = Vec::new();
    for session in sessions {
        runs.push(session.run(&mut TrainProgress::new(quiet))?.finished()?.metrics);
    }
    let report = DemoReport { dataset: data.name.clone(), data_source: data.source.to_string(), runs };
    if args.json {
        return print_json(&report);
    }
    outln!("\n{} — {} test images, hidden width {}\n", report.data_source, data.test.len(), args.hidden);
    let rows: Vec<Vec<String>> = report
        .runs
        .iter()
        .map(|m| {
            let first = m.biology.layers.first();
            let opt = |v: Option<f64>, f: fn(f64) -> String| v.map(f).unwrap_or_else(|| "–".into());
            let last_hidden = m.biology.layers.iter().rev().find(|l| l.hidden);
            vec![
                m.rule.clone(),
                percent(m.test_accuracy),
                opt(last_hidden.and_then(|l| l.active_fraction), percent),
                last_hidden.and_then(|l| l.dead_units).map(|d| d.to_string()).unwrap_or_else(|| "–".into()),
                first.map(|l| percent(l.kept_fraction)).unwrap_or_default(),
                opt(first.and_then(|l| l.dale_index), |d| crate::output::fixed(d, 3)),
                format!("{}", m.epochs),
                format!("{:.1}s", m.train_seconds),
            ]
        })
        .collect();
    print_table(
        &[
            "rule",
            "test accuracy",
            "active units",
            "dead units",
            "synapses kept",
            "Dale index (input)",
            "epochs",
            "train time",
        ],
        &rows,
    );
    Ok(())
}
