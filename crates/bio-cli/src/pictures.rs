//! PNG pictures of a model: receptive fields, weight-magnitude histograms, activity sparsity.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bio_core::{Backend, Classifier, Matrix};
use bio_data::ModelFile;

/// Units drawn in the receptive-field grid.
pub const FIELD_UNITS: usize = 100;
/// Test images used for the activity histogram.
pub const ACTIVITY_IMAGES: usize = 2000;

/// One picture written, with a caption.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Picture {
    /// What it shows.
    pub caption: String,
    /// Where it is.
    pub path: PathBuf,
}

fn lognormal_density(mu: f64, sigma: f64) -> impl Fn(f64) -> f64 {
    move |x: f64| {
        if x <= 0.0 {
            return 0.0;
        }
        let z = (x.ln() - mu) / sigma;
        (-0.5 * z * z).exp() / (x * sigma * (2.0 * std::f64::consts::PI).sqrt())
    }
}

/// Writes the pictures of `file` into `out` (created if needed): `receptive-fields.png`,
/// `weights-<layer>.png` per weight matrix and, when `test` is given, `activity-<layer>.png` per
/// hidden layer. Warnings (e.g. no font) go to stderr once.
pub fn write_pictures<B: Backend, M: Classifier<B>>(
    file: &ModelFile,
    model: &M,
    test: Option<&Matrix>,
    out: &Path,
) -> Result<Vec<Picture>> {
    bio_data::ensure_output_dir(out)?;
    let params = file.model.params();
    let mut pictures = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let mut note = |d: bio_eval::Drawn, caption: String, pictures: &mut Vec<Picture>| {
        if let Some(w) = d.warning
            && !warnings.contains(&w)
        {
            eprintln!("warning: {}: {w}", d.path.display());
            warnings.push(w);
        }
        pictures.push(Picture { caption, path: d.path });
    };
    // Every layer in the one naming (`hidden.0`, …, `readout`), whatever the rule calls its tensors.
    let weights = bio_eval::layers::layers(params);

    // Receptive fields of the first hidden layer, and what training changed in them.
    if let Some(bio_eval::layers::Layer { name: layer, prefix, weight: w }) = weights.first() {
        let side = (w.cols() as f64).sqrt().round() as usize;
        if side * side == w.cols() && weights.len() > 1 {
            let units = w.rows().min(FIELD_UNITS);
            let images: Vec<Vec<f32>> = (0..units).map(|u| w.row(u).to_vec()).collect();
            let path = out.join("receptive-fields.png");
            let of_units = format!("the first {units} of {} units", w.rows());
            let title = format!("{layer}: weights of {of_units} ({side}×{side} inputs each)");
            let d = bio_eval::image_grid(&path, &title, &images, side, side, 10)?;
            note(d, format!("receptive fields of the first {units} units of {layer}"), &mut pictures);
            // The checkpoint holds no initial weights; initialisation is deterministic, so they are
            // recomputed from the configuration and the run's seed.
            let initial = bio_eval::initial_params(&file.model, file.seed);
            match initial.as_ref().map_err(Clone::clone).and_then(|p| p.get(&format!("{prefix}.weight"), w.shape())) {
                Ok(w0) => {
                    let changes: Vec<Vec<f32>> = (0..units)
                        .map(|u| w.row(u).iter().zip(w0.row(u)).map(|(now, before)| now - before).collect())
                        .collect();
                    let path = out.join("receptive-fields-change.png");
                    let title = format!("{layer}: w − w₀, change since initialisation, {of_units}");
                    let d = bio_eval::image_grid(&path, &title, &changes, side, side, 10)?;
                    let caption = format!(
                        "change of the receptive fields since initialisation (w − w₀, w₀ recomputed from seed {})",
                        file.seed
                    );
                    note(d, caption, &mut pictures);
                }
                Err(e) => eprintln!("warning: no picture of the change since initialisation: {e}"),
            }
        } else {
            eprintln!("warning: inputs of {layer} are not square images; no receptive-field picture");
        }
    }

    // Weight magnitudes on a log axis, with the fitted lognormal.
    for bio_eval::layers::Layer { name: layer, weight: w, .. } in &weights {
        let values: Vec<f64> = w.as_slice().iter().filter(|v| **v != 0.0).map(|v| v.abs() as f64).collect();
        let fit = bio_eval::metrics::fit_lognormal(w.as_slice());
        let density = fit.map(|f| lognormal_density(f.mu, f.sigma));
        let overlay: Option<&dyn Fn(f64) -> f64> = density.as_ref().map(|f| f as &dyn Fn(f64) -> f64);
        let title = match fit {
            Some(f) => format!("{layer}: |w| (lognormal fit μ {:.2}, σ {:.2}, KS {:.3})", f.mu, f.sigma, f.ks_distance),
            None => format!("{layer}: |w|"),
        };
        let path = out.join(format!("weights-{layer}.png"));
        let d = bio_eval::histogram(&path, &title, "|weight|", &values, true, overlay, 60)
            .with_context(|| format!("drawing {}", path.display()))?;
        note(d, format!("weight magnitudes of {layer} (log axis) with the fitted lognormal"), &mut pictures);
    }

    // Per-input active fraction of each hidden layer.
    if let Some(images) = test {
        let n = images.rows().min(ACTIVITY_IMAGES);
        let rows: Vec<usize> = (0..n).collect();
        let images = images.select_rows(&rows);
        let b = model.backend();
        // Per layer: the fraction of its units active on each input, and the units counted.
        let mut fractions: Vec<Vec<f64>> = Vec::new();
        let mut units: Vec<usize> = Vec::new();
        let labels = vec![0; n];
        bio_eval::for_each_batch(&images, &labels, 500, |_, x, _| {
            for (i, act) in model.hidden_activity(&b.upload(x)).iter().enumerate() {
                let m = b.download(act);
                if fractions.len() <= i {
                    fractions.push(Vec::new());
                    units.push(m.cols().max(1));
                }
                for r in 0..m.rows() {
                    let row = m.row(r);
                    fractions[i].push(row.iter().filter(|v| **v > 0.0).count() as f64 / units[i] as f64);
                }
            }
            Ok::<_, anyhow::Error>(())
        })?;
        for (i, f) in fractions.iter().enumerate() {
            let layer = bio_eval::layers::hidden_layer(i);
            let path = out.join(format!("activity-{layer}.png"));
            let title = format!("{layer}: fraction of units active per input ({n} test images)");
            // The fractions are multiples of 1/units: bins of whole multiples, else a comb.
            let d = bio_eval::lattice_histogram(&path, &title, "active fraction", f, 1.0 / units[i] as f64, 40)?;
            note(d, format!("per-input active fraction of hidden layer {i}"), &mut pictures);
        }
    }
    Ok(pictures)
}
