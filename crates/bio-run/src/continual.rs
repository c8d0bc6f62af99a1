//! `bio eval continual`: the continual-learning protocols (Split and Permuted, in the class-, task- and
//! domain-incremental scenarios) for every registered rule and the field's backprop baselines, with
//! the accuracy matrix and its metrics per run, a summary over seeds and orders, and pictures. The
//! protocol, the metrics and the methods are `bio_eval::continual`; this module loads the data,
//! chooses the learners and writes the results.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result};
use bio_core::rules::{Rule, RuleInfo, RuleVisitor};
use bio_core::{Backend, LearningRule};
use bio_eval::continual::methods::{
    BpLearner, BpMethod, LWF_TEMPERATURE, Ncm, NcmFeatures, PrototypeReadout, RuleLearner,
};
use bio_eval::continual::{
    AccuracyMatrix, Budget, ContinualMetrics, Learner, Protocol, Scenario, SplitSource, test_sets,
};
use bio_eval::fewshot::mean_ci95;
use serde::{Deserialize, Serialize};

use crate::EVAL_BATCH;
use crate::spec::{RuleName, RuleOptions};

/// The methods run when none are named: every registered rule, the backprop baselines and the two
/// controls that cannot forget.
pub const DEFAULT_METHODS: &str =
    "bio,kh,softhebb,bp,bp-joint,bp-ewc,bp-si,bp-replay,bp-lwf,ncm-pixels,ncm-random-kwta";

/// Methods of the harness besides the registered rules (a rule's name runs the rule itself; `bp` is
/// backprop fine-tuning through the rule's own steps).
pub const BASELINES: &[&str] =
    &["bp-finetune", "bp-joint", "bp-ewc", "bp-si", "bp-replay", "bp-lwf", "ncm-pixels", "ncm-random-kwta"];

/// A rule's name with this suffix (`bio+ncm`) runs the rule scored by class prototypes of its last
/// hidden layer ([`PrototypeReadout`]) instead of its own readout.
pub const PROTOTYPE_SUFFIX: &str = "+ncm";

/// Name of the file [`continual`] writes into `out`.
pub use bio_data::model_dir::CONTINUAL_FILE;

/// Which family of contexts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Experiment {
    /// The classes cut into contexts of `--classes-per-context` (Split MNIST / Fashion-MNIST).
    Split,
    /// Every class in every context, each context under its own pixel permutation.
    Permuted,
}

