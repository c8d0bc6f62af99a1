//! A training session: a validated [`SessionSpec`], its data and backend, and [`Session::run`], which
//! trains with checkpoints, validation, divergence and memory checks, writes the model directory, and
//! reports progress to an [`Observer`]. The session never prints; a [`StopFlag`] stops it
//! cooperatively after the current batch, with a checkpoint to resume from.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use bio_core::params::training_memory_estimate;
use bio_core::rules::{Configured, Rule, RuleInfo, RuleVisitor};
use bio_core::train::{EpochProgress, EpochReport, train_epoch_from};
use bio_core::{Backend, Classifier, LearningRule, SavedModel};
use bio_data::{Dataset, ModelFile, Split, TrainingState, model_dir};

use crate::backend::{Resolved, resolve};
use crate::data::Splits;
use crate::files::{EpochLog, RUN_FILES, TrainMetrics, VALIDATION_FILE, ValidationLog, resumed_validation};
use crate::spec::SessionSpec;
use crate::{EVAL_BATCH, on_backend};

impl SessionSpec {
    /// Trains this spec to the end in one call ([`Session::new`], then [`Session::run`] with no
    /// observer).
    pub fn train(self) -> Result<Trained> {
        Session::new(self)?.run(&mut ())?.finished()
    }
}

/// A request to stop, shared between the session and whoever may ask (an observer, a signal
/// handler, another thread). Cloning shares the flag.
#[derive(Clone, Debug, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// Asks the session to stop after the batch in progress.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was asked for.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What a running session reports.
#[derive(Debug)]
pub enum Event<'a> {
    /// Training is about to start (or continue).
    Started {
        /// Rule name (`bio`, `bp`).
        rule: &'static str,
        /// Backend name.
        backend: String,
        /// Training images.
        train: usize,
        /// Validation images (0 without validation).
        validation: usize,
        /// Test images.
        test: usize,
        /// Batches in the whole run.
        total_batches: u64,
        /// Batches already trained before this start (a resumed run).
        done_batches: u64,
        /// Where a resumed run continues: 1-based epoch and batches of it already done.
        resumed_at: Option<(usize, usize)>,
    },
    /// One batch was trained.
    Batch {
        /// 1-based epoch.
        epoch: usize,
        /// Batches trained in the whole run so far.
        done_batches: u64,
        /// This batch's loss.
        loss: f32,
        /// This batch's training accuracy (before its update).
        accuracy: f32,
    },
    /// `state.ckpt` was written in the middle of an epoch (`checkpoint_every`).
    CheckpointWritten {
        /// 1-based epoch.
        epoch: usize,
        /// Batches of that epoch done.
        batch: usize,
        /// The directory written.
        dir: &'a Path,
    },
    /// Validation accuracy was measured after an epoch.
    ValidationMeasured {
        /// 1-based epoch.
        epoch: usize,
        /// Accuracy on the held-out images.
        accuracy: f64,
    },
    /// An epoch ended (its checkpoint, when the session has a directory, is written).
    EpochEnded {
        /// The epoch's line of `metrics.json`.
        log: &'a EpochLog,
        /// Epochs of the run.
        epochs: usize,
    },
    /// Training is done; the test set and biological metrics are being measured.
    Evaluating,
}

/// Receives a session's [`Event`]s. `()` ignores them.
pub trait Observer {
    /// Called for each event, in order, on the session's thread.
    fn on_event(&mut self, event: &Event<'_>);
}

impl Observer for () {
    fn on_event(&mut self, _: &Event<'_>) {}
}

impl<F: FnMut(&Event<'_>)> Observer for F {
    fn on_event(&mut self, event: &Event<'_>) {
        self(event)
    }
}

/// A finished session's results.
#[derive(Clone, Debug)]
pub struct Trained {
    /// What `metrics.json` holds.
    pub metrics: TrainMetrics,
    /// The trained model (backend-free).
    pub model: SavedModel,
}

/// How [`Session::run`] ended.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Every epoch trained; the model directory (if any) is complete.
    Finished(Box<Trained>),
    /// Stopped by the [`StopFlag`].
    Interrupted {
        /// Epochs completed.
        epochs_done: usize,
        /// Batches of the next epoch already trained.
        batches_done: usize,
        /// The directory whose `state.ckpt` resumes the run (`None` without a directory).
        checkpoint: Option<PathBuf>,
    },
}

impl Outcome {
    /// The results of a finished session, or an error saying it was interrupted.
    pub fn finished(self) -> Result<Trained> {
        match self {
            Outcome::Finished(t) => Ok(*t),
            Outcome::Interrupted { epochs_done, batches_done, .. } => {
                bail!("interrupted after {epochs_done} epochs and {batches_done} batches")
            }
        }
    }
}

/// A training epoch that failed: which, why (the typed core error, also its `source`), what to try,
/// and which checkpoint is kept.
#[derive(Debug)]
pub struct EpochFailed {
    /// 1-based epoch.
    pub epoch: usize,
    /// Why.
    pub cause: bio_core::CoreError,
    /// What to change, naming the run's settings (after a divergence), else empty.
    pub advice: String,
    /// Which checkpoint is kept, else empty.
    pub kept: String,
}

impl std::fmt::Display for EpochFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "epoch {}: {}{}{}", self.epoch, self.cause, self.advice, self.kept)
    }
}

