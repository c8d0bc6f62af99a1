//! `bio train`: build the rule from flags, train with a progress bar, checkpoint every epoch, evaluate.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use bio_core::params::{BIO_COPIES_PER_WEIGHT, BP_COPIES_PER_WEIGHT, training_memory_estimate};
use bio_core::train::{EpochProgress, train_epoch_from};
use bio_core::{
    AnyModel, Backend, BackpropRule, BioParams, BioRule, BpParams, Classifier, Competition, InitSign, LearningRule,
    Mechanisms, Optimizer, ReadoutRule, SavedModel, ScalingNorm,
};
use bio_data::dataset::VALIDATION_SEED;
use bio_data::{DataError, Dataset, ModelFile, Split, TrainingState, model_dir};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use super::eval::EVAL_BATCH;
use crate::backend::with_backend;
use crate::cli::{
    CompetitionChoice, Mechanism, NormChoice, OptimizerChoice, ReadoutChoice, RuleArgs, RuleChoice, SignChoice,
    TrainArgs,
};
use crate::output::{percent, print_json};

/// Default epochs, chosen by measurement (see docs/RESULTS.md).
pub const BIO_EPOCHS: usize = 10;
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
    /// Accuracy on the held-out validation images at the end of the epoch (`--validation N`); absent
    /// without validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_accuracy: Option<f32>,
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
    /// Accuracy on the validation images held out of the training set (`--validation N`); `None`
    /// without validation. Tune on this, not on `test_accuracy`.
    #[serde(default)]
    pub validation_accuracy: Option<f64>,
    /// Number of validation images held out of the training set (0: none).
    #[serde(default)]
    pub validation_samples: usize,
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
        hebbian_exponent: a.hebbian_exponent.unwrap_or(d.hebbian_exponent),
        anti_hebbian: a.anti_hebbian.unwrap_or(d.anti_hebbian),
        feedforward_inhibition: a.feedforward_inhibition.unwrap_or(d.feedforward_inhibition),
        rate_smoothing: a.rate_smoothing.unwrap_or(d.rate_smoothing),
        scaling_norm: match a.scaling_norm {
            Some(NormChoice::L1) => ScalingNorm::L1,
            Some(NormChoice::L2) => ScalingNorm::L2,
            None => d.scaling_norm,
        },
        receptive_field: a.receptive_field.or(d.receptive_field),
        consolidation_epochs: a.consolidation_epochs.unwrap_or(d.consolidation_epochs),
        layerwise: a.layerwise,
        init_spread: a.init_spread.unwrap_or(d.init_spread),
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

/// Epochs, batch size and checkpoint interval must each be at least 1 (the epochs' default is).
fn check_counts(a: &RuleArgs, checkpoint_every: Option<usize>) -> Result<()> {
    for (flag, value) in [("epochs", a.epochs), ("batch", Some(a.batch)), ("checkpoint-every", checkpoint_every)] {
        if value == Some(0) {
            bail!("invalid value for `{flag}`: must be ≥ 1");
        }
    }
    Ok(())
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
    /// Training split (possibly restricted to some classes, without the validation images).
    pub train: &'a Split,
    /// Validation images held out of the training split (`--validation N`), evaluated after every epoch.
    pub validation: Option<&'a Split>,
    /// Test split (restricted the same way).
    pub test: &'a Split,
    /// Classes trained on.
    pub classes: Vec<usize>,
    /// Save a checkpoint here after every epoch.
    pub out: Option<&'a Path>,
    /// Show a progress bar.
    pub progress: bool,
}

/// How a run checkpoints and where it starts.
#[derive(Clone, Debug, Default)]
pub struct Checkpointing {
    /// Also write `state.ckpt` every this many batches (counted over the whole run); it is always
    /// written at each epoch end when the run has an output directory.
    pub every: Option<usize>,
    /// Continue from this state instead of starting afresh.
    pub resume: Option<TrainingState>,
}