/// Everything a continual-learning run needs; errors name the flag.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct ContinualSpec {
    /// Split (classes cut into contexts) or permuted (pixel permutations).
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value = "split"))]
    pub experiment: Experiment,
    /// Scenarios, comma-separated: class, task, domain (default: all three for split, domain for
    /// permuted).
    #[cfg_attr(feature = "clap", arg(long, value_delimiter = ','))]
    pub scenario: Vec<String>,
    /// Methods, comma-separated: any registered rule (`bp` = backprop fine-tuning), a rule scored by
    /// class prototypes of its last hidden layer instead of its readout (`bio+ncm`), and bp-joint,
    /// bp-ewc, bp-si, bp-replay, bp-lwf, ncm-pixels, ncm-random-kwta.
    #[cfg_attr(feature = "clap", arg(long, value_delimiter = ',', default_value = DEFAULT_METHODS))]
    pub methods: Vec<String>,
    /// Dataset.
    #[cfg_attr(feature = "clap", arg(long, default_value = "fashion-mnist"))]
    pub dataset: String,
    /// Extra directory to search for datasets.
    #[cfg_attr(feature = "clap", arg(long))]
    pub data: Option<PathBuf>,
    /// [split] Classes per context.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 2))]
    pub classes_per_context: usize,
    /// [split] Random class orders run besides the standard one (the protocol: 3).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0))]
    pub orders: usize,
    /// [permuted] Contexts.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 10))]
    pub contexts: usize,
    /// Updates per context (van de Ven et al.: 2000 of batch 128 on Split MNIST); batches are
    /// `--batch` images.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 2000))]
    pub iterations: usize,
    /// Epochs each context's budget is cut into, for the rules' schedules (a rule sees each context as
    /// a run of this many epochs; 2 lets kh and softhebb learn features then their readout in every
    /// context; with 1 their features never learn).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 1))]
    #[serde(default = "one")]
    pub context_epochs: usize,
    /// Repetitions, seeds `--seed`, `--seed`+1, …
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 1))]
    pub seeds: usize,
    /// [bp-ewc] λ (default: van de Ven et al.'s Split MNIST value for the scenario, 1e9 class, 1e5
    /// task, 1e10 domain; 100 on permuted).
    #[cfg_attr(feature = "clap", arg(long))]
    pub ewc_lambda: Option<f32>,
    /// [bp-ewc] Images per context the Fisher information is estimated on.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 1000))]
    pub fisher_samples: usize,
    /// [bp-si] c (default: van de Ven et al.'s Split MNIST value, 5000 class, 10 task, 50000 domain;
    /// 10 on permuted).
    #[cfg_attr(feature = "clap", arg(long))]
    pub si_c: Option<f32>,
    /// [bp-si] Damping ξ.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.1))]
    pub si_xi: f32,
    /// [bp-lwf] Temperature of the soft targets (van de Ven et al.'s 2).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = LWF_TEMPERATURE))]
    #[serde(default = "lwf_temperature")]
    pub lwf_temperature: f32,
    /// [bp-replay] Images kept per class (per class of each context).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 100))]
    pub replay_per_class: usize,
    /// [ncm-random-kwta] Units of the random expansion.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 2000))]
    pub kwta_units: usize,
    /// [ncm-random-kwta] Fraction of them active.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.05))]
    pub kwta_density: f32,
    /// Train on the first N training images only (quick runs; the results say so).
    #[cfg_attr(feature = "clap", arg(long))]
    pub train_limit: Option<usize>,
    /// Score on the first N test images only.
    #[cfg_attr(feature = "clap", arg(long))]
    pub test_limit: Option<usize>,
    /// Hold out N training images (class-stratified, the same images whatever the seed, as `bio
    /// train --validation`) and score on them instead of the test set, to tune on; training uses the
    /// rest. 0 = off (score on the test set).
    #[cfg_attr(feature = "clap", arg(long, value_name = "N", default_value_t = 0))]
    #[serde(default)]
    pub validation: usize,
    /// Write continual.json and the pictures into this directory.
    #[cfg_attr(feature = "clap", arg(long))]
    pub out: Option<PathBuf>,
    /// Architecture, seed, batch and the rules' settings (`--epochs` does not apply: use
    /// `--iterations`).
    #[cfg_attr(feature = "clap", command(flatten))]
    pub options: RuleOptions,
}

impl Default for ContinualSpec {
    /// The command line's defaults.
    fn default() -> Self {
        ContinualSpec {
            experiment: Experiment::Split,
            scenario: Vec::new(),
            methods: DEFAULT_METHODS.split(',').map(String::from).collect(),
            dataset: "fashion-mnist".into(),
            data: None,
            classes_per_context: 2,
            orders: 0,
            contexts: 10,
            iterations: 2000,
            context_epochs: 1,
            seeds: 1,
            ewc_lambda: None,
            fisher_samples: 1000,
            si_c: None,
            si_xi: 0.1,
            replay_per_class: 100,
            lwf_temperature: LWF_TEMPERATURE,
            kwta_units: 2000,
            kwta_density: 0.05,
            train_limit: None,
            test_limit: None,
            validation: 0,
            out: None,
            options: RuleOptions::default(),
        }
    }
}

