//! What a training session is asked to do: [`SessionSpec`], the serde form of `config.json`, and the
//! validated rule configurations built from it. With the `clap` feature the same structs are the
//! command line of `bio train`, so a flag and its saved setting cannot drift apart; the doc comments
//! are the `--help` text, where `[bio]`/`[bp]` mark the rule a flag applies to.

use std::path::PathBuf;

use std::borrow::Cow;

use anyhow::{Result, bail};
use bio_core::rules::{RuleInfo, Settings};
use bio_core::{
    BioConfig, BioParams, BpConfig, BpParams, Competition, InitSign, Mechanisms, Optimizer, ReadoutRule, ScalingNorm,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::backend::BackendChoice;

/// Default epochs of the `bio` rule, chosen by measurement (see docs/RESULTS.md).
pub const BIO_EPOCHS: usize = 10;
/// Default epochs of the backprop baseline.
pub const BP_EPOCHS: usize = 10;

/// Where the data comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct DataSpec {
    /// Dataset: fashion-mnist, mnist, kmnist, embedded, or a directory with the four IDX files.
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
        self.info().map_or(BIO_EPOCHS, |r| r.default_epochs)
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

/// Settings of the rules that declare their own options ([`bio_core::rules::Rule::OPTIONS`]), by
/// flag (`kh-p` → 3). On the command line each registered option is a flag of its own; in
/// `config.json` and sweep files they sit beside the other rule settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RuleSettings(pub Settings);

#[cfg(feature = "clap")]
impl clap::FromArgMatches for RuleSettings {
    fn from_arg_matches(matches: &clap::ArgMatches) -> std::result::Result<Self, clap::Error> {
        let mut settings = Settings::new();
        for rule in bio_core::rules::rules() {
            for option in rule.options {
                if let Some(value) = matches.get_one::<String>(option.flag) {
                    settings.insert(option.flag.to_string(), setting_value(value));
                }
            }
        }
        Ok(RuleSettings(settings))
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> std::result::Result<(), clap::Error> {
        self.0.extend(Self::from_arg_matches(matches)?.0);
        Ok(())
    }
}

#[cfg(feature = "clap")]
impl clap::Args for RuleSettings {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let options = bio_core::rules::rules().into_iter().flat_map(|rule| {
            rule.options.iter().map(move |o| {
                clap::Arg::new(o.flag)
                    .long(o.flag)
                    .value_name("X")
                    .allow_negative_numbers(true)
                    .help(format!("[{}] {}", rule.name, o.help))
            })
        });
        cmd.args(options)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// A command-line value as JSON: a number or boolean when it reads as one, else a string.
pub fn setting_value(text: &str) -> Value {
    if let Ok(n) = text.parse::<i64>() {
        Value::from(n)
    } else if let Ok(x) = text.parse::<f64>()
        && x.is_finite()
    {
        Value::from(x)
    } else if let Ok(b) = text.parse::<bool>() {
        Value::from(b)
    } else {
        Value::from(text)
    }
}

/// Lateral inhibition of the `bio` rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum CompetitionChoice {
    /// k-winners-take-all (sparsity fixed by construction).
    #[serde(alias = "Kwta")]
    Kwta,
    /// Threshold set by a pooled inhibitory unit (sparsity is an outcome).
    #[serde(alias = "Inhibitory")]
    Inhibitory,
}

/// Readout plasticity of the `bio` rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum ReadoutChoice {
    /// Exponentiated-gradient delta rule.
    #[serde(alias = "Delta")]
    Delta,
    /// Node perturbation (gradient-free).
    #[serde(alias = "Perturbation")]
    Perturbation,
}

/// Sign of initial weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum SignChoice {
    /// All positive.
    #[serde(alias = "Positive")]
    Positive,
    /// Random sign per synapse.
    #[serde(alias = "Mixed")]
    Mixed,
}