/// Trains, checkpoints and evaluates; returns the metrics and the model.
pub fn train_run<B: Backend>(b: &B, spec: &RunSpec) -> Result<(TrainMetrics, SavedModel)> {
    train_run_with(b, spec, Checkpointing::default())
}

/// [`train_run`] with mid-epoch checkpoints and resumption.
pub fn train_run_with<B: Backend>(b: &B, spec: &RunSpec, ckpt: Checkpointing) -> Result<(TrainMetrics, SavedModel)> {
    let a = spec.args;
    if spec.train.is_empty() {
        bail!("the training set is empty (check --classes)");
    }
    check_counts(a, ckpt.every)?;
    let copies = match spec.rule {
        RuleChoice::Bio => BIO_COPIES_PER_WEIGHT,
        RuleChoice::Bp => BP_COPIES_PER_WEIGHT,
    };
    check_memory(training_memory_estimate(spec.data.input_dim(), &a.hidden, spec.data.classes, a.batch, copies))?;
    match spec.rule {
        RuleChoice::Bio => {
            let config = bio_params(a)?;
            let rule = BioRule::new(config.clone(), a.seed);
            let from_saved = |saved: &SavedModel| match saved.load(b)? {
                AnyModel::Bio(m) if m.config == config => Ok(m),
                AnyModel::Bio(_) => bail!("the checkpoint's hyper-parameters differ from the run's"),
                AnyModel::Bp(_) => bail!("the checkpoint holds a `bp` model, the run trains `bio`"),
            };
            fit(b, rule, a.epochs.unwrap_or(BIO_EPOCHS), spec, ckpt, |m: &bio_core::BioNet<B>| m.to_saved(), from_saved)
        }
        RuleChoice::Bp => {
            let config = bp_params(a)?;
            let rule = BackpropRule::new(config.clone());
            let from_saved = |saved: &SavedModel| match saved.load(b)? {
                AnyModel::Bp(m) if m.config == config => Ok(m),
                AnyModel::Bp(_) => bail!("the checkpoint's hyper-parameters differ from the run's"),
                AnyModel::Bio(_) => bail!("the checkpoint holds a `bio` model, the run trains `bp`"),
            };
            fit(b, rule, a.epochs.unwrap_or(BP_EPOCHS), spec, ckpt, |m: &bio_core::BpNet<B>| m.to_saved(), from_saved)
        }
    }
}

const GIB: f64 = (1u64 << 30) as f64;

