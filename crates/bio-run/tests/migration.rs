//! `config.json` files written before the rule registry held every setting (each typed field of
//! both first rules, unset ones as `null`, the other rule's at their defaults) still configure the
//! same run. The fixtures were written by `bio train` at commit ae133e4 with the commands below
//! (`--dataset embedded --hidden 100 --seed 0`, output directory renamed).

use bio_run::{RuleName, SessionSpec};
use serde_json::{Value, json};

fn fixture(name: &str) -> SessionSpec {
    let path = format!("{}/tests/fixtures/config-before-registry/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The spec today's command line makes for `rule` with `settings` (flag → value).
fn today(rule: &str, epochs: usize, settings: &[(&str, Value)]) -> SessionSpec {
    let mut spec = SessionSpec::of(rule, "embedded").hidden(&[100]).with_epochs(epochs);
    for (flag, value) in settings {
        spec = spec.setting(flag, value.clone()).unwrap();
    }
    spec
}

#[test]
fn old_config_files_configure_the_same_run() {
    let cases = [
        ("bio", today("bio", 1, &[])),
        ("kh", today("kh", 1, &[])),
        (
            "bioflags",
            today(
                "bio",
                1,
                &[
                    ("scaling-norm", json!("l1")),
                    ("prune-below", json!(0.5)),
                    ("hebbian-rate", json!(0.003)),
                    ("hebbian-rate-end", json!(0.0003)),
                ],
            ),
        ),
        ("bpmom", today("bp", 1, &[("optimizer", json!("momentum"))])),
        (
            "bio3",
            today(
                "bio",
                1,
                &[
                    ("competition", json!("inhibitory")),
                    ("inhibition-gain", json!(1.2)),
                    ("ablate", json!(["scaling", "structural"])),
                    ("layerwise", json!(true)),
                    ("readout", json!("perturbation")),
                ],
            ),
        ),
        ("khflags", today("kh", 2, &[("kh-p", json!(3)), ("kh-rate", json!(0.2))])),
    ];
    for (name, expected) in cases {
        let old = fixture(name);
        assert_eq!(old.rule, expected.rule, "{name}");
        assert_eq!(old.options.epochs, expected.options.epochs, "{name}");
        let rule = old.rule.info().unwrap();
        let (got, want) = (old.options.config_json(&rule).unwrap(), expected.options.config_json(&rule).unwrap());
        assert_eq!(got, want, "{name}: the old file configures another run");
        // And the resolved form (what config.json holds now) reads back to the same configuration.
        let mut resolved = old.clone();
        resolved.resolve().unwrap();
        let back: SessionSpec = serde_json::from_str(&serde_json::to_string(&resolved).unwrap()).unwrap();
        assert_eq!(back.options.config_json(&rule).unwrap(), want, "{name}: resolved form");
        assert!(back.options.settings.0.values().all(|v| !v.is_null()), "{name}: no null for a defaulted setting");
    }
}

#[test]
fn old_files_with_non_default_settings_of_the_first_rules_keep_them() {
    // A `bp` file with a momentum coefficient of its own, in the old layout.
    let old = std::fs::read_to_string(format!(
        "{}/tests/fixtures/config-before-registry/bpmom.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let old = old.replace("\"momentum\": 0.9", "\"momentum\": 0.5").replace("\"lr\": null", "\"lr\": 0.01");
    let spec: SessionSpec = serde_json::from_str(&old).unwrap();
    assert_eq!(spec.rule, RuleName::BP);
    let config = spec.options.config::<bio_core::BackpropRule<bio_core::ReferenceBackend>>().unwrap();
    assert_eq!(config.optimizer, bio_core::Optimizer::Momentum { momentum: 0.5 });
    assert_eq!(config.learning_rate, 0.01);
}
