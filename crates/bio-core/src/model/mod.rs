//! What every model shares: the [`Classifier`] trait every model implements, named host tensors
//! ([`Params`]) and the loss. Each rule's network lives in its own folder (`bio`'s `BioNet` in
//! `rules/bio/model.rs`, `bp`'s `BpNet` in `rules/bp/model.rs`, …); the backend-free form written
//! to disk (`SavedModel`) and a model of any rule (`AnyModel`) live beside the rule registry, in
//! [`crate::rules`].

use serde::{Deserialize, Serialize};

use crate::backend::{Backend, Binary, Dim, Reduce};
use crate::error::CoreError;
use crate::tensor::Matrix;

/// Named host tensors: every weight, bias, mask and state vector of a model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// `(name, tensor)` pairs in a stable order, e.g. `hidden.0.weight`.
    pub tensors: Vec<(String, Matrix)>,
}

impl Params {
    /// Adds a tensor under `name`.
    pub fn push(&mut self, name: impl Into<String>, m: Matrix) {
        self.tensors.push((name.into(), m));
    }

    /// The tensor called `name`, if there is one (no check of its shape or values: [`Params::get`]).
    pub fn find(&self, name: &str) -> Option<&Matrix> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, m)| m)
    }

    /// The tensor called `name`, with its shape checked.
    pub fn get(&self, name: &str, shape: (usize, usize)) -> Result<&Matrix, CoreError> {
        let m = self.find(name).ok_or_else(|| CoreError::Incompatible(format!("tensor `{name}` is missing")))?;
        if m.shape() != shape {
            return Err(CoreError::Incompatible(format!(
                "tensor `{name}` is {}×{}, expected {}×{}",
                m.rows(),
                m.cols(),
                shape.0,
                shape.1
            )));
        }
        if !m.all_finite() {
            return Err(CoreError::Incompatible(format!("tensor `{name}` holds NaN or infinite values")));
        }
        Ok(m)
    }

    /// Total number of entries.
    pub fn count(&self) -> usize {
        self.tensors.iter().map(|(_, m)| m.len()).sum()
    }
}

/// What every trained model offers to evaluation and attacks, whatever rule trained it.
pub trait Classifier<B: Backend> {
    /// The backend holding the model.
    fn backend(&self) -> &B;
    /// Input dimension (pixels).
    fn input_dim(&self) -> usize;
    /// Number of classes.
    fn classes(&self) -> usize;
    /// Class scores (logits) for a batch `x` (`batch×input_dim`, pixels in `[0, 1]`).
    fn logits(&self, x: &B::Tensor) -> B::Tensor;
    /// The activity of each hidden layer for a batch, first layer first.
    fn hidden_activity(&self, x: &B::Tensor) -> Vec<B::Tensor>;
    /// Each hidden layer's drive before its competition or nonlinearity (a graded, dense code of
    /// the same units, e.g. for transfer to novel classes), first layer first; empty when the model
    /// does not say.
    fn hidden_drive(&self, _x: &B::Tensor) -> Vec<B::Tensor> {
        Vec::new()
    }
    /// A vector–Jacobian product through the whole model: runs the forward pass on `x`, asks
    /// `dlogits(z)` for the gradient `g = ∂L/∂z` of some loss with respect to the logits `z`, and
    /// returns `(z, (∂z/∂x)ᵀ·g)` (row `i` is sample `i`'s own input gradient) with one forward pass.
    /// Exact, hand-derived backward pass unless the model says otherwise (see [`SurrogateBio`](crate::rules::SurrogateBio)).
    fn logits_and_input_vjp(
        &self,
        x: &B::Tensor,
        dlogits: &mut dyn FnMut(&B::Tensor) -> B::Tensor,
    ) -> (B::Tensor, B::Tensor);
    /// Every parameter as named host tensors.
    fn to_params(&self) -> Params;

    /// The same model with a smooth stand-in for a non-differentiable part in the backward pass
    /// (exact forward pass), for surrogate-gradient (BPDA) attacks; `None` when the exact gradient
    /// needs no stand-in. See [`SurrogateBio`](crate::rules::SurrogateBio).
    fn surrogate(&self, _temperature: f32) -> Option<Box<dyn Classifier<B> + '_>> {
        None
    }

    /// Per-sample cross-entropy losses and the gradient of their sum with respect to `x`
    /// (row `i` is sample `i`'s own input gradient), through [`Classifier::logits_and_input_vjp`].
    fn loss_and_input_gradient(&self, x: &B::Tensor, labels: &[usize]) -> (Vec<f32>, B::Tensor) {
        let mut losses = Vec::new();
        let (_, grad) = self.logits_and_input_vjp(x, &mut |z| {
            let (_, l, dz) = softmax_cross_entropy(self.backend(), z, labels);
            losses = l;
            dz
        });
        (losses, grad)
    }

    /// Predicted class of each row of `x`.
    fn predict(&self, x: &B::Tensor) -> Vec<usize> {
        self.backend().argmax_rows(&self.logits(x))
    }
}

/// One-hot targets as a `labels.len()×classes` tensor.
pub fn one_hot<B: Backend>(b: &B, labels: &[usize], classes: usize) -> B::Tensor {
    let m = Matrix::from_fn(labels.len(), classes, |i, j| if labels[i] == j { 1.0 } else { 0.0 });
    b.upload(&m)
}

/// Softmax probabilities, per-sample cross-entropy losses and `∂(Σ loss)/∂logits = p − t`.
pub fn softmax_cross_entropy<B: Backend>(
    b: &B,
    logits: &B::Tensor,
    labels: &[usize],
) -> (B::Tensor, Vec<f32>, B::Tensor) {
    let (_, classes) = b.shape(logits);
    let probs = b.softmax_rows(logits);
    let targets = one_hot(b, labels, classes);
    // loss_i = −ln p_{i,y_i}, read from the probabilities of the true class (guarded against 0 on the
    // host, where NaN stays NaN: a clamp would turn a diverged model's NaN into a finite loss).
    let picked = b.download(&b.reduce(&b.zip(&probs, &targets, Binary::Mul), Dim::PerRow, Reduce::Sum));
    let losses = picked.as_slice().iter().map(|&p| if p.is_nan() { p } else { -p.max(1e-30).ln() }).collect();
    let grad = b.lincomb(1.0, &probs, -1.0, &targets);
    (probs, losses, grad)
}

/// Adds a `1×n` bias row to every row of `t`.
pub(crate) fn add_bias<B: Backend>(b: &B, t: &B::Tensor, bias: &B::Tensor) -> B::Tensor {
    b.zip(t, bias, Binary::Add)
}
