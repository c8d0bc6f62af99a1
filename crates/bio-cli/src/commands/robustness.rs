//! `bio eval robustness`: robust accuracy under adversarial attacks over a grid of radii.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use bio_core::Backend;
use bio_eval::{
    AttackKind, AttackParams, EnsembleAttack, EnsembleParams, EnsembleReport, Helpers, MaskingFlag, Norm,
    RobustnessCurve, Series, TargetMode,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use super::metrics::{model_test_set, read_saved};
use super::train::load_model;
use crate::backend::with_backend;
use crate::cli::{AttackChoice, BallChoice, RobustnessArgs};
use crate::output::{percent, print_json, print_table};

/// Name of the file `bio eval robustness` saves into the model directory.
pub const ROBUSTNESS_FILE: &str = "robustness.json";

/// `DIR/robustness.json`: every attack run so far on this model (a new run of an attack replaces it).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RobustnessFile {
    /// Curves by attack name (`fgsm`, `pgd`, `pgd-l2`, `square`, with `-targeted` for targeted runs).
    pub attacks: BTreeMap<String, RobustnessCurve>,
    /// Gradient-masking checks by `gradient-attack/square`.
    #[serde(default)]
    pub masking: BTreeMap<String, Vec<MaskingFlag>>,
    /// Ensemble evaluations (`strongest`, and the APGD, surrogate and transfer attacks alone) by name,
    /// with their worst case per image and sanity checks.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ensembles: BTreeMap<String, EnsembleReport>,
}

/// One attack in the JSON output.
#[derive(Serialize)]
struct AttackOutput {
    name: String,
    #[serde(flatten)]
    curve: RobustnessCurve,
}

#[derive(Serialize)]
struct RobustnessOutput {
    model: String,
    rule: String,
    dataset: String,
    samples: usize,
    attacks: Vec<AttackOutput>,
    ensembles: Vec<EnsembleOutput>,
    masking: Option<MaskingOutput>,
    plot: Option<String>,
}

/// One ensemble in the JSON output.
#[derive(Serialize)]
struct EnsembleOutput {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    #[serde(flatten)]
    report: EnsembleReport,
}

#[derive(Serialize)]
struct MaskingOutput {
    gradient_attack: String,
    flags: Vec<MaskingFlag>,
}

fn name_of(a: AttackChoice) -> &'static str {
    match a {
        AttackChoice::Fgsm => "fgsm",
        AttackChoice::Pgd => "pgd",
        AttackChoice::PgdL2 => "pgd-l2",
        AttackChoice::Square => "square",
        AttackChoice::ApgdCe => "apgd-ce",
        AttackChoice::ApgdT => "apgd-t",
        AttackChoice::Surrogate => "surrogate",
        AttackChoice::Transfer => "transfer",
        AttackChoice::Strongest => "strongest",
    }
}

/// The ensemble attacks an `--attack` value runs; `None` for the single-attack curves.
fn ensemble_of(a: AttackChoice) -> Option<Vec<EnsembleAttack>> {
    match a {
        AttackChoice::Fgsm | AttackChoice::Pgd | AttackChoice::PgdL2 | AttackChoice::Square => None,
        AttackChoice::ApgdCe => Some(vec![EnsembleAttack::ApgdCe]),
        AttackChoice::ApgdT => Some(vec![EnsembleAttack::ApgdT]),
        AttackChoice::Surrogate => Some(vec![EnsembleAttack::Surrogate]),
        AttackChoice::Transfer => Some(vec![EnsembleAttack::Transfer]),
        AttackChoice::Strongest => Some(EnsembleAttack::ALL.to_vec()),
    }
}

fn ensemble_params_of(a: AttackChoice, args: &RobustnessArgs) -> Option<EnsembleParams> {
    let attacks = ensemble_of(a)?;
    let defaults = EnsembleParams::default();
    Some(EnsembleParams {
        attacks,
        norm: match args.norm {
            BallChoice::Linf => Norm::Linf,
            BallChoice::L2 => Norm::L2,
        },
        iterations: args.iterations,
        restarts: args.restarts,
        square_queries: args.queries.unwrap_or(defaults.square_queries),
        surrogate_temperature: args.surrogate_temperature,
        independent: args.independent,
        sanity: a == AttackChoice::Strongest,
        seed: args.seed,
        ..defaults
    })
}

