//! One-shot classification by the protocol of Lake, Salakhutdinov & Tenenbaum (2015): fixed runs,
//! each of `W` training images (one per class) and `W` test images; every test image is given the
//! class of the training image of its run it is most similar to, and the score is the error rate per
//! run (percent) and its mean over the runs with a 95% confidence interval (Student's t over runs,
//! [`mean_ci95`]).
//!
//! Rows ([`OneShotRow`]):
//! - `mhd`: the Modified Hausdorff Distance between the inked pixels of the native images
//!   ([`modified_hausdorff`] on [`ink_points_centred`]), Lake's baseline (38.8% on his 20 runs);
//! - `pixels`, `hidden.L` (a hidden layer's activity) and `hidden.L.drive` (its drive before the
//!   competition), each scored by cosine similarity of L2-normalized features ([`cosine_errors`]),
//!   once as they are (`centring = none`) and once centred on the mean feature of the background
//!   images (`centring = background`, SimpleShot: `f ← f − mean_background(f)` before normalizing).
//!
//! Ties go to the lowest training index (as `numpy.argmin` in Lake's demo): a test image whose
//! features are all zero is given the run's first class.
//!
//! **Episodic curves** ([`curve_rows`], [`centred_curve_rows`]): N-way K-shot episodes drawn, seeded,
//! from classes a model never saw ([`fewshot::sample_episodes`](crate::fewshot::sample_episodes):
//! distinct classes, support and query images disjoint), one set of episodes per `(ways, shots)`
//! shared by every feature set (rows are paired), each scored by cosine nearest class mean
//! ([`NCM`]) and cosine nearest neighbour ([`NEAREST_NEIGHBOUR`]) on
//! L2-normalized features, accuracy as mean ± 95% CI over episodes. Features are centred before
//! normalizing as `centring` says: `none`, `image` (each image's features minus their own mean) or
//! `background` (minus the mean feature of the images the model learned from).

use bio_core::{Backend, Classifier, Matrix};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::EvalError;
use crate::fewshot::{
    Episode, EpisodeParams, NCM, centre_rows, hidden_drive_of_layer, hidden_features_of_layer, inner_products,
    l2_normalize_rows, mean_ci95, sample_episodes,
};

/// Name of the Modified Hausdorff Distance row.
pub const MHD: &str = "mhd";
/// Name of the raw-pixel row.
pub const PIXELS: &str = "pixels";
/// `centring` of rows scored on the features as they are.
pub const NO_CENTRING: &str = "none";
/// `centring` of rows whose features are centred on the background mean before normalizing.
pub const BACKGROUND_CENTRING: &str = "background";
/// `centring` of rows whose features are each centred on their own mean before normalizing (the
/// drive row of `bio eval fewshot`).
pub const IMAGE_CENTRING: &str = "image";
/// Name of the cosine nearest-neighbour classifier of the episodic curves.
pub const NEAREST_NEIGHBOUR: &str = "nn";
/// Prefix of the feature rows of a model's own initialization (the same architecture and seed, never
/// trained): the frozen random-features control, e.g. `init.hidden.0`.
pub const INITIAL: &str = "init.";

/// The runs of a one-shot task, every run with the same number of training and of test images.
#[derive(Clone, Debug, PartialEq)]
pub struct OneShotRuns {
    /// Training images of every run, stacked run after run (`ways` rows per run).
    pub training: Matrix,
    /// Test images of every run, stacked run after run.
    pub test: Matrix,
    /// `answers[r][i]`: index within run `r`'s training images of the class of its test image `i`.
    pub answers: Vec<Vec<usize>>,
}

impl OneShotRuns {
    /// Number of runs.
    pub fn runs(&self) -> usize {
        self.answers.len()
    }

