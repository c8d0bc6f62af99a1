//! Adversarial attacks and robustness curves, following the conventions of torchattacks, advertorch
//! and CleverHans.
//!
//! * [`AttackName::Fgsm`]: one signed-gradient step of size `eps` (L∞).
//! * [`AttackName::Pgd`]: projected gradient descent (Madry et al. 2018) in the L∞ or L2 ball, with an
//!   optional random start; the final iterate is returned (as torchattacks and advertorch do).
//! * [`AttackName::Square`]: the gradient-free, score-based Square attack (Andriushchenko et al. 2020,
//!   L∞ version) with the margin loss and the paper's schedule of the square size. A model that resists
//!   PGD but not the Square attack is masking its gradients rather than being robust; see
//!   [`masking_check`].
//!
//! Inputs are images with pixels in [0, 1]; every adversarial example stays within `eps` of its clean
//! input (in the attack's norm) and within [0, 1]. The gradient attacks run entirely with backend
//! operations on the backend holding the model; random numbers are drawn on the host from a seeded
//! [`ChaCha8Rng`] and uploaded, so the same seed gives the same adversarial images. The Square attack
//! builds its sparse random candidates on the host (where its random numbers are drawn) and queries the
//! model on the backend. Batches run one after the other: the backends are multi-threaded already.
//!
//! Parameters come in the unchecked [`AttackParams`] (serde, CLI) and become an [`Attack`] through
//! [`AttackParams::check`], which names the offending CLI flag on error.

use bio_core::{Backend, Binary, Classifier, Dim, Matrix, Reduce, Unary};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::accuracy::{check_inputs, for_each_batch};
use crate::error::EvalError;

/// Default grid of perturbation budgets for [`robustness_curve`] (L∞, pixels in [0, 1]).
pub const DEFAULT_EPS_GRID: [f32; 7] = [0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3];
/// Default budget of a single attack.
pub const DEFAULT_EPS: f32 = 0.1;
/// Default number of PGD steps (the MNIST challenge's PGD-40).
pub const DEFAULT_STEPS: usize = 40;
/// Default L∞ PGD step size (MNIST challenge convention), whatever `eps`.
pub const DEFAULT_LINF_STEP_SIZE: f32 = 0.01;
/// Default L2 PGD step size is `L2_STEP_FACTOR · eps / steps` (so 40 steps can travel 2.5 radii).
pub const L2_STEP_FACTOR: f32 = 2.5;
/// Default query budget of the Square attack per image (1000).
pub const DEFAULT_QUERIES: usize = 1000;
/// Default initial fraction of pixels in each Square-attack square, `p_init`: 0.8, as in AutoAttack and
/// the authors' MNIST-challenge run (their code's 0.05 is tuned for ImageNet-sized images). On 28×28
/// Fashion-MNIST with 1000 queries, 0.3–0.8 left about 4 points less robust accuracy than 0.05.
pub const DEFAULT_P_INIT: f32 = 0.8;
/// Default number of images attacked at once.
pub const DEFAULT_BATCH: usize = 500;
/// [`masking_check`] flags gradient masking only when the gradient-free attack leaves a robust
/// accuracy lower than PGD's by more than this (0.01 = one percentage point) *and* by more than
/// chance allows ([`MASKING_Z`]).
pub const MASKING_TOLERANCE: f64 = 0.01;
/// One-sided z of the significance test of [`masking_check`] (1.645: 5% false alarms when the two
/// attacks are equally strong).
pub const MASKING_Z: f64 = 1.645;

/// The norm of the perturbation ball: the one vocabulary of norms (`--norm`, the sweep, Python,
/// the saved JSON all spell it `linf` or `l2`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    /// Largest absolute pixel change.
    #[default]
    Linf,
    /// Euclidean length of the change.
    L2,
}

impl Norm {
    /// Every norm.
    pub const ALL: [Norm; 2] = [Norm::Linf, Norm::L2];

    /// `"linf"` or `"l2"`.
    pub fn name(self) -> &'static str {
        match self {
            Norm::Linf => "linf",
            Norm::L2 => "l2",
        }
    }

    /// `"L∞"` or `"L2"`, for titles and tables.
    pub fn symbol(self) -> &'static str {
        match self {
            Norm::Linf => "L∞",
            Norm::L2 => "L2",
        }
    }
}

impl std::fmt::Display for Norm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Norm {
    type Err = EvalError;
    /// A norm by name (`linf`, `l2`); the error lists the names.
    fn from_str(s: &str) -> Result<Self, EvalError> {
        Norm::ALL.into_iter().find(|n| n.name() == s).ok_or_else(|| {
            invalid("norm", format!("unknown norm `{s}` (known: {})", names(Norm::ALL.iter().map(|n| n.name()))))
        })
    }
}

