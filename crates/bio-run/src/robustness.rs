//! `bio eval robustness`'s work: attacks over a grid of radii on a saved model's test images, the
//! `strongest` ensemble (worst case per image, with sanity checks), the gradient-masking check, the
//! curves' picture, and `DIR/robustness.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bio_core::{Backend, Classifier};
use bio_eval::{
    AttackName, AttackParams, EnsembleParams, EnsembleReport, Helpers, MaskingFlag, Norm, RobustnessCurve, Series,
    TargetMode,
};
use serde::{Deserialize, Serialize};

use crate::data::model_test_set;
use crate::files::{load_model, read_saved};

pub use bio_data::model_dir::ROBUSTNESS_FILE;

/// What to attack with, at which radii, on how many images.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct RobustnessSpec {
    /// Attacks, comma-separated (pgd and square together add the gradient-masking check).
    #[cfg_attr(feature = "clap", arg(long, value_enum, value_delimiter = ',', default_value = "pgd"))]
    pub attack: Vec<AttackName>,
    /// Radii, comma-separated (default 0,0.02,0.05,0.1,0.15,0.2,0.3).
    #[cfg_attr(feature = "clap", arg(long, value_delimiter = ',', allow_negative_numbers = true))]
    pub eps: Vec<f32>,
    /// PGD iterations.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 40))]
    pub steps: usize,
    /// PGD step size (default 0.01 for L∞, 2.5·eps/steps for L2).
    #[cfg_attr(feature = "clap", arg(long, allow_negative_numbers = true))]
    pub step_size: Option<f32>,
    /// Attack the first N test images only.
    #[cfg_attr(feature = "clap", arg(long))]
    pub limit: Option<usize>,
    /// Square attack: model queries per image (default 1000 for `square`, 5000 inside `strongest`).
    #[cfg_attr(feature = "clap", arg(long))]
    pub queries: Option<usize>,
    /// APGD attacks: iterations per run.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 100))]
    pub iterations: usize,
    /// APGD attacks: runs from random starts (each on the images earlier runs left robust).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 1))]
    pub restarts: usize,
    /// APGD attacks and `strongest`: norm of the ball (Square is skipped under l2).
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value = "linf"))]
    pub norm: Norm,
    /// Transfer attack: model directory of the source model the examples are crafted on.
    #[cfg_attr(feature = "clap", arg(long))]
    pub source: Option<PathBuf>,
    /// Surrogate attack: temperature of the sigmoid stand-in of k-WTA, relative to the spread of the drives.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.1))]
    pub surrogate_temperature: f32,
    /// Ensemble attacks: run every attack on every clean-correct image (each attack's own figure), not
    /// only on the images earlier attacks left robust.
    #[cfg_attr(feature = "clap", arg(long))]
    pub independent: bool,
    /// Targeted attack toward a random other class per image.
    #[cfg_attr(feature = "clap", arg(long))]
    pub targeted: bool,
    /// Attack the model's own clean predictions instead of the labels.
    #[cfg_attr(feature = "clap", arg(long))]
    pub use_predictions: bool,
    /// Seed of the attacks' random numbers.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0))]
    pub seed: u64,
    /// Also draw the robustness curves into this PNG file.
    #[cfg_attr(feature = "clap", arg(long))]
    pub plot: Option<PathBuf>,
    /// Extra directory to search for datasets.
    #[cfg_attr(feature = "clap", arg(long))]
    pub data: Option<PathBuf>,
}

impl Default for RobustnessSpec {
    /// The command line's defaults.
    fn default() -> Self {
        RobustnessSpec {
            attack: vec![AttackName::Pgd],
            eps: Vec::new(),
            steps: 40,
            step_size: None,
            limit: None,
            queries: None,
            iterations: 100,
            restarts: 1,
            norm: Norm::Linf,
            source: None,
            surrogate_temperature: 0.1,
            independent: false,
            targeted: false,
            use_predictions: false,
            seed: 0,
            plot: None,
            data: None,
        }
    }
}

impl RobustnessSpec {
    /// The radii (the default grid unless given).
    pub fn radii(&self) -> Vec<f32> {
        if self.eps.is_empty() { bio_eval::DEFAULT_EPS_GRID.to_vec() } else { self.eps.clone() }
    }

    /// The attacks, each once, in the order given.
    fn attacks(&self) -> Vec<AttackName> {
        let mut out: Vec<AttackName> = Vec::new();
        for a in &self.attack {
            if !out.contains(a) {
                out.push(*a);
            }
        }
        out
    }

