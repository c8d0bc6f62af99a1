//! `bio eval oneshot` end to end: a tiny model trained on `omniglot-small1` from the shipped data,
//! scored on Lake's 20 runs, and the one-line refusals.

mod common;

use common::{bio, fails_with_one_line};
use serde_json::Value;

#[test]
fn oneshot_scores_a_model_trained_on_background_small1() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("omni");
    let d = dir.to_str().unwrap();
    let args = ["train", "--rule", "bio", "--dataset", "omniglot-small1", "--hidden", "50", "--epochs", "1"];
    let out = bio(&[&args[..], &["--quiet", "--out", d]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = bio(&["eval", "oneshot", "--model", d, "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((report["side"].as_u64(), report["runs"].as_u64()), (Some(28), Some(20)));
    assert_eq!(report["dataset"], "omniglot-small1");
    let rows = report["rows"].as_array().unwrap();
    let names: Vec<String> = rows
        .iter()
        .map(|r| format!("{}/{}", r["features"].as_str().unwrap(), r["centring"].as_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        [
            "mhd/none",
            "pixels/none",
            "pixels/background",
            "hidden.0/none",
            "hidden.0/background",
            "hidden.0.drive/none",
            "hidden.0.drive/background"
        ]
    );
    assert_eq!(rows[0]["mean"].as_f64(), Some(38.75), "Lake's MHD figure");
    for r in rows {
        let errors = r["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 20);
        let mean = errors.iter().map(|e| e.as_f64().unwrap()).sum::<f64>() / 20.0;
        assert!((mean - r["mean"].as_f64().unwrap()).abs() < 1e-9);
        assert!(errors.iter().all(|e| (0.0..=100.0).contains(&e.as_f64().unwrap())));
    }
    assert!(dir.join("oneshot.json").exists(), "saved next to the model");
    // The model fixes the side.
    fails_with_one_line(&["eval", "oneshot", "--model", d, "--side", "20"], "the model takes 28×28 images");
}

#[test]
fn oneshot_refuses_bad_sides_and_missing_models() {
    fails_with_one_line(&["eval", "oneshot", "--side", "0"], "invalid value for `side`");
    fails_with_one_line(&["eval", "oneshot", "--side", "106"], "invalid value for `side`");
    fails_with_one_line(&["eval", "oneshot", "--model", "no-such-dir"], "no-such-dir");
}