impl std::error::Error for EpochFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.cause)
    }
}

/// A `config.json` and `state.ckpt` read back from a model directory, to continue that run.
#[derive(Clone, Debug)]
pub struct Resumable {
    /// The saved spec, with `out` set to the directory.
    pub spec: SessionSpec,
    /// The training state; `None` when the run was killed before its first checkpoint (it then
    /// starts again: same seed, same result).
    pub state: Option<TrainingState>,
}

impl Resumable {
    /// Reads the run saved in `dir`.
    pub fn read(dir: &Path) -> Result<Resumable> {
        let (model_path, config_path, _) = model_dir::model_paths(dir);
        let mut spec: SessionSpec = bio_data::read_json(&config_path).context("--resume")?;
        spec.out = Some(dir.to_path_buf());
        // An older file leaves defaulted settings out: fill them in, so overrides compare with them.
        if let Ok(rule) = spec.rule.info()
            && let Ok(configured) = spec.configure(&rule)
        {
            spec.options.settings.0 = configured.settings;
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
            None
        };
        Ok(Resumable { spec, state })
    }

    /// Whether the saved run trained all its epochs (its state is the last epoch's end) and wrote
    /// its `metrics.json`: there is nothing to resume, and [`SessionBuilder::build`] refuses to resume it.
    pub fn finished(&self) -> bool {
        let dir = self.spec.out.as_deref().unwrap_or(Path::new("."));
        self.state.as_ref().is_some_and(|s| crate::files::refuse_finished_resume(dir, s).is_err())
    }

    /// Continues the run to `epochs` epochs in all, more than it was started with. Only for a rule
    /// whose updates do not depend on the run's length (`bp`), so that the result equals one run of
    /// `epochs` epochs; the `bio` rule anneals its rates over the run's epochs and is refused.
    pub fn extend_to(&mut self, epochs: usize) -> Result<()> {
        let saved = self.spec.epochs();
        if epochs <= saved {
            crate::invalid!("epochs", "the resumed run has {saved} epochs; extending it needs more");
        }
        if self.spec.rule.schedule_depends_on_epochs() {
            crate::invalid!(
                "epochs",
                "the `{}` rule anneals its rates over the run's {saved} epochs, so the run \
                 cannot be extended to {epochs} with the same result; train afresh with --epochs {epochs}",
                self.spec.rule.name()
            );
        }
        self.spec.options.epochs = Some(epochs);
        if let Some(state) = &mut self.state {
            state.epochs = epochs;
        }
        Ok(())
    }

    /// Refuses a `given` spec whose settings named in `explicit` (serde field names, e.g. `hidden`,
    /// `seed`) differ from the saved ones; `out` must be the resumed directory. Settings that do not
    /// change the weights (`backend`, `checkpoint_every`) may differ.
    pub fn check_overrides(&self, given: &SessionSpec, explicit: &[String]) -> Result<()> {
        const FREE: [&str; 2] = ["backend", "checkpoint_every"];
        let dir = self.spec.out.as_deref().unwrap_or(Path::new("."));
        let (given_json, kept_json) = (serde_json::to_value(given)?, serde_json::to_value(&self.spec)?);
        for id in explicit.iter().filter(|id| !FREE.contains(&id.as_str())) {
            if id == "out" {
                if given.out.as_deref() != Some(dir) {
                    crate::invalid!("out", "--resume continues in {}; leave out --out", dir.display());
                }
                continue;
            }
            if let (Some(g), Some(k)) = (find_field(&given_json, id), find_field(&kept_json, id))
                && g != k
                && !(g.is_number() && g.as_f64() == k.as_f64())
            {
                let flag = id.replace('_', "-");
                crate::invalid!(flag, "the resumed run in {} was started with {k}, not {g}", dir.display());
            }
        }
        Ok(())
    }
}

