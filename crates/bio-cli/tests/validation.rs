//! `bio train --validation N` on the embedded subset: N class-stratified training images are held
//! out, their accuracy is reported beside the test accuracy and saved in metrics.json (per epoch
//! too), a too-large N fails with one line naming `validation`, and `--resume` keeps the saved N.

use std::path::Path;
mod common;

use common::{bio, fails_with_one_line};

fn metrics(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("metrics.json")).expect("metrics.json written");
    serde_json::from_str(&text).expect("metrics.json is JSON")
}

/// A small, fast `bp` run on the embedded subset (6000 train / 1000 test images), plus `extra` flags.
fn train(dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["train", "--rule", "bp", "--dataset", "embedded", "--hidden", "50", "--epochs", "2", "--quiet"];
    args.extend_from_slice(extra);
    args.extend(["--out", dir.to_str().unwrap()]);
    let out = bio(&args);
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

#[test]
fn validation_accuracy_is_measured_on_held_out_training_images() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("val");
    let out = train(&dir, &["--validation", "500"]);
    let m = metrics(&dir);
    let acc = m["validation_accuracy"].as_f64().expect("validation_accuracy is a number");
    assert!((0.0..=1.0).contains(&acc), "validation accuracy {acc}");
    assert!(acc > 0.3, "validation accuracy {acc} is near chance (10%)");
    assert_eq!(m["validation_samples"], 500);
    assert_eq!(m["test_samples"], 1000, "the test set is untouched");
    assert!(m["test_accuracy"].as_f64().is_some());
    // Measured after every epoch; the last epoch's figure is the final one.
    let history = m["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    let per_epoch: Vec<f64> = history.iter().map(|h| h["validation_accuracy"].as_f64().unwrap()).collect();
    assert!((per_epoch[1] - acc).abs() < 1e-6, "{per_epoch:?} vs {acc}");
    // The summary line says which accuracy is which.
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(line.contains("validation accuracy") && line.contains("on 500 held-out training images"), "{line}");
    assert!(line.contains("test accuracy") && line.contains("on 1000 test images"), "{line}");
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
    assert!(config.contains("\"validation\": 500"), "{config}");

    // The resumed run keeps the saved N; another N is refused in the style of the other flags.
    let d = dir.to_str().unwrap();
    fails_with_one_line(&["train", "--resume", d, "--validation", "100"], "validation");
    // (A finished run is not resumed; one killed before its metrics.json is, and re-evaluated.)
    std::fs::remove_file(dir.join("metrics.json")).unwrap();
    let out = bio(&["train", "--resume", d, "--quiet", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let resumed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(resumed["validation_samples"], 500);
    assert_eq!(resumed["validation_accuracy"].as_f64(), Some(acc), "a finished run re-evaluates to the same");
}

#[test]
fn without_validation_nothing_is_held_out() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("plain");
    let out = train(&dir, &[]);
    let m = metrics(&dir);
    assert!(m["validation_accuracy"].is_null(), "{}", m["validation_accuracy"]);
    assert_eq!(m["validation_samples"], 0);
    assert!(m["history"].as_array().unwrap().iter().all(|h| h.get("validation_accuracy").is_none()));
    assert!(!dir.join("validation.json").exists());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("validation"));
}

#[test]
fn too_large_validation_fails_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let out = out.to_str().unwrap();
    // All 6000 training images, or so many that a class would have none left for training.
    fails_with_one_line(&["train", "--dataset", "embedded", "--validation", "6000", "--out", out], "validation");
    fails_with_one_line(&["train", "--dataset", "embedded", "--validation", "5991", "--out", out], "validation");
    // Counted after --classes: two classes have 1200 training images.
    let err = fails_with_one_line(
        &["train", "--dataset", "embedded", "--classes", "0-1", "--validation", "1200", "--out", out],
        "validation",
    );
    assert!(String::from_utf8_lossy(&err.stderr).contains("1200 of 1200"));
    assert!(!Path::new(out).exists(), "a refused run wrote nothing");
}
