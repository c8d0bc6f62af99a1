//! The rules' own settings in a session spec ([`RuleSettings`]): read from files (older layouts
//! migrated) and, with the `clap` feature, one command-line flag per declared option
//! ([`bio_core::rules::Rule::OPTIONS`]), with its default in `--help`.

use bio_core::rules::{Settings, setting_key};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The rules' own settings ([`bio_core::rules::Rule::OPTIONS`]), by flag (`hebbian-rate` → 0.003,
/// `kh-p` → 3). On the command line each declared option is a flag of its own; in `config.json`
/// and sweep files they sit beside the other rule settings, keyed by flag (`hebbian_rate`, the
/// spelling of older files and of Python, reads too).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct RuleSettings(pub Settings);

impl<'de> Deserialize<'de> for RuleSettings {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(RuleSettings(migrate(Map::deserialize(d)?)))
    }
}

/// Settings read from a file. Before the registry held every setting, `config.json` wrote each
/// typed field of both first rules, the unset ones as `null` and the other rule's at their defaults
/// (such a file always has `inhibition_gain`): those carry nothing and are dropped, so an old file
/// configures the same run. Keys are put in flag form.
fn migrate(fields: Map<String, Value>) -> Settings {
    let old_format = fields.contains_key("inhibition_gain");
    let carries_nothing = |key: &str, v: &Value| match key {
        "inhibition-gain" => v.as_f64() == Some(1.5),
        "momentum" => v.as_f64() == Some(0.9),
        "optimizer" => v.as_str().is_some_and(|o| o.eq_ignore_ascii_case("adam")),
        "layerwise" | "pattern-per-unit" => v == &Value::Bool(false),
        "ablate" => v.as_array().is_some_and(|a| a.is_empty()),
        _ => false,
    };
    fields
        .into_iter()
        .map(|(k, v)| (setting_key(&k), v))
        .filter(|(k, v)| !(v.is_null() || (old_format && carries_nothing(k, v))))
        .collect()
}

#[cfg(feature = "clap")]
impl clap::FromArgMatches for RuleSettings {
    fn from_arg_matches(matches: &clap::ArgMatches) -> std::result::Result<Self, clap::Error> {
        Ok(RuleSettings(settings_from_matches(matches, &bio_core::rules::rules())))
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> std::result::Result<(), clap::Error> {
        self.0.extend(Self::from_arg_matches(matches)?.0);
        Ok(())
    }
}

#[cfg(feature = "clap")]
impl clap::Args for RuleSettings {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        with_rule_flags(cmd, &bio_core::rules::rules())
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// `cmd` with one flag per option of each of `rules` (for `bio train`: every registered rule):
/// its kind decides the parser (a number, a switch, one of the names, a comma-separated list), its
/// help is marked with the rule (`[bio] …`) and ends with the default.
#[cfg(feature = "clap")]
pub fn with_rule_flags(cmd: clap::Command, rules: &[bio_core::rules::RuleInfo]) -> clap::Command {
    use bio_core::rules::OptionKind;
    use clap::builder::PossibleValuesParser;
    let options = rules.iter().flat_map(|rule| {
        let defaults = (rule.defaults)();
        rule.options.iter().map(move |o| {
            let default = match defaults.get(o.flag) {
                Some(Value::String(s)) => format!(" [default: {s}]"),
                Some(Value::Number(n)) => format!(" [default: {n}]"),
                _ => String::new(),
            };
            let arg = clap::Arg::new(o.flag).long(o.flag).help(format!("[{}] {}{default}", rule.name, o.help));
            match o.kind {
                OptionKind::Number => arg.value_name("X").allow_negative_numbers(true),
                OptionKind::Count => arg.value_name("N"),
                OptionKind::Text => arg.value_name("TEXT"),
                OptionKind::Switch => arg.action(clap::ArgAction::SetTrue),
                OptionKind::Choice(names) => arg.value_parser(PossibleValuesParser::new(names)),
                OptionKind::List(names) => arg
                    .value_parser(PossibleValuesParser::new(names))
                    .value_delimiter(',')
                    .action(clap::ArgAction::Append),
            }
        })
    });
    cmd.args(options)
}

/// The settings given on a command line made with [`with_rule_flags`] for `rules`, by flag.
#[cfg(feature = "clap")]
pub fn settings_from_matches(matches: &clap::ArgMatches, rules: &[bio_core::rules::RuleInfo]) -> Settings {
    use bio_core::rules::OptionKind;
    let mut settings = Settings::new();
    for option in rules.iter().flat_map(|r| r.options) {
        let value = match option.kind {
            OptionKind::Switch => matches.get_flag(option.flag).then_some(Value::Bool(true)),
            OptionKind::List(_) => matches
                .get_many::<String>(option.flag)
                .map(|names| Value::Array(names.map(|n| Value::from(n.as_str())).collect())),
            OptionKind::Choice(_) | OptionKind::Text => {
                matches.get_one::<String>(option.flag).map(|v| Value::from(v.as_str()))
            }
            OptionKind::Number | OptionKind::Count => matches.get_one::<String>(option.flag).map(|v| setting_value(v)),
        };
        if let Some(value) = value {
            settings.insert(option.flag.to_string(), value);
        }
    }
    settings
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
