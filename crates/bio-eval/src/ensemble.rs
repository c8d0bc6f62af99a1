//! The strongest evaluation we run: an ensemble of attacks, scored as the **worst case per image**
//! (an image counts as robust only if it is classified correctly clean and no attack fooled it), as
//! AutoAttack and RobustBench do, plus the sanity checks that expose a weak evaluation.
//!
//! Attacks, in the order they run ([`AttackName`]):
//! 1. `apgd-ce`: [APGD](crate::apgd) with the cross-entropy loss;
//! 2. `apgd-t`: APGD with the targeted DLR loss, one run per target among the clean image's 9
//!    highest-scoring other classes;
//! 3. `surrogate`: APGD-CE through a smooth stand-in of the model's non-smooth competition (BPDA; the
//!    forward pass stays exact, see [`bio_core::CompetitionBackward::Sigmoid`]), for `bio` models;
//! 4. `transfer`: APGD-CE examples crafted on another (source) model, run to its full iteration budget
//!    without early stopping, then classified by the attacked model;
//! 5. `square`: the gradient-free Square attack (L∞ only).
//!
//! By default each attack runs only on the images every earlier attack left robust (AutoAttack's
//! practice, much faster): an attack's figures are then *cumulative* ("robust after"), and only the
//! first attack's own robust accuracy is known. With `independent`, every attack runs on every
//! clean-correct image, so each attack's own figure is known too (slower).
//!
//! Sanity checks ([`SanityFlag`]), when asked for: robust accuracy must fall to about 0 at a large
//! radius (0.5 L∞); APGD-CE must not leave more images robust with its full budget than with a quarter
//! of it; and the black-box attacks (transfer, Square) must not fool more than a few points of images
//! that every white-box gradient attack left robust. A failed check means the figures are not to be
//! trusted (gradient masking or a broken attack).

use std::time::Instant;

use bio_core::{Backend, Classifier, Matrix};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::accuracy::check_inputs;
use crate::apgd::{self, ApgdLoss, ApgdRun, DEFAULT_DLR_TARGETS, DEFAULT_ITERATIONS, Outcome};
use crate::attack::{AttackName, DEFAULT_BATCH, DEFAULT_P_INIT, Norm, square_attack};
use crate::error::EvalError;

/// Default query budget of the ensemble's Square attack (AutoAttack's standard setting).
pub const DEFAULT_ENSEMBLE_QUERIES: usize = 5000;
/// Default temperature of the surrogate gradient, in units of the per-input spread of the drives.
pub const DEFAULT_SURROGATE_TEMPERATURE: f32 = 0.1;
/// The large radius of the "accuracy must fall to about 0" check (L∞; for L2 `0.5·√d`, the L2 length
/// of a change of 0.5 in every pixel).
pub const LARGE_EPS: f32 = 0.5;
/// The large-radius check fails above this robust accuracy (0.01 = one percent).
pub const LARGE_EPS_TOLERANCE: f64 = 0.01;
/// The more-steps check fails when the full budget leaves more than this fraction of images robust
/// beyond what a quarter of the budget left (0.005 = half a point; random starts differ).
pub const MORE_STEPS_TOLERANCE: f64 = 0.005;
/// The black-box check fails when a black-box attack fools more than this fraction of the images
/// (0.02 = two points) that every white-box gradient attack left robust.
pub const BLACK_BOX_TOLERANCE: f64 = 0.02;

/// The fixed number of a member's random stream: saved results depend on these numbers, so they do
/// not follow the order of [`AttackName`]'s variants.
fn stage(attack: AttackName) -> u64 {
    match attack {
        AttackName::ApgdCe => 0,
        AttackName::ApgdT => 1,
        AttackName::Surrogate => 2,
        AttackName::Transfer => 3,
        AttackName::Square => 4,
        // Not members ([`EnsembleParams::check`] refuses them): streams no member uses.
        AttackName::Fgsm => 5,
        AttackName::Pgd => 6,
        AttackName::PgdL2 => 7,
        AttackName::Strongest => 8,
    }
}