fn names<'a>(list: impl IntoIterator<Item = &'a str>) -> String {
    list.into_iter().collect::<Vec<_>>().join(", ")
}

/// Every attack by its name: the one vocabulary of attacks. The command line (`--attack`), the
/// sweep's `eval.attacks`, Python's `attack=` and the saved JSON all read and write these names,
/// and every error listing the attacks takes the list from [`AttackName::ALL`].
///
/// `fgsm`, `pgd`, `pgd-l2` and `square` run alone through [`AttackParams`] ([`robustness_curve`],
/// [`perturb`]); `apgd-ce`, `apgd-t`, `surrogate`, `transfer` and `square` are the members of the
/// ensemble ([`crate::ensemble`]), and `strongest` is the ensemble of all of them scored as the worst
/// case per image ([`AttackName::members`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum AttackName {
    /// Fast gradient sign method (L∞, one step).
    Fgsm,
    /// Projected gradient descent in the L∞ ball.
    Pgd,
    /// Projected gradient descent in the L2 ball.
    #[cfg_attr(feature = "clap", value(name = "pgd-l2"))]
    PgdL2,
    /// The gradient-free Square attack (L∞).
    Square,
    /// APGD with the cross-entropy loss (Croce & Hein 2020).
    #[cfg_attr(feature = "clap", value(name = "apgd-ce"))]
    ApgdCe,
    /// APGD with the targeted DLR loss, one run per target among the top other classes.
    #[cfg_attr(feature = "clap", value(name = "apgd-t"))]
    ApgdT,
    /// APGD-CE through a smooth stand-in of k-WTA in the backward pass (BPDA; `bio` models).
    Surrogate,
    /// APGD-CE examples crafted on a source model, scored on the attacked one.
    Transfer,
    /// The ensemble: apgd-ce, apgd-t, surrogate, transfer (with a source model) and Square (5000
    /// queries), scored as the worst case per image, with sanity checks.
    Strongest,
}

impl AttackName {
    /// Every attack, in the order `--help` lists them.
    pub const ALL: [AttackName; 9] = [
        AttackName::Fgsm,
        AttackName::Pgd,
        AttackName::PgdL2,
        AttackName::Square,
        AttackName::ApgdCe,
        AttackName::ApgdT,
        AttackName::Surrogate,
        AttackName::Transfer,
        AttackName::Strongest,
    ];

    /// The members of the ensemble, in the order it runs them.
    pub const ENSEMBLE: [AttackName; 5] =
        [AttackName::ApgdCe, AttackName::ApgdT, AttackName::Surrogate, AttackName::Transfer, AttackName::Square];

    /// The name as the command line, the sweep, Python and the JSON spell it.
    pub fn name(self) -> &'static str {
        match self {
            AttackName::Fgsm => "fgsm",
            AttackName::Pgd => "pgd",
            AttackName::PgdL2 => "pgd-l2",
            AttackName::Square => "square",
            AttackName::ApgdCe => "apgd-ce",
            AttackName::ApgdT => "apgd-t",
            AttackName::Surrogate => "surrogate",
            AttackName::Transfer => "transfer",
            AttackName::Strongest => "strongest",
        }
    }

    /// `names` as `a, b, c`, for messages.
    pub fn list(names: &[AttackName]) -> String {
        self::names(names.iter().map(|a| a.name()))
    }

    /// The ensemble members this name runs through [`crate::strongest`] (`strongest`: all of
    /// them; `apgd-ce`, `apgd-t`, `surrogate`, `transfer`: itself alone); `None` for the attacks
    /// that run alone through [`AttackParams`] (`fgsm`, `pgd`, `pgd-l2`, `square`).
    pub fn members(self) -> Option<Vec<AttackName>> {
        match self {
            AttackName::Fgsm | AttackName::Pgd | AttackName::PgdL2 | AttackName::Square => None,
            AttackName::Strongest => Some(AttackName::ENSEMBLE.to_vec()),
            other => Some(vec![other]),
        }
    }

    /// Whether the attack is a member of the ensemble.
    pub fn in_ensemble(self) -> bool {
        AttackName::ENSEMBLE.contains(&self)
    }

    /// Whether the attack uses the attacked model's own gradients (exact or surrogate).
    pub fn white_box(self) -> bool {
        matches!(
            self,
            AttackName::Fgsm
                | AttackName::Pgd
                | AttackName::PgdL2
                | AttackName::ApgdCe
                | AttackName::ApgdT
                | AttackName::Surrogate
        )
    }
}

impl std::fmt::Display for AttackName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for AttackName {
    type Err = EvalError;
    /// An attack by name; the error lists every name.
    fn from_str(s: &str) -> Result<Self, EvalError> {
        AttackName::ALL.into_iter().find(|a| a.name() == s).ok_or_else(|| {
            invalid("attack", format!("unknown attack `{s}` (known: {})", AttackName::list(&AttackName::ALL)))
        })
    }
}

