//! `bio sweep`: many training sessions from one spec file, each judged on the fixed validation
//! split (clean accuracy, and robust accuracy as the worst case per image over the chosen attacks),
//! summarised as a table and a Pareto front of clean versus robust accuracy.
//!
//! A spec (TOML) names settings as `bio train` does (`hebbian-rate` or `hebbian_rate`):
//!
//! ```toml
//! seeds = [0, 1]
//! [base]                      # every run
//! dataset = "fashion-mnist"
//! validation = 10000
//! [grid]                      # every combination of these
//! hebbian-rate = [0.001, 0.01]
//! active-fraction = [0.05, 0.1]
//! [[points]]                  # and/or an explicit list (each optionally named)
//! name = "bp"
//! rule = "bp"
//! [eval]
//! robust-images = 1000        # the first N validation images
//! eps = 0.1
//! attacks = ["pgd", "square"] # worst case per image
//! ```
//!
//! Every run lives in `OUT/runs/NAME/` (a model directory with a `sweep-run.json`); a run whose
//! result exists is not redone, a failed run is recorded and the sweep goes on, and `--shard I/N`
//! runs every N-th run so that shards on several machines can be joined by [`merge`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use bio_core::{Backend, Classifier};
use bio_data::Dataset;
use bio_eval::{AttackKind, AttackParams, EnsembleParams, LabelledPoint, Norm};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::files::load_model;
use crate::session::Session;
use crate::spec::SessionSpec;
use crate::{BackendChoice, Resolved, on_backend};

/// A setting's value, as written in the spec.
pub type Settings = BTreeMap<String, Value>;

/// How each run is judged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct SweepEval {
    /// Robust accuracy on the first this many validation images (0: no attack).
    pub robust_images: usize,
    /// L∞ radius of the attacks.
    pub eps: f32,
    /// Attacks (`strongest`, `pgd`, `square`, `fgsm`); an image is robust only if every one fails on
    /// it. `strongest` is the APGD-CE, APGD-T, surrogate-gradient and Square ensemble of `bio eval
    /// robustness --attack strongest` (without its sanity checks, which cost a second run).
    pub attacks: Vec<String>,
    /// PGD iterations.
    pub steps: usize,
    /// Square attack: queries per image.
    pub queries: usize,
    /// Seed of the attacks.
    pub seed: u64,
}

impl Default for SweepEval {
    fn default() -> Self {
        SweepEval {
            robust_images: 1000,
            eps: 0.1,
            attacks: vec!["strongest".into()],
            steps: 40,
            queries: 1000,
            seed: 0,
        }
    }
}

/// A sweep spec file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// Seeds; every point runs once per seed.
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    /// Settings of every run.
    #[serde(default)]
    pub base: Settings,
    /// Every combination of these values (after `base`).
    #[serde(default)]
    pub grid: BTreeMap<String, Vec<Value>>,
    /// Explicit points (after `base`; combined with every grid combination when both are given).
    #[serde(default)]
    pub points: Vec<Settings>,
    /// How each run is judged.
    #[serde(default)]
    pub eval: SweepEval,
}

fn default_seeds() -> Vec<u64> {
    vec![0]
}

/// One run of a sweep: a point's settings and a seed.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedRun {
    /// Directory name under `OUT/runs/`, from the point's name or settings and the seed.
    pub name: String,
    /// The point's label (its name, or its settings that differ from `base`).
    pub point: String,
    /// The settings that vary (grid and point settings), as written in the spec.
    pub settings: Settings,
    /// Seed.
    pub seed: u64,
    /// The session's spec.
    pub spec: SessionSpec,
    /// Everything that produces the run's result; a saved result with another key is redone.
    pub key: RunKey,
}

/// Version of what a sweep run's result depends on beyond its settings (training, judging, the
/// files' layout); raise it when a change would make an old `sweep-run.json` measure something else,
/// and every old result is redone.
pub const RUN_FORMAT: u32 = 2;

/// Everything that produced a sweep run's result, recorded in its `sweep-run.json`: a saved result
/// is reused only when its key equals the planned run's ([`RunKey::differences`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunKey {
    /// [`RUN_FORMAT`] of the binary that measured it.
    pub format: u32,
    /// The session spec (base overlaid with the point's settings, and the seed) as `config.json`
    /// stores it, without the output directory.
    pub spec: Value,
    /// The rule's configuration with every default filled in, as the binary resolved it.
    pub resolved: Value,
    /// Seed of the run.
    pub seed: u64,
    /// Dataset name (or directory) and extra search directory.
    pub dataset: String,
    /// Extra directory searched for the dataset.
    pub data: Option<PathBuf>,
    /// How the run is judged.
    pub eval: SweepEval,
}