/// The field `id` of a serialized spec, looking one level into nested groups.
fn find_field<'a>(v: &'a serde_json::Value, id: &str) -> Option<&'a serde_json::Value> {
    let obj = v.as_object()?;
    obj.get(id).or_else(|| obj.values().filter_map(|inner| inner.as_object()).find_map(|o| o.get(id)))
}

/// A training session, ready to [`run`](Session::run). Made by [`Session::new`] (a fresh run of a
/// spec), [`Session::resume`] (the run saved in a directory), or a [`SessionBuilder`] for the rest:
/// data already loaded, a backend already resolved, a rule outside the registry.
pub struct Session {
    spec: SessionSpec,
    data: Arc<Dataset>,
    splits: Splits,
    backend: Resolved,
    backend_note: Option<String>,
    resume: Option<TrainingState>,
    /// Continues a saved run (keeps its `config.json`), even when `resume` is `None` because it was
    /// killed before its first checkpoint.
    resumed: bool,
    stop: StopFlag,
    /// The rule the spec names.
    rule: RuleInfo,
    /// Its validated configuration, built once from the spec.
    configured: Configured,
}

/// How a [`Session`] is made: from a spec ([`Session::builder`]) or from a saved run
/// ([`Session::resuming`]), optionally with data, a backend or an unregistered rule, then
/// [`build`](SessionBuilder::build), which checks everything before any data or disk work.
///
/// ```no_run
/// # fn main() -> anyhow::Result<()> {
/// use bio_run::{Resumable, Session};
/// let saved = Resumable::read(std::path::Path::new("runs/bio"))?;
/// let outcome = Session::resuming(saved).build()?.run(&mut ())?;
/// # Ok(()) }
/// ```
#[must_use = "a builder does nothing until `build`"]
pub struct SessionBuilder {
    spec: SessionSpec,
    data: Option<Arc<Dataset>>,
    backend: Option<Resolved>,
    /// `Some` continues a saved run: its state, `None` when it was killed before its first checkpoint.
    resume: Option<Option<TrainingState>>,
    rule: Option<RuleInfo>,
}

impl SessionBuilder {
    /// Trains on `data` instead of loading the spec's dataset (its name should be
    /// `spec.data.dataset`, which the checkpoint records so that evaluation reloads it; a resumed
    /// run must get the images it was started on).
    pub fn data(mut self, data: Arc<Dataset>) -> Self {
        self.data = Some(data);
        self
    }

    /// Runs on a backend already resolved (e.g. one CUDA context, or a fork of it, for several
    /// sessions) instead of resolving the spec's.
    pub fn backend(mut self, backend: Resolved) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Trains rule `R`, which need not be in the registry (an experiment, a test); run the session
    /// with [`Session::run_unregistered`].
    pub fn rule<R: Rule>(mut self) -> Self {
        self.rule = Some(RuleInfo::of::<R>());
        self
    }

    /// Checks the spec, loads its dataset, prepares the output directory and resolves the backend,
    /// in that order, so that a bad setting is refused before any data or disk work.
    pub fn build(self) -> Result<Session> {
        let SessionBuilder { mut spec, data, backend, resume, rule } = self;
        let rule = match rule {
            Some(r) => r,
            None => spec.rule.info()?,
        };
        if rule.name != spec.rule.name() {
            bail!("the run trains `{}`, not `{}`", spec.rule, rule.name);
        }
        let configured = spec.configure(&rule)?;
        // The spec (and `config.json`) says every setting the run uses, defaults included.
        spec.options.settings.0 = configured.settings.clone();
        let data = match data {
            Some(d) => d,
            None => Arc::new(bio_data::load(&spec.data.dataset, spec.data.data.as_deref())?),
        };
        let splits = Splits::new(&data, spec.classes.as_deref(), spec.validation)?;
        if splits.train.is_empty() {
            bail!("the training set is empty (check --classes)");
        }
        let o = &spec.options;
        let copies = rule.copies_per_weight;
        check_memory(training_memory_estimate(data.input_dim(), &o.hidden, data.classes, o.batch, copies))?;
        if let Some(out) = &spec.out {
            if resume.is_none() && !spec.force {
                refuse_used_dir(out)?;
            }
            bio_data::ensure_output_dir(out)?;
        }
        let (backend, backend_note) = match backend {
            Some(b) => (b, None),
            None => resolve(spec.backend)?,
        };
        let resumed = resume.is_some();
        if resumed && spec.out.is_none() {
            bail!("--resume needs the run's directory");
        }
        if let Some(Some(state)) = &resume {
            crate::files::refuse_finished_resume(spec.out.as_deref().unwrap_or(Path::new(".")), state)?;
        }
        Ok(Session {
            spec,
            data,
            splits,
            backend,
            backend_note,
            resume: resume.flatten(),
            resumed,
            stop: StopFlag::default(),
            rule,
            configured,
        })
    }
}

