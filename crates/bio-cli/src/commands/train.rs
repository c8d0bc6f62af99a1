//! `bio train`: build the rule from flags, train with a progress bar, checkpoint every epoch, evaluate.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use bio_core::train::train_epoch;
use bio_core::{
    Backend, BackpropRule, BioParams, BioRule, BpParams, Classifier, Competition, InitSign, LearningRule, Mechanisms,
    Optimizer, ReadoutRule, SavedModel, TensorStore,
};
use bio_data::{Dataset, ModelFile, Split, model_dir};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::backend::cpu_or_explain;
use crate::cli::{
    CompetitionChoice, Mechanism, OptimizerChoice, ReadoutChoice, RuleArgs, RuleChoice, SignChoice, TrainArgs,
};
use crate::output::{percent, print_json};

/// Default epochs, chosen by measurement (see docs/RESULTS.md).
pub const BIO_EPOCHS: usize = 5;
/// Default epochs of the baseline.
pub const BP_EPOCHS: usize = 10;

/// One epoch's line in `metrics.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochLog {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss.
    pub loss: f32,
    /// Training accuracy (before each batch's update).
    pub train_accuracy: f32,
    /// Mean active fraction of the last hidden layer during training.
    pub active_fraction: f32,
    /// Seconds since training started.
    pub seconds: f64,
}

/// `metrics.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainMetrics {
    /// `bio` or `bp`.
    pub rule: String,
    /// Dataset name or directory.
    pub dataset: String,
    /// Where the data came from.
    pub data_source: String,
    /// Accuracy on the test set (of the trained classes).
    pub test_accuracy: f64,
    /// Number of test images.
    pub test_samples: usize,
    /// Wall-clock training time.
    pub train_seconds: f64,
    /// Epochs.
    pub epochs: usize,
    /// Hidden widths.
    pub hidden: Vec<usize>,
    /// Seed.
    pub seed: u64,
    /// Backend name.
    pub backend: String,
    /// Per-epoch log.
    pub history: Vec<EpochLog>,
    /// Biological metrics on the test set.
    pub biology: bio_eval::BiologicalReport,
}

/// Builds the `bio` rule's validated config from flags (errors name the flag).
pub fn bio_params(a: &RuleArgs) -> Result<bio_core::BioConfig> {
    let d = BioParams::default();
    let sign = |s: Option<SignChoice>, default| match s {
        Some(SignChoice::Positive) => InitSign::Positive,
        Some(SignChoice::Mixed) => InitSign::Mixed,
        None => default,
    };
    let off = |m: Mechanism| a.ablate.contains(&m);
    let params = BioParams {
        hidden: a.hidden.clone(),
        active_fraction: a.active_fraction.unwrap_or(d.active_fraction),
        competition: match a.competition {
            Some(CompetitionChoice::Inhibitory) => Competition::Inhibitory { gain: a.inhibition_gain },
            Some(CompetitionChoice::Kwta) => Competition::KWinners,
            None => d.competition,
        },
        hebbian_rate: a.hebbian_rate.unwrap_or(d.hebbian_rate),
        homeostasis_rate: a.homeostasis_rate.unwrap_or(d.homeostasis_rate),
        readout_rate: a.readout_rate.unwrap_or(d.readout_rate),
        readout_rule: match a.readout {
            Some(ReadoutChoice::Perturbation) => ReadoutRule::Perturbation,
            Some(ReadoutChoice::Delta) => ReadoutRule::DeltaEg,
            None => d.readout_rule,
        },
        prune_below: a.prune_below.unwrap_or(d.prune_below),
        regrow_probability: a.regrow.unwrap_or(d.regrow_probability),
        readout_init: sign(a.readout_init, d.readout_init),
        hidden_init: sign(a.hidden_init, d.hidden_init),
        mechanisms: Mechanisms {
            competition: !off(Mechanism::Competition),
            multiplicative: !off(Mechanism::Multiplicative),
            homeostasis: !off(Mechanism::Homeostasis),
            structural: !off(Mechanism::Structural),
            synaptic_scaling: !off(Mechanism::Scaling),
            sign_preserving_readout: !off(Mechanism::SignReadout),
        },
        ..d
    };
    Ok(params.check()?)
}

