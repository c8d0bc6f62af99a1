//! `bio_run::continual`: settings from keywords, and a whole (tiny) protocol on the embedded data.

use bio_core::ReferenceBackend;
use bio_run::continual::{CONTINUAL_FILE, ContinualProgress, ContinualSpec, continual};
use serde_json::json;

fn settings(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn settings_go_to_the_spec_its_rule_options_or_a_rule() {
    let spec = ContinualSpec::from_settings(&settings(json!({
        "iterations": 7, "methods": ["bio", "kh"], "hidden": [30], "seed": 4, "hebbian_rate": 0.01, "kh_p": 3.0
    })))
    .unwrap();
    assert_eq!((spec.iterations, spec.options.seed, spec.options.hidden.clone()), (7, 4, vec![30]));
    assert_eq!(spec.methods, vec!["bio", "kh"]);
    assert_eq!(spec.options.settings.0.get("hebbian-rate"), Some(&json!(0.01)));
    assert_eq!(spec.options.settings.0.get("kh-p"), Some(&json!(3.0)));
    spec.check().unwrap();
    let e = ContinualSpec::from_settings(&settings(json!({"no_such_setting": 1}))).unwrap_err();
    assert!(e.to_string().contains("no_such_setting"), "{e}");
    let bad = ContinualSpec::from_settings(&settings(json!({"methods": ["nope"]}))).unwrap();
    assert!(bad.check().unwrap_err().to_string().contains("`nope` is neither a rule"));
    let epochs = ContinualSpec::from_settings(&settings(json!({"epochs": 3}))).unwrap();
    assert!(epochs.check().unwrap_err().to_string().contains("--iterations"));
}

#[test]
fn a_tiny_protocol_runs_end_to_end_and_writes_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ContinualSpec::from_settings(&settings(json!({
        "dataset": "embedded", "scenario": ["class", "domain"], "methods": ["bp", "ncm-pixels"],
        "iterations": 5, "hidden": [10], "out": dir.path()
    })))
    .unwrap();
    let (mut started, mut contexts, mut done) = (Vec::new(), Vec::new(), 0);
    let report = continual(&ReferenceBackend, &spec, |event| match event {
        ContinualProgress::Run { method, scenario, order, seed } => {
            started.push((method.to_string(), scenario, order, seed))
        }
        ContinualProgress::Context { context, contexts: n, .. } => contexts.push((context, n)),
        ContinualProgress::Done { average, .. } => {
            assert!((0.0..=1.0).contains(&average));
            done += 1
        }
    })
    .unwrap();
    assert_eq!(started.len(), 4);
    assert_eq!(done, 4);
    // Each run says as each of its 5 contexts starts, in order.
    let per_run: Vec<(usize, usize)> = (0..5).map(|c| (c, 5)).collect();
    assert_eq!(contexts, per_run.repeat(4));
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.runs.len(), 4);
    assert_eq!(report.summary.len(), 4);
    for run in &report.runs {
        assert_eq!(run.accuracy.r.len(), 5);
        assert!(run.accuracy.r.iter().flatten().all(|a| (0.0..=1.0).contains(a)));
    }
    // Domain-incremental Split: two outputs, so chance is one half and the class means beat it.
    let ncm = report.runs.iter().find(|r| r.method == "ncm-pixels" && r.scenario.name() == "domain").unwrap();
    assert!(ncm.metrics.average > 0.6, "{:?}", ncm.metrics);
    assert!(dir.path().join(CONTINUAL_FILE).is_file());
    for s in ["class", "domain"] {
        for kind in ["average", "r"] {
            assert!(dir.path().join(format!("continual-split-{s}-{kind}.png")).is_file());
        }
    }
}

#[test]
fn a_validation_split_is_scored_instead_of_the_test_set_and_leaves_training() {
    let run = |validation: usize| {
        let spec = ContinualSpec::from_settings(&settings(json!({
            "dataset": "embedded", "scenario": ["class"], "methods": ["ncm-pixels"],
            "iterations": 2, "hidden": [10], "validation": validation
        })))
        .unwrap();
        continual(&ReferenceBackend, &spec, |_| {}).unwrap()
    };
    let (plain, held) = (run(0), run(200));
    assert_eq!(held.images.0 + 200, plain.images.0, "the held-out images leave training");
    assert_eq!(held.images.1, 200, "and are what is scored");
    assert_ne!(held.images.1, plain.images.1);
    let too_many = ContinualSpec::from_settings(&settings(json!({
        "dataset": "embedded", "methods": ["ncm-pixels"], "validation": 1_000_000
    })))
    .unwrap();
    let e = continual(&ReferenceBackend, &too_many, |_| {}).unwrap_err();
    assert!(e.to_string().contains("validation"), "{e}");
}