impl Session {
    /// A fresh run of `spec`: [`Session::builder`]`(spec).build()`.
    pub fn new(spec: SessionSpec) -> Result<Session> {
        Self::builder(spec).build()
    }

    /// Continues the run saved in `dir` (see [`Resumable`]): [`Session::resuming`] of what
    /// [`Resumable::read`] finds there, built.
    pub fn resume(dir: &Path) -> Result<Session> {
        Self::resuming(Resumable::read(dir)?).build()
    }

    /// A fresh run of `spec`, to configure further.
    pub fn builder(spec: SessionSpec) -> SessionBuilder {
        SessionBuilder { spec, data: None, backend: None, resume: None, rule: None }
    }

    /// Continues a run read with [`Resumable::read`] (possibly with another backend or checkpoint
    /// interval set in its spec), to configure further.
    pub fn resuming(saved: Resumable) -> SessionBuilder {
        SessionBuilder { resume: Some(saved.state), ..Self::builder(saved.spec) }
    }

    /// The spec being run.
    pub fn spec(&self) -> &SessionSpec {
        &self.spec
    }

    /// The data.
    pub fn data(&self) -> &Dataset {
        &self.data
    }

    /// The training, validation and test splits.
    pub fn splits(&self) -> &Splits {
        &self.splits
    }

    /// The backend the session runs on.
    pub fn backend(&self) -> &Resolved {
        &self.backend
    }

    /// With `backend: auto`, which backend was chosen and why (for front ends to show).
    pub fn backend_note(&self) -> Option<&str> {
        self.backend_note.as_deref()
    }

    /// The saved state a resumed session continues from.
    pub fn resumed_state(&self) -> Option<&TrainingState> {
        self.resume.as_ref()
    }

    /// The flag that stops this session after the batch in progress; clone it into a signal
    /// handler or an observer.
    pub fn stop_flag(&self) -> StopFlag {
        self.stop.clone()
    }

    /// Trains, checkpointing into the output directory (if any) at every epoch end and every
    /// `checkpoint_every` batches, then measures test accuracy and biology and writes `metrics.json`.
    /// A fresh run first writes `config.json` and removes an earlier run's training state.
    pub fn run(self, observer: &mut dyn Observer) -> Result<Outcome> {
        let session = &self;
        on_backend!(&self.backend, |b| session.run_on(b, observer, |b, observer| session.fit_registered(b, observer)))
    }

    /// Like [`Session::run`] for a rule `R` that is not in the registry (made with
    /// [`SessionBuilder::rule`]), on backend `b` (the session's own backend choice is not used).
    pub fn run_unregistered<B: Backend, R: Rule + LearningRule<B>>(
        self,
        b: &B,
        observer: &mut dyn Observer,
    ) -> Result<Outcome> {
        self.run_on(b, observer, |b, observer| self.fit::<B, R>(b, observer))
    }

    fn run_on<B: Backend>(
        &self,
        b: &B,
        observer: &mut dyn Observer,
        fit: impl FnOnce(&B, &mut dyn Observer) -> Result<Outcome>,
    ) -> Result<Outcome> {
        let spec = &self.spec;
        // A fresh run replaces any earlier one in the directory, its training state included.
        if let Some(out) = &spec.out
            && !self.resumed
        {
            for stale in RUN_FILES.map(|f| out.join(f)) {
                if stale.exists() {
                    std::fs::remove_file(&stale).with_context(|| format!("removing {}", stale.display()))?;
                }
            }
            bio_data::write_json(out.join(model_dir::CONFIG_FILE), spec)?;
        }
        let outcome = fit(b, observer);
        if outcome.is_err()
            && !self.resumed
            && let Some(out) = &spec.out
            && !out.join(model_dir::CHECKPOINT_FILE).exists()
        {
            // Nothing was trained to keep: leave no directory holding only the config of a failed run.
            let _ = std::fs::remove_file(out.join(model_dir::CONFIG_FILE));
            let _ = std::fs::remove_file(out.join(model_dir::STATE_FILE));
            let _ = std::fs::remove_dir(out);
        }
        let outcome = outcome?;
        if let (Outcome::Finished(t), Some(out)) = (&outcome, &spec.out) {
            crate::files::save_metrics(out, &t.metrics)?;
        }
        Ok(outcome)
    }