/// Refuses a network whose training would not fit in the available memory (Linux only).
fn check_memory(needed: u64) -> Result<()> {
    if let Some(available) = bio_data::available_memory()
        && needed > available
    {
        bail!(
            "invalid value for `hidden`: training this network needs about {:.1} GiB of memory, only {:.1} GiB is available",
            needed as f64 / GIB,
            available as f64 / GIB
        );
    }
    Ok(())
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
    ckpt: Checkpointing,
    to_saved: impl Fn(&R::Model) -> SavedModel,
    from_saved: impl Fn(&SavedModel) -> Result<R::Model>,
) -> Result<(TrainMetrics, SavedModel)> {
    let a = spec.args;
    let (train, test) = (spec.train, spec.test);
    let validation = spec.validation.filter(|v| !v.is_empty());
    let per_epoch = train.len().div_ceil(a.batch);
    let resumed = ckpt.resume.is_some();
    let (mut model, first_epoch, mut progress, mut history, seconds_before) = match ckpt.resume {
        None => (
            rule.init_model(b, spec.data.input_dim(), spec.data.classes, a.seed),
            0,
            EpochProgress::default(),
            Vec::new(),
            0.0,
        ),
        Some(state) => {
            let saved = &state.model.model;
            if saved.rule() != rule.name() || state.rule.rule() != rule.name() {
                bail!("the checkpoint is of a `{}` run, this run trains `{}`", saved.rule(), rule.name());
            }
            if saved.hidden() != a.hidden.as_slice() {
                bail!(
                    "invalid value for `hidden`: the checkpoint's network has hidden {:?}, this run asks for {:?}",
                    saved.hidden(),
                    a.hidden
                );
            }
            if state.epochs != epochs || state.epoch > epochs || state.progress.batches >= per_epoch.max(1) {
                bail!(
                    "the checkpoint stopped at batch {} of epoch {} of {}, which does not fit this run ({} epochs of {per_epoch} batches)",
                    state.progress.batches,
                    state.epoch + 1,
                    state.epochs,
                    epochs
                );
            }
            if state.model.seed != a.seed {
                bail!(
                    "invalid value for `seed`: the checkpoint was trained with seed {}, this run has {}",
                    state.model.seed,
                    a.seed
                );
            }
            let model = from_saved(saved).context("resuming from the checkpoint")?;
            rule.restore_state(&model, state.rule).context("resuming from the checkpoint")?;
            (model, state.epoch, state.progress, state.history, state.seconds)
        }
    };
    // The validation accuracy after each completed epoch, aligned with `history`.
    let mut validation_history = match (validation, spec.out) {
        (Some(v), Some(dir)) if resumed => resumed_validation(dir, v.len(), history.len())?,
        _ => vec![None; history.len()],
    };
    let mut final_validation = None;
    let done_before = (first_epoch * per_epoch + progress.batches) as u64;
    let bar = progress_bar(per_epoch as u64 * epochs as u64, rule.name(), spec.progress);
    bar.set_position(done_before);
    let start = Instant::now();
    // Training time excludes the time spent measuring validation accuracy.
    let validating = std::cell::Cell::new(0.0);
    let seconds = || seconds_before + start.elapsed().as_secs_f64() - validating.get();
    let mut done = done_before;
    for epoch in first_epoch..epochs {
        if progress.batches == 0 {
            rule.start_epoch(epoch, epochs);
        }
        let val_note = match validation_history.last() {
            Some(Some(acc)) => format!(" val {:.1}%", 100.0 * acc),
            _ => String::new(),
        };
        let batches = train
            .batches(a.batch, Some(a.seed.wrapping_add(epoch as u64)))
            .skip(progress.batches)
            .map(|bt| (bt.images, bt.labels));
        let mut save_error = None;
        let report = train_epoch_from(b, &mut rule, &mut model, batches, &mut progress, |rule, model, p, r| {
            bar.inc(1);
            bar.set_message(format!(
                "loss {:.3} acc {:.1}%{val_note}",
                r.loss,
                100.0 * r.correct as f32 / r.samples as f32
            ));
            done += 1;
            if let (Some(dir), Some(every)) = (spec.out, ckpt.every)
                && done.is_multiple_of(every as u64)
                && p.batches < per_epoch
            {
                let state = TrainingState {
                    model: model_file(spec, to_saved(model), epoch),
                    rule: rule.save_state(model),
                    epochs,
                    epoch,
                    progress: *p,
                    history: history.clone(),
                    seconds: seconds(),
                };
                if let Err(e) = model_dir::save_state(dir, &state) {
                    save_error = Some(anyhow::Error::new(e).context(format!(
                        "saving the checkpoint after batch {} of epoch {}",
                        p.batches,
                        epoch + 1
                    )));
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        });
        if let Some(e) = save_error {
            bar.abandon();
            return Err(e);
        }
        if let Err(e) = report {
            bar.abandon();
            let kept = match (spec.out, epoch) {
                (Some(dir), e) if e > 0 => format!("; the checkpoint of epoch {e} in {} is kept", dir.display()),
                _ => String::new(),
            };
            bail!("epoch {}: {e}{kept}", epoch + 1);
        }
        history.push((progress.report(), seconds()));
        progress = EpochProgress::default();
        final_validation = match validation {
            Some(v) => {
                let t = Instant::now();
                let eval = bio_eval::evaluate(&model, &v.images, &v.labels, EVAL_BATCH)
                    .with_context(|| format!("measuring validation accuracy after epoch {}", epoch + 1))?;
                validating.set(validating.get() + t.elapsed().as_secs_f64());
                Some(eval.accuracy)
            }
            None => None,
        };
        validation_history.push(final_validation.map(|acc| acc as f32));
        if let Some(dir) = spec.out {
            let file = model_file(spec, to_saved(&model), epoch + 1);
            model_dir::save_model(dir, &file)
                .with_context(|| format!("saving the checkpoint of epoch {}", epoch + 1))?;
            if let Some(v) = validation {
                // Before the training state, so that a state never has epochs this log lacks.
                let log = ValidationLog { samples: v.len(), accuracy: validation_history.clone() };
                bio_data::write_json(dir.join(VALIDATION_FILE), &log)
                    .with_context(|| format!("saving the validation accuracy of epoch {}", epoch + 1))?;
            }
            let state = TrainingState {
                model: file,
                rule: rule.save_state(&model),
                epochs,
                epoch: epoch + 1,
                progress,
                history: history.clone(),
                seconds: seconds(),
            };
            model_dir::save_state(dir, &state)
                .with_context(|| format!("saving the training state of epoch {}", epoch + 1))?;
        }
    }
    let train_seconds = seconds();
    bar.finish_and_clear();
    let validation_accuracy = match (validation, final_validation) {
        (Some(v), None) => Some(bio_eval::evaluate(&model, &v.images, &v.labels, EVAL_BATCH)?.accuracy),
        (_, acc) => acc,
    };
    let eval = bio_eval::evaluate(&model, &test.images, &test.labels, EVAL_BATCH)?;
    let biology = bio_eval::biological_report(&model, &test.images, EVAL_BATCH)?;
    let history = history
        .iter()
        .zip(&validation_history)
        .enumerate()
        .map(|(i, ((r, seconds), validation_accuracy))| EpochLog {
            epoch: i + 1,
            loss: r.loss,
            train_accuracy: r.accuracy,
            active_fraction: r.active_fraction,
            seconds: *seconds,
            validation_accuracy: *validation_accuracy,
        })
        .collect();
    let metrics = TrainMetrics {
        rule: rule.name().to_string(),
        dataset: spec.data.name.clone(),
        data_source: spec.data.source.to_string(),
        test_accuracy: eval.accuracy,
        test_samples: eval.total,
        validation_accuracy,
        validation_samples: validation.map_or(0, Split::len),
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

fn model_file(spec: &RunSpec, model: SavedModel, epochs_done: usize) -> ModelFile {
    ModelFile {
        model,
        dataset: spec.dataset_spec.to_string(),
        trained_classes: spec.classes.clone(),
        epochs: epochs_done,
        seed: spec.args.seed,
        version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// File name, in a model directory, of the validation accuracy after each completed epoch
/// ([`ValidationLog`]).
pub const VALIDATION_FILE: &str = "validation.json";

/// `DIR/validation.json`: the validation accuracy after each completed epoch. The training state
/// (`state.ckpt`) has no place for it, so it is kept beside it, and written before it at each epoch
/// end, so that a resumed run's history has it too.
#[derive(Debug, Serialize, Deserialize)]
struct ValidationLog {
    /// Number of validation images.
    samples: usize,
    /// Accuracy after each completed epoch (`None` where unknown).
    accuracy: Vec<Option<f32>>,
}

/// The validation accuracies of the `epochs` epochs a resumed run in `dir` has completed, from its
/// [`ValidationLog`] (`None` for any the log lacks).
fn resumed_validation(dir: &Path, samples: usize, epochs: usize) -> Result<Vec<Option<f32>>> {
    let path = dir.join(VALIDATION_FILE);
    let mut accuracy = vec![None; epochs];
    if path.exists() {
        let log: ValidationLog = bio_data::read_json(&path).context("--resume")?;
        if log.samples != samples {
            bail!(
                "invalid value for `validation`: the resumed run in {} measured validation accuracy on {} images, this run holds out {samples}",
                dir.display(),
                log.samples
            );
        }
        for (slot, acc) in accuracy.iter_mut().zip(log.accuracy) {
            *slot = acc;
        }
    }
    Ok(accuracy)
}

/// `--validation N`: holds out `n` class-stratified images of `train` (already restricted by
/// `--classes`) with the fixed [`VALIDATION_SEED`], so that every run with the same `n` and data holds
/// out the same images whatever its `--seed`. Returns the rest and the held-out images (`None` when
/// `n` is 0).
pub fn hold_out(train: Split, n: usize, classes_flag: bool) -> Result<(Split, Option<Split>)> {
    if n == 0 {
        return Ok((train, None));
    }
    match train.stratified_holdout(n, VALIDATION_SEED) {
        Ok((rest, held)) => Ok((rest, Some(held))),
        Err(DataError::Invalid { what }) => {
            let of = if classes_flag { " (the training images of the classes chosen by --classes)" } else { "" };
            bail!("invalid value for `validation`: {what}{of}")
        }
        Err(e) => Err(e.into()),
    }
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

/// Flags that `--resume` accepts without comparing them to the saved run: they do not change the
/// trained weights.
const RESUME_FREE_FLAGS: [&str; 5] = ["resume", "quiet", "json", "backend", "checkpoint_every"];

/// `bio train --resume DIR`: the saved flags (with `--out DIR`) and the saved training state, after
/// checking that no flag given on the command line disagrees with the saved ones.
fn resume_args(cli_args: TrainArgs, dir: &Path) -> Result<(TrainArgs, Option<TrainingState>)> {
    let (model_path, config_path, _) = model_dir::model_paths(dir);
    let mut saved: TrainArgs = bio_data::read_json(&config_path).context("--resume")?;
    let explicit = explicit_train_flags();
    let (given, kept) = (serde_json::to_value(&cli_args)?, serde_json::to_value(&saved)?);
    for id in &explicit {
        if RESUME_FREE_FLAGS.contains(&id.as_str()) {
            continue;
        }
        let flag = id.replace('_', "-");
        if id == "out" {
            if cli_args.out.as_deref() != Some(dir) {
                bail!("invalid value for `out`: --resume continues in {}; leave out --out", dir.display());
            }
            continue;
        }
        if let (Some(g), Some(k)) = (find_field(&given, id), find_field(&kept, id))
            && g != k
        {
            bail!("invalid value for `{flag}`: the resumed run in {} was started with {k}, not {g}", dir.display());
        }
    }
    saved.out = Some(dir.to_path_buf());
    saved.resume = Some(dir.to_path_buf());
    saved.quiet = cli_args.quiet;
    saved.json = cli_args.json;
    saved.backend = cli_args.backend;
    if explicit.iter().any(|id| id == "checkpoint_every") {
        saved.checkpoint_every = cli_args.checkpoint_every;
    }
    let state_path = dir.join(model_dir::STATE_FILE);
    let state = if state_path.exists() {
        Some(model_dir::load_state(dir).context("--resume")?)
    } else if model_path.exists() {
        bail!(
            "--resume: {} has a model but no training state ({}), so it cannot be resumed",
            dir.display(),
            model_dir::STATE_FILE
        );
    } else {
        None // killed before its first checkpoint: start again (same seed, same result).
    };
    Ok((saved, state))
}

/// Ids of the `bio train` flags given explicitly on this process's command line.
fn explicit_train_flags() -> Vec<String> {
    use clap::CommandFactory;
    use clap::parser::ValueSource;
    let Ok(matches) = crate::cli::Cli::command().try_get_matches_from(std::env::args_os()) else {
        return Vec::new();
    };
    let Some(sub) = matches.subcommand_matches("train") else {
        return Vec::new();
    };
    sub.ids()
        .map(|id| id.as_str().to_string())
        .filter(|id| matches!(sub.value_source(id), Some(ValueSource::CommandLine)))
        .collect()
}

/// The field `id` of a serialized `TrainArgs`, looking one level into flattened groups.
fn find_field<'a>(v: &'a serde_json::Value, id: &str) -> Option<&'a serde_json::Value> {
    let obj = v.as_object()?;
    obj.get(id).or_else(|| obj.values().filter_map(|inner| inner.as_object()).find_map(|o| o.get(id)))
}

/// `bio train`.
pub fn run(args: TrainArgs) -> Result<()> {
    let (args, state) = match args.resume.clone() {
        Some(dir) => resume_args(args, &dir)?,
        None => (args, None),
    };
    let out: PathBuf = args.out.clone().context("--out is required")?;
    // Validate every hyper-parameter before touching data or disk.
    match args.rule {
        RuleChoice::Bio => drop(bio_params(&args.rule_args)?),
        RuleChoice::Bp => drop(bp_params(&args.rule_args)?),
    }
    check_counts(&args.rule_args, args.checkpoint_every)?;
    let data = bio_data::load(&args.data.dataset, args.data.data.as_deref())?;
    let (train, test, classes) = restrict(&data, args.classes.as_deref())?;
    let (train, validation) = hold_out(train, args.validation, args.classes.is_some())?;
    let splits = Splits { train, validation, test, classes };
    bio_data::ensure_output_dir(&out)?;
    with_backend!(args.backend, args.quiet || args.json, |b| run_on(&b, &args, state, &out, &data, splits))
}

/// The data of one `bio train` run.
struct Splits {
    /// Training images (restricted by `--classes`, without the validation images).
    train: Split,
    /// Validation images held out of the training images (`--validation N`).
    validation: Option<Split>,
    /// Test images (restricted by `--classes`).
    test: Split,
    /// Classes trained on.
    classes: Vec<usize>,
}

/// `bio train` on one backend, once the flags are checked and the data loaded.
fn run_on<B: Backend>(
    b: &B,
    args: &TrainArgs,
    state: Option<TrainingState>,
    out: &Path,
    data: &Dataset,
    splits: Splits,
) -> Result<()> {
    let Splits { train, validation, test, classes } = splits;
    if !args.quiet && !args.json {
        let resumed = match &state {
            Some(s) => format!(", resuming at batch {} of epoch {}", s.progress.batches, s.epoch + 1),
            None => String::new(),
        };
        let held = match &validation {
            Some(v) => format!(" / {} validation", v.len()),
            None => String::new(),
        };
        eprintln!(
            "training `{:?}` on {} ({} train{held} / {} test images) with {}{resumed}",
            args.rule,
            data.source,
            train.len(),
            test.len(),
            b.name()
        );
    }
    let (_, config_path, metrics_path) = model_dir::model_paths(out);
    if args.resume.is_none() {
        // A fresh run replaces any earlier one in the directory, its training state included.
        for stale in [out.join(model_dir::STATE_FILE), out.join(VALIDATION_FILE)] {
            if stale.exists() {
                std::fs::remove_file(&stale).with_context(|| format!("removing {}", stale.display()))?;
            }
        }
        bio_data::write_json(&config_path, args)?;
    }
    let spec = RunSpec {
        rule: args.rule,
        args: &args.rule_args,
        data,
        dataset_spec: &args.data.dataset,
        train: &train,
        validation: validation.as_ref(),
        test: &test,
        classes,
        out: Some(out),
        progress: !args.quiet && !args.json,
    };
    let (metrics, _) = train_run_with(b, &spec, Checkpointing { every: args.checkpoint_every, resume: state })?;
    bio_data::write_json(&metrics_path, &metrics)?;
    if args.json {
        print_json(&metrics)?;
    } else if let Some(acc) = metrics.validation_accuracy {
        println!(
            "{}: validation accuracy {} on {} held-out training images; test accuracy {} on {} test images; \
             trained in {:.1}s; model in {}",
            metrics.rule,
            percent(acc),
            metrics.validation_samples,
            percent(metrics.test_accuracy),
            metrics.test_samples,
            metrics.train_seconds,
            out.display()
        );
    } else {
        println!(
            "{}: test accuracy {} on {} images, trained in {:.1}s; model in {}",
            metrics.rule,
            percent(metrics.test_accuracy),
            metrics.test_samples,
            metrics.train_seconds,
            out.display()
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
