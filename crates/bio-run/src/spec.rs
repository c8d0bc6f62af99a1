//! What a training session is asked to do: [`SessionSpec`], the serde form of `config.json`. With the
//! `clap` feature the same structs are the command line of `bio train`, so a flag and its saved
//! setting cannot drift apart. A rule's own settings are not typed here: each rule declares them
//! once ([`bio_core::rules::Rule::OPTIONS`]) and [`RuleSettings`] turns every declaration into a
//! flag, a `config.json` key and a sweep key; `--help` marks each with its rule (`[bio]`).

use std::path::PathBuf;

use std::borrow::Cow;

use anyhow::Result;
use bio_core::rules::{Configured, Rule, RuleInfo, setting_key};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::settings::{RuleSettings, setting_value};

use crate::backend::BackendChoice;

/// Where the data comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct DataSpec {
    /// Dataset: fashion-mnist, mnist, kmnist, embedded, omniglot-small1[-SIDE] (shipped Omniglot background small 1, SIDE×SIDE, default 28), or a directory with the four IDX files.
    #[cfg_attr(feature = "clap", arg(long, default_value = "fashion-mnist"))]
    pub dataset: String,
    /// Extra directory to search for datasets (before $BIO_DATA_DIR, the cache dir and /usr/share/datasets).
    #[cfg_attr(feature = "clap", arg(long))]
    pub data: Option<PathBuf>,
}

impl Default for DataSpec {
    fn default() -> Self {
        DataSpec { dataset: "fashion-mnist".into(), data: None }
    }
}

/// A learning rule, by its registered name (`bio`, `bp`, …: see [`bio_core::rules::rules`]). Files
/// written before the registry said `Bio`, `Bp`; they still read.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct RuleName(Cow<'static, str>);

impl RuleName {
    /// The `bio` rule.
    pub const BIO: RuleName = RuleName(Cow::Borrowed("bio"));
    /// The backprop baseline.
    pub const BP: RuleName = RuleName(Cow::Borrowed("bp"));

    /// The rule called `name` (not checked against the registry: see [`RuleName::info`]).
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        RuleName(Cow::Owned(match name.as_str() {
            "Bio" => "bio".into(),
            "Bp" => "bp".into(),
            _ => name,
        }))
    }

    /// The rule's name as the command line spells it.
    pub fn name(&self) -> &str {
        &self.0
    }

    /// The registered rule of this name, or an error listing the known ones.
    pub fn info(&self) -> Result<RuleInfo> {
        Ok(bio_core::rules::find(self.name())?)
    }

    /// Whether an update depends on how many epochs the run has in all (a schedule annealed over
    /// the run), so that a finished run cannot be extended to more epochs with the same result.
    pub fn schedule_depends_on_epochs(&self) -> bool {
        self.info().map_or(true, |r| r.schedule_depends_on_epochs)
    }

    /// Epochs when none are given.
    pub fn default_epochs(&self) -> usize {
        self.info().map_or(10, |r| r.default_epochs)
    }

    /// Parses `--rule`, offering the registered rules with their summaries in `--help`.
    #[cfg(feature = "clap")]
    pub fn parser() -> impl clap::builder::TypedValueParser<Value = RuleName> {
        use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
        let values = bio_core::rules::rules().into_iter().map(|r| PossibleValue::new(r.name).help(r.summary));
        PossibleValuesParser::new(values).map(RuleName::new)
    }
}

impl Default for RuleName {
    fn default() -> Self {
        RuleName::BIO
    }
}

impl std::fmt::Display for RuleName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl<'de> Deserialize<'de> for RuleName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d).map(RuleName::new)
    }
}

/// Every registered rule's default number of epochs in words, for `--help`: rules that share a
/// default are grouped (`10 for bio, bp, conv and bpconv; 20 for kh and softhebb`). Read from the
/// registry, so that the text names every rule and cannot drift from `Rule::DEFAULT_EPOCHS`.
pub fn default_epochs_text() -> String {
    let mut groups: Vec<(usize, Vec<&str>)> = Vec::new();
    for rule in bio_core::rules::rules() {
        match groups.iter_mut().find(|(epochs, _)| *epochs == rule.default_epochs) {
            Some((_, names)) => names.push(rule.name),
            None => groups.push((rule.default_epochs, vec![rule.name])),
        }
    }
    groups.sort_by_key(|(epochs, _)| *epochs);
    let words = |names: &[&str]| match names {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    };
    groups.iter().map(|(epochs, names)| format!("{epochs} for {}", words(names))).collect::<Vec<_>>().join("; ")
}

