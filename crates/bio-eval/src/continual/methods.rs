//! The learners of the continual-learning harness: any registered rule trained by its own
//! `train_batch` ([`RuleLearner`]), backprop with the field's baselines ([`BpLearner`]: joint
//! training, EWC, SI, experience replay, LwF), and two controls that cannot forget ([`Ncm`]: the
//! nearest class mean on pixels or on a fixed random k-WTA expansion).

use std::collections::BTreeMap;

use bio_core::BpNet;
use bio_core::backend::{Backend, Binary, Dim, Reduce, Unary};
use bio_core::params::BpConfig;
use bio_core::rules::Adam;
use bio_core::{Classifier, LearningRule, Matrix};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::{ContextView, Learner, Scenario};
use crate::error::EvalError;
use crate::fewshot::winners_above;

/// A registered rule trained context after context with its own [`LearningRule::train_batch`]; the
/// rule is told nothing of contexts: each context is a run of [`super::Budget::phases`] epochs
/// (`start_epoch(phase, phases)`), so a rule's schedule restarts with each context and never anneals
/// across them.
pub struct RuleLearner<B: Backend, R: LearningRule<B>> {
    backend: B,
    rule: R,
    model: R::Model,
    name: String,
}

impl<B: Backend, R: LearningRule<B>> RuleLearner<B, R> {
    /// `rule` with a freshly initialised model of `outputs` outputs (`seed`).
    pub fn new(backend: &B, rule: R, name: impl Into<String>, input_dim: usize, outputs: usize, seed: u64) -> Self {
        let model = rule.init_model(backend, input_dim, outputs, seed);
        Self { backend: backend.clone(), rule, model, name: name.into() }
    }

    /// The model trained so far.
    pub fn model(&self) -> &R::Model {
        &self.model
    }
}

impl<B: Backend, R: LearningRule<B>> Learner for RuleLearner<B, R> {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn start_phase(&mut self, phase: usize, phases: usize) {
        self.rule.start_epoch(phase, phases);
    }
    fn train_batch(&mut self, x: &Matrix, targets: &[usize]) -> Result<(), EvalError> {
        let x = self.backend.upload(x);
        self.rule.train_batch(&mut self.model, &x, targets)?;
        Ok(())
    }
    fn scores(&self, x: &Matrix) -> Result<Matrix, EvalError> {
        Ok(self.backend.download(&self.model.logits(&self.backend.upload(x))))
    }
}

/// What a [`BpLearner`] adds to plain backprop fine-tuning.
#[derive(Clone, Debug, PartialEq)]
pub enum BpMethod {
    /// Fine-tuning: nothing (the lower bound).
    Finetune,
    /// Joint ("cumulative") training: at each context, batches drawn from every context so far (the
    /// upper bound; it stores everything).
    Joint,
    /// Elastic weight consolidation (Kirkpatrick et al. 2017), offline: after context `k`, the
    /// diagonal Fisher `F_k = mean_n (∂ log p(ŷ_n|x_n)/∂θ)²` (ŷ the model's prediction) on
    /// `fisher_samples` of its images and the parameters `θ*_k`; the loss gains
    /// `(λ/2) Σ_k Σ_i F_k,i (θ_i − θ*_k,i)²`.
    Ewc {
        /// λ.
        lambda: f32,
        /// Images per context the Fisher is estimated on.
        fisher_samples: usize,
    },
    /// Synaptic intelligence (Zenke et al. 2017): along the way `ω_i += −g_i·Δθ_i` (g the gradient
    /// of the task loss, Δθ each step's change); after each context `Ω_i += ω_i / ((θ_i − θ_i^start)² + ξ)`,
    /// `ω ← 0`, `θ* ← θ`; the loss gains `c Σ_i Ω_i (θ_i − θ*_i)²`.
    Si {
        /// c.
        c: f32,
        /// ξ, the damping.
        xi: f32,
    },
    /// Experience replay: after each context, `per_class` random images of each of its targets are
    /// kept; each update adds an equally large batch from the buffer, the loss weighted
    /// `(1/k)·L_current + (1 − 1/k)·L_replay` for the `k`-th context (van de Ven et al.).
    Replay {
        /// Images kept per class (per target of each context).
        per_class: usize,
    },
    /// Learning without forgetting (Li & Hoiem 2016) as van de Ven et al.'s code runs it (their
    /// "replay of the current batch with soft targets"): after each context a copy of the network is
    /// kept (no images); each later update adds to the cross-entropy of the batch a distillation term
    /// on the *same* batch, `L = L_CE + w·L_KD`, with
    /// `L_KD = mean_n Σ_c −softmax(z'_n/T)_c · log softmax(z_n/T)_c` (`z'` the kept copy's logits,
    /// `z` the network's, no `T²` factor) over a group of outputs: in class-IL every output (their
    /// default active classes, "all") with `w = 1`; in domain-IL every output with `w = k`, the number of
    /// earlier contexts; in task-IL one softmax per earlier context over that context's outputs
    /// (`heads`), summed (their mean over contexts times `k`). In the first context `L_KD = 0`.
    Lwf {
        /// `T` (van de Ven: 2, [`LWF_TEMPERATURE`]).
        temperature: f32,
        /// The scenario, which fixes the groups and the weight.
        scenario: Scenario,
        /// The targets of each context (the task-IL groups).
        heads: Vec<Vec<usize>>,
    },
}