    /// Checks the layout: as many training rows per run as classes, test rows per run as answers,
    /// every answer a valid class.
    pub fn check(&self) -> Result<(usize, usize), EvalError> {
        let runs = self.runs();
        if runs == 0 {
            return Err(EvalError::NotEnoughData("no one-shot runs".into()));
        }
        let tests = self.answers[0].len();
        if !self.training.rows().is_multiple_of(runs) || self.answers.iter().any(|a| a.len() != tests) || tests == 0 {
            return Err(EvalError::Shape(format!(
                "{} training rows and answers of lengths {:?} do not split into {runs} equal runs",
                self.training.rows(),
                self.answers.iter().map(Vec::len).collect::<Vec<_>>()
            )));
        }
        let ways = self.training.rows() / runs;
        if self.test.rows() != runs * tests || self.training.cols() != self.test.cols() {
            return Err(EvalError::Shape(format!(
                "{} test rows of {} values for {runs} runs of {tests} test images of {} values",
                self.test.rows(),
                self.test.cols(),
                self.training.cols()
            )));
        }
        if let Some(a) = self.answers.iter().flatten().find(|&&a| a >= ways) {
            return Err(EvalError::Shape(format!("answer {a} but runs have {ways} training images")));
        }
        Ok((ways, tests))
    }
}

/// One row of the one-shot table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OneShotRow {
    /// `mhd`, `pixels`, `hidden.L` or `hidden.L.drive`.
    pub features: String,
    /// `none` or `background`.
    pub centring: String,
    /// Error rate (percent) of each run.
    pub errors: Vec<f64>,
    /// Mean error over the runs (percent).
    pub mean: f64,
    /// 95% confidence half-width over the runs (percent).
    pub ci95: f64,
}

impl OneShotRow {
    /// A row from per-run errors.
    pub fn new(features: impl Into<String>, centring: &str, errors: Vec<f64>) -> Self {
        let (mean, ci95) = mean_ci95(&errors);
        Self { features: features.into(), centring: centring.into(), errors, mean, ci95 }
    }
}

/// Percent error of one run from `scores[i][j]`, the similarity of test image `i` to training image
/// `j` (higher is more similar): test `i` is right when `argmax_j scores[i][j] = answers[i]` (ties to
/// the lowest `j`).
pub fn run_error(scores: &[Vec<f64>], answers: &[usize]) -> f64 {
    let wrong = scores
        .iter()
        .zip(answers)
        .filter(|(row, answer)| {
            let mut best = 0;
            for (j, v) in row.iter().enumerate() {
                if *v > row[best] {
                    best = j;
                }
            }
            best != **answer
        })
        .count();
    100.0 * wrong as f64 / answers.len().max(1) as f64
}

/// Per-run errors of cosine nearest neighbour: `score(i, j) = ⟨x_i/‖x_i‖, y_j/‖y_j‖⟩` between test
/// features `x_i` and training features `y_j` of the same run (a zero row scores 0 with everything).
/// `training` and `test` hold the features of [`OneShotRuns::training`] and [`OneShotRuns::test`].
pub fn cosine_errors(training: &Matrix, test: &Matrix, answers: &[Vec<usize>]) -> Result<Vec<f64>, EvalError> {
    let runs = OneShotRuns { training: training.clone(), test: test.clone(), answers: answers.to_vec() };
    let (ways, tests) = runs.check()?;
    let (training, test) = (l2_normalize_rows(training), l2_normalize_rows(test));
    Ok((0..answers.len())
        .map(|r| {
            let scores: Vec<Vec<f64>> = (0..tests)
                .map(|i| {
                    let x = test.row(r * tests + i);
                    (0..ways)
                        .map(|j| {
                            x.iter().zip(training.row(r * ways + j)).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum()
                        })
                        .collect()
                })
                .collect();
            run_error(&scores, &answers[r])
        })
        .collect())
}

/// The mean of each column of `m` (the mean feature).
pub fn column_mean(m: &Matrix) -> Vec<f32> {
    let mut sum = vec![0.0f64; m.cols()];
    for i in 0..m.rows() {
        sum.iter_mut().zip(m.row(i)).for_each(|(s, v)| *s += f64::from(*v));
    }
    sum.iter().map(|s| (s / m.rows().max(1) as f64) as f32).collect()
}

/// Every row of `m` minus `mean` (SimpleShot's centring, with the background mean).
pub fn centre_on(m: &Matrix, mean: &[f32]) -> Matrix {
    let mut out = m.clone();
    for i in 0..out.rows() {
        out.row_mut(i).iter_mut().zip(mean).for_each(|(v, m)| *v -= m);
    }
    out
}

