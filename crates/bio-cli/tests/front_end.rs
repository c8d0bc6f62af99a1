//! How the `bio` front end behaves around a session: a closed stdout pipe ends it quietly, Ctrl-C
//! stops training with a resumable checkpoint, `bio demo --out` leaves resumable runs, and logs get
//! one plain line per epoch.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::bio;

fn train_small(dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["train", "--dataset", "embedded", "--hidden", "50", "--epochs", "2", "--out"];
    args.push(dir.to_str().unwrap());
    args.extend(extra);
    bio(&args)
}

#[test]
fn a_closed_stdout_pipe_ends_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    assert!(train_small(&dir, &["--quiet"]).status.success());
    let d = dir.to_str().unwrap();
    for args in
        [vec!["inspect", "--model", d], vec!["inspect", "--model", d, "--json"], vec!["eval", "accuracy", "--model", d]]
    {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bio"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Close the reading end before the command has loaded its model and written anything.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {err}", out.status);
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{args:?}: {err}");
    }
}

#[test]
fn ctrl_c_stops_with_a_resumable_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let args = ["train", "--dataset", "embedded", "--hidden", "100", "--epochs", "40", "--out", dir.to_str().unwrap()];
    let child = Command::new(env!("CARGO_BIN_EXE_bio"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !dir.join("state.ckpt").exists() {
        assert!(Instant::now() < deadline, "no checkpoint after 120 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted") && err.contains("bio train --resume"), "{err}");
    assert!(!dir.join("metrics.json").exists(), "an interrupted run has no final metrics");
    let state = bio_data::load_state(&dir).expect("the checkpoint is intact");
    assert!(state.epoch < 40, "stopped before the end");
    let resumed = bio(&["train", "--resume", dir.to_str().unwrap(), "--quiet", "--json"]);
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    assert!(dir.join("metrics.json").exists());
}

#[test]
fn demo_runs_can_be_resumed() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let args = ["demo", "--dataset", "embedded", "--hidden", "50", "--bio-epochs", "1", "--bp-epochs", "1", "--quiet"];
    let mut args = args.to_vec();
    args.extend(["--out", out.to_str().unwrap()]);
    let demo = bio(&args);
    assert!(demo.status.success(), "{}", String::from_utf8_lossy(&demo.stderr));
    for rule in ["bio", "bp"] {
        let dir = out.join(rule);
        let config = std::fs::read_to_string(dir.join("config.json")).expect("config.json written");
        assert!(config.contains(&format!("\"rule\": \"{rule}\"")), "{config}");
        // A finished demo run reads back as a run (config and state), and there is nothing to resume.
        common::fails_with_one_line(&["train", "--resume", dir.to_str().unwrap()], "holds a finished run (1 of 1");
        // Killed before its metrics were written, it resumes (and writes them).
        std::fs::remove_file(dir.join("metrics.json")).unwrap();
        let resumed = bio(&["train", "--resume", dir.to_str().unwrap(), "--quiet", "--json"]);
        assert!(resumed.status.success(), "{rule}: {}", String::from_utf8_lossy(&resumed.stderr));
        assert!(dir.join("metrics.json").is_file());
    }
}

#[test]
fn logs_get_one_line_per_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let out = train_small(&tmp.path().join("m"), &[]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("training `bio` on"), "{err}");
    for epoch in ["epoch 1/2: loss", "epoch 2/2: loss"] {
        assert_eq!(err.matches(epoch).count(), 1, "{err}");
    }
    let quiet = train_small(&tmp.path().join("q"), &["--quiet"]);
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("epoch 1/2"));
}