/// Which class a targeted attack pushes each image toward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetMode {
    /// The same class for every image.
    Class(usize),
    /// For each image, a class drawn uniformly among those other than its (attacked) label, seeded.
    Random,
}

/// Unchecked attack parameters, as given on the command line or in a config file.
/// Call [`AttackParams::check`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AttackParams {
    /// The attack: `fgsm`, `pgd`, `pgd-l2` (PGD with `norm` L2 whatever `norm` says) or `square`.
    pub kind: AttackName,
    /// Norm of the ball (only PGD supports [`Norm::L2`]).
    pub norm: Norm,
    /// Radius of the ball.
    pub eps: f32,
    /// PGD iterations.
    pub steps: usize,
    /// PGD step size; `None`: [`DEFAULT_LINF_STEP_SIZE`] for L∞, `L2_STEP_FACTOR·eps/steps` for L2.
    pub step_size: Option<f32>,
    /// PGD starts from a uniformly random point of the ball.
    pub random_start: bool,
    /// Square attack: model queries per image.
    pub queries: usize,
    /// Square attack: initial fraction of pixels in each square, `p_init` in (0, 1].
    pub p_init: f32,
    /// Targeted attack (`None`: untargeted).
    pub target: Option<TargetMode>,
    /// Attack the model's own clean predictions instead of the labels (avoids label leaking).
    pub use_predictions: bool,
}

impl Default for AttackParams {
    fn default() -> Self {
        Self {
            kind: AttackName::Pgd,
            norm: Norm::Linf,
            eps: DEFAULT_EPS,
            steps: DEFAULT_STEPS,
            step_size: None,
            random_start: true,
            queries: DEFAULT_QUERIES,
            p_init: DEFAULT_P_INIT,
            target: None,
            use_predictions: false,
        }
    }
}

/// A validated attack method with every default resolved.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Fast gradient sign method (L∞).
    Fgsm,
    /// Projected gradient descent.
    Pgd {
        /// Norm of the ball.
        norm: Norm,
        /// Iterations.
        steps: usize,
        /// Step length (per pixel for L∞, Euclidean for L2).
        step_size: f32,
        /// Start from a random point of the ball.
        random_start: bool,
    },
    /// Square attack (L∞).
    Square {
        /// Model queries per image.
        queries: usize,
        /// Initial fraction of pixels in each square.
        p_init: f32,
    },
}

/// A validated attack: made by [`AttackParams::check`].
#[derive(Clone, Debug, PartialEq)]
pub struct Attack {
    params: AttackParams,
    method: Method,
}

fn invalid(name: &'static str, reason: impl Into<String>) -> EvalError {
    EvalError::invalid(name, reason)
}

/// Refuses an L∞ radius above 1: pixels lie in [0, 1], so a ball of radius 1 already holds every
/// image, and a larger radius only looks like a stronger attack (`eps ≤ 1`). Used by
/// [`AttackParams::check`] and by the front ends' grids of radii.
pub fn check_linf_radius(eps: f32) -> Result<(), EvalError> {
    if eps > 1.0 {
        return Err(invalid(
            "eps",
            format!("{eps} is above 1, and an L∞ ball of radius 1 already holds every image in [0, 1]"),
        ));
    }
    Ok(())
}

impl AttackParams {
    /// Validates the parameters, naming the CLI flag of the first bad one. `pgd-l2` becomes `pgd`
    /// with `norm` L2 in the checked attack's parameters.
    pub fn check(mut self) -> Result<Attack, EvalError> {
        if self.kind == AttackName::PgdL2 {
            (self.kind, self.norm) = (AttackName::Pgd, Norm::L2);
        }
        if self.kind.members().is_some() {
            return Err(invalid(
                "attack",
                format!(
                    "{} is run by the ensemble (`bio_eval::strongest`); a single attack is one of {}",
                    self.kind,
                    AttackName::list(&[AttackName::Fgsm, AttackName::Pgd, AttackName::PgdL2, AttackName::Square])
                ),
            ));
        }
        if !self.eps.is_finite() || self.eps < 0.0 {
            return Err(invalid("eps", format!("must be a finite number ≥ 0, got {}", self.eps)));
        }
        if self.norm == Norm::Linf {
            check_linf_radius(self.eps)?;
        }
        if let Some(s) = self.step_size
            && !(s.is_finite() && s > 0.0)
        {
            return Err(invalid("step-size", format!("must be a finite number > 0, got {s}")));
        }
        if self.norm == Norm::L2 && self.kind != AttackName::Pgd {
            return Err(invalid(
                "norm",
                format!("the {} attack is L∞ only; use `linf` or the PGD attack", self.kind.name()),
            ));
        }
        let method = match self.kind {
            AttackName::Fgsm => Method::Fgsm,
            AttackName::Square => {
                if self.queries == 0 {
                    return Err(invalid("queries", "the Square attack needs at least one query"));
                }
                if !(self.p_init > 0.0 && self.p_init <= 1.0) {
                    return Err(invalid("p-init", format!("must be in (0, 1], got {}", self.p_init)));
                }
                Method::Square { queries: self.queries, p_init: self.p_init }
            }
            // PGD (ensemble names were refused above).
            _ => {
                if self.steps == 0 {
                    return Err(invalid("steps", "PGD needs at least one step"));
                }
                let step_size = self.step_size.unwrap_or(match self.norm {
                    Norm::Linf => DEFAULT_LINF_STEP_SIZE,
                    Norm::L2 => L2_STEP_FACTOR * self.eps / self.steps as f32,
                });
                Method::Pgd { norm: self.norm, steps: self.steps, step_size, random_start: self.random_start }
            }
        };
        Ok(Attack { params: self, method })
    }
}

