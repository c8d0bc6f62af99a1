//! `cargo xtask`: the project's task runner (an alias in `.cargo/config.toml`).
//!
//! - `cargo xtask ci`: format check, clippy with warnings denied, every test, docs with warnings denied.
//! - `cargo xtask bench [--quick] [--scaling] [--threads] [--no-criterion]`: the criterion benchmarks of
//!   `benches/`, then the macro benchmarks (`bio-benches`' `macro` binary: one table, JSON under
//!   `target/bench/`); `--scaling` adds the width and batch sweeps, `--threads` the 1-thread comparison.

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
}

fn bench(flags: BenchFlags) -> Result<(), String> {
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
    cargo(&args, &[])?;
    if flags.threads {
        let mut args = vec!["run", "--release", "--quiet", "-p", "bio-benches", "--bin", "macro", "--", "--threads"];
        if flags.quick {
            args.push("--quick");
        }
        cargo(&args, &[])?;
    }
    println!(
        "\nran: criterion benches of `bio-benches` (target/criterion/) and its `macro` binary (JSON in target/bench/)"
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
            })
        }
        _ => {
            eprintln!("usage: cargo xtask <ci | bench [--quick] [--scaling] [--threads] [--no-criterion]>");
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