/// Settings of an ensemble evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EnsembleParams {
    /// The attacks to run (run in the order of [`AttackName::ENSEMBLE`] whatever the order here).
    pub attacks: Vec<AttackName>,
    /// Norm of the ball (Square is skipped under L2).
    pub norm: Norm,
    /// APGD iterations per run.
    pub iterations: usize,
    /// APGD random restarts (each on the images the earlier restarts left robust).
    pub restarts: usize,
    /// APGD-T: number of target classes.
    pub dlr_targets: usize,
    /// Square: queries per image.
    pub square_queries: usize,
    /// Square: initial fraction of pixels per square.
    pub square_p_init: f32,
    /// The surrogate's temperature, as given to the model that provides it (recorded here).
    pub surrogate_temperature: f32,
    /// Run every attack on every clean-correct image (each attack's own figure), not only on the
    /// images the earlier attacks left robust.
    pub independent: bool,
    /// Run the sanity checks.
    pub sanity: bool,
    /// Seed of every random number.
    pub seed: u64,
}

impl Default for EnsembleParams {
    fn default() -> Self {
        Self {
            attacks: AttackName::ENSEMBLE.to_vec(),
            norm: Norm::Linf,
            iterations: DEFAULT_ITERATIONS,
            restarts: 1,
            dlr_targets: DEFAULT_DLR_TARGETS,
            square_queries: DEFAULT_ENSEMBLE_QUERIES,
            square_p_init: DEFAULT_P_INIT,
            surrogate_temperature: DEFAULT_SURROGATE_TEMPERATURE,
            independent: false,
            sanity: true,
            seed: 0,
        }
    }
}

impl EnsembleParams {
    /// Checks the settings, naming the CLI flag of the first bad one.
    pub fn check(&self) -> Result<(), EvalError> {
        if self.attacks.is_empty() {
            return Err(EvalError::invalid("attack", "the ensemble needs at least one attack"));
        }
        if let Some(a) = self.attacks.iter().find(|a| !a.in_ensemble()) {
            return Err(EvalError::invalid(
                "attack",
                format!("{a} is not a member of the ensemble ({})", AttackName::list(&AttackName::ENSEMBLE)),
            ));
        }
        if self.iterations == 0 {
            return Err(EvalError::invalid("iterations", "APGD needs at least one iteration"));
        }
        if self.restarts == 0 {
            return Err(EvalError::invalid("restarts", "APGD needs at least one run"));
        }
        if self.dlr_targets == 0 {
            return Err(EvalError::invalid("dlr-targets", "APGD-T needs at least one target class"));
        }
        if self.square_queries == 0 {
            return Err(EvalError::invalid("queries", "the Square attack needs at least one query"));
        }
        if !(self.square_p_init > 0.0 && self.square_p_init <= 1.0) {
            return Err(EvalError::invalid("p-init", format!("must be in (0, 1], got {}", self.square_p_init)));
        }
        if !(self.surrogate_temperature.is_finite() && self.surrogate_temperature > 0.0) {
            return Err(EvalError::invalid(
                "surrogate-temperature",
                format!("must be a finite number > 0, got {}", self.surrogate_temperature),
            ));
        }
        Ok(())
    }
}

/// The models an ensemble may use beside the attacked one.
#[derive(Clone, Copy, Default)]
pub struct Helpers<'a, B: Backend> {
    /// The attacked model with a surrogate backward pass (its forward pass must be the attacked
    /// model's); `None` skips the surrogate attack (e.g. a backprop network, smooth almost everywhere).
    pub surrogate: Option<&'a dyn Classifier<B>>,
    /// The source model of the transfer attack; `None` skips it.
    pub source: Option<&'a dyn Classifier<B>>,
}