impl Attack {
    /// The parameters it was checked from.
    pub fn params(&self) -> &AttackParams {
        &self.params
    }
    /// The method, with defaults resolved.
    pub fn method(&self) -> Method {
        self.method
    }
    /// Radius of the ball.
    pub fn eps(&self) -> f32 {
        self.params.eps
    }
    /// Norm of the ball.
    pub fn norm(&self) -> Norm {
        match self.method {
            Method::Pgd { norm, .. } => norm,
            _ => Norm::Linf,
        }
    }
    /// Targeted mode, if any.
    pub fn target(&self) -> Option<TargetMode> {
        self.params.target
    }
    /// Whether the model's own predictions are attacked instead of the labels.
    pub fn use_predictions(&self) -> bool {
        self.params.use_predictions
    }
    /// The same attack with another radius (defaults that depend on `eps` are recomputed).
    pub fn with_eps(&self, eps: f32) -> Result<Attack, EvalError> {
        AttackParams { eps, ..self.params.clone() }.check()
    }
}

/// Adversarial versions of `x` (pixels in [0, 1], one row per image) against `model`, attacking
/// `labels` (or the model's clean predictions, or a target; see [`AttackParams`]). Works in batches of
/// [`DEFAULT_BATCH`]; each batch's random numbers come from `seed` and the batch's first row, so the same
/// seed gives identical images.
pub fn perturb<B: Backend, M: Classifier<B>>(
    model: &M,
    attack: &Attack,
    x: &Matrix,
    labels: &[usize],
    seed: u64,
) -> Result<Matrix, EvalError> {
    check_all(model, attack, x, labels)?;
    let mut out = Vec::with_capacity(x.len());
    for_each_batch(x, labels, DEFAULT_BATCH, |start, xb, yb| {
        let adv = attack_batch(model, attack, xb, yb, &mut batch_rng(seed, start));
        out.extend_from_slice(model.backend().download(&adv.x).as_slice());
        Ok::<_, EvalError>(())
    })?;
    Ok(Matrix::new(x.rows(), x.cols(), out)?)
}

/// Robust accuracy at one radius.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RobustPoint {
    /// Radius of the ball.
    pub eps: f32,
    /// Fraction of samples classified correctly on both the clean and the adversarial input.
    pub accuracy: f64,
    /// Number of such samples.
    pub correct: usize,
    /// Number of samples attacked.
    pub samples: usize,
    /// PGD step size actually used at this radius.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_size: Option<f32>,
    /// Targeted attacks: fraction of adversarial inputs classified as their target, among samples whose
    /// true label is not the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_rate: Option<f64>,
    /// Square attack: mean number of model queries per image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_queries: Option<f64>,
}

/// Robust accuracy against one attack over a grid of radii.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RobustnessCurve {
    /// `fgsm`, `pgd` or `square` (an L2 PGD curve is `pgd` with `norm` L2).
    pub attack: AttackName,
    /// Norm of the ball.
    pub norm: Norm,
    /// PGD iterations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    /// PGD step size as configured (`None`: the default, see [`AttackParams::step_size`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_size: Option<f32>,
    /// PGD random start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_start: Option<bool>,
    /// Square attack query budget per image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queries: Option<usize>,
    /// Square attack initial square fraction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_init: Option<f32>,
    /// Targeted mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetMode>,
    /// Whether the model's predictions were attacked instead of the labels.
    pub use_predictions: bool,
    /// Seed of the attack's random numbers.
    pub seed: u64,
    /// Number of samples.
    pub samples: usize,
    /// Clean accuracy on those samples.
    pub clean_accuracy: f64,
    /// One point per radius, in the order of the grid.
    pub points: Vec<RobustPoint>,
}