impl RunKey {
    /// The key of a run of `spec` judged by `eval`.
    pub fn new(spec: &SessionSpec, eval: &SweepEval) -> Result<RunKey> {
        let spec = SessionSpec { out: None, force: false, ..spec.clone() };
        let resolved = spec.options.config_json(&spec.rule.info()?)?;
        Ok(RunKey {
            format: RUN_FORMAT,
            resolved: serde_json::from_str(&resolved)?,
            seed: spec.options.seed,
            dataset: spec.data.dataset.clone(),
            data: spec.data.data.clone(),
            eval: eval.clone(),
            spec: serde_json::to_value(&spec)?,
        })
    }

    /// What differs between a saved key (`old`; `None`: a result saved without one) and `self`, as
    /// `field: old → new` items; empty when the saved result can be reused.
    pub fn differences(&self, old: Option<&RunKey>) -> Vec<String> {
        let Some(old) = old else {
            return vec!["the saved result does not record the settings that produced it".into()];
        };
        let mut out = Vec::new();
        let (old, new) =
            (serde_json::to_value(old).unwrap_or_default(), serde_json::to_value(self).unwrap_or_default());
        json_differences("", &old, &new, &mut out);
        out
    }
}

/// Appends `path: old → new` for every leaf where `old` and `new` differ.
fn json_differences(path: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let sub = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                json_differences(&sub, a.get(k).unwrap_or(&Value::Null), b.get(k).unwrap_or(&Value::Null), out);
            }
        }
        (a, b) if a != b => out.push(format!("{path}: {} → {}", shortest(a), shortest(b))),
        _ => {}
    }
}

/// A JSON value as text, a number that is an `f32` widened (`0.10000000149011612`) as the `f32`
/// (`0.1`).
fn shortest(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if v.is_f64() && f64::from(x as f32) == x => format!("{}", x as f32),
        _ => v.to_string(),
    }
}

/// What one run measured (`OUT/runs/NAME/sweep-run.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Directory name under `OUT/runs/`.
    pub name: String,
    /// The point's label.
    pub point: String,
    /// The settings that vary.
    pub settings: Settings,
    /// Seed.
    pub seed: u64,
    /// Validation accuracy (clean).
    pub validation_accuracy: Option<f64>,
    /// Worst case per image over the attacks, on the first `robust_samples` validation images.
    pub robust_accuracy: Option<f64>,
    /// Images attacked.
    pub robust_samples: usize,
    /// Each attack's own robust accuracy on the same images.
    pub per_attack: BTreeMap<String, f64>,
    /// Training seconds.
    pub train_seconds: f64,
    /// Fraction of the hidden synapses present at the end (structural plasticity); `None` for a
    /// rule without masks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synapses_kept: Option<f64>,
    /// Why the run failed (`None`: it did not).
    pub error: Option<String>,
    /// The sweep it came from, when several sweeps are compared on one plot ([`compare`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Everything that produced this result (`None`: saved by a version that did not record it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<RunKey>,
}

/// A point of the sweep, over its seeds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PointSummary {
    /// The point's label.
    pub point: String,
    /// Seeds that finished.
    pub seeds: usize,
    /// Mean validation accuracy.
    pub validation_accuracy: f64,
    /// Mean worst-case robust accuracy (`NaN` without attacks).
    pub robust_accuracy: f64,
    /// Each attack's mean.
    pub per_attack: BTreeMap<String, f64>,
    /// Mean fraction of hidden synapses kept (`None`: no run reports it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synapses_kept: Option<f64>,
    /// Sample standard deviations over seeds of the validation and robust accuracies (`None`: fewer
    /// than two seeds finished); drawn as error bars on the Pareto plot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread: Option<(f64, f64)>,
    /// On the Pareto front of (validation accuracy, robust accuracy).
    pub on_front: bool,
    /// The sweep it came from, when several sweeps are compared ([`compare`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// A sweep's results (`OUT/sweep.json`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SweepResults {
    /// Every run, finished or failed, in plan order.
    pub runs: Vec<RunResult>,
    /// One row per point, in order of first appearance.
    pub points: Vec<PointSummary>,
    /// How runs were judged.
    pub eval: Option<SweepEval>,
}

