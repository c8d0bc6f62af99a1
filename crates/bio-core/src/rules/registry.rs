//! The registry of learning rules: every rule listed in `rules/mod.rs`'s `registry!` line can be
//! named on the command line or in a file, configured from settings, and reloaded from a checkpoint,
//! through [`dispatch`] (generic code, one call per rule) or [`RuleInfo`] (plain data and function
//! pointers, for front ends).

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::saved::{AnyModel, SavedModel};
use super::{LearningRule, Rule};
use crate::backend::Backend;
use crate::error::CoreError;
use crate::model::{Classifier, Params};

/// Generates, from the list of rule types, the private `registered()` list and the
/// `dispatch_registered()` match that the public functions below use. A type may name the backend
/// `B` (`BackpropRule<B>`): in the list it is the reference backend, in a dispatch the caller's.
macro_rules! registry {
    ($($rule:ty),+ $(,)?) => {
        fn registered() -> Vec<$crate::rules::RuleInfo> {
            #[allow(dead_code, clippy::upper_case_acronyms)]
            type B = $crate::backend::ReferenceBackend;
            vec![$($crate::rules::RuleInfo::of::<$rule>()),+]
        }

        fn dispatch_registered<B: $crate::backend::Backend, V: $crate::rules::RuleVisitor<B>>(
            name: &str,
            visitor: V,
        ) -> Option<V::Output> {
            $(if name == <$rule as $crate::rules::Rule>::NAME {
                return Some(visitor.visit::<$rule>());
            })+
            None
        }
    };
}
pub(super) use registry;

/// What values a setting takes, which also decides how the command line spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionKind {
    /// A real number (`--hebbian-rate 0.003`).
    Number,
    /// A whole number ≥ 0 (`--anti-hebbian-ranks 2`).
    Count,
    /// On when the flag is given (`--layerwise`); `true`/`false` in files.
    Switch,
    /// One of these names (`--scaling-norm l1`).
    Choice(&'static [&'static str]),
    /// Any of these names, comma-separated on the command line, a list in files (`--ablate a,b`).
    List(&'static [&'static str]),
    /// Free text that the rule's own check parses (`--conv 96:5,384:3`).
    Text,
}

/// A field type a setting can hold: how its value reads from and writes to the settings' JSON form.
/// Implemented for `f32`, `usize`, `bool`, their `Option`s (`None` = off, written as nothing) and,
/// through [`option_choices!`](crate::option_choices), for enums of named choices.
pub trait OptionValue: Sized {
    /// How the command line takes it.
    const KIND: OptionKind;
    /// The value as a setting (`Null` = off).
    fn to_setting(&self) -> Value;
    /// The value of a setting; the error says what was expected.
    fn from_setting(value: &Value) -> Result<Self, String>;
}

impl OptionValue for f32 {
    const KIND: OptionKind = OptionKind::Number;
    fn to_setting(&self) -> Value {
        number_setting(*self)
    }
    fn from_setting(value: &Value) -> Result<Self, String> {
        match value.as_f64() {
            Some(x) if x.is_finite() => Ok(x as f32),
            _ => Err("expected a number".into()),
        }
    }
}

impl OptionValue for usize {
    const KIND: OptionKind = OptionKind::Count;
    fn to_setting(&self) -> Value {
        Value::from(*self)
    }
    fn from_setting(value: &Value) -> Result<Self, String> {
        match (value.as_u64(), value.as_f64()) {
            (Some(n), _) => Ok(n as usize),
            (None, Some(x)) if x >= 0.0 && x.fract() == 0.0 && x < 1e15 => Ok(x as usize),
            _ => Err("expected a whole number ≥ 0".into()),
        }
    }
}

impl OptionValue for bool {
    const KIND: OptionKind = OptionKind::Switch;
    fn to_setting(&self) -> Value {
        Value::from(*self)
    }
    fn from_setting(value: &Value) -> Result<Self, String> {
        value.as_bool().ok_or_else(|| "expected true or false".into())
    }
}

