//! The [`LearningRule`] trait (a rule's training steps, generic over the backend), the [`Rule`]
//! trait (what the registry needs to name, configure and reload it), and the registry itself.
//!
//! Adding a rule is one folder here (`x/`: its params/config, model, `LearningRule` and `Rule`
//! impls, its state, its tests; a frozen-feature rule implements [`FeatureLayer`] instead of
//! `LearningRule`) plus one line in the `registry!` list below; checkpoints, `--resume`,
//! `config.json`, export, `bio report` and the command line's `--rule NAME` pick it up from there.
//! Shared by the rules: [`Adam`] (`optim.rs`), PGD adversarial training ([`AdversarialTraining`],
//! `adversarial.rs`), the frozen-feature scaffolding (`frozen/`), the
//! setting checks (`checks.rs`) and [`SavedModel`] with the registry (`saved.rs`, `registry.rs`).

mod adversarial;
pub(crate) mod bio;
pub(crate) mod bp;
mod checks;
mod conv;
pub mod describe;
mod frozen;
mod kh;
mod optim;
mod registry;
mod saved;
mod softhebb;
#[cfg(test)]
mod test_util;

pub use adversarial::{AdversarialTraining, pgd_examples};
pub use bio::model::{
    BioLayer, BioNet, BioTrace, CompetitionBackward, INPUT_EPS, LayerTrace, Readout, SurrogateBio,
    inhibition_threshold, normalize_input, target_total,
};
pub use bio::{
    BioPopulation, BioRule, hebbian_drive, hidden_plasticity, homeostasis, modulated_plasticity, plasticity_settings,
    readout_update, regrow,
};
pub use bp::BackpropRule;
pub use bp::model::{BpGradients, BpNet, DenseLayer};
pub use conv::{
    Activation, BpConvConfig, BpConvParams, BpConvRule, ConvCompetition, ConvConfig, ConvInit, ConvNet, ConvParams,
    ConvPlasticity, ConvRule, ConvSchedule, ConvState, ConvTerms, SOFTHEBB_RATE_POWER, WIDE_RADIUS, conv_plasticity,
    image_of, soft_signal, softhebb_signal, softhebb_step,
};
pub use conv::{
    LayerTrace as ConvLayerTrace, WHITEN as CONV_WHITEN, Whitening as ConvWhitening, conv_hebbian_step,
    conv_hebbian_terms, whiten,
};
pub use frozen::{
    FeatureLayer, FrozenRule, FrozenState, LinearReadout, Phase, ReadoutState, ReadoutTrainer, Schedule, phase_split,
};
pub use kh::{KH_COPIES_PER_WEIGHT, KhConfig, KhNet, KhParams, KhRule, KhState, kh_plasticity};
pub use optim::{ADAM_BETA1, ADAM_BETA2, ADAM_EPS, Adam, AdamState};
pub use registry::{
    Configured, OptionKind, OptionValue, RuleInfo, RuleOption, RuleVisitor, Settings, choice_name,
    config_from_settings, configure, dispatch, find, kind_of, number_setting, params_from_settings, params_mut,
    params_ref, resolved, rules, setting_key,
};
pub use saved::{AnyModel, SavedModel};
/// The JSON value of a setting (for [`option_choices!`](crate::option_choices)).
pub use serde_json::Value as SettingValue;
pub use softhebb::{
    SOFTHEBB_COPIES_PER_WEIGHT, SOFTHEBB_INPUT_EPS, SoftHebbConfig, SoftHebbNet, SoftHebbParams, SoftHebbRule,
    SoftHebbState, softhebb_plasticity,
};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::error::CoreError;
use crate::model::{Classifier, Params};

// The registered rules: one line per rule.
registry::registry! {
    BioRule,
    BackpropRule<B>,
    KhRule<B>,
    SoftHebbRule<B>,
    ConvRule<B>,
    BpConvRule<B>,
}

/// What one training step observed (before its update).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchReport {
    /// Mean cross-entropy of the readout on the batch.
    pub loss: f32,
    /// Number of correctly classified samples in the batch.
    pub correct: usize,
    /// Batch size.
    pub samples: usize,
    /// Mean fraction of active units in the last hidden layer.
    pub active_fraction: f32,
}