/// Builds the backprop baseline's validated config from flags.
pub fn bp_params(a: &RuleArgs) -> Result<bio_core::BpConfig> {
    let (optimizer, default_lr) = match a.optimizer {
        OptimizerChoice::Adam => (Optimizer::Adam, 1e-3),
        OptimizerChoice::Momentum => (Optimizer::Momentum { momentum: a.momentum }, 0.05),
    };
    Ok(BpParams { hidden: a.hidden.clone(), optimizer, learning_rate: a.lr.unwrap_or(default_lr) }.check()?)
}

/// Everything a training run needs besides the backend.
pub struct RunSpec<'a> {
    /// Which rule, with which flags.
    pub rule: RuleChoice,
    /// Flags.
    pub args: &'a RuleArgs,
    /// Data.
    pub data: &'a Dataset,
    /// How the data was named (`fashion-mnist`, `embedded`, a directory): what `bio eval` reloads.
    pub dataset_spec: &'a str,
    /// Training split (possibly restricted to some classes).
    pub train: &'a Split,
    /// Test split (restricted the same way).
    pub test: &'a Split,
    /// Classes trained on.
    pub classes: Vec<usize>,
    /// Save a checkpoint here after every epoch.
    pub out: Option<&'a Path>,
    /// Show a progress bar.
    pub progress: bool,
}

/// Trains, checkpoints and evaluates; returns the metrics and the model.
pub fn train_run<B: Backend>(b: &B, spec: &RunSpec) -> Result<(TrainMetrics, SavedModel)> {
    let a = spec.args;
    if spec.train.is_empty() {
        bail!("the training set is empty (check --classes)");
    }
    if a.batch == 0 {
        bail!("invalid value for `batch`: must be ≥ 1");
    }
    match spec.rule {
        RuleChoice::Bio => {
            let rule = BioRule::new(bio_params(a)?, a.seed);
            fit(b, rule, a.epochs.unwrap_or(BIO_EPOCHS), spec, |m: &bio_core::BioNet<B>| m.to_saved())
        }
        RuleChoice::Bp => {
            let rule = BackpropRule::new(bp_params(a)?);
            fit(b, rule, a.epochs.unwrap_or(BP_EPOCHS), spec, |m: &bio_core::BpNet<B>| m.to_saved())
        }
    }
}

fn progress_bar(total: u64, label: &str, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>4} [{bar:30}] {pos}/{len} batches {elapsed_precise} eta {eta} {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    bar
}

fn fit<B: Backend, R: LearningRule<B>>(
    b: &B,
    mut rule: R,
    epochs: usize,
    spec: &RunSpec,
    to_saved: impl Fn(&R::Model) -> SavedModel,
) -> Result<(TrainMetrics, SavedModel)> {
    let a = spec.args;
    if epochs == 0 {
        bail!("invalid value for `epochs`: must be ≥ 1");
    }
    let (train, test) = (spec.train, spec.test);
    let mut model = rule.init_model(b, spec.data.input_dim(), spec.data.classes, a.seed);
    let per_epoch = train.len().div_ceil(a.batch) as u64;
    let bar = progress_bar(per_epoch * epochs as u64, rule.name(), spec.progress);
    let start = Instant::now();
    let mut history = Vec::new();
    for epoch in 0..epochs {
        rule.start_epoch(epoch, epochs);
        let batches = train.batches(a.batch, Some(a.seed.wrapping_add(epoch as u64))).map(|bt| (bt.images, bt.labels));
        let report = train_epoch(b, &mut rule, &mut model, batches, |r| {
            bar.inc(1);
            bar.set_message(format!("loss {:.3} acc {:.1}%", r.loss, 100.0 * r.correct as f32 / r.samples as f32));
        });
        let report = match report {
            Ok(r) => r,
            Err(e) => {
                bar.abandon();
                let kept = match (spec.out, epoch) {
                    (Some(dir), e) if e > 0 => format!("; the checkpoint of epoch {e} in {} is kept", dir.display()),
                    _ => String::new(),
                };
                bail!("epoch {}: {e}{kept}", epoch + 1);
            }
        };
        history.push(EpochLog {
            epoch: epoch + 1,
            loss: report.loss,
            train_accuracy: report.accuracy,
            active_fraction: report.active_fraction,
            seconds: start.elapsed().as_secs_f64(),
        });
        if let Some(dir) = spec.out {
            let file = ModelFile {
                model: to_saved(&model),
                dataset: spec.dataset_spec.to_string(),
                trained_classes: spec.classes.clone(),
                epochs: epoch + 1,
                seed: a.seed,
                version: env!("CARGO_PKG_VERSION").to_string(),
            };
            model_dir::save_model(dir, &file)
                .with_context(|| format!("saving the checkpoint of epoch {}", epoch + 1))?;
        }
    }
    let train_seconds = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let eval = bio_eval::evaluate(&model, &test.images, &test.labels, 1000)?;
    let biology = bio_eval::biological_report(&model, &test.images, 1000)?;
    let metrics = TrainMetrics {
        rule: rule.name().to_string(),
        dataset: spec.data.name.clone(),
        data_source: spec.data.source.to_string(),
        test_accuracy: eval.accuracy,
        test_samples: eval.total,
        train_seconds,
        epochs,
        hidden: a.hidden.clone(),
        seed: a.seed,
        backend: b.name(),
        history,
        biology,
    };
    Ok((metrics, to_saved(&model)))
}

