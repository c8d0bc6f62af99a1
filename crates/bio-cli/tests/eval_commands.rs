//! End-to-end tests of the evaluation commands: `bio eval robustness|fewshot|metrics`, `bio inspect --out`,
//! `bio report` and `bio export`, run on tiny models trained on the embedded subset.

mod common;

use std::path::{Path, PathBuf};

use common::bio;
use std::sync::OnceLock;

use serde_json::Value;

fn ok(args: &[&str]) -> String {
    let out = bio(args);
    assert!(
        out.status.success(),
        "bio {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn json(args: &[&str]) -> Value {
    serde_json::from_str(&ok(args)).expect("valid JSON")
}

fn fails(args: &[&str]) -> String {
    let out = bio(args);
    assert!(!out.status.success(), "bio {args:?} should fail");
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "one-line error expected, got:\n{err}");
    err
}

struct Models {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

/// A bio and a bp model on all classes, trained once for all tests.
fn models() -> &'static Models {
    static MODELS: OnceLock<Models> = OnceLock::new();
    MODELS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        for rule in ["bio", "bp"] {
            let out = root.join(rule);
            ok(&[
                "train",
                "--rule",
                rule,
                "--dataset",
                "embedded",
                "--hidden",
                "100",
                "--epochs",
                "1",
                "--quiet",
                "--out",
                out.to_str().unwrap(),
            ]);
        }
        Models { _dir: dir, root }
    })
}

fn model(rule: &str) -> String {
    models().root.join(rule).display().to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn robustness_at_eps_zero_is_clean_accuracy() {
    for rule in ["bio", "bp"] {
        let m = model(rule);
        let rob = json(&[
            "eval",
            "robustness",
            "--model",
            &m,
            "--limit",
            "100",
            "--eps",
            "0,0.1",
            "--attack",
            "fgsm",
            "--json",
        ]);
        let acc = json(&["eval", "accuracy", "--model", &m, "--limit", "100", "--json"]);
        let points = rob["attacks"][0]["points"].as_array().expect("points");
        assert_eq!(points.len(), 2);
        assert_eq!(rob["attacks"][0]["name"], "fgsm");
        assert_eq!(points[0]["samples"], 100);
        assert_eq!(points[0]["accuracy"].as_f64(), acc["accuracy"].as_f64(), "{rule}");
        assert!(points[1]["accuracy"].as_f64().unwrap() <= points[0]["accuracy"].as_f64().unwrap());
        // Saved into the model directory.
        let saved: Value =
            serde_json::from_str(&std::fs::read_to_string(models().root.join(rule).join("robustness.json")).unwrap())
                .unwrap();
        assert!(saved["attacks"]["fgsm"]["points"].is_array());
    }
}

#[test]
fn robustness_rejects_negative_eps() {
    let err =
        fails(&["eval", "robustness", "--model", &model("bio"), "--eps", "-1", "--attack", "fgsm", "--limit", "10"]);
    assert!(err.contains("eps"), "{err}");
}

/// A copy of a trained model's directory, so a test that writes robustness.json races no other test.
fn model_copy(rule: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(models().root.join(rule)).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    dir
}

#[test]
fn strongest_reports_the_worst_case_of_every_attack_and_saves_it() {
    let target = model_copy("bio");
    let rob = json(&[
        "eval",
        "robustness",
        "--model",
        s(target.path()),
        "--attack",
        "strongest",
        "--source",
        &model("bp"),
        "--eps",
        "0.1",
        "--limit",
        "30",
        "--iterations",
        "5",
        "--queries",
        "20",
        "--json",
    ]);
    let e = &rob["ensembles"][0];
    assert_eq!(e["name"], "strongest");
    let stages = e["points"][0]["stages"].as_array().expect("stages");
    let names: Vec<&str> = stages.iter().map(|s| s["attack"].as_str().unwrap()).collect();
    assert_eq!(names, ["apgd-ce", "apgd-t", "surrogate", "transfer", "square"]);
    assert!(stages.iter().all(|s| s["ran"] == true), "{stages:?}");
    let worst = e["points"][0]["accuracy"].as_f64().unwrap();
    assert!(stages.iter().all(|s| worst <= s["robust_after"].as_f64().unwrap()));
    assert!(!e["sanity"].as_array().unwrap().is_empty());
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(target.path().join("robustness.json")).unwrap()).unwrap();
    assert_eq!(saved["ensembles"]["strongest"]["points"][0]["accuracy"].as_f64(), Some(worst));
    // The transfer attack's source is part of the result: its directory and its checkpoint's CRC-32.
    let crc = crc32fast::hash(&std::fs::read(Path::new(&model("bp")).join("model.ckpt")).unwrap());
    for source in [&e["source"], &saved["ensembles"]["strongest"]["source"]] {
        assert_eq!(source["model"].as_str(), Some(model("bp").as_str()), "{source}");
        assert_eq!(source["model_crc32"].as_u64(), Some(crc as u64), "{source}");
    }
}