/// Robust accuracy of `model` against the attack `params` at each radius of `eps_grid` (the `eps` of
/// `params` is ignored), on `(images, labels)` in batches of `batch`. A sample counts as robust only
/// if it is classified correctly on its clean input and on its adversarial input, so at eps 0 the
/// robust accuracy equals the clean accuracy. `progress(done, total)` is called after each batch, with
/// `total = eps_grid.len() · images.rows()`. Each radius uses the same seed (common random numbers).
#[allow(clippy::too_many_arguments)]
pub fn robustness_curve<B: Backend, M: Classifier<B>>(
    model: &M,
    params: &AttackParams,
    eps_grid: &[f32],
    images: &Matrix,
    labels: &[usize],
    batch: usize,
    seed: u64,
    mut progress: impl FnMut(usize, usize),
) -> Result<RobustnessCurve, EvalError> {
    if eps_grid.is_empty() {
        return Err(invalid("eps", "the grid of radii is empty"));
    }
    if batch == 0 {
        return Err(invalid("batch", "must be at least 1"));
    }
    let attacks =
        eps_grid.iter().map(|&eps| AttackParams { eps, ..params.clone() }.check()).collect::<Result<Vec<_>, _>>()?;
    check_all(model, &attacks[0], images, labels)?;
    let b = model.backend();
    let n = images.rows();
    let total = n * eps_grid.len();

    let mut clean_ok = Vec::with_capacity(n);
    for_each_batch(images, labels, batch, |_, x, y| {
        clean_ok.extend(model.predict(&b.upload(x)).iter().zip(y).map(|(p, t)| p == t));
        Ok::<_, EvalError>(())
    })?;
    let clean_correct = clean_ok.iter().filter(|&&c| c).count();

    let mut points = Vec::with_capacity(attacks.len());
    for (k, attack) in attacks.iter().enumerate() {
        let (mut correct, mut hits, mut eligible, mut queries) = (0usize, 0usize, 0usize, 0usize);
        for_each_batch(images, labels, batch, |start, x, y| {
            let adv = attack_batch(model, attack, x, y, &mut batch_rng(seed, start));
            let pred = model.predict(&adv.x);
            for (i, (&p, &t)) in pred.iter().zip(y).enumerate() {
                correct += usize::from(clean_ok[start + i] && p == t);
                if let Some(targets) = &adv.targets
                    && targets[i] != t
                {
                    eligible += 1;
                    hits += usize::from(p == targets[i]);
                }
            }
            queries += adv.queries.iter().flatten().sum::<usize>();
            progress(k * n + start + y.len(), total);
            Ok::<_, EvalError>(())
        })?;
        let method = attack.method();
        points.push(RobustPoint {
            eps: attack.eps(),
            accuracy: ratio(correct, n),
            correct,
            samples: n,
            step_size: match method {
                Method::Pgd { step_size, .. } => Some(step_size),
                _ => None,
            },
            target_rate: attack.target().map(|_| ratio(hits, eligible)),
            mean_queries: matches!(method, Method::Square { .. }).then(|| queries as f64 / n.max(1) as f64),
        });
    }
    let kind = attacks[0].params().kind;
    let (pgd, square) = (kind == AttackName::Pgd, kind == AttackName::Square);
    Ok(RobustnessCurve {
        attack: kind,
        norm: attacks[0].norm(),
        steps: pgd.then_some(params.steps),
        step_size: if pgd { params.step_size } else { None },
        random_start: pgd.then_some(params.random_start),
        queries: square.then_some(params.queries),
        p_init: square.then_some(params.p_init),
        target: params.target,
        use_predictions: params.use_predictions,
        seed,
        samples: n,
        clean_accuracy: ratio(clean_correct, n),
        points,
    })
}

/// The comparison of a gradient attack and a gradient-free attack at one radius.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaskingFlag {
    /// Radius.
    pub eps: f32,
    /// Robust accuracy left by the gradient attack (PGD).
    pub gradient_accuracy: f64,
    /// Robust accuracy left by the gradient-free attack (Square).
    pub gradient_free_accuracy: f64,
    /// `gradient_accuracy − gradient_free_accuracy`, in fractions (0.01 = one point).
    pub gap: f64,
    /// The gap above which `masking` is set: the larger of [`MASKING_TOLERANCE`] and
    /// [`MASKING_Z`] standard errors of the difference of the two accuracies (0 in files written
    /// before it was recorded).
    #[serde(default)]
    pub threshold: f64,
    /// Images each accuracy is measured on.
    #[serde(default)]
    pub samples: usize,
    /// True when the gap exceeds `threshold`: the gradient-free attack is stronger than the gradient
    /// attack beyond chance, a sign of gradient masking (the PGD robustness is not to be trusted).
    pub masking: bool,
}