/// What every rule takes (hidden widths, epochs, batch, seed) and the rule's own settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct RuleOptions {
    /// Hidden layer widths, comma-separated (e.g. 2000 or 2000,2000).
    #[cfg_attr(feature = "clap", arg(long, value_delimiter = ',', default_value = "2000"))]
    pub hidden: Vec<usize>,
    /// Epochs (default: the rule's, see [`default_epochs_text`]).
    #[cfg_attr(feature = "clap", arg(long, help = format!("Epochs (default: the rule's: {})", default_epochs_text())))]
    pub epochs: Option<usize>,
    /// Batch size.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 100))]
    pub batch: usize,
    /// Seed of initialization and shuffling.
    #[cfg_attr(feature = "clap", arg(long, allow_negative_numbers = true, default_value_t = 0))]
    pub seed: u64,
    /// The rule's own settings (`--hebbian-rate`, `--kh-p`, …).
    #[cfg_attr(feature = "clap", command(flatten))]
    #[serde(flatten)]
    pub settings: RuleSettings,
}

impl Default for RuleOptions {
    /// The command line's defaults.
    fn default() -> Self {
        RuleOptions { hidden: vec![2000], epochs: None, batch: 100, seed: 0, settings: RuleSettings::default() }
    }
}

impl RuleOptions {
    /// The validated configuration of `rule` and its settings resolved (defaults filled in);
    /// errors name the flag, including a setting of another rule.
    pub fn configure(&self, rule: &RuleInfo) -> Result<Configured> {
        Ok((rule.configure)(&self.hidden, &self.settings.0)?)
    }

    /// The validated configuration of rule `R` (errors name the flag).
    pub fn config<R: Rule>(&self) -> Result<R::Config> {
        Ok(bio_core::rules::config_from_settings::<R>(&self.hidden, &self.settings.0)?)
    }

    /// The validated configuration of `rule` ([`bio_core::rules::Rule::Config`]) as JSON.
    pub fn config_json(&self, rule: &RuleInfo) -> Result<String> {
        Ok((rule.config_json)(&self.hidden, &self.settings.0)?)
    }
}

/// Everything a training session needs: the data, the rule and its options, where to write, how
/// often to checkpoint, and the backend. Serialized as the model directory's `config.json` (the
/// backend is not saved: it does not change the weights).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct SessionSpec {
    /// Learning rule.
    #[cfg_attr(feature = "clap", arg(long, default_value = "bio", value_parser = RuleName::parser()))]
    pub rule: RuleName,
    /// Dataset.
    #[cfg_attr(feature = "clap", command(flatten))]
    pub data: DataSpec,
    /// Rule hyper-parameters, seed, epochs and batch size.
    #[cfg_attr(feature = "clap", command(flatten))]
    #[serde(rename = "rule_args")]
    pub options: RuleOptions,
    /// Train on these classes only (e.g. 0-4 or 0,2,5-7); the others stay novel for few-shot tests.
    #[cfg_attr(feature = "clap", arg(long))]
    pub classes: Option<String>,
    /// Hold out N training images (after --classes) for validation accuracy, to tune on instead of
    /// the test set: class-stratified, and the same images in every run with the same N and data
    /// (independent of --seed); training uses the rest. 0 = off.
    #[cfg_attr(feature = "clap", arg(long, value_name = "N", default_value_t = 0))]
    #[serde(default)]
    pub validation: usize,
    /// Backend.
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value = "cpu"))]
    #[serde(skip)]
    pub backend: BackendChoice,
    /// Output directory (created if missing); with --resume, the resumed directory.
    #[cfg_attr(feature = "clap", arg(long, required_unless_present = "resume"))]
    pub out: Option<PathBuf>,
    /// Also write a resumable checkpoint (DIR/state.ckpt) every N batches (default: at each epoch end only).
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    #[serde(default)]
    pub checkpoint_every: Option<usize>,
    /// Replace an earlier run in the output directory: its checkpoints and every result measured on
    /// it (metrics, validation, robustness, few-shot, biology) are removed first. Without it, a
    /// directory that holds a run is refused, so no result of an old model survives beside a new one.
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(skip)]
    pub force: bool,
}

impl Default for SessionSpec {
    fn default() -> Self {
        SessionSpec {
            rule: RuleName::BIO,
            data: DataSpec::default(),
            options: RuleOptions::default(),
            classes: None,
            validation: 0,
            backend: BackendChoice::Cpu,
            out: None,
            checkpoint_every: None,
            force: false,
        }
    }
}

