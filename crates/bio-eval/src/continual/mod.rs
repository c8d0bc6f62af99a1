//! Continual learning, measured to the field's protocol (van de Ven, Tuytelaars & Tolias 2022, "Three
//! types of incremental learning"): a sequence of contexts, each seen once for a fixed budget, the
//! accuracy matrix `R[i][j]` (after context `i`, on context `j`) and the metrics made from it.
//!
//! - [`Protocol`]: the contexts (Split: classes per context; Permuted: a pixel permutation per
//!   context) and the [`Scenario`], which fixes the targets a model learns and the outputs it may
//!   choose among at test time.
//! - [`Learner`]: anything trained context after context (a registered rule, backprop with EWC, SI
//!   or replay, a nearest-class-mean control; see [`methods`]).
//! - [`run`]: trains a learner context by context through a [`ContextSource`], which serves only the
//!   data the learner is entitled to, and fills [`AccuracyMatrix`].
//! - [`ContinualMetrics`]: average accuracy, forgetting, backward and forward transfer.

pub mod methods;

use std::collections::BTreeSet;

use bio_core::Matrix;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::EvalError;

/// How a model is asked to tell the classes apart (van de Ven et al. 2022).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// Class-incremental: one head over every class; at test, the model chooses among all classes
    /// seen so far, without being told the context.
    Class,
    /// Task-incremental: the context is given at test; the model chooses among that context's
    /// classes only.
    Task,
    /// Domain-incremental: every context has the same output space (Split: the position of the class
    /// within its context, e.g. first or second; Permuted: the ten classes), no context given.
    Domain,
}

impl Scenario {
    /// Its name in files and on the command line (`class`, `task`, `domain`).
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Class => "class",
            Scenario::Task => "task",
            Scenario::Domain => "domain",
        }
    }

    /// The scenario called `name`.
    pub fn parse(name: &str) -> Result<Scenario, EvalError> {
        match name {
            "class" => Ok(Scenario::Class),
            "task" => Ok(Scenario::Task),
            "domain" => Ok(Scenario::Domain),
            other => Err(EvalError::invalid("scenario", format!("`{other}` is not one of class, task, domain"))),
        }
    }
}

/// One context: the classes it holds and, for permuted protocols, the pixel permutation applied to
/// every image (`pixel k` of the shown image is `pixel permutation[k]` of the original).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    /// Original class labels of this context's images.
    pub classes: Vec<usize>,
    /// Pixel permutation, or `None` for the original images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permutation: Option<Vec<usize>>,
}

/// A sequence of contexts in one scenario.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protocol {
    /// The scenario.
    pub scenario: Scenario,
    /// The contexts, in training order.
    pub contexts: Vec<Context>,
    /// Classes of the dataset (outputs of a class- or task-incremental model).
    pub classes: usize,
}

impl Protocol {
    /// Split protocol: `order` (a permutation of the dataset's classes) cut into consecutive contexts
    /// of `per_context` classes each, e.g. `[0..10]` in pairs gives Split MNIST's `{0,1},{2,3},…`.
    pub fn split(scenario: Scenario, order: &[usize], per_context: usize, classes: usize) -> Result<Self, EvalError> {
        if per_context < 2 {
            return Err(EvalError::invalid("classes-per-context", "a context needs at least 2 classes"));
        }
        let distinct: BTreeSet<usize> = order.iter().copied().collect();
        if distinct.len() != order.len() || order.iter().any(|&c| c >= classes) {
            return Err(EvalError::invalid(
                "order",
                format!("must list distinct classes below {classes}, got {order:?}"),
            ));
        }
        if !order.len().is_multiple_of(per_context) || order.len() < 2 * per_context {
            return Err(EvalError::invalid(
                "order",
                format!("{} classes do not make at least 2 contexts of {per_context}", order.len()),
            ));
        }
        let contexts = order.chunks(per_context).map(|c| Context { classes: c.to_vec(), permutation: None }).collect();
        Ok(Protocol { scenario, contexts, classes })
    }