    fn fit_registered<B: Backend>(&self, b: &B, observer: &mut dyn Observer) -> Result<Outcome> {
        struct Fit<'a, B> {
            session: &'a Session,
            b: &'a B,
            observer: &'a mut dyn Observer,
        }
        impl<B: Backend> RuleVisitor<B> for Fit<'_, B> {
            type Output = Result<Outcome>;
            fn visit<R: Rule + LearningRule<B>>(self) -> Result<Outcome> {
                self.session.fit::<B, R>(self.b, self.observer)
            }
        }
        bio_core::rules::dispatch(self.spec.rule.name(), Fit { session: self, b, observer })?
    }

    /// What to change after a divergence, naming this run's settings of the rates and batch size
    /// that drive the update's size.
    fn divergence_advice(&self) -> String {
        let o = &self.spec.options;
        // The rule names the settings that size an update; this run's values come with them.
        let rates: Vec<String> = self
            .rule
            .divergence_hint
            .iter()
            .map(|flag| match o.settings.0.get(*flag) {
                Some(v) => format!("--{flag} (this run: {})", show(v)),
                None => format!("--{flag}"),
            })
            .collect();
        let rates = if rates.is_empty() { String::new() } else { format!("a lower {}, or ", rates.join(" or ")) };
        format!("; try {rates}a smaller --batch (this run: {})", o.batch)
    }

    fn model_file(&self, model: SavedModel, epochs_done: usize) -> ModelFile {
        ModelFile {
            model,
            dataset: self.spec.data.dataset.clone(),
            trained_classes: self.splits.classes.clone(),
            epochs: epochs_done,
            seed: self.spec.options.seed,
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// The validation split, when the run holds one out.
    fn validation(&self) -> Option<&Split> {
        self.splits.validation.as_ref().filter(|v| !v.is_empty())
    }

    /// Trains rule `R`, which the session's spec names: starts (or resumes), trains each epoch,
    /// records it, and measures the result.
    fn fit<B: Backend, R: Rule + LearningRule<B>>(&self, b: &B, observer: &mut dyn Observer) -> Result<Outcome> {
        let mut fitting = Fitting::<B, R>::start(self, b)?;
        fitting.announce(observer);
        for epoch in fitting.first_epoch..fitting.epochs {
            if !fitting.train_epoch(epoch, observer)? {
                return Ok(Outcome::Interrupted {
                    epochs_done: epoch,
                    batches_done: fitting.progress.batches,
                    checkpoint: self.spec.out.clone(),
                });
            }
            fitting.end_epoch(epoch, observer)?;
            if self.stop.is_set() && epoch + 1 < fitting.epochs {
                return Ok(Outcome::Interrupted {
                    epochs_done: epoch + 1,
                    batches_done: 0,
                    checkpoint: self.spec.out.clone(),
                });
            }
        }
        fitting.finish(observer)
    }
}

/// Training time: the seconds a resumed run had already trained, plus this process's, less the
/// time spent measuring validation accuracy.
struct Clock {
    before: f64,
    start: Instant,
    validating: f64,
}

impl Clock {
    fn seconds(&self) -> f64 {
        self.before + self.start.elapsed().as_secs_f64() - self.validating
    }
}

/// A session's training of rule `R` on backend `B` in progress: the model and everything a
/// checkpoint keeps besides it.
struct Fitting<'s, B: Backend, R: Rule + LearningRule<B>> {
    session: &'s Session,
    b: &'s B,
    config: R::Config,
    rule: R,
    model: R::Model,
    epochs: usize,
    batches_per_epoch: usize,
    /// The (0-based) epoch this process starts in.
    first_epoch: usize,
    /// Where the epoch in progress stands.
    progress: EpochProgress,
    /// Each completed epoch's report and the training seconds at its end.
    history: Vec<(EpochReport, f64)>,
    /// The validation accuracy after each completed epoch, aligned with `history`.
    validation_history: Vec<Option<f32>>,
    /// The validation accuracy after the last epoch this process completed.
    final_validation: Option<f64>,
    /// Synapses kept after each completed epoch, aligned with `history` (unknown before a resume).
    synapse_history: Vec<Option<f32>>,
    /// Batches trained in all, resumed ones included.
    done: u64,
    clock: Clock,
}