/// What a sweep reports while it runs.
#[derive(Debug)]
pub enum SweepEvent<'a> {
    /// A run starts (`index` of `total` in this shard).
    Started {
        /// Position in this shard, from 1.
        index: usize,
        /// Runs in this shard.
        total: usize,
        /// The run.
        run: &'a PlannedRun,
        /// Why a saved result of this run is not reused (its settings, or how it is judged,
        /// changed); `None`: there was none, or it had failed.
        redo: Option<String>,
    },
    /// A run had a result already and was not redone.
    Skipped {
        /// The run.
        run: &'a PlannedRun,
    },
    /// A run ended (possibly with an error, which is recorded).
    Finished {
        /// What it measured.
        result: &'a RunResult,
    },
}

/// Settings that live at the spec's top level or in its data part; every other key is a rule option.
const TOP_LEVEL: [&str; 4] = ["rule", "classes", "validation", "checkpoint_every"];
const DATA: [&str; 2] = ["dataset", "data"];

/// `hebbian-rate` → `hebbian_rate`.
fn key(k: &str) -> String {
    k.replace('-', "_")
}

/// The session spec of `base` overlaid with `settings`; unknown keys and bad values are errors
/// naming them.
fn session_spec(base: &Settings, settings: &Settings, seed: u64, out: &Path) -> Result<SessionSpec> {
    let mut json = serde_json::to_value(SessionSpec::default())?;
    let declared = |flag: &str| bio_core::rules::rules().iter().any(|r| r.option(flag).is_some());
    for (k, v) in base.iter().chain(settings) {
        if declared(&bio_core::rules::setting_key(k)) {
            // A setting a rule declares (`hebbian-rate`, `kh-rate`) is keyed by its flag.
            json["rule_args"][bio_core::rules::setting_key(k)] = v.clone();
            continue;
        }
        let k = key(k);
        if k == "name" {
            continue;
        }
        let slot = if TOP_LEVEL.contains(&k.as_str()) {
            &mut json[&k]
        } else if DATA.contains(&k.as_str()) {
            &mut json["data"][&k]
        } else if json["rule_args"].get(&k).is_some() {
            &mut json["rule_args"][&k]
        } else {
            let mut known: Vec<String> =
                json["rule_args"].as_object().map_or_else(Vec::new, |o| o.keys().cloned().collect());
            known.extend(TOP_LEVEL.iter().chain(&DATA).map(|s| s.to_string()));
            known.extend(bio_core::rules::rules().iter().flat_map(|r| r.options.iter().map(|o| key(o.flag))));
            let hint = crate::names::did_you_mean(&k, known.iter().map(String::as_str))
                .map_or_else(String::new, |s| format!("; did you mean `{}`?", s.replace('_', "-")));
            bail!("unknown setting `{k}` in the sweep spec (use the names of `bio train` flags){hint}");
        };
        *slot = match (&k[..], v) {
            // `hidden = 2000` as well as `hidden = [2000, 2000]`.
            ("hidden", Value::Number(n)) => Value::Array(vec![Value::Number(n.clone())]),
            _ => v.clone(),
        };
    }
    json["rule_args"]["seed"] = Value::from(seed);
    let mut spec: SessionSpec = serde_json::from_value(json).context("invalid setting in the sweep spec")?;
    spec.out = Some(out.to_path_buf());
    if spec.validation == 0 {
        bail!("invalid value for `validation`: a sweep judges runs on held-out training images; set it in [base]");
    }
    spec.resolve()?;
    Ok(spec)
}

/// A value as short text for names and labels.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join("x"),
        other => other.to_string(),
    }
}

/// A file-name-safe version of `s`.
fn slug(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.=".contains(c) { c } else { '_' }).collect()
}

