//! `bio report`: one self-contained Markdown page comparing runs, with pictures next to it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bio_core::{Backend, Matrix};
use bio_eval::Series;
use serde::Serialize;

use bio_run::eval::{BIOLOGY_FILE, BiologyFile, FEWSHOT_FILE, FewshotFile};
use bio_run::robustness::{ROBUSTNESS_FILE, RobustnessFile};
use bio_run::{Provenance, TrainMetrics, load_model, model_test_set};

use crate::backend::with_backend;
use crate::cli::ReportArgs;
use crate::output::{BIOLOGY_HEADER, biology_rows, mean_ci, outln, percent, print_json, read_result};
use crate::pictures::{Picture, write_pictures};

/// Name of the page written into `--out`.
pub const REPORT_FILE: &str = "report.md";

struct Run {
    label: String,
    metrics: Option<TrainMetrics>,
    robustness: Option<RobustnessFile>,
    fewshot: Option<FewshotFile>,
    biology: Option<(String, Vec<bio_eval::LayerMetrics>)>,
    pictures: Vec<Picture>,
    /// The rule and the first layer's weights (one row per unit), for the side-by-side picture.
    first_layer: Option<(String, Matrix)>,
    /// Result files left out or not verified, and why.
    notes: Vec<String>,
}

#[derive(Serialize)]
struct ReportOutput {
    report: String,
    runs: Vec<String>,
    files: Vec<String>,
}

/// A Markdown table (cells have `|` escaped).
fn md_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let esc = |s: &str| s.replace('|', "\\|");
    let mut t = format!(
        "| {} |\n|{}\n",
        header.iter().map(|h| esc(h)).collect::<Vec<_>>().join(" | "),
        "---|".repeat(header.len())
    );
    for r in rows {
        let _ = writeln!(t, "| {} |", r.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | "));
    }
    t
}

fn slug(i: usize, dir: &Path) -> String {
    let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let clean: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    format!("run{}-{clean}", i + 1)
}

fn load_run<B: Backend>(i: usize, dir: &Path, args: &ReportArgs, b: &B) -> Result<Run> {
    if !dir.is_dir() {
        bio_run::invalid!("runs", "{} is not a directory", dir.display());
    }
    let metrics: Option<TrainMetrics> = read_result(dir, bio_data::model_dir::METRICS_FILE);
    // Results measured on another model (retrained into this directory since) are left out; files
    // that record no checksum are shown, marked unverified.
    let current = bio_run::model_crc32(dir).ok();
    let mut notes: Vec<String> = bio_run::unfinished_note(dir).into_iter().collect();
    let mut check = |file: &str, recorded: Option<u32>| match Provenance::of(recorded, current) {
        Provenance::Current => true,
        Provenance::OtherModel => {
            notes.push(format!(
                "{file} left out: measured on another model (checksum {:08x}, model.ckpt is {:08x})",
                recorded.unwrap_or_default(),
                current.unwrap_or_default()
            ));
            false
        }
        Provenance::Unknown => {
            notes.push(format!("{file} unverified: it records no model checksum"));
            true
        }
    };
    let robustness =
        read_result::<RobustnessFile>(dir, ROBUSTNESS_FILE).filter(|f| check(ROBUSTNESS_FILE, f.model_crc32));
    let fewshot = read_result::<FewshotFile>(dir, FEWSHOT_FILE).map(|mut f| {
        if !f.episodic.is_empty() && !check(&format!("{FEWSHOT_FILE} (episodic rows)"), f.episodic_model_crc32) {
            f.episodic.clear();
        }
        f
    });
    let biology = match read_result::<BiologyFile>(dir, BIOLOGY_FILE).filter(|f| check(BIOLOGY_FILE, f.model_crc32)) {
        Some(f) => Some((format!("{BIOLOGY_FILE}, {} test images", f.inputs), f.layers)),
        None => metrics
            .as_ref()
            .map(|m| (format!("metrics.json, {} test images", m.biology.inputs), m.biology.layers.clone())),
    };
    for note in &notes {
        eprintln!("warning: {}: {note}", dir.display());
    }
    let mut first_layer = None;
    let pictures = match load_model(b, dir) {
        Ok((file, model)) => {
            first_layer = file
                .model
                .params
                .tensors
                .iter()
                .find(|(n, _)| n.ends_with(".weight"))
                .map(|(_, w)| (file.model.rule().to_string(), w.clone()));
            let test = model_test_set(&file, args.data.as_deref(), Some(crate::pictures::ACTIVITY_IMAGES))
                .map_err(|e| eprintln!("warning: {}: no activity histogram: {e}", dir.display()))
                .ok()
                .map(|(_, t)| t.images);
            write_pictures(&file, &model, test.as_ref(), &args.out.join(slug(i, dir)))
                .with_context(|| format!("pictures of {}", dir.display()))?
        }
        Err(e) => {
            eprintln!("warning: {}: no pictures: {e}", dir.display());
            Vec::new()
        }
    };
    Ok(Run { label: dir.display().to_string(), metrics, robustness, fewshot, biology, pictures, first_layer, notes })
}

