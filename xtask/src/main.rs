//! `cargo xtask`: the project's task runner (an alias in `.cargo/config.toml`).
//!
//! - `cargo xtask ci`: format check, clippy with warnings denied, every test, docs with warnings denied.
//! - `cargo xtask bench [--quick] [--scaling] [--threads] [--no-criterion] [--no-macro] [--vs-torch] [--conv]`:
//!   the criterion benchmarks of `benches/`, then the macro benchmarks (`bio-benches`' `macro` binary:
//!   host ISA, honest ceiling, one table, JSON under `target/bench/`); `--scaling` adds the width and
//!   batch sweeps, `--threads` the 1-thread comparison, `--vs-torch` the side-by-side PyTorch anchor
//!   (`benches/vs_torch.py`, only where PyTorch imports; never in CI); `--no-macro` skips the macro
//!   binary; `--conv` runs only the conv budget of the macro binary (issue 33: a `conv` epoch
//!   against the `bio` MLP epoch; JSON `target/bench/conv.json`), no criterion benches.

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Instant;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

/// Runs `cargo args…` in the workspace root, printing the command; Err names the failed step.
fn cargo(args: &[&str], envs: &[(&str, &str)]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    println!("\n==> cargo {}", args.join(" "));
    let start = Instant::now();
    let status = Command::new(&cargo)
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(workspace_root())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    println!("<== {:.1}s", start.elapsed().as_secs_f64());
    if status.success() { Ok(()) } else { Err(format!("`cargo {}` failed ({status})", args.join(" "))) }
}

fn ci() -> Result<(), String> {
    cargo(&["fmt", "--all", "--", "--check"], &[])?;
    cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"], &[])?;
    cargo(&["test", "--workspace"], &[])?;
    cargo(&["doc", "--workspace", "--no-deps"], &[("RUSTDOCFLAGS", "-D warnings")])?;
    Ok(())
}

/// Flags of `cargo xtask bench`.
#[derive(Clone, Copy, Debug, Default)]
struct BenchFlags {
    /// Seconds-long smoke run: shortest criterion settings, tiny subset and width in the macro run.
    quick: bool,
    /// Also the scaling sweeps (hidden width, batch size) of the macro binary.
    scaling: bool,
    /// Also the 1-thread vs default-threads comparison of the macro binary.
    threads: bool,
    /// Skip the criterion micro benchmarks (macro benchmarks only).
    no_criterion: bool,
    /// Also `bp` epoch and PGD-40 against PyTorch, same run (skipped where PyTorch is missing).
    vs_torch: bool,
    /// Skip the macro benchmarks (with `--no-criterion --vs-torch`: the PyTorch anchor alone).
    no_macro: bool,
    /// Only the conv budget of the macro binary (no criterion benches).
    conv: bool,
}

fn bench(flags: BenchFlags) -> Result<(), String> {
    if flags.conv {
        let mut args = vec!["run", "--release", "--quiet", "-p", "bio-benches", "--bin", "macro", "--", "--conv"];
        if flags.quick {
            args.push("--quick");
        }
        cargo(&args, &[])?;
        println!("\nran: the conv budget of `bio-benches`' macro binary (JSON in target/bench/)");
        return Ok(());
    }
    if !flags.no_criterion {
        let mut args = vec!["bench", "-p", "bio-benches", "--bench", "training", "--"];
        if flags.quick {
            // Seconds-long smoke run: criterion's shortest settings.
            args.extend(["--warm-up-time", "0.2", "--measurement-time", "0.5", "--sample-size", "10"]);
        } else {
            // Shortened but stable settings: the table below is the headline, these are the details.
            args.extend(["--warm-up-time", "1", "--measurement-time", "3"]);
        }
        cargo(&args, &[])?;
    }
    let mut args = vec!["run", "--release", "--quiet", "-p", "bio-benches", "--bin", "macro", "--"];
    if flags.quick {
        args.push("--quick");
    }
    if flags.scaling {
        args.push("--scaling");
    }
    if !flags.no_macro {
        cargo(&args, &[])?;
    }
    if flags.threads {
        let mut args = vec!["run", "--release", "--quiet", "-p", "bio-benches", "--bin", "macro", "--", "--threads"];
        if flags.quick {
            args.push("--quick");
        }
        cargo(&args, &[])?;
    }
    if flags.vs_torch {
        vs_torch()?;
    }
    let mut ran = Vec::new();
    if !flags.no_criterion {
        ran.push("criterion benches of `bio-benches` (target/criterion/)");
    }
    if !flags.no_macro {
        ran.push("its `macro` binary (JSON in target/bench/)");
    }
    if flags.vs_torch {
        ran.push("the PyTorch anchor (models in target/bench/vs-torch/)");
    }
    println!("\nran: {}", if ran.is_empty() { "nothing".into() } else { ran.join(", ") });
    Ok(())
}

