//! Biological metrics, computed identically for `bio` and `bp` models from their named host tensors
//! ([`Classifier::to_params`]) and from their hidden activity on a data set:
//!
//! - **sparsity**: population active fraction, Treves–Rolls lifetime sparseness, dead units, Hoyer
//!   sparseness of the weights, fraction of synapses kept by the structural mask;
//! - **lognormality** of the nonzero weight magnitudes: `ln|w|` fitted by a normal law (MLE), its
//!   skewness and the Kolmogorov–Smirnov distance to the fit;
//! - **Dale's law**: how sign-consistent each presynaptic neuron's outgoing weights are;
//! - **diversity** of the units: mean `|cos|` between their centred incoming weights and the
//!   effective number of independent units ([`diversity`]).

use bio_core::backend::{Window, unfold_image};
use bio_core::{Backend, Classifier, Matrix, Params};
use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::accuracy::for_each_batch;
use crate::error::EvalError;

/// Largest number of weights the lognormal fit uses; bigger layers are subsampled (seeded, without
/// replacement, so the result is deterministic).
pub const MAX_LOG_SAMPLES: usize = 2_000_000;

/// The error function, accurate to about 1e-15 absolute.
///
/// `|x| < 2.5`: the series `erf x = 2/√π·e^{−x²}·Σ_n 2ⁿx^{2n+1}/(1·3·…·(2n+1))` (all terms positive,
/// so no cancellation); otherwise `1 − erfc |x|` with the sign of `x`.
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x.abs() >= 2.5 {
        return (1.0 - erfc(x.abs())).copysign(x);
    }
    let x2 = x * x;
    let mut term = x;
    let mut sum = x;
    let mut n = 0.0;
    loop {
        n += 1.0;
        term *= 2.0 * x2 / (2.0 * n + 1.0);
        sum += term;
        if term.abs() <= 1e-17 * sum.abs() || n > 300.0 {
            break;
        }
    }
    2.0 / std::f64::consts::PI.sqrt() * (-x2).exp() * sum
}

/// The complementary error function `1 − erf x`, with full relative accuracy in the upper tail.
///
/// `x ≥ 2.5`: the continued fraction `erfc x = e^{−x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …))))`,
/// evaluated by the modified Lentz method; `x < 2.5`: `1 − erf x`.
pub fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x < 2.5 {
        return 1.0 - erf(x);
    }
    // f = x + a1/(x + a2/(x + …)), a_k = k/2.
    let tiny = 1e-300;
    let mut f = x;
    let (mut c, mut d) = (f, 0.0);
    for k in 1..500 {
        let a = k as f64 / 2.0;
        d = x + a * d;
        d = if d.abs() < tiny { tiny } else { d };
        c = x + a / c;
        c = if c.abs() < tiny { tiny } else { c };
        d = 1.0 / d;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    (-x * x).exp() / std::f64::consts::PI.sqrt() / f
}

/// The standard normal cumulative distribution `Φ(z) = erfc(−z/√2)/2`.
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// Treves–Rolls sparseness of one unit's responses `r` over `n` inputs:
/// `S = (1 − (Σr/n)²/(Σr²/n)) / (1 − 1/n)`; 1 for a response to a single input, 0 for a constant one.
/// `None` when `n < 2` or the unit never responds.
pub fn treves_rolls(responses: &[f64]) -> Option<f64> {
    let n = responses.len();
    let sum: f64 = responses.iter().sum();
    let sum_sq: f64 = responses.iter().map(|r| r * r).sum();
    treves_rolls_from_sums(n, sum, sum_sq)
}

fn treves_rolls_from_sums(n: usize, sum: f64, sum_sq: f64) -> Option<f64> {
    if n < 2 || sum_sq <= 0.0 {
        return None;
    }
    let n = n as f64;
    Some((1.0 - (sum / n).powi(2) / (sum_sq / n)) / (1.0 - 1.0 / n))
}

/// Hoyer sparseness `(√n − L1/L2)/(√n − 1)` of a vector: 1 for a single nonzero entry, 0 for a
/// constant one. `None` for fewer than two entries or an all-zero vector.
pub fn hoyer(values: &[f32]) -> Option<f64> {
    let n = values.len();
    let l1: f64 = values.iter().map(|v| v.abs() as f64).sum();
    let l2: f64 = values.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
    if n < 2 || l2 <= 0.0 {
        return None;
    }
    let root = (n as f64).sqrt();
    Some((root - l1 / l2) / (root - 1.0))
}