fn relative(path: &Path, base: &Path) -> String {
    path.strip_prefix(base).unwrap_or(path).display().to_string()
}

/// `bio report`.
pub fn run(args: ReportArgs) -> Result<()> {
    bio_data::ensure_output_dir(&args.out)?;
    with_backend!(args.backend, args.json, |b| run_on(b, &args))
}

/// `bio report` on one backend (the models are loaded on it for the pictures).
fn run_on<B: Backend>(b: &B, args: &ReportArgs) -> Result<()> {
    let runs: Vec<Run> = args.runs.iter().enumerate().map(|(i, d)| load_run(i, d, args, b)).collect::<Result<_>>()?;
    let mut files: Vec<PathBuf> = Vec::new();
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# biorule report\n\nComparison of {} runs, written by `bio report` (biorule {}).\n",
        runs.len(),
        env!("CARGO_PKG_VERSION")
    );

    // Runs.
    md.push_str("## Runs\n\n");
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| match &r.metrics {
            Some(m) => vec![
                r.label.clone(),
                m.rule.clone(),
                m.dataset.clone(),
                m.hidden.iter().map(|h| h.to_string()).collect::<Vec<_>>().join(","),
                m.epochs.to_string(),
                format!("{} ({} images)", percent(m.test_accuracy), m.test_samples),
                format!("{:.1}", m.train_seconds),
            ],
            None => vec![
                r.label.clone(),
                "—".into(),
                "no metrics.json".into(),
                "—".into(),
                "—".into(),
                "—".into(),
                "—".into(),
            ],
        })
        .collect();
    md.push_str(&md_table(&["run", "rule", "dataset", "hidden", "epochs", "test accuracy", "train seconds"], &rows));
    let notes: Vec<String> =
        runs.iter().flat_map(|r| r.notes.iter().map(move |n| format!("- {}: {n}\n", r.label))).collect();
    if !notes.is_empty() {
        md.push_str("\nResult files not measured on the model now in the run's directory:\n\n");
        md.push_str(&notes.concat());
    }

    // Structural plasticity over training (runs whose metrics.json logs it per epoch).
    let kept: Vec<Series> = runs
        .iter()
        .filter_map(|r| {
            let points: Vec<(f64, f64)> = r
                .metrics
                .as_ref()?
                .history
                .iter()
                .filter_map(|e| Some((e.epoch as f64, e.synapses_kept? as f64)))
                .collect();
            (!points.is_empty()).then(|| Series::new(r.label.clone(), points))
        })
        .collect();
    if !kept.is_empty() {
        md.push_str("\n## Synapses kept over training\n\n");
        let path = args.out.join("synapses-kept.png");
        let d = bio_eval::line_chart(&path, "synapses kept by structural plasticity", "epoch", "fraction kept", &kept)?;
        if let Some(w) = d.warning {
            eprintln!("warning: {}: {w}", path.display());
        }
        md.push_str("![synapses kept over training](synapses-kept.png)\n\n");
        files.push(path);
    }

    // Robustness.
    md.push_str("\n## Robustness\n\n");
    let mut series = Vec::new();
    let mut rows = Vec::new();
    let mut masking_rows = Vec::new();
    let mut worst_series = Vec::new();
    let mut worst_rows = Vec::new();
    let (mut norms, mut images) = (Vec::new(), Vec::new());
    for r in &runs {
        let Some(rob) = &r.robustness else { continue };
        for (name, e) in rob.ensembles.iter().map(|(name, saved)| (name, &saved.report)) {
            worst_series.push(Series::new(
                format!("{} · {name}", r.label),
                e.points.iter().map(|p| (p.eps as f64, 100.0 * p.accuracy)).collect(),
            ));
            for p in &e.points {
                worst_rows.push(vec![
                    r.label.clone(),
                    name.clone(),
                    e.params.norm.name().into(),
                    format!("{}", p.eps),
                    format!("{} ({}/{})", percent(p.accuracy), p.robust, p.samples),
                    percent(e.clean_accuracy),
                    match (e.sanity.is_empty(), e.suspect()) {
                        (true, _) => "not run".into(),
                        (false, true) => "FAILED".into(),
                        (false, false) => "passed".into(),
                    },
                ]);
            }
        }
        for (attack, c) in &rob.attacks {
            norms.push(c.norm.name().to_string());
            images.push(c.samples);
            series.push(Series::new(
                format!("{} · {attack}", r.label),
                c.points.iter().map(|p| (p.eps as f64, 100.0 * p.accuracy)).collect(),
            ));
            for p in &c.points {
                rows.push(vec![
                    r.label.clone(),
                    attack.clone(),
                    c.norm.name().into(),
                    format!("{}", p.eps),
                    percent(p.accuracy),
                    p.samples.to_string(),
                ]);
            }
        }
        for (pair, flags) in &rob.masking {
            for f in flags {
                masking_rows.push(vec![
                    r.label.clone(),
                    pair.clone(),
                    format!("{}", f.eps),
                    format!("{:+.2}", 100.0 * f.gap),
                    format!("{:.2}", 100.0 * f.threshold),
                    if f.masking { "MASKING" } else { "ok" }.into(),
                ]);
            }
        }
    }
    // The worst case per image over the strongest ensemble: the headline measure.
    md.push_str("### Worst case per image (`--attack strongest`)\n\n");
    if worst_rows.is_empty() {
        md.push_str(
            "No worst-case data: no run has an ensemble evaluation (run `bio eval robustness --model DIR --attack strongest`).\n\n",
        );
    } else {
        let path = args.out.join("worst-case.png");
        let d = bio_eval::line_chart(
            &path,
            "worst case per image over the attack ensemble",
            "eps",
            "robust accuracy, worst case (%)",
            &worst_series,
        )?;
        if let Some(w) = d.warning {
            eprintln!("warning: {}: {w}", path.display());
        }
        md.push_str("![worst-case robust accuracy versus eps](worst-case.png)\n\n");
        files.push(path);
        md.push_str(&md_table(
            &["run", "ensemble", "norm", "eps", "worst case (robust/images)", "clean", "sanity checks"],
            &worst_rows,
        ));
        md.push('\n');
    }
    md.push_str("### Single attacks\n\n");
    if series.is_empty() {
        md.push_str(
            "No robustness data: none of the runs has robustness.json (run `bio eval robustness --model DIR`).\n",
        );
    } else {
        let path = args.out.join("robustness.png");
        norms.sort();
        norms.dedup();
        images.sort_unstable();
        images.dedup();
        let images: Vec<String> = images.iter().map(|n| n.to_string()).collect();
        let title = format!(
            "robust accuracy versus eps ({} norm, {} test images)",
            norms.join("/").replace("linf", "L∞").replace("l2", "L2"),
            images.join("/")
        );
        let d = bio_eval::line_chart(&path, &title, "eps", "robust accuracy (%)", &series)?;
        if let Some(w) = d.warning {
            eprintln!("warning: {}: {w}", path.display());
        }
        md.push_str("![robust accuracy versus eps](robustness.png)\n\n");
        files.push(path);
        md.push_str(&md_table(&["run", "attack", "norm", "eps", "robust accuracy", "samples"], &rows));
        if masking_rows.is_empty() {
            md.push_str("\nNo gradient-masking check (run PGD and Square together: `--attack pgd,square`).\n");
        } else {
            md.push_str("\nGradient-masking check (gap = gradient-attack accuracy − Square accuracy, in points):\n\n");
            md.push_str(&md_table(&["run", "attacks", "eps", "gap", "threshold", "verdict"], &masking_rows));
        }
    }

    // Few-shot.
    md.push_str("\n## Few-shot\n\n");
    let mut rows = Vec::new();
    for r in &runs {
        let Some(f) = &r.fewshot else { continue };
        for e in &f.episodic {
            rows.push(vec![
                r.label.clone(),
                format!("episodic ({}-way, novel {:?})", e.ways, f.novel_classes),
                e.features.clone(),
                e.classifier.clone(),
                e.shots.to_string(),
                format!("{} episodes", e.episodes),
                mean_ci(e.mean, e.ci95, e.episodes),
            ]);
        }
        for l in &f.few_labels {
            rows.push(vec![
                r.label.clone(),
                "few-labels".into(),
                l.variant.clone(),
                if l.unlabelled { "readout on labels, hidden on all images" } else { "labelled images only" }.into(),
                l.shots.to_string(),
                format!("{} seeds", l.seeds),
                mean_ci(l.mean, l.ci95, l.seeds),
            ]);
        }
    }
    if rows.is_empty() {
        md.push_str("No few-shot data: none of the runs has fewshot.json (run `bio eval fewshot --model DIR` on a model trained with `--classes`).\n");
    } else {
        md.push_str(&md_table(
            &["run", "protocol", "features / variant", "classifier / data", "shots", "repeats", "mean ± ci95"],
            &rows,
        ));
    }

    // Biology.
    md.push_str("\n## Biology\n\n");
    let mut rows = Vec::new();
    for r in &runs {
        let Some((source, layers)) = &r.biology else { continue };
        for mut row in biology_rows(layers) {
            row.insert(0, format!("{} ({source})", r.label));
            rows.push(row);
        }
    }
    if rows.is_empty() {
        md.push_str("No biology data: none of the runs has biology.json or metrics.json.\n");
    } else {
        let mut header = vec!["run"];
        header.extend(BIOLOGY_HEADER);
        md.push_str(&md_table(&header, &rows));
    }

    // Pictures.
    md.push_str("\n## Pictures\n\n");
    if runs.iter().all(|r| r.pictures.is_empty()) {
        md.push_str("No pictures: no run's model could be loaded.\n");
    }
    if let Some(p) = side_by_side(&runs, &args.out)? {
        let rel = relative(&p.path, &args.out);
        let _ = writeln!(md, "- [{}]({rel})\n\n  ![{}]({rel})\n", p.caption, p.caption);
        files.push(p.path);
    }
    for r in &runs {
        if r.pictures.is_empty() {
            continue;
        }
        let _ = writeln!(md, "### {}\n", r.label);
        for p in &r.pictures {
            let rel = relative(&p.path, &args.out);
            let _ = writeln!(md, "- [{}]({rel})\n\n  ![{}]({rel})\n", p.caption, p.caption);
            files.push(p.path.clone());
        }
    }
    let path = args.out.join(REPORT_FILE);
    bio_data::write_atomic(&path, md.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    let out = ReportOutput {
        report: path.display().to_string(),
        runs: runs.iter().map(|r| r.label.clone()).collect(),
        files: files.iter().map(|f| f.display().to_string()).collect(),
    };
    if args.json {
        return print_json(&out);
    }
    let runs = if out.runs.len() == 1 { "1 run".to_string() } else { format!("{} runs", out.runs.len()) };
    outln!("wrote {} ({runs}, {} pictures)", out.report, out.files.len());
    Ok(())
}