/// Coordinates `(row, column)` of the inked pixels of a `height × width` mask, centred on their mean
/// (as Lake's `LoadImgAsPoints`). Empty when nothing is inked.
pub fn ink_points_centred(ink: &[bool], width: usize) -> Vec<[f64; 2]> {
    let points: Vec<[f64; 2]> =
        ink.iter().enumerate().filter(|(_, i)| **i).map(|(p, _)| [(p / width) as f64, (p % width) as f64]).collect();
    let n = points.len().max(1) as f64;
    let mean = points.iter().fold([0.0, 0.0], |m, p| [m[0] + p[0] / n, m[1] + p[1] / n]);
    points.iter().map(|p| [p[0] - mean[0], p[1] - mean[1]]).collect()
}

/// Modified Hausdorff Distance (Dubuisson & Jain 1994) between point sets `A` and `B`:
/// `MHD(A, B) = max( mean_{a∈A} min_{b∈B} ‖a − b‖, mean_{b∈B} min_{a∈A} ‖a − b‖ )`
/// (Euclidean distances). Infinite when either set is empty.
pub fn modified_hausdorff(a: &[[f64; 2]], b: &[[f64; 2]]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return f64::INFINITY;
    }
    let mut min_b = vec![f64::INFINITY; b.len()];
    let mut sum_a = 0.0;
    for p in a {
        let mut best = f64::INFINITY;
        for (q, mb) in b.iter().zip(min_b.iter_mut()) {
            let d = (p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2);
            best = best.min(d);
            *mb = mb.min(d);
        }
        sum_a += best.sqrt();
    }
    let sum_b: f64 = min_b.iter().map(|d| d.sqrt()).sum();
    (sum_a / a.len() as f64).max(sum_b / b.len() as f64)
}

/// Per-run errors of the Modified Hausdorff Distance: `training[r][j]` and `test[r][i]` are the
/// centred ink points of run `r`'s images ([`ink_points_centred`]); the cost is [`modified_hausdorff`]
/// and the nearest training image (lowest cost, ties to the lowest index) gives the class.
pub fn mhd_errors(
    training: &[Vec<Vec<[f64; 2]>>],
    test: &[Vec<Vec<[f64; 2]>>],
    answers: &[Vec<usize>],
) -> Result<Vec<f64>, EvalError> {
    if training.len() != answers.len() || test.len() != answers.len() {
        return Err(EvalError::Shape(format!(
            "{} training runs, {} test runs, {} answer lists",
            training.len(),
            test.len(),
            answers.len()
        )));
    }
    (0..answers.len())
        .into_par_iter()
        .map(|r| {
            if test[r].len() != answers[r].len() {
                return Err(EvalError::Shape(format!(
                    "run {r}: {} test images, {} answers",
                    test[r].len(),
                    answers[r].len()
                )));
            }
            let scores: Vec<Vec<f64>> =
                test[r].iter().map(|x| training[r].iter().map(|y| -modified_hausdorff(x, y)).collect()).collect();
            Ok(run_error(&scores, &answers[r]))
        })
        .collect()
}

/// The two rows (plain, then centred on the background mean) of one feature set.
pub fn feature_rows(
    name: &str,
    training: &Matrix,
    test: &Matrix,
    background: &Matrix,
    answers: &[Vec<usize>],
) -> Result<Vec<OneShotRow>, EvalError> {
    let plain = cosine_errors(training, test, answers)?;
    let mean = column_mean(background);
    let centred = cosine_errors(&centre_on(training, &mean), &centre_on(test, &mean), answers)?;
    Ok(vec![OneShotRow::new(name, NO_CENTRING, plain), OneShotRow::new(name, BACKGROUND_CENTRING, centred)])
}

/// The rows of a frozen `model` on `runs` (its images already at the model's input size), with
/// hidden layer `layer` (default: the last): `hidden.L` and, where the model has one,
/// `hidden.L.drive`, each plain and centred on the mean over the `background` images.
pub fn model_rows<B: Backend, M: Classifier<B>>(
    model: &M,
    runs: &OneShotRuns,
    background: &Matrix,
    layer: Option<usize>,
    batch: usize,
) -> Result<Vec<OneShotRow>, EvalError> {
    runs.check()?;
    let (index, training) = hidden_features_of_layer(model, &runs.training, layer, batch)?;
    let (_, test) = hidden_features_of_layer(model, &runs.test, Some(index), batch)?;
    let (_, back) = hidden_features_of_layer(model, background, Some(index), batch)?;
    let name = crate::layers::hidden_layer(index);
    let mut rows = feature_rows(&name, &training, &test, &back, &runs.answers)?;
    if let (Some(training), Some(test), Some(back)) = (
        hidden_drive_of_layer(model, &runs.training, index, batch)?,
        hidden_drive_of_layer(model, &runs.test, index, batch)?,
        hidden_drive_of_layer(model, background, index, batch)?,
    ) {
        rows.extend(feature_rows(&format!("{name}.drive"), &training, &test, &back, &runs.answers)?);
    }
    Ok(rows)
}

