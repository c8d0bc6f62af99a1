//! Few-shot protocols, seeded and reported as a mean with a 95% confidence interval.
//!
//! 1. **Episodic, novel classes, frozen features** (the Prototypical-Networks convention): a model
//!    trained on base classes is frozen; each episode draws `ways` novel classes, `shots` support and
//!    `queries` query images per class, and classifies the queries from the support set alone, with a
//!    cosine nearest-class-mean classifier ([`NCM`]) and a per-episode linear probe ([`LINEAR_PROBE`]).
//!    Raw pixels are always evaluated as a reference row. See [`episodic`].
//! 2. **Few labels**: a model is trained from scratch on `K` labelled images per class and tested on the
//!    whole test set, repeated over seeds. See [`few_labels`] and the training helpers [`train_bp`],
//!    [`train_bio_strict`] and [`train_bio_with_unlabelled`].
//!
//! Confidence intervals are `t·sd/√n` with the sample standard deviation over episodes (protocol 1)
//! or seeds (protocol 2) and `t` the two-sided 95% quantile of Student's t with `n − 1` degrees of
//! freedom (4.30 for 3 seeds, 1.96 in the limit); they are 0 when `n < 2` (no interval).

use bio_core::backend::{Binary, ElementwiseOps, SelectOps, Unary};
use bio_core::params::winners_at;
use bio_core::{
    Backend, BackpropRule, BioConfig, BioNet, BioParams, BpConfig, BpNet, Classifier, LearningRule, Matrix,
    ReferenceBackend, train::train_epoch,
};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::accuracy::evaluate;
use crate::error::EvalError;

/// Name of protocol 1 in results.
pub const EPISODIC: &str = "episodic";
/// Name of protocol 2 in results.
pub const FEW_LABELS: &str = "few-labels";
/// Name of the cosine nearest-class-mean classifier in results.
pub const NCM: &str = "ncm";
/// Name of the linear probe in results.
pub const LINEAR_PROBE: &str = "linear-probe";
/// Name of the raw-pixel feature row in results.
pub const PIXELS: &str = "pixels";

/// Full-batch gradient steps of the linear probe.
pub const PROBE_STEPS: usize = 100;
/// Learning rate of the linear probe. With L2-normalized features and a bias the mean cross-entropy
/// has a gradient Lipschitz constant of at most 1, so any rate below 2 is stable.
pub const PROBE_LEARNING_RATE: f64 = 1.0;
/// L2 penalty (weight decay) of the linear probe's weights (not of its bias).
pub const PROBE_WEIGHT_DECAY: f64 = 1e-4;

/// Two-sided 95% quantile of Student's t with `df ≥ 1` degrees of freedom (tabulated to 30, then
/// `1.96 + 2.4/df`, within 0.003 of the exact value).
pub fn student_t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => TABLE[df - 1],
        _ => 1.96 + 2.4 / df as f64,
    }
}

/// Mean and 95% confidence half-width `t·sd/√n` (Student's t with `n − 1` degrees of freedom,
/// sample standard deviation; 0 when `n < 2`, where there is no interval).
pub fn mean_ci95(values: &[f64]) -> (f64, f64) {
    let n = values.len();
    if n == 0 {
        return (f64::NAN, 0.0);
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    (mean, student_t_975(n - 1) * var.sqrt() / (n as f64).sqrt())
}

/// Parses a class list such as `0-4` or `0,2,5-7` into sorted, distinct class indices.
pub fn parse_classes(spec: &str) -> Result<Vec<usize>, EvalError> {
    let bad = |reason: String| EvalError::invalid("classes", reason);
    let number = |s: &str| s.trim().parse::<usize>().map_err(|_| bad(format!("`{}` is not a class number", s.trim())));
    let mut classes = Vec::new();
    for part in spec.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(bad(format!("empty item in `{spec}`")));
        }
        match part.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi) = (number(lo)?, number(hi)?);
                if lo > hi {
                    return Err(bad(format!("range `{part}` runs backwards")));
                }
                classes.extend(lo..=hi);
            }
            None => classes.push(number(part)?),
        }
    }
    classes.sort_unstable();
    classes.dedup();
    Ok(classes)
}

/// Splits sample indices by class: `(samples of a base class, samples of any other class)`, both in
/// their original order.
pub fn split_classes(labels: &[usize], base: &[usize]) -> (Vec<usize>, Vec<usize>) {
    (0..labels.len()).partition(|&i| base.contains(&labels[i]))
}

/// Rows of `labels` grouped by class, for the classes listed (in that order).
fn class_pools(labels: &[usize], classes: &[usize]) -> Vec<Vec<usize>> {
    classes.iter().map(|&c| (0..labels.len()).filter(|&i| labels[i] == c).collect()).collect()
}