impl SweepSpec {
    /// Reads and parses a spec file.
    pub fn read(path: &Path) -> Result<SweepSpec> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("{}", path.display()))
    }

    /// Every run, in order (points × seeds), with its directory under `out/runs/`; every spec is
    /// checked here, before any run.
    pub fn plan(&self, out: &Path) -> Result<Vec<PlannedRun>> {
        if self.seeds.is_empty() {
            bail!("invalid value for `seeds`: give at least one");
        }
        let mut combos: Vec<Settings> = vec![Settings::new()];
        for (k, values) in &self.grid {
            if values.is_empty() {
                bail!("invalid value for `grid.{k}`: give at least one value");
            }
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    values.iter().map(move |v| {
                        let mut c = c.clone();
                        c.insert(k.clone(), v.clone());
                        c
                    })
                })
                .collect();
        }
        let describe = |s: &Settings| {
            s.iter().filter(|(k, _)| *k != "name").map(|(k, v)| format!("{}={}", key(k), text(v))).collect::<Vec<_>>()
        };
        let explicit = if self.points.is_empty() { vec![Settings::new()] } else { self.points.clone() };
        let mut points: Vec<(String, Settings)> = Vec::new();
        for point in &explicit {
            for combo in &combos {
                let mut parts: Vec<String> = match point.get("name") {
                    Some(n) => vec![text(n)],
                    None => describe(point),
                };
                parts.extend(describe(combo));
                let label = if parts.is_empty() { "base".to_string() } else { parts.join(",") };
                let settings: Settings = point.iter().chain(combo).map(|(k, v)| (k.clone(), v.clone())).collect();
                points.push((label, settings));
            }
        }
        let mut runs = Vec::new();
        let mut names = std::collections::BTreeSet::new();
        for (label, settings) in points {
            for &seed in &self.seeds {
                let name = slug(&format!("{label},seed={seed}"));
                if !names.insert(name.clone()) {
                    bail!("two runs of the sweep would share the directory `{name}`: give the points distinct names");
                }
                let dir = out.join("runs").join(&name);
                let spec =
                    session_spec(&self.base, &settings, seed, &dir).with_context(|| format!("point `{label}`"))?;
                let key = RunKey::new(&spec, &self.eval).with_context(|| format!("point `{label}`"))?;
                runs.push(PlannedRun { name, point: label.clone(), settings: settings.clone(), seed, spec, key });
            }
        }
        self.eval_attacks()?;
        Ok(runs)
    }

    fn eval_attacks(&self) -> Result<Vec<(String, SweepAttack)>> {
        let e = &self.eval;
        e.attacks
            .iter()
            .map(|name| {
                let kind = match name.as_str() {
                    "pgd" => AttackKind::Pgd,
                    "square" => AttackKind::Square,
                    "fgsm" => AttackKind::Fgsm,
                    "strongest" => {
                        let params = EnsembleParams { sanity: false, seed: e.seed, ..EnsembleParams::default() };
                        params.check()?;
                        return Ok((name.clone(), SweepAttack::Strongest(params)));
                    }
                    other => bail!(
                        "invalid value for `eval.attacks`: unknown attack `{other}` (strongest, pgd, square, fgsm)"
                    ),
                };
                let params = AttackParams {
                    kind,
                    norm: Norm::Linf,
                    eps: e.eps,
                    steps: e.steps,
                    queries: e.queries,
                    ..AttackParams::default()
                };
                Ok((name.clone(), SweepAttack::Single(params.check()?)))
            })
            .collect()
    }
}

/// An attack of a sweep's `[eval]`.
#[derive(Clone, Debug)]
enum SweepAttack {
    /// One attack through `bio_eval::perturb`.
    Single(bio_eval::Attack),
    /// The ensemble, scored per image.
    Strongest(EnsembleParams),
}

/// `--shard I/N`: this machine runs the runs whose index is `I` modulo `N` (0 ≤ I < N).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This shard, from 0.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Shard, String> {
        let (i, n) = s.split_once('/').ok_or_else(|| format!("expected I/N, e.g. 0/4, got `{s}`"))?;
        let (index, count): (usize, usize) = (
            i.trim().parse().map_err(|_| format!("bad shard index `{i}`"))?,
            n.trim().parse().map_err(|_| format!("bad shard count `{n}`"))?,
        );
        if count == 0 || index >= count {
            return Err(format!("expected 0 ≤ I < N, got {index}/{count}"));
        }
        Ok(Shard { index, count })
    }
}

/// Datasets loaded so far by a sweep's workers, by name and extra search directory.
type DatasetCache = Mutex<BTreeMap<(String, Option<PathBuf>), Arc<Dataset>>>;

/// File, in each run's directory, of its [`RunResult`].
pub const RUN_RESULT_FILE: &str = "sweep-run.json";
/// File, in the sweep's directory, of its [`SweepResults`].
pub const RESULTS_FILE: &str = "sweep.json";