/// The Python that has PyTorch: `$BIO_TORCH_PYTHON`, else `python3`, if `import torch` works there.
fn torch_python() -> Option<String> {
    let python = std::env::var("BIO_TORCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python).args(["-c", "import torch"]).output().is_ok_and(|o| o.status.success());
    ok.then_some(python)
}

/// The number after `"key":` in a flat JSON text (the outputs read here are one-level objects).
fn json_number(text: &str, key: &str) -> Option<f64> {
    let at = text.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = text[at..].trim_start().strip_prefix(':')?.trim_start();
    let end = rest.find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c))).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Runs `cmd`, returning its stdout and wall seconds; Err names the command.
fn timed(cmd: &mut Command, what: &str) -> Result<(String, f64), String> {
    let start = Instant::now();
    let out = cmd.output().map_err(|e| format!("cannot run {what}: {e}"))?;
    let secs = start.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!("{what} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr)));
    }
    Ok((String::from_utf8_lossy(&out.stdout).into_owned(), secs))
}

/// The side-by-side anchor: at 1 and 2 threads, one `bp` epoch (784-2000-10, Adam, batch 100, full
/// Fashion-MNIST), PGD-40 L∞ (eps 0.1, step 0.01, batch 500, the 10 000 test images) and the episodic
/// few-shot protocol (a model of classes 0-4, 600 episodes at 1 and 5 shots on the novel classes) by
/// the `bio` binary and by `benches/vs_torch.py`, alternating which goes first, then the ratios.
fn vs_torch() -> Result<(), String> {
    let Some(python) = torch_python() else {
        println!(
            "\n--vs-torch: skipped (`import torch` fails in `python3`; set BIO_TORCH_PYTHON to a Python with PyTorch)"
        );
        return Ok(());
    };
    cargo(&["build", "--release", "--quiet", "-p", "bio-cli"], &[])?;
    let root = workspace_root();
    let target = std::env::var("CARGO_TARGET_DIR").map_or_else(|_| root.join("target"), PathBuf::from);
    let bio = target.join("release").join("bio");
    let dir = root.join("target").join("bench").join("vs-torch");
    let script = root.join("benches").join("vs_torch.py");
    let mut rows = Vec::new();
    for threads in [1usize, 2] {
        let t = threads.to_string();
        let model = dir.join(format!("bp-{threads}"));
        // biorule: `train_seconds` of a one-epoch `bio train`, and the wall times of the attack and
        // of the few-shot episodes (on a second model, trained on the base classes 0-4).
        let ours = || -> Result<(f64, f64, f64), String> {
            println!("==> bio train --rule bp --epochs 1 (RAYON_NUM_THREADS={t})");
            let _ = std::fs::remove_dir_all(&model);
            let mut train = Command::new(&bio);
            train.args(["train", "--rule", "bp", "--hidden", "2000", "--batch", "100", "--epochs", "1", "--seed", "0"]);
            train.arg("--out").arg(&model).arg("--json").env("RAYON_NUM_THREADS", &t);
            timed(&mut train, "bio train")?;
            let metrics = std::fs::read_to_string(model.join("metrics.json")).map_err(|e| e.to_string())?;
            let epoch = json_number(&metrics, "train_seconds").ok_or("no train_seconds in metrics.json")?;
            println!("==> bio eval robustness --attack pgd --eps 0.1 (RAYON_NUM_THREADS={t})");
            let mut attack = Command::new(&bio);
            attack.args(["eval", "robustness", "--attack", "pgd", "--eps", "0.1", "--model"]).arg(&model);
            attack.env("RAYON_NUM_THREADS", &t);
            let (_, pgd) = timed(&mut attack, "bio eval robustness")?;
            println!("==> bio train --rule bp --classes 0-4, then bio eval fewshot (RAYON_NUM_THREADS={t})");
            let base = dir.join(format!("bp-base-{threads}"));
            let _ = std::fs::remove_dir_all(&base);
            let mut train = Command::new(&bio);
            train.args(["train", "--rule", "bp", "--hidden", "2000", "--batch", "100", "--epochs", "1", "--seed", "0"]);
            train.args(["--classes", "0-4", "--out"]).arg(&base).arg("--json").env("RAYON_NUM_THREADS", &t);
            timed(&mut train, "bio train --classes 0-4")?;
            let mut episodes = Command::new(&bio);
            episodes.args(["eval", "fewshot", "--model"]).arg(&base).env("RAYON_NUM_THREADS", &t);
            let (_, fewshot) = timed(&mut episodes, "bio eval fewshot")?;
            Ok((epoch, pgd, fewshot))
        };
        let torch = || -> Result<(f64, f64, f64), String> {
            println!("==> {python} benches/vs_torch.py --threads {t}");
            let mut cmd = Command::new(&python);
            cmd.arg(&script).args(["--threads", &t]);
            let (out, _) = timed(&mut cmd, "vs_torch.py")?;
            println!("{}", out.trim());
            let epoch = json_number(&out, "bp_epoch_s").ok_or("no bp_epoch_s from vs_torch.py")?;
            let pgd = json_number(&out, "pgd40_s").ok_or("no pgd40_s from vs_torch.py")?;
            Ok((epoch, pgd, json_number(&out, "fewshot_s").ok_or("no fewshot_s from vs_torch.py")?))
        };
        // Alternate which side runs first, so a drifting load does not always favour one.
        let (mine, theirs) = if threads % 2 == 1 {
            let mine = ours()?;
            (mine, torch()?)
        } else {
            let theirs = torch()?;
            (ours()?, theirs)
        };
        rows.push((threads, "bp epoch", mine.0, theirs.0));
        rows.push((threads, "PGD-40, 10 000 images", mine.1, theirs.1));
        rows.push((threads, "few-shot, 2×600 episodes", mine.2, theirs.2));
    }
    println!("\nbiorule against PyTorch (CPU), same host, same run (ratio < 1: biorule faster):");
    println!("| work | threads | biorule s | PyTorch s | biorule / PyTorch |");
    println!("|---|---:|---:|---:|---:|");
    for (threads, name, mine, theirs) in &rows {
        println!("| {name} | {threads} | {mine:.2} | {theirs:.2} | {:.2}× |", mine / theirs);
    }
    println!(
        "(biorule's PGD and few-shot times are whole processes (`bio eval robustness`, `bio eval fewshot`): loading the\n model and test set included; PyTorch's are the attack loop (clean predictions included) and the features plus\n episodes alone. Both attack their own bp model just trained; few-shot runs on a bp model of classes 0-4, novel 5-9.\n biorule's few-shot also scores the hidden drive when the model has one.)"
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => {
            let has = |flag: &str| args.iter().any(|a| a == flag);
            bench(BenchFlags {
                quick: has("--quick"),
                scaling: has("--scaling"),
                threads: has("--threads"),
                no_criterion: has("--no-criterion"),
                vs_torch: has("--vs-torch"),
                no_macro: has("--no-macro"),
                conv: has("--conv"),
            })
        }
        _ => {
            eprintln!(
                "usage: cargo xtask <ci | bench [--quick] [--scaling] [--threads] [--no-criterion] [--no-macro] [--vs-torch] [--conv]>"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