impl<'s, B: Backend, R: Rule + LearningRule<B>> Fitting<'s, B, R> {
    /// A fresh model, or the resumed run's, checked against the session's spec.
    fn start(session: &'s Session, b: &'s B) -> Result<Self> {
        let spec = &session.spec;
        let o = &spec.options;
        if spec.rule.name() != R::NAME {
            bail!("the run trains `{}`, not `{}`", spec.rule, R::NAME);
        }
        let config: R::Config = session.configured.config::<R>()?.clone();
        let mut rule = R::new(config.clone(), o.seed);
        let epochs = spec.epochs();
        let batches_per_epoch = session.splits.train.len().div_ceil(o.batch);
        let (model, first_epoch, progress, history, seconds_before) = match &session.resume {
            None => {
                let model = rule.init_model(b, session.data.input_dim(), session.data.classes, o.seed);
                (model, 0, EpochProgress::default(), Vec::new(), 0.0)
            }
            Some(state) => {
                let widths = R::widths(&config, session.data.input_dim())?;
                check_resumable(state, rule.name(), &[&widths, &o.hidden], o.seed, epochs, batches_per_epoch)?;
                let saved = &state.model.model;
                if saved.config_of::<R>()? != config {
                    bail!("the checkpoint's hyper-parameters differ from the run's");
                }
                let model = R::new(config.clone(), 0)
                    .model_from_params(b, saved.input_dim, saved.classes, &saved.params)
                    .map_err(anyhow::Error::from)
                    .context("resuming from the checkpoint")?;
                rule.restore_state(&model, state.rule.clone()).context("resuming from the checkpoint")?;
                (model, state.epoch, state.progress, state.history.clone(), state.seconds)
            }
        };
        let validation_history = match (session.validation(), spec.out.as_deref()) {
            (Some(v), Some(dir)) if session.resume.is_some() => resumed_validation(dir, v.len(), history.len())?,
            _ => vec![None; history.len()],
        };
        let done = (first_epoch * batches_per_epoch + progress.batches) as u64;
        Ok(Fitting {
            session,
            b,
            config,
            rule,
            model,
            epochs,
            batches_per_epoch,
            first_epoch,
            progress,
            synapse_history: vec![None; history.len()],
            history,
            validation_history,
            final_validation: None,
            done,
            clock: Clock { before: seconds_before, start: Instant::now(), validating: 0.0 },
        })
    }

    /// Tells the observer what is about to be trained.
    fn announce(&self, observer: &mut dyn Observer) {
        let s = self.session;
        observer.on_event(&Event::Started {
            rule: self.rule.name(),
            backend: self.b.name(),
            train: s.splits.train.len(),
            validation: s.validation().map_or(0, Split::len),
            test: s.splits.test.len(),
            total_batches: self.batches_per_epoch as u64 * self.epochs as u64,
            done_batches: self.done,
            resumed_at: s.resume.as_ref().map(|st| (st.epoch + 1, st.progress.batches)),
        });
    }

    fn saved(config: &R::Config, model: &R::Model) -> SavedModel {
        SavedModel::of::<R, B>(config, model)
    }