/// Parameters of the episodic protocol. Call [`EpisodeParams::check`] before use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpisodeParams {
    /// Classes per episode.
    pub ways: usize,
    /// Support images per class; one set of episodes per value.
    pub shots: Vec<usize>,
    /// Query images per class.
    pub queries: usize,
    /// Episodes per shot count.
    pub episodes: usize,
    /// Seed of the episode sampler.
    pub seed: u64,
    /// Extra read-out codes for transfer, one per value `ρ'`: each unit's drive above the
    /// `(round(ρ'N)+1)`-th largest of its row (k-WTA re-applied at a denser or sparser level), scored
    /// as `hidden.L.top{ρ'}`. Training is unchanged; empty by default.
    #[serde(default)]
    pub code_densities: Vec<f32>,
}

impl Default for EpisodeParams {
    fn default() -> Self {
        Self { ways: 5, shots: vec![1, 5], queries: 15, episodes: 600, seed: 0, code_densities: Vec::new() }
    }
}

impl EpisodeParams {
    /// Checks the parameters against the data: `labels` of the evaluation images and the `novel`
    /// classes episodes are drawn from. Errors name the CLI flag concerned.
    pub fn check(&self, labels: &[usize], novel: &[usize]) -> Result<(), EvalError> {
        let mut distinct = novel.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() != novel.len() {
            return Err(EvalError::invalid("novel-classes", "a class is listed twice"));
        }
        if self.ways < 2 {
            return Err(EvalError::invalid("ways", format!("must be at least 2, got {}", self.ways)));
        }
        if self.ways > novel.len() {
            return Err(EvalError::invalid(
                "ways",
                format!("{} ways but only {} novel classes are available", self.ways, novel.len()),
            ));
        }
        if self.shots.is_empty() {
            return Err(EvalError::invalid("shots", "give at least one shot count"));
        }
        if self.shots.contains(&0) {
            return Err(EvalError::invalid("shots", "every shot count must be at least 1"));
        }
        if self.queries == 0 {
            return Err(EvalError::invalid("queries", "must be at least 1"));
        }
        if self.episodes == 0 {
            return Err(EvalError::invalid("episodes", "must be at least 1"));
        }
        if let Some(bad) = self.code_densities.iter().find(|d| !(**d > 0.0 && **d < 1.0)) {
            return Err(EvalError::invalid("code-densities", format!("every density must be in (0, 1), got {bad}")));
        }
        let most = self.shots.iter().max().copied().unwrap_or(0);
        for (class, pool) in novel.iter().zip(class_pools(labels, novel)) {
            if pool.len() < most + self.queries {
                return Err(EvalError::invalid(
                    "shots",
                    format!(
                        "class {class} has {} images but {most} shots + {} queries need {}",
                        pool.len(),
                        self.queries,
                        most + self.queries
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// One episode: rows (of the labels given to [`sample_episodes`]) of the support and query images,
/// one list per way. `classes[w]` is way `w`'s original class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Episode {
    /// The original class of each way.
    pub classes: Vec<usize>,
    /// Support rows of each way.
    pub support: Vec<Vec<usize>>,
    /// Query rows of each way (never in the support set).
    pub queries: Vec<Vec<usize>>,
}

/// Draws `episodes` episodes of `ways` classes among `novel`, each with `shots` support and `queries`
/// query rows per class, all distinct. Deterministic for a given seed.
pub fn sample_episodes(
    labels: &[usize],
    novel: &[usize],
    params: &EpisodeParams,
    shots: usize,
) -> Result<Vec<Episode>, EvalError> {
    let check = EpisodeParams { shots: vec![shots], ..params.clone() };
    check.check(labels, novel)?;
    let pools = class_pools(labels, novel);
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed ^ (shots as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let per_class = shots + params.queries;
    Ok((0..params.episodes)
        .map(|_| {
            let mut episode = Episode { classes: Vec::new(), support: Vec::new(), queries: Vec::new() };
            for w in sample(&mut rng, novel.len(), params.ways).into_iter() {
                let pool = &pools[w];
                let picked: Vec<usize> = sample(&mut rng, pool.len(), per_class).into_iter().map(|i| pool[i]).collect();
                episode.classes.push(novel[w]);
                episode.support.push(picked[..shots].to_vec());
                episode.queries.push(picked[shots..].to_vec());
            }
            episode
        })
        .collect())
}

/// One row of results of either protocol's episodic evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FewShotResult {
    /// `episodic`.
    pub protocol: String,
    /// Which features: `pixels` or `hidden.<layer>`.
    pub features: String,
    /// `ncm` or `linear-probe`.
    pub classifier: String,
    /// Classes per episode.
    pub ways: usize,
    /// Support images per class.
    pub shots: usize,
    /// Query images per class.
    pub queries: usize,
    /// Number of episodes.
    pub episodes: usize,
    /// Mean accuracy over episodes.
    pub mean: f64,
    /// 95% confidence half-width over episodes.
    pub ci95: f64,
}

/// Activity of hidden layer `layer` (default: the last) of the frozen `model` for every row of
/// `images`, computed in batches of `batch`.
pub fn hidden_features<B: Backend, M: Classifier<B>>(
    model: &M,
    images: &Matrix,
    layer: Option<usize>,
    batch: usize,
) -> Result<Matrix, EvalError> {
    hidden_features_of_layer(model, images, layer, batch).map(|(_, m)| m)
}

/// [`hidden_features`] and the index of the layer they come from.
pub(crate) fn hidden_features_of_layer<B: Backend, M: Classifier<B>>(
    model: &M,
    images: &Matrix,
    layer: Option<usize>,
    batch: usize,
) -> Result<(usize, Matrix), EvalError> {
    if images.cols() != model.input_dim() {
        return Err(EvalError::Shape(format!(
            "images have {} pixels but the model expects {}",
            images.cols(),
            model.input_dim()
        )));
    }
    let b = model.backend();
    let mut data = Vec::new();
    let (mut width, mut index) = (0, 0);
    let batch = batch.max(1);
    let mut start = 0;
    while start < images.rows() {
        let end = (start + batch).min(images.rows());
        let rows: Vec<usize> = (start..end).collect();
        let acts = model.hidden_activity(&b.upload(&images.select_rows(&rows)));
        let l = layer.unwrap_or(acts.len().saturating_sub(1));
        let act = acts.get(l).ok_or_else(|| {
            EvalError::invalid("layer", format!("layer {l} asked but the model has {} hidden layers", acts.len()))
        })?;
        let m = b.download(act);
        (width, index) = (m.cols(), l);
        data.extend_from_slice(m.as_slice());
        start = end;
    }
    if images.rows() == 0 {
        return Err(EvalError::NotEnoughData("no images to compute features of".into()));
    }
    Ok((index, Matrix::new(images.rows(), width, data)?))
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// [`dot`] of `a` with each of four rows at once, each sum in exactly [`dot`]'s order (so the same
/// bits): four independent accumulators hide the add latency that bounds a single [`dot`], and `a`
/// is loaded once for the four. Compiled for AVX when the CPU has it: the same operations in the
/// same order (no FMA contraction), only wider.
fn dot4(a: &[f32], b: [&[f32]; 4]) -> [f32; 4] {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU supports AVX (checked just above), the only requirement of `dot4_avx`.
        #[allow(unsafe_code)]
        unsafe {
            return dot4_avx(a, b);
        }
    }
    dot4_body(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
fn dot4_avx(a: &[f32], b: [&[f32]; 4]) -> [f32; 4] {
    dot4_body(a, b)
}

#[inline(always)]
fn dot4_body(a: &[f32], b: [&[f32]; 4]) -> [f32; 4] {
    let body = a.len() / 8 * 8;
    let lanes = |r: &[f32], i: usize| -> [f32; 8] { r[i..i + 8].try_into().expect("8 lanes") };
    let (mut s0, mut s1, mut s2, mut s3) = ([0.0f32; 8], [0.0f32; 8], [0.0f32; 8], [0.0f32; 8]);
    for i in (0..body).step_by(8) {
        let (x, y0, y1, y2, y3) = (lanes(a, i), lanes(b[0], i), lanes(b[1], i), lanes(b[2], i), lanes(b[3], i));
        for k in 0..8 {
            s0[k] += x[k] * y0[k];
            s1[k] += x[k] * y1[k];
            s2[k] += x[k] * y2[k];
            s3[k] += x[k] * y3[k];
        }
    }
    let sums = [s0, s1, s2, s3];
    std::array::from_fn(|j| {
        let tail: f32 = a[body..].iter().zip(&b[j][body..]).map(|(x, y)| x * y).sum();
        sums[j].iter().sum::<f32>() + tail
    })
}

/// `[[dot(row a, row b) for b in bs] for a in rows]` of `features`, in f64, four `b` rows at a time
/// (every entry has the same bits whichever group of four it was computed in).
pub(crate) fn inner_products(features: &Matrix, rows: &[usize], bs: &[usize]) -> Vec<Vec<f64>> {
    rows.iter()
        .map(|&a| {
            let a = features.row(a);
            let mut out = Vec::with_capacity(bs.len());
            let groups = bs.chunks_exact(4);
            let rest = groups.remainder();
            for g in groups {
                let d = dot4(a, [features.row(g[0]), features.row(g[1]), features.row(g[2]), features.row(g[3])]);
                out.extend(d.iter().map(|&v| v as f64));
            }
            out.extend(rest.iter().map(|&b| dot(a, features.row(b)) as f64));
            out
        })
        .collect()
}

/// Each row divided by its Euclidean norm (zero rows stay zero).
pub(crate) fn l2_normalize_rows(m: &Matrix) -> Matrix {
    let mut out = m.clone();
    for i in 0..out.rows() {
        let row = out.row_mut(i);
        let norm = dot(row, row).sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|v| *v /= norm);
        }
    }
    out
}

/// Fraction of an episode's queries that the cosine nearest-class-mean classifier and the linear probe
/// get right, from L2-normalized features. Both work on inner products only: the support Gram matrix
/// `K` and the query–support products `Q`. NCM: `cos(q, m_c) = mean_{s∈c} Q[q,s] / √(mean_{s,s'∈c} K[s,s'])`.
/// Probe: weights `W = A·X` (the gradient of the loss always lies in the span of the support
/// features, so this is exact), trained by [`PROBE_STEPS`] full-batch steps on `A`.
fn episode_accuracy(features: &Matrix, episode: &Episode) -> (f64, f64) {
    let ways = episode.classes.len();
    let support: Vec<(usize, usize)> =
        episode.support.iter().enumerate().flat_map(|(w, rows)| rows.iter().map(move |&r| (w, r))).collect();
    let queries: Vec<(usize, usize)> =
        episode.queries.iter().enumerate().flat_map(|(w, rows)| rows.iter().map(move |&r| (w, r))).collect();
    let n = support.len();
    let support_rows: Vec<usize> = support.iter().map(|&(_, r)| r).collect();
    let query_rows: Vec<usize> = queries.iter().map(|&(_, r)| r).collect();
    let gram = inner_products(features, &support_rows, &support_rows);
    let cross = inner_products(features, &query_rows, &support_rows);

    // NCM with cosine similarity.
    let mean_norm: Vec<f64> = (0..ways)
        .map(|c| {
            let idx: Vec<usize> = (0..n).filter(|&s| support[s].0 == c).collect();
            let sum: f64 = idx.iter().flat_map(|&s| idx.iter().map(move |&t| (s, t))).map(|(s, t)| gram[s][t]).sum();
            (sum / (idx.len() * idx.len()) as f64).max(0.0).sqrt()
        })
        .collect();
    let ncm_correct = queries
        .iter()
        .zip(&cross)
        .filter(|&(&(truth, _), row)| {
            let scores: Vec<f64> = (0..ways)
                .map(|c| {
                    let (sum, count) = support
                        .iter()
                        .zip(row)
                        .filter(|((w, _), _)| *w == c)
                        .fold((0.0, 0usize), |(s, k), (_, v)| (s + v, k + 1));
                    let norm = mean_norm[c];
                    if norm > 0.0 { sum / count as f64 / norm } else { f64::NEG_INFINITY }
                })
                .collect();
            argmax(&scores) == truth
        })
        .count();

    // Linear probe: logits of support s = Σ_t A[c][t]·K[t][s] + bias[c].
    let mut a = vec![vec![0.0f64; n]; ways];
    let mut bias = vec![0.0f64; ways];
    let lr = PROBE_LEARNING_RATE;
    for _ in 0..PROBE_STEPS {
        let mut grad = vec![vec![0.0f64; n]; ways];
        for s in 0..n {
            let logits: Vec<f64> =
                (0..ways).map(|c| (0..n).map(|t| a[c][t] * gram[t][s]).sum::<f64>() + bias[c]).collect();
            let probs = softmax(&logits);
            for c in 0..ways {
                let target = if support[s].0 == c { 1.0 } else { 0.0 };
                grad[c][s] = (probs[c] - target) / n as f64;
            }
        }
        for c in 0..ways {
            for t in 0..n {
                a[c][t] = (1.0 - lr * PROBE_WEIGHT_DECAY) * a[c][t] - lr * grad[c][t];
            }
            bias[c] -= lr * grad[c].iter().sum::<f64>();
        }
    }
    let probe_correct = queries
        .iter()
        .zip(&cross)
        .filter(|&(&(truth, _), row)| {
            let logits: Vec<f64> =
                (0..ways).map(|c| a[c].iter().zip(row).map(|(x, y)| x * y).sum::<f64>() + bias[c]).collect();
            argmax(&logits) == truth
        })
        .count();
    let total = queries.len().max(1) as f64;
    (ncm_correct as f64 / total, probe_correct as f64 / total)
}

fn softmax(logits: &[f64]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = logits.iter().map(|v| (v - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.iter().map(|v| v / sum).collect()
}

fn argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

/// Runs the episodic protocol on precomputed `features` (one row per entry of `labels`), naming the
/// feature set `name`: one [`FewShotResult`] per shot count and classifier (NCM first, then the probe).
/// The same episodes are used for every feature set given the same parameters, so rows are paired.
pub fn episodic_on_features(
    features: &Matrix,
    labels: &[usize],
    novel: &[usize],
    name: &str,
    params: &EpisodeParams,
) -> Result<Vec<FewShotResult>, EvalError> {
    if features.rows() != labels.len() {
        return Err(EvalError::Shape(format!("{} feature rows but {} labels", features.rows(), labels.len())));
    }
    params.check(labels, novel)?;
    let normalized = l2_normalize_rows(features);
    let mut results = Vec::new();
    for &shots in &params.shots {
        let episodes = sample_episodes(labels, novel, params, shots)?;
        let accuracies: Vec<(f64, f64)> = episodes.par_iter().map(|e| episode_accuracy(&normalized, e)).collect();
        for (classifier, pick) in [(NCM, 0), (LINEAR_PROBE, 1)] {
            let values: Vec<f64> = accuracies.iter().map(|&(ncm, probe)| if pick == 0 { ncm } else { probe }).collect();
            let (mean, ci95) = mean_ci95(&values);
            results.push(FewShotResult {
                protocol: EPISODIC.into(),
                features: name.into(),
                classifier: classifier.into(),
                ways: params.ways,
                shots,
                queries: params.queries,
                episodes: params.episodes,
                mean,
                ci95,
            });
        }
    }
    Ok(results)
}

/// Protocol 1 for a frozen model: restricts `(images, labels)` to the `novel` classes, computes the
/// activity of hidden layer `layer` (default: the last) once for all of them in batches of `batch`,
/// and runs [`episodic_on_features`] on it and on the raw pixels (reference rows, first).
pub fn episodic<B: Backend, M: Classifier<B>>(
    model: &M,
    images: &Matrix,
    labels: &[usize],
    novel: &[usize],
    layer: Option<usize>,
    params: &EpisodeParams,
    batch: usize,
) -> Result<Vec<FewShotResult>, EvalError> {
    if images.rows() != labels.len() {
        return Err(EvalError::Shape(format!("{} images but {} labels", images.rows(), labels.len())));
    }
    params.check(labels, novel)?;
    let rows: Vec<usize> = (0..labels.len()).filter(|&i| novel.contains(&labels[i])).collect();
    let novel_images = images.select_rows(&rows);
    let novel_labels: Vec<usize> = rows.iter().map(|&i| labels[i]).collect();
    let (index, hidden) = hidden_features_of_layer(model, &novel_images, layer, batch)?;
    let name = crate::layers::hidden_layer(index);
    let mut results = episodic_on_features(&novel_images, &novel_labels, novel, PIXELS, params)?;
    results.extend(episodic_on_features(&hidden, &novel_labels, novel, &name, params)?);
    // The same units' graded drive before their competition, as a read-out code for transfer
    // (training stays sparse): each row centred on its mean, then cosine-normalized as every code.
    if let Some(drive) = hidden_drive_of_layer(model, &novel_images, index, batch)? {
        results.extend(episodic_on_features(
            &centre_rows(&drive),
            &novel_labels,
            novel,
            &format!("{name}{DRIVE}"),
            params,
        )?);
        for &density in &params.code_densities {
            let code = winners_above(&drive, density);
            results.extend(episodic_on_features(&code, &novel_labels, novel, &format!("{name}.top{density}"), params)?);
        }
    }
    Ok(results)
}

/// k-WTA at density `ρ'` on each row, as the model's competition does it: every entry minus the
/// row's `(k+1)`-th largest, `k` = [`winners_at`]`(ρ', N)`, kept where positive (ties at the
/// threshold give zero).
pub fn winners_above(drive: &Matrix, density: f32) -> Matrix {
    let b = ReferenceBackend;
    let n = drive.cols();
    let threshold = b.row_kth_largest(drive, (winners_at(density, n) + 1).min(n));
    b.map(&b.zip(drive, &threshold, Binary::Sub), Unary::Relu)
}

/// Suffix of the features name of a layer's centred drive (`hidden.0.drive`).
pub const DRIVE: &str = ".drive";

/// Layer `index`'s drive before its competition ([`Classifier::hidden_drive`]) for every image, or
/// `None` when the model gives none.
pub(crate) fn hidden_drive_of_layer<B: Backend, M: Classifier<B>>(
    model: &M,
    images: &Matrix,
    index: usize,
    batch: usize,
) -> Result<Option<Matrix>, EvalError> {
    let b = model.backend();
    let mut data = Vec::new();
    let mut width = 0;
    for start in (0..images.rows()).step_by(batch.max(1)) {
        let rows: Vec<usize> = (start..(start + batch.max(1)).min(images.rows())).collect();
        let Some(drive) = model.hidden_drive(&b.upload(&images.select_rows(&rows))).into_iter().nth(index) else {
            return Ok(None);
        };
        let m = b.download(&drive);
        width = m.cols();
        data.extend_from_slice(m.as_slice());
    }
    Ok(Some(Matrix::new(images.rows(), width, data)?))
}

/// Each row minus its own mean.
pub(crate) fn centre_rows(m: &Matrix) -> Matrix {
    let mut out = m.clone();
    for i in 0..out.rows() {
        let row = out.row_mut(i);
        let mean = row.iter().sum::<f32>() / row.len().max(1) as f32;
        row.iter_mut().for_each(|v| *v -= mean);
    }
    out
}

/// Every class present in `labels` that is not in `classes`.
fn complement(labels: &[usize], classes: &[usize]) -> Vec<usize> {
    let mut all: Vec<usize> = labels.iter().copied().filter(|c| !classes.contains(c)).collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// `K` distinct rows of each class present in `labels` (classes in increasing order), seeded.
pub fn sample_per_class(labels: &[usize], k: usize, seed: u64) -> Result<Vec<usize>, EvalError> {
    if k == 0 {
        return Err(EvalError::invalid("shots", "labels per class must be at least 1"));
    }
    let classes = complement(labels, &[]);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rows = Vec::with_capacity(k * classes.len());
    for (class, pool) in classes.iter().zip(class_pools(labels, &classes)) {
        if pool.len() < k {
            return Err(EvalError::invalid(
                "shots",
                format!("class {class} has {} training images but {k} labels per class were asked", pool.len()),
            ));
        }
        rows.extend(sample(&mut rng, pool.len(), k).into_iter().map(|i| pool[i]));
    }
    Ok(rows)
}

/// Parameters of the few-labels protocol.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FewLabelParams {
    /// Labelled images per class, one experiment per value.
    pub shots: Vec<usize>,
    /// Repetitions (each with its own subset and model seed).
    pub seeds: usize,
    /// Base seed.
    pub seed: u64,
    /// Whether the training closure also receives the rest of the training images, unlabelled.
    pub unlabelled: bool,
}

impl Default for FewLabelParams {
    fn default() -> Self {
        Self { shots: vec![1, 5, 10, 50], seeds: 3, seed: 0, unlabelled: false }
    }
}

/// The data of the few-labels protocol.
#[derive(Clone, Copy, Debug)]
pub struct FewLabelData<'a> {
    /// Training images (the labelled subset is drawn from them).
    pub train_images: &'a Matrix,
    /// Their labels.
    pub train_labels: &'a [usize],
    /// Test images.
    pub test_images: &'a Matrix,
    /// Their labels.
    pub test_labels: &'a [usize],
}

/// One row of results of the few-labels protocol.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FewLabelResult {
    /// `few-labels`.
    pub protocol: String,
    /// What was trained, e.g. `bp`, `bio-strict`, `bio-unlabelled`.
    pub variant: String,
    /// Labelled images per class.
    pub shots: usize,
    /// Number of classes.
    pub classes: usize,
    /// Whether the rest of the training set was given unlabelled.
    pub unlabelled: bool,
    /// Test images.
    pub test_samples: usize,
    /// Repetitions.
    pub seeds: usize,
    /// Mean test accuracy over seeds.
    pub mean: f64,
    /// 95% confidence half-width over seeds.
    pub ci95: f64,
    /// Test accuracy of each seed.
    pub accuracies: Vec<f64>,
}

/// Protocol 2: for each `K` in `params.shots` and each of `params.seeds` repetitions, samples `K`
/// labelled training images per class, calls `train(images, labels, unlabelled, seed)` (with the rest
/// of the training images as `unlabelled` when `params.unlabelled`, else `None`), and evaluates the
/// returned model on the whole test set. The subset of repetition `r` for `K` is seeded by
/// `params.seed + r` and the model seed is `params.seed + r` too, so results are deterministic.
pub fn few_labels<B, M, F>(
    variant: &str,
    data: FewLabelData<'_>,
    params: &FewLabelParams,
    batch: usize,
    mut train: F,
) -> Result<Vec<FewLabelResult>, EvalError>
where
    B: Backend,
    M: Classifier<B>,
    F: FnMut(&Matrix, &[usize], Option<&Matrix>, u64) -> Result<M, EvalError>,
{
    if params.seeds == 0 {
        return Err(EvalError::invalid("seeds", "must be at least 1"));
    }
    if params.shots.is_empty() {
        return Err(EvalError::invalid("shots", "give at least one number of labels per class"));
    }
    if data.train_images.rows() != data.train_labels.len() {
        return Err(EvalError::Shape(format!(
            "{} training images but {} labels",
            data.train_images.rows(),
            data.train_labels.len()
        )));
    }
    let classes = complement(data.train_labels, &[]).len();
    let mut results = Vec::new();
    for &k in &params.shots {
        let mut accuracies = Vec::with_capacity(params.seeds);
        for r in 0..params.seeds {
            let seed = params.seed.wrapping_add(r as u64);
            let rows = sample_per_class(data.train_labels, k, seed)?;
            let images = data.train_images.select_rows(&rows);
            let labels: Vec<usize> = rows.iter().map(|&i| data.train_labels[i]).collect();
            let rest = params.unlabelled.then(|| {
                let mut chosen = vec![false; data.train_labels.len()];
                rows.iter().for_each(|&i| chosen[i] = true);
                let others: Vec<usize> = (0..chosen.len()).filter(|&i| !chosen[i]).collect();
                data.train_images.select_rows(&others)
            });
            let model = train(&images, &labels, rest.as_ref(), seed)?;
            accuracies.push(evaluate(&model, data.test_images, data.test_labels, batch)?.accuracy);
        }
        let (mean, ci95) = mean_ci95(&accuracies);
        results.push(FewLabelResult {
            protocol: FEW_LABELS.into(),
            variant: variant.into(),
            shots: k,
            classes,
            unlabelled: params.unlabelled,
            test_samples: data.test_labels.len(),
            seeds: params.seeds,
            mean,
            ci95,
            accuracies,
        });
    }
    Ok(results)
}

/// How long and on how many classes the training helpers train.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainSpec {
    /// Number of classes of the model.
    pub classes: usize,
    /// Epochs over the labelled images.
    pub epochs: usize,
    /// Epochs of label-free hidden-layer training on all images (only [`train_bio_with_unlabelled`]).
    pub hidden_epochs: usize,
    /// Mini-batch size.
    pub batch: usize,
}

/// Trains `model` with `rule` for `epochs` epochs over `(images, labels)` in batches of `batch`,
/// reshuffled each epoch (seeded by `seed` and the epoch).
fn fit<B: Backend, R: LearningRule<B>>(
    backend: &B,
    rule: &mut R,
    model: &mut R::Model,
    images: &Matrix,
    labels: &[usize],
    (epochs, batch, seed): (usize, usize, u64),
) -> Result<(), EvalError> {
    let batch = batch.max(1);
    for epoch in 0..epochs {
        rule.start_epoch(epoch, epochs);
        let mut order: Vec<usize> = (0..images.rows()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ (epoch as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407)));
        let batches =
            order.chunks(batch).map(|rows| (images.select_rows(rows), rows.iter().map(|&i| labels[i]).collect()));
        train_epoch(backend, rule, model, batches, |_| {})?;
    }
    Ok(())
}

fn check_train_set(images: &Matrix, labels: &[usize], spec: &TrainSpec) -> Result<(), EvalError> {
    if images.rows() != labels.len() || images.rows() == 0 {
        return Err(EvalError::Shape(format!("{} images but {} labels", images.rows(), labels.len())));
    }
    if let Some(l) = labels.iter().find(|&&l| l >= spec.classes) {
        return Err(EvalError::Shape(format!("label {l} but the model has {} classes", spec.classes)));
    }
    Ok(())
}

/// Trains a fresh model of rule `R` (with `config`) on `(images, labels)` for `spec.epochs` epochs:
/// the strict few-labels variant of any rule, which sees only the labelled images.
pub fn train_rule<B: Backend, R: bio_core::rules::Rule + LearningRule<B>>(
    backend: &B,
    config: &R::Config,
    spec: TrainSpec,
    images: &Matrix,
    labels: &[usize],
    seed: u64,
) -> Result<R::Model, EvalError> {
    check_train_set(images, labels, &spec)?;
    let mut rule = R::new(config.clone(), seed);
    let mut model = rule.init_model(backend, images.cols(), spec.classes, seed);
    fit(backend, &mut rule, &mut model, images, labels, (spec.epochs, spec.batch, seed))?;
    Ok(model)
}

/// Trains a backprop network from scratch on `(images, labels)` for `spec.epochs` epochs.
pub fn train_bp<B: Backend>(
    backend: &B,
    config: &BpConfig,
    spec: TrainSpec,
    images: &Matrix,
    labels: &[usize],
    seed: u64,
) -> Result<BpNet<B>, EvalError> {
    train_rule::<B, BackpropRule<B>>(backend, config, spec, images, labels, seed)
}

/// `bio`, strict variant: the whole rule (hidden layers and readout) sees only the labelled images,
/// for `spec.epochs` epochs.
pub fn train_bio_strict<B: Backend>(
    backend: &B,
    config: &BioConfig,
    spec: TrainSpec,
    images: &Matrix,
    labels: &[usize],
    seed: u64,
) -> Result<BioNet<B>, EvalError> {
    train_rule::<B, bio_core::BioRule>(backend, config, spec, images, labels, seed)
}

/// Label-free phase of the `bio` rule: a fresh network (with `config`) whose hidden layers are trained
/// on `images` for `epochs` epochs with the readout's learning rate set to 0.
///
/// The rule's hidden plasticity (Hebbian update, structural plasticity, synaptic scaling, homeostasis,
/// regrowth) reads only the layers' inputs and activities; the labels enter only the readout's error,
/// which a zero rate makes inert (`V ← V·exp(0)`, `c ← c + 0`). The labels passed are therefore all 0.
/// The returned model keeps `config` (with its real readout rate) as its own configuration.
pub fn pretrain_hidden<B: Backend>(
    backend: &B,
    config: &BioConfig,
    classes: usize,
    images: &Matrix,
    epochs: usize,
    batch: usize,
    seed: u64,
) -> Result<BioNet<B>, EvalError> {
    if images.rows() == 0 || classes == 0 {
        return Err(EvalError::NotEnoughData("no images (or no classes) for the hidden layers".into()));
    }
    let mut hidden_only: BioParams = (**config).clone();
    hidden_only.readout_rate = 0.0;
    let mut rule = bio_core::BioRule::new(hidden_only.check()?, seed);
    let mut model = BioNet::init(backend, config.clone(), images.cols(), classes, seed);
    let labels = vec![0; images.rows()];
    fit(backend, &mut rule, &mut model, images, &labels, (epochs, batch, seed))?;
    Ok(model)
}

/// Trains only the readout of `model` on `(images, labels)` with the `bio` rule's readout plasticity,
/// for `epochs` epochs. Every hidden-layer mechanism is switched off (Hebbian and homeostatic rates 0,
/// no structural plasticity, regrowth or synaptic scaling), so the hidden layers stay exactly as they are.
pub fn train_readout_only<B: Backend>(
    backend: &B,
    model: &mut BioNet<B>,
    images: &Matrix,
    labels: &[usize],
    epochs: usize,
    batch: usize,
    seed: u64,
) -> Result<(), EvalError> {
    let spec = TrainSpec { classes: model.classes(), epochs, hidden_epochs: 0, batch };
    check_train_set(images, labels, &spec)?;
    let mut readout_only: BioParams = (*model.config).clone();
    readout_only.hebbian_rate = 0.0;
    readout_only.homeostasis_rate = 0.0;
    readout_only.regrow_probability = 0.0;
    readout_only.mechanisms.structural = false;
    readout_only.mechanisms.synaptic_scaling = false;
    readout_only.mechanisms.homeostasis = false;
    let mut rule = bio_core::BioRule::new(readout_only.check()?, seed ^ 0x5EED);
    fit(backend, &mut rule, model, images, labels, (epochs, batch, seed ^ 0x5EED))
}

/// `bio` with unlabelled data: the label-free hidden layers are trained ([`pretrain_hidden`]) for
/// `spec.hidden_epochs` epochs on every training image (`unlabelled` and the labelled `images`), then
/// the readout alone ([`train_readout_only`]) for `spec.epochs` epochs on the labelled images only.
pub fn train_bio_with_unlabelled<B: Backend>(
    backend: &B,
    config: &BioConfig,
    spec: TrainSpec,
    images: &Matrix,
    labels: &[usize],
    unlabelled: &Matrix,
    seed: u64,
) -> Result<BioNet<B>, EvalError> {
    check_train_set(images, labels, &spec)?;
    if unlabelled.rows() > 0 && unlabelled.cols() != images.cols() {
        return Err(EvalError::Shape(format!(
            "unlabelled images have {} pixels but labelled ones {}",
            unlabelled.cols(),
            images.cols()
        )));
    }
    let mut all = unlabelled.as_slice().to_vec();
    all.extend_from_slice(images.as_slice());
    let all = Matrix::new(unlabelled.rows() + images.rows(), images.cols(), all)?;
    let mut model = pretrain_hidden(backend, config, spec.classes, &all, spec.hidden_epochs, spec.batch, seed)?;
    train_readout_only(backend, &mut model, images, labels, spec.epochs, spec.batch, seed)?;
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn four_dots_at_once_have_the_bits_of_four_dots() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for len in [0, 1, 7, 8, 9, 23, 784, 2000, 2003] {
            let row = |rng: &mut ChaCha8Rng| -> Vec<f32> {
                (0..len).map(|_| if rng.random_bool(0.3) { 0.0 } else { rng.random_range(-2.0f32..2.0) }).collect()
            };
            let a = row(&mut rng);
            let bs: Vec<Vec<f32>> = (0..4).map(|_| row(&mut rng)).collect();
            let four = dot4(&a, [&bs[0], &bs[1], &bs[2], &bs[3]]);
            for (j, b) in bs.iter().enumerate() {
                assert_eq!(four[j].to_bits(), dot(&a, b).to_bits(), "length {len}, row {j}");
            }
        }
    }

    #[test]
    fn inner_products_match_the_plain_dot_for_every_group_size() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let features = Matrix::from_fn(11, 37, |_, _| rng.random_range(-1.0f32..1.0));
        for n in 0..=11 {
            let bs: Vec<usize> = (0..n).rev().collect();
            let got = inner_products(&features, &[0, 5, 10], &bs);
            for (i, &a) in [0usize, 5, 10].iter().enumerate() {
                for (j, &b) in bs.iter().enumerate() {
                    assert_eq!(got[i][j].to_bits(), (dot(features.row(a), features.row(b)) as f64).to_bits());
                }
            }
        }
    }
}
