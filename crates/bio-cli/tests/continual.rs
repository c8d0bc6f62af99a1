//! `bio eval continual` end to end on the embedded subset: the JSON report and one-line refusals.

mod common;

use common::bio;

#[test]
fn continual_prints_every_run_as_json() {
    let out = bio(&[
        "eval",
        "continual",
        "--dataset",
        "embedded",
        "--scenario",
        "class,task",
        "--methods",
        "bp,ncm-pixels",
        "--iterations",
        "5",
        "--hidden",
        "10",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    for run in runs {
        let r = run["accuracy"]["r"].as_array().unwrap();
        assert_eq!(r.len(), 5);
        assert!(run["metrics"]["average"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(report["summary"].as_array().unwrap().len(), 4);
}

#[test]
fn continual_refuses_bad_settings_in_one_line() {
    common::fails_with_one_line(&["eval", "continual", "--dataset", "embedded", "--methods", "nope"], "nope");
    common::fails_with_one_line(&["eval", "continual", "--dataset", "embedded", "--scenario", "sideways"], "scenario");
    common::fails_with_one_line(&["eval", "continual", "--dataset", "embedded", "--epochs", "2"], "iterations");
}