/// One attack's result at one radius.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageResult {
    /// The attack.
    pub attack: AttackName,
    /// Whether it ran (`false`: not applicable, with the reason in `note`).
    pub ran: bool,
    /// Images it attacked (every clean-correct image, or those still robust before it).
    pub attacked: usize,
    /// Of those, images it fooled.
    pub fooled: usize,
    /// Worst-case robust accuracy after this attack and every earlier one, over all samples.
    pub robust_after: f64,
    /// This attack's own robust accuracy over all samples, known when it attacked every
    /// clean-correct image (the first attack, or `independent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub own_accuracy: Option<f64>,
    /// Images fooled by this attack and by no white-box attack (black-box attacks only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fooled_only_by_it: Option<usize>,
    /// Wall time of the attack.
    pub seconds: f64,
    /// Attacked images per second.
    pub images_per_second: f64,
    /// Why the attack did not run, or what to know about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Per sample: fooled by this attack (not saved).
    #[serde(skip)]
    pub fooled_images: Vec<bool>,
}

/// The ensemble's result at one radius.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnsemblePoint {
    /// Radius of the ball.
    pub eps: f32,
    /// Number of samples.
    pub samples: usize,
    /// The worst case per image: fraction of samples correct clean and fooled by no attack.
    pub accuracy: f64,
    /// Number of such samples.
    pub robust: usize,
    /// Each attack, in the order they ran.
    pub stages: Vec<StageResult>,
    /// Per sample: robust under every attack (not saved).
    #[serde(skip)]
    pub robust_images: Vec<bool>,
}

/// Which sanity check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SanityCheck {
    /// At a large radius robust accuracy must be about 0.
    LargeEps,
    /// A longer APGD-CE must not leave more images robust than a shorter one.
    MoreSteps,
    /// A black-box attack must not fool many images every white-box attack left robust.
    BlackBox,
}

/// The outcome of one sanity check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SanityFlag {
    /// The check.
    pub check: SanityCheck,
    /// Radius it concerns.
    pub eps: f32,
    /// The measured value (a fraction of the samples).
    pub value: f64,
    /// The value it is compared with (0 for the large-radius check, the short run's robust accuracy
    /// for the more-steps check, 0 for the black-box check).
    pub reference: f64,
    /// The check fails when `value − reference` exceeds this.
    pub tolerance: f64,
    /// Whether the check failed: the evaluation is suspect.
    pub failed: bool,
    /// One sentence saying what was compared.
    pub detail: String,
}

/// An ensemble evaluation over a grid of radii.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnsembleReport {
    /// The settings.
    pub params: EnsembleParams,
    /// Number of samples.
    pub samples: usize,
    /// Clean accuracy on those samples.
    pub clean_accuracy: f64,
    /// One point per radius, in the order of the grid.
    pub points: Vec<EnsemblePoint>,
    /// The sanity checks (empty unless asked for).
    pub sanity: Vec<SanityFlag>,
}

impl EnsembleReport {
    /// Whether any sanity check failed.
    pub fn suspect(&self) -> bool {
        self.sanity.iter().any(|f| f.failed)
    }
}

/// The worst case per image: robust only if correct clean and fooled by none of the attacks.
pub fn worst_case(clean_correct: &[bool], fooled_by: &[Vec<bool>]) -> Vec<bool> {
    (0..clean_correct.len()).map(|i| clean_correct[i] && !fooled_by.iter().any(|f| f[i])).collect()
}

fn ratio(a: usize, b: usize) -> f64 {
    a as f64 / b.max(1) as f64
}

fn stage_rng(seed: u64, stage: u64, start: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ stage.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    rng.set_stream(start as u64);
    rng
}

/// Runs `attack_rows(model, images, labels, rng)` on the rows `rows` of `images` in batches of
/// [`DEFAULT_BATCH`] and returns, per row of `rows`, whether it was fooled.
fn in_batches(
    rows: &[usize],
    images: &Matrix,
    labels: &[usize],
    seed: u64,
    stage: u64,
    mut attack_rows: impl FnMut(&Matrix, &[usize], &mut ChaCha8Rng) -> Vec<bool>,
) -> Vec<bool> {
    let mut out = Vec::with_capacity(rows.len());
    for (k, chunk) in rows.chunks(DEFAULT_BATCH).enumerate() {
        let x = images.select_rows(chunk);
        let y: Vec<usize> = chunk.iter().map(|&i| labels[i]).collect();
        out.extend(attack_rows(&x, &y, &mut stage_rng(seed, stage, k * DEFAULT_BATCH)));
    }
    out
}