impl ContinualSpec {
    /// The defaults with `settings` put in (for front ends that take keyword arguments): each key is
    /// a field of the spec (`iterations`, `methods`, …), of its [`RuleOptions`] (`hidden`, `seed`,
    /// `batch`, `hebbian_rate`, …) or a rule's declared setting (`kh-p`, `kh_p`); anything else is
    /// refused naming the key.
    pub fn from_settings(settings: &serde_json::Map<String, serde_json::Value>) -> Result<ContinualSpec> {
        use serde_json::Value;
        let mut spec = serde_json::to_value(ContinualSpec::default())?;
        for (key, value) in settings {
            let Value::Object(top) = &mut spec else { unreachable!("a struct") };
            if key != "options" && top.contains_key(key) {
                top.insert(key.clone(), value.clone());
                continue;
            }
            let Some(Value::Object(options)) = top.get_mut("options") else { unreachable!("a struct") };
            let flag = key.replace('_', "-");
            if options.contains_key(key) && key != "settings" {
                options.insert(key.clone(), value.clone());
            } else if bio_core::rules::rules().iter().any(|r| r.option(&flag).is_some()) {
                options.insert(flag, value.clone());
            } else {
                crate::invalid!(key.to_string(), "not a setting of the continual protocol or of any rule");
            }
        }
        serde_json::from_value(spec).map_err(|e| anyhow::anyhow!("invalid continual settings: {e}"))
    }

    /// The scenarios to run.
    pub fn scenarios(&self) -> Result<Vec<Scenario>> {
        if self.scenario.is_empty() {
            return Ok(match self.experiment {
                Experiment::Split => vec![Scenario::Class, Scenario::Task, Scenario::Domain],
                Experiment::Permuted => vec![Scenario::Domain],
            });
        }
        Ok(self.scenario.iter().map(|s| Scenario::parse(s)).collect::<Result<_, _>>()?)
    }

    /// Checks every setting before any work.
    pub fn check(&self) -> Result<()> {
        self.scenarios()?;
        if self.methods.is_empty() {
            crate::invalid!("methods", "name at least one");
        }
        let mut takers: Vec<RuleInfo> = Vec::new();
        for m in &self.methods {
            if m.starts_with("bp-") && BASELINES.contains(&m.as_str()) {
                takers.push(bio_core::rules::find("bp")?);
            }
            if !BASELINES.contains(&m.as_str()) {
                let m = m.strip_suffix(PROTOTYPE_SUFFIX).unwrap_or(m);
                let Ok(info) = bio_core::rules::find(m) else {
                    let rules: Vec<&str> = bio_core::rules::rules().iter().map(|r| r.name).collect();
                    crate::invalid!(
                        "methods",
                        "`{m}` is neither a rule ({}) nor one of {}",
                        rules.join(", "),
                        BASELINES.join(", ")
                    );
                };
                own_settings(&self.options, &info).config_json(&info)?;
                takers.push(info);
            }
        }
        if let Some(flag) = self.options.settings.0.keys().find(|f| !takers.iter().any(|r| r.option(f).is_some())) {
            crate::invalid!(flag.to_string(), "none of the methods {} takes this setting", self.methods.join(", "));
        }
        if self.iterations == 0 || self.options.batch == 0 {
            crate::invalid!("iterations", "the budget needs at least 1 iteration of at least 1 image");
        }
        if self.context_epochs == 0 || self.context_epochs > self.iterations {
            crate::invalid!("context-epochs", "must lie in 1..=iterations");
        }
        if self.seeds == 0 {
            crate::invalid!("seeds", "must be ≥ 1");
        }
        if self.options.epochs.is_some() {
            crate::invalid!("epochs", "a context's budget is --iterations, not epochs");
        }
        if !(self.kwta_density > 0.0 && self.kwta_density < 1.0) || self.kwta_units == 0 {
            crate::invalid!("kwta-density", "must lie in (0, 1) with at least 1 unit");
        }
        if !(self.lwf_temperature > 0.0 && self.lwf_temperature.is_finite()) {
            crate::invalid!("lwf-temperature", "must be a positive number");
        }
        if self.replay_per_class == 0 || self.fisher_samples == 0 {
            crate::invalid!("replay-per-class`/`fisher-samples", "must be ≥ 1");
        }
        Ok(())
    }
}