/// A normal law fitted to `ln|w|` (that is, a lognormal law fitted to `|w|`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogNormalFit {
    /// `μ`: mean of `ln|w|`.
    pub mu: f64,
    /// `σ`: standard deviation of `ln|w|` (MLE, divided by `n`).
    pub sigma: f64,
    /// Skewness of `ln|w|` (`m₃/m₂^{3/2}`); 0 for a lognormal law.
    pub skew: f64,
    /// Kolmogorov–Smirnov distance between the empirical law of `ln|w|` and `N(μ, σ²)`.
    pub ks_distance: f64,
    /// Number of weights used.
    pub samples: usize,
}

/// Fits a lognormal law to the nonzero magnitudes of `weights` (MLE: `μ = mean ln|w|`,
/// `σ = sd ln|w|`), with the skewness of `ln|w|` and the KS distance to the fit. Subsamples
/// deterministically above [`MAX_LOG_SAMPLES`] nonzero weights. `None` with fewer than two nonzero
/// weights or when they all have the same magnitude.
pub fn fit_lognormal(weights: &[f32]) -> Option<LogNormalFit> {
    let mut logs: Vec<f64> =
        weights.iter().filter(|w| **w != 0.0 && w.is_finite()).map(|w| (w.abs() as f64).ln()).collect();
    if logs.len() > MAX_LOG_SAMPLES {
        let mut rng = ChaCha8Rng::seed_from_u64(0x10C_0A1);
        let picked = sample(&mut rng, logs.len(), MAX_LOG_SAMPLES);
        logs = picked.into_iter().map(|i| logs[i]).collect();
    }
    let n = logs.len();
    if n < 2 {
        return None;
    }
    let nf = n as f64;
    let mu = logs.iter().sum::<f64>() / nf;
    let m2 = logs.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / nf;
    let m3 = logs.iter().map(|v| (v - mu).powi(3)).sum::<f64>() / nf;
    let sigma = m2.sqrt();
    if sigma <= 0.0 || !sigma.is_finite() {
        return None;
    }
    logs.sort_by(f64::total_cmp);
    let mut ks = 0.0f64;
    for (i, v) in logs.iter().enumerate() {
        let f = normal_cdf((v - mu) / sigma);
        ks = ks.max(f - i as f64 / nf).max((i + 1) as f64 / nf - f);
    }
    Some(LogNormalFit { mu, sigma, skew: m3 / m2.powf(1.5), ks_distance: ks, samples: n })
}

/// Dale's-law statistics of one `out×in` weight matrix, per presynaptic neuron (column).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DaleStats {
    /// Mean over presynaptic neurons of `|Σw⁺ − Σ|w⁻|| / Σ|w|` over their nonzero outgoing weights:
    /// 1 when every neuron is purely excitatory or purely inhibitory, 0 when each balances its signs.
    /// `None` when no neuron has an outgoing weight.
    pub index: Option<f64>,
    /// Fraction of presynaptic neurons (with outgoing weights) whose weights are all positive.
    pub excitatory_fraction: Option<f64>,
    /// Fraction of presynaptic neurons (with outgoing weights) whose weights are all negative.
    pub inhibitory_fraction: Option<f64>,
    /// Presynaptic neurons without any nonzero outgoing weight (excluded from the three above).
    pub silent: usize,
}

/// Dale's-law statistics of an `out×in` weight matrix: column `i` holds the outgoing weights of
/// presynaptic neuron `i`.
pub fn dale(weights: &Matrix) -> DaleStats {
    let cols = weights.cols();
    let (mut pos, mut neg) = (vec![0.0f64; cols], vec![0.0f64; cols]);
    for r in 0..weights.rows() {
        for (i, &w) in weights.row(r).iter().enumerate() {
            if w > 0.0 {
                pos[i] += w as f64;
            } else if w < 0.0 {
                neg[i] -= w as f64;
            }
        }
    }
    let (mut sum, mut active, mut exc, mut inh) = (0.0, 0usize, 0usize, 0usize);
    for (p, n) in pos.iter().zip(&neg) {
        let total = p + n;
        if total <= 0.0 {
            continue;
        }
        active += 1;
        sum += (p - n).abs() / total;
        exc += usize::from(*n == 0.0);
        inh += usize::from(*p == 0.0);
    }
    let frac = |k: usize| (active > 0).then(|| k as f64 / active as f64);
    DaleStats {
        index: frac(0).map(|_| sum / active as f64),
        excitatory_fraction: frac(exc),
        inhibitory_fraction: frac(inh),
        silent: cols - active,
    }
}

/// Rows of a weight matrix that [`diversity`] compares at most: a wider layer is measured on
/// this many of its units, evenly spaced (`i·rows/512`), so the cost stays below 512²·in/2
/// products (about 0.1 s for a 784-input layer).
pub const DIVERSITY_MAX_ROWS: usize = 512;