#[test]
fn transfer_needs_a_source_of_the_same_input_size() {
    let err = fails(&["eval", "robustness", "--model", &model("bio"), "--attack", "transfer", "--limit", "10"]);
    assert!(err.contains("source"), "{err}");
}

#[test]
fn metrics_dale_index_of_bio_is_one() {
    let m = json(&["eval", "metrics", "--model", &model("bio"), "--limit", "200", "--json"]);
    assert_eq!(m["layers"][0]["layer"], "hidden.0");
    assert_eq!(m["layers"][0]["dale_index"].as_f64(), Some(1.0));
    assert_eq!(m["class_selectivity"][0]["layer"], "hidden.0");
    assert!(models().root.join("bio").join("biology.json").is_file());
    // Unit diversity, trained and at initialisation, per layer; training moved the hidden layer.
    assert_eq!(m["initial_diversity"][0]["layer"], "hidden.0");
    let (start, end) =
        (m["initial_diversity"][0]["unit_similarity"].as_f64(), m["layers"][0]["unit_similarity"].as_f64());
    assert!(start.is_some() && end.is_some() && start != end, "{start:?} {end:?}");
    // The reference: the 200 measured test images, each a row.
    assert_eq!(m["input_diversity"]["units"].as_u64(), Some(200));
}

#[test]
fn export_round_trips() {
    let out = models().root.join("bio.safetensors");
    ok(&["export", "--model", &model("bio"), "--format", "safetensors", "--out", s(&out)]);
    let (params, meta) = bio_eval::read_safetensors(&std::fs::read(&out).unwrap()).expect("readable safetensors");
    let file = bio_data::load_model(&models().root.join("bio")).unwrap();
    // Everything but the running firing rates, which only training uses.
    let original: Vec<_> = file.model.params().tensors.iter().filter(|(n, _)| !n.ends_with(".rate")).collect();
    assert_eq!(meta.get("rule").map(String::as_str), Some("bio"));
    assert_eq!(params.tensors.len(), original.len());
    for ((n1, m1), (n2, m2)) in params.tensors.iter().zip(original) {
        assert_eq!(n1, n2);
        assert_eq!(m1.as_slice(), m2.as_slice(), "{n1}");
    }
}

#[test]
fn inspect_writes_pictures() {
    let out = models().root.join("pics-bp");
    let text = ok(&["inspect", "--model", &model("bp"), "--out", s(&out)]);
    for f in [
        "receptive-fields.png",
        "receptive-fields-change.png",
        // The one naming of layers, although `bp` calls its tensors `layer.0`, `layer.1`.
        "weights-hidden.0.png",
        "weights-readout.png",
        "activity-hidden.0.png",
    ] {
        let p = out.join(f);
        let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_eq!(&bytes[1..4], b"PNG");
        assert!(text.contains(f), "{text}");
    }
}

#[test]
fn report_mentions_both_runs() {
    let out = models().root.join("report");
    ok(&["report", &model("bio"), &model("bp"), "--out", s(&out)]);
    let md = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    assert!(md.contains(&model("bio")) && md.contains(&model("bp")));
    assert!(md.contains("## Robustness") && md.contains("## Few-shot") && md.contains("## Biology"));
    assert!(md.contains(".png"));
}

#[test]
fn fewshot_needs_novel_classes() {
    let err = fails(&["eval", "fewshot", "--model", &model("bio"), "--episodes", "20", "--queries", "5"]);
    assert!(err.contains("--classes"), "{err}");
}

#[test]
fn fewshot_episodic_on_base_classes() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("base");
    ok(&[
        "train",
        "--rule",
        "bio",
        "--dataset",
        "embedded",
        "--hidden",
        "100",
        "--epochs",
        "1",
        "--classes",
        "0-4",
        "--quiet",
        "--out",
        s(&m),
    ]);
    let r =
        json(&["eval", "fewshot", "--model", s(&m), "--episodes", "20", "--queries", "5", "--shots", "1", "--json"]);
    assert_eq!(r["novel_classes"], serde_json::json!([5, 6, 7, 8, 9]));
    let rows = r["results"].as_array().unwrap();
    assert!(rows.iter().any(|r| r["features"] == "pixels"));
    assert!(rows.iter().any(|r| r["features"] == "hidden.0"));
    assert!(m.join("fewshot.json").is_file());
}