impl BpMethod {
    /// Its row name (`bp-joint`, `bp-ewc`, …).
    pub fn name(&self) -> &'static str {
        match self {
            BpMethod::Finetune => "bp",
            BpMethod::Joint => "bp-joint",
            BpMethod::Ewc { .. } => "bp-ewc",
            BpMethod::Si { .. } => "bp-si",
            BpMethod::Replay { .. } => "bp-replay",
            BpMethod::Lwf { .. } => "bp-lwf",
        }
    }
}

/// LwF's temperature of the soft targets, van de Ven et al.'s value.
pub const LWF_TEMPERATURE: f32 = 2.0;

/// Images kept for replay, at most `per_class` per `(context, target)`.
#[derive(Clone, Debug, Default)]
pub struct ReplayBuffer {
    per_class: usize,
    entries: BTreeMap<(usize, usize), Vec<Vec<f32>>>,
}

impl ReplayBuffer {
    /// An empty buffer keeping at most `per_class` images per class.
    pub fn new(per_class: usize) -> Self {
        Self { per_class, entries: BTreeMap::new() }
    }

    /// Keeps up to `per_class` randomly chosen images of each target among `x`/`targets`, all from
    /// context `context`.
    pub fn add_context(&mut self, context: usize, x: &Matrix, targets: &[usize], rng: &mut ChaCha8Rng) {
        let mut by_target: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (n, &t) in targets.iter().enumerate() {
            by_target.entry(t).or_default().push(n);
        }
        for (t, mut rows) in by_target {
            rows.shuffle(rng);
            let slot = self.entries.entry((context, t)).or_default();
            for r in rows {
                if slot.len() >= self.per_class {
                    break;
                }
                slot.push(x.row(r).to_vec());
            }
        }
    }