/// How different a layer's units are from one another ([`diversity`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Diversity {
    /// Mean over pairs of units of `|cos(w̃ᵢ, w̃ⱼ)|`, `w̃ᵢ = wᵢ − mean(wᵢ)·1` (each unit's incoming
    /// weights centred on their own mean, so a common positive offset does not count as
    /// similarity): 0 for mutually orthogonal units, 1 when all are copies (or negated copies) of one.
    pub similarity: f64,
    /// Participation ratio of the singular values of the centred, unit-norm rows:
    /// `(Σσ²)² / Σσ⁴ = n / (1 + (n − 1)·mean cos²)`, between 1 (all units alike) and `min(n, in)`
    /// (orthogonal units): how many independent filters the layer effectively has.
    pub effective_rank: f64,
    /// Units compared: rows with a nonzero centred norm, among at most [`DIVERSITY_MAX_ROWS`].
    pub units: usize,
}

/// [`Diversity`] of the rows of `weights` (one row per unit); `None` when fewer than two rows have
/// a nonzero centred norm. Computed in `f64`.
pub fn diversity(weights: &Matrix) -> Option<Diversity> {
    let rows = weights.rows();
    let picked: Vec<usize> = if rows > DIVERSITY_MAX_ROWS {
        (0..DIVERSITY_MAX_ROWS).map(|i| i * rows / DIVERSITY_MAX_ROWS).collect()
    } else {
        (0..rows).collect()
    };
    let centred: Vec<Vec<f64>> = picked
        .into_iter()
        .filter_map(|r| {
            let row = weights.row(r);
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / row.len().max(1) as f64;
            let c: Vec<f64> = row.iter().map(|&v| v as f64 - mean).collect();
            let norm = c.iter().map(|v| v * v).sum::<f64>().sqrt();
            (norm > 0.0 && norm.is_finite()).then(|| c.into_iter().map(|v| v / norm).collect())
        })
        .collect();
    let n = centred.len();
    if n < 2 {
        return None;
    }
    let (mut abs_sum, mut sq_sum) = (0.0f64, 0.0f64);
    for i in 0..n {
        for j in i + 1..n {
            let cos: f64 = centred[i].iter().zip(&centred[j]).map(|(a, b)| a * b).sum();
            abs_sum += cos.abs();
            sq_sum += cos * cos;
        }
    }
    let pairs = (n * (n - 1) / 2) as f64;
    let mean_sq = sq_sum / pairs;
    Some(Diversity {
        similarity: abs_sum / pairs,
        effective_rank: n as f64 / (1.0 + (n - 1) as f64 * mean_sq),
        units: n,
    })
}

/// [`diversity`] of what a first layer of `cols` inputs sees, drawn from `images` (one flat image
/// per row): the images themselves when `cols` is the image size, else, when `cols = k·k·C` for an
/// odd `k` (a convolution over the [`bio_core::rules::image_of`] map with stride 1 and
/// padding `⌊k/2⌋`), one non-constant patch from each of at most [`DIVERSITY_MAX_ROWS`] images
/// spread evenly over the set, at a position that varies from image to image. `None` otherwise, or
/// with fewer than two usable rows. Units that learn prototypes of their inputs span at most the
/// inputs' own subspace, so this is the reference for a trained first layer's diversity.
///
/// `whiten`: a convolution whose patches are whitened before its filters see them (`conv
/// --conv-whiten`: the `cols × cols` matrix `Z` of [`bio_core::rules::CONV_WHITEN`]) is compared
/// with its whitened patches `p Z`, the space its filters live in; a `Z` of another shape is ignored,
/// as it is for images.
pub fn input_diversity(images: &Matrix, cols: usize, whiten: Option<&Matrix>) -> Option<Diversity> {
    let dim = images.cols();
    if cols == dim {
        return diversity(images);
    }
    let (height, width, channels) = bio_core::rules::image_of(dim);
    let kernel = (1..=height.max(width)).step_by(2).find(|k| k * k * channels == cols)?;
    let g = Window { height, width, channels, kernel, stride: 1, padding: kernel / 2 };
    g.check().ok()?;
    let (n, len, positions) = (images.rows(), g.patch_len(), g.positions());
    let picked = n.min(DIVERSITY_MAX_ROWS);
    let mut patches = vec![0.0f32; positions * len];
    let mut rows = Vec::with_capacity(picked * len);
    for i in 0..picked {
        unfold_image(&g, images.row(i * n / picked), &mut patches);
        // A position that walks over the map from image to image (7919 is prime), then the first
        // non-constant patch from there on.
        let start = (i * 7919) % positions;
        let found = (0..positions).map(|o| (start + o) % positions).find_map(|p| {
            let patch = &patches[p * len..(p + 1) * len];
            patch.iter().any(|&v| v != patch[0]).then_some(patch)
        });
        if let Some(patch) = found {
            rows.extend_from_slice(patch);
        }
    }
    let count = rows.len() / len;
    let patches = Matrix::new(count, len, rows).ok()?;
    match whiten.filter(|z| z.shape() == (len, len)) {
        Some(z) => diversity(&Matrix::from_fn(count, len, |i, j| {
            patches.row(i).iter().enumerate().map(|(k, &v)| v * z.get(k, j)).sum()
        })),
        None => diversity(&patches),
    }
}