    /// Permuted protocol: `contexts` contexts over every class, the first on the original images and
    /// each other under its own random pixel permutation (seeded).
    pub fn permuted(
        scenario: Scenario,
        contexts: usize,
        classes: usize,
        input_dim: usize,
        seed: u64,
    ) -> Result<Self, EvalError> {
        if contexts < 2 {
            return Err(EvalError::invalid("contexts", "the permuted protocol needs at least 2 contexts"));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7065_726d_7574_6564);
        let contexts = (0..contexts)
            .map(|i| Context {
                classes: (0..classes).collect(),
                permutation: (i > 0).then(|| {
                    let mut p: Vec<usize> = (0..input_dim).collect();
                    p.shuffle(&mut rng);
                    p
                }),
            })
            .collect();
        Ok(Protocol { scenario, contexts, classes })
    }

    /// The standard class order `0, 1, …, classes−1` and `random` further orders (seeded) of `classes`
    /// classes: the orders a Split protocol is run with.
    pub fn orders(classes: usize, random: usize, seed: u64) -> Vec<Vec<usize>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6f72_6465_7273);
        let mut out = vec![(0..classes).collect::<Vec<_>>()];
        for _ in 0..random {
            let mut o: Vec<usize> = (0..classes).collect();
            o.shuffle(&mut rng);
            out.push(o);
        }
        out
    }

    /// Whether every context holds the same classes (a permuted protocol).
    fn shared_classes(&self) -> bool {
        self.contexts.iter().all(|c| c.permutation.is_some() || c.classes == self.contexts[0].classes)
            && self.contexts.iter().any(|c| c.permutation.is_some())
    }

    /// Outputs of a model in this protocol: the dataset's classes, except in the domain-incremental
    /// Split protocol where they are the positions within a context.
    pub fn outputs(&self) -> usize {
        match self.scenario {
            Scenario::Domain if !self.shared_classes() => self.contexts[0].classes.len(),
            _ => self.classes,
        }
    }

    /// The output an image of class `label` in context `context` must produce.
    pub fn target(&self, context: usize, label: usize) -> usize {
        match self.scenario {
            Scenario::Domain if !self.shared_classes() => {
                self.contexts[context].classes.iter().position(|&c| c == label).expect("label of the context")
            }
            _ => label,
        }
    }

    /// The distinct targets of context `context`'s images, in the order of its classes.
    pub fn targets_of(&self, context: usize) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::new();
        for &c in &self.contexts[context].classes {
            let t = self.target(context, c);
            if !out.contains(&t) {
                out.push(t);
            }
        }
        out
    }

    /// The outputs a model may choose among when tested on context `j` after training through
    /// context `i`: class-incremental, every class of contexts `0..=max(i, j)` (the classes seen so
    /// far, as van de Ven's "active classes"; a context not yet trained adds its own so that forward
    /// transfer is defined); task-incremental, context `j`'s classes; domain-incremental, all outputs.
    pub fn allowed(&self, i: usize, j: usize) -> Vec<usize> {
        match self.scenario {
            Scenario::Class => {
                let seen: BTreeSet<usize> =
                    self.contexts[..=i.max(j)].iter().flat_map(|c| c.classes.iter().copied()).collect();
                seen.into_iter().collect()
            }
            Scenario::Task => self.contexts[j].classes.clone(),
            Scenario::Domain => (0..self.outputs()).collect(),
        }
    }

    /// The images of `split_images`/`split_labels` that belong to context `context` (indices into the
    /// split, in stored order).
    pub fn members(&self, context: usize, labels: &[usize]) -> Vec<usize> {
        let classes = &self.contexts[context].classes;
        (0..labels.len()).filter(|&i| classes.contains(&labels[i])).collect()
    }

    /// Image `row` shown in context `context` (permuted if the context permutes pixels).
    pub fn show(&self, context: usize, row: &[f32]) -> Vec<f32> {
        match &self.contexts[context].permutation {
            Some(p) => p.iter().map(|&k| row[k]).collect(),
            None => row.to_vec(),
        }
    }

    /// Context `context`'s images of a split (shown as the context shows them) with their targets.
    pub fn context_set(&self, context: usize, images: &Matrix, labels: &[usize]) -> (Matrix, Vec<usize>) {
        let rows = self.members(context, labels);
        let mut data = Vec::with_capacity(rows.len() * images.cols());
        for &r in &rows {
            data.extend(self.show(context, images.row(r)));
        }
        let x = Matrix::new(rows.len(), images.cols(), data).expect("rows of the split");
        (x, rows.iter().map(|&r| self.target(context, labels[r])).collect())
    }
}