/// Restricts both splits to `classes` (all when `None`).
pub fn restrict(data: &Dataset, classes: Option<&str>) -> Result<(Split, Split, Vec<usize>)> {
    match classes {
        None => Ok((data.train.clone(), data.test.clone(), (0..data.classes).collect())),
        Some(spec) => {
            let classes = bio_eval::parse_classes(spec).context("--classes")?;
            if let Some(c) = classes.iter().find(|&&c| c >= data.classes) {
                bail!("invalid value for `classes`: class {c} does not exist ({} classes)", data.classes);
            }
            Ok((data.train.filter_classes(&classes), data.test.filter_classes(&classes), classes))
        }
    }
}

/// `bio train`.
pub fn run(args: TrainArgs) -> Result<()> {
    // Validate every hyper-parameter before touching data or disk.
    match args.rule {
        RuleChoice::Bio => drop(bio_params(&args.rule_args)?),
        RuleChoice::Bp => drop(bp_params(&args.rule_args)?),
    }
    let data = bio_data::load(&args.data.dataset, args.data.data.as_deref())?;
    let (train, test, classes) = restrict(&data, args.classes.as_deref())?;
    bio_data::ensure_output_dir(&args.out)?;
    let b = cpu_or_explain(args.backend, args.quiet || args.json)?;
    if !args.quiet && !args.json {
        eprintln!(
            "training `{:?}` on {} ({} train / {} test images) with {}",
            args.rule,
            data.source,
            train.len(),
            test.len(),
            b.name()
        );
    }
    let (_, config_path, metrics_path) = model_dir::model_paths(&args.out);
    bio_data::write_json(&config_path, &args)?;
    let spec = RunSpec {
        rule: args.rule,
        args: &args.rule_args,
        data: &data,
        dataset_spec: &args.data.dataset,
        train: &train,
        test: &test,
        classes,
        out: Some(&args.out),
        progress: !args.quiet && !args.json,
    };
    let (metrics, _) = train_run(&b, &spec)?;
    bio_data::write_json(&metrics_path, &metrics)?;
    if args.json {
        print_json(&metrics)?;
    } else {
        println!(
            "{}: test accuracy {} on {} images, trained in {:.1}s; model in {}",
            metrics.rule,
            percent(metrics.test_accuracy),
            metrics.test_samples,
            metrics.train_seconds,
            args.out.display()
        );
    }
    Ok(())
}

/// Loads a model directory and uploads the model.
pub fn load_model<B: Backend>(b: &B, dir: &Path) -> Result<(ModelFile, bio_core::AnyModel<B>)> {
    let file = bio_data::load_model(dir)?;
    let model = file.model.load(b).with_context(|| format!("loading {}", dir.display()))?;
    if model.input_dim() == 0 {
        bail!("{}: model has no inputs", dir.display());
    }
    Ok((file, model))
}