/// A copy of the `rule` model's directory in which no result file can be written: `robustness.json`
/// and `biology.json` are directories there (unlike `chmod`, this stops root too, as in CI).
fn unwritable_copy(rule: &str, tmp: &Path) -> PathBuf {
    let dir = tmp.join(rule);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(models().root.join(rule)).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_file() {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
    for blocked in ["robustness.json", "biology.json"] {
        let _ = std::fs::remove_file(dir.join(blocked));
        std::fs::create_dir(dir.join(blocked)).unwrap();
        std::fs::write(dir.join(blocked).join("keep"), b"").unwrap();
    }
    dir
}

#[test]
fn results_that_cannot_be_saved_are_printed_then_the_command_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = unwritable_copy("bio", tmp.path());
    let args = ["eval", "robustness", "--model", s(&dir), "--limit", "20", "--eps", "0.1", "--attack", "fgsm"];
    let out = common::fails_with_one_line(&args, "robustness.json");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("fgsm") && stdout.contains("NOT saved"), "no results printed:\n{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("were not saved"));
    // With --json the results are the JSON on stdout, and the failure is the same.
    let json_args = [&args[..], &["--json"]].concat();
    let out = common::fails_with_one_line(&json_args, "robustness.json");
    let printed: Value = serde_json::from_slice(&out.stdout).expect("the results as JSON");
    assert!(printed["attacks"][0]["points"].is_array() && printed["not_saved"].is_string(), "{printed}");

    let out = common::fails_with_one_line(&["eval", "metrics", "--model", s(&dir), "--limit", "50"], "biology.json");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("class selectivity") && stdout.contains("NOT saved"), "no metrics printed:\n{stdout}");
}