/// Serves training images: each request names `(context, index)` pairs, `index` counting the
/// context's own images (`0..len(context)`). [`run`] only asks for the contexts a learner may see,
/// and a test can wrap a source to record every request.
pub trait ContextSource {
    /// Number of training images of `context`.
    fn len(&self, context: usize) -> usize;
    /// The images (as shown in their context) and targets of `items`.
    fn rows(&mut self, items: &[(usize, usize)]) -> (Matrix, Vec<usize>);
}

/// A [`ContextSource`] over a training split in memory.
#[derive(Clone, Debug)]
pub struct SplitSource<'a> {
    protocol: &'a Protocol,
    images: &'a Matrix,
    labels: &'a [usize],
    members: Vec<Vec<usize>>,
}

impl<'a> SplitSource<'a> {
    /// The contexts of `protocol` over a training split.
    pub fn new(protocol: &'a Protocol, images: &'a Matrix, labels: &'a [usize]) -> Self {
        let members = (0..protocol.contexts.len()).map(|c| protocol.members(c, labels)).collect();
        Self { protocol, images, labels, members }
    }
}

impl ContextSource for SplitSource<'_> {
    fn len(&self, context: usize) -> usize {
        self.members[context].len()
    }
    fn rows(&mut self, items: &[(usize, usize)]) -> (Matrix, Vec<usize>) {
        let mut data = Vec::with_capacity(items.len() * self.images.cols());
        let mut targets = Vec::with_capacity(items.len());
        for &(c, i) in items {
            let r = self.members[c][i];
            data.extend(self.protocol.show(c, self.images.row(r)));
            targets.push(self.protocol.target(c, self.labels[r]));
        }
        (Matrix::new(items.len(), self.images.cols(), data).expect("rows of the split"), targets)
    }
}

/// The one context a learner is training on, as [`Learner::end_context`] sees it: it can read that
/// context's images and no other.
pub struct ContextView<'s> {
    source: &'s mut dyn ContextSource,
    context: usize,
}

impl ContextView<'_> {
    /// The context's index.
    pub fn context(&self) -> usize {
        self.context
    }
    /// Its number of training images.
    pub fn len(&self) -> usize {
        self.source.len(self.context)
    }
    /// Whether it has no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Its images at `indices` with their targets.
    pub fn rows(&mut self, indices: &[usize]) -> (Matrix, Vec<usize>) {
        let items: Vec<(usize, usize)> = indices.iter().map(|&i| (self.context, i)).collect();
        self.source.rows(&items)
    }
}

/// Something trained context after context.
pub trait Learner {
    /// The name of its row in tables and pictures.
    fn name(&self) -> String;
    /// Whether it trains on every context seen so far at each context (the joint, "cumulative"
    /// upper bound); all others see the current context only.
    fn cumulative(&self) -> bool {
        false
    }
    /// Whether it learns from one pass over each context's images (class means) instead of the
    /// iteration budget.
    fn single_pass(&self) -> bool {
        false
    }
    /// Called as context `context` starts.
    fn start_context(&mut self, _context: usize) -> Result<(), EvalError> {
        Ok(())
    }
    /// Called before each of a context's `phases` equal parts of its budget (phase `0..phases`), so a
    /// rule with a schedule can follow it within the context (see [`Budget::phases`]).
    fn start_phase(&mut self, _phase: usize, _phases: usize) {}
    /// One update on a batch of images and their targets.
    fn train_batch(&mut self, x: &Matrix, targets: &[usize]) -> Result<(), EvalError>;
    /// Called when the context ends, with that context's images (e.g. to compute a Fisher matrix or
    /// fill a replay buffer).
    fn end_context(&mut self, _data: &mut ContextView<'_>) -> Result<(), EvalError> {
        Ok(())
    }
    /// Scores (`rows × outputs`) of a batch; the largest allowed score is the prediction.
    fn scores(&self, x: &Matrix) -> Result<Matrix, EvalError>;
}