    /// The ensemble settings of `a` (`None` for a single attack): the one translation of these flags,
    /// used by `bio eval robustness` and by Python's `biorule.attack`.
    pub fn ensemble_params(&self, a: AttackName) -> Option<EnsembleParams> {
        let attacks = a.members()?;
        let defaults = EnsembleParams::default();
        Some(EnsembleParams {
            attacks,
            norm: self.norm,
            iterations: self.iterations,
            restarts: self.restarts,
            square_queries: self.queries.unwrap_or(defaults.square_queries),
            surrogate_temperature: self.surrogate_temperature,
            independent: self.independent,
            sanity: a == AttackName::Strongest,
            seed: self.seed,
            ..defaults
        })
    }

    /// A single attack's parameters (`pgd-l2` is PGD in the L2 ball; `--norm` concerns the ensemble),
    /// the radius left at its default: the one translation of these flags, used by `bio eval
    /// robustness` and by Python's `biorule.attack`.
    pub fn attack_params(&self, a: AttackName) -> AttackParams {
        AttackParams {
            kind: a,
            norm: Norm::Linf,
            steps: self.steps,
            step_size: self.step_size,
            queries: self.queries.unwrap_or(bio_eval::attack::DEFAULT_QUERIES),
            target: self.targeted.then_some(TargetMode::Random),
            use_predictions: self.use_predictions,
            ..AttackParams::default()
        }
    }

    /// Checks every setting before any work; errors name the flag.
    pub fn check(&self) -> Result<()> {
        if let Some(e) = self.radii().iter().find(|e| !e.is_finite() || **e < 0.0) {
            crate::invalid!("eps", "every radius must be a finite number ≥ 0, got {e}");
        }
        if self.attack.is_empty() {
            crate::invalid!("attack", "give at least one attack");
        }
        // Pixels lie in [0, 1]: an L∞ ball of radius 1 already holds every image.
        let linf = self.attacks().iter().any(|a| *a != AttackName::PgdL2) && self.norm == Norm::Linf;
        if linf {
            for &e in &self.radii() {
                bio_eval::attack::check_linf_radius(e)?;
            }
        }
        for a in self.attacks() {
            match self.ensemble_params(a) {
                Some(p) => {
                    p.check()?;
                    if a == AttackName::Transfer && self.source.is_none() {
                        crate::invalid!("source", "the transfer attack needs --source DIR");
                    }
                    if self.targeted {
                        crate::invalid!("targeted", "{} chooses its own targets", a.name());
                    }
                }
                None => {
                    self.attack_params(a).check()?;
                }
            }
        }
        if let Some(p) = &self.plot
            && p.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()) != Some("png".into())
        {
            crate::invalid!("plot", "{} should end in .png", p.display());
        }
        Ok(())
    }
}

/// `DIR/robustness.json`: every attack run so far on this model (a new run of an attack replaces it).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RobustnessFile {
    /// CRC-32 of the `model.ckpt` these results were measured on; a file of another model is not
    /// merged into but replaced (absent in files written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_crc32: Option<u32>,
    /// Curves by attack name (`fgsm`, `pgd`, `pgd-l2`, `square`, with `-targeted` for targeted runs).
    pub attacks: BTreeMap<String, RobustnessCurve>,
    /// Gradient-masking checks by `gradient-attack/square`.
    #[serde(default)]
    pub masking: BTreeMap<String, Vec<MaskingFlag>>,
    /// Ensemble evaluations (`strongest`, and the APGD, surrogate and transfer attacks alone) by name,
    /// with their worst case per image and sanity checks.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ensembles: BTreeMap<String, SavedEnsemble>,
}

/// One ensemble evaluation as saved: what it measured, and the model its transfer attack crafted
/// its examples on (absent when no transfer attack ran, and in files written before it was recorded).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SavedEnsemble {
    /// The transfer attack's source model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<TransferSource>,
    /// What it measured.
    #[serde(flatten)]
    pub report: EnsembleReport,
}

/// The source model of a transfer attack: its directory and the CRC-32 of its `model.ckpt`, so a
/// result says which model its transferred examples came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferSource {
    /// The source model's directory, as given.
    pub model: String,
    /// CRC-32 of its `model.ckpt`.
    pub model_crc32: u32,
}

/// One attack's curve.
#[derive(Clone, Debug, Serialize)]
pub struct AttackCurve {
    /// Attack name (with `-targeted` for targeted runs).
    pub name: String,
    /// The curve.
    #[serde(flatten)]
    pub curve: RobustnessCurve,
}

/// One ensemble's report.
#[derive(Clone, Debug, Serialize)]
pub struct EnsembleRun {
    /// `strongest`, `apgd-ce`, …
    pub name: String,
    /// What it measured, and on which transfer source.
    #[serde(flatten)]
    pub run: SavedEnsemble,
}