/// A way of training a model, generic over the backend it runs on.
///
/// The rule owns its own state (optimizer moments, schedules, random streams); the model owns only
/// what is needed to use it.
pub trait LearningRule<B: Backend> {
    /// The model this rule trains.
    type Model: Classifier<B> + Clone + 'static;
    /// The rule's registered name (`bio`, `bp`, …).
    fn name(&self) -> &'static str;
    /// A freshly initialized model for `input_dim` inputs and `classes` classes.
    fn init_model(&self, backend: &B, input_dim: usize, classes: usize, seed: u64) -> Self::Model;
    /// The model this rule trains, rebuilt from saved parameters (every shape checked).
    fn model_from_params(
        &self,
        backend: &B,
        input_dim: usize,
        classes: usize,
        params: &Params,
    ) -> Result<Self::Model, CoreError>;
    /// Called before each epoch (0-based) so the rule can follow its schedule.
    fn start_epoch(&mut self, epoch: usize, epochs: usize);
    /// One update on a batch `x` (`batch×input_dim`) with its labels.
    fn train_batch(
        &mut self,
        model: &mut Self::Model,
        x: &B::Tensor,
        labels: &[usize],
    ) -> Result<BatchReport, CoreError>;
    /// Everything this rule carries from one batch to the next (schedule, random stream, optimizer
    /// moments), in host form, so that training can be checkpointed and resumed bit for bit.
    fn save_state(&self, model: &Self::Model) -> RuleState;
    /// Puts back a state from [`LearningRule::save_state`]; `model` is the model it will train (its
    /// shapes are checked). Errors with [`CoreError::Incompatible`] if the state belongs to the other
    /// rule or to another architecture.
    fn restore_state(&mut self, model: &Self::Model, state: RuleState) -> Result<(), CoreError>;
}

/// Position of a ChaCha8 random stream: seed, stream and 128-bit word position (split in two `u64`
/// so every serde format can hold it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    /// The 32-byte key the generator was seeded with.
    pub seed: [u8; 32],
    /// Stream number.
    pub stream: u64,
    /// High 64 bits of the word position.
    pub word_pos_hi: u64,
    /// Low 64 bits of the word position.
    pub word_pos_lo: u64,
}

impl RngState {
    /// Captures `rng`'s exact position.
    pub fn capture(rng: &rand_chacha::ChaCha8Rng) -> Self {
        let pos = rng.get_word_pos();
        Self {
            seed: rng.get_seed(),
            stream: rng.get_stream(),
            word_pos_hi: (pos >> 64) as u64,
            word_pos_lo: pos as u64,
        }
    }

    /// A generator at exactly the captured position.
    pub fn restore(&self) -> rand_chacha::ChaCha8Rng {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::from_seed(self.seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(((self.word_pos_hi as u128) << 64) | self.word_pos_lo as u128);
        rng
    }
}

/// What the registry needs to know about a rule besides its training steps: its name, its settings
/// and how to build it from a saved configuration. Implemented once per rule, next to its
/// [`LearningRule`] impl; the [`dispatch`] function turns a name from a file or the command line
/// into a call generic over the rule.
pub trait Rule: Sized + 'static {
    /// The name on the command line and in files (`bio`, `bp`, …).
    const NAME: &'static str;
    /// One line for `--help`.
    const SUMMARY: &'static str;
    /// The forward pass in words, with the parameter names of [`crate::Classifier::to_params`], so
    /// that an exported model can be rebuilt from its file alone.
    const FORWARD: &'static str;
    /// The rule's own settings (beyond hidden widths, epochs, batch and seed), each declared once
    /// with [`rule_option!`](crate::rule_option): the command line's flags, the keys of
    /// `config.json` and sweep files and Python's keywords all come from here.
    const OPTIONS: &'static [RuleOption] = &[];
    /// Whether the few-labels protocol has a variant in which the rule's hidden layers also learn
    /// from the unlabelled images (`--unlabelled`); the strict variant exists for every rule.
    const LEARNS_FROM_UNLABELLED: bool = false;
    /// The flags of the settings to lower when training diverges (the rates that size an update).
    const DIVERGENCE_HINT: &'static [&'static str] = &[];
    /// Epochs when none are given.
    const DEFAULT_EPOCHS: usize = 10;
    /// Whether an update depends on how many epochs the run has in all (a schedule annealed over
    /// the run), so that a finished run cannot be extended with the same result.
    const SCHEDULE_DEPENDS_ON_EPOCHS: bool;
    /// Host-side copies of each weight while training, for the memory estimate.
    const COPIES_PER_WEIGHT: u64;
    /// Plain hyper-parameters, as a user fills them in; must have a `hidden` field (the widths).
    type Params: Default + Serialize + DeserializeOwned + 'static;
    /// Validated hyper-parameters, saved (as JSON) with every model of the rule.
    type Config: Clone + std::fmt::Debug + PartialEq + Serialize + DeserializeOwned + Send + Sync + 'static;
    /// The forward pass of a model with this configuration, in words, with its constants and every
    /// exported tensor's name and shape (default: [`Rule::FORWARD`]).
    fn forward_text(_config: &Self::Config, _input_dim: usize, _classes: usize) -> String {
        Self::FORWARD.to_string()
    }
    /// The forward pass as ops over the exported tensors ([`crate::forward::Op`]), so that a model
    /// can be rebuilt from its file alone in any framework (Python's `Model.to_torch()` interprets
    /// them). The registry's test holds it against [`crate::Classifier`]'s forward pass for every
    /// registered rule. Default: none, and such a rule's models have no `to_torch()`.
    fn forward_pass(
        _config: &Self::Config,
        _input_dim: usize,
        _classes: usize,
    ) -> Result<Vec<crate::forward::Op>, CoreError> {
        Err(CoreError::Incompatible(format!("the rule `{}` does not give its forward pass as ops", Self::NAME)))
    }
    /// The input size of a small example that a model of this rule with `config` accepts, for the
    /// checks run over every registered rule (finite-difference input gradients, backend steps).
    /// Default: 12, for a rule that takes any flat input.
    fn example_input_dim(_config: &Self::Config) -> usize {
        12
    }
    /// Puts the hidden widths into `params` (default: through the `hidden` field of its JSON form).
    fn set_hidden(params: &mut Self::Params, hidden: &[usize]) {
        let mut json = serde_json::to_value(&*params).expect("params are plain data");
        json["hidden"] = serde_json::Value::from(hidden.to_vec());
        *params = serde_json::from_value(json).expect("a rule's params have a `hidden` field of widths");
    }
    /// Validates parameters; errors name the setting.
    fn check(params: Self::Params) -> Result<Self::Config, CoreError>;
    /// Hidden layer widths, as configured (`--hidden`).
    fn hidden(config: &Self::Config) -> &[usize];
    /// The widths of the hidden layers of a model of `config` on inputs of `input_dim` values: the
    /// columns of each tensor of its [`Classifier::hidden_activity`].
    /// Default: [`Rule::hidden`], for a rule whose architecture is `--hidden`; a rule whose
    /// architecture is set otherwise (the conv rules: each layer's pooled map, flattened) overrides
    /// it. Errors when the architecture does not fit `input_dim`.
    fn widths(config: &Self::Config, input_dim: usize) -> Result<Vec<usize>, CoreError> {
        let _ = input_dim;
        Ok(Self::hidden(config).to_vec())
    }
    /// The rule, ready to train a new model or to resume one (`seed` feeds its random stream).
    fn new(config: Self::Config, seed: u64) -> Self;
}

