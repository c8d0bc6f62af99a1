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

use bio_core::{Backend, Classifier, Matrix};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::EvalError;
use crate::fewshot::{hidden_drive_of_layer, hidden_features_of_layer, l2_normalize_rows, mean_ci95};

/// Name of the Modified Hausdorff Distance row.
pub const MHD: &str = "mhd";
/// Name of the raw-pixel row.
pub const PIXELS: &str = "pixels";
/// `centring` of rows scored on the features as they are.
pub const NO_CENTRING: &str = "none";
/// `centring` of rows whose features are centred on the background mean before normalizing.
pub const BACKGROUND_CENTRING: &str = "background";

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