#[test]
fn settings_of_the_other_rule_are_refused_and_negative_numbers_parse() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("never");
    let o = out.to_str().unwrap();
    let cases: [(&[&str], &str); 13] = [
        // A peer rule's declared settings: refused for another rule, range-checked, typed.
        (&["--rule", "bio", "--kh-p", "3"], "`kh-p`: it is a setting of the `kh` rule, and this run trains `bio`"),
        (&["--rule", "kh", "--softhebb-beta", "3"], "`softhebb-beta`: it is a setting of the `softhebb` rule"),
        (&["--rule", "kh", "--kh-p", "1"], "kh-p"),
        (&["--rule", "kh", "--kh-p", "many"], "invalid value for `kh-p`"),
        (&["--rule", "softhebb", "--hebbian-rate", "0.1"], "`hebbian-rate`: it is a setting of the `bio` rule"),
        (&["--rule", "bp", "--hebbian-rate", "0.01"], "hebbian-rate"),
        (&["--rule", "bp", "--ablate", "homeostasis"], "ablate"),
        (&["--rule", "bio", "--optimizer", "momentum"], "optimizer"),
        (&["--rule", "bio", "--lr", "0.1"], "lr"),
        (&["--inhibition-gain", "5"], "inhibition-gain"),
        (&["--rule", "bp", "--momentum", "0.5"], "momentum"),
        // Negative values reach the rule's range checks instead of "unexpected argument".
        (&["--rule", "bp", "--lr", "-1"], "lr"),
        (&["--hebbian-rate", "-5"], "hebbian"),
    ];
    for (flags, needle) in cases {
        let mut args = vec!["train", "--dataset", "embedded", "--out", o];
        args.extend(flags);
        let failed = common::fails_with_one_line(&args, needle);
        let err = String::from_utf8_lossy(&failed.stderr);
        assert!(!err.contains("unexpected argument"), "{flags:?}: {err}");
        assert!(!out.exists(), "{flags:?} left a directory behind");
    }
}