/// Building a spec in a few calls (the command line's defaults for everything not set):
/// `SessionSpec::of("kh", "embedded").hidden(&[100]).with_epochs(2).setting("kh-p", 3)?.train()?`.
impl SessionSpec {
    /// A spec for the rule `rule` on `dataset` (a name or a directory, as `--dataset`), every other
    /// setting at its default: CPU backend, no output directory (see [`SessionSpec::out`]).
    pub fn of(rule: &str, dataset: &str) -> SessionSpec {
        let mut spec = SessionSpec { rule: RuleName::new(rule), ..SessionSpec::default() };
        spec.data.dataset = dataset.to_string();
        spec
    }

    /// Hidden layer widths.
    pub fn hidden(mut self, widths: &[usize]) -> Self {
        self.options.hidden = widths.to_vec();
        self
    }

    /// Epochs (default: the rule's).
    pub fn with_epochs(mut self, epochs: usize) -> Self {
        self.options.epochs = Some(epochs);
        self
    }

    /// Seed of initialization and shuffling.
    pub fn seed(mut self, seed: u64) -> Self {
        self.options.seed = seed;
        self
    }

    /// Writes the model directory (`model.ckpt`, `config.json`, `metrics.json`, …) into `dir`.
    pub fn out(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out = Some(dir.into());
        self
    }

    /// Sets a rule setting by its `bio train` flag name (`"hebbian-rate"`, `"kh-p"`, …). An unknown
    /// name or a value of the wrong type is an error naming it; ranges are checked when the session
    /// is built.
    pub fn setting(mut self, flag: &str, value: impl Into<Value>) -> Result<Self> {
        let value = value.into();
        let key = setting_key(flag);
        if bio_core::rules::rules().iter().any(|r| r.option(&key).is_some()) {
            self.options.settings.0.insert(key, value);
            return Ok(self);
        }
        let o = &mut self.options;
        let bad = |e: serde_json::Error| {
            anyhow::Error::new(bio_core::CoreError::invalid(flag.to_string(), format!("{value} ({e})")))
        };
        match flag {
            "hidden" => o.hidden = serde_json::from_value(value.clone()).map_err(bad)?,
            "epochs" => o.epochs = Some(serde_json::from_value(value.clone()).map_err(bad)?),
            "batch" => o.batch = serde_json::from_value(value.clone()).map_err(bad)?,
            "seed" => o.seed = serde_json::from_value(value.clone()).map_err(bad)?,
            _ => {
                let rules = bio_core::rules::rules();
                let known: Vec<String> = ["hidden", "epochs", "batch", "seed"]
                    .into_iter()
                    .map(String::from)
                    .chain(rules.iter().flat_map(|r| r.options.iter().map(|o| o.flag.to_string())))
                    .collect();
                let hint = crate::names::did_you_mean(flag, known.iter().map(String::as_str))
                    .map_or_else(String::new, |s| format!("; did you mean `{s}`?"));
                crate::invalid!(flag.to_string(), "unknown setting (the names of `bio train` flags){hint}");
            }
        }
        Ok(self)
    }

    /// Epochs of the run (the rule's default unless given).
    pub fn epochs(&self) -> usize {
        self.options.epochs.unwrap_or(self.rule.default_epochs())
    }

    /// Checks every setting that needs neither data nor disk; errors name the flag.
    pub fn check(&self) -> Result<()> {
        self.check_with(&self.rule.info()?)
    }

    /// Like [`SessionSpec::check`], for the rule `rule` (registered or not) that the spec names.
    pub fn check_with(&self, rule: &RuleInfo) -> Result<()> {
        self.configure(rule).map(drop)
    }

    /// Checks every setting like [`SessionSpec::check_with`] and returns the rule's configuration.
    pub fn configure(&self, rule: &RuleInfo) -> Result<Configured> {
        let counts = [("epochs", self.options.epochs), ("batch", Some(self.options.batch))];
        for (flag, value) in counts.into_iter().chain([("checkpoint-every", self.checkpoint_every)]) {
            if value == Some(0) {
                crate::invalid!(flag, "must be ≥ 1");
            }
        }
        self.options.configure(rule)
    }

    /// Checks the spec and fills in every rule setting left to its default, so that it says what
    /// the run uses (as `config.json` does); returns the rule's configuration.
    pub fn resolve(&mut self) -> Result<Configured> {
        let configured = self.configure(&self.rule.info()?)?;
        self.options.settings.0 = configured.settings.clone();
        Ok(configured)
    }
}