/// The gradient-masking check: the gradient attack against Square.
#[derive(Clone, Debug, Serialize)]
pub struct MaskingCheck {
    /// `pgd` or `fgsm`.
    pub gradient_attack: String,
    /// Per radius.
    pub flags: Vec<MaskingFlag>,
}

/// What [`robustness`] measured.
#[derive(Clone, Debug, Serialize)]
pub struct RobustnessReport {
    /// Model directory.
    pub model: String,
    /// `bio` or `bp`.
    pub rule: String,
    /// Dataset name.
    pub dataset: String,
    /// Test images attacked.
    pub samples: usize,
    /// Single-attack curves.
    pub attacks: Vec<AttackCurve>,
    /// Ensemble evaluations.
    pub ensembles: Vec<EnsembleRun>,
    /// The gradient-masking check, when a gradient attack and Square both ran.
    pub masking: Option<MaskingCheck>,
    /// The picture written, if asked for.
    pub plot: Option<String>,
    /// Where the results were saved (or were to be saved, see `not_saved`).
    #[serde(skip)]
    pub saved_to: PathBuf,
    /// Why the results could not be saved (`None`: they were): a front end presents them anyway,
    /// says this in one line and ends with a failure status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_saved: Option<String>,
    /// What the reader should know but did not stop the evaluation.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// Progress of [`robustness`].
#[derive(Debug)]
pub enum RobustnessProgress<'a> {
    /// A single attack's images × radii done so far, of `total`.
    Curve {
        /// Attack name.
        attack: &'a str,
        /// Done.
        done: usize,
        /// Images × radii.
        total: usize,
    },
    /// A line of an ensemble's progress.
    Ensemble {
        /// Ensemble name.
        attack: &'a str,
        /// What it is doing.
        message: &'a str,
    },
    /// A single attack finished.
    CurveDone {
        /// Attack name.
        attack: &'a str,
    },
}

/// Refuses a transfer-attack source (`source`, read from `path`) that does not classify the
/// attacked model's classes: another number of outputs, or trained on fewer of the classes (a
/// source trained on `--classes 0-4` never learnt to move images of classes 5-9, so its transfer
/// figure would say nothing about them).
pub fn check_source(source: &bio_data::ModelFile, target: &bio_data::ModelFile, path: &Path) -> Result<()> {
    let (s, t) = (source.model.classes, target.model.classes);
    if s != t {
        crate::invalid!("source", "{} classifies into {s} classes, the attacked model into {t}", path.display());
    }
    let missing: Vec<usize> =
        target.trained_classes.iter().copied().filter(|c| !source.trained_classes.contains(c)).collect();
    if !missing.is_empty() {
        crate::invalid!(
            "source",
            "{} was trained on classes {:?}, the attacked model also on {:?}; a transfer \
             source must be trained on every class of the attacked model",
            path.display(),
            source.trained_classes,
            missing
        );
    }
    Ok(())
}

/// The ensemble `params` (`strongest`, or some of its members) against `model` at each radius of
/// `eps` on `(images, labels)`, scored as the worst case per image: the one implementation behind
/// `bio eval robustness --attack strongest`, the sweep's `strongest` and Python's
/// `biorule.attack(…, "strongest")`. The surrogate attack uses the model's own surrogate at
/// `params.surrogate_temperature` (skipped for a model without one), the transfer attack `source`.
#[allow(clippy::too_many_arguments)]
pub fn ensemble<B: Backend, M: Classifier<B>>(
    model: &M,
    source: Option<&dyn Classifier<B>>,
    params: &EnsembleParams,
    eps: &[f32],
    images: &bio_core::Matrix,
    labels: &[usize],
    progress: impl FnMut(&str),
) -> Result<EnsembleReport> {
    let surrogate = model.surrogate(params.surrogate_temperature);
    let helpers = Helpers { surrogate: surrogate.as_deref(), source };
    Ok(bio_eval::strongest(model, helpers, params, eps, images, labels, progress)?)
}