#[test]
fn every_registered_rule_trains_and_is_evaluated_exported_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let help = String::from_utf8_lossy(&bio(&["train", "--help"]).stdout).to_string();
    for needle in ["kh:", "softhebb:", "--kh-p", "--softhebb-beta"] {
        assert!(help.contains(needle), "`bio train --help` lacks {needle}");
    }
    for rule in ["kh", "softhebb"] {
        let dir = tmp.path().join(rule);
        let done = train_small(&dir, &["--rule", rule, "--checkpoint-every", "30"]);
        assert!(done.status.success(), "{rule}: {}", String::from_utf8_lossy(&done.stderr));
        let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
        assert!(config.contains(&format!("\"rule\": \"{rule}\"")), "{config}");
        let d = dir.to_str().unwrap();
        for args in [
            &["eval", "accuracy", "--model", d][..],
            &[
                "eval",
                "robustness",
                "--model",
                d,
                "--attack",
                "apgd-ce",
                "--eps",
                "0.1",
                "--limit",
                "20",
                "--iterations",
                "5",
            ],
            &["export", "--model", d, "--out", tmp.path().join(format!("{rule}.safetensors")).to_str().unwrap()],
            &["report", "--out", tmp.path().join(format!("{rule}-report")).to_str().unwrap(), d],
        ] {
            let o = bio(args);
            assert!(o.status.success(), "{rule} {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        }
    }
    // Two runs of different rules in one report: their receptive fields side by side.
    let both = tmp.path().join("both");
    let o = bio(&[
        "report",
        "--out",
        both.to_str().unwrap(),
        tmp.path().join("kh").to_str().unwrap(),
        tmp.path().join("softhebb").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(both.join("receptive-fields-side-by-side.png").is_file());
}

#[test]
fn a_finished_bp_run_extends_to_more_epochs_and_bio_says_why_not() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |dir: &Path, rule: &str, epochs: &str| {
        let args = ["train", "--rule", rule, "--dataset", "embedded", "--hidden", "40", "--epochs", epochs, "--quiet"];
        let mut args = args.to_vec();
        args.extend(["--out", dir.to_str().unwrap()]);
        let out = bio(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    let (short, long) = (tmp.path().join("short"), tmp.path().join("long"));
    run(&short, "bp", "1");
    run(&long, "bp", "2");
    let out = bio(&["train", "--resume", short.to_str().unwrap(), "--epochs", "2", "--quiet"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (a, b) = (bio_data::load_model(&short).unwrap(), bio_data::load_model(&long).unwrap());
    assert_eq!(a.epochs, 2);
    assert_eq!(a.model, b.model, "1 epoch extended to 2 differs from 2 epochs straight");

    let bio_dir = tmp.path().join("bio");
    run(&bio_dir, "bio", "1");
    common::fails_with_one_line(&["train", "--resume", bio_dir.to_str().unwrap(), "--epochs", "2"], "anneals");
}

#[test]
fn the_confusion_matrix_names_the_trained_classes_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("base");
    let args =
        ["train", "--rule", "bp", "--dataset", "embedded", "--hidden", "40", "--epochs", "1", "--classes", "0-4"];
    let mut args = args.to_vec();
    args.extend(["--quiet", "--out", dir.to_str().unwrap()]);
    assert!(bio(&args).status.success());
    let out = bio(&["eval", "accuracy", "--model", dir.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("0 T-shirt/top") && text.contains("4 Coat") && text.contains("→4"), "{text}");
    assert!(!text.contains("Sneaker") && !text.contains("→5"), "untrained classes listed: {text}");
}

#[test]
fn completions_are_generated_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = bio(&["completions", shell]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("robustness") && text.contains("hebbian-rate"),
            "{shell}: {text}"
        );
    }
}

#[test]
fn retraining_into_a_used_directory_needs_force_and_clears_old_results() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    assert!(train_small(&dir, &["--quiet"]).status.success());
    let d = dir.to_str().unwrap();
    assert!(bio(&["eval", "metrics", "--model", d, "--json"]).status.success());
    assert!(dir.join("biology.json").exists());
    let before = std::fs::read(dir.join("model.ckpt")).unwrap();
    common::fails_with_one_line(
        &["train", "--dataset", "embedded", "--hidden", "50", "--epochs", "1", "--out", d],
        "--force",
    );
    assert_eq!(std::fs::read(dir.join("model.ckpt")).unwrap(), before, "a refused run changed the model");
    let forced = train_small(&dir, &["--quiet", "--force", "--seed", "4"]);
    assert!(forced.status.success(), "{}", String::from_utf8_lossy(&forced.stderr));
    assert!(!dir.join("biology.json").exists(), "a result of the replaced model survived");
    assert_ne!(std::fs::read(dir.join("model.ckpt")).unwrap(), before);
}

#[test]
fn a_diverged_run_names_its_settings_and_leaves_no_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("diverged");
    let args = ["train", "--rule", "bp", "--dataset", "embedded", "--hidden", "50", "--lr=1e6", "--batch", "50"];
    let mut args = args.to_vec();
    args.extend(["--quiet", "--out", out.to_str().unwrap()]);
    let failed = common::fails_with_one_line(&args, "diverged");
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(err.contains("--lr (this run: 1000000)") && err.contains("--batch (this run: 50)"), "{err}");
    assert!(!err.contains("lower the learning rate"), "{err}");
    assert!(!out.exists(), "a directory holding only config.json was left behind");
}

#[test]
fn threads_sets_the_pool_and_the_result_does_not_depend_on_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    for (dir, n) in [(&one, "1"), (&two, "2")] {
        let out = train_small(dir, &["--quiet", "--threads", n]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let banner = train_small(&tmp.path().join("banner"), &["--threads", "1"]);
    assert!(
        String::from_utf8_lossy(&banner.stderr).contains("cpu (1 thread)"),
        "{}",
        String::from_utf8_lossy(&banner.stderr)
    );
    let (a, b) = (bio_data::load_model(&one).unwrap(), bio_data::load_model(&two).unwrap());
    assert_eq!(a.model, b.model);
    common::fails_with_one_line(&["train", "--threads", "0", "--dataset", "embedded", "--out", "x"], "threads");
}

#[test]
fn an_linf_radius_above_one_is_refused() {
    common::fails_with_one_line(&["eval", "robustness", "--model", "no-such-dir", "--eps", "2"], "above 1");
}

#[test]
fn quiet_is_accepted_by_every_subcommand() {
    let subcommands: [&[&str]; 13] = [
        &["demo"],
        &["train"],
        &["eval", "accuracy"],
        &["eval", "robustness"],
        &["eval", "fewshot"],
        &["eval", "metrics"],
        &["inspect"],
        &["report"],
        &["export"],
        &["sweep"],
        &["completions"],
        &["eval"],
        &[],
    ];
    for sub in subcommands {
        let args: Vec<&str> = sub.iter().copied().chain(["--help"]).collect();
        let out = bio(&args);
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("-q, --quiet"), "bio {}: {help}", sub.join(" "));
    }
}

/// The lines of `stderr` that are neither warnings nor errors.
fn informational(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| !l.starts_with("warning:") && !l.starts_with("error:"))
        .map(str::to_string)
        .collect()
}

#[test]
fn quiet_silences_progress_but_keeps_results() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    let trained = train_small(&dir, &["--quiet"]);
    assert!(trained.status.success());
    assert_eq!(informational(&trained.stderr), Vec::<String>::new());
    assert!(String::from_utf8_lossy(&trained.stdout).contains("test accuracy"), "results still print");
    let d = dir.to_str().unwrap();
    let few_labels = [
        "eval",
        "fewshot",
        "--protocol",
        "few-labels",
        "--rule",
        "bp",
        "--shots",
        "1",
        "--seeds",
        "1",
        "--epochs",
        "1",
        "--dataset",
        "embedded",
        "--hidden",
        "20",
    ];
    let commands: [&[&str]; 2] =
        [&["eval", "robustness", "--model", d, "--attack", "strongest", "--eps", "0.1", "--limit", "10"], &few_labels];
    for args in commands {
        let loud = bio(args);
        assert!(loud.status.success(), "{args:?}: {}", String::from_utf8_lossy(&loud.stderr));
        assert!(!informational(&loud.stderr).is_empty(), "{args:?} says what it does without --quiet");
        let quiet_args: Vec<&str> = args.iter().copied().chain(["--quiet"]).collect();
        let quiet = bio(&quiet_args);
        assert!(quiet.status.success());
        assert_eq!(informational(&quiet.stderr), Vec::<String>::new(), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&quiet.stdout).lines().count(),
            String::from_utf8_lossy(&loud.stdout).lines().count(),
            "{args:?}: the same results"
        );
    }
}