/// `--scaling-norm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum NormChoice {
    /// Σ|w|.
    #[serde(alias = "L1")]
    L1,
    /// √Σw² (drive = cosine similarity).
    #[serde(alias = "L2")]
    L2,
}

/// A mechanism of the `bio` rule that `--ablate` can switch off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Mechanism {
    /// Lateral inhibition (units become plain ReLUs).
    #[serde(alias = "Competition")]
    Competition,
    /// Multiplicative form of the Hebbian update (becomes additive).
    #[serde(alias = "Multiplicative")]
    Multiplicative,
    /// Homeostatic excitability.
    #[serde(alias = "Homeostasis")]
    Homeostasis,
    /// Structural plasticity (pruning).
    #[serde(alias = "Structural")]
    Structural,
    /// Synaptic scaling.
    #[serde(alias = "Scaling")]
    Scaling,
    /// Sign-preserving readout (becomes additive delta rule).
    #[serde(alias = "SignReadout")]
    SignReadout,
}

/// `--optimizer` of the backprop baseline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerChoice {
    /// Adam.
    #[default]
    #[serde(alias = "Adam")]
    Adam,
    /// SGD with momentum.
    #[serde(alias = "Momentum")]
    Momentum,
}

/// Hyper-parameters of both rules (each applies to the rule named in its doc); `None` means the rule's
/// default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct RuleOptions {
    /// Hidden layer widths, comma-separated (e.g. 2000 or 2000,2000).
    #[cfg_attr(feature = "clap", arg(long, value_delimiter = ',', default_value = "2000"))]
    pub hidden: Vec<usize>,
    /// Epochs (default: the rule's own, 10 for bio and bp, 20 for kh and softhebb).
    #[cfg_attr(feature = "clap", arg(long))]
    pub epochs: Option<usize>,
    /// Batch size.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 100))]
    pub batch: usize,
    /// Seed of initialization and shuffling.
    #[cfg_attr(feature = "clap", arg(long, allow_negative_numbers = true, default_value_t = 0))]
    pub seed: u64,
    /// [bio] Target fraction of active hidden units, ρ.
    #[cfg_attr(feature = "clap", arg(long, allow_negative_numbers = true))]
    pub active_fraction: Option<f32>,
    /// [bio] Lateral inhibition.
    #[cfg_attr(feature = "clap", arg(long, value_enum))]
    pub competition: Option<CompetitionChoice>,
    /// [bio] Gain γ of the inhibitory unit (with --competition inhibitory); 1.5 was chosen on
    /// validation accuracy among 1.0-2.0 with at most 5% of units active (docs/RESULTS.md).
    #[cfg_attr(feature = "clap", arg(long, allow_negative_numbers = true, default_value_t = 1.5))]
    pub inhibition_gain: f32,
    /// [bio] Hebbian learning rate.
    #[cfg_attr(feature = "clap", arg(long, allow_negative_numbers = true))]
    pub hebbian_rate: Option<f32>,
    /// [bio] Rate schedule: the Hebbian rate moves geometrically from --hebbian-rate in the first epoch
    /// to this rate in the last plastic one (lower: high early, low late; higher: the reverse) instead
    /// of decaying linearly.
    #[cfg_attr(feature = "clap", arg(long, allow_negative_numbers = true))]
    #[serde(default)]
    pub hebbian_rate_end: Option<f32>,
    /// [bio] Three-factor learning: each sample's Hebbian change is multiplied by a global reward
    /// signal, 1 when the readout got the sample right and −κ when it did not (0: learn from correct
    /// samples only).
    #[cfg_attr(feature = "clap", arg(long, allow_negative_numbers = true))]
    #[serde(default)]
    pub reward_modulation: Option<f32>,
    /// [bio] Readout-gated learning in the last hidden layer: a winner learns (×1) from a sample when
    /// its readout synapse onto the true class is above its mean, and unlearns (×−κ) when not.
    #[cfg_attr(feature = "clap", arg(long, allow_negative_numbers = true))]
    #[serde(default)]
    pub readout_gating: Option<f32>,
    /// [bio] Two populations in one layer: this fraction of each hidden layer's units (the first ones)
    /// learns at --fast-rate, the rest at --hebbian-rate.
    #[cfg_attr(feature = "clap", arg(long, allow_negative_numbers = true, requires = "fast_rate"))]
    #[serde(default)]
    pub fast_fraction: Option<f32>,
    /// [bio] Hebbian rate of the fast population (with --fast-fraction).
    #[cfg_attr(feature = "clap", arg(long, allow_negative_numbers = true, requires = "fast_fraction"))]
    #[serde(default)]
    pub fast_rate: Option<f32>,
    /// [bio] Homeostatic rate.
    #[cfg_attr(feature = "clap", arg(long, allow_negative_numbers = true))]
    pub homeostasis_rate: Option<f32>,
    /// [bio] Readout learning rate.
    #[cfg_attr(feature = "clap", arg(long, allow_negative_numbers = true))]
    pub readout_rate: Option<f32>,
    /// [bio] Readout rule.
    #[cfg_attr(feature = "clap", arg(long, value_enum))]
    pub readout: Option<ReadoutChoice>,
    /// [bio] Prune a synapse below this fraction of its neuron's mean weight.
    #[cfg_attr(feature = "clap", arg(long, allow_negative_numbers = true))]
    pub prune_below: Option<f32>,
    /// [bio] Probability per epoch that a pruned synapse regrows.
    #[cfg_attr(feature = "clap", arg(long, allow_negative_numbers = true))]
    pub regrow: Option<f32>,
    /// [bio] Initial sign of the readout weights.
    #[cfg_attr(feature = "clap", arg(long, value_enum))]
    pub readout_init: Option<SignChoice>,
    /// [bio] Initial sign of the hidden weights.
    #[cfg_attr(feature = "clap", arg(long, value_enum))]
    pub hidden_init: Option<SignChoice>,
    /// [bio] Exponent q of the plasticity signal (y/max y)^q (1 = in proportion to activity).
    #[cfg_attr(feature = "clap", arg(long, allow_negative_numbers = true))]
    pub hebbian_exponent: Option<f32>,
    /// [bio] Gain g of feed-forward inhibition, x̃ = x̂ − g·mean(x̂) (0 = off).
    #[cfg_attr(feature = "clap", arg(long, allow_negative_numbers = true))]
    pub feedforward_inhibition: Option<f32>,
    /// [bio] Anti-Hebbian strength of the strongest loser (0 = off).
    #[cfg_attr(feature = "clap", arg(long, allow_negative_numbers = true))]
    pub anti_hebbian: Option<f32>,
    /// [bio] How many losers below the threshold the anti-Hebbian push reaches (ranks k+1…k+m; 1 = the
    /// strongest loser alone).
    #[cfg_attr(feature = "clap", arg(long))]
    pub anti_hebbian_ranks: Option<usize>,
    /// [bio] Exponent n of the response the readout sees, yⁿ (1 = the activity; larger n: a prototype
    /// readout). Learning is unchanged.
    #[cfg_attr(feature = "clap", arg(long, allow_negative_numbers = true))]
    pub response_power: Option<f32>,
    /// [bio] Weight of the newest batch in each unit's running firing rate (0..1].
    #[cfg_attr(feature = "clap", arg(long, allow_negative_numbers = true))]
    pub rate_smoothing: Option<f32>,
    /// [bio] Norm in which synaptic scaling holds each neuron's total weight.
    #[cfg_attr(feature = "clap", arg(long, value_enum))]
    pub scaling_norm: Option<NormChoice>,
    /// [bio] Localized receptive fields: first-layer units start with a random P×P window of the image.
    #[cfg_attr(feature = "clap", arg(long))]
    pub receptive_field: Option<usize>,
    /// [bio] Final epochs in which only the readout learns (hidden layers frozen).
    #[cfg_attr(feature = "clap", arg(long))]
    pub consolidation_epochs: Option<usize>,
    /// [bio] Greedy layer-wise training: the plastic epochs split into one block per hidden layer, in
    /// order; only that layer learns in its block.
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(default)]
    pub layerwise: bool,
    /// [bio] Each unit normalizes the input pattern over its own synapses, not over every input.
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(default)]
    pub pattern_per_unit: bool,
    /// [bio] Initial magnitudes uniform on [1−s, 1+s]·c (default 0.5; 1 starts far from lognormal).
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(default)]
    pub init_spread: Option<f32>,
    /// [bio] Mechanisms to switch off, comma-separated.
    #[cfg_attr(feature = "clap", arg(long, value_enum, value_delimiter = ','))]
    pub ablate: Vec<Mechanism>,
    /// [bp] Optimizer.
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value = "adam"))]
    pub optimizer: OptimizerChoice,
    /// [bp] Learning rate (default 1e-3 for Adam, 0.05 for momentum).
    #[cfg_attr(feature = "clap", arg(long, allow_negative_numbers = true))]
    pub lr: Option<f32>,
    /// [bp] Momentum coefficient.
    #[cfg_attr(feature = "clap", arg(long, allow_negative_numbers = true, default_value_t = 0.9))]
    pub momentum: f32,
    /// Settings of the rules that declare their own options (`--kh-p`, …).
    #[cfg_attr(feature = "clap", command(flatten))]
    #[serde(flatten)]
    pub settings: RuleSettings,
}