/// Attacks the model in `dir` as `spec` says and saves the results into `DIR/robustness.json`
/// (merged per attack with earlier results of the same model).
pub fn robustness<B: Backend>(
    b: &B,
    dir: &Path,
    spec: &RobustnessSpec,
    mut progress: impl FnMut(RobustnessProgress<'_>),
) -> Result<RobustnessReport> {
    spec.check()?;
    let eps = spec.radii();
    let (file, model) = load_model(b, dir)?;
    let (data, test) = model_test_set(&file, spec.data.as_deref(), spec.limit)?;
    let attacks = spec.attacks();
    let suffix = if spec.targeted { "-targeted" } else { "" };
    let source = match &spec.source {
        Some(s) => {
            let (source_file, source_model) =
                load_model(b, s).with_context(|| format!("the --source model {}", s.display()))?;
            check_source(&source_file, &file, s)?;
            let record = TransferSource { model: s.display().to_string(), model_crc32: crate::files::model_crc32(s)? };
            Some((record, source_model))
        }
        None => None,
    };
    let mut ensembles = Vec::new();
    for &a in &attacks {
        let Some(params) = spec.ensemble_params(a) else { continue };
        let name = a.name().to_string();
        let source_model = source.as_ref().map(|(_, m)| m as &dyn Classifier<B>);
        let report = ensemble(&model, source_model, &params, &eps, &test.images, &test.labels, |message| {
            progress(RobustnessProgress::Ensemble { attack: &name, message })
        })
        .with_context(|| format!("the {name} attack"))?;
        let transferred = report.params.attacks.contains(&AttackName::Transfer);
        let source = source.as_ref().filter(|_| transferred).map(|(record, _)| record.clone());
        ensembles.push(EnsembleRun { name, run: SavedEnsemble { source, report } });
    }
    let mut curves = Vec::new();
    for &a in attacks.iter().filter(|a| a.members().is_none()) {
        let name = format!("{}{suffix}", a.name());
        let total = eps.len() * test.len();
        let curve = bio_eval::robustness_curve(
            &model,
            &spec.attack_params(a),
            &eps,
            &test.images,
            &test.labels,
            bio_eval::attack::DEFAULT_BATCH,
            spec.seed,
            |done, _| progress(RobustnessProgress::Curve { attack: &name, done, total }),
        )
        .with_context(|| format!("the {name} attack"))?;
        progress(RobustnessProgress::CurveDone { attack: &name });
        curves.push((a, name, curve));
    }
    let square = curves.iter().find(|(a, _, _)| *a == AttackName::Square);
    let gradient = curves
        .iter()
        .find(|(a, _, _)| *a == AttackName::Pgd)
        .or_else(|| curves.iter().find(|(a, _, _)| *a == AttackName::Fgsm));
    let masking = match (gradient, square) {
        (Some((_, g, gc)), Some((_, _, sc))) => {
            Some(MaskingCheck { gradient_attack: g.clone(), flags: bio_eval::masking_check(gc, sc) })
        }
        _ => None,
    };

    // Save into the model directory: merged per attack with earlier results of this same model.
    let mut warnings = Vec::new();
    let crc = crate::files::model_crc32(dir)?;
    let path = dir.join(ROBUSTNESS_FILE);
    let mut saved: RobustnessFile = match read_saved::<RobustnessFile>(dir, ROBUSTNESS_FILE) {
        Ok(Some(f)) if f.model_crc32 == Some(crc) => f,
        Ok(Some(_)) => {
            warnings.push(format!("replacing {}: its results were measured on another model", path.display()));
            RobustnessFile::default()
        }
        Ok(None) => RobustnessFile::default(),
        Err(e) => {
            warnings.push(format!("replacing {}: {e}", path.display()));
            RobustnessFile::default()
        }
    };
    saved.model_crc32 = Some(crc);
    for (_, name, curve) in &curves {
        saved.attacks.insert(name.clone(), curve.clone());
    }
    for e in &ensembles {
        saved.ensembles.insert(e.name.clone(), e.run.clone());
    }
    if let Some(m) = &masking {
        saved.masking.insert(format!("{}/square{suffix}", m.gradient_attack), m.flags.clone());
    }
    // Never lose a finished evaluation to a directory that cannot be written: say so instead.
    let not_saved = crate::files::save_results(&path, &saved);

    if let Some(plot) = &spec.plot {
        let series: Vec<Series> = curves
            .iter()
            .map(|(_, name, c)| {
                Series::new(name.clone(), c.points.iter().map(|p| (p.eps as f64, 100.0 * p.accuracy)).collect())
            })
            .collect();
        let norm = spec.norm.symbol();
        let title =
            format!("{} ({}) robust accuracy, {norm}, {} test images", dir.display(), file.model.rule(), test.len());
        match bio_eval::line_chart(plot, &title, "eps", "robust accuracy (%)", &series) {
            Ok(drawn) => warnings.extend(drawn.warning),
            Err(e) => warnings.push(format!("no plot: {e}")),
        }
    }
    for e in &ensembles {
        for flag in e.run.report.sanity.iter().filter(|f| f.failed) {
            warnings.push(format!("{} sanity check failed: {}", e.name, flag.detail));
        }
    }
    Ok(RobustnessReport {
        model: dir.display().to_string(),
        rule: file.model.rule().to_string(),
        dataset: data.name.clone(),
        samples: test.len(),
        attacks: curves.into_iter().map(|(_, name, curve)| AttackCurve { name, curve }).collect(),
        ensembles,
        masking,
        plot: spec.plot.as_ref().map(|p| p.display().to_string()),
        saved_to: path,
        not_saved,
        warnings,
    })
}
