//! The `bio` binary end to end on the embedded Fashion-MNIST subset: both rules train to measured
//! thresholds, files are written, and bad input fails with one line and a non-zero exit.

use std::path::Path;
mod common;

use common::{bio, fails_with_one_line};

fn metrics(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("metrics.json")).expect("metrics.json written");
    serde_json::from_str(&text).expect("metrics.json is JSON")
}

fn train(rule: &str, dir: &Path) -> serde_json::Value {
    let out = bio(&[
        "train",
        "--rule",
        rule,
        "--dataset",
        "embedded",
        "--hidden",
        "300",
        "--epochs",
        "2",
        "--quiet",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{rule} training failed: {}", String::from_utf8_lossy(&out.stderr));
    metrics(dir)
}

#[test]
fn both_rules_learn_the_embedded_subset() {
    let tmp = tempfile::tempdir().unwrap();
    // Thresholds measured (seeds 0-2, width 300, 2 epochs): bio 70.4-71.2%, bp 80.4-83.9%; chance is 10%.
    let bio_metrics = train("bio", &tmp.path().join("bio"));
    let bio_acc = bio_metrics["test_accuracy"].as_f64().unwrap();
    assert!(bio_acc > 0.58, "bio test accuracy {bio_acc}");
    assert_eq!(bio_metrics["rule"], "bio");
    assert_eq!(bio_metrics["dataset"], "fashion-mnist-embedded");
    assert!(bio_metrics["train_seconds"].as_f64().unwrap() > 0.0);
    for file in ["model.ckpt", "config.json", "metrics.json"] {
        assert!(tmp.path().join("bio").join(file).is_file(), "{file} missing");
    }
    let bp_acc = train("bp", &tmp.path().join("bp"))["test_accuracy"].as_f64().unwrap();
    assert!(bp_acc > 0.75, "bp test accuracy {bp_acc}");

    // The saved model reproduces the accuracy that training reported.
    let out = bio(&["eval", "accuracy", "--model", tmp.path().join("bio").to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!((report["accuracy"].as_f64().unwrap() - bio_acc).abs() < 1e-9);
    assert_eq!(report["samples"], 1000);
}

#[test]
fn bad_input_fails_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let out = out.to_str().unwrap();
    fails_with_one_line(&["train", "--backend", "cuda", "--dataset", "embedded", "--out", out], "CUDA");
    fails_with_one_line(&["train", "--dataset", "no-such-set", "--out", out], "no-such-set");
    fails_with_one_line(&["train", "--dataset", "embedded", "--hidden", "0", "--out", out], "hidden");
    fails_with_one_line(&["train", "--dataset", "embedded", "--active-fraction", "2", "--out", out], "active-fraction");
    fails_with_one_line(&["train", "--rule", "bp", "--dataset", "embedded", "--lr=-1", "--out", out], "lr");
    let bp = ["train", "--rule", "bp", "--dataset", "embedded", "--out", out];
    fails_with_one_line(&[&bp[..], &["--adversarial-eps=-0.1"]].concat(), "adversarial-eps");
    fails_with_one_line(
        &[&bp[..], &["--adversarial-eps", "0.1", "--adversarial-steps", "0"]].concat(),
        "adversarial-steps",
    );
    fails_with_one_line(&["train", "--dataset", "embedded", "--classes", "3-99", "--out", out], "classes");
    // Zero epochs, batch or checkpoint interval are refused before anything is written.
    let untouched = tmp.path().join("untouched");
    for (flag, value) in [("--epochs", "0"), ("--batch", "0"), ("--checkpoint-every", "0")] {
        let args = ["train", "--dataset", "embedded", flag, value, "--out", untouched.to_str().unwrap()];
        fails_with_one_line(&args, &flag[2..]);
        assert!(!untouched.exists(), "{flag} 0 left an output directory behind");
    }
    fails_with_one_line(
        &["train", "--rule", "bp", "--dataset", "embedded", "--hidden", "50", "--lr=1e6", "--quiet", "--out", out],
        "diverged",
    );
    // An output path under a regular file cannot be created.
    let file = tmp.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let under = file.join("run");
    fails_with_one_line(&["train", "--dataset", "embedded", "--out", under.to_str().unwrap()], "plain-file");
    let out =
        fails_with_one_line(&["eval", "accuracy", "--model", tmp.path().join("absent").to_str().unwrap()], "absent");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("os error").count(), 1, "the OS reason is said once: {err}");
    // A corrupt checkpoint is refused, not loaded.
    let corrupt = tmp.path().join("corrupt");
    std::fs::create_dir(&corrupt).unwrap();
    std::fs::write(corrupt.join("model.ckpt"), b"BIORULE\0garbage").unwrap();
    fails_with_one_line(&["inspect", "--model", corrupt.to_str().unwrap()], "model.ckpt");
}

#[test]
fn base_class_training_keeps_novel_classes_out() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("base");
    let out = bio(&[
        "train",
        "--rule",
        "bp",
        "--dataset",
        "embedded",
        "--hidden",
        "50",
        "--epochs",
        "1",
        "--classes",
        "0-4",
        "--quiet",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Tested on the 5 trained classes only: 500 of the 1000 test images.
    assert_eq!(metrics(&dir)["test_samples"], 500);
}