/// Runs the sweep (this shard of it) into `out`, `jobs` runs at a time, each on its own share of the
/// threads; writes `out/sweep.json`, `out/sweep.md` and `out/pareto.png` and returns the results.
pub fn run(
    spec: &SweepSpec,
    out: &Path,
    backend: BackendChoice,
    jobs: usize,
    shard: Option<Shard>,
    on_event: &(dyn Fn(&SweepEvent<'_>) + Sync),
) -> Result<SweepResults> {
    if jobs == 0 {
        bail!("invalid value for `jobs`: must be ≥ 1");
    }
    let plan = spec.plan(out)?;
    let attacks = spec.eval_attacks()?;
    bio_data::ensure_output_dir(out.join("runs"))?;
    let mine: Vec<&PlannedRun> =
        plan.iter().enumerate().filter(|(i, _)| shard.is_none_or(|s| i % s.count == s.index)).map(|(_, r)| r).collect();
    let (resolved, _) = crate::resolve(backend)?;
    let data: DatasetCache = Mutex::new(BTreeMap::new());
    let results: Mutex<BTreeMap<String, RunResult>> = Mutex::new(BTreeMap::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let threads = (rayon::current_num_threads() / jobs).max(1);
    let work = || -> Result<()> {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
        // One backend per worker: on CUDA a fork with its own stream, so the runs overlap on the GPU.
        let resolved = resolved.fork()?;
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let Some(run) = mine.get(i) else { return Ok(()) };
            let dir = out.join("runs").join(&run.name);
            let mut redo = None;
            if let Ok(Some(done)) = crate::read_saved::<RunResult>(&dir, RUN_RESULT_FILE)
                && done.error.is_none()
            {
                let changed = run.key.differences(done.key.as_ref());
                if changed.is_empty() {
                    on_event(&SweepEvent::Skipped { run });
                    results.lock().expect("no panic holds the lock").insert(run.name.clone(), done);
                    continue;
                }
                redo = Some(format!("changed since its saved result: {}", changed.join(", ")));
            }
            on_event(&SweepEvent::Started { index: i + 1, total: mine.len(), run, redo });
            let dataset = {
                let key = (run.spec.data.dataset.clone(), run.spec.data.data.clone());
                let mut cache = data.lock().expect("no panic holds the lock");
                match cache.get(&key) {
                    Some(d) => Ok(d.clone()),
                    None => bio_data::load(&key.0, key.1.as_deref()).map(|d| {
                        let d = Arc::new(d);
                        cache.insert(key, d.clone());
                        d
                    }),
                }
            };
            let outcome = dataset
                .map_err(anyhow::Error::from)
                .and_then(|d| pool.install(|| run_one(run, d, &resolved, &spec.eval, &attacks)));
            let result = outcome.unwrap_or_else(|e| RunResult {
                name: run.name.clone(),
                point: run.point.clone(),
                settings: run.settings.clone(),
                seed: run.seed,
                validation_accuracy: None,
                robust_accuracy: None,
                robust_samples: 0,
                per_attack: BTreeMap::new(),
                train_seconds: 0.0,
                synapses_kept: None,
                error: Some(format!("{e:#}")),
                group: None,
                key: Some(run.key.clone()),
            });
            bio_data::ensure_output_dir(&dir)?;
            bio_data::write_json(dir.join(RUN_RESULT_FILE), &result)?;
            on_event(&SweepEvent::Finished { result: &result });
            results.lock().expect("no panic holds the lock").insert(run.name.clone(), result);
        }
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..jobs.min(mine.len().max(1))).map(|_| s.spawn(work)).collect();
        handles.into_iter().try_for_each(|h| h.join().expect("a sweep worker panicked"))
    })?;
    let results = results.into_inner().expect("no panic holds the lock");
    let runs: Vec<RunResult> = mine.iter().filter_map(|r| results.get(&r.name).cloned()).collect();
    let summary = summarize(runs, Some(spec.eval.clone()));
    write_results(out, &summary)?;
    Ok(summary)
}