impl OptionValue for String {
    const KIND: OptionKind = OptionKind::Text;
    fn to_setting(&self) -> Value {
        Value::from(self.as_str())
    }
    fn from_setting(value: &Value) -> Result<Self, String> {
        value.as_str().map(str::to_string).ok_or_else(|| "expected text".into())
    }
}

impl<T: OptionValue> OptionValue for Option<T> {
    const KIND: OptionKind = T::KIND;
    fn to_setting(&self) -> Value {
        self.as_ref().map_or(Value::Null, T::to_setting)
    }
    fn from_setting(value: &Value) -> Result<Self, String> {
        if value.is_null() { Ok(None) } else { T::from_setting(value).map(Some) }
    }
}

/// An `f32` as the shortest decimal that reads back to the same bits (`0.003`, not
/// `0.003000000026077032`).
pub fn number_setting(x: f32) -> Value {
    x.to_string().parse::<f64>().ok().and_then(serde_json::Number::from_f64).map_or(Value::Null, Value::Number)
}

/// The name a choice's value spells, in kebab case: files written before the registry spelled
/// variants as Rust does (`SignReadout`, `Adam`, `L1`), and they still read.
pub fn choice_name(value: &Value) -> Result<String, String> {
    let text = value.as_str().ok_or("expected a name")?;
    let mut name = String::new();
    for (i, c) in text.chars().enumerate() {
        if c.is_ascii_uppercase() {
            let after_lower = i > 0 && text.chars().nth(i - 1).is_some_and(|p| p.is_ascii_lowercase());
            if after_lower {
                name.push('-');
            }
            name.push(c.to_ascii_lowercase());
        } else {
            name.push(c);
        }
    }
    Ok(name)
}

/// Implements [`OptionValue`] for an enum of unit variants, each with the name settings spell it by:
/// `option_choices!(ScalingNorm { ScalingNorm::L1 => "l1", ScalingNorm::L2 => "l2" });`.
#[macro_export]
macro_rules! option_choices {
    ($ty:ty { $($variant:path => $name:literal),+ $(,)? }) => {
        impl $crate::rules::OptionValue for $ty {
            const KIND: $crate::rules::OptionKind = $crate::rules::OptionKind::Choice(&[$($name),+]);
            fn to_setting(&self) -> $crate::rules::SettingValue {
                match self {
                    $($variant => $crate::rules::SettingValue::from($name)),+
                }
            }
            fn from_setting(value: &$crate::rules::SettingValue) -> Result<Self, String> {
                let name = $crate::rules::choice_name(value)?;
                $(if name == $name {
                    return Ok($variant);
                })+
                Err(format!("expected one of {}", [$($name),+].join(", ")))
            }
        }
    };
}

/// Declares a setting that is one field of a rule's params, of a type that is an [`OptionValue`]:
/// `rule_option!(BioParams, "hebbian-rate", hebbian_rate, "Hebbian learning rate η")`. The flag
/// is `--hebbian-rate`, the key in `config.json` and sweep files `hebbian-rate` (or
/// `hebbian_rate`), the Python keyword `hebbian_rate`; the default is the field's in
/// `Params::default()`.
#[macro_export]
macro_rules! rule_option {
    ($params:ty, $flag:literal, $field:ident, $help:expr) => {
        $crate::rules::RuleOption {
            flag: $flag,
            field: stringify!($field),
            help: $help,
            kind: $crate::rules::kind_of::<$params, _>(|p| &p.$field),
            get: |p| $crate::rules::OptionValue::to_setting(&$crate::rules::params_ref::<$params>(p).$field),
            set: |p, v| {
                $crate::rules::params_mut::<$params>(p).$field = $crate::rules::OptionValue::from_setting(v)?;
                Ok(())
            },
        }
    };
}

/// The [`OptionKind`] of the field `field` reads (for [`rule_option!`](crate::rule_option)).
pub const fn kind_of<P, T: OptionValue>(_field: fn(&P) -> &T) -> OptionKind {
    T::KIND
}

/// A rule's params behind an option's `&dyn Any` (for [`RuleOption::get`]).
pub fn params_ref<P: 'static>(params: &dyn Any) -> &P {
    params.downcast_ref().expect("an option is applied to its own rule's params")
}