    /// Images held.
    pub fn len(&self) -> usize {
        self.entries.values().map(Vec::len).sum()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Images held per `(context, target)`.
    pub fn counts(&self) -> BTreeMap<(usize, usize), usize> {
        self.entries.iter().map(|(k, v)| (*k, v.len())).collect()
    }

    /// `n` images drawn uniformly with replacement, with their targets.
    pub fn sample(&self, n: usize, rng: &mut ChaCha8Rng) -> (Matrix, Vec<usize>) {
        let all: Vec<(usize, &Vec<f32>)> =
            self.entries.iter().flat_map(|((_, t), v)| v.iter().map(move |im| (*t, im))).collect();
        let cols = all.first().map_or(0, |(_, im)| im.len());
        let mut data = Vec::with_capacity(n * cols);
        let mut targets = Vec::with_capacity(n);
        for _ in 0..n {
            let (t, im) = all[rng.random_range(0..all.len())];
            data.extend_from_slice(im);
            targets.push(t);
        }
        (Matrix::new(n, cols, data).expect("rows of equal width"), targets)
    }
}

/// Backprop (the workspace's [`Adam`] on the [`BpNet`] model) with one of the field's
/// continual-learning methods ([`BpMethod`]).
pub struct BpLearner<B: Backend> {
    backend: B,
    net: BpNet<B>,
    method: BpMethod,
    lr: f32,
    adam: Adam<B>,
    context: usize,
    rng: ChaCha8Rng,
    /// EWC: `(F_k, θ*_k)` per finished context.
    consolidated: Vec<Consolidated<B>>,
    /// SI: `(ω, Ω, θ^start, θ*)`, created at the first update.
    si: Option<SiState<B>>,
    buffer: ReplayBuffer,
    /// LwF: the network as it was at the end of the last context.
    previous: Option<BpNet<B>>,
    /// LwF: `L_KD` of the last update (0 without a kept network).
    distillation: f32,
}

/// EWC's memory of one context: the diagonal Fisher `F_k` and the parameters `θ*_k`, per tensor.
type Consolidated<B> =
    (Vec<<B as bio_core::backend::TensorStore>::Tensor>, Vec<<B as bio_core::backend::TensorStore>::Tensor>);

struct SiState<B: Backend> {
    omega_running: Vec<B::Tensor>,
    importance: Vec<B::Tensor>,
    start: Vec<B::Tensor>,
    anchor: Vec<B::Tensor>,
}

impl<B: Backend> BpLearner<B> {
    /// A fresh network of `config` (`input_dim → hidden → outputs`) trained with Adam at
    /// `config.learning_rate`, with `method`.
    pub fn new(backend: &B, config: BpConfig, method: BpMethod, input_dim: usize, outputs: usize, seed: u64) -> Self {
        let lr = config.learning_rate;
        let net = BpNet::init(backend, config, input_dim, outputs, seed);
        let per_class = if let BpMethod::Replay { per_class } = method { per_class } else { 0 };
        Self {
            backend: backend.clone(),
            net,
            method,
            lr,
            adam: Adam::default(),
            context: 0,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x7265_706c_6179),
            consolidated: Vec::new(),
            si: None,
            buffer: ReplayBuffer::new(per_class),
            previous: None,
            distillation: 0.0,
        }
    }

    /// The replay buffer (empty unless the method is replay).
    pub fn buffer(&self) -> &ReplayBuffer {
        &self.buffer
    }

    /// LwF's distillation loss `L_KD` on the last update (0 in the first context and for every other
    /// method).
    pub fn distillation(&self) -> f32 {
        self.distillation
    }

    /// Every parameter tensor, weights then bias of each layer.
    fn params(&self) -> Vec<B::Tensor> {
        self.net.layers.iter().flat_map(|l| [l.weights.clone(), l.bias.clone()]).collect()
    }

    /// Gradients of `scale·Σ loss` on a host batch, flattened like [`BpLearner::params`].
    fn grads(&self, x: &Matrix, targets: &[usize], scale: f32) -> Vec<B::Tensor> {
        let g = self.net.gradients(&self.backend.upload(x), targets, false, scale);
        g.layers.into_iter().flat_map(|(w, b)| [w, b]).collect()
    }