/// Parameters of the episodic curves. Call [`CurveParams::check`] before use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurveParams {
    /// Classes per episode; one set of episodes per value.
    pub ways: Vec<usize>,
    /// Support images per class; one set of episodes per value.
    pub shots: Vec<usize>,
    /// Query images per class.
    pub queries: usize,
    /// Episodes per `(ways, shots)`.
    pub episodes: usize,
    /// Seed of the episode sampler.
    pub seed: u64,
}

impl Default for CurveParams {
    fn default() -> Self {
        Self { ways: vec![5, 20], shots: vec![1, 5], queries: 15, episodes: 400, seed: 0 }
    }
}

impl CurveParams {
    /// The few-shot sampler's parameters for `ways` classes per episode.
    pub fn episode_params(&self, ways: usize) -> EpisodeParams {
        EpisodeParams {
            ways,
            shots: self.shots.clone(),
            queries: self.queries,
            episodes: self.episodes,
            seed: self.seed,
            code_densities: Vec::new(),
        }
    }

    /// Checks the parameters against `labels` of the images episodes are drawn from and the `novel`
    /// classes; errors name the flag (`ways`, `shots`, `queries`, `episodes`).
    pub fn check(&self, labels: &[usize], novel: &[usize]) -> Result<(), EvalError> {
        if self.ways.is_empty() {
            return Err(EvalError::invalid("ways", "give at least one number of classes per episode"));
        }
        self.ways.iter().try_for_each(|&w| self.episode_params(w).check(labels, novel))
    }

    /// The episodes of `(ways, shots)`: [`sample_episodes`] with this seed, so every feature set
    /// scored with the same parameters gets the same episodes.
    pub fn episodes_of(
        &self,
        labels: &[usize],
        novel: &[usize],
        ways: usize,
        shots: usize,
    ) -> Result<Vec<Episode>, EvalError> {
        sample_episodes(labels, novel, &self.episode_params(ways), shots)
    }
}

/// One row of the episodic curves: a feature set, its centring and a classifier at one `(ways, shots)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurveRow {
    /// `pixels`, `hidden.L`, `hidden.L.drive`, or the same of the initial model (`init.hidden.L`).
    pub features: String,
    /// `none`, `image` or `background`.
    pub centring: String,
    /// `ncm` (cosine nearest class mean) or `nn` (cosine nearest neighbour).
    pub classifier: String,
    /// Classes per episode.
    pub ways: usize,
    /// Support images per class.
    pub shots: usize,
    /// Query images per class.
    pub queries: usize,
    /// Episodes.
    pub episodes: usize,
    /// Mean accuracy over the episodes (fraction).
    pub mean: f64,
    /// 95% confidence half-width over the episodes (fraction).
    pub ci95: f64,
}

/// Inner products of L2-normalized features: all pairs at once when that is cheaper than the pairs
/// the episodes need (a small pool of images), else on demand. Both give the same bits.
enum Products<'a> {
    All(Vec<Vec<f64>>),
    OnDemand(&'a Matrix),
}

impl<'a> Products<'a> {
    fn new(normalized: &'a Matrix, needed: usize) -> Self {
        let n = normalized.rows();
        if n.saturating_mul(n) <= needed && n <= 8000 {
            let all: Vec<usize> = (0..n).collect();
            Products::All((0..n).into_par_iter().map(|i| inner_products(normalized, &[i], &all).remove(0)).collect())
        } else {
            Products::OnDemand(normalized)
        }
    }

    fn of(&self, rows: &[usize], bs: &[usize]) -> Vec<Vec<f64>> {
        match self {
            Products::All(all) => rows.iter().map(|&a| bs.iter().map(|&b| all[a][b]).collect()).collect(),
            Products::OnDemand(m) => inner_products(m, rows, bs),
        }
    }
}

