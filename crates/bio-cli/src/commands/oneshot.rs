//! `bio eval oneshot`: Lake's 20 Omniglot one-shot runs (reference rows, and a model's rows), or with
//! `--episodes` the episodic N-way K-shot curves on the classes a model never saw.

use anyhow::{Result, bail};
use bio_eval::oneshot::CurveParams;

use crate::backend::with_backend;
use crate::cli::OneshotArgs;
use crate::output::{mean_ci, outln, print_json, print_table};

/// `bio eval oneshot`.
pub fn run(args: OneshotArgs) -> Result<()> {
    if let Some(episodes) = args.episodes {
        return curves(&args, episodes);
    }
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

/// `bio eval oneshot --episodes N`: one line per features × centring × classifier, one column per
/// (ways, shots).
fn curves(args: &OneshotArgs, episodes: usize) -> Result<()> {
    let Some(dir) = args.model.clone() else {
        bail!(
            "missing `model`: the episodic curves need --model DIR (a model trained with --classes, e.g. 0-69,110-135)"
        );
    };
    if args.side.is_some() {
        bio_run::invalid!("side", "the episodic curves use the model's own dataset and input size");
    }
    crate::output::warn_unfinished(&dir);
    let params = CurveParams {
        ways: args.ways.clone(),
        shots: args.shots.clone(),
        queries: args.queries,
        episodes,
        seed: args.seed,
    };
    let report = with_backend!(args.backend, args.json, |b| bio_run::oneshot::curves(
        b,
        &dir,
        args.data.as_deref(),
        &params,
        args.layer
    ))?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if args.json {
        return print_json(&report);
    }
    outln!(
        "{} ({}, trained on {} classes of {}): episodes on the {} novel classes ({} images), {} queries per class, \
         {} episodes per column, seed {}; cosine on L2-normalized features; accuracy (higher is better){}",
        report.model,
        report.rule,
        report.trained_classes.len(),
        report.dataset,
        report.novel_classes.len(),
        report.images,
        params.queries,
        params.episodes,
        params.seed,
        report.saved_to.as_ref().map(|p| format!("; saved to {}", p.display())).unwrap_or_default()
    );
    let mut columns: Vec<(usize, usize)> = Vec::new();
    let mut lines: Vec<(String, String, String)> = Vec::new();
    for r in &report.rows {
        if !columns.contains(&(r.ways, r.shots)) {
            columns.push((r.ways, r.shots));
        }
        let key = (r.features.clone(), r.centring.clone(), r.classifier.clone());
        if !lines.contains(&key) {
            lines.push(key);
        }
    }
    let mut header = vec!["features".to_string(), "centring".to_string(), "classifier".to_string()];
    header.extend(columns.iter().map(|(w, k)| format!("{w}-way {k}-shot")));
    let rows: Vec<Vec<String>> = lines
        .iter()
        .map(|(f, c, k)| {
            let mut row = vec![f.clone(), c.clone(), k.clone()];
            row.extend(columns.iter().map(|&(w, s)| {
                report
                    .rows
                    .iter()
                    .find(|r| (&r.features, &r.centring, &r.classifier, r.ways, r.shots) == (f, c, k, w, s))
                    .map_or_else(|| "—".to_string(), |r| mean_ci(r.mean, r.ci95, r.episodes))
            }));
            row
        })
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    print_table(&header, &rows);
    if let Some(plot) = &report.plot {
        outln!("plot: {}", plot.display());
    }
    Ok(())
}