/// One run: a method on one protocol (scenario, class order) with one seed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContinualRun {
    /// Method (row name).
    pub method: String,
    /// Scenario.
    pub scenario: Scenario,
    /// The contexts' classes in order.
    pub contexts: Vec<Vec<usize>>,
    /// Index of the class order (0: standard).
    pub order: usize,
    /// Seed.
    pub seed: u64,
    /// `R` and the untrained accuracies.
    pub accuracy: AccuracyMatrix,
    /// Its metrics.
    pub metrics: ContinualMetrics,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// A method in a scenario over every seed and order: mean and 95% CI (Student t over runs).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContinualSummary {
    /// Method.
    pub method: String,
    /// Scenario.
    pub scenario: Scenario,
    /// Runs summarized.
    pub runs: usize,
    /// Average accuracy after the last context: mean, CI half-width.
    pub average: (f64, f64),
    /// Forgetting: mean, CI half-width.
    pub forgetting: (f64, f64),
    /// Backward transfer: mean, CI half-width.
    pub backward_transfer: (f64, f64),
    /// Forward transfer: mean, CI half-width.
    pub forward_transfer: (f64, f64),
    /// Mean average accuracy after each context (for the picture).
    pub average_after: Vec<f64>,
}

/// What [`continual`] returns and saves.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContinualReport {
    /// Dataset name.
    pub dataset: String,
    /// Split or permuted.
    pub experiment: Experiment,
    /// The spec it ran.
    pub spec: ContinualSpec,
    /// Training images used, test images scored (held-out training images with `validation`).
    pub images: (usize, usize),
    /// Every run.
    pub runs: Vec<ContinualRun>,
    /// One row per scenario × method.
    pub summary: Vec<ContinualSummary>,
    /// Files written (JSON, pictures).
    pub files: Vec<PathBuf>,
    /// What went wrong but did not stop the protocol (e.g. pictures without text).
    pub warnings: Vec<String>,
    /// Runs that failed (method, scenario, order, seed: the error); they are absent from `runs`.
    pub failed: Vec<String>,
}

fn one() -> usize {
    1
}

fn lwf_temperature() -> f32 {
    LWF_TEMPERATURE
}

/// `options` with only the settings `rule` declares: one protocol compares several rules, and each
/// takes its own settings from the shared list (`hebbian-rate` for `bio`, `kh-p` for `kh`).
fn own_settings(options: &RuleOptions, rule: &RuleInfo) -> RuleOptions {
    let mut own = options.clone();
    own.settings.0.retain(|flag, _| rule.option(flag).is_some());
    own
}