#[test]
fn the_report_leaves_out_results_of_another_model() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    assert!(train_small(&dir, &["--quiet"]).status.success());
    let d = dir.to_str().unwrap();
    let robustness =
        ["eval", "robustness", "--model", d, "--attack", "fgsm", "--eps", "0.1", "--limit", "20", "--quiet"];
    assert!(bio(&robustness).status.success());
    assert!(bio(&["eval", "metrics", "--model", d, "--limit", "50", "--quiet"]).status.success());
    let report = |name: &str| {
        let out_dir = tmp.path().join(name);
        let out = bio(&["report", d, "--out", out_dir.to_str().unwrap(), "--quiet"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        (std::fs::read_to_string(out_dir.join("report.md")).unwrap(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let (honest, _) = report("honest");
    assert!(honest.contains("| fgsm |") && !honest.contains("left out"), "{honest}");
    assert!(honest.contains("biology.json, 50 test images"), "{honest}");

    // As if the model had been retrained into the directory after these results were measured.
    for file in ["robustness.json", "biology.json"] {
        let path = dir.join(file);
        let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let recorded = json["model_crc32"].as_u64().expect("the checksum is recorded");
        json["model_crc32"] = serde_json::json!(recorded ^ 1);
        std::fs::write(&path, serde_json::to_string(&json).unwrap()).unwrap();
    }
    let (stale, stderr) = report("stale");
    assert!(!stale.contains("| fgsm |"), "results of another model are left out:\n{stale}");
    assert!(stale.contains("robustness.json left out: measured on another model"), "{stale}");
    assert!(stale.contains("biology.json left out") && !stale.contains("biology.json, 50 test images"), "{stale}");
    assert!(stderr.contains("warning:") && stderr.contains("left out"), "{stderr}");
}

#[test]
fn the_epochs_help_names_every_rules_default() {
    // Once "10 for both rules", with four rules registered and kh running 20.
    let text = bio_run::spec::default_epochs_text();
    for rule in bio_core::rules::rules() {
        let group = text.split("; ").find(|g| g.split([' ', ',']).any(|w| w == rule.name)).unwrap_or_default();
        assert!(group.starts_with(&format!("{} for ", rule.default_epochs)), "{}: {text}", rule.name);
    }
    for args in [&["train", "--help"][..], &["eval", "fewshot", "--help"]] {
        let help = String::from_utf8_lossy(&bio(args).stdout).split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(help.contains(&text) && !help.contains("both rules"), "bio {}: {help}", args.join(" "));
    }
    let help = String::from_utf8_lossy(&bio(&["eval", "fewshot", "--help"]).stdout).to_string();
    let minimum = format!("at least {} updates", bio_run::eval::MIN_LABELLED_UPDATES);
    assert!(help.split_whitespace().collect::<Vec<_>>().join(" ").contains(&minimum), "{help}");
}