fn params_of(a: AttackChoice, args: &RobustnessArgs) -> AttackParams {
    let (kind, norm) = match a {
        AttackChoice::Fgsm => (AttackKind::Fgsm, Norm::Linf),
        AttackChoice::Pgd => (AttackKind::Pgd, Norm::Linf),
        AttackChoice::PgdL2 => (AttackKind::Pgd, Norm::L2),
        AttackChoice::Square => (AttackKind::Square, Norm::Linf),
        // Ensemble attacks are run by `bio_eval::strongest`, not through these parameters.
        _ => (AttackKind::Pgd, Norm::Linf),
    };
    AttackParams {
        kind,
        norm,
        steps: args.steps,
        step_size: args.step_size,
        queries: args.queries.unwrap_or(bio_eval::attack::DEFAULT_QUERIES),
        target: args.targeted.then_some(TargetMode::Random),
        use_predictions: args.use_predictions,
        ..AttackParams::default()
    }
}

/// Checks the flags before any work; errors name the flag.
fn validate(args: &RobustnessArgs, eps: &[f32]) -> Result<()> {
    if let Some(e) = eps.iter().find(|e| !e.is_finite() || **e < 0.0) {
        bail!("invalid value for `eps`: every radius must be a finite number ≥ 0, got {e}");
    }
    if args.attack.is_empty() {
        bail!("invalid value for `attack`: give at least one attack");
    }
    for &a in &args.attack {
        match ensemble_params_of(a, args) {
            Some(p) => {
                p.check()?;
                if a == AttackChoice::Transfer && args.source.is_none() {
                    bail!("invalid value for `source`: the transfer attack needs --source DIR");
                }
                if args.targeted {
                    bail!("invalid value for `targeted`: {} chooses its own targets", name_of(a));
                }
            }
            None => {
                params_of(a, args).check()?;
            }
        }
    }
    if let Some(p) = &args.plot
        && p.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()) != Some("png".into())
    {
        bail!("invalid value for `plot`: {} should end in .png", p.display());
    }
    Ok(())
}

fn bar(total: usize, label: &str, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
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
    let eps: Vec<f32> = if args.eps.is_empty() { bio_eval::DEFAULT_EPS_GRID.to_vec() } else { args.eps.clone() };
    validate(&args, &eps)?;
    with_backend!(args.backend, args.json, |b| run_on(&b, &args, &eps))
}

