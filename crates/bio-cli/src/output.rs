//! Printing: aligned tables, JSON, and the table rows several commands share.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

/// `println!` for a command's output: a closed pipe (`bio inspect … | head -1`) ends the process
/// quietly with status 0, as the usual SIGPIPE convention does; another write error exits 1 with one
/// line. Never a panic.
macro_rules! outln {
    () => {
        $crate::output::write_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::write_line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

/// Set once from `--quiet`, read wherever something informational would go to stderr.
static QUIET: AtomicBool = AtomicBool::new(false);

/// Records `--quiet` for the whole process.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether `--quiet` was given: no progress and no informational lines (results, warnings and
/// errors still print).
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// One line on stdout (see [`outln!`]).
pub fn write_line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to standard output: {e}");
        std::process::exit(1);
    }
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints rows as a table with a header, columns padded to their widest cell.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        outln!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    line(widths.iter().map(|w| "─".repeat(*w)).collect::<Vec<_>>().iter().map(|s| s.as_str()).collect());
    for row in rows {
        line(row.iter().map(|s| s.as_str()).collect());
    }
}

/// `x` with `digits` decimals, where a value that rounds to zero prints without a sign (`0.00000`,
/// never `-0.00000`, which `format!` writes for a tiny negative number or `-0.0`).
pub fn fixed(x: f64, digits: usize) -> String {
    let text = format!("{x:.digits$}");
    match text.strip_prefix('-') {
        Some(unsigned) if unsigned.chars().all(|c| c == '0' || c == '.') => unsigned.to_string(),
        _ => text,
    }
}

/// `0.8512` → `85.12%`.
pub fn percent(x: f64) -> String {
    format!("{}%", fixed(100.0 * x, 2))
}

/// `mean ± ci95` in percent; just the mean when there was one value (`n < 2`: no interval).
pub fn mean_ci(mean: f64, ci95: f64, n: usize) -> String {
    if n < 2 { percent(mean) } else { format!("{} ± {}%", fixed(100.0 * mean, 2), fixed(100.0 * ci95, 2)) }
}

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map(|v| fixed(v, digits)).unwrap_or_else(|| "—".into())
}

/// Table rows of the biology table (without a leading run column).
pub fn biology_rows(layers: &[bio_eval::LayerMetrics]) -> Vec<Vec<String>> {
    layers
        .iter()
        .map(|l| {
            vec![
                l.layer.clone(),
                l.active_fraction.map(percent).unwrap_or_else(|| "—".into()),
                opt(l.lifetime_sparseness, 3),
                l.dead_units.map(|d| d.to_string()).unwrap_or_else(|| "—".into()),
                opt(l.hoyer, 3),
                percent(l.kept_fraction),
                opt(l.log_weight_mu, 2),
                opt(l.log_weight_sigma, 2),
                opt(l.log_weight_skew, 2),
                opt(l.ks_distance, 3),
                opt(l.dale_index, 3),
                l.excitatory_fraction.map(percent).unwrap_or_else(|| "—".into()),
                l.inhibitory_fraction.map(percent).unwrap_or_else(|| "—".into()),
            ]
        })
        .collect()
}

/// Header of [`biology_rows`].
pub const BIOLOGY_HEADER: [&str; 13] = [
    "layer",
    "active",
    "lifetime sparseness",
    "dead",
    "Hoyer",
    "kept",
    "log-w μ",
    "log-w σ",
    "log-w skew",
    "KS",
    "Dale",
    "excitatory",
    "inhibitory",
];

/// Table rows of the unit-diversity table: each layer's figures at initialisation (`initial`,
/// matched by layer name) and trained (`layers`).
pub fn diversity_rows(layers: &[bio_eval::LayerMetrics], initial: &[bio_eval::LayerDiversity]) -> Vec<Vec<String>> {
    layers
        .iter()
        .map(|l| {
            let first = initial.iter().find(|d| d.layer == l.layer);
            vec![
                l.layer.clone(),
                opt(first.and_then(|d| d.unit_similarity), 3),
                opt(l.unit_similarity, 3),
                opt(first.and_then(|d| d.effective_rank), 1),
                opt(l.effective_rank, 1),
            ]
        })
        .collect()
}

/// Header of [`diversity_rows`].
pub const DIVERSITY_HEADER: [&str; 5] =
    ["layer", "similarity, initial", "similarity, trained", "effective units, initial", "effective units, trained"];

/// Table rows of the class-selectivity table.
pub fn selectivity_rows(layers: &[bio_eval::LayerSelectivity]) -> Vec<Vec<String>> {
    layers
        .iter()
        .map(|l| vec![l.layer.clone(), opt(l.selectivity, 3), opt(l.mutual_information_bits, 3), l.units.to_string()])
        .collect()
}

/// Header of [`selectivity_rows`].
pub const SELECTIVITY_HEADER: [&str; 4] = ["layer", "selectivity", "MI bits", "units"];

/// Reads the result file `dir/name`: `None` when absent, and when unreadable, with a warning.
pub fn read_result<T: serde::de::DeserializeOwned>(dir: &std::path::Path, name: &str) -> Option<T> {
    bio_run::read_saved(dir, name).unwrap_or_else(|e| {
        eprintln!("warning: ignoring {}: {e}", dir.join(name).display());
        None
    })
}

/// Warns (one line on stderr) when the model directory `dir` holds a run that did not finish, so
/// that its results are not taken for those of the finished run ([`bio_run::unfinished_note`]).
pub fn warn_unfinished(dir: &std::path::Path) {
    if let Some(note) = bio_run::unfinished_note(dir) {
        eprintln!("warning: {note}");
    }
}

/// Ends a command whose results were presented but could not be saved (`not_saved`: why, as one
/// line) with a failure status and that line; `Ok` when they were saved.
pub fn fail_if_not_saved(not_saved: Option<String>) -> anyhow::Result<()> {
    match not_saved {
        Some(why) => anyhow::bail!("{why} (the results are printed above, but were not saved)"),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_prints_without_a_sign() {
        assert_eq!(fixed(-0.0, 5), "0.00000");
        assert_eq!(fixed(-1e-9, 5), "0.00000");
        assert_eq!(fixed(-1e-5, 5), "-0.00001");
        assert_eq!(fixed(-0.4, 0), "0", "rounds to zero");
        assert_eq!(fixed(-2.5, 1), "-2.5");
        assert_eq!(fixed(0.0, 2), "0.00");
        assert_eq!(fixed(f64::NAN, 2), "NaN");
        assert_eq!(fixed(f64::NEG_INFINITY, 2), "-inf");
        assert_eq!(percent(-1e-7), "0.00%");
        assert_eq!(mean_ci(0.5, -0.0, 3), "50.00 ± 0.00%");
        assert_eq!(opt(Some(-1e-12), 3), "0.000");
    }
}
