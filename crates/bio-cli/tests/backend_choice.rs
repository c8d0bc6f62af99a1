//! `--backend`: `auto` falls back to the CPU and says why, `cuda` without a usable GPU fails with
//! the one-line CUDA reason (never a panic). On a machine where CUDA works, the checks that need
//! its absence are skipped and `auto` must pick CUDA instead.

mod common;

use std::path::Path;
use std::process::Output;

use common::{bio, fails_with_one_line};

/// Why CUDA cannot be used here, or `None` when it can.
fn cuda_unusable() -> Option<String> {
    bio_cuda::CudaBackend::new().err().map(|e| e.to_string())
}

/// Trains a small `bp` network on the embedded subset into `dir` with `--backend backend` and `extra`.
fn train_small(backend: &str, dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["train", "--rule", "bp", "--dataset", "embedded", "--hidden", "20", "--epochs", "1"];
    args.extend(["--backend", backend, "--out", dir.to_str().unwrap()]);
    args.extend(extra);
    bio(&args)
}

fn fails_with_one_cuda_line(args: &[&str]) {
    let out = fails_with_one_line(args, "CUDA");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?} should exit with 1, stderr:\n{err}");
    assert!(!err.contains("panicked"), "{args:?} panicked:\n{err}");
    assert!(out.stdout.is_empty(), "{args:?} printed to stdout: {}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn auto_trains_on_the_cpu_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("auto");
    let out = train_small("auto", &dir, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "auto training failed:\n{err}");
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap();
    let backend = metrics["backend"].as_str().unwrap();
    let line = err.lines().find(|l| l.starts_with("backend:")).unwrap_or_else(|| panic!("no backend line in:\n{err}"));
    match cuda_unusable() {
        Some(why) => {
            assert!(backend.starts_with("cpu"), "metrics.json backend {backend}");
            assert!(line.contains("cpu"), "the choice is not named: {line}");
            assert!(line.contains("CUDA not used"), "no reason given: {line}");
            assert!(line.contains(&why), "`{why}` not in: {line}");
        }
        None => {
            assert!(!backend.starts_with("cpu"), "CUDA works here but auto trained on {backend}");
            assert!(line.contains("CUDA is usable"), "{line}");
        }
    }

    // --quiet silences the choice.
    let out = train_small("auto", &tmp.path().join("quiet"), &["--quiet"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("backend:"), "--quiet still says: {err}");
}

#[test]
fn cuda_without_a_gpu_fails_with_one_line() {
    if cuda_unusable().is_none() {
        eprintln!("CUDA is usable here: nothing to check");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("cpu");
    let out = train_small("cpu", &model, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let model = model.to_str().unwrap();
    let run = tmp.path().join("cuda");
    fails_with_one_cuda_line(&["train", "--backend", "cuda", "--dataset", "embedded", "--out", run.to_str().unwrap()]);
    assert!(!run.join("metrics.json").exists(), "a failed cuda run wrote metrics");
    fails_with_one_cuda_line(&["eval", "accuracy", "--backend", "cuda", "--model", model]);
    fails_with_one_cuda_line(&["eval", "accuracy", "--backend", "cuda", "--model", model, "--json"]);
    fails_with_one_cuda_line(&[
        "eval",
        "robustness",
        "--backend",
        "cuda",
        "--model",
        model,
        "--attack",
        "fgsm",
        "--eps",
        "0",
        "--limit",
        "10",
    ]);
    // The model directory is untouched by the failed evaluation.
    assert!(!Path::new(model).join("robustness.json").exists());
}