/// Accuracy of cosine nearest class mean and of cosine nearest neighbour on one episode, from the
/// products of L2-normalized features. NCM: `argmax_c mean_{s∈c} ⟨q, s⟩ / ‖mean_{s∈c} s‖` (the class
/// mean of the normalized support images); NN: the class of `argmax_s ⟨q, s⟩`. Ties go to the first
/// way (NCM) or the first support image in way order (NN).
fn episode_accuracy(products: &Products<'_>, episode: &Episode) -> (f64, f64) {
    let ways = episode.classes.len();
    let support: Vec<(usize, usize)> =
        episode.support.iter().enumerate().flat_map(|(w, rows)| rows.iter().map(move |&r| (w, r))).collect();
    let support_rows: Vec<usize> = support.iter().map(|&(_, r)| r).collect();
    let queries: Vec<(usize, usize)> =
        episode.queries.iter().enumerate().flat_map(|(w, rows)| rows.iter().map(move |&r| (w, r))).collect();
    let query_rows: Vec<usize> = queries.iter().map(|&(_, r)| r).collect();
    let gram = products.of(&support_rows, &support_rows);
    let cross = products.of(&query_rows, &support_rows);
    let ways_of: Vec<usize> = support.iter().map(|&(w, _)| w).collect();
    let of_way = |c: usize| ways_of.iter().enumerate().filter(move |&(_, &w)| w == c).map(|(s, _)| s);
    let mean_norm: Vec<f64> = (0..ways)
        .map(|c| {
            let k = of_way(c).count() as f64;
            let sum: f64 = of_way(c).flat_map(|s| of_way(c).map(move |t| (s, t))).map(|(s, t)| gram[s][t]).sum();
            (sum / (k * k)).max(0.0).sqrt()
        })
        .collect();
    let (mut ncm, mut nn) = (0usize, 0usize);
    for (&(truth, _), row) in queries.iter().zip(&cross) {
        let mut best = (f64::NEG_INFINITY, 0);
        for (c, &norm) in mean_norm.iter().enumerate() {
            let score = if norm > 0.0 {
                of_way(c).map(|s| row[s]).sum::<f64>() / of_way(c).count() as f64 / norm
            } else {
                f64::NEG_INFINITY
            };
            if score > best.0 {
                best = (score, c);
            }
        }
        ncm += usize::from(best.1 == truth);
        let mut nearest = 0;
        for (s, v) in row.iter().enumerate() {
            if *v > row[nearest] {
                nearest = s;
            }
        }
        nn += usize::from(support[nearest].0 == truth);
    }
    let total = queries.len().max(1) as f64;
    (ncm as f64 / total, nn as f64 / total)
}

/// The curve rows of one feature set, already centred as `centring` says: for every `(ways, shots)`
/// of `params` (ways outer), the [`NCM`] row then the [`NEAREST_NEIGHBOUR`] row. `features` has one row
/// per entry of `labels`; episodes are drawn among the `novel` classes.
pub fn curve_rows(
    features: &Matrix,
    labels: &[usize],
    novel: &[usize],
    name: &str,
    centring: &str,
    params: &CurveParams,
) -> Result<Vec<CurveRow>, EvalError> {
    if features.rows() != labels.len() {
        return Err(EvalError::Shape(format!("{} feature rows but {} labels", features.rows(), labels.len())));
    }
    params.check(labels, novel)?;
    let normalized = l2_normalize_rows(features);
    let needed: usize = params
        .ways
        .iter()
        .flat_map(|&w| params.shots.iter().map(move |&k| params.episodes * w * k * w * (k + params.queries)))
        .sum();
    let products = Products::new(&normalized, needed);
    let mut rows = Vec::new();
    for &ways in &params.ways {
        for &shots in &params.shots {
            let episodes = params.episodes_of(labels, novel, ways, shots)?;
            let scores: Vec<(f64, f64)> = episodes.par_iter().map(|e| episode_accuracy(&products, e)).collect();
            for (classifier, pick) in [(NCM, 0), (NEAREST_NEIGHBOUR, 1)] {
                let values: Vec<f64> = scores.iter().map(|s| if pick == 0 { s.0 } else { s.1 }).collect();
                let (mean, ci95) = mean_ci95(&values);
                rows.push(CurveRow {
                    features: name.into(),
                    centring: centring.into(),
                    classifier: classifier.into(),
                    ways,
                    shots,
                    queries: params.queries,
                    episodes: params.episodes,
                    mean,
                    ci95,
                });
            }
        }
    }
    Ok(rows)
}