    /// [`BpMethod::Lwf`]'s gradients of `(1/n)·(Σ_n CE_n + w·Σ_n KD_n)` on a batch, flattened like
    /// [`BpLearner::params`], and `L_KD`. With `s = softmax(z/T)` and `p = softmax(z'/T)` over a group,
    /// `∂KD/∂z = (s − p)/T` on that group.
    fn lwf_grads(&self, previous: &BpNet<B>, x: &Matrix, targets: &[usize]) -> (Vec<B::Tensor>, f32) {
        let BpMethod::Lwf { temperature: t, scenario, heads } = &self.method else { unreachable!("only LwF distils") };
        let b = &self.backend;
        let xt = b.upload(x);
        let mut acts = vec![xt.clone()];
        let last = self.net.layers.len() - 1;
        for (i, layer) in self.net.layers.iter().enumerate() {
            let z = b.zip(
                &b.matmul(acts.last().expect("never empty"), false, &layer.weights, true),
                &layer.bias,
                Binary::Add,
            );
            acts.push(if i == last { z } else { b.map(&z, Unary::Relu) });
        }
        let logits = acts.pop().expect("the logits");
        let (_, _, ce) = bio_core::model::softmax_cross_entropy(b, &logits, targets);
        let z = b.download(&logits);
        let zp = b.download(&previous.logits(&xt));
        let outputs = z.cols();
        let earlier = self.context;
        let (groups, weight): (Vec<Vec<usize>>, f32) = match scenario {
            Scenario::Class => (vec![(0..outputs).collect()], 1.0),
            Scenario::Domain => (vec![(0..outputs).collect()], earlier as f32),
            Scenario::Task => (heads[..earlier].to_vec(), 1.0),
        };
        let n = targets.len().max(1) as f32;
        let mut kd = Matrix::zeros(z.rows(), outputs);
        let mut loss = 0.0f64;
        let softmax = |row: &[f32], g: &[usize]| -> Vec<f32> {
            let m = g.iter().map(|&c| row[c] / t).fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = g.iter().map(|&c| (row[c] / t - m).exp()).collect();
            let sum: f32 = e.iter().sum();
            e.iter().map(|v| v / sum).collect()
        };
        for r in 0..z.rows() {
            for g in &groups {
                let (s, p) = (softmax(z.row(r), g), softmax(zp.row(r), g));
                for (k, &c) in g.iter().enumerate() {
                    loss -= (p[k] * s[k].max(1e-30).ln()) as f64;
                    let d = kd.get(r, c) + weight * (s[k] - p[k]) / t;
                    kd.set(r, c, d);
                }
            }
        }
        let delta = b.lincomb(1.0 / n, &ce, 1.0 / n, &b.upload(&kd));
        (self.backward(&acts, delta), (loss / n as f64) as f32)
    }

    /// Gradients of every parameter, flattened like [`BpLearner::params`], from `∂L/∂logits`
    /// (`delta`) and the input and hidden activations `acts` of the forward pass: the backward pass of
    /// `BpNet::gradients`, which takes hard labels only (a `BpNet` method taking `∂L/∂logits` would
    /// let this and [`BpLearner::lwf_grads`]'s forward pass go).
    fn backward(&self, acts: &[B::Tensor], mut delta: B::Tensor) -> Vec<B::Tensor> {
        let b = &self.backend;
        let mut grads = Vec::with_capacity(2 * self.net.layers.len());
        for (i, layer) in self.net.layers.iter().enumerate().rev() {
            grads.push(b.reduce(&delta, Dim::PerCol, Reduce::Sum));
            grads.push(b.matmul(&delta, true, &acts[i], false));
            if i > 0 {
                let da = b.matmul(&delta, false, &layer.weights, false);
                delta = b.zip(&da, &b.map(&acts[i], Unary::Step), Binary::Mul);
            }
        }
        grads.reverse();
        grads
    }

    /// `g ← g + α·s ⊙ (θ − θ*)`, the gradient of the quadratic penalty `(α/2) Σ s (θ − θ*)²`.
    fn add_quadratic(&self, grads: &mut [B::Tensor], alpha: f32, weight: &[B::Tensor], anchor: &[B::Tensor]) {
        let b = &self.backend;
        for (((g, theta), s), star) in grads.iter_mut().zip(self.params()).zip(weight).zip(anchor) {
            let pull = b.zip(&b.zip(&theta, star, Binary::Sub), s, Binary::Mul);
            *g = b.lincomb(1.0, g, alpha, &pull);
        }
    }

    /// The diagonal Fisher of [`BpMethod::Ewc`] on `x`: the mean over images of the squared gradient
    /// of `log p(ŷ|x)`, ŷ the predicted output.
    fn fisher(&self, x: &Matrix) -> Vec<B::Tensor> {
        let b = &self.backend;
        let predicted = self.net.predict(&b.upload(x));
        let mut sum: Option<Vec<B::Tensor>> = None;
        for (n, &y) in predicted.iter().enumerate() {
            let g = self.grads(&x.select_rows(&[n]), &[y], 1.0);
            let sq: Vec<B::Tensor> = g.iter().map(|t| b.map(t, Unary::Square)).collect();
            sum = Some(match sum {
                None => sq,
                Some(s) => s.iter().zip(&sq).map(|(a, c)| b.zip(a, c, Binary::Add)).collect(),
            });
        }
        let scale = 1.0 / predicted.len().max(1) as f32;
        sum.unwrap_or_default().iter().map(|t| b.map(t, Unary::Scale(scale))).collect()
    }
}