/// [`Diversity`] of one layer's units, named as every output names layers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerDiversity {
    /// `hidden.k` or `readout` ([`crate::layers`]).
    pub layer: String,
    /// [`Diversity::similarity`] (`None`: fewer than two units with centred weights).
    pub unit_similarity: Option<f64>,
    /// [`Diversity::effective_rank`].
    pub effective_rank: Option<f64>,
}

/// [`diversity`] of every `<layer>.weight` tensor of `params`, input side first (e.g. of a model's
/// initial parameters, [`crate::initial_params`], to compare with what training made of them).
pub fn layer_diversity(params: &Params) -> Vec<LayerDiversity> {
    crate::layers::layers(params)
        .into_iter()
        .map(|l| {
            let d = diversity(l.weight);
            LayerDiversity {
                layer: l.name,
                unit_similarity: d.map(|v| v.similarity),
                effective_rank: d.map(|v| v.effective_rank),
            }
        })
        .collect()
}

/// Activity statistics of one hidden layer over a data set.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActivityStats {
    /// Inputs seen.
    pub inputs: usize,
    /// Units in the layer.
    pub units: usize,
    /// Mean over inputs of the fraction of units with activity > 0.
    pub active_fraction: f64,
    /// Mean over units that are active at least once of the Treves–Rolls lifetime sparseness.
    pub lifetime_sparseness: Option<f64>,
    /// Units never active on the data set.
    pub dead_units: usize,
    /// `dead_units / units`.
    pub dead_fraction: f64,
}

/// Accumulates one layer's activity batch by batch (constant memory in the number of inputs).
#[derive(Clone, Debug)]
pub struct ActivityAccumulator {
    inputs: usize,
    active_sum: f64,
    fired: Vec<usize>,
    sum: Vec<f64>,
    sum_sq: Vec<f64>,
}

impl ActivityAccumulator {
    /// An empty accumulator for a layer of `units` units.
    pub fn new(units: usize) -> Self {
        Self { inputs: 0, active_sum: 0.0, fired: vec![0; units], sum: vec![0.0; units], sum_sq: vec![0.0; units] }
    }

    /// Adds a `batch×units` activity matrix. Panics if the width differs from `units`.
    pub fn add(&mut self, activity: &Matrix) {
        let units = self.fired.len();
        assert_eq!(activity.cols(), units, "activity width must equal the layer's units");
        for r in 0..activity.rows() {
            let mut active = 0usize;
            for (j, &v) in activity.row(r).iter().enumerate() {
                if v > 0.0 {
                    active += 1;
                    self.fired[j] += 1;
                }
                let v = v as f64;
                self.sum[j] += v;
                self.sum_sq[j] += v * v;
            }
            self.active_sum += active as f64 / units.max(1) as f64;
            self.inputs += 1;
        }
    }

    /// The statistics of everything added.
    pub fn finish(&self) -> ActivityStats {
        let units = self.fired.len();
        let dead_units = self.fired.iter().filter(|&&k| k == 0).count();
        let per_unit: Vec<f64> = (0..units)
            .filter(|&j| self.fired[j] > 0)
            .filter_map(|j| treves_rolls_from_sums(self.inputs, self.sum[j], self.sum_sq[j]))
            .collect();
        ActivityStats {
            inputs: self.inputs,
            units,
            active_fraction: self.active_sum / self.inputs.max(1) as f64,
            lifetime_sparseness: (!per_unit.is_empty()).then(|| per_unit.iter().sum::<f64>() / per_unit.len() as f64),
            dead_units,
            dead_fraction: dead_units as f64 / units.max(1) as f64,
        }
    }
}