/// APGD with restarts on `x`: each restart attacks the rows earlier restarts left unfooled.
fn apgd_with_restarts<B: Backend, M: Classifier<B> + ?Sized>(
    model: &M,
    run: &ApgdRun,
    restarts: usize,
    x: &Matrix,
    labels: &[usize],
    targets: Option<&[usize]>,
    rng: &mut ChaCha8Rng,
) -> Vec<bool> {
    let mut fooled = vec![false; x.rows()];
    for _ in 0..restarts {
        let left: Vec<usize> = (0..x.rows()).filter(|&i| !fooled[i]).collect();
        if left.is_empty() {
            break;
        }
        let sub_labels: Vec<usize> = left.iter().map(|&i| labels[i]).collect();
        let sub_targets: Option<Vec<usize>> = targets.map(|t| left.iter().map(|&i| t[i]).collect());
        let outcome: Outcome = apgd::apgd(model, run, &x.select_rows(&left), &sub_labels, sub_targets.as_deref(), rng);
        for (k, &i) in left.iter().enumerate() {
            fooled[i] = outcome.fooled[k];
        }
    }
    fooled
}

/// Whether `model` misclassifies each row of `x`.
fn misclassified<B: Backend, M: Classifier<B> + ?Sized>(model: &M, x: &Matrix, labels: &[usize]) -> Vec<bool> {
    let p = model.predict(&model.backend().upload(x));
    p.iter().zip(labels).map(|(p, y)| p != y).collect()
}

/// Which images one attack fools among `rows`; `None` with a reason when it cannot run.
#[allow(clippy::too_many_arguments)]
fn run_attack<B: Backend, M: Classifier<B>>(
    attack: AttackName,
    model: &M,
    helpers: &Helpers<'_, B>,
    params: &EnsembleParams,
    eps: f32,
    rows: &[usize],
    images: &Matrix,
    labels: &[usize],
) -> Result<Vec<bool>, String> {
    let ce = ApgdRun {
        norm: params.norm,
        eps,
        iterations: params.iterations,
        loss: ApgdLoss::CrossEntropy,
        early_stop: true,
    };
    let seed = params.seed;
    let stage = stage(attack);
    match attack {
        AttackName::ApgdCe => Ok(in_batches(rows, images, labels, seed, stage, |x, y, rng| {
            apgd_with_restarts(model, &ce, params.restarts, x, y, None, rng)
        })),
        AttackName::ApgdT => {
            if model.classes() < 4 {
                return Err("the DLR loss needs at least 4 classes".into());
            }
            let targets = params.dlr_targets.min(model.classes() - 1);
            let run = ApgdRun { loss: ApgdLoss::TargetedDlr, ..ce };
            Ok(in_batches(rows, images, labels, seed, stage, |x, y, rng| {
                let logits = model.backend().download(&model.logits(&model.backend().upload(x)));
                let ranked: Vec<Vec<usize>> =
                    (0..x.rows()).map(|i| apgd::top_other_classes(logits.row(i), y[i], targets)).collect();
                // by_rank[t][i]: image i's (t+1)-th best other class.
                let by_rank: Vec<Vec<usize>> = (0..targets).map(|t| ranked.iter().map(|r| r[t]).collect()).collect();
                let mut fooled = vec![false; x.rows()];
                for target_of in &by_rank {
                    let left: Vec<usize> = (0..x.rows()).filter(|&i| !fooled[i]).collect();
                    if left.is_empty() {
                        break;
                    }
                    let sub_y: Vec<usize> = left.iter().map(|&i| y[i]).collect();
                    let sub_t: Vec<usize> = left.iter().map(|&i| target_of[i]).collect();
                    let f = apgd_with_restarts(
                        model,
                        &run,
                        params.restarts,
                        &x.select_rows(&left),
                        &sub_y,
                        Some(&sub_t),
                        rng,
                    );
                    for (k, &i) in left.iter().enumerate() {
                        fooled[i] = f[k];
                    }
                }
                fooled
            }))
        }
        AttackName::Surrogate => {
            let Some(surrogate) = helpers.surrogate else {
                return Err("no surrogate for this model (its gradient needs none)".into());
            };
            Ok(in_batches(rows, images, labels, seed, stage, |x, y, rng| {
                // The surrogate's logits are the model's own, so "fooled" is judged by the exact forward.
                apgd_with_restarts(surrogate, &ce, params.restarts, x, y, None, rng)
            }))
        }
        AttackName::Transfer => {
            let Some(source) = helpers.source else {
                return Err("no source model given".into());
            };
            let run = ApgdRun { early_stop: false, ..ce };
            Ok(in_batches(rows, images, labels, seed, stage, |x, y, rng| {
                let outcome = apgd::apgd(source, &run, x, y, None, rng);
                misclassified(model, &outcome.adversarial, y)
            }))
        }
        AttackName::Square => {
            if params.norm != Norm::Linf {
                return Err("the Square attack is L∞ only".into());
            }
            Ok(in_batches(rows, images, labels, seed, stage, |x, y, rng| {
                let (adv, _) = square_attack(model, x, y, false, eps, params.square_queries, params.square_p_init, rng);
                misclassified(model, &adv, y)
            }))
        }
        other => Err(format!("{other} is not a member of the ensemble")),
    }
}