impl<B: Backend> Learner for BpLearner<B> {
    fn name(&self) -> String {
        self.method.name().to_string()
    }
    fn cumulative(&self) -> bool {
        self.method == BpMethod::Joint
    }
    fn start_context(&mut self, context: usize) -> Result<(), EvalError> {
        self.context = context;
        Ok(())
    }
    fn train_batch(&mut self, x: &Matrix, targets: &[usize]) -> Result<(), EvalError> {
        let b = self.backend.clone();
        let n = targets.len().max(1) as f32;
        let mut grads = match &self.method {
            BpMethod::Replay { .. } if !self.buffer.is_empty() => {
                let current = 1.0 / (self.context + 1) as f32;
                let mut g = self.grads(x, targets, current / n);
                let (rx, ry) = self.buffer.sample(targets.len(), &mut self.rng);
                let rg = self.grads(&rx, &ry, (1.0 - current) / n);
                for (a, r) in g.iter_mut().zip(&rg) {
                    *a = b.zip(a, r, Binary::Add);
                }
                g
            }
            BpMethod::Lwf { .. } if self.previous.is_some() => {
                let previous = self.previous.as_ref().expect("kept");
                let (g, kd) = self.lwf_grads(previous, x, targets);
                self.distillation = kd;
                g
            }
            _ => self.grads(x, targets, 1.0 / n),
        };
        let task_grads = matches!(self.method, BpMethod::Si { .. }).then(|| grads.clone());
        match &self.method {
            BpMethod::Ewc { lambda, .. } => {
                for (fisher, anchor) in &self.consolidated {
                    self.add_quadratic(&mut grads, *lambda, fisher, anchor);
                }
            }
            BpMethod::Si { c, .. } => {
                if let Some(si) = &self.si {
                    self.add_quadratic(&mut grads, 2.0 * c, &si.importance, &si.anchor);
                }
            }
            _ => {}
        }
        let before = task_grads.as_ref().map(|_| self.params());
        if matches!(self.method, BpMethod::Si { .. }) && self.si.is_none() {
            let params = self.params();
            let zeros: Vec<B::Tensor> = params
                .iter()
                .map(|p| {
                    let (r, c) = b.shape(p);
                    b.full(r, c, 0.0)
                })
                .collect();
            self.si = Some(SiState {
                omega_running: zeros.clone(),
                importance: zeros,
                start: params.clone(),
                anchor: params,
            });
        }
        let mut params: Vec<&mut B::Tensor> =
            self.net.layers.iter_mut().flat_map(|l| [&mut l.weights, &mut l.bias]).collect();
        self.adam.step(&b, &mut params, &grads, self.lr);
        if let (Some(g), Some(before), Some(si)) = (task_grads, before, self.si.as_mut()) {
            let after: Vec<B::Tensor> =
                self.net.layers.iter().flat_map(|l| [l.weights.clone(), l.bias.clone()]).collect();
            for (((w, g), old), new) in si.omega_running.iter_mut().zip(&g).zip(&before).zip(&after) {
                let delta = b.zip(new, old, Binary::Sub);
                *w = b.lincomb(1.0, w, -1.0, &b.zip(g, &delta, Binary::Mul));
            }
        }
        Ok(())
    }
    fn end_context(&mut self, data: &mut ContextView<'_>) -> Result<(), EvalError> {
        let b = self.backend.clone();
        match self.method.clone() {
            BpMethod::Ewc { fisher_samples, .. } => {
                let mut idx: Vec<usize> = (0..data.len()).collect();
                idx.shuffle(&mut self.rng);
                idx.truncate(fisher_samples.max(1));
                let (x, _) = data.rows(&idx);
                let fisher = self.fisher(&x);
                self.consolidated.push((fisher, self.params()));
            }
            BpMethod::Si { xi, .. } => {
                let params = self.params();
                if let Some(si) = self.si.as_mut() {
                    for (k, param) in params.iter().enumerate() {
                        let moved = b.map(&b.zip(param, &si.start[k], Binary::Sub), Unary::Square);
                        let denom = b.map(&moved, Unary::Offset(xi));
                        let add = b.zip(&si.omega_running[k], &denom, Binary::Div);
                        si.importance[k] = b.zip(&si.importance[k], &add, Binary::Add);
                        let (r, c) = b.shape(param);
                        si.omega_running[k] = b.full(r, c, 0.0);
                    }
                    si.start = params.clone();
                    si.anchor = params;
                }
            }
            BpMethod::Replay { .. } => {
                let all: Vec<usize> = (0..data.len()).collect();
                let (x, y) = data.rows(&all);
                self.buffer.add_context(data.context(), &x, &y, &mut self.rng);
            }
            BpMethod::Lwf { .. } => self.previous = Some(self.net.clone()),
            BpMethod::Finetune | BpMethod::Joint => {}
        }
        Ok(())
    }
    fn scores(&self, x: &Matrix) -> Result<Matrix, EvalError> {
        Ok(self.backend.download(&self.net.logits(&self.backend.upload(x))))
    }
}

