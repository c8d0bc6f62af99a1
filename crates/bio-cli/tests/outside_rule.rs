//! A rule defined here, outside the registry's list, with settings of every kind: its one
//! declaration per setting gives it command-line flags (with defaults in `--help`), settings read
//! from the spellings of sweep files and Python keywords, a resolved `config.json` form, and the
//! forward pass (as ops) of an export and `to_torch()`, with no code outside this file.

use bio_core::forward::Op;
use bio_core::rules::{Rule, RuleInfo, RuleOption, Settings, setting_key};
use bio_core::{CoreError, Params, SavedModel};
use bio_run::settings::{settings_from_matches, with_rule_flags};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
enum Shape {
    Round,
    Square,
}
bio_core::option_choices!(Shape { Shape::Round => "round", Shape::Square => "square" });

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct GaussParams {
    hidden: Vec<usize>,
    width: f32,
    steps: usize,
    centred: bool,
    shape: Shape,
    cap: Option<f32>,
}

impl Default for GaussParams {
    fn default() -> Self {
        GaussParams { hidden: vec![8], width: 0.5, steps: 3, centred: false, shape: Shape::Round, cap: None }
    }
}

struct Gauss;

impl Rule for Gauss {
    const NAME: &'static str = "gauss";
    const SUMMARY: &'static str = "a test rule";
    const FORWARD: &'static str = "logits = exp(-|x - c|² / width²)";
    const OPTIONS: &'static [RuleOption] = &[
        bio_core::rule_option!(GaussParams, "gauss-width", width, "kernel width"),
        bio_core::rule_option!(GaussParams, "gauss-steps", steps, "steps per batch"),
        bio_core::rule_option!(GaussParams, "gauss-centred", centred, "centre the inputs"),
        bio_core::rule_option!(GaussParams, "gauss-shape", shape, "kernel shape"),
        bio_core::rule_option!(GaussParams, "gauss-cap", cap, "largest response (default: none)"),
    ];
    const SCHEDULE_DEPENDS_ON_EPOCHS: bool = false;
    const COPIES_PER_WEIGHT: u64 = 1;
    type Params = GaussParams;
    type Config = GaussParams;

    fn forward_pass(config: &GaussParams, _input_dim: usize, _classes: usize) -> Result<Vec<Op>, CoreError> {
        Ok(vec![
            Op::Linear { weight: "hidden.0.weight".into(), bias: None },
            Op::Softmax { beta: 1.0 / (config.width * config.width) },
        ])
    }
    fn check(params: GaussParams) -> Result<GaussParams, CoreError> {
        if params.width <= 0.0 {
            return Err(CoreError::invalid("gauss-width", "must be > 0"));
        }
        Ok(params)
    }
    fn hidden(config: &GaussParams) -> &[usize] {
        &config.hidden
    }
    fn new(_config: GaussParams, _seed: u64) -> Self {
        Gauss
    }
}

#[test]
fn a_rule_outside_the_registry_gets_flags_keys_and_export_constants_from_its_declarations() {
    let info = RuleInfo::of::<Gauss>();
    let cmd = with_rule_flags(clap::Command::new("train"), &[info]);

    // Flags, with their kinds and defaults.
    let help = cmd.clone().render_long_help().to_string();
    for line in ["--gauss-width <X>", "[gauss] kernel width [default: 0.5]", "--gauss-centred", "[default: round]"] {
        assert!(help.contains(line), "`{line}` missing from:\n{help}");
    }
    let matches = cmd
        .clone()
        .try_get_matches_from(["train", "--gauss-width", "2", "--gauss-centred", "--gauss-shape", "square"])
        .unwrap();
    let given = settings_from_matches(&matches, &[info]);
    assert_eq!(given.len(), 3, "{given:?}");
    assert!(cmd.clone().try_get_matches_from(["train", "--gauss-shape", "oval"]).is_err(), "choices are checked");

    // The configuration, resolved: every setting with its value (the off `cap` absent).
    let configured = (info.configure)(&[4], &given).unwrap();
    let config = configured.config.downcast_ref::<GaussParams>().unwrap();
    assert_eq!((config.width, config.steps, config.centred, config.shape), (2.0, 3, true, Shape::Square));
    assert_eq!(config.hidden, vec![4]);
    let expected: Settings = [
        ("gauss-width", json!(2.0)),
        ("gauss-steps", json!(3)),
        ("gauss-centred", json!(true)),
        ("gauss-shape", json!("square")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(configured.settings, expected);

    // Sweep-file and Python spellings (`gauss_cap = 1.5`, `gauss_shape="Square"`) are the same keys.
    let python: Settings =
        [("gauss_cap", json!(1.5)), ("gauss_shape", json!("Square"))].map(|(k, v)| (setting_key(k), v)).into();
    let configured = (info.configure)(&[4], &python).unwrap();
    let config = configured.config.downcast_ref::<GaussParams>().unwrap();
    assert_eq!((config.cap, config.shape), (Some(1.5), Shape::Square));

    // Bad values are refused naming the flag.
    let bad: Settings = [("gauss-steps".to_string(), json!(-1))].into();
    assert!((info.configure)(&[4], &bad).unwrap_err().to_string().contains("`gauss-steps`"));
    let bad: Settings = [("gauss-width".to_string(), json!(0))].into();
    assert!((info.configure)(&[4], &bad).unwrap_err().to_string().contains("`gauss-width`"));

    // Export: the forward constants and text come from the rule.
    let saved = SavedModel {
        rule: "gauss".into(),
        config: serde_json::to_string(config).unwrap(),
        hidden: vec![4],
        input_dim: 2,
        classes: 2,
        params: Params::default(),
    };
    let ops = (info.forward_pass)(&saved).unwrap();
    assert_eq!(ops[1], Op::Softmax { beta: 4.0 });
    assert_eq!(
        serde_json::to_value(&ops).unwrap()[0],
        json!({ "op": "linear", "weight": "hidden.0.weight", "bias": null })
    );
    assert_eq!((info.forward_text)(&saved).unwrap(), Gauss::FORWARD);
}