/// With two runs or more whose first layers see the same square images: their receptive fields in
/// one picture, a row per run.
fn side_by_side(runs: &[Run], out: &Path) -> Result<Option<Picture>> {
    const UNITS: usize = 12;
    // Rows are named by their rule when the rules differ, else by their directory's name too.
    let rules: Vec<&str> = runs.iter().filter_map(|r| r.first_layer.as_ref().map(|(rule, _)| rule.as_str())).collect();
    let distinct = rules.iter().enumerate().all(|(i, r)| !rules[..i].contains(r));
    let name = |r: &Run, rule: &str| match Path::new(&r.label).file_name() {
        Some(dir) if !distinct => format!("{} ({rule})", dir.to_string_lossy()),
        _ => rule.to_string(),
    };
    let layers: Vec<(String, &Matrix)> =
        runs.iter().filter_map(|r| r.first_layer.as_ref().map(|(rule, w)| (name(r, rule), w))).collect();
    let inputs = layers.first().map_or(0, |(_, w)| w.cols());
    let side = (inputs as f64).sqrt().round() as usize;
    if layers.len() < 2 || side * side != inputs || layers.iter().any(|(_, w)| w.cols() != inputs) {
        return Ok(None);
    }
    let rows: Vec<(String, Vec<Vec<f32>>)> = layers
        .iter()
        .map(|(name, w)| (name.clone(), (0..w.rows().min(UNITS)).map(|u| w.row(u).to_vec()).collect()))
        .collect();
    let path = out.join("receptive-fields-side-by-side.png");
    bio_eval::receptive_field_rows(&path, &rows, side, side, UNITS)?;
    let names: Vec<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
    Ok(Some(Picture {
        caption: format!(
            "first-layer receptive fields of every run, first {UNITS} units, one row each ({}), each field scaled to its own largest |w|",
            names.join("; ")
        ),
        path,
    }))
}