/// A rule's params behind an option's `&mut dyn Any` (for [`RuleOption::set`]).
pub fn params_mut<P: 'static>(params: &mut dyn Any) -> &mut P {
    params.downcast_mut().expect("an option is applied to its own rule's params")
}

/// One setting of a rule (see [`Rule::OPTIONS`]): its flag, the field of the rule's params it
/// sets, its help text, the values it takes, and how it reads and writes the field. Declared with
/// [`rule_option!`](crate::rule_option) when it is one field; written out when one flag sets part
/// of a field (`--competition`, `--inhibition-gain` → `competition`).
#[derive(Clone, Copy, Debug)]
pub struct RuleOption {
    /// The flag without dashes (`hebbian-rate`, `kh-p`); settings are keyed by it.
    pub flag: &'static str,
    /// The field of the rule's [`Rule::Params`] it sets.
    pub field: &'static str,
    /// Help text (the default is added from the params' default).
    pub help: &'static str,
    /// The values it takes.
    pub kind: OptionKind,
    /// The field's value as a setting (`Null` when off), from the rule's params.
    pub get: fn(&dyn Any) -> Value,
    /// Puts a setting's value into the rule's params; the error says what was expected.
    pub set: fn(&mut dyn Any, &Value) -> Result<(), String>,
}

/// A rule's settings as given (command line, `config.json`, a sweep file): flag → value.
pub type Settings = BTreeMap<String, Value>;

/// A rule's validated configuration behind `Any` (downcast to the rule's [`Rule::Config`]), with
/// every one of its settings resolved (the defaults filled in), as [`RuleInfo::configure`] makes it.
#[derive(Clone)]
pub struct Configured {
    /// The rule's [`Rule::Config`].
    pub config: Arc<dyn Any + Send + Sync>,
    /// Every setting of the rule with its value (none is left to a default); off settings are absent.
    pub settings: Settings,
}

impl std::fmt::Debug for Configured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Configured").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl Configured {
    /// The configuration of rule `R`, or an error if it belongs to another rule.
    pub fn config<R: Rule>(&self) -> Result<&R::Config, CoreError> {
        self.config
            .downcast_ref::<R::Config>()
            .ok_or_else(|| CoreError::Incompatible(format!("the configuration is not one of the `{}` rule", R::NAME)))
    }
}

/// A registered rule as plain data, for front ends that list, describe or configure rules without
/// being generic over them.
#[derive(Clone, Copy, Debug)]
pub struct RuleInfo {
    /// [`Rule::NAME`].
    pub name: &'static str,
    /// [`Rule::SUMMARY`].
    pub summary: &'static str,
    /// [`Rule::FORWARD`].
    pub forward: &'static str,
    /// [`Rule::forward_text`] of a saved model of this rule.
    pub forward_text: fn(&SavedModel) -> Result<String, CoreError>,
    /// [`Rule::forward_pass`] of a saved model of this rule.
    pub forward_pass: fn(&SavedModel) -> Result<Vec<crate::forward::Op>, CoreError>,
    /// [`Rule::OPTIONS`].
    pub options: &'static [RuleOption],
    /// [`Rule::LEARNS_FROM_UNLABELLED`].
    pub learns_from_unlabelled: bool,
    /// [`Rule::DIVERGENCE_HINT`].
    pub divergence_hint: &'static [&'static str],
    /// [`Rule::DEFAULT_EPOCHS`].
    pub default_epochs: usize,
    /// [`Rule::SCHEDULE_DEPENDS_ON_EPOCHS`].
    pub schedule_depends_on_epochs: bool,
    /// [`Rule::COPIES_PER_WEIGHT`].
    pub copies_per_weight: u64,
    /// The validated configuration and the resolved settings, from hidden widths and settings ([`configure`]).
    pub configure: fn(&[usize], &Settings) -> Result<Configured, CoreError>,
    /// Every setting at its default (off settings absent), for `--help` and front ends.
    pub defaults: fn() -> Settings,
    /// The validated configuration, as JSON, from hidden widths and settings ([`config_from_settings`]).
    pub config_json: fn(&[usize], &Settings) -> Result<String, CoreError>,
}

