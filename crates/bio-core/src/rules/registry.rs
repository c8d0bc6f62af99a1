//! The registry of learning rules: every rule listed in `rules/mod.rs`'s `registry!` line can be
//! named on the command line or in a file, configured from settings, and reloaded from a checkpoint,
//! through [`dispatch`] (generic code, one call per rule) or [`RuleInfo`] (plain data and function
//! pointers, for front ends).

use std::collections::BTreeMap;

use serde_json::Value;

use super::{LearningRule, Rule};
use crate::backend::Backend;
use crate::error::CoreError;
use crate::model::SavedModel;

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

/// One command-line setting of a rule (see [`Rule::OPTIONS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleOption {
    /// The flag without dashes, prefixed by the rule's name (`kh-p`); settings are keyed by it.
    pub flag: &'static str,
    /// The field of the rule's [`Rule::Params`] it sets.
    pub field: &'static str,
    /// Help text, with the default.
    pub help: &'static str,
}

/// A rule's settings as given (command line, `config.json`, a sweep file): flag → value.
pub type Settings = BTreeMap<String, Value>;

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
    /// [`Rule::OPTIONS`].
    pub options: &'static [RuleOption],
    /// [`Rule::DEFAULT_EPOCHS`].
    pub default_epochs: usize,
    /// [`Rule::SCHEDULE_DEPENDS_ON_EPOCHS`].
    pub schedule_depends_on_epochs: bool,
    /// [`Rule::COPIES_PER_WEIGHT`].
    pub copies_per_weight: u64,
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
            options: R::OPTIONS,
            default_epochs: R::DEFAULT_EPOCHS,
            schedule_depends_on_epochs: R::SCHEDULE_DEPENDS_ON_EPOCHS,
            copies_per_weight: R::COPIES_PER_WEIGHT,
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

/// The registered rule called `name`, or an error listing the known names.
pub fn find(name: &str) -> Result<RuleInfo, CoreError> {
    rules().into_iter().find(|r| r.name == name).ok_or_else(|| unknown(name))
}

/// Calls `visitor` for the registered rule called `name`.
pub fn dispatch<B: Backend, V: RuleVisitor<B>>(name: &str, visitor: V) -> Result<V::Output, CoreError> {
    super::dispatch_registered(name, visitor).ok_or_else(|| unknown(name))
}

fn unknown(name: &str) -> CoreError {
    let known: Vec<&str> = rules().iter().map(|r| r.name).collect();
    CoreError::Incompatible(format!("unknown learning rule `{name}` (known: {})", known.join(", ")))
}

/// Rule `R`'s validated configuration: its default [`Rule::Params`] with `hidden` and each given
/// setting put in, then [`Rule::check`]ed. A setting that is not one of `R`'s options, or whose value
/// does not fit its field, is refused naming the flag.
pub fn config_from_settings<R: Rule>(hidden: &[usize], settings: &Settings) -> Result<R::Config, CoreError> {
    let Value::Object(mut fields) = serde_json::to_value(R::Params::default()).expect("params are plain data") else {
        unreachable!("a rule's params are a struct");
    };
    fields.insert("hidden".into(), Value::from(hidden.to_vec()));
    for (flag, value) in settings {
        let Some(option) = R::OPTIONS.iter().find(|o| o.flag == flag) else {
            return Err(CoreError::Incompatible(format!("`{flag}` is not a setting of the `{}` rule", R::NAME)));
        };
        assert!(fields.contains_key(option.field), "option `{flag}` of `{}` names no field of its params", R::NAME);
        // Check the value alone against the field's type, so the error names this flag.
        let mut probe = fields.clone();
        probe.insert(option.field.into(), value.clone());
        serde_json::from_value::<R::Params>(Value::Object(probe)).map_err(|e| {
            CoreError::Incompatible(format!("invalid value for `{flag}`: {value} ({})", type_only(&e.to_string())))
        })?;
        fields.insert(option.field.into(), value.clone());
    }
    let params = serde_json::from_value::<R::Params>(Value::Object(fields))
        .map_err(|e| CoreError::Incompatible(format!("the `{}` settings do not fit: {e}", R::NAME)))?;
    R::check(params)
}

/// serde's message without its position suffix (" at line 1 column 5"), which means nothing here.
fn type_only(message: &str) -> &str {
    message.split(" at line ").next().unwrap_or(message)
}
