//! `bio_run::sweep`: a small sweep on the embedded subset runs, resumes without redoing anything,
//! shards and merges to the same table; the Pareto front is right on hand-made points.

use std::path::Path;
use std::sync::Mutex;

use bio_run::BackendChoice;
use bio_run::sweep::{self, Shard, SweepEvent, SweepSpec, pareto_front};

const SPEC: &str = r#"
seeds = [0]
[base]
dataset = "embedded"
validation = 600
hidden = 30
epochs = 1
[grid]
hebbian-rate = [0.001, 0.01]
[eval]
robust-images = 60
attacks = ["strongest", "pgd"]
steps = 5
"#;

fn spec() -> SweepSpec {
    toml::from_str(SPEC).unwrap()
}

/// Runs `spec` into `out` and returns the names of the runs started and skipped.
fn run(spec: &SweepSpec, out: &Path, shard: Option<Shard>) -> (sweep::SweepResults, Vec<String>, Vec<String>) {
    let (started, skipped) = (Mutex::new(Vec::new()), Mutex::new(Vec::new()));
    let on_event = |e: &SweepEvent<'_>| match e {
        SweepEvent::Started { run, .. } => started.lock().unwrap().push(run.name.clone()),
        SweepEvent::Skipped { run } => skipped.lock().unwrap().push(run.name.clone()),
        SweepEvent::Finished { .. } => {}
    };
    let results = sweep::run(spec, out, BackendChoice::Cpu, 2, shard, &on_event).unwrap();
    (results, started.into_inner().unwrap(), skipped.into_inner().unwrap())
}

#[test]
fn a_two_point_sweep_runs_resumes_and_merges() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sweep");
    let (results, started, skipped) = run(&spec(), &out, None);
    assert_eq!(started.len(), 2);
    assert!(skipped.is_empty());
    assert_eq!(results.points.len(), 2);
    for p in &results.points {
        assert_eq!(p.seeds, 1, "{p:?}");
        assert!(p.validation_accuracy > 0.2 && p.validation_accuracy <= 1.0, "{p:?}");
        // The worst case per image is at most every attack's own figure.
        for (attack, acc) in &p.per_attack {
            assert!(p.robust_accuracy <= *acc, "{attack}: {p:?}");
        }
    }
    assert!(results.points.iter().any(|p| p.on_front));
    for file in ["sweep.json", "sweep.md", "pareto.png"] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let md = std::fs::read_to_string(out.join("sweep.md")).unwrap();
    assert!(md.contains("hebbian_rate=0.001") && md.contains("worst case per image"), "{md}");

    // Again: nothing is redone and the results are the same.
    let (again, started, skipped) = run(&spec(), &out, None);
    assert!(started.is_empty(), "redone: {started:?}");
    assert_eq!(skipped.len(), 2);
    assert_eq!(again.points, results.points);

    // A run whose result is lost but whose checkpoint is there continues from it (here: finished, so
    // it is only judged again) and measures the same.
    let first = &results.runs[0].name;
    let model = out.join("runs").join(first).join("model.ckpt");
    let trained_at = std::fs::metadata(&model).unwrap().modified().unwrap();
    std::fs::remove_file(out.join("runs").join(first).join(sweep::RUN_RESULT_FILE)).unwrap();
    let (again, started, _) = run(&spec(), &out, None);
    assert_eq!(started, std::slice::from_ref(first));
    assert_eq!(again.points, results.points);
    assert_eq!(std::fs::metadata(&model).unwrap().modified().unwrap(), trained_at, "the run was trained again");

    // Two shards, then merged: the same table.
    let (a, b) = (tmp.path().join("shard0"), tmp.path().join("shard1"));
    let (r0, s0, _) = run(&spec(), &a, Some(Shard { index: 0, count: 2 }));
    let (r1, s1, _) = run(&spec(), &b, Some(Shard { index: 1, count: 2 }));
    assert_eq!((s0.len(), s1.len(), r0.runs.len(), r1.runs.len()), (1, 1, 1, 1));
    let merged = sweep::merge(&[a, b], &tmp.path().join("merged")).unwrap();
    assert_eq!(merged.points, results.points, "shards merged differ from one sweep");

    // Two sweeps compared: the same point names stay apart, each labelled and grouped by its
    // directory, with one front over both (the same model twice: both copies of a front point).
    let compared = sweep::compare(&[out.clone(), tmp.path().join("merged")], &tmp.path().join("compared")).unwrap();
    assert_eq!(compared.points.len(), 2 * results.points.len());
    for (i, p) in compared.points.iter().enumerate() {
        let (group, original) = if i < results.points.len() {
            ("sweep", &results.points[i])
        } else {
            ("merged", &results.points[i - results.points.len()])
        };
        assert_eq!(p.group.as_deref(), Some(group));
        assert_eq!(p.point, format!("{group}: {}", original.point));
        assert_eq!((p.validation_accuracy, p.on_front), (original.validation_accuracy, original.on_front));
    }
    assert!(tmp.path().join("compared").join("pareto.png").is_file());
}