    /// Trains the rest of 0-based epoch `epoch`, writing a training state every `checkpoint_every`
    /// batches and when the stop flag is set; `Ok(false)` when the stop flag ended it early.
    fn train_epoch(&mut self, epoch: usize, observer: &mut dyn Observer) -> Result<bool> {
        let session = self.session;
        let spec = &session.spec;
        let o = &spec.options;
        let out = spec.out.as_deref();
        let (epochs, per_epoch) = (self.epochs, self.batches_per_epoch);
        if self.progress.batches == 0 {
            self.rule.start_epoch(epoch, epochs);
        }
        let batches = session
            .splits
            .train
            .batches(o.batch, Some(o.seed.wrapping_add(epoch as u64)))
            .skip(self.progress.batches)
            .map(|bt| (bt.images, bt.labels));
        let (config, history, clock, done) = (&self.config, &self.history, &self.clock, &mut self.done);
        let mut save_error = None;
        let mut stopped = false;
        let report = train_epoch_from(
            self.b,
            &mut self.rule,
            &mut self.model,
            batches,
            &mut self.progress,
            |rule, model, p, r| {
                *done += 1;
                observer.on_event(&Event::Batch {
                    epoch: epoch + 1,
                    done_batches: *done,
                    loss: r.loss,
                    accuracy: r.correct as f32 / r.samples as f32,
                });
                let mid_epoch = p.batches < per_epoch;
                stopped = session.stop.is_set() && mid_epoch;
                let due = spec.checkpoint_every.is_some_and(|every| done.is_multiple_of(every as u64));
                if let Some(dir) = out
                    && mid_epoch
                    && (due || stopped)
                {
                    let state = TrainingState {
                        model: session.model_file(Self::saved(config, model), epoch),
                        rule: rule.save_state(model),
                        epochs,
                        epoch,
                        progress: *p,
                        history: history.clone(),
                        seconds: clock.seconds(),
                    };
                    if let Err(e) = model_dir::save_state(dir, &state) {
                        save_error = Some(anyhow::Error::new(e).context(format!(
                            "saving the checkpoint after batch {} of epoch {}",
                            p.batches,
                            epoch + 1
                        )));
                        return ControlFlow::Break(());
                    }
                    observer.on_event(&Event::CheckpointWritten { epoch: epoch + 1, batch: p.batches, dir });
                }
                if stopped { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
            },
        );
        if let Some(e) = save_error {
            return Err(e);
        }
        if let Err(e) = report {
            let kept = match (out, epoch) {
                (Some(dir), e) if e > 0 => format!("; the checkpoint of epoch {e} in {} is kept", dir.display()),
                _ => String::new(),
            };
            let advice = match e {
                bio_core::CoreError::Diverged(_) => session.divergence_advice(),
                _ => String::new(),
            };
            // A typed error whose source is the `CoreError`, so front ends can tell divergence apart.
            return Err(EpochFailed { epoch: epoch + 1, cause: e, advice, kept }.into());
        }
        Ok(!stopped)
    }

    /// Records the completed epoch `epoch`: its report, validation accuracy and synapses kept, the
    /// model and training state in the output directory, and the observer's epoch line.
    fn end_epoch(&mut self, epoch: usize, observer: &mut dyn Observer) -> Result<()> {
        let session = self.session;
        let out = session.spec.out.as_deref();
        let validation = session.validation();
        self.history.push((self.progress.report(), self.clock.seconds()));
        self.progress = EpochProgress::default();
        self.final_validation = match validation {
            Some(v) => {
                let t = Instant::now();
                let eval = bio_eval::evaluate(&self.model, &v.images, &v.labels, EVAL_BATCH)
                    .with_context(|| format!("measuring validation accuracy after epoch {}", epoch + 1))?;
                self.clock.validating += t.elapsed().as_secs_f64();
                observer.on_event(&Event::ValidationMeasured { epoch: epoch + 1, accuracy: eval.accuracy });
                Some(eval.accuracy)
            }
            None => None,
        };
        self.validation_history.push(self.final_validation.map(|acc| acc as f32));
        self.synapse_history.push(bio_eval::synapses_kept(&self.model.to_params()).map(|k| k as f32));
        if let Some(dir) = out {
            let file = session.model_file(Self::saved(&self.config, &self.model), epoch + 1);
            model_dir::save_model(dir, &file)
                .with_context(|| format!("saving the checkpoint of epoch {}", epoch + 1))?;
            if let Some(v) = validation {
                // Before the training state, so that a state never has epochs this log lacks.
                let log = ValidationLog { samples: v.len(), accuracy: self.validation_history.clone() };
                bio_data::write_json(dir.join(VALIDATION_FILE), &log)
                    .with_context(|| format!("saving the validation accuracy of epoch {}", epoch + 1))?;
            }
            let state = TrainingState {
                model: file,
                rule: self.rule.save_state(&self.model),
                epochs: self.epochs,
                epoch: epoch + 1,
                progress: self.progress,
                history: self.history.clone(),
                seconds: self.clock.seconds(),
            };
            model_dir::save_state(dir, &state)
                .with_context(|| format!("saving the training state of epoch {}", epoch + 1))?;
        }
        let (r, secs) = self.history.last().expect("just pushed");
        let log = epoch_log(
            epoch,
            r,
            *secs,
            self.final_validation.map(|a| a as f32),
            *self.synapse_history.last().expect("just pushed"),
        );
        observer.on_event(&Event::EpochEnded { log: &log, epochs: self.epochs });
        Ok(())
    }

    /// Measures the trained model: validation and test accuracy, biology, and the run's metrics.
    fn finish(self, observer: &mut dyn Observer) -> Result<Outcome> {
        let session = self.session;
        let o = &session.spec.options;
        let (validation, test) = (session.validation(), &session.splits.test);
        let train_seconds = self.clock.seconds();
        observer.on_event(&Event::Evaluating);
        let validation_accuracy = match (validation, self.final_validation) {
            (Some(v), None) => Some(bio_eval::evaluate(&self.model, &v.images, &v.labels, EVAL_BATCH)?.accuracy),
            (_, acc) => acc,
        };
        let eval = bio_eval::evaluate(&self.model, &test.images, &test.labels, EVAL_BATCH)?;
        let biology = bio_eval::biological_report(&self.model, &test.images, EVAL_BATCH)?;
        let history = self
            .history
            .iter()
            .zip(self.validation_history.iter().zip(&self.synapse_history))
            .enumerate()
            .map(|(i, ((r, seconds), (validation_accuracy, kept)))| {
                epoch_log(i, r, *seconds, *validation_accuracy, *kept)
            })
            .collect();
        let metrics = TrainMetrics {
            rule: self.rule.name().to_string(),
            dataset: session.data.name.clone(),
            data_source: session.data.source.to_string(),
            test_accuracy: eval.accuracy,
            test_samples: eval.total,
            validation_accuracy,
            validation_samples: validation.map_or(0, Split::len),
            train_seconds,
            epochs: self.epochs,
            hidden: R::widths(&self.config, session.data.input_dim())?,
            seed: o.seed,
            backend: self.b.name(),
            history,
            biology,
        };
        let model = Self::saved(&self.config, &self.model);
        Ok(Outcome::Finished(Box::new(Trained { metrics, model })))
    }
}

/// Refuses a checkpoint that is not of this run: another rule, network, seed or length.
fn check_resumable(
    state: &TrainingState,
    rule: &str,
    // The run's widths ([`Rule::widths`]), then `--hidden`, which conv checkpoints written before
    // the widths were stored hold.
    hidden: &[&[usize]; 2],
    seed: u64,
    epochs: usize,
    batches_per_epoch: usize,
) -> Result<()> {
    let saved = &state.model.model;
    if saved.rule() != rule || state.rule.rule != rule {
        bail!("the checkpoint is of a `{}` run, this run trains `{rule}`", saved.rule());
    }
    if !hidden.contains(&saved.hidden()) {
        crate::invalid!(
            "hidden",
            "the checkpoint's network has hidden {:?}, this run asks for {:?}",
            saved.hidden(),
            hidden[0]
        );
    }
    if state.epochs != epochs || state.epoch > epochs || state.progress.batches >= batches_per_epoch.max(1) {
        bail!(
            "the checkpoint stopped at batch {} of epoch {} of {}, which does not fit this run ({epochs} epochs of \
             {batches_per_epoch} batches)",
            state.progress.batches,
            state.epoch + 1,
            state.epochs,
        );
    }
    if state.model.seed != seed {
        crate::invalid!("seed", "the checkpoint was trained with seed {}, this run has {seed}", state.model.seed);
    }
    Ok(())
}

/// The `metrics.json` line of 0-based epoch `i`.
fn epoch_log(
    i: usize,
    r: &bio_core::train::EpochReport,
    seconds: f64,
    validation_accuracy: Option<f32>,
    synapses_kept: Option<f32>,
) -> EpochLog {
    EpochLog {
        epoch: i + 1,
        loss: r.loss,
        train_accuracy: r.accuracy,
        active_fraction: r.active_fraction,
        seconds,
        validation_accuracy,
        synapses_kept,
    }
}

/// Refuses a fresh run into a directory that already holds one (see [`RUN_FILES`]).
fn refuse_used_dir(out: &Path) -> Result<()> {
    if let Some(found) = RUN_FILES.iter().find(|f| out.join(f).exists()) {
        crate::invalid!(
            "out",
            "{} already holds a run ({found}); pass --force to replace it and every result \
             measured on it, --resume to continue it, or choose another directory",
            out.display()
        );
    }
    Ok(())
}

const GIB: f64 = (1u64 << 30) as f64;

/// Refuses a network whose training would not fit in the available memory (Linux only).
fn check_memory(needed: u64) -> Result<()> {
    if let Some(available) = bio_data::available_memory()
        && needed > available
    {
        crate::invalid!(
            "hidden",
            "training this network needs about {:.1} GiB of memory, only {:.1} GiB is available",
            needed as f64 / GIB,
            available as f64 / GIB
        );
    }
    Ok(())
}

/// A setting's value as a person writes it (`1000000`, not `1000000.0`).
fn show(v: &serde_json::Value) -> String {
    match v.as_f64() {
        Some(x) if v.is_f64() && x.fract() == 0.0 && x.abs() < 1e15 => format!("{}", x as i64),
        _ => v.to_string(),
    }
}
