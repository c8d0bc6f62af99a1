//! `bio demo`: both rules, same data, one table.

use anyhow::Result;
use bio_core::Backend;
use bio_data::DataError;
use clap::Parser;
use serde::Serialize;

use super::train::{RunSpec, TrainMetrics, train_run};
use crate::backend::with_backend;
use crate::cli::{DemoArgs, RuleArgs, RuleChoice};
use crate::output::{percent, print_json, print_table};

#[derive(Parser)]
struct DefaultRuleArgs {
    #[command(flatten)]
    args: RuleArgs,
}

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
    let quiet = args.quiet || args.json;
    let data = load_or_embedded(&args, quiet)?;
    with_backend!(args.backend, quiet, |b| run_on(&b, &args, &data))
}

/// `bio demo` on one backend.
fn run_on<B: Backend>(b: &B, args: &DemoArgs, data: &bio_data::Dataset) -> Result<()> {
    let quiet = args.quiet || args.json;
    if !quiet {
        eprintln!(
            "data: {} ({} train / {} test images); backend: {}",
            data.source,
            data.train.len(),
            data.test.len(),
            b.name()
        );
    }
    if let Some(dir) = &args.out {
        for rule in ["bio", "bp"] {
            bio_data::ensure_output_dir(dir.join(rule))?;
        }
    }
    let spec_name =
        if data.source == bio_data::DataSource::Embedded { "embedded".to_string() } else { args.data.dataset.clone() };
    let mut runs = Vec::new();
    for (rule, epochs) in [(RuleChoice::Bio, args.bio_epochs), (RuleChoice::Bp, args.bp_epochs)] {
        let mut rule_args = DefaultRuleArgs::parse_from(["bio"]).args;
        rule_args.hidden = vec![args.hidden];
        rule_args.epochs = epochs;
        rule_args.seed = args.seed;
        let name = if rule == RuleChoice::Bio { "bio" } else { "bp" };
        let out = args.out.as_ref().map(|d| d.join(name));
        let spec = RunSpec {
            rule,
            args: &rule_args,
            data,
            dataset_spec: &spec_name,
            train: &data.train,
            validation: None,
            test: &data.test,
            classes: (0..data.classes).collect(),
            out: out.as_deref(),
            progress: !quiet,
        };
        let (metrics, _) = train_run(b, &spec)?;
        if let Some(dir) = &out {
            bio_data::write_json(dir.join(bio_data::model_dir::METRICS_FILE), &metrics)?;
        }
        runs.push(metrics);
    }
    let report = DemoReport { dataset: data.name.clone(), data_source: data.source.to_string(), runs };
    if args.json {
        return print_json(&report);
    }
    println!("\n{} — {} test images, hidden width {}\n", report.data_source, data.test.len(), args.hidden);
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
                opt(first.and_then(|l| l.dale_index), |d| format!("{d:.3}")),
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