/// Builds the learner `method` for a protocol with `outputs` outputs.
fn learner<'a, B: Backend + 'static>(
    b: &'a B,
    spec: &ContinualSpec,
    method: &str,
    protocol: &Protocol,
    input_dim: usize,
    seed: u64,
) -> Result<Box<dyn Learner + 'a>> {
    let split = spec.experiment == Experiment::Split;
    let (scenario, outputs) = (protocol.scenario, protocol.outputs());
    let bp = |m: BpMethod| -> Result<Box<dyn Learner + 'a>> {
        let bp = bio_core::rules::find("bp")?;
        let config = RuleOptions { seed, ..own_settings(&spec.options, &bp) }.config::<bio_core::BackpropRule<B>>()?;
        Ok(Box::new(BpLearner::new(b, config, m, input_dim, outputs, seed)))
    };
    Ok(match method {
        // Fine-tuning is the `bp` rule's own update (Adam, same constants) without its divergence
        // check: in the class-incremental scenario a new context's first batches meet a model sure of
        // the old classes, a cross-entropy far above 20·ln C that is forgetting, not divergence.
        "bp" | "bp-finetune" => bp(BpMethod::Finetune)?,
        "bp-joint" => bp(BpMethod::Joint)?,
        "bp-ewc" => bp(BpMethod::Ewc {
            lambda: spec.ewc_lambda.unwrap_or(match (split, scenario) {
                (false, _) => 100.0,
                (true, Scenario::Class) => 1e9,
                (true, Scenario::Task) => 1e5,
                (true, Scenario::Domain) => 1e10,
            }),
            fisher_samples: spec.fisher_samples,
        })?,
        "bp-si" => bp(BpMethod::Si {
            c: spec.si_c.unwrap_or(match (split, scenario) {
                (false, _) => 10.0,
                (true, Scenario::Class) => 5000.0,
                (true, Scenario::Task) => 10.0,
                (true, Scenario::Domain) => 50000.0,
            }),
            xi: spec.si_xi,
        })?,
        "bp-replay" => bp(BpMethod::Replay { per_class: spec.replay_per_class })?,
        "bp-lwf" => bp(BpMethod::Lwf {
            temperature: spec.lwf_temperature,
            scenario: protocol.scenario,
            heads: (0..protocol.contexts.len()).map(|c| protocol.targets_of(c)).collect(),
        })?,
        "ncm-pixels" => Box::new(Ncm::new(b, NcmFeatures::Pixels, outputs)),
        "ncm-random-kwta" => Box::new(Ncm::new(
            b,
            NcmFeatures::random_kwta(input_dim, spec.kwta_units, spec.kwta_density, seed),
            outputs,
        )),
        rule => {
            struct Make<'a, B> {
                b: &'a B,
                config: String,
                name: String,
                input_dim: usize,
                outputs: usize,
                seed: u64,
                prototypes: bool,
            }
            impl<'a, B: Backend + 'static> RuleVisitor<B> for Make<'a, B> {
                type Output = Result<Box<dyn Learner + 'a>>;
                fn visit<R: Rule + LearningRule<B>>(self) -> Self::Output {
                    let config: R::Config = serde_json::from_str(&self.config)?;
                    let r = R::new(config, self.seed);
                    let inner = RuleLearner::new(self.b, r, self.name, self.input_dim, self.outputs, self.seed);
                    Ok(if self.prototypes {
                        Box::new(PrototypeReadout::new(inner, self.outputs))
                    } else {
                        Box::new(inner)
                    })
                }
            }
            let prototypes = rule.ends_with(PROTOTYPE_SUFFIX);
            let rule = rule.strip_suffix(PROTOTYPE_SUFFIX).unwrap_or(rule);
            let name = RuleName::new(rule.to_string());
            let options = RuleOptions { seed, ..own_settings(&spec.options, &name.info()?) };
            let make = Make {
                b,
                config: options.config_json(&name.info()?)?,
                name: rule.to_string(),
                input_dim,
                outputs,
                seed,
                prototypes,
            };
            bio_core::rules::dispatch(rule, make)??
        }
    })
}

/// What [`continual`] says as it goes: a run starts, each of its contexts starts, a run ends.
#[derive(Clone, Copy, Debug)]
pub enum ContinualProgress<'a> {
    /// A run of `method` starts.
    Run {
        /// The method.
        method: &'a str,
        /// Its scenario.
        scenario: Scenario,
        /// Index of the class order (0: the standard order).
        order: usize,
        /// The seed.
        seed: u64,
    },
    /// Context `context` (from 0) of `contexts` starts, `seconds` into the run.
    Context {
        /// The context starting.
        context: usize,
        /// How many the protocol has.
        contexts: usize,
        /// Seconds since the run started.
        seconds: f64,
    },
    /// The run ended: its average accuracy after the last context, and how long it took.
    Done {
        /// `A_T`, in [0, 1].
        average: f64,
        /// Seconds the run took.
        seconds: f64,
    },
}