/// Trains one run (or continues it from its checkpoint) and judges it.
fn run_one(
    run: &PlannedRun,
    data: Arc<Dataset>,
    backend: &Resolved,
    eval: &SweepEval,
    attacks: &[(String, SweepAttack)],
) -> Result<RunResult> {
    let dir = run.spec.out.clone().expect("planned runs have a directory");
    // A run killed mid-way continues from its checkpoint when its settings are unchanged.
    let saved = dir
        .join(bio_data::model_dir::STATE_FILE)
        .exists()
        .then(|| crate::session::Resumable::read(&dir).ok())
        .flatten()
        .filter(|r| r.spec == SessionSpec { force: false, ..run.spec.clone() });
    // A finished run (only its judging changed) is judged again as it is, not trained again.
    let measured: Option<crate::TrainMetrics> = match &saved {
        Some(saved) if saved.finished() => crate::read_saved(&dir, bio_data::model_dir::METRICS_FILE)?,
        _ => None,
    };
    let (validation, metrics, synapses_kept) = match measured {
        Some(metrics) => {
            let splits = crate::data::Splits::new(&data, run.spec.classes.as_deref(), run.spec.validation)?;
            let model = bio_data::load_model(&dir)?.model;
            (splits.validation, metrics, bio_eval::synapses_kept(model.params()))
        }
        None => {
            let session = match saved {
                Some(saved) => Session::resuming(saved).data(data).backend(backend.clone()).build()?,
                None => Session::builder(SessionSpec { force: true, ..run.spec.clone() })
                    .data(data)
                    .backend(backend.clone())
                    .build()?,
            };
            let validation = session.splits().validation.clone();
            let trained = session.run(&mut ())?.finished()?;
            (validation, trained.metrics, bio_eval::synapses_kept(trained.model.params()))
        }
    };
    let validation = validation.expect("sweep specs hold out validation images");
    let robust_images = eval.robust_images.min(validation.len());
    let (robust_accuracy, per_attack) = if robust_images == 0 || attacks.is_empty() {
        (None, BTreeMap::new())
    } else {
        let images = validation.take(robust_images);
        let (robust, per) = on_backend!(backend, |b| worst_case(b, &dir, &images, attacks, eval))?;
        (Some(robust), per)
    };
    Ok(RunResult {
        name: run.name.clone(),
        point: run.point.clone(),
        settings: run.settings.clone(),
        seed: run.seed,
        validation_accuracy: metrics.validation_accuracy,
        robust_accuracy,
        robust_samples: if robust_accuracy.is_some() { robust_images } else { 0 },
        per_attack,
        train_seconds: metrics.train_seconds,
        synapses_kept,
        error: None,
        group: None,
        key: Some(run.key.clone()),
    })
}

/// Robust accuracy as the worst case per image over `attacks` (an image counts only if it is
/// classified correctly clean and under every attack), and each attack's own figure.
fn worst_case<B: Backend>(
    b: &B,
    dir: &Path,
    images: &bio_data::Split,
    attacks: &[(String, SweepAttack)],
    eval: &SweepEval,
) -> Result<(f64, BTreeMap<String, f64>)> {
    let (_, model) = load_model(b, dir)?;
    let surrogate = model.surrogate(EnsembleParams::default().surrogate_temperature);
    let predict = |x: &bio_core::Matrix| -> Result<Vec<usize>> {
        let mut out = Vec::with_capacity(x.rows());
        bio_eval::for_each_batch(x, &images.labels, crate::EVAL_BATCH, |_, xb, _| {
            out.extend(model.predict(&b.upload(xb)));
            Ok::<_, anyhow::Error>(())
        })?;
        Ok(out)
    };
    let mut robust: Vec<bool> = predict(&images.images)?.iter().zip(&images.labels).map(|(p, y)| p == y).collect();
    let n = robust.len() as f64;
    let mut per_attack = BTreeMap::new();
    for (name, attack) in attacks {
        let held: Vec<bool> = match attack {
            SweepAttack::Single(attack) => {
                let adv = bio_eval::perturb(&model, attack, &images.images, &images.labels, eval.seed)?;
                predict(&adv)?.iter().zip(&images.labels).map(|(p, y)| p == y).collect()
            }
            SweepAttack::Strongest(params) => {
                let helpers = bio_eval::Helpers { surrogate: surrogate.as_deref(), source: None };
                let report =
                    bio_eval::strongest(&model, helpers, params, &[eval.eps], &images.images, &images.labels, |_| {})?;
                report.points.into_iter().next().map(|p| p.robust_images).unwrap_or_default()
            }
        };
        let own = robust.iter().zip(&held).filter(|(clean, adv)| **clean && **adv).count();
        per_attack.insert(name.clone(), own as f64 / n);
        for (r, h) in robust.iter_mut().zip(&held) {
            *r &= *h;
        }
    }
    Ok((robust.iter().filter(|r| **r).count() as f64 / n, per_attack))
}

/// Which of `points` (x, y), both to be maximized, no other point dominates (at least as good in
/// both and better in one). Points with a non-finite coordinate are never on the front.
pub fn pareto_front(points: &[(f64, f64)]) -> Vec<bool> {
    points
        .iter()
        .map(|&(x, y)| {
            x.is_finite()
                && y.is_finite()
                && !points
                    .iter()
                    .any(|&(ox, oy)| ox.is_finite() && oy.is_finite() && ox >= x && oy >= y && (ox > x || oy > y))
        })
        .collect()
}