/// Every metric of one weight matrix and, for a hidden layer, of the activity it produces.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerMetrics {
    /// The layer in the one naming of [`crate::layers`] (`hidden.0`, …, `readout`, for every rule);
    /// older files' `bp` names (`layer.1`) are read in it.
    pub layer: String,
    /// `[out, in]` of the weight matrix.
    pub shape: [usize; 2],
    /// Whether the layer's output is a hidden layer (so the activity metrics are present).
    pub hidden: bool,
    /// Mean over inputs of the fraction of the layer's units with activity > 0 (hidden layers only).
    pub active_fraction: Option<f64>,
    /// Mean Treves–Rolls lifetime sparseness over the units that respond at least once.
    pub lifetime_sparseness: Option<f64>,
    /// Units never active on the data set.
    pub dead_units: Option<usize>,
    /// Fraction of units never active.
    pub dead_fraction: Option<f64>,
    /// Columns of the activity the activity metrics count (hidden layers only): `shape[0]` for a
    /// dense layer, one per (position, channel) site of a convolutional layer's map (absent in files
    /// written before it).
    #[serde(default)]
    pub activity_units: Option<usize>,
    /// Hoyer sparseness of the whole weight matrix (zeros included).
    pub hoyer: Option<f64>,
    /// Fraction of synapses present in the structural mask (`<layer>.mask`); 1 without a mask.
    pub kept_fraction: f64,
    /// Mean of `ln|w|` over nonzero weights (lognormal `μ`).
    pub log_weight_mu: Option<f64>,
    /// Standard deviation of `ln|w|` (lognormal `σ`).
    pub log_weight_sigma: Option<f64>,
    /// Skewness of `ln|w|`.
    pub log_weight_skew: Option<f64>,
    /// KS distance between the empirical law of `ln|w|` and `N(μ, σ²)`.
    pub ks_distance: Option<f64>,
    /// Nonzero weights used by the lognormal fit (after subsampling).
    pub log_samples: usize,
    /// Dale index (mean sign consistency of presynaptic neurons).
    pub dale_index: Option<f64>,
    /// Fraction of presynaptic neurons that are purely excitatory.
    pub excitatory_fraction: Option<f64>,
    /// Fraction of presynaptic neurons that are purely inhibitory.
    pub inhibitory_fraction: Option<f64>,
    /// Presynaptic neurons with no nonzero outgoing weight (excluded from the Dale statistics).
    pub silent_presynaptic: usize,
    /// Mean `|cos|` between the layer's units' centred incoming weights ([`Diversity::similarity`];
    /// absent in files written before it).
    #[serde(default)]
    pub unit_similarity: Option<f64>,
    /// Effective number of independent units ([`Diversity::effective_rank`]; absent in older files).
    #[serde(default)]
    pub effective_rank: Option<f64>,
}

/// The biological metrics of a model: one entry per weight matrix, input side first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BiologicalReport {
    /// Number of inputs the activity metrics were measured on.
    pub inputs: usize,
    /// One entry per weight matrix.
    #[serde(deserialize_with = "layer_metrics_in_one_naming")]
    pub layers: Vec<LayerMetrics>,
}

/// Reads stored [`LayerMetrics`] with their layers in the one naming ([`crate::layers::from_stored`]).
pub fn layer_metrics_in_one_naming<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<LayerMetrics>, D::Error> {
    let mut layers = Vec::<LayerMetrics>::deserialize(d)?;
    for l in &mut layers {
        l.layer = crate::layers::from_stored(&l.layer, l.hidden);
    }
    Ok(layers)
}

/// Reads stored [`LayerSelectivity`] rows (hidden layers only) with their layers in the one naming.
pub fn selectivity_in_one_naming<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<LayerSelectivity>, D::Error> {
    let mut layers = Vec::<LayerSelectivity>::deserialize(d)?;
    for l in &mut layers {
        l.layer = crate::layers::from_stored(&l.layer, true);
    }
    Ok(layers)
}

/// Fraction of the synapses present over every structural mask (`<layer>.mask`) of `params`, all
/// layers pooled; `None` for a model without masks.
pub fn synapses_kept(params: &Params) -> Option<f64> {
    let (present, total) =
        params.tensors.iter().filter(|(name, _)| name.ends_with(".mask")).fold((0usize, 0usize), |(p, t), (_, m)| {
            (p + m.as_slice().iter().filter(|v| **v != 0.0).count(), t + m.len())
        });
    (total > 0).then(|| present as f64 / total as f64)
}

/// Fraction of a hidden layer's units above which their never firing is reported
/// ([`dead_unit_warnings`]): past half, most of the code is gone and accuracy usually with it.
pub const DEAD_UNIT_WARNING: f64 = 0.5;

/// One line per hidden layer of `layers` in which more than [`DEAD_UNIT_WARNING`] of the units
/// never fire on the measured images (`dead / units > 0.5`), so that a run whose code collapsed
/// (e.g. `kh` at `--hidden 100` on the embedded subset: 87 of 100 units dead) does not pass
/// silently. The units are the columns the dead count was taken over
/// ([`LayerMetrics::activity_units`]): a convolutional layer's sites, not its filters.
pub fn dead_unit_warnings(layers: &[LayerMetrics]) -> Vec<String> {
    layers
        .iter()
        .filter(|l| l.hidden)
        .filter_map(|l| {
            let (dead, units) = (l.dead_units?, l.activity_units.unwrap_or(l.shape[0]));
            let what = if units == l.shape[0] { "units" } else { "sites (position × channel) of its map" };
            (units > 0 && dead as f64 / units as f64 > DEAD_UNIT_WARNING).then(|| {
                format!(
                    "{}: {dead} of {units} {what} never fire on the test images, so the layer codes with the other {}; \
                     the run is unlikely to be useful (try a wider layer or a lower learning rate)",
                    l.layer,
                    units.saturating_sub(dead)
                )
            })
        })
        .collect()
}