/// Runs every method of `spec` on every scenario, class order and seed, telling `progress` as each
/// run and each context starts and as each run ends. Saves `continual.json` and the pictures into
/// `spec.out` when given.
pub fn continual<B: Backend + 'static>(
    b: &B,
    spec: &ContinualSpec,
    mut progress: impl FnMut(ContinualProgress<'_>),
) -> Result<ContinualReport> {
    spec.check()?;
    if let Some(out) = &spec.out {
        bio_data::ensure_output_dir(out)?;
    }
    let data = bio_data::load(&spec.dataset, spec.data.as_deref())?;
    let train = match spec.train_limit {
        Some(n) => data.train.take(n),
        None => data.train.clone(),
    };
    // With a validation split the held-out training images stand in for the test set.
    let (train, test) = match crate::data::hold_out(train, spec.validation, false)? {
        (train, Some(held)) => (train, held),
        (train, None) => (train, data.test.clone()),
    };
    let test = match spec.test_limit {
        Some(n) => test.take(n),
        None => test,
    };
    let input_dim = train.images.cols();
    let budget_of =
        |seed| Budget { iterations: spec.iterations, batch: spec.options.batch, seed, phases: spec.context_epochs };
    let mut runs = Vec::new();
    let mut failed = Vec::new();
    for scenario in spec.scenarios()? {
        let protocols: Vec<Protocol> = match spec.experiment {
            Experiment::Split => Protocol::orders(data.classes, spec.orders, spec.options.seed)
                .iter()
                .map(|o| Protocol::split(scenario, o, spec.classes_per_context, data.classes))
                .collect::<Result<_, _>>()?,
            Experiment::Permuted => {
                vec![Protocol::permuted(scenario, spec.contexts, data.classes, input_dim, spec.options.seed)?]
            }
        };
        for (order, protocol) in protocols.iter().enumerate() {
            let tests = test_sets(protocol, &test.images, &test.labels);
            for s in 0..spec.seeds as u64 {
                let seed = spec.options.seed + s;
                for method in &spec.methods {
                    progress(ContinualProgress::Run { method, scenario, order, seed });
                    let started = Instant::now();
                    let contexts = protocol.contexts.len();
                    let mut l = learner(b, spec, method, protocol, input_dim, seed)?;
                    let mut source = SplitSource::new(protocol, &train.images, &train.labels);
                    let accuracy = match bio_eval::continual::run(
                        l.as_mut(),
                        protocol,
                        &mut source,
                        &tests,
                        &budget_of(seed),
                        EVAL_BATCH,
                        |context| {
                            let seconds = started.elapsed().as_secs_f64();
                            progress(ContinualProgress::Context { context, contexts, seconds })
                        },
                    ) {
                        Ok(a) => a,
                        // A run that fails (e.g. a rule's divergence check) is reported, not fatal.
                        Err(e) => {
                            failed.push(format!(
                                "{method}, {}-incremental, order {order}, seed {seed}: {e}",
                                scenario.name()
                            ));
                            continue;
                        }
                    };
                    let metrics = accuracy.metrics();
                    let seconds = started.elapsed().as_secs_f64();
                    progress(ContinualProgress::Done { average: metrics.average, seconds });
                    runs.push(ContinualRun {
                        method: method.clone(),
                        scenario,
                        contexts: protocol.contexts.iter().map(|c| c.classes.clone()).collect(),
                        order,
                        seed,
                        metrics,
                        accuracy,
                        seconds,
                    });
                }
            }
        }
    }
    let summary = summarize(&runs);
    let mut report = ContinualReport {
        dataset: data.name.clone(),
        experiment: spec.experiment,
        spec: spec.clone(),
        images: (train.len(), test.len()),
        runs,
        summary,
        files: Vec::new(),
        warnings: Vec::new(),
        failed,
    };
    if let Some(out) = &spec.out {
        pictures(&mut report, out)?;
        let path = out.join(CONTINUAL_FILE);
        bio_data::write_json(&path, &report).with_context(|| format!("saving {}", path.display()))?;
        report.files.push(path);
    }
    Ok(report)
}