/// A learning rule's state between two batches, in backend-free form (see
/// [`LearningRule::save_state`]): the rule's own serde state, tagged with the rule's name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuleState {
    /// The rule it belongs to.
    pub rule: String,
    /// The rule's state, bincode-encoded.
    pub bytes: Vec<u8>,
}

impl RuleState {
    /// Wraps the state `state` of rule `rule`.
    pub fn encode<T: Serialize>(rule: &str, state: &T) -> RuleState {
        let bytes = bincode::serde::encode_to_vec(state, bincode::config::standard())
            .expect("a rule's state is plain data that always encodes");
        RuleState { rule: rule.to_string(), bytes }
    }

    /// The state of rule `rule`; [`CoreError::Incompatible`] if it belongs to another rule or does
    /// not decode.
    pub fn decode<T: DeserializeOwned>(&self, rule: &str) -> Result<T, CoreError> {
        if self.rule != rule {
            return Err(CoreError::Incompatible(format!(
                "a `{}` training state cannot resume a `{rule}` run",
                self.rule
            )));
        }
        bincode::serde::decode_from_slice(&self.bytes, bincode::config::standard())
            .map(|(state, _)| state)
            .map_err(|e| CoreError::Incompatible(format!("the `{rule}` training state does not decode: {e}")))
    }
}

/// Counts predictions equal to the labels.
pub(crate) fn count_correct(predicted: &[usize], labels: &[usize]) -> usize {
    predicted.iter().zip(labels).filter(|(p, l)| p == l).count()
}

/// A mean cross-entropy this many times that of a uniform guess (`ln C`) means training has blown up:
/// no model that learned anything is that confidently wrong on average.
pub const DIVERGENCE_FACTOR: f32 = 20.0;

/// Fails with [`CoreError::Diverged`] if the loss is not finite or exceeds
/// [`DIVERGENCE_FACTOR`]`·ln(classes)`.
pub(crate) fn check_loss(loss: f32, classes: usize, what: &str) -> Result<(), CoreError> {
    let limit = DIVERGENCE_FACTOR * (classes.max(2) as f32).ln();
    if !loss.is_finite() {
        // No advice here: which settings to change depends on the run, which the caller knows.
        Err(CoreError::Diverged(format!("{what} loss became {loss}")))
    } else if loss > limit {
        Err(CoreError::Diverged(format!(
            "{what} loss {loss:.1} exceeds {limit:.1} ({DIVERGENCE_FACTOR}× a uniform guess)"
        )))
    } else {
        Ok(())
    }
}