/// The features a [`Ncm`] compares.
#[derive(Clone, Debug)]
pub enum NcmFeatures {
    /// The pixels.
    Pixels,
    /// A fixed random k-WTA expansion, never learned: `x̂ = x/(‖x‖₂ + 10⁻⁶)`, `x̃ = x̂ − mean(x̂)`,
    /// `h = relu(d − d_(k+1))` with the drive `d = W x̃` (`W` standard normal, `units × input`) and
    /// `d_(k+1)` its `(k+1)`-th largest entry, `k = round(density·units)`.
    RandomKwta {
        /// `W`, `units × input`.
        weights: Matrix,
        /// Fraction of units active.
        density: f32,
    },
}

impl NcmFeatures {
    /// A random expansion of `input_dim` pixels into `units` units, `density` of them active (seeded).
    pub fn random_kwta(input_dim: usize, units: usize, density: f32, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6b77_7461);
        let weights = Matrix::from_fn(units, input_dim, |_, _| StandardNormal.sample(&mut rng));
        NcmFeatures::RandomKwta { weights, density }
    }
}

/// Nearest class mean: running sums of each output's features; the score of an output is minus the
/// squared distance to its mean (−∞ for an output never seen). It keeps means, not examples, and a
/// class's mean is untouched by later classes, so it cannot forget.
pub struct Ncm<B: Backend> {
    backend: B,
    features: NcmFeatures,
    weights: Option<B::Tensor>,
    sums: Vec<Vec<f64>>,
    counts: Vec<usize>,
}

impl<B: Backend> Ncm<B> {
    /// An empty classifier over `outputs` outputs.
    pub fn new(backend: &B, features: NcmFeatures, outputs: usize) -> Self {
        let weights = match &features {
            NcmFeatures::Pixels => None,
            NcmFeatures::RandomKwta { weights, .. } => Some(backend.upload(weights)),
        };
        Self { backend: backend.clone(), features, weights, sums: vec![Vec::new(); outputs], counts: vec![0; outputs] }
    }

    fn features_of(&self, x: &Matrix) -> Matrix {
        match (&self.features, &self.weights) {
            (NcmFeatures::RandomKwta { density, .. }, Some(w)) => {
                let mut xt = x.clone();
                for n in 0..xt.rows() {
                    let row = xt.row_mut(n);
                    let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt() + 1e-6;
                    row.iter_mut().for_each(|v| *v /= norm);
                    let mean = row.iter().sum::<f32>() / row.len().max(1) as f32;
                    row.iter_mut().for_each(|v| *v -= mean);
                }
                let b = &self.backend;
                let drive = b.download(&b.matmul(&b.upload(&xt), false, w, true));
                winners_above(&drive, *density)
            }
            _ => x.clone(),
        }
    }
}