#[test]
fn bad_specs_are_refused_before_any_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("never");
    let refuse = |text: &str, needle: &str| {
        let spec: SweepSpec = toml::from_str(text).unwrap();
        let err = format!("{:#}", spec.plan(&out).unwrap_err());
        assert!(err.contains(needle), "{needle}: {err}");
    };
    refuse("[base]\ndataset = \"embedded\"\nvalidation = 600\nhebian-rate = 0.1", "hebian_rate");
    refuse("[base]\ndataset = \"embedded\"\nvalidation = 600\nhebian-rate = 0.1", "did you mean `hebbian-rate`?");
    refuse("[base]\ndataset = \"embedded\"", "validation");
    refuse("[base]\nvalidation = 600\nrule = \"bp\"\n[grid]\nhebbian-rate = [0.1]", "hebbian-rate");
    // An unknown attack is refused as the spec is read, naming it and the known ones (`AttackName`).
    let err = toml::from_str::<SweepSpec>("[base]\nvalidation = 600\n[eval]\nattacks = [\"pgdd\"]").unwrap_err();
    assert!(err.to_string().contains("pgdd") && err.to_string().contains("strongest"), "{err}");
    refuse("[base]\nvalidation = 600\n[eval]\nattacks = [\"transfer\"]", "needs a source model");
    // A setting a rule declares is refused for another rule, with its flag named.
    refuse(
        "[base]\nvalidation = 600\nrule = \"bio\"\n[grid]\nkh-rate = [0.1]",
        "`kh-rate`: it is a setting of the `kh` rule",
    );
    refuse("[base]\nvalidation = 600\nrule = \"kh\"\n[grid]\nkh-p = [1]", "kh-p");
    assert!(!out.exists());
    assert!("3/2".parse::<Shard>().is_err() && "1/0".parse::<Shard>().is_err());
    assert_eq!("1/4".parse::<Shard>().unwrap(), Shard { index: 1, count: 4 });
}

#[test]
fn the_pareto_front_is_the_set_of_undominated_points() {
    let points = [(0.85, 0.10), (0.78, 0.41), (0.80, 0.30), (0.79, 0.30), (0.85, 0.05), (0.70, 0.41), (f64::NAN, 0.9)];
    assert_eq!(pareto_front(&points), [true, true, true, false, false, false, false]);
    // Equal points do not dominate each other.
    assert_eq!(pareto_front(&[(0.5, 0.5), (0.5, 0.5)]), [true, true]);
    assert_eq!(pareto_front(&[]), Vec::<bool>::new());
}

#[test]
fn every_spec_shipped_in_sweeps_plans() {
    // The spec files the docs cite (sweeps/*.toml) parse and expand into valid runs.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sweeps");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let spec = SweepSpec::read(&path).unwrap();
            let runs = spec.plan(Path::new("unused")).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            assert!(!runs.is_empty(), "{}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 4, "only {checked} specs found in {}", dir.display());
}

/// Runs `text` into `out`; returns (started, skipped, the reasons given for redoing).
fn run_text(text: &str, out: &Path) -> (Vec<String>, Vec<String>, Vec<String>) {
    let spec: SweepSpec = toml::from_str(text).unwrap();
    let (started, skipped, reasons) = (Mutex::new(Vec::new()), Mutex::new(Vec::new()), Mutex::new(Vec::new()));
    let on_event = |e: &SweepEvent<'_>| match e {
        SweepEvent::Started { run, redo, .. } => {
            started.lock().unwrap().push(run.name.clone());
            reasons.lock().unwrap().extend(redo.clone());
        }
        SweepEvent::Skipped { run } => skipped.lock().unwrap().push(run.name.clone()),
        SweepEvent::Finished { result } => assert!(result.error.is_none(), "{result:?}"),
    };
    sweep::run(&spec, out, BackendChoice::Cpu, 1, None, &on_event).unwrap();
    (started.into_inner().unwrap(), skipped.into_inner().unwrap(), reasons.into_inner().unwrap())
}