/// Why `attack` cannot run on `model` with these helpers and settings (`None`: it can). Checked
/// before each attack, so that progress never announces an attack that is then skipped, and before
/// any, so that an ensemble in which nothing can run is refused instead of reporting clean accuracy
/// as its worst case.
pub fn not_applicable<B: Backend, M: Classifier<B>>(
    attack: AttackName,
    model: &M,
    helpers: &Helpers<'_, B>,
    params: &EnsembleParams,
) -> Option<String> {
    match attack {
        AttackName::ApgdCe => None,
        AttackName::ApgdT => (model.classes() < 4).then(|| "the DLR loss needs at least 4 classes".into()),
        AttackName::Surrogate => {
            helpers.surrogate.is_none().then(|| "no surrogate for this model (its gradient needs none)".into())
        }
        AttackName::Transfer => helpers.source.is_none().then(|| "no source model given".into()),
        AttackName::Square => (params.norm != Norm::Linf).then(|| "the Square attack is L∞ only".into()),
        other => Some(format!("{other} is not a member of the ensemble")),
    }
}

/// The ensemble at every radius of `eps_grid` on `(images, labels)` (pixels in [0, 1]).
/// `progress(message)` is called before each attack.
pub fn strongest<B: Backend, M: Classifier<B>>(
    model: &M,
    helpers: Helpers<'_, B>,
    params: &EnsembleParams,
    eps_grid: &[f32],
    images: &Matrix,
    labels: &[usize],
    mut progress: impl FnMut(&str),
) -> Result<EnsembleReport, EvalError> {
    params.check()?;
    if eps_grid.is_empty() {
        return Err(EvalError::invalid("eps", "the grid of radii is empty"));
    }
    if let Some(e) = eps_grid.iter().find(|e| !e.is_finite() || **e < 0.0) {
        return Err(EvalError::invalid("eps", format!("every radius must be a finite number ≥ 0, got {e}")));
    }
    check_inputs(model, images, labels)?;
    bio_core::pixels::check_unit_pixels(images).map_err(|e| EvalError::invalid("images", e.to_string()))?;
    for (what, other) in [("source", helpers.source), ("surrogate", helpers.surrogate)] {
        if let Some(o) = other
            && (o.input_dim() != model.input_dim() || o.classes() != model.classes())
        {
            return Err(EvalError::invalid(
                if what == "source" { "source" } else { "surrogate" },
                format!(
                    "the {what} model takes {} inputs into {} classes, the attacked model {} into {}",
                    o.input_dim(),
                    o.classes(),
                    model.input_dim(),
                    model.classes()
                ),
            ));
        }
    }
    let n = images.rows();
    let clean_correct = {
        let mut ok = Vec::with_capacity(n);
        for start in (0..n).step_by(DEFAULT_BATCH) {
            let rows: Vec<usize> = (start..(start + DEFAULT_BATCH).min(n)).collect();
            let y: Vec<usize> = rows.iter().map(|&i| labels[i]).collect();
            ok.extend(misclassified(model, &images.select_rows(&rows), &y).into_iter().map(|m| !m));
        }
        ok
    };
    let clean = clean_correct.iter().filter(|&&c| c).count();
    let attacks: Vec<AttackName> =
        AttackName::ENSEMBLE.iter().copied().filter(|a| params.attacks.contains(a)).collect();
    let skipped: Vec<Option<String>> = attacks.iter().map(|&a| not_applicable(a, model, &helpers, params)).collect();
    if eps_grid.iter().any(|&e| e > 0.0) && skipped.iter().all(Option::is_some) {
        let why: Vec<String> = attacks
            .iter()
            .zip(&skipped)
            .map(|(a, s)| format!("{}: {}", a.name(), s.as_deref().unwrap_or("")))
            .collect();
        return Err(EvalError::invalid(
            "attack",
            format!("none of the attacks applies to this model, so nothing would be measured ({})", why.join("; ")),
        ));
    }

    let mut points = Vec::with_capacity(eps_grid.len());
    let mut sanity = Vec::new();
    for &eps in eps_grid {
        let mut robust = clean_correct.clone();
        let mut stages: Vec<StageResult> = Vec::with_capacity(attacks.len());
        let mut white_box_fooled = vec![false; n];
        for (position, &attack) in attacks.iter().enumerate() {
            let everyone = position == 0 || params.independent;
            let rows: Vec<usize> = (0..n).filter(|&i| if everyone { clean_correct[i] } else { robust[i] }).collect();
            let started = Instant::now();
            let outcome = if eps == 0.0 {
                Ok(vec![false; rows.len()])
            } else if let Some(reason) = &skipped[position] {
                progress(&format!("eps {eps}: {} skipped ({reason})", attack.name()));
                Err(reason.clone())
            } else {
                progress(&format!("eps {eps}: {} on {} images", attack.name(), rows.len()));
                run_attack(attack, model, &helpers, params, eps, &rows, images, labels)
            };
            let seconds = started.elapsed().as_secs_f64();
            let mut fooled_images = vec![false; n];
            let (ran, note) = match outcome {
                Ok(fooled) => {
                    for (k, &i) in rows.iter().enumerate() {
                        fooled_images[i] = fooled[k];
                    }
                    (true, None)
                }
                Err(reason) => (false, Some(reason)),
            };
            let fooled = fooled_images.iter().filter(|&&f| f).count();
            for i in 0..n {
                robust[i] &= !fooled_images[i];
                if attack.white_box() {
                    white_box_fooled[i] |= fooled_images[i];
                }
            }
            let robust_count = robust.iter().filter(|&&r| r).count();
            stages.push(StageResult {
                attack,
                ran,
                attacked: if ran { rows.len() } else { 0 },
                fooled,
                robust_after: ratio(robust_count, n),
                own_accuracy: (ran && everyone).then(|| ratio(rows.len() - fooled, n)),
                // Counted below, once every white-box attack has run.
                fooled_only_by_it: (!attack.white_box() && ran).then_some(0),
                seconds,
                images_per_second: if ran && seconds > 0.0 { rows.len() as f64 / seconds } else { 0.0 },
                note,
                fooled_images,
            });
        }
        for s in &mut stages {
            if let Some(only) = &mut s.fooled_only_by_it {
                *only = (0..n).filter(|&i| s.fooled_images[i] && !white_box_fooled[i]).count();
            }
        }
        let fooled_by: Vec<Vec<bool>> = stages.iter().map(|s| s.fooled_images.clone()).collect();
        let robust_images = worst_case(&clean_correct, &fooled_by);
        let robust_count = robust_images.iter().filter(|&&r| r).count();
        if params.sanity && eps > 0.0 {
            sanity.extend(black_box_flags(eps, &stages, n));
            if attacks.contains(&AttackName::ApgdCe) {
                progress(&format!("eps {eps}: sanity check, apgd-ce with a quarter of the iterations"));
                sanity.push(more_steps_flag(model, params, eps, &stages, &clean_correct, images, labels));
            }
        }
        points.push(EnsemblePoint {
            eps,
            samples: n,
            accuracy: ratio(robust_count, n),
            robust: robust_count,
            stages,
            robust_images,
        });
    }
    if params.sanity {
        progress(&format!("sanity check: apgd-ce at a large radius on {clean} images"));
        sanity.insert(0, large_eps_flag(model, params, &clean_correct, images, labels));
    }
    Ok(EnsembleReport { params: params.clone(), samples: n, clean_accuracy: ratio(clean, n), points, sanity })
}

