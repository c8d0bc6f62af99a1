//! Showing a training session's progress: an indicatif bar on a terminal, one plain line per epoch
//! elsewhere (logs, nohup), nothing when quiet.

use std::io::IsTerminal;

use bio_run::{Event, Observer};
use indicatif::{ProgressBar, ProgressStyle};

/// Columns assumed when stderr's width is unknown.
const DEFAULT_COLUMNS: usize = 80;
/// The bar never grows beyond this (a wider one says nothing more) nor shrinks below the minimum.
const BAR_COLUMNS: (usize, usize) = (10, 30);
/// The widest message: `loss 0.123 acc 100.0% val 100.0%`.
const MESSAGE_COLUMNS: usize = 33;
/// The widest `{elapsed_precise} eta {eta}`: `00:00:00 eta 59m` (indicatif writes the eta compactly).
const TIME_COLUMNS: usize = 16;

/// The bar's template for a terminal of `columns` columns and `total` batches, so that the whole
/// line, at its widest, leaves the last column free (a full line would wrap on some terminals): the
/// bar takes the room left, within [`BAR_COLUMNS`]; on a narrower terminal the elapsed time and the
/// word "batches" go first, then the eta.
pub fn bar_template(columns: usize, total: u64) -> String {
    let count = 2 * total.to_string().len() + 1;
    // "{prefix:>4} [" + bar + "] " + "{pos}/{len}", then the optional parts, then " " + message.
    let essential = 4 + 2 + 2 + count + 1 + MESSAGE_COLUMNS;
    let with_eta = essential + " eta 59m".len();
    let full = essential + " batches".len() + 1 + TIME_COLUMNS;
    let room = columns.saturating_sub(1);
    let bar = |used: usize| room.saturating_sub(used).clamp(BAR_COLUMNS.0, BAR_COLUMNS.1);
    if full + BAR_COLUMNS.0 <= room {
        format!("{{prefix:>4}} [{{bar:{}}}] {{pos}}/{{len}} batches {{elapsed_precise}} eta {{eta}} {{msg}}", bar(full))
    } else if with_eta + BAR_COLUMNS.0 <= room {
        format!("{{prefix:>4}} [{{bar:{}}}] {{pos}}/{{len}} eta {{eta}} {{msg}}", bar(with_eta))
    } else {
        format!("{{prefix:>4}} [{{bar:{}}}] {{pos}}/{{len}} {{msg}}", bar(essential))
    }
}

/// Columns of the terminal stderr writes to, else [`DEFAULT_COLUMNS`].
fn stderr_columns() -> usize {
    console::Term::stderr().size_checked().map_or(DEFAULT_COLUMNS, |(_, columns)| columns as usize)
}

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
                    ProgressStyle::with_template(&bar_template(stderr_columns(), *total_batches))
                        .expect("a valid template")
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The template with every field at its widest.
    fn widest_line(template: &str, total: u64) -> String {
        let bar = template.split("{bar:").nth(1).and_then(|r| r.split('}').next()).unwrap();
        let width: usize = bar.parse().unwrap();
        template
            .replace("{prefix:>4}", "  bp")
            .replace(&format!("{{bar:{width}}}"), &"=".repeat(width))
            .replace("{pos}", &total.to_string())
            .replace("{len}", &total.to_string())
            .replace("{elapsed_precise}", "00:00:00")
            .replace("{eta}", "59m")
            .replace("{msg}", "loss 0.123 acc 100.0% val 100.0%")
    }

    #[test]
    fn the_bar_line_fits_its_terminal() {
        for columns in [40, 60, 72, 80, 100, 120, 200] {
            for total in [1, 600, 60_000, 6_000_000] {
                let line = widest_line(&bar_template(columns, total), total);
                let expected_fit = columns >= 72;
                if expected_fit {
                    assert!(line.chars().count() < columns, "{columns} columns, {total}: {line:?}");
                }
                assert!(!line.contains("{"), "{line}");
            }
        }
        // A wide terminal gets a bar of at most 30 columns, not a line padded to its width.
        let wide = widest_line(&bar_template(200, 600), 600);
        assert!(wide.chars().count() < 110, "{wide:?}");
        assert!(bar_template(80, 600).contains("eta"), "80 columns keep the eta");
        assert!(bar_template(120, 600).contains("batches {elapsed_precise}"), "120 columns keep everything");
    }
}
