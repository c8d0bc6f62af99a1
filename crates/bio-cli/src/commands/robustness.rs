//! `bio eval robustness`: robust accuracy under adversarial attacks over a grid of radii.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use bio_core::Backend;
use bio_eval::{AttackKind, AttackParams, MaskingFlag, Norm, RobustnessCurve, Series, TargetMode};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use bio_run::{load_model, model_test_set};

use crate::backend::with_backend;
use crate::cli::{AttackChoice, RobustnessArgs};
use crate::output::{percent, print_json, print_table, read_result};

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
    masking: Option<MaskingOutput>,
    plot: Option<String>,
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
    }
}

fn params_of(a: AttackChoice, args: &RobustnessArgs) -> AttackParams {
    let (kind, norm) = match a {
        AttackChoice::Fgsm => (AttackKind::Fgsm, Norm::Linf),
        AttackChoice::Pgd => (AttackKind::Pgd, Norm::Linf),
        AttackChoice::PgdL2 => (AttackKind::Pgd, Norm::L2),
        AttackChoice::Square => (AttackKind::Square, Norm::Linf),
    };
    AttackParams {
        kind,
        norm,
        steps: args.steps,
        step_size: args.step_size,
        queries: args.queries,
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
        params_of(a, args).check()?;
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
    with_backend!(args.backend, args.json, |b| run_on(b, &args, &eps))
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
    for &a in &attacks {
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
    let mut saved: RobustnessFile = read_result(&args.model, ROBUSTNESS_FILE).unwrap_or_default();
    for (_, name, curve) in &curves {
        saved.attacks.insert(name.clone(), curve.clone());
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
        masking,
        plot: args.plot.as_ref().map(|p| p.display().to_string()),
    };
    if let Some(w) = warning {
        eprintln!("warning: {w}");
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
    print_table(&["attack", "norm", "eps", "robust accuracy", "samples"], &rows);
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