/// Groups runs by point, averages finished seeds, marks the Pareto front.
pub fn summarize(runs: Vec<RunResult>, eval: Option<SweepEval>) -> SweepResults {
    let mut order: Vec<String> = Vec::new();
    for r in &runs {
        if !order.contains(&r.point) {
            order.push(r.point.clone());
        }
    }
    let mean = |v: &[f64]| if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 };
    // Sample standard deviation: √(Σ (v − mean)² / (n − 1)); NaN below two values.
    let sd = |v: &[f64]| {
        if v.len() < 2 {
            return f64::NAN;
        }
        let m = mean(v);
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
    };
    let mut points: Vec<PointSummary> = order
        .iter()
        .map(|p| {
            let done: Vec<&RunResult> = runs.iter().filter(|r| &r.point == p && r.error.is_none()).collect();
            let clean: Vec<f64> = done.iter().filter_map(|r| r.validation_accuracy).collect();
            let robust: Vec<f64> = done.iter().filter_map(|r| r.robust_accuracy).collect();
            let kept: Vec<f64> = done.iter().filter_map(|r| r.synapses_kept).collect();
            let mut names: Vec<&String> = done.iter().flat_map(|r| r.per_attack.keys()).collect();
            names.sort();
            names.dedup();
            let per_attack = names
                .into_iter()
                .map(|a| {
                    (a.clone(), mean(&done.iter().filter_map(|r| r.per_attack.get(a).copied()).collect::<Vec<_>>()))
                })
                .collect();
            PointSummary {
                point: p.clone(),
                seeds: done.len(),
                validation_accuracy: mean(&clean),
                robust_accuracy: mean(&robust),
                per_attack,
                synapses_kept: (!kept.is_empty()).then(|| mean(&kept)),
                spread: (clean.len() >= 2).then(|| (sd(&clean), sd(&robust))),
                on_front: false,
                group: runs.iter().find(|r| &r.point == p).and_then(|r| r.group.clone()),
            }
        })
        .collect();
    let front = pareto_front(&points.iter().map(|p| (p.validation_accuracy, p.robust_accuracy)).collect::<Vec<_>>());
    for (p, f) in points.iter_mut().zip(front) {
        p.on_front = f;
    }
    SweepResults { runs, points, eval }
}

/// Joins the results of several sweep directories (shards of one sweep) into `out`.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<SweepResults> {
    join(dirs, out, false)
}

/// Joins several *different* sweeps, judged the same way, into one table and plot in `out`: each
/// directory is a group, named after it (its points labelled `GROUP: point`), drawn in its own
/// colour, with one Pareto front over all of them. A group already set (a comparison compared
/// again) is kept.
pub fn compare(dirs: &[PathBuf], out: &Path) -> Result<SweepResults> {
    join(dirs, out, true)
}

fn join(dirs: &[PathBuf], out: &Path, grouped: bool) -> Result<SweepResults> {
    let mut runs: Vec<RunResult> = Vec::new();
    let mut eval = None;
    for dir in dirs {
        let part: SweepResults = bio_data::read_json(dir.join(RESULTS_FILE))?;
        if let (Some(a), Some(b)) = (&eval, &part.eval)
            && a != b
        {
            bail!("{} judged its runs differently from the others ([eval] differs)", dir.display());
        }
        eval = eval.or(part.eval);
        let group = dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned());
        for mut r in part.runs {
            if grouped && r.group.is_none() {
                r.point = format!("{group}: {}", r.point);
                r.name = format!("{group}/{}", r.name);
                r.group = Some(group.clone());
            }
            if !runs.iter().any(|o| o.name == r.name) {
                runs.push(r);
            }
        }
    }
    bio_data::ensure_output_dir(out)?;
    let summary = summarize(runs, eval);
    write_results(out, &summary)?;
    Ok(summary)
}

fn percent(x: f64) -> String {
    if x.is_finite() { format!("{:.2}%", 100.0 * x) } else { "—".into() }
}