/// The gap of [`masking_check`] beyond which the gradient-free attack is stronger than chance
/// allows, for accuracies `a` and `b` measured on `n` images each:
/// `max(MASKING_TOLERANCE, MASKING_Z · √((a(1−a) + b(1−b)) / n))`, the one-sided two-proportion
/// z-test at 5%. It treats the two accuracies as independent, which overstates the noise of two
/// attacks on the same images: a gap past it is masking with at least 95% confidence, and a small
/// sample (3 images of 200: 1.5 points, against a threshold of about 8 points at 50% accuracy) is
/// not called masking.
pub fn masking_threshold(a: f64, b: f64, n: usize) -> f64 {
    let se = ((a * (1.0 - a) + b * (1.0 - b)) / n.max(1) as f64).max(0.0).sqrt();
    MASKING_TOLERANCE.max(MASKING_Z * se)
}

/// Compares a PGD curve with a gradient-free (Square) curve at every radius the two share (equal
/// within 1e-6), in the order of `pgd`. Each entry's `masking` is set when the gradient-free attack
/// leaves a robust accuracy lower than PGD's by more than [`masking_threshold`] (at least one
/// percentage point, and more than chance on the images measured).
pub fn masking_check(pgd: &RobustnessCurve, gradient_free: &RobustnessCurve) -> Vec<MaskingFlag> {
    pgd.points
        .iter()
        .filter_map(|p| {
            let q = gradient_free.points.iter().find(|q| (q.eps - p.eps).abs() <= 1e-6)?;
            let gap = p.accuracy - q.accuracy;
            let samples = p.samples.min(q.samples);
            let threshold = masking_threshold(p.accuracy, q.accuracy, samples);
            Some(MaskingFlag {
                eps: p.eps,
                gradient_accuracy: p.accuracy,
                gradient_free_accuracy: q.accuracy,
                gap,
                threshold,
                samples,
                masking: gap > threshold,
            })
        })
        .collect()
}

fn ratio(a: usize, b: usize) -> f64 {
    a as f64 / b.max(1) as f64
}

/// The random-number generator of the batch starting at row `start`.
fn batch_rng(seed: u64, start: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(start as u64);
    rng
}

/// Shapes, labels, pixel range and the target class.
fn check_all<B: Backend, M: Classifier<B>>(
    model: &M,
    attack: &Attack,
    x: &Matrix,
    labels: &[usize],
) -> Result<(), EvalError> {
    check_inputs(model, x, labels)?;
    bio_core::pixels::check_unit_pixels(x).map_err(|e| invalid("images", e.to_string()))?;
    match attack.target() {
        Some(TargetMode::Class(c)) if c >= model.classes() => {
            Err(invalid("target", format!("class {c} but the model has {} classes", model.classes())))
        }
        Some(TargetMode::Random) if model.classes() < 2 => {
            Err(invalid("target", "a random other class needs at least two classes"))
        }
        _ => Ok(()),
    }
}

/// One attacked batch.
struct Adversarial<B: Backend> {
    /// The adversarial inputs, on the backend.
    x: B::Tensor,
    /// The target of each sample (targeted attacks).
    targets: Option<Vec<usize>>,
    /// Queries spent per sample (Square attack).
    queries: Option<Vec<usize>>,
}

fn attack_batch<B: Backend, M: Classifier<B>>(
    model: &M,
    attack: &Attack,
    x: &Matrix,
    labels: &[usize],
    rng: &mut ChaCha8Rng,
) -> Adversarial<B> {
    let b = model.backend();
    let x0 = b.upload(x);
    let attacked = if attack.use_predictions() { model.predict(&x0) } else { labels.to_vec() };
    let targets = attack.target().map(|mode| match mode {
        TargetMode::Class(c) => vec![c; attacked.len()],
        TargetMode::Random => attacked
            .iter()
            .map(|&y| {
                let r = rng.random_range(0..model.classes() - 1);
                if r >= y { r + 1 } else { r }
            })
            .collect(),
    });
    // Untargeted attacks ascend the loss of the attacked label; targeted ones descend the target's.
    let (goal, ascend) = match &targets {
        Some(t) => (t.as_slice(), false),
        None => (attacked.as_slice(), true),
    };
    let eps = attack.eps();
    let square = matches!(attack.method(), Method::Square { .. });
    if eps == 0.0 {
        return Adversarial { x: x0, targets, queries: square.then(|| vec![0; labels.len()]) };
    }
    let (adv, queries) = match attack.method() {
        Method::Fgsm => {
            let (_, g) = model.loss_and_input_gradient(&x0, goal);
            let step = if ascend { eps } else { -eps };
            let x = b.lincomb(1.0, &x0, step, &b.map(&g, Unary::Sign));
            (project_linf(b, &x, &linf_bounds(b, &x0, eps)), None)
        }
        Method::Pgd { norm, steps, step_size, random_start } => {
            let step = if ascend { step_size } else { -step_size };
            (pgd(model, &x0, x, goal, eps, norm, steps, step, random_start, rng), None)
        }
        Method::Square { queries, p_init } => {
            let (adv, used) = square_attack(model, x, goal, !ascend, eps, queries, p_init, rng);
            (b.upload(&adv), Some(used))
        }
    };
    Adversarial { x: adv, targets, queries }
}

