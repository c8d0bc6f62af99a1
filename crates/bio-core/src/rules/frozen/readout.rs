//! The readout of the frozen-feature rules: a linear layer on the features, trained by Adam on the
//! softmax cross-entropy, and the batch's score.

use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Uniform};

use crate::backend::{Backend, Dim, Reduce, Unary};
use crate::error::CoreError;
use crate::model::{Params, add_bias, softmax_cross_entropy};
use crate::rules::optim::{Adam, AdamState};
use crate::rules::{check_loss, count_correct};
use crate::tensor::Matrix;

/// A linear readout `z = h Vᵀ + c` on frozen features `h`.
#[derive(Clone, Debug)]
pub struct LinearReadout<B: Backend> {
    /// `V`, `classes×features`.
    pub weights: B::Tensor,
    /// `c`, `1×classes`.
    pub bias: B::Tensor,
}

impl<B: Backend> LinearReadout<B> {
    /// `V ~ U(−1/√N, 1/√N)`, `c = 0`.
    pub fn init(b: &B, classes: usize, features: usize, rng: &mut ChaCha8Rng) -> Self {
        let bound = 1.0 / (features.max(1) as f32).sqrt();
        let dist = Uniform::new(-bound, bound).expect("a finite, non-empty range");
        let v = Matrix::from_fn(classes, features, |_, _| dist.sample(rng));
        Self { weights: b.upload(&v), bias: b.full(1, classes, 0.0) }
    }

    /// The readout saved as `readout.weight` (`classes×features`) and `readout.bias` (`1×classes`),
    /// shapes checked.
    pub fn from_params(b: &B, params: &Params, classes: usize, features: usize) -> Result<Self, CoreError> {
        Ok(Self {
            weights: b.upload(params.get("readout.weight", (classes, features))?),
            bias: b.upload(params.get("readout.bias", (1, classes))?),
        })
    }

    /// Adds `readout.weight` and `readout.bias` to `params`.
    pub fn push_params(&self, b: &B, params: &mut Params) {
        params.push("readout.weight", b.download(&self.weights));
        params.push("readout.bias", b.download(&self.bias));
    }

    /// Class scores of features `h` (`batch×features`).
    pub fn logits(&self, b: &B, h: &B::Tensor) -> B::Tensor {
        add_bias(b, &b.matmul(h, false, &self.weights, true), &self.bias)
    }

    /// `[∂L/∂V, ∂L/∂c]` of the mean loss over the batch, from features `h` and the gradient
    /// `dlogits` of the summed loss: `dlogitsᵀ·h/B` and the column sums of `dlogits`, over `B`.
    pub fn gradients(&self, b: &B, h: &B::Tensor, dlogits: &B::Tensor) -> [B::Tensor; 2] {
        let (batch, _) = b.shape(h);
        let scale = 1.0 / batch.max(1) as f32;
        let gv = b.map(&b.matmul(dlogits, true, h, false), Unary::Scale(scale));
        let gc = b.map(&b.reduce(dlogits, Dim::PerCol, Reduce::Sum), Unary::Scale(scale));
        [gv, gc]
    }

    /// `Vᵀ·g`: the gradient reaching the features from a logit gradient `g`.
    pub fn backward(&self, b: &B, g: &B::Tensor) -> B::Tensor {
        b.matmul(g, false, &self.weights, false)
    }
}

/// Adam on a [`LinearReadout`] with the mean softmax cross-entropy: the supervised phase of the
/// frozen-feature rules. β₁ = 0.9, β₂ = 0.999, ε = 1e-8, as the backprop baseline.
#[derive(Clone, Debug)]
pub struct ReadoutTrainer<B: Backend> {
    /// Adam on `V` then `c`.
    adam: Adam<B>,
}

impl<B: Backend> Default for ReadoutTrainer<B> {
    fn default() -> Self {
        Self { adam: Adam::default() }
    }
}

/// The host form of a [`ReadoutTrainer`]'s state: Adam's, moments `m_V, v_V, m_c, v_c` (or none
/// before the first step).
pub type ReadoutState = AdamState;

impl<B: Backend> ReadoutTrainer<B> {
    /// One Adam step on the mean cross-entropy of the readout's logits on features `h`, from its
    /// gradient `dlogits` (summed over the batch).
    pub fn step(&mut self, b: &B, readout: &mut LinearReadout<B>, h: &B::Tensor, dlogits: &B::Tensor, lr: f32) {
        let grads = readout.gradients(b, h, dlogits);
        self.adam.step(b, &mut [&mut readout.weights, &mut readout.bias], &grads, lr);
    }

    /// Host copy of the state.
    pub fn save(&self, b: &B) -> ReadoutState {
        self.adam.save(b)
    }

    /// Puts back a saved state, checking its shapes against `readout`.
    pub fn restore(&mut self, b: &B, readout: &LinearReadout<B>, state: ReadoutState) -> Result<(), CoreError> {
        let shapes = [b.shape(&readout.weights), b.shape(&readout.bias)];
        self.adam.restore(b, &shapes, state, "readout")
    }
}

/// Loss, correct count and `∂(Σ loss)/∂z` of a batch's logits (with the divergence check).
pub(crate) fn score_batch<B: Backend>(
    b: &B,
    logits: &B::Tensor,
    labels: &[usize],
    classes: usize,
    what: &str,
) -> Result<(f32, usize, B::Tensor), CoreError> {
    score_batch_of(b, logits, labels, classes, what, true)
}

/// [`score_batch`], whose check, when `trained` is false (a readout nothing is training: its
/// loss is reported, not optimized), only refuses a loss that is not finite.
pub(crate) fn score_batch_of<B: Backend>(
    b: &B,
    logits: &B::Tensor,
    labels: &[usize],
    classes: usize,
    what: &str,
    trained: bool,
) -> Result<(f32, usize, B::Tensor), CoreError> {
    let (_, losses, dlogits) = softmax_cross_entropy(b, logits, labels);
    let loss = losses.iter().sum::<f32>() / labels.len().max(1) as f32;
    if trained || !loss.is_finite() {
        check_loss(loss, classes, what)?;
    }
    Ok((loss, count_correct(&b.argmax_rows(logits), labels), dlogits))
}

/// The mean of a tensor, on the host.
pub(crate) fn host_mean<B: Backend>(b: &B, t: &B::Tensor) -> f32 {
    b.download(&b.reduce(t, Dim::All, Reduce::Mean)).get(0, 0)
}
