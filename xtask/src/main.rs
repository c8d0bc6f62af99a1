//! `cargo xtask`: the project's task runner (an alias in `.cargo/config.toml`).
//!
//! - `cargo xtask ci`: format check, clippy with warnings denied, every test, docs with warnings denied.
//! - `cargo xtask bench [--quick]`: the criterion benchmarks of `benches/`, then a summary of what ran.

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

fn bench(quick: bool) -> Result<(), String> {
    let mut args = vec!["bench", "-p", "bio-benches", "--"];
    if quick {
        // Seconds-long smoke run: criterion's shortest settings.
        args.extend(["--warm-up-time", "0.2", "--measurement-time", "0.5", "--sample-size", "10"]);
    }
    cargo(&args, &[])?;
    println!("\nran: criterion benches of crates `bio-benches` (benches/): see target/criterion/ for the reports");
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => bench(args.iter().any(|a| a == "--quick")),
        _ => {
            eprintln!("usage: cargo xtask <ci | bench [--quick]>");
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