/// `(max(x0 − eps, 0), min(x0 + eps, 1))`: the box that is both the L∞ ball and the pixel range.
fn linf_bounds<B: Backend>(b: &B, x0: &B::Tensor, eps: f32) -> (B::Tensor, B::Tensor) {
    (
        b.map(&b.map(x0, Unary::Offset(-eps)), Unary::Clamp(0.0, 1.0)),
        b.map(&b.map(x0, Unary::Offset(eps)), Unary::Clamp(0.0, 1.0)),
    )
}

fn project_linf<B: Backend>(b: &B, x: &B::Tensor, (lo, hi): &(B::Tensor, B::Tensor)) -> B::Tensor {
    b.zip(&b.zip(x, lo, Binary::Max), hi, Binary::Min)
}

/// Euclidean norm of each row, as a `rows×1` tensor.
fn row_norms<B: Backend>(b: &B, t: &B::Tensor) -> B::Tensor {
    b.map(&b.reduce(&b.map(t, Unary::Square), Dim::PerRow, Reduce::Sum), Unary::Sqrt)
}

/// Projects `x` onto the L2 ball of radius `eps > 0` around `x0`, then clamps to [0, 1] (which only
/// moves pixels toward `x0`, so the result stays in the ball).
fn project_l2<B: Backend>(b: &B, x: &B::Tensor, x0: &B::Tensor, eps: f32) -> B::Tensor {
    let d = b.lincomb(1.0, x, -1.0, x0);
    // min(1, eps/‖d‖) = eps / max(‖d‖, eps).
    let factor = b.map(&b.map(&b.map(&row_norms(b, &d), Unary::Clamp(eps, f32::MAX)), Unary::Recip), Unary::Scale(eps));
    let x = b.lincomb(1.0, x0, 1.0, &b.zip(&d, &factor, Binary::Mul));
    b.map(&x, Unary::Clamp(0.0, 1.0))
}

#[allow(clippy::too_many_arguments)]
fn pgd<B: Backend, M: Classifier<B>>(
    model: &M,
    x0: &B::Tensor,
    host: &Matrix,
    goal: &[usize],
    eps: f32,
    norm: Norm,
    steps: usize,
    step: f32,
    random_start: bool,
    rng: &mut ChaCha8Rng,
) -> B::Tensor {
    let b = model.backend();
    let (n, d) = host.shape();
    match norm {
        Norm::Linf => {
            let bounds = linf_bounds(b, x0, eps);
            let mut x = x0.clone();
            if random_start {
                let noise = Matrix::from_fn(n, d, |_, _| eps * (2.0 * rng.random::<f32>() - 1.0));
                x = project_linf(b, &b.lincomb(1.0, x0, 1.0, &b.upload(&noise)), &bounds);
            }
            for _ in 0..steps {
                let (_, g) = model.loss_and_input_gradient(&x, goal);
                x = project_linf(b, &b.lincomb(1.0, &x, step, &b.map(&g, Unary::Sign)), &bounds);
            }
            x
        }
        Norm::L2 => {
            let mut x = x0.clone();
            if random_start {
                // Uniform in the ball: a Gaussian direction, radius eps·u^(1/d).
                let mut noise = Matrix::from_fn(n, d, |_, _| rng.sample::<f32, _>(StandardNormal));
                for i in 0..n {
                    let row = noise.row_mut(i);
                    let len = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
                    let radius = eps * rng.random::<f32>().powf(1.0 / d as f32);
                    row.iter_mut().for_each(|v| *v *= radius / len);
                }
                x = project_l2(b, &b.lincomb(1.0, x0, 1.0, &b.upload(&noise)), x0, eps);
            }
            for _ in 0..steps {
                let (_, g) = model.loss_and_input_gradient(&x, goal);
                let len = b.map(&row_norms(b, &g), Unary::Clamp(1e-12, f32::MAX));
                x = project_l2(b, &b.lincomb(1.0, &x, step, &b.zip(&g, &len, Binary::Div)), x0, eps);
            }
            x
        }
    }
}

