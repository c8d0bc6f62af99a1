//! `bio eval oneshot`: Lake's 20 Omniglot one-shot runs (reference rows, and a model's rows).

use anyhow::Result;

use crate::backend::with_backend;
use crate::cli::OneshotArgs;
use crate::output::{mean_ci, outln, print_json, print_table};

/// `bio eval oneshot`.
pub fn run(args: OneshotArgs) -> Result<()> {
    let report = with_backend!(args.backend, args.json, |b| bio_run::oneshot::oneshot(
        b,
        args.model.as_deref(),
        args.side,
        args.layer
    ))?;
    if args.json {
        return print_json(&report);
    }
    let what = match (&report.model, &report.rule, &report.dataset) {
        (Some(m), Some(r), Some(d)) => format!("{m} ({r}, trained on {d})"),
        _ => "reference rows".to_string(),
    };
    outln!(
        "Omniglot one-shot, {} runs of 20-way within-alphabet classification, {what}; pixels and features at {}×{}, \
         cosine nearest neighbour; error rate (lower is better){}",
        report.runs,
        report.side,
        report.side,
        report.saved_to.as_ref().map(|p| format!("; saved to {}", p.display())).unwrap_or_default()
    );
    let rows: Vec<Vec<String>> = report
        .rows
        .iter()
        .map(|r| {
            vec![
                r.features.clone(),
                r.centring.clone(),
                mean_ci(r.mean / 100.0, r.ci95 / 100.0, r.errors.len()),
                r.errors.iter().map(|e| format!("{e:.0}")).collect::<Vec<_>>().join(" "),
            ]
        })
        .collect();
    print_table(&["features", "centring", "error (mean ± ci95)", "per run (%)"], &rows);
    outln!("reference (Lake et al. 2015): people 4.5%, Bayesian Program Learning 3.3%, MHD 38.8%");
    Ok(())
}