impl RuleInfo {
    /// The description of rule `R`.
    pub fn of<R: Rule>() -> RuleInfo {
        RuleInfo {
            name: R::NAME,
            summary: R::SUMMARY,
            forward: R::FORWARD,
            forward_text: |saved| Ok(R::forward_text(&saved.config_of::<R>()?, saved.input_dim, saved.classes)),
            forward_pass: |saved| R::forward_pass(&saved.config_of::<R>()?, saved.input_dim, saved.classes),
            options: R::OPTIONS,
            learns_from_unlabelled: R::LEARNS_FROM_UNLABELLED,
            divergence_hint: R::DIVERGENCE_HINT,
            default_epochs: R::DEFAULT_EPOCHS,
            schedule_depends_on_epochs: R::SCHEDULE_DEPENDS_ON_EPOCHS,
            copies_per_weight: R::COPIES_PER_WEIGHT,
            configure: |hidden, settings| {
                let (config, settings) = configure::<R>(hidden, settings)?;
                Ok(Configured { config: Arc::new(config), settings })
            },
            defaults: || resolved::<R>(&R::Params::default()),
            config_json: |hidden, settings| {
                let config = config_from_settings::<R>(hidden, settings)?;
                Ok(serde_json::to_string(&config).expect("a config is plain data"))
            },
        }
    }

    /// The option whose flag is `flag`.
    pub fn option(&self, flag: &str) -> Option<&'static RuleOption> {
        self.options.iter().find(|o| o.flag == flag)
    }
}

/// A call generic over the rule, made by [`dispatch`] for the rule a name designates.
pub trait RuleVisitor<B: Backend> {
    /// What the call returns.
    type Output;
    /// The call, for rule `R`.
    fn visit<R: Rule + LearningRule<B>>(self) -> Self::Output;
}

/// Every registered rule, in registration order.
pub fn rules() -> Vec<RuleInfo> {
    super::registered()
}

/// The registered rule called `name`, or [`CoreError::UnknownRule`] listing the known names.
pub fn find(name: &str) -> Result<RuleInfo, CoreError> {
    rules().into_iter().find(|r| r.name == name).ok_or_else(|| unknown(name))
}

/// Calls `visitor` for the registered rule called `name`.
pub fn dispatch<B: Backend, V: RuleVisitor<B>>(name: &str, visitor: V) -> Result<V::Output, CoreError> {
    super::dispatch_registered(name, visitor).ok_or_else(|| unknown(name))
}

fn unknown(name: &str) -> CoreError {
    let known: Vec<&str> = rules().iter().map(|r| r.name).collect();
    CoreError::UnknownRule { name: name.to_string(), known: known.join(", ") }
}

/// The key a setting is stored under: its flag (`hebbian_rate`, the Python and old `config.json`
/// spelling, → `hebbian-rate`).
pub fn setting_key(name: &str) -> String {
    name.replace('_', "-")
}

/// Every setting of `R` read from `params` (off settings absent).
pub fn resolved<R: Rule>(params: &R::Params) -> Settings {
    R::OPTIONS
        .iter()
        .filter_map(|o| {
            let value = (o.get)(params);
            (!value.is_null()).then(|| (o.flag.to_string(), value))
        })
        .collect()
}

/// Rule `R`'s params from hidden widths and settings: its default [`Rule::Params`] with `hidden`
/// and each given setting put in, in the order [`Rule::OPTIONS`] declares them (so that
/// `--optimizer` comes before `--lr`). A setting that is not one of `R`'s options, or whose value
/// does not fit, is refused naming the flag. Not yet [`Rule::check`]ed.
pub fn params_from_settings<R: Rule>(hidden: &[usize], settings: &Settings) -> Result<R::Params, CoreError> {
    for flag in settings.keys() {
        if R::OPTIONS.iter().any(|o| o.flag == flag) {
            continue;
        }
        return Err(match rules().into_iter().find_map(|r| r.option(flag).map(|o| (r.name, o.flag))) {
            Some((owner, flag)) => CoreError::invalid(
                flag,
                format!("it is a setting of the `{owner}` rule, and this run trains `{}`", R::NAME),
            ),
            None => CoreError::UnknownSetting { name: flag.clone(), rule: R::NAME.to_string() },
        });
    }
    let mut params = R::Params::default();
    R::set_hidden(&mut params, hidden);
    for option in R::OPTIONS {
        if let Some(value) = settings.get(option.flag) {
            (option.set)(&mut params, value)
                .map_err(|reason| CoreError::invalid(option.flag, format!("{value} ({reason})")))?;
        }
    }
    Ok(params)
}

