//! The readout of the frozen-feature rules: a linear layer on the features, trained by Adam on the
//! softmax cross-entropy, and the batch's score.

use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Uniform};
use serde::{Deserialize, Serialize};

use crate::backend::{AdamStep, Backend, Dim, Reduce, Unary};
use crate::error::CoreError;
use crate::model::{add_bias, softmax_cross_entropy};
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

    /// Class scores of features `h` (`batch×features`).
    pub fn logits(&self, b: &B, h: &B::Tensor) -> B::Tensor {
        add_bias(b, &b.matmul(h, false, &self.weights, true), &self.bias)
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
    /// `(m, v)` of `V` then of `c`; `None` before the first step.
    moments: Option<[B::Tensor; 4]>,
    /// Adam steps taken.
    steps: u64,
}

impl<B: Backend> Default for ReadoutTrainer<B> {
    fn default() -> Self {
        Self { moments: None, steps: 0 }
    }
}

/// The host form of a [`ReadoutTrainer`]'s state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReadoutState {
    /// Adam steps taken.
    pub steps: u64,
    /// `m_V, v_V, m_c, v_c`, or empty before the first step.
    pub moments: Vec<Matrix>,
}

impl<B: Backend> ReadoutTrainer<B> {
    /// One Adam step on the mean cross-entropy of `probs` (softmax of the readout's logits on `h`).
    pub fn step(&mut self, b: &B, readout: &mut LinearReadout<B>, h: &B::Tensor, dlogits: &B::Tensor, lr: f32) {
        let (batch, _) = b.shape(h);
        let scale = 1.0 / batch.max(1) as f32;
        let gv = b.map(&b.matmul(dlogits, true, h, false), Unary::Scale(scale));
        let gc = b.map(&b.reduce(dlogits, Dim::PerCol, Reduce::Sum), Unary::Scale(scale));
        let moments = self.moments.get_or_insert_with(|| {
            let (c, n) = b.shape(&readout.weights);
            [b.full(c, n, 0.0), b.full(c, n, 0.0), b.full(1, c, 0.0), b.full(1, c, 0.0)]
        });
        self.steps += 1;
        let (beta1, beta2) = (0.9f32, 0.999f32);
        let t = self.steps.min(i32::MAX as u64) as i32;
        let s = AdamStep { lr_t: lr * (1.0 - beta2.powi(t)).sqrt() / (1.0 - beta1.powi(t)), beta1, beta2, eps: 1e-8 };
        let [mv, vv, mc, vc] = moments;
        b.adam_step(&mut readout.weights, &gv, mv, vv, s);
        b.adam_step(&mut readout.bias, &gc, mc, vc, s);
    }

    /// Host copy of the state.
    pub fn save(&self, b: &B) -> ReadoutState {
        let moments = self.moments.as_ref().map(|m| m.iter().map(|t| b.download(t)).collect()).unwrap_or_default();
        ReadoutState { steps: self.steps, moments }
    }

    /// Puts back a saved state, checking its shapes against `readout`.
    pub fn restore(&mut self, b: &B, readout: &LinearReadout<B>, state: ReadoutState) -> Result<(), CoreError> {
        let (c, n) = b.shape(&readout.weights);
        self.moments = match state.moments.as_slice() {
            [] => None,
            [mv, vv, mc, vc] => {
                for (m, shape) in [(mv, (c, n)), (vv, (c, n)), (mc, (1, c)), (vc, (1, c))] {
                    if m.shape() != shape || !m.all_finite() {
                        return Err(CoreError::Incompatible(format!(
                            "readout optimizer moment is {}×{}, expected a finite {}×{}",
                            m.rows(),
                            m.cols(),
                            shape.0,
                            shape.1
                        )));
                    }
                }
                Some([b.upload(mv), b.upload(vv), b.upload(mc), b.upload(vc)])
            }
            other => {
                return Err(CoreError::Incompatible(format!(
                    "readout optimizer state holds {} tensors, expected 4",
                    other.len()
                )));
            }
        };
        self.steps = state.steps;
        Ok(())
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
    let (_, losses, dlogits) = softmax_cross_entropy(b, logits, labels);
    let loss = losses.iter().sum::<f32>() / labels.len().max(1) as f32;
    check_loss(loss, classes, what)?;
    Ok((loss, count_correct(&b.argmax_rows(logits), labels), dlogits))
}

/// The mean of a tensor, on the host.
pub(crate) fn host_mean<B: Backend>(b: &B, t: &B::Tensor) -> f32 {
    b.download(&b.reduce(t, Dim::All, Reduce::Mean)).get(0, 0)
}
