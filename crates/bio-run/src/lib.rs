//! Training sessions and evaluation entry points of biorule: the one library every front end (the
//! `bio` CLI, sweeps, Python bindings, your own Rust) drives. It owns the model directory's layout,
//! checkpointing and resume, validation, divergence and memory checks, and the evaluation commands'
//! work; it never prints. Front ends parse settings into a [`SessionSpec`], run a [`Session`] with an
//! [`Observer`], and present what comes back.
//!
#![doc = include_str!("../README.md")]
// The spec's doc comments double as `--help` text, where `[bio]`/`[bp]` mark rule-specific flags.
#![allow(rustdoc::broken_intra_doc_links)]

pub mod backend;
pub mod continual;
pub mod data;
pub mod eval;
pub mod files;
pub mod names;
pub mod oneshot;
pub mod robustness;
pub mod session;
pub mod settings;
pub mod spec;
pub mod sweep;

pub use backend::{BackendChoice, Resolved, resolve};
pub use data::{Splits, model_test_set, test_set_for};
pub use files::{
    EpochLog, Provenance, TrainMetrics, load_model, model_crc32, read_saved, refuse_finished_resume, unfinished_note,
};
pub use session::{EpochFailed, Event, Observer, Outcome, Resumable, Session, SessionBuilder, StopFlag, Trained};
pub use settings::RuleSettings;
pub use spec::{DataSpec, RuleName, RuleOptions, SessionSpec};

/// An error as one line, the way every front end shows it: the outermost context and its causes
/// joined by `: `, skipping a cause whose text the line already holds (error types that print their
/// source in their own message would repeat it).
pub fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain().map(|c| c.to_string()) {
        if line.is_empty() {
            line = cause;
        } else if !line.contains(&cause) {
            line = format!("{line}: {cause}");
        }
    }
    line.replace('\n', " ")
}

/// Images per forward pass when evaluating a model (accuracy, validation, biology, few-shot features).
pub const EVAL_BATCH: usize = 1000;

/// The examples of the workspace's README are compiled and run as tests of this crate.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeExamples;