impl<B: Backend> Learner for Ncm<B> {
    fn name(&self) -> String {
        match self.features {
            NcmFeatures::Pixels => "ncm-pixels".into(),
            NcmFeatures::RandomKwta { .. } => "ncm-random-kwta".into(),
        }
    }
    fn single_pass(&self) -> bool {
        true
    }
    fn train_batch(&mut self, x: &Matrix, targets: &[usize]) -> Result<(), EvalError> {
        let f = self.features_of(x);
        for (n, &t) in targets.iter().enumerate() {
            if self.sums[t].is_empty() {
                self.sums[t] = vec![0.0; f.cols()];
            }
            for (s, &v) in self.sums[t].iter_mut().zip(f.row(n)) {
                *s += v as f64;
            }
            self.counts[t] += 1;
        }
        Ok(())
    }
    fn scores(&self, x: &Matrix) -> Result<Matrix, EvalError> {
        let f = self.features_of(x);
        let means: Vec<Option<Vec<f32>>> = self
            .sums
            .iter()
            .zip(&self.counts)
            .map(|(s, &c)| (c > 0).then(|| s.iter().map(|v| (v / c as f64) as f32).collect()))
            .collect();
        Ok(Matrix::from_fn(f.rows(), means.len(), |n, c| match &means[c] {
            Some(mu) => -f.row(n).iter().zip(mu).map(|(a, m)| (a - m) * (a - m)).sum::<f32>(),
            None => f32::NEG_INFINITY,
        }))
    }
}

/// A rule trained by its own steps, as [`RuleLearner`], but scored by a readout that cannot overwrite
/// old classes: one prototype per output, the running mean of the last hidden layer's activity `h`
/// over the training images of that output, `μ_c ← μ_c + (h − μ_c)/n_c` (a local, class-wise Hebbian
/// update gated by the teaching signal: only the true class's prototype moves), and the score
/// `−‖h − μ_c‖²` (−∞ for an output never taught). The rule's own readout still learns (the hidden
/// layers of some rules depend on it) but is not used. The prototypes see each image once, with the
/// code it has when it is trained on.
pub struct PrototypeReadout<B: Backend, R: LearningRule<B>> {
    inner: RuleLearner<B, R>,
    sums: Vec<Vec<f64>>,
    counts: Vec<usize>,
}

impl<B: Backend, R: LearningRule<B>> PrototypeReadout<B, R> {
    /// Wraps `inner`, whose model has `outputs` outputs.
    pub fn new(inner: RuleLearner<B, R>, outputs: usize) -> Self {
        Self { inner, sums: vec![Vec::new(); outputs], counts: vec![0; outputs] }
    }

    /// Training images each output's prototype has averaged.
    pub fn taught(&self) -> &[usize] {
        &self.counts
    }

    /// The last hidden layer's activity on `x`.
    fn code(&self, x: &Matrix) -> Result<Matrix, EvalError> {
        let b = &self.inner.backend;
        let hidden = self.inner.model.hidden_activity(&b.upload(x));
        let last = hidden.last().ok_or_else(|| EvalError::invalid("methods", "the model has no hidden layer"))?;
        Ok(b.download(last))
    }
}

impl<B: Backend, R: LearningRule<B>> Learner for PrototypeReadout<B, R> {
    fn name(&self) -> String {
        format!("{}+ncm", self.inner.name)
    }
    fn start_phase(&mut self, phase: usize, phases: usize) {
        self.inner.start_phase(phase, phases);
    }
    fn train_batch(&mut self, x: &Matrix, targets: &[usize]) -> Result<(), EvalError> {
        self.inner.train_batch(x, targets)?;
        let h = self.code(x)?;
        for (n, &t) in targets.iter().enumerate() {
            if self.sums[t].is_empty() {
                self.sums[t] = vec![0.0; h.cols()];
            }
            for (s, &v) in self.sums[t].iter_mut().zip(h.row(n)) {
                *s += v as f64;
            }
            self.counts[t] += 1;
        }
        Ok(())
    }
    fn scores(&self, x: &Matrix) -> Result<Matrix, EvalError> {
        let h = self.code(x)?;
        let means: Vec<Option<Vec<f32>>> = self
            .sums
            .iter()
            .zip(&self.counts)
            .map(|(s, &c)| (c > 0).then(|| s.iter().map(|v| (v / c as f64) as f32).collect()))
            .collect();
        Ok(Matrix::from_fn(h.rows(), means.len(), |n, c| match &means[c] {
            Some(mu) => -h.row(n).iter().zip(mu).map(|(a, m)| (a - m) * (a - m)).sum::<f32>(),
            None => f32::NEG_INFINITY,
        }))
    }
}