#[cfg(unix)]
#[test]
fn a_read_only_model_directory_keeps_the_results_too() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ro");
    std::fs::create_dir(&dir).unwrap();
    for entry in std::fs::read_dir(models().root.join("bp")).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_file() && entry.file_name() != "robustness.json" {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    // Root (CI) writes into read-only directories anyway: the test above covers that case.
    if std::fs::write(dir.join("probe"), b"").is_ok() {
        eprintln!("skipped: this user can write into a read-only directory (root)");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        return;
    }
    let out = common::fails_with_one_line(
        &["eval", "robustness", "--model", s(&dir), "--limit", "20", "--eps", "0.1", "--attack", "fgsm"],
        "robustness.json",
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("fgsm"));
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn attack_reports_say_what_ran() {
    // A surrogate attack on a model without a surrogate (bp): nothing would run, so it is refused
    // instead of reporting clean accuracy as the worst case.
    let err = fails(&[
        "eval",
        "robustness",
        "--model",
        &model("bp"),
        "--attack",
        "surrogate",
        "--eps",
        "0.1",
        "--limit",
        "10",
    ]);
    assert!(err.contains("nothing would be measured") && err.contains("no surrogate"), "{err}");

    // Under L2, Square is skipped: the progress says so and never announces it on images.
    let target = model_copy("bio");
    let out = bio(&[
        "eval",
        "robustness",
        "--model",
        s(target.path()),
        "--attack",
        "strongest",
        "--norm",
        "l2",
        "--eps",
        "1",
        "--limit",
        "10",
        "--iterations",
        "3",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(progress.contains("square skipped (the Square attack is L∞ only)"), "{progress}");
    assert!(!progress.contains("square on"), "{progress}");

    // A transfer source trained on fewer classes than the attacked model is refused.
    let five = models().root.join("five-classes");
    if !five.join("model.ckpt").exists() {
        ok(&[
            "train",
            "--rule",
            "bp",
            "--dataset",
            "embedded",
            "--classes",
            "0-4",
            "--hidden",
            "20",
            "--epochs",
            "1",
            "--quiet",
            "--force",
            "--out",
            s(&five),
        ]);
    }
    let err = fails(&[
        "eval",
        "robustness",
        "--model",
        &model("bio"),
        "--attack",
        "transfer",
        "--source",
        s(&five),
        "--eps",
        "0.1",
        "--limit",
        "10",
    ]);
    assert!(err.contains("invalid value for `source`") && err.contains("[5, 6, 7, 8, 9]"), "{err}");
}

#[test]
fn inspect_counts_parameters_without_the_masks() {
    let v = json(&["inspect", "--model", &model("bio"), "--json"]);
    let size = |t: &Value| t["rows"].as_u64().unwrap() * t["cols"].as_u64().unwrap();
    let tensors = v["tensors"].as_array().unwrap();
    let masks: u64 = tensors.iter().filter(|t| t["name"].as_str().unwrap().ends_with(".mask")).map(size).sum();
    let others: u64 = tensors.iter().filter(|t| !t["name"].as_str().unwrap().ends_with(".mask")).map(size).sum();
    assert!(masks > 0, "the bio model has masks: {v}");
    assert_eq!(v["parameters"].as_u64(), Some(others), "{v}");
    assert_eq!(v["mask_entries"].as_u64(), Some(masks), "{v}");
    assert!(v["synapses_present"].as_u64().unwrap() <= masks);
    // The dataset under the name every other output uses.
    assert_eq!(v["dataset"], "fashion-mnist-embedded");
}

#[test]
fn report_shows_the_worst_case_table_and_plot() {
    let target = model_copy("bio");
    ok(&[
        "eval",
        "robustness",
        "--model",
        s(target.path()),
        "--attack",
        "strongest",
        "--eps",
        "0.05,0.1",
        "--limit",
        "10",
        "--iterations",
        "3",
        "--queries",
        "10",
        "--json",
    ]);
    let out = target.path().join("report");
    ok(&["report", s(target.path()), "--out", s(&out)]);
    let md = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    assert!(md.contains("### Worst case per image"), "{md}");
    assert!(md.contains("| strongest | linf | 0.1 |"), "{md}");
    assert!(md.contains("worst-case.png") && out.join("worst-case.png").is_file(), "{md}");
}

#[test]
fn a_model_trained_from_arrays_is_evaluated_with_dataset() {
    // What Python's `Trainer.fit` on NumPy arrays saves: the dataset `numpy`, whose test set is unknown.
    let target = model_copy("bp");
    let mut file = bio_data::load_model(target.path()).unwrap();
    file.dataset = "numpy".into();
    bio_data::save_model(target.path(), &file).unwrap();
    let err = fails(&["eval", "accuracy", "--model", s(target.path()), "--limit", "20"]);
    assert!(err.contains("trained from arrays") && err.contains("--dataset NAME|DIR"), "{err}");
    ok(&["eval", "accuracy", "--model", s(target.path()), "--limit", "20", "--dataset", "embedded"]);
}

#[test]
fn every_output_names_the_layers_alike_whatever_the_rule() {
    // `bp` calls its tensors `layer.0`, `layer.1` (the readout); `bio` `hidden.0`, `readout`.
    let names = |v: &Value, list: &str| -> Vec<String> {
        v[list].as_array().unwrap().iter().map(|l| l["layer"].as_str().unwrap_or("—").to_string()).collect()
    };
    for rule in ["bio", "bp"] {
        let dir = model_copy(rule);
        let m = json(&["eval", "metrics", "--model", s(dir.path()), "--limit", "50", "--json"]);
        assert_eq!(names(&m, "layers"), ["hidden.0", "readout"], "{rule}");
        assert_eq!(names(&m, "class_selectivity"), ["hidden.0"], "{rule}");
        let inspected = json(&["inspect", "--model", s(dir.path()), "--json"]);
        let mut layers = names(&inspected, "tensors");
        layers.dedup();
        assert_eq!(layers, ["hidden.0", "readout"], "{rule}: {inspected}");
        let exported = dir.path().join("model.safetensors");
        ok(&["export", "--model", s(dir.path()), "--format", "safetensors", "--out", s(&exported)]);
        let (_, meta) = bio_eval::read_safetensors(&std::fs::read(&exported).unwrap()).unwrap();
        let prefix = if rule == "bp" { ["layer.0", "layer.1"] } else { ["hidden.0", "readout"] };
        let expected = format!(r#"{{"hidden.0":"{}","readout":"{}"}}"#, prefix[0], prefix[1]);
        assert_eq!(meta.get("layers"), Some(&expected), "{rule}");
    }
    // A biology.json written before the one naming (`bp`: `layer.0`, `layer.1`) is read in it.
    let dir = model_copy("bp");
    ok(&["eval", "metrics", "--model", s(dir.path()), "--limit", "50", "--json"]);
    let path = dir.path().join("biology.json");
    let stored = std::fs::read_to_string(&path).unwrap();
    let old = stored.replace("\"hidden.0\"", "\"layer.0\"").replace("\"readout\"", "\"layer.1\"");
    assert!(old.contains("\"layer.1\"") && !old.contains("\"hidden.0\""));
    std::fs::write(&path, old).unwrap();
    let out = dir.path().join("report");
    ok(&["report", s(dir.path()), "--out", s(&out)]);
    let page = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(page.contains("biology.json") && page.contains("| hidden.0 |") && page.contains("| readout |"), "{page}");
    assert!(!page.contains("layer.0") && !page.contains("layer.1"), "{page}");
}