/// `bio eval robustness` on one backend, with the validated radii.
fn run_on<B: Backend>(b: &B, args: &RobustnessArgs, eps: &[f32]) -> Result<()> {
    let (file, model) = load_model(b, &args.model)?;
    let (data, test) = model_test_set(&file, args.data.as_deref(), args.limit)?;
    let mut attacks: Vec<AttackChoice> = Vec::new();
    for a in &args.attack {
        if !attacks.contains(a) {
            attacks.push(*a);
        }
    }
    let suffix = if args.targeted { "-targeted" } else { "" };
    let mut curves = Vec::new();
    let source = match &args.source {
        Some(dir) => Some(load_model(b, dir).with_context(|| format!("the --source model {}", dir.display()))?),
        None => None,
    };
    let surrogate = model.surrogate(args.surrogate_temperature);
    let mut ensembles = Vec::new();
    for &a in &attacks {
        let Some(params) = ensemble_params_of(a, args) else { continue };
        let name = name_of(a).to_string();
        let helpers = Helpers {
            surrogate: surrogate.as_ref().map(|s| s as &dyn bio_core::Classifier<B>),
            source: source.as_ref().map(|(_, m)| m as &dyn bio_core::Classifier<B>),
        };
        let report = bio_eval::strongest(&model, helpers, &params, eps, &test.images, &test.labels, |message| {
            if !args.json {
                eprintln!("{name}: {message}");
            }
        })
        .with_context(|| format!("the {name} attack"))?;
        ensembles.push(EnsembleOutput { name, source: args.source.as_ref().map(|p| p.display().to_string()), report });
    }
    for &a in attacks.iter().filter(|a| ensemble_of(**a).is_none()) {
        let name = format!("{}{suffix}", name_of(a));
        let pb = bar(eps.len() * test.len(), &name, !args.json);
        let curve = bio_eval::robustness_curve(
            &model,
            &params_of(a, args),
            eps,
            &test.images,
            &test.labels,
            bio_eval::attack::DEFAULT_BATCH,
            args.seed,
            |done, _| pb.set_position(done as u64),
        )
        .with_context(|| format!("the {name} attack"))?;
        pb.finish_and_clear();
        curves.push((a, name, curve));
    }
    let square = curves.iter().find(|(a, _, _)| *a == AttackChoice::Square);
    let gradient = curves
        .iter()
        .find(|(a, _, _)| *a == AttackChoice::Pgd)
        .or_else(|| curves.iter().find(|(a, _, _)| *a == AttackChoice::Fgsm));
    let masking = match (gradient, square) {
        (Some((_, g, gc)), Some((_, _, sc))) => {
            Some(MaskingOutput { gradient_attack: g.clone(), flags: bio_eval::masking_check(gc, sc) })
        }
        _ => None,
    };

    // Save (merge per attack) into the model directory.
    let path = args.model.join(ROBUSTNESS_FILE);
    let mut saved: RobustnessFile = read_saved(&args.model, ROBUSTNESS_FILE).unwrap_or_default();
    for (_, name, curve) in &curves {
        saved.attacks.insert(name.clone(), curve.clone());
    }
    for e in &ensembles {
        saved.ensembles.insert(e.name.clone(), e.report.clone());
    }
    if let Some(m) = &masking {
        saved.masking.insert(format!("{}/square{suffix}", m.gradient_attack), m.flags.clone());
    }
    bio_data::write_json(&path, &saved).with_context(|| format!("saving {}", path.display()))?;

    let mut warning = None;
    if let Some(plot) = &args.plot {
        let series: Vec<Series> = curves
            .iter()
            .map(|(_, name, c)| {
                Series::new(name.clone(), c.points.iter().map(|p| (p.eps as f64, p.accuracy)).collect())
            })
            .collect();
        let title = format!("{} ({}) robust accuracy", args.model.display(), file.model.rule());
        let drawn = bio_eval::line_chart(plot, &title, "eps", "robust accuracy", &series)?;
        warning = drawn.warning;
    }
    let out = RobustnessOutput {
        model: args.model.display().to_string(),
        rule: file.model.rule().to_string(),
        dataset: data.name.clone(),
        samples: test.len(),
        attacks: curves.into_iter().map(|(_, name, curve)| AttackOutput { name, curve }).collect(),
        ensembles,
        masking,
        plot: args.plot.as_ref().map(|p| p.display().to_string()),
    };
    if let Some(w) = warning {
        eprintln!("warning: {w}");
    }
    for e in &out.ensembles {
        for flag in e.report.sanity.iter().filter(|f| f.failed) {
            eprintln!("warning: {} sanity check failed: {}", e.name, flag.detail);
        }
    }
    if args.json {
        return print_json(&out);
    }
    println!(
        "{} ({}) on {} test images of {} [{}]; saved to {}",
        out.model,
        out.rule,
        out.samples,
        out.dataset,
        bio_core::TensorStore::name(b),
        path.display()
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
        println!("\ngradient-masking check ({} versus square):", m.gradient_attack);
        let rows: Vec<Vec<String>> = m
            .flags
            .iter()
            .map(|f| {
                vec![
                    format!("{}", f.eps),
                    percent(f.gradient_accuracy),
                    percent(f.gradient_free_accuracy),
                    format!("{:+.2}", 100.0 * f.gap),
                    if f.masking { "MASKING" } else { "ok" }.to_string(),
                ]
            })
            .collect();
        print_table(&["eps", m.gradient_attack.as_str(), "square", "gap (points)", "verdict"], &rows);
        if m.flags.iter().any(|f| f.masking) {
            println!(
                "square beats {} by more than one point somewhere: the gradient robustness is not to be trusted",
                m.gradient_attack
            );
        }
    }
    if let Some(p) = &out.plot {
        println!("curve: {p}");
    }
    Ok(())
}

/// One ensemble: per radius each attack (cumulative), the worst case, then the sanity checks.
fn print_ensemble(e: &EnsembleOutput) {
    let r = &e.report;
    println!(
        "\n{} ({}, {} APGD iterations × {} runs{}): clean {}",
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
        println!("\nsanity checks:");
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
            println!("a sanity check failed: these robust figures are not to be trusted");
        }
    }
}