/// Budget and seed of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// Updates per context.
    pub iterations: usize,
    /// Images per update.
    pub batch: usize,
    /// Seed of the batch order.
    pub seed: u64,
    /// Equal parts each context's updates are cut into, each started by [`Learner::start_phase`]: a
    /// rule sees each context as a run of this many epochs (1: one epoch at its first-epoch rates;
    /// 2 lets the two-phase rules `kh` and `softhebb` learn features, then their readout, in every
    /// context).
    #[serde(default = "one")]
    pub phases: usize,
}

fn one() -> usize {
    1
}

/// `R[i][j]`: accuracy on context `j`'s test images after training through context `i`, plus the
/// accuracy of the untrained learner on each context (for forward transfer).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccuracyMatrix {
    /// Rows: after each context; columns: the contexts.
    pub r: Vec<Vec<f64>>,
    /// Accuracy on each context before any training (`b_j`).
    pub initial: Vec<f64>,
}

/// The metrics of an [`AccuracyMatrix`] (Lopez-Paz & Ranzato 2017; Chaudhry et al. 2018).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContinualMetrics {
    /// `A_T = (1/T) Σ_j R[T−1][j]`: average accuracy after the last context.
    pub average: f64,
    /// `A_i = (1/(i+1)) Σ_{j≤i} R[i][j]`: average accuracy over the contexts seen, after each context.
    pub average_after: Vec<f64>,
    /// `f_j = max_{i∈[j, T−1)} R[i][j] − R[T−1][j]` for each context but the last: best minus final.
    pub forgetting_per_context: Vec<f64>,
    /// Mean of `forgetting_per_context`.
    pub forgetting: f64,
    /// `BWT = (1/(T−1)) Σ_{j<T−1} (R[T−1][j] − R[j][j])`.
    pub backward_transfer: f64,
    /// `FWT = (1/(T−1)) Σ_{j≥1} (R[j−1][j] − b_j)`.
    pub forward_transfer: f64,
}

impl AccuracyMatrix {
    /// The metrics; needs at least 2 contexts.
    pub fn metrics(&self) -> ContinualMetrics {
        let r = &self.r;
        let t = r.len();
        assert!(t >= 2 && r.iter().all(|row| row.len() == t), "R is T×T with T ≥ 2");
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let average_after: Vec<f64> = (0..t).map(|i| mean(&r[i][..=i])).collect();
        let forgetting_per_context: Vec<f64> = (0..t - 1)
            .map(|j| {
                let best = (j..t - 1).map(|i| r[i][j]).fold(f64::NEG_INFINITY, f64::max);
                best - r[t - 1][j]
            })
            .collect();
        let bwt: Vec<f64> = (0..t - 1).map(|j| r[t - 1][j] - r[j][j]).collect();
        let fwt: Vec<f64> = (1..t).map(|j| r[j - 1][j] - self.initial[j]).collect();
        ContinualMetrics {
            average: mean(&r[t - 1]),
            average_after,
            forgetting: mean(&forgetting_per_context),
            forgetting_per_context,
            backward_transfer: mean(&bwt),
            forward_transfer: mean(&fwt),
        }
    }
}

/// Accuracy of `scores` against `targets`, choosing only among the outputs `allowed`.
pub fn masked_accuracy(scores: &Matrix, targets: &[usize], allowed: &[usize]) -> f64 {
    if targets.is_empty() {
        return 0.0;
    }
    let correct = (0..scores.rows())
        .filter(|&n| {
            let row = scores.row(n);
            let mut best = allowed[0];
            for &c in allowed {
                if row[c] > row[best] {
                    best = c;
                }
            }
            best == targets[n]
        })
        .count();
    correct as f64 / targets.len() as f64
}

/// Test sets of every context: `(images as shown, targets)`.
pub type TestSets = Vec<(Matrix, Vec<usize>)>;

/// The test sets of `protocol` from a test split.
pub fn test_sets(protocol: &Protocol, images: &Matrix, labels: &[usize]) -> TestSets {
    (0..protocol.contexts.len()).map(|c| protocol.context_set(c, images, labels)).collect()
}

/// Scores of `x` in chunks of `batch` rows.
fn scores_of(learner: &dyn Learner, x: &Matrix, batch: usize) -> Result<Matrix, EvalError> {
    let mut data = Vec::new();
    let mut cols = 0;
    for start in (0..x.rows()).step_by(batch.max(1)) {
        let rows: Vec<usize> = (start..(start + batch.max(1)).min(x.rows())).collect();
        let s = learner.scores(&x.select_rows(&rows))?;
        cols = s.cols();
        data.extend_from_slice(s.as_slice());
    }
    Ok(Matrix::new(x.rows(), cols, data)?)
}

