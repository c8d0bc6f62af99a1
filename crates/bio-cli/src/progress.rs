//! Showing a training session's progress: an indicatif bar on a terminal, one plain line per epoch
//! elsewhere (logs, nohup), nothing when quiet.

use std::io::IsTerminal;

use bio_run::{Event, Observer};
use indicatif::{ProgressBar, ProgressStyle};

/// Renders [`Event`]s of one session on stderr.
pub struct TrainProgress {
    bar: ProgressBar,
    show: bool,
    terminal: bool,
    validation_note: String,
}

impl TrainProgress {
    /// Shows progress unless `quiet`.
    pub fn new(quiet: bool) -> Self {
        TrainProgress {
            bar: ProgressBar::hidden(),
            show: !quiet,
            terminal: std::io::stderr().is_terminal(),
            validation_note: String::new(),
        }
    }

    /// Clears the bar's line (before printing a message of one's own, e.g. on interruption).
    pub fn clear(&self) {
        self.bar.finish_and_clear();
    }
}

impl Observer for TrainProgress {
    fn on_event(&mut self, event: &Event<'_>) {
        if !self.show {
            return;
        }
        match event {
            Event::Started { rule, total_batches, done_batches, .. } if self.terminal => {
                self.bar = ProgressBar::new(*total_batches);
                self.bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:>4} [{bar:30}] {pos}/{len} batches {elapsed_precise} eta {eta} {msg}",
                    )
                    .expect("static template")
                    .progress_chars("=> "),
                );
                self.bar.set_prefix(rule.to_string());
                self.bar.set_position(*done_batches);
            }
            Event::Batch { loss, accuracy, .. } => {
                self.bar.inc(1);
                self.bar.set_message(format!("loss {loss:.3} acc {:.1}%{}", 100.0 * accuracy, self.validation_note));
            }
            Event::ValidationMeasured { accuracy, .. } => {
                self.validation_note = format!(" val {:.1}%", 100.0 * accuracy);
            }
            Event::EpochEnded { log, epochs } if !self.terminal => {
                let validation = match log.validation_accuracy {
                    Some(v) => format!(", validation accuracy {:.2}%", 100.0 * v),
                    None => String::new(),
                };
                eprintln!(
                    "epoch {}/{epochs}: loss {:.4}, train accuracy {:.2}%{validation}, {:.1}s",
                    log.epoch,
                    log.loss,
                    100.0 * log.train_accuracy,
                    log.seconds
                );
            }
            Event::Evaluating => self.bar.finish_and_clear(),
            _ => {}
        }
    }
}
