//! `bio train`: flags → [`SessionSpec`] → [`Session`] → printing.

use std::path::Path;

use anyhow::Result;
use bio_run::{Outcome, Resumable, Session, TrainMetrics};

use crate::cli::TrainArgs;
use crate::output::{outln, percent, print_json};
use crate::progress::TrainProgress;

/// Exit status of a run stopped by Ctrl-C (128 + SIGINT), as shells expect.
const INTERRUPTED_EXIT: i32 = 130;

/// `bio train`.
pub fn run(args: TrainArgs) -> Result<()> {
    let quiet = crate::output::quiet() || args.json;
    let session = match &args.resume {
        Some(dir) => {
            let mut saved = Resumable::read(dir)?;
            let explicit = explicit_train_flags();
            if let Some(epochs) = args.spec.options.epochs
                && explicit.iter().any(|id| id == "epochs")
                && epochs != saved.spec.epochs()
            {
                saved.extend_to(epochs)?;
            }
            saved.check_overrides(&args.spec, &explicit)?;
            saved.spec.backend = args.spec.backend;
            if explicit.iter().any(|id| id == "checkpoint_every") {
                saved.spec.checkpoint_every = args.spec.checkpoint_every;
            }
            Session::resuming(saved).build()?
        }
        None => Session::new(args.spec.clone())?,
    };
    if let Some(note) = session.backend_note()
        && !quiet
    {
        eprintln!("{note}");
    }
    let out = session.spec().out.clone().expect("clap requires --out without --resume");
    if !quiet {
        print_banner(&session);
    }
    let stop = session.stop_flag();
    // First Ctrl-C: finish the batch and checkpoint; a second one exits at once.
    let _ = ctrlc::set_handler(move || {
        if stop.is_set() {
            std::process::exit(INTERRUPTED_EXIT);
        }
        stop.stop();
    });
    let mut progress = TrainProgress::new(quiet);
    match session.run(&mut progress)? {
        Outcome::Finished(trained) => print_result(&trained.metrics, &out, args.json),
        Outcome::Interrupted { epochs_done, batches_done, .. } => {
            progress.clear();
            eprintln!(
                "interrupted after {epochs_done} epochs and {batches_done} batches; the checkpoint in {} is intact; \
                 resume with `bio train --resume {}`",
                out.display(),
                out.display()
            );
            std::process::exit(INTERRUPTED_EXIT);
        }
    }
}

fn print_banner(session: &Session) {
    let splits = session.splits();
    let resumed = match session.resumed_state() {
        Some(s) => format!(", resuming at batch {} of epoch {}", s.progress.batches, s.epoch + 1),
        None => String::new(),
    };
    let held = match &splits.validation {
        Some(v) => format!(" / {} validation", v.len()),
        None => String::new(),
    };
    eprintln!(
        "training `{}` on {} ({} train{held} / {} test images) with {}{resumed}",
        session.spec().rule.name(),
        session.data().source,
        splits.train.len(),
        splits.test.len(),
        session.backend().name()
    );
}

fn print_result(metrics: &TrainMetrics, out: &Path, json: bool) -> Result<()> {
    for w in bio_eval::dead_unit_warnings(&metrics.biology.layers) {
        eprintln!("warning: {w}");
    }
    if json {
        return print_json(metrics);
    }
    match metrics.validation_accuracy {
        Some(acc) => outln!(
            "{}: validation accuracy {} on {} held-out training images; test accuracy {} on {} test images; \
             trained in {:.1}s; model in {}",
            metrics.rule,
            percent(acc),
            metrics.validation_samples,
            percent(metrics.test_accuracy),
            metrics.test_samples,
            metrics.train_seconds,
            out.display()
        ),
        None => outln!(
            "{}: test accuracy {} on {} images, trained in {:.1}s; model in {}",
            metrics.rule,
            percent(metrics.test_accuracy),
            metrics.test_samples,
            metrics.train_seconds,
            out.display()
        ),
    }
    Ok(())
}

/// Ids of the `bio train` flags given explicitly on this process's command line.
fn explicit_train_flags() -> Vec<String> {
    use clap::CommandFactory;
    use clap::parser::ValueSource;
    let Ok(matches) = crate::cli::Cli::command().try_get_matches_from(std::env::args_os()) else {
        return Vec::new();
    };
    let Some(sub) = matches.subcommand_matches("train") else {
        return Vec::new();
    };
    sub.ids()
        .map(|id| id.as_str().to_string())
        .filter(|id| matches!(sub.value_source(id), Some(ValueSource::CommandLine)))
        .collect()
}