/// How many numbers a model has, told apart ([`parameter_count`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ParameterCount {
    /// Learnable parameters: the entries of every tensor except the structural masks (weights and
    /// biases), masked-out weights included.
    pub learnable: usize,
    /// Entries of the binary structural masks (`<layer>.mask`): bookkeeping, not parameters.
    pub mask_entries: usize,
    /// Synapses present: mask entries equal to 1 (`None` for a model without masks).
    pub synapses_present: Option<usize>,
}

/// Counts `params`: `learnable = Σ_{t not a mask} |t|`, `mask_entries = Σ_{masks} |m|`,
/// `synapses_present = Σ_{masks} #{m_ij ≠ 0}`.
pub fn parameter_count(params: &Params) -> ParameterCount {
    let mut count = ParameterCount { learnable: 0, mask_entries: 0, synapses_present: None };
    for (name, t) in &params.tensors {
        if name.ends_with(".mask") {
            count.mask_entries += t.len();
            *count.synapses_present.get_or_insert(0) += t.as_slice().iter().filter(|v| **v != 0.0).count();
        } else {
            count.learnable += t.len();
        }
    }
    count
}

/// The weight metrics of every `<layer>.weight` tensor of `params` (activity fields left empty).
pub fn weight_metrics(params: &Params) -> Vec<LayerMetrics> {
    crate::layers::layers(params)
        .into_iter()
        .map(|crate::layers::Layer { name, prefix, weight: w }| {
            let mask = params.find(&format!("{prefix}.mask"));
            let kept_fraction = match mask {
                Some(m) if !m.is_empty() => m.as_slice().iter().filter(|v| **v != 0.0).count() as f64 / m.len() as f64,
                _ => 1.0,
            };
            let fit = fit_lognormal(w.as_slice());
            let d = dale(w);
            let div = diversity(w);
            LayerMetrics {
                layer: name,
                shape: [w.rows(), w.cols()],
                hidden: false,
                active_fraction: None,
                lifetime_sparseness: None,
                dead_units: None,
                dead_fraction: None,
                activity_units: None,
                hoyer: hoyer(w.as_slice()),
                kept_fraction,
                log_weight_mu: fit.map(|f| f.mu),
                log_weight_sigma: fit.map(|f| f.sigma),
                log_weight_skew: fit.map(|f| f.skew),
                ks_distance: fit.map(|f| f.ks_distance),
                log_samples: fit.map_or(0, |f| f.samples),
                dale_index: d.index,
                excitatory_fraction: d.excitatory_fraction,
                inhibitory_fraction: d.inhibitory_fraction,
                silent_presynaptic: d.silent,
                unit_similarity: div.map(|v| v.similarity),
                effective_rank: div.map(|v| v.effective_rank),
            }
        })
        .collect()
}

/// Activity statistics of each hidden layer of `model` on `images`, in batches of `batch`.
pub fn activity_stats<B: Backend, M: Classifier<B>>(
    model: &M,
    images: &Matrix,
    batch: usize,
) -> Result<Vec<ActivityStats>, EvalError> {
    if images.cols() != model.input_dim() {
        return Err(EvalError::Shape(format!(
            "images have {} pixels but the model expects {}",
            images.cols(),
            model.input_dim()
        )));
    }
    if images.rows() == 0 {
        return Err(EvalError::NotEnoughData("no images to measure activity on".into()));
    }
    let b = model.backend();
    let labels = vec![0; images.rows()];
    let mut acc: Vec<ActivityAccumulator> = Vec::new();
    for_each_batch(images, &labels, batch, |_, x, _| {
        for (i, act) in model.hidden_activity(&b.upload(x)).iter().enumerate() {
            let m = b.download(act);
            if acc.len() <= i {
                acc.push(ActivityAccumulator::new(m.cols()));
            }
            acc[i].add(&m);
        }
        Ok::<_, EvalError>(())
    })?;
    Ok(acc.iter().map(ActivityAccumulator::finish).collect())
}

