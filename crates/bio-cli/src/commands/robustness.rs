//! `bio eval robustness`: flags → `bio_run::robustness` → tables.

use anyhow::Result;
use bio_core::Backend;
use bio_run::robustness::{EnsembleRun, RobustnessProgress, RobustnessReport};
use indicatif::{ProgressBar, ProgressStyle};

use crate::backend::with_backend;
use crate::cli::RobustnessArgs;
use crate::output::{outln, percent, print_json, print_table};

fn bar(total: usize, label: &str) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>7} [{bar:30}] {pos}/{len} images×radii {elapsed_precise} eta {eta}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    bar
}

/// `bio eval robustness`.
pub fn run(args: RobustnessArgs) -> Result<()> {
    args.spec.check()?;
    with_backend!(args.backend, args.json, |b| run_on(b, &args))
}

/// `bio eval robustness` on one backend.
fn run_on<B: Backend>(b: &B, args: &RobustnessArgs) -> Result<()> {
    crate::output::warn_unfinished(&args.model);
    let mut pb: Option<ProgressBar> = None;
    let show = !args.json && !crate::output::quiet();
    let out = bio_run::robustness::robustness(b, &args.model, &args.spec, |p| match p {
        RobustnessProgress::Curve { attack, done, total } if show => {
            pb.get_or_insert_with(|| bar(total, attack)).set_position(done as u64);
        }
        RobustnessProgress::CurveDone { .. } => {
            if let Some(bar) = pb.take() {
                bar.finish_and_clear();
            }
        }
        RobustnessProgress::Ensemble { attack, message } if show => eprintln!("{attack}: {message}"),
        _ => {}
    })?;
    for w in &out.warnings {
        eprintln!("warning: {w}");
    }
    if args.json {
        print_json(&out)?;
    } else {
        print_report(&out, &b.name());
    }
    crate::output::fail_if_not_saved(out.not_saved)
}

fn print_report(out: &RobustnessReport, backend: &str) {
    outln!(
        "{} ({}) on {} test images of {} [{backend}]; {}",
        out.model,
        out.rule,
        out.samples,
        out.dataset,
        if out.not_saved.is_some() {
            "NOT saved (see the end)".to_string()
        } else {
            format!("saved to {}", out.saved_to.display())
        }
    );
    let rows: Vec<Vec<String>> = out
        .attacks
        .iter()
        .flat_map(|a| {
            a.curve.points.iter().map(move |p| {
                vec![
                    a.name.clone(),
                    a.curve.norm.name().to_string(),
                    format!("{}", p.eps),
                    percent(p.accuracy),
                    p.samples.to_string(),
                ]
            })
        })
        .collect();
    if !rows.is_empty() {
        print_table(&["attack", "norm", "eps", "robust accuracy", "samples"], &rows);
    }
    for e in &out.ensembles {
        print_ensemble(e);
    }
    if let Some(m) = &out.masking {
        outln!("\ngradient-masking check ({} versus square):", m.gradient_attack);
        let rows: Vec<Vec<String>> = m
            .flags
            .iter()
            .map(|f| {
                vec![
                    format!("{}", f.eps),
                    percent(f.gradient_accuracy),
                    percent(f.gradient_free_accuracy),
                    format!("{:+.2}", 100.0 * f.gap),
                    format!("{:.2}", 100.0 * f.threshold),
                    if f.masking { "MASKING" } else { "ok" }.to_string(),
                ]
            })
            .collect();
        print_table(&["eps", m.gradient_attack.as_str(), "square", "gap (points)", "threshold", "verdict"], &rows);
        outln!(
            "threshold: the larger of one point and 1.645 standard errors of the difference on {} images (5% false alarms)",
            m.flags.first().map_or(0, |f| f.samples)
        );
        if m.flags.iter().any(|f| f.masking) {
            outln!(
                "square beats {} by more than chance allows somewhere: the gradient robustness is not to be trusted",
                m.gradient_attack
            );
        }
    }
    if let Some(p) = &out.plot {
        outln!("curve: {p}");
    }
}

/// One ensemble: per radius each attack (cumulative), the worst case, then the sanity checks.
fn print_ensemble(e: &EnsembleRun) {
    let r = &e.run.report;
    let source = match &e.run.source {
        Some(s) => format!(", transfer from {} (crc32 {:08x})", s.model, s.model_crc32),
        None => String::new(),
    };
    outln!(
        "\n{} ({}, {} APGD iterations × {} runs{}{source}): clean {}",
        e.name,
        r.params.norm.name(),
        r.params.iterations,
        r.params.restarts,
        if r.params.independent { ", every attack on every clean-correct image" } else { "" },
        percent(r.clean_accuracy)
    );
    let mut rows = Vec::new();
    for p in &r.points {
        for s in &p.stages {
            rows.push(vec![
                format!("{}", p.eps),
                s.attack.name().to_string(),
                if s.ran { s.attacked.to_string() } else { "-".into() },
                if s.ran { s.fooled.to_string() } else { "-".into() },
                s.own_accuracy.map(percent).unwrap_or_else(|| "-".into()),
                percent(s.robust_after),
                if s.ran { format!("{:.1}", s.seconds) } else { "-".into() },
                if s.ran { format!("{:.1}", s.images_per_second) } else { "-".into() },
                s.note.clone().unwrap_or_default(),
            ]);
        }
        rows.push(vec![
            format!("{}", p.eps),
            "WORST CASE".into(),
            String::new(),
            String::new(),
            String::new(),
            format!("{} ({}/{})", percent(p.accuracy), p.robust, p.samples),
            String::new(),
            String::new(),
            String::new(),
        ]);
    }
    print_table(
        &["eps", "attack", "attacked", "fooled", "own robust acc.", "robust after", "seconds", "images/s", "note"],
        &rows,
    );
    if !r.sanity.is_empty() {
        outln!("\nsanity checks:");
        let rows: Vec<Vec<String>> = r
            .sanity
            .iter()
            .map(|f| {
                vec![
                    format!("{:?}", f.check).to_lowercase(),
                    format!("{}", f.eps),
                    if f.failed { "FAILED" } else { "ok" }.to_string(),
                    f.detail.clone(),
                ]
            })
            .collect();
        print_table(&["check", "eps", "verdict", "what was compared"], &rows);
        if r.suspect() {
            outln!("a sanity check failed: these robust figures are not to be trusted");
        }
    }
}
