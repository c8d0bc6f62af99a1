//! Helpers shared by the integration tests of the `bio` binary (each test file uses a subset).
#![allow(dead_code)]

use std::process::{Command, Output};

/// Runs the `bio` binary built for these tests.
pub fn bio(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bio")).args(args).output().expect("the bio binary runs")
}

/// Runs `bio args` and requires failure with exactly one `error:` line, printed last, containing
/// `needle` (other lines, such as a progress banner, may come before it). Returns the output.
pub fn fails_with_one_line(args: &[&str], needle: &str) -> Output {
    let out = bio(args);
    assert!(!out.status.success(), "{args:?} should fail");
    let err = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{args:?}: one error line expected, got:\n{err}");
    assert_eq!(err.trim_end().lines().last(), Some(errors[0]), "{args:?}: the error comes last:\n{err}");
    assert!(errors[0].contains(needle), "{args:?}: `{needle}` not in: {err}");
    out
}