/// Every biological metric of `model`: weight metrics from [`Classifier::to_params`], and activity
/// metrics of each hidden layer on `images` (batches of `batch`). The `k`-th weight matrix produces
/// the `k`-th hidden layer (this holds for both `bio` and `bp`); the last one is the readout.
pub fn biological_report<B: Backend, M: Classifier<B>>(
    model: &M,
    images: &Matrix,
    batch: usize,
) -> Result<BiologicalReport, EvalError> {
    let activity = activity_stats(model, images, batch)?;
    let mut layers = weight_metrics(&model.to_params());
    for (layer, stats) in layers.iter_mut().zip(&activity) {
        // A convolutional layer's activity is its map, one column per (position, channel) site.
        if layer.shape[0] != stats.units && !stats.units.is_multiple_of(layer.shape[0].max(1)) {
            return Err(EvalError::Shape(format!(
                "layer `{}` has {} units but its activity {}",
                layer.layer, layer.shape[0], stats.units
            )));
        }
        layer.hidden = true;
        layer.active_fraction = Some(stats.active_fraction);
        layer.lifetime_sparseness = stats.lifetime_sparseness;
        layer.dead_units = Some(stats.dead_units);
        layer.dead_fraction = Some(stats.dead_fraction);
        layer.activity_units = Some(stats.units);
    }
    Ok(BiologicalReport { inputs: images.rows(), layers })
}

/// Class selectivity of one hidden layer over a labelled data set (see [`class_selectivity`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerSelectivity {
    /// The hidden layer, named like [`LayerMetrics::layer`] (`hidden.0`, …).
    pub layer: String,
    /// Mean selectivity index `SI = (r_max − r_rest)/(r_max + r_rest)` over the units that entered the
    /// means (`None` when no unit did).
    pub selectivity: Option<f64>,
    /// Mean mutual information `I(A; C)`, in bits, between "unit active" and the class, over the same units.
    pub mutual_information_bits: Option<f64>,
    /// Units that entered the means (active at least once, with `r_max + r_rest > 0`).
    pub units: usize,
}

/// Per-unit, per-class counts of one layer's activity, accumulated batch by batch (memory
/// `O(units · classes)`, independent of the number of inputs).
///
/// For unit `j` and class `c` it keeps `n_c` (inputs of class `c`), `k_{jc}` (inputs of class `c`
/// on which unit `j` is active, i.e. has activity `> 0`) and `s_{jc}` (sum of its activity over the
/// inputs of class `c`). Only classes with `n_c > 0` take part in the statistics.
///
/// **Selectivity index.** With `r_c = s_{jc} / n_c` the mean activity on class `c`, over the `K`
/// classes present, `r_max = max_c r_c` and `r_rest` the mean of the other `K − 1` values,
/// `SI = (r_max − r_rest) / (r_max + r_rest)`: 0 for a unit responding equally to every class, 1 for
/// a unit responding to one class only (for nonnegative activity, `SI ∈ [0, 1]`).
///
/// **Mutual information.** With `N = Σ_c n_c`, the empirical prior `p(c) = n_c / N`,
/// `p(A=1 | c) = k_{jc} / n_c` and `p(A=1) = Σ_c k_{jc} / N`,
/// `I(A; C) = H(A) − Σ_c p(c) H(A | C=c)` where `H(p) = −p log₂ p − (1−p) log₂(1−p)` is the binary
/// entropy (in bits). It is 0 when being active says nothing about the class and `H(A)` when the
/// class determines whether the unit is active.
///
/// A unit enters the layer means if it is active at least once, at least two classes are present
/// and `r_max + r_rest > 0`.
#[derive(Clone, Debug)]
pub struct SelectivityAccumulator {
    units: usize,
    classes: usize,
    class_inputs: Vec<usize>,
    /// `active[j * classes + c] = k_{jc}`.
    active: Vec<usize>,
    /// `sum[j * classes + c] = s_{jc}`.
    sum: Vec<f64>,
}

/// Binary entropy in bits of a Bernoulli(`p`) variable (0 at `p ∈ {0, 1}`).
fn binary_entropy(p: f64) -> f64 {
    let h = |q: f64| if q > 0.0 { -q * q.log2() } else { 0.0 };
    h(p) + h(1.0 - p)
}

impl SelectivityAccumulator {
    /// An empty accumulator for a layer of `units` units and labels in `0..classes`.
    pub fn new(units: usize, classes: usize) -> Self {
        Self {
            units,
            classes,
            class_inputs: vec![0; classes],
            active: vec![0; units * classes],
            sum: vec![0.0; units * classes],
        }
    }

    /// Adds a `batch×units` activity matrix and the class of each row. Panics if the width differs
    /// from `units`, if `labels.len()` differs from the number of rows, or if a label is `≥ classes`.
    pub fn add(&mut self, activity: &Matrix, labels: &[usize]) {
        assert_eq!(activity.cols(), self.units, "activity width must equal the layer's units");
        assert_eq!(activity.rows(), labels.len(), "one label per activity row");
        for (r, &c) in labels.iter().enumerate() {
            assert!(c < self.classes, "label {c} out of range ({} classes)", self.classes);
            self.class_inputs[c] += 1;
            for (j, &v) in activity.row(r).iter().enumerate() {
                let i = j * self.classes + c;
                if v > 0.0 {
                    self.active[i] += 1;
                }
                self.sum[i] += v as f64;
            }
        }
    }