/// [`curve_rows`] of one feature set under each centring of `centrings` ([`NO_CENTRING`],
/// [`IMAGE_CENTRING`], [`BACKGROUND_CENTRING`] with the mean of `background`, the same features of
/// the images the model learned from).
pub fn centred_curve_rows(
    name: &str,
    features: &Matrix,
    background: &Matrix,
    labels: &[usize],
    novel: &[usize],
    centrings: &[&str],
    params: &CurveParams,
) -> Result<Vec<CurveRow>, EvalError> {
    let mut rows = Vec::new();
    for &centring in centrings {
        let centred = match centring {
            NO_CENTRING => features.clone(),
            IMAGE_CENTRING => centre_rows(features),
            BACKGROUND_CENTRING => {
                if background.cols() != features.cols() || background.rows() == 0 {
                    return Err(EvalError::Shape(format!(
                        "{} background rows of {} values for features of {}",
                        background.rows(),
                        background.cols(),
                        features.cols()
                    )));
                }
                centre_on(features, &column_mean(background))
            }
            other => return Err(EvalError::invalid("centring", format!("`{other}` is not none, image or background"))),
        };
        rows.extend(curve_rows(&centred, labels, novel, name, centring, params)?);
    }
    Ok(rows)
}

/// The curve rows of a frozen `model` whose hidden layer `layer` (default: the last) gives the
/// features of `images` (labelled `labels`, episodes among `novel`): `hidden.L` (plain and centred on
/// the `background` images' mean) and, where the model has one, `hidden.L.drive` (plain, per image and
/// on the background), each feature set's name prefixed by `prefix` (empty, or [`INITIAL`]).
#[allow(clippy::too_many_arguments)]
pub fn model_curve_rows<B: Backend, M: Classifier<B>>(
    model: &M,
    prefix: &str,
    images: &Matrix,
    labels: &[usize],
    novel: &[usize],
    background: &Matrix,
    layer: Option<usize>,
    params: &CurveParams,
    batch: usize,
) -> Result<Vec<CurveRow>, EvalError> {
    params.check(labels, novel)?;
    let (index, code) = hidden_features_of_layer(model, images, layer, batch)?;
    let (_, back) = hidden_features_of_layer(model, background, Some(index), batch)?;
    let name = format!("{prefix}hidden.{index}");
    let mut rows = centred_curve_rows(&name, &code, &back, labels, novel, &[NO_CENTRING, BACKGROUND_CENTRING], params)?;
    if let (Some(drive), Some(back)) =
        (hidden_drive_of_layer(model, images, index, batch)?, hidden_drive_of_layer(model, background, index, batch)?)
    {
        rows.extend(centred_curve_rows(
            &format!("{name}.drive"),
            &drive,
            &back,
            labels,
            novel,
            &[NO_CENTRING, IMAGE_CENTRING, BACKGROUND_CENTRING],
            params,
        )?);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mhd_of_known_sets() {
        let a = [[0.0, 0.0], [0.0, 1.0]];
        let b = [[0.0, 0.0], [0.0, 1.0], [0.0, 4.0]];
        // A→B: 0, 0 → mean 0; B→A: 0, 0, 3 → mean 1.
        assert!((modified_hausdorff(&a, &b) - 1.0).abs() < 1e-12);
        assert_eq!(modified_hausdorff(&a, &b), modified_hausdorff(&b, &a));
        assert_eq!(modified_hausdorff(&a, &a), 0.0);
        assert_eq!(modified_hausdorff(&a, &[]), f64::INFINITY);
    }

    #[test]
    fn ink_points_are_centred() {
        let ink = [true, false, false, true]; // 2×2: (0,0) and (1,1)
        assert_eq!(ink_points_centred(&ink, 2), vec![[-0.5, -0.5], [0.5, 0.5]]);
        assert!(ink_points_centred(&[false; 4], 2).is_empty());
    }

    #[test]
    fn run_error_ties_go_to_the_first() {
        assert_eq!(run_error(&[vec![0.0, 0.0], vec![1.0, 2.0]], &[0, 1]), 0.0);
        assert_eq!(run_error(&[vec![0.0, 0.0], vec![1.0, 2.0]], &[1, 1]), 50.0);
    }
}