fn black_box_flags(eps: f32, stages: &[StageResult], n: usize) -> Vec<SanityFlag> {
    stages
        .iter()
        .filter_map(|s| {
            let only = s.fooled_only_by_it?;
            let value = ratio(only, n);
            Some(SanityFlag {
                check: SanityCheck::BlackBox,
                eps,
                value,
                reference: 0.0,
                tolerance: BLACK_BOX_TOLERANCE,
                failed: value > BLACK_BOX_TOLERANCE,
                detail: format!(
                    "{} fooled {only} images ({:.2}%) that every white-box gradient attack left robust",
                    s.attack.name(),
                    100.0 * value
                ),
            })
        })
        .collect()
}

fn more_steps_flag<B: Backend, M: Classifier<B>>(
    model: &M,
    params: &EnsembleParams,
    eps: f32,
    stages: &[StageResult],
    clean_correct: &[bool],
    images: &Matrix,
    labels: &[usize],
) -> SanityFlag {
    let n = images.rows();
    let full = stages.iter().find(|s| s.attack == AttackName::ApgdCe).and_then(|s| s.own_accuracy).unwrap_or(0.0);
    let short_iterations = (params.iterations / 4).max(1);
    let rows: Vec<usize> = (0..n).filter(|&i| clean_correct[i]).collect();
    let short_run = ApgdRun {
        norm: params.norm,
        eps,
        iterations: short_iterations,
        loss: ApgdLoss::CrossEntropy,
        early_stop: true,
    };
    let fooled = in_batches(&rows, images, labels, params.seed, 100, |x, y, rng| {
        apgd_with_restarts(model, &short_run, params.restarts, x, y, None, rng)
    });
    let short = ratio(rows.len() - fooled.iter().filter(|&&f| f).count(), n);
    SanityFlag {
        check: SanityCheck::MoreSteps,
        eps,
        value: full,
        reference: short,
        tolerance: MORE_STEPS_TOLERANCE,
        failed: full - short > MORE_STEPS_TOLERANCE,
        detail: format!(
            "apgd-ce with {} iterations leaves {:.2}% robust, with {short_iterations} iterations {:.2}%",
            params.iterations,
            100.0 * full,
            100.0 * short
        ),
    }
}