    /// Inputs added so far.
    pub fn inputs(&self) -> usize {
        self.class_inputs.iter().sum()
    }

    /// `(SI, I(A; C) in bits)` of unit `j`, or `None` if the unit does not enter the layer means
    /// (never active, fewer than two classes present, or `r_max + r_rest ≤ 0`). Panics if `j ≥ units`.
    pub fn unit(&self, j: usize) -> Option<(f64, f64)> {
        assert!(j < self.units, "unit {j} out of range ({} units)", self.units);
        let row = j * self.classes..(j + 1) * self.classes;
        let (active, sum) = (&self.active[row.clone()], &self.sum[row]);
        let present: Vec<usize> = (0..self.classes).filter(|&c| self.class_inputs[c] > 0).collect();
        let fired: usize = active.iter().sum();
        if fired == 0 || present.len() < 2 {
            return None;
        }
        let rates: Vec<f64> = present.iter().map(|&c| sum[c] / self.class_inputs[c] as f64).collect();
        let (best, r_max) = rates
            .iter()
            .copied()
            .enumerate()
            .fold((0, f64::NEG_INFINITY), |m, (i, r)| if r > m.1 { (i, r) } else { m });
        let r_rest = rates.iter().enumerate().filter(|&(i, _)| i != best).map(|(_, r)| r).sum::<f64>()
            / (rates.len() - 1) as f64;
        if r_max + r_rest <= 0.0 {
            return None;
        }
        let si = (r_max - r_rest) / (r_max + r_rest);
        let n = self.inputs() as f64;
        let conditional: f64 = present
            .iter()
            .map(|&c| {
                let nc = self.class_inputs[c] as f64;
                nc / n * binary_entropy(active[c] as f64 / nc)
            })
            .sum();
        let mi = (binary_entropy(fired as f64 / n) - conditional).max(0.0);
        Some((si, mi))
    }

    /// The layer statistics of everything added, under the name `layer`.
    pub fn finish(&self, layer: &str) -> LayerSelectivity {
        let per_unit: Vec<(f64, f64)> = (0..self.units).filter_map(|j| self.unit(j)).collect();
        let mean = |f: fn(&(f64, f64)) -> f64| {
            (!per_unit.is_empty()).then(|| per_unit.iter().map(f).sum::<f64>() / per_unit.len() as f64)
        };
        LayerSelectivity {
            layer: layer.to_string(),
            selectivity: mean(|u| u.0),
            mutual_information_bits: mean(|u| u.1),
            units: per_unit.len(),
        }
    }
}

/// Class selectivity of each hidden layer of `model` on `images` with classes `labels` (each
/// `< classes`), in batches of `batch`, through [`Classifier::hidden_activity`] and one
/// [`SelectivityAccumulator`] per layer (see there for the definitions of `SI` and `I(A; C)`).
/// The `k`-th hidden layer is named `hidden.k` ([`crate::layers::hidden_layer`]), like the layers of
/// [`biological_report`].
pub fn class_selectivity<B: Backend, M: Classifier<B>>(
    model: &M,
    images: &Matrix,
    labels: &[usize],
    classes: usize,
    batch: usize,
) -> Result<Vec<LayerSelectivity>, EvalError> {
    if images.cols() != model.input_dim() {
        return Err(EvalError::Shape(format!(
            "images have {} pixels but the model expects {}",
            images.cols(),
            model.input_dim()
        )));
    }
    if labels.len() != images.rows() {
        return Err(EvalError::Shape(format!("{} labels for {} images", labels.len(), images.rows())));
    }
    if images.rows() == 0 {
        return Err(EvalError::NotEnoughData("no images to measure class selectivity on".into()));
    }
    if let Some(c) = labels.iter().find(|&&c| c >= classes) {
        return Err(EvalError::Shape(format!("label {c} out of range ({classes} classes)")));
    }
    let b = model.backend();
    let mut acc: Vec<SelectivityAccumulator> = Vec::new();
    for_each_batch(images, labels, batch, |_, x, y| {
        for (i, act) in model.hidden_activity(&b.upload(x)).iter().enumerate() {
            let m = b.download(act);
            if acc.len() <= i {
                acc.push(SelectivityAccumulator::new(m.cols(), classes));
            }
            acc[i].add(&m, y);
        }
        Ok::<_, EvalError>(())
    })?;
    Ok(acc.iter().enumerate().map(|(i, a)| a.finish(&crate::layers::hidden_layer(i))).collect())
}