impl Default for RuleOptions {
    /// The command line's defaults.
    fn default() -> Self {
        RuleOptions {
            hidden: vec![2000],
            epochs: None,
            batch: 100,
            seed: 0,
            active_fraction: None,
            competition: None,
            inhibition_gain: 1.5,
            hebbian_rate: None,
            hebbian_rate_end: None,
            reward_modulation: None,
            readout_gating: None,
            fast_fraction: None,
            fast_rate: None,
            homeostasis_rate: None,
            readout_rate: None,
            readout: None,
            prune_below: None,
            regrow: None,
            readout_init: None,
            hidden_init: None,
            hebbian_exponent: None,
            feedforward_inhibition: None,
            anti_hebbian: None,
            anti_hebbian_ranks: None,
            response_power: None,
            rate_smoothing: None,
            scaling_norm: None,
            receptive_field: None,
            consolidation_epochs: None,
            layerwise: false,
            pattern_per_unit: false,
            init_spread: None,
            ablate: Vec::new(),
            optimizer: OptimizerChoice::Adam,
            lr: None,
            momentum: 0.9,
            settings: RuleSettings::default(),
        }
    }
}

impl RuleOptions {
    /// The `bio` rule's validated config (errors name the flag).
    pub fn bio_config(&self) -> Result<BioConfig> {
        let d = BioParams::default();
        let sign = |s: Option<SignChoice>, default| match s {
            Some(SignChoice::Positive) => InitSign::Positive,
            Some(SignChoice::Mixed) => InitSign::Mixed,
            None => default,
        };
        let off = |m: Mechanism| self.ablate.contains(&m);
        if self.fast_fraction.is_some() != self.fast_rate.is_some() {
            bail!("invalid value for `fast-fraction`: two populations need both `fast-fraction` and `fast-rate`");
        }
        let params = BioParams {
            hidden: self.hidden.clone(),
            active_fraction: self.active_fraction.unwrap_or(d.active_fraction),
            competition: match self.competition {
                Some(CompetitionChoice::Inhibitory) => Competition::Inhibitory { gain: self.inhibition_gain },
                Some(CompetitionChoice::Kwta) => Competition::KWinners,
                None => d.competition,
            },
            hebbian_rate: self.hebbian_rate.unwrap_or(d.hebbian_rate),
            hebbian_rate_end: self.hebbian_rate_end.or(d.hebbian_rate_end),
            reward_modulation: self.reward_modulation.or(d.reward_modulation),
            readout_gating: self.readout_gating.or(d.readout_gating),
            fast_fraction: self.fast_fraction.unwrap_or(d.fast_fraction),
            fast_hebbian_rate: self.fast_rate.unwrap_or(d.fast_hebbian_rate),
            homeostasis_rate: self.homeostasis_rate.unwrap_or(d.homeostasis_rate),
            readout_rate: self.readout_rate.unwrap_or(d.readout_rate),
            readout_rule: match self.readout {
                Some(ReadoutChoice::Perturbation) => ReadoutRule::Perturbation,
                Some(ReadoutChoice::Delta) => ReadoutRule::DeltaEg,
                None => d.readout_rule,
            },
            prune_below: self.prune_below.unwrap_or(d.prune_below),
            regrow_probability: self.regrow.unwrap_or(d.regrow_probability),
            hebbian_exponent: self.hebbian_exponent.unwrap_or(d.hebbian_exponent),
            anti_hebbian: self.anti_hebbian.unwrap_or(d.anti_hebbian),
            anti_hebbian_ranks: self.anti_hebbian_ranks.unwrap_or(d.anti_hebbian_ranks),
            response_power: self.response_power.unwrap_or(d.response_power),
            feedforward_inhibition: self.feedforward_inhibition.unwrap_or(d.feedforward_inhibition),
            rate_smoothing: self.rate_smoothing.unwrap_or(d.rate_smoothing),
            scaling_norm: match self.scaling_norm {
                Some(NormChoice::L1) => ScalingNorm::L1,
                Some(NormChoice::L2) => ScalingNorm::L2,
                None => d.scaling_norm,
            },
            receptive_field: self.receptive_field.or(d.receptive_field),
            consolidation_epochs: self.consolidation_epochs.unwrap_or(d.consolidation_epochs),
            layerwise: self.layerwise,
            pattern_per_unit: self.pattern_per_unit,
            init_spread: self.init_spread.unwrap_or(d.init_spread),
            readout_init: sign(self.readout_init, d.readout_init),
            hidden_init: sign(self.hidden_init, d.hidden_init),
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

    /// The backprop baseline's validated config.
    pub fn bp_config(&self) -> Result<BpConfig> {
        let (optimizer, default_lr) = match self.optimizer {
            OptimizerChoice::Adam => (Optimizer::Adam, 1e-3),
            OptimizerChoice::Momentum => (Optimizer::Momentum { momentum: self.momentum }, 0.05),
        };
        Ok(BpParams { hidden: self.hidden.clone(), optimizer, learning_rate: self.lr.unwrap_or(default_lr) }.check()?)
    }

    /// The validated configuration of `rule` ([`bio_core::rules::Rule::Config`]) as JSON. The two
    /// first rules have typed flags of their own ([`RuleOptions::bio_config`],
    /// [`RuleOptions::bp_config`]); every other rule is configured from its declared settings.
    pub fn config_json(&self, rule: &RuleInfo) -> Result<String> {
        Ok(match rule.name {
            "bio" => serde_json::to_string(&self.bio_config()?)?,
            "bp" => serde_json::to_string(&self.bp_config()?)?,
            _ => (rule.config_json)(&self.hidden, &self.settings.0)?,
        })
    }

    /// Validates the configuration of `rule`, and refuses options that only the other rule (or
    /// another setting) would use: silently ignoring them would record in `config.json` a setting
    /// that was never applied.
    pub fn check_for(&self, info: &RuleInfo) -> Result<()> {
        let rule = &RuleName::new(info.name);
        let d = RuleOptions::default();
        let bio_only = [
            ("active-fraction", self.active_fraction.is_some()),
            ("competition", self.competition.is_some()),
            ("inhibition-gain", self.inhibition_gain != d.inhibition_gain),
            ("hebbian-rate", self.hebbian_rate.is_some()),
            ("hebbian-rate-end", self.hebbian_rate_end.is_some()),
            ("reward-modulation", self.reward_modulation.is_some()),
            ("readout-gating", self.readout_gating.is_some()),
            ("fast-fraction", self.fast_fraction.is_some()),
            ("fast-rate", self.fast_rate.is_some()),
            ("homeostasis-rate", self.homeostasis_rate.is_some()),
            ("readout-rate", self.readout_rate.is_some()),
            ("readout", self.readout.is_some()),
            ("prune-below", self.prune_below.is_some()),
            ("regrow", self.regrow.is_some()),
            ("readout-init", self.readout_init.is_some()),
            ("hidden-init", self.hidden_init.is_some()),
            ("hebbian-exponent", self.hebbian_exponent.is_some()),
            ("feedforward-inhibition", self.feedforward_inhibition.is_some()),
            ("anti-hebbian", self.anti_hebbian.is_some()),
            ("anti-hebbian-ranks", self.anti_hebbian_ranks.is_some()),
            ("response-power", self.response_power.is_some()),
            ("rate-smoothing", self.rate_smoothing.is_some()),
            ("scaling-norm", self.scaling_norm.is_some()),
            ("receptive-field", self.receptive_field.is_some()),
            ("consolidation-epochs", self.consolidation_epochs.is_some()),
            ("layerwise", self.layerwise),
            ("pattern-per-unit", self.pattern_per_unit),
            ("init-spread", self.init_spread.is_some()),
            ("ablate", !self.ablate.is_empty()),
        ];
        let bp_only = [
            ("optimizer", self.optimizer != d.optimizer),
            ("lr", self.lr.is_some()),
            ("momentum", self.momentum != d.momentum),
        ];
        for (typed, owner) in [(&bio_only[..], RuleName::BIO), (&bp_only[..], RuleName::BP)] {
            if owner == *rule {
                continue;
            }
            if let Some((flag, _)) = typed.iter().find(|(_, set)| *set) {
                bail!(
                    "invalid value for `{flag}`: it is a setting of the `{owner}` rule, and this run trains `{rule}`"
                );
            }
        }
        for flag in self.settings.0.keys() {
            if info.option(flag).is_some() {
                continue;
            }
            match bio_core::rules::rules().into_iter().find(|r| r.option(flag).is_some()) {
                Some(owner) => bail!(
                    "invalid value for `{flag}`: it is a setting of the `{}` rule, and this run trains `{rule}`",
                    owner.name
                ),
                None => bail!("unknown setting `{flag}` (not a setting of any rule)"),
            }
        }
        if *rule == RuleName::BIO {
            if self.inhibition_gain != d.inhibition_gain && self.competition != Some(CompetitionChoice::Inhibitory) {
                bail!("invalid value for `inhibition-gain`: it applies with `--competition inhibitory` only");
            }
        } else if *rule == RuleName::BP && self.momentum != d.momentum && self.optimizer != OptimizerChoice::Momentum {
            bail!("invalid value for `momentum`: it applies with `--optimizer momentum` only");
        }
        drop(self.config_json(info)?);
        Ok(())
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
        if bio_core::rules::rules().iter().any(|r| r.option(flag).is_some()) {
            self.options.settings.0.insert(flag.to_string(), value);
            return Ok(self);
        }
        let key = flag.replace('-', "_");
        let mut json = serde_json::to_value(&self.options)?;
        if key == "settings" || json.get(&key).is_none() {
            bail!("unknown setting `{flag}` (the names of `bio train` flags)");
        }
        json[&key] = value.clone();
        self.options =
            serde_json::from_value(json).map_err(|e| anyhow::anyhow!("invalid value for `{flag}`: {value} ({e})"))?;
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
        self.options.check_for(rule)?;
        let counts = [("epochs", self.options.epochs), ("batch", Some(self.options.batch))];
        for (flag, value) in counts.into_iter().chain([("checkpoint-every", self.checkpoint_every)]) {
            if value == Some(0) {
                bail!("invalid value for `{flag}`: must be ≥ 1");
            }
        }
        Ok(())
    }
}