/// One row per scenario × method, in the order they ran.
pub fn summarize(runs: &[ContinualRun]) -> Vec<ContinualSummary> {
    let mut keys: Vec<(Scenario, String)> = Vec::new();
    for r in runs {
        if !keys.contains(&(r.scenario, r.method.clone())) {
            keys.push((r.scenario, r.method.clone()));
        }
    }
    keys.into_iter()
        .map(|(scenario, method)| {
            let mine: Vec<&ContinualRun> =
                runs.iter().filter(|r| r.scenario == scenario && r.method == method).collect();
            let stat = |f: &dyn Fn(&ContinualMetrics) -> f64| {
                mean_ci95(&mine.iter().map(|r| f(&r.metrics)).collect::<Vec<_>>())
            };
            let t = mine[0].metrics.average_after.len();
            let average_after = (0..t)
                .map(|i| mine.iter().map(|r| r.metrics.average_after[i]).sum::<f64>() / mine.len() as f64)
                .collect();
            ContinualSummary {
                method,
                scenario,
                runs: mine.len(),
                average: stat(&|m| m.average),
                forgetting: stat(&|m| m.forgetting),
                backward_transfer: stat(&|m| m.backward_transfer),
                forward_transfer: stat(&|m| m.forward_transfer),
                average_after,
            }
        })
        .collect()
}

/// Per scenario: average accuracy after each context, every method on one chart; and `R` of every
/// method (mean over the runs of the standard order) side by side.
fn pictures(report: &mut ContinualReport, out: &Path) -> Result<()> {
    let experiment = match report.experiment {
        Experiment::Split => "split",
        Experiment::Permuted => "permuted",
    };
    let scenarios: Vec<Scenario> = report.summary.iter().fold(Vec::new(), |mut v, s| {
        if !v.contains(&s.scenario) {
            v.push(s.scenario);
        }
        v
    });
    for scenario in scenarios {
        let rows: Vec<&ContinualSummary> = report.summary.iter().filter(|s| s.scenario == scenario).collect();
        let series: Vec<bio_eval::Series> = rows
            .iter()
            .map(|s| {
                let pts = s.average_after.iter().enumerate().map(|(i, &a)| ((i + 1) as f64, a)).collect();
                bio_eval::Series::new(s.method.clone(), pts)
            })
            .collect();
        let path = out.join(format!("continual-{experiment}-{}-average.png", scenario.name()));
        let drawn = bio_eval::line_chart(
            &path,
            &format!(
                "{} {experiment}, {}-incremental: average accuracy over the contexts seen",
                report.dataset,
                scenario.name()
            ),
            "contexts trained",
            "average accuracy",
            &series,
        )?;
        report.warnings.extend(drawn.warning);
        report.files.push(path);
        let mut panels = Vec::new();
        for s in &rows {
            let mine: Vec<&ContinualRun> =
                report.runs.iter().filter(|r| r.scenario == scenario && r.method == s.method && r.order == 0).collect();
            let Some(first) = mine.first() else { continue };
            let t = first.accuracy.r.len();
            let mean = (0..t)
                .map(|i| {
                    (0..t).map(|j| mine.iter().map(|r| r.accuracy.r[i][j]).sum::<f64>() / mine.len() as f64).collect()
                })
                .collect();
            panels.push((s.method.clone(), mean));
        }
        if panels.is_empty() {
            continue;
        }
        let path = out.join(format!("continual-{experiment}-{}-r.png", scenario.name()));
        let title = format!("R[i][j] in % ({}-IL): row i after context i, column j context j", scenario.name());
        let drawn = bio_eval::matrix_panels(&path, &title, &panels, 5)?;
        report.warnings.extend(drawn.warning);
        report.files.push(path);
    }
    report.warnings.dedup();
    Ok(())
}