fn large_eps_flag<B: Backend, M: Classifier<B>>(
    model: &M,
    params: &EnsembleParams,
    clean_correct: &[bool],
    images: &Matrix,
    labels: &[usize],
) -> SanityFlag {
    let n = images.rows();
    let eps = match params.norm {
        Norm::Linf => LARGE_EPS,
        Norm::L2 => LARGE_EPS * (images.cols() as f32).sqrt(),
    };
    let rows: Vec<usize> = (0..n).filter(|&i| clean_correct[i]).collect();
    let run = ApgdRun {
        norm: params.norm,
        eps,
        iterations: params.iterations,
        loss: ApgdLoss::CrossEntropy,
        early_stop: true,
    };
    let fooled = in_batches(&rows, images, labels, params.seed, 101, |x, y, rng| {
        apgd_with_restarts(model, &run, params.restarts, x, y, None, rng)
    });
    let value = ratio(rows.len() - fooled.iter().filter(|&&f| f).count(), n);
    SanityFlag {
        check: SanityCheck::LargeEps,
        eps,
        value,
        reference: 0.0,
        tolerance: LARGE_EPS_TOLERANCE,
        failed: value > LARGE_EPS_TOLERANCE,
        detail: format!("apgd-ce at eps {eps} ({}) leaves {:.2}% robust", params.norm.name(), 100.0 * value),
    }
}