/// The sentence of `sweep.md` that says how the runs were judged: the `[eval]` settings every
/// run's result was measured with (a sweep reuses a saved result only when they match, see
/// [`RunKey`]), and the images actually attacked.
fn eval_sentence(e: &SweepEval, runs: &[RunResult]) -> String {
    let mut attacked: Vec<usize> = runs.iter().filter(|r| r.error.is_none()).map(|r| r.robust_samples).collect();
    attacked.sort_unstable();
    attacked.dedup();
    let images = match attacked.as_slice() {
        [n] => n.to_string(),
        _ => format!("{} (at most)", e.robust_images),
    };
    let mut details = Vec::new();
    if e.attacks.iter().any(|a| a == "pgd") {
        details.push(format!("PGD steps {}", e.steps));
    }
    if e.attacks.iter().any(|a| a == "square") {
        details.push(format!("Square queries {}", e.queries));
    }
    details.push(format!("attack seed {}", e.seed));
    format!(
        "Clean accuracy on the validation images; robust accuracy on the first {images} of them at L∞ eps {}, the worst case per image over {} ({}). ★: on the Pareto front.\n\n",
        e.eps,
        e.attacks.join(", "),
        details.join(", ")
    )
}

/// The Markdown table of a sweep.
pub fn markdown(results: &SweepResults) -> String {
    let attacks: Vec<String> = {
        let mut a: Vec<String> = results.points.iter().flat_map(|p| p.per_attack.keys().cloned()).collect();
        a.sort();
        a.dedup();
        a
    };
    let mut md = String::from("# Sweep\n\n");
    if let Some(e) = &results.eval {
        md.push_str(&eval_sentence(e, &results.runs));
    }
    md.push_str("| point | seeds | validation accuracy | robust (worst case) |");
    for a in &attacks {
        md.push_str(&format!(" {a} |"));
    }
    // Shown only when some run prunes (structural plasticity on, and a synapse actually removed).
    let pruning = results.points.iter().any(|p| p.synapses_kept.is_some_and(|k| k < 1.0));
    if pruning {
        md.push_str(" synapses kept |");
    }
    md.push_str(" front |\n|---|---|---|---|");
    md.push_str(&"---|".repeat(attacks.len() + 1 + usize::from(pruning)));
    md.push('\n');
    for p in &results.points {
        md.push_str(&format!(
            "| {} | {} | {} | {} |",
            p.point.replace('|', "\\|"),
            p.seeds,
            percent(p.validation_accuracy),
            percent(p.robust_accuracy)
        ));
        for a in &attacks {
            md.push_str(&format!(" {} |", percent(p.per_attack.get(a).copied().unwrap_or(f64::NAN))));
        }
        if pruning {
            md.push_str(&format!(" {} |", percent(p.synapses_kept.unwrap_or(f64::NAN))));
        }
        md.push_str(if p.on_front { " ★ |\n" } else { " |\n" });
    }
    let failed: Vec<&RunResult> = results.runs.iter().filter(|r| r.error.is_some()).collect();
    if !failed.is_empty() {
        md.push_str("\n## Failed runs\n\n");
        for r in failed {
            md.push_str(&format!("- `{}`: {}\n", r.name, r.error.as_deref().unwrap_or_default()));
        }
    }
    md
}

/// Writes `sweep.json`, `sweep.md` and, when any point has both accuracies, `pareto.png`.
fn write_results(out: &Path, results: &SweepResults) -> Result<()> {
    bio_data::write_json(out.join(RESULTS_FILE), results)?;
    bio_data::write_atomic(out.join("sweep.md"), markdown(results).as_bytes())?;
    let points: Vec<LabelledPoint> = results
        .points
        .iter()
        .filter(|p| p.validation_accuracy.is_finite() && p.robust_accuracy.is_finite())
        .map(|p| LabelledPoint {
            label: p.point.clone(),
            x: 100.0 * p.validation_accuracy,
            y: 100.0 * p.robust_accuracy,
            on_front: p.on_front,
            group: p.group.clone(),
            spread: p.spread.map(|(x, y)| (100.0 * x, 100.0 * y)),
        })
        .collect();
    if !points.is_empty() {
        let eps = results.eval.as_ref().map_or(String::new(), |e| format!(" at eps {}", e.eps));
        let grouped = points.iter().any(|p| p.group.is_some());
        let bars = if points.iter().any(|p| p.spread.is_some()) { "; bars: ± sd over seeds" } else { "" };
        let front = if grouped { "line: Pareto front" } else { "orange: Pareto front" };
        bio_eval::pareto_chart(
            &out.join("pareto.png"),
            &format!("clean versus robust accuracy ({front}{bars})"),
            "validation accuracy (%)",
            &format!("robust accuracy, worst case{eps} (%)"),
            &points,
        )?;
    }
    Ok(())
}