/// Rule `R`'s validated configuration and its resolved settings (see [`params_from_settings`]).
pub fn configure<R: Rule>(hidden: &[usize], settings: &Settings) -> Result<(R::Config, Settings), CoreError> {
    let params = params_from_settings::<R>(hidden, settings)?;
    let settings = resolved::<R>(&params);
    Ok((R::check(params)?, settings))
}

/// Rule `R`'s validated configuration (see [`configure`]).
pub fn config_from_settings<R: Rule>(hidden: &[usize], settings: &Settings) -> Result<R::Config, CoreError> {
    configure::<R>(hidden, settings).map(|(config, _)| config)
}

/// Loading a saved model: a dispatch on the name of the rule that trained it.
impl SavedModel {
    /// The parameters this model started from when its rule initialised it with `seed` (the run's
    /// seed), recomputed (initialisation is deterministic), e.g. to picture what training changed.
    pub fn initial_params(&self, seed: u64) -> Result<Params, CoreError> {
        struct Initial<'a>(&'a SavedModel, u64);
        impl RuleVisitor<crate::ReferenceBackend> for Initial<'_> {
            type Output = Result<Params, CoreError>;
            fn visit<R: Rule + LearningRule<crate::ReferenceBackend>>(self) -> Self::Output {
                let Initial(s, seed) = self;
                let rule = R::new(s.config_of::<R>()?, seed);
                Ok(rule.init_model(&crate::ReferenceBackend, s.input_dim, s.classes, seed).to_params())
            }
        }
        dispatch(&self.rule, Initial(self, seed))?
    }

    /// The model's hidden widths ([`Rule::widths`]), recomputed from its configuration: what
    /// [`SavedModel::hidden`] holds in checkpoints written since the widths were stored (older conv
    /// checkpoints hold `--hidden` instead).
    pub fn widths(&self) -> Result<Vec<usize>, CoreError> {
        struct Widths<'a>(&'a SavedModel);
        impl RuleVisitor<crate::ReferenceBackend> for Widths<'_> {
            type Output = Result<Vec<usize>, CoreError>;
            fn visit<R: Rule + LearningRule<crate::ReferenceBackend>>(self) -> Self::Output {
                Ok(super::saved::widths::<R>(&self.0.config_of::<R>()?, self.0.input_dim))
            }
        }
        dispatch(&self.rule, Widths(self))?
    }

    /// Uploads the model to a backend, whatever registered rule trained it.
    pub fn load<B: Backend>(&self, backend: &B) -> Result<AnyModel<B>, CoreError> {
        struct Load<'a, B> {
            saved: &'a SavedModel,
            backend: &'a B,
        }
        impl<B: Backend> RuleVisitor<B> for Load<'_, B> {
            type Output = Result<AnyModel<B>, CoreError>;
            fn visit<R: Rule + LearningRule<B>>(self) -> Self::Output {
                let config = self.saved.config_of::<R>()?;
                let s = self.saved;
                // Recomputed rather than `s.hidden`: older conv checkpoints stored `--hidden`.
                let hidden = super::saved::widths::<R>(&config, s.input_dim);
                let model = R::new(config, 0).model_from_params(self.backend, s.input_dim, s.classes, &s.params)?;
                Ok(AnyModel::new(s.rule.clone(), s.config.clone(), hidden, model))
            }
        }
        dispatch(&self.rule, Load { saved: self, backend })?
    }
}