/// One row of `R`: accuracy on every context's test set after training through context `i`.
fn evaluate_row(
    learner: &dyn Learner,
    protocol: &Protocol,
    tests: &TestSets,
    i: usize,
    batch: usize,
) -> Result<Vec<f64>, EvalError> {
    tests
        .iter()
        .enumerate()
        .map(|(j, (x, y))| Ok(masked_accuracy(&scores_of(learner, x, batch)?, y, &protocol.allowed(i, j))))
        .collect()
}

/// The batches of one context: `iterations` batches of `batch` items drawn from `pool` by walking
/// through it in a shuffled order, reshuffled each time it is used up (epochs over the pool).
fn batches_of(pool: &[(usize, usize)], budget: &Budget, context: usize) -> Vec<Vec<(usize, usize)>> {
    let mut rng = ChaCha8Rng::seed_from_u64(budget.seed ^ (context as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut order: Vec<(usize, usize)> = Vec::new();
    let mut out = Vec::with_capacity(budget.iterations);
    for _ in 0..budget.iterations {
        let mut batch = Vec::with_capacity(budget.batch);
        while batch.len() < budget.batch.min(pool.len()) {
            if order.is_empty() {
                order = pool.to_vec();
                order.shuffle(&mut rng);
            }
            batch.push(order.pop().expect("refilled"));
        }
        out.push(batch);
    }
    out
}

/// Trains `learner` on `protocol`'s contexts in order through `source` and measures `R` on `tests`.
///
/// Each context: [`Learner::start_context`], then `budget.iterations` updates of `budget.batch`
/// images of that context only (of every context so far for a [`Learner::cumulative`] learner; one
/// pass over the context's images, in batches, for a [`Learner::single_pass`] one), then
/// [`Learner::end_context`] with a view of that context alone, then one row of `R`.
/// `on_context(i)` is called as context `i` starts.
pub fn run(
    learner: &mut dyn Learner,
    protocol: &Protocol,
    source: &mut dyn ContextSource,
    tests: &TestSets,
    budget: &Budget,
    eval_batch: usize,
    mut on_context: impl FnMut(usize),
) -> Result<AccuracyMatrix, EvalError> {
    let t = protocol.contexts.len();
    if budget.batch == 0 || budget.iterations == 0 {
        return Err(EvalError::invalid("iterations", "the budget needs at least 1 iteration of at least 1 image"));
    }
    if tests.len() != t {
        return Err(EvalError::Shape(format!("{} test sets for {t} contexts", tests.len())));
    }
    for c in 0..t {
        if source.len(c) == 0 {
            return Err(EvalError::NotEnoughData(format!("context {c} has no training images")));
        }
    }
    let initial = evaluate_row(learner, protocol, tests, 0, eval_batch)?;
    let mut r = Vec::with_capacity(t);
    for i in 0..t {
        on_context(i);
        learner.start_context(i)?;
        let batches = if learner.single_pass() {
            let all: Vec<(usize, usize)> = (0..source.len(i)).map(|k| (i, k)).collect();
            all.chunks(budget.batch).map(<[_]>::to_vec).collect()
        } else {
            let first = if learner.cumulative() { 0 } else { i };
            let pool: Vec<(usize, usize)> = (first..=i).flat_map(|c| (0..source.len(c)).map(move |k| (c, k))).collect();
            batches_of(&pool, budget, i)
        };
        let phases = budget.phases.max(1);
        let per_phase = batches.len().div_ceil(phases).max(1);
        for (k, items) in batches.into_iter().enumerate() {
            if k % per_phase == 0 {
                learner.start_phase(k / per_phase, phases);
            }
            let (x, y) = source.rows(&items);
            learner.train_batch(&x, &y)?;
        }
        learner.end_context(&mut ContextView { source: &mut *source, context: i })?;
        r.push(evaluate_row(learner, protocol, tests, i, eval_batch)?);
    }
    Ok(AccuracyMatrix { r, initial })
}

#[cfg(test)]
mod tests;