/// A one-point sweep whose base epochs, point rate and eval eps are given.
fn one_point(epochs: usize, rate: f64, eps: f64) -> String {
    format!(
        "seeds = [0]\n[base]\ndataset = \"embedded\"\nvalidation = 600\nhidden = 20\nepochs = {epochs}\n\
         [[points]]\nname = \"p\"\nhebbian-rate = {rate}\n\
         [eval]\nrobust-images = 20\neps = {eps}\nattacks = [\"pgd\"]\nsteps = 2\n"
    )
}

#[test]
fn a_run_whose_settings_changed_is_redone_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sweep");
    let model = out.join("runs").join("p_seed=0").join("model.ckpt");
    let modified = || std::fs::metadata(&model).unwrap().modified().unwrap();
    let (started, _, _) = run_text(&one_point(1, 0.01, 0.1), &out);
    assert_eq!(started, ["p_seed=0"]);
    // Unchanged: reused.
    let (started, skipped, _) = run_text(&one_point(1, 0.01, 0.1), &out);
    assert!(started.is_empty() && skipped.len() == 1);
    let saved = std::fs::read_to_string(out.join("runs/p_seed=0/sweep-run.json")).unwrap();
    assert!(saved.contains("\"eps\": 0.1") && saved.contains("\"hebbian_rate\": 0.01"), "{saved}");

    // [base] epochs 1 → 2: redone, retrained, the reason names the setting.
    let before = modified();
    let (started, _, reasons) = run_text(&one_point(2, 0.01, 0.1), &out);
    assert_eq!(started.len(), 1);
    assert!(reasons.iter().any(|r| r.contains("epochs: 1 → 2")), "{reasons:?}");
    assert_ne!(modified(), before, "not retrained");

    // A point's hebbian-rate 0.01 → 0.02: redone.
    let (started, _, reasons) = run_text(&one_point(2, 0.02, 0.1), &out);
    assert_eq!(started.len(), 1);
    assert!(reasons.iter().any(|r| r.contains("hebbian_rate: 0.01 → 0.02")), "{reasons:?}");

    // [eval] eps 0.1 → 0.05: judged again (the trained model is kept), and sweep.md states 0.05.
    let before = modified();
    let (started, _, reasons) = run_text(&one_point(2, 0.02, 0.05), &out);
    assert_eq!(started.len(), 1);
    assert!(reasons.iter().any(|r| r.contains("eval.eps: 0.1 → 0.05")), "{reasons:?}");
    assert_eq!(modified(), before, "only the judging changed, yet the run was trained again");
    let md = std::fs::read_to_string(out.join("sweep.md")).unwrap();
    assert!(md.contains("first 20 of them at L∞ eps 0.05") && md.contains("PGD steps 2"), "{md}");
    let saved = std::fs::read_to_string(out.join("runs/p_seed=0/sweep-run.json")).unwrap();
    assert!(saved.contains("\"eps\": 0.05"), "{saved}");

    // A result saved without a key (an older binary) is redone, not trusted.
    let path = out.join("runs/p_seed=0/sweep-run.json");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    json.as_object_mut().unwrap().remove("key");
    std::fs::write(&path, serde_json::to_string(&json).unwrap()).unwrap();
    let (started, _, reasons) = run_text(&one_point(2, 0.02, 0.05), &out);
    assert_eq!(started.len(), 1);
    assert!(reasons.iter().any(|r| r.contains("does not record")), "{reasons:?}");
}
