//! `bio eval continual`: contexts learned one after another, scored with the accuracy matrix.

use anyhow::Result;
use bio_run::continual::{ContinualProgress, ContinualReport};

use crate::backend::with_backend;
use crate::cli::ContinualArgs;
use crate::output::{fixed, mean_ci, outln, print_json, print_table};

/// Runs the protocol and prints the summary table.
pub fn run(args: ContinualArgs) -> Result<()> {
    args.spec.check()?;
    let quiet = args.json || crate::output::quiet();
    let report: ContinualReport =
        with_backend!(args.backend, args.json, |b| bio_run::continual::continual(b, &args.spec, |event| {
            if quiet {
                return;
            }
            match event {
                ContinualProgress::Run { method, scenario, order, seed } => {
                    eprintln!("{method}: {}-incremental, order {order}, seed {seed}", scenario.name())
                }
                ContinualProgress::Context { context, contexts, seconds } => {
                    eprintln!("  context {}/{contexts} ({seconds:.0} s)", context + 1)
                }
                ContinualProgress::Done { average, seconds } => {
                    eprintln!("  average accuracy after the last context {:.2}% ({seconds:.0} s)", 100.0 * average)
                }
            }
        }))?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    for f in &report.failed {
        eprintln!("failed: {f}");
    }
    if args.json {
        return print_json(&report);
    }
    let s = &report.spec;
    outln!(
        "{} {:?} ({} training, {} test images): {} iterations of {} per context, hidden {:?}, {} seed(s), {} random order(s)",
        report.dataset,
        report.experiment,
        report.images.0,
        report.images.1,
        s.iterations,
        s.options.batch,
        s.options.hidden,
        s.seeds,
        s.orders
    );
    let rows: Vec<Vec<String>> = report
        .summary
        .iter()
        .map(|r| {
            vec![
                r.scenario.name().to_string(),
                r.method.clone(),
                r.runs.to_string(),
                mean_ci(r.average.0, r.average.1, r.runs),
                mean_ci(r.forgetting.0, r.forgetting.1, r.runs),
                fixed(100.0 * r.backward_transfer.0, 2),
                fixed(100.0 * r.forward_transfer.0, 2),
            ]
        })
        .collect();
    print_table(&["scenario", "method", "runs", "average acc.", "forgetting", "BWT (pts)", "FWT (pts)"], &rows);
    for f in &report.files {
        outln!("wrote {}", f.display());
    }
    Ok(())
}
