//! `bio eval fewshot`: the two few-shot protocols (episodic on novel classes, and few labels from scratch).

use anyhow::{Result, bail};
use bio_core::Backend;
use bio_eval::EpisodeParams;
use bio_run::RuleOptions;
use bio_run::eval::{FewLabelsSpec, MIN_LABELLED_UPDATES};

use crate::backend::with_backend;
use crate::cli::{FewshotArgs, ProtocolChoice};
use crate::output::{mean_ci, outln, percent, print_json, print_table};

/// `bio eval fewshot`.
pub fn run(args: FewshotArgs) -> Result<()> {
    if args.shots.contains(&0) {
        bio_run::invalid!("shots", "every number of shots must be ≥ 1");
    }
    match args.protocol {
        ProtocolChoice::Episodic => episodic(args),
        ProtocolChoice::FewLabels => few_labels(args),
    }
}

fn episodic(args: FewshotArgs) -> Result<()> {
    let Some(dir) = args.model.clone() else {
        bail!("missing `model`: the episodic protocol needs --model DIR (or use --protocol few-labels --rule bio|bp)");
    };
    crate::output::warn_unfinished(&dir);
    let shots = if args.shots.is_empty() { vec![1, 5] } else { args.shots.clone() };
    let params = EpisodeParams {
        ways: args.ways,
        shots,
        queries: args.queries,
        episodes: args.episodes,
        seed: args.seed,
        code_densities: args.code_densities.clone(),
    };
    let report = with_backend!(args.backend, args.json, |b| bio_run::eval::episodic(
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
        "{} ({}) on novel classes {:?} of {}: {}-way, {} queries per class, {} episodes; saved to {}",
        report.model,
        report.rule,
        report.novel_classes,
        report.dataset,
        args.ways,
        args.queries,
        args.episodes,
        report.saved_to.display()
    );
    let rows: Vec<Vec<String>> = report
        .results
        .iter()
        .map(|r| {
            vec![r.features.clone(), r.classifier.clone(), r.shots.to_string(), mean_ci(r.mean, r.ci95, r.episodes)]
        })
        .collect();
    print_table(&["features", "classifier", "shots", "mean ± ci95"], &rows);
    Ok(())
}

fn few_labels(args: FewshotArgs) -> Result<()> {
    let Some(rule) = args.rule.clone() else {
        bail!("missing `rule`: the few-labels protocol needs --rule (e.g. bio or bp)");
    };
    let spec = FewLabelsSpec {
        rule,
        options: RuleOptions {
            hidden: args.hidden.clone(),
            seed: args.seed,
            epochs: args.epochs,
            ..RuleOptions::default()
        },
        dataset: args.dataset.clone(),
        data_dir: args.data.clone(),
        shots: if args.shots.is_empty() { vec![1, 5, 10, 50] } else { args.shots.clone() },
        seeds: args.seeds,
        unlabelled: args.unlabelled,
        hidden_epochs: args.hidden_epochs,
        out: args.out.clone(),
    };
    spec.check()?;
    with_backend!(args.backend, args.json, |b| few_labels_on(b, &args, &spec))
}

/// The few-labels protocol on one backend.
fn few_labels_on<B: Backend>(b: &B, args: &FewshotArgs, spec: &FewLabelsSpec) -> Result<()> {
    let epochs = spec.options.epochs.unwrap_or(spec.rule.default_epochs());
    let say = |what: &str| {
        if args.json || crate::output::quiet() {
            return;
        }
        let what = match what {
            "bio-strict" => "bio-strict (labelled images only)",
            "bio-unlabelled" => "bio-unlabelled (hidden layers also see the rest of the training set, unlabelled)",
            other => other,
        };
        let seeds = if spec.seeds == 1 { "1 seed".to_string() } else { format!("{} seeds", spec.seeds) };
        let unlabelled = match (spec.unlabelled, spec.hidden_epochs) {
            (false, _) => String::new(),
            (true, 1) => ", 1 unlabelled epoch".to_string(),
            (true, n) => format!(", {n} unlabelled epochs"),
        };
        eprintln!(
            "training {what}: shots {:?} × {seeds}, ≥{epochs} epochs (≥{MIN_LABELLED_UPDATES} updates) on \
             the labelled images{unlabelled}, hidden {:?}",
            spec.shots, spec.options.hidden
        );
    };
    let report = bio_run::eval::few_labels(b, spec, say)?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if args.json {
        return print_json(&report);
    }
    outln!(
        "few labels per class on {} ({} test images), hidden {:?}, {} epochs",
        report.dataset,
        report.test_samples,
        report.hidden,
        report.epochs
    );
    let rows: Vec<Vec<String>> = report
        .results
        .iter()
        .map(|r| {
            vec![
                r.variant.clone(),
                if r.unlabelled { "yes" } else { "no" }.to_string(),
                r.shots.to_string(),
                r.seeds.to_string(),
                mean_ci(r.mean, r.ci95, r.seeds),
                r.accuracies.iter().map(|a| percent(*a)).collect::<Vec<_>>().join(" "),
            ]
        })
        .collect();
    print_table(&["variant", "unlabelled data", "shots", "seeds", "mean ± ci95", "per seed"], &rows);
    Ok(())
}