/// The margin loss of each row: `z_y − max_{j≠y} z_j` (the attack has succeeded when it is negative),
/// or for a targeted attack `max_{j≠t} z_j − z_t`.
fn margins<B: Backend, M: Classifier<B>>(model: &M, x: &Matrix, goal: &[usize], targeted: bool) -> Vec<f32> {
    let b = model.backend();
    let z = model.logits(&b.upload(x));
    let hot = bio_core::model::one_hot(b, goal, model.classes());
    let own = b.reduce(&b.zip(&z, &hot, Binary::Mul), Dim::PerRow, Reduce::Sum);
    let others = b.reduce(&b.lincomb(1.0, &z, -1e30, &hot), Dim::PerRow, Reduce::Max);
    let m = b.download(&b.lincomb(1.0, &own, -1.0, &others)).into_vec();
    if targeted { m.into_iter().map(|v| -v).collect() } else { m }
}

/// The image side lengths of a `d`-pixel input: square when `d` is a perfect square, else one row.
fn image_shape(d: usize) -> (usize, usize) {
    let s = (d as f64).sqrt().round() as usize;
    if s * s == d { (s, s) } else { (1, d) }
}

/// The paper's schedule: `p_init` halved at 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000 of
/// 10 000 iterations, rescaled to the actual budget.
fn p_selection(p_init: f32, it: usize, budget: usize) -> f32 {
    let it = (it as f64 / budget as f64 * 10_000.0) as usize;
    let halvings = match it {
        0..=10 => 0,
        11..=50 => 1,
        51..=200 => 2,
        201..=500 => 3,
        501..=1000 => 4,
        1001..=2000 => 5,
        2001..=4000 => 6,
        4001..=6000 => 7,
        6001..=8000 => 8,
        8001..=10_000 => 9,
        _ => 0,
    };
    p_init / (1u32 << halvings) as f32
}

/// The L∞ Square attack on one batch: returns the adversarial images and the queries spent on each.
#[allow(clippy::too_many_arguments)]
pub(crate) fn square_attack<B: Backend, M: Classifier<B>>(
    model: &M,
    x: &Matrix,
    goal: &[usize],
    targeted: bool,
    eps: f32,
    budget: usize,
    p_init: f32,
    rng: &mut ChaCha8Rng,
) -> (Matrix, Vec<usize>) {
    let (n, d) = x.shape();
    let (h, w) = image_shape(d);
    let clip = |v: f32| v.clamp(0.0, 1.0);
    // Start: vertical stripes of ±eps, one random sign per column.
    let mut best = x.clone();
    for i in 0..n {
        let signs: Vec<f32> = (0..w).map(|_| if rng.random_bool(0.5) { eps } else { -eps }).collect();
        for (p, v) in best.row_mut(i).iter_mut().enumerate() {
            *v = clip(*v + signs[p % w]);
        }
    }
    let mut best_margin = margins(model, &best, goal, targeted);
    let mut queries = vec![1usize; n];
    let max_side = h.min(w).saturating_sub(1).max(1);
    for it in 0..budget.saturating_sub(1) {
        let active: Vec<usize> = (0..n).filter(|&i| best_margin[i] > 0.0).collect();
        if active.is_empty() {
            break;
        }
        let p = p_selection(p_init, it, budget);
        let side = ((p * (h * w) as f32).sqrt().round() as usize).clamp(1, max_side);
        let (side_h, side_w) = (side.min(h), side.min(w));
        let mut cand = Matrix::zeros(active.len(), d);
        let mut goals = Vec::with_capacity(active.len());
        for (k, &i) in active.iter().enumerate() {
            let (clean, cur) = (x.row(i), best.row(i));
            let mut delta: Vec<f32> = cur.iter().zip(clean).map(|(a, c)| a - c).collect();
            let top = rng.random_range(0..=h - side_h);
            let left = rng.random_range(0..=w - side_w);
            let window = |r: usize, c: usize| (top + r) * w + left + c;
            // Draw a sign for the square until it changes the current image (as in the paper's code).
            for _ in 0..16 {
                let v = if rng.random_bool(0.5) { eps } else { -eps };
                let mut changed = false;
                for r in 0..side_h {
                    for c in 0..side_w {
                        let j = window(r, c);
                        delta[j] = v;
                        changed |= (clip(clean[j] + v) - cur[j]).abs() >= 1e-7;
                    }
                }
                if changed {
                    break;
                }
            }
            for (j, out) in cand.row_mut(k).iter_mut().enumerate() {
                *out = clip(clean[j] + delta[j]);
            }
            goals.push(goal[i]);
        }
        let new_margin = margins(model, &cand, &goals, targeted);
        for (k, &i) in active.iter().enumerate() {
            queries[i] += 1;
            if new_margin[k] < best_margin[i] {
                best_margin[i] = new_margin[k];
                best.row_mut(i).copy_from_slice(cand.row(k));
            }
        }
    }
    (best, queries)
}
