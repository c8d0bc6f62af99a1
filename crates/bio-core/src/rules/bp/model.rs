//! The backprop baseline: ReLU hidden layers and a softmax readout, signed (Kaiming-uniform) init.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::params::BpConfig;
use crate::backend::{Backend, Binary, Dim, Reduce, Unary};
use crate::error::CoreError;
use crate::model::{Classifier, Params, add_bias, softmax_cross_entropy};
use crate::tensor::Matrix;

/// A dense layer `y = x Wᵀ + b`.
#[derive(Clone, Debug)]
pub struct DenseLayer<B: Backend> {
    /// Weights, `out×in`.
    pub weights: B::Tensor,
    /// Bias, `1×out`.
    pub bias: B::Tensor,
}

/// A ReLU multilayer perceptron; the last layer gives class scores.
#[derive(Clone, Debug)]
pub struct BpNet<B: Backend> {
    backend: B,
    /// Hyper-parameters.
    pub config: BpConfig,
    input_dim: usize,
    classes: usize,
    /// Hidden layers then the readout (last).
    pub layers: Vec<DenseLayer<B>>,
}

/// Gradients of the loss sum with respect to every parameter and to the input.
#[derive(Clone, Debug)]
pub struct BpGradients<B: Backend> {
    /// `(∂L/∂W, ∂L/∂b)` per layer, in layer order.
    pub layers: Vec<(B::Tensor, B::Tensor)>,
    /// `∂L/∂x`, when asked for.
    pub input: Option<B::Tensor>,
    /// Per-sample losses.
    pub losses: Vec<f32>,
    /// Class scores of the batch.
    pub logits: B::Tensor,
    /// Mean fraction of positive units in the last hidden layer.
    pub active_fraction: f32,
}

impl<B: Backend> BpNet<B> {
    /// Kaiming-uniform weights `U(−√(6/fan_in), √(6/fan_in))` (Glorot-like bound for the readout), zero biases.
    pub fn init(backend: &B, config: BpConfig, input_dim: usize, classes: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut dims = vec![input_dim];
        dims.extend(config.hidden.iter().copied());
        dims.push(classes);
        let layers = dims
            .windows(2)
            .map(|w| {
                let (fan_in, fan_out) = (w[0], w[1]);
                let bound = (6.0 / fan_in as f32).sqrt();
                let m = Matrix::from_fn(fan_out, fan_in, |_, _| rng.random_range(-bound..bound));
                DenseLayer { weights: backend.upload(&m), bias: backend.full(1, fan_out, 0.0) }
            })
            .collect();
        Self { backend: backend.clone(), config, input_dim, classes, layers }
    }

    /// Rebuilds a network from saved parameters, checking every shape.
    pub fn from_params(
        backend: &B,
        config: BpConfig,
        input_dim: usize,
        classes: usize,
        params: &Params,
    ) -> Result<Self, CoreError> {
        let mut dims = vec![input_dim];
        dims.extend(config.hidden.iter().copied());
        dims.push(classes);
        let layers = dims
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                Ok(DenseLayer {
                    weights: backend.upload(params.get(&format!("layer.{i}.weight"), (w[1], w[0]))?),
                    bias: backend.upload(params.get(&format!("layer.{i}.bias"), (1, w[1]))?),
                })
            })
            .collect::<Result<_, CoreError>>()?;
        Ok(Self { backend: backend.clone(), config, input_dim, classes, layers })
    }

    /// The input, each hidden activation, then the logits last.
    fn forward_all(&self, x: &B::Tensor) -> Vec<B::Tensor> {
        let b = &self.backend;
        let mut acts = vec![x.clone()];
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            let z = add_bias(b, &b.matmul(acts.last().expect("never empty"), false, &layer.weights, true), &layer.bias);
            acts.push(if i == last { z } else { b.map(&z, Unary::Relu) });
        }
        acts
    }

    /// Forward and backward on a batch: per-sample losses and the gradients of `scale·Σ loss`
    /// (`scale = 1/batch` gives the mean loss's gradients).
    pub fn gradients(&self, x: &B::Tensor, labels: &[usize], want_input: bool, scale: f32) -> BpGradients<B> {
        let b = &self.backend;
        let acts = self.forward_all(x);
        let logits = acts.last().expect("never empty").clone();
        let (_, losses, delta) = softmax_cross_entropy(b, &logits, labels);
        let mut delta = if scale == 1.0 { delta } else { b.map(&delta, Unary::Scale(scale)) };
        let last_hidden = &acts[acts.len() - 2];
        let active_fraction = b.download(&b.reduce(&b.map(last_hidden, Unary::Step), Dim::All, Reduce::Mean)).get(0, 0);
        let mut grads = Vec::with_capacity(self.layers.len());
        let mut input = None;
        for (i, layer) in self.layers.iter().enumerate().rev() {
            let dw = b.matmul(&delta, true, &acts[i], false);
            let db = b.reduce(&delta, Dim::PerCol, Reduce::Sum);
            grads.push((dw, db));
            if i > 0 || want_input {
                let da = b.matmul(&delta, false, &layer.weights, false);
                if i == 0 {
                    input = Some(da);
                } else {
                    // acts[i] = relu(z): its derivative is 1 where the activation is positive.
                    delta = b.zip(&da, &b.map(&acts[i], Unary::Step), Binary::Mul);
                }
            }
        }
        grads.reverse();
        BpGradients { layers: grads, input, losses, logits, active_fraction }
    }
}

impl<B: Backend> Classifier<B> for BpNet<B> {
    fn backend(&self) -> &B {
        &self.backend
    }
    fn input_dim(&self) -> usize {
        self.input_dim
    }
    fn classes(&self) -> usize {
        self.classes
    }
    fn logits(&self, x: &B::Tensor) -> B::Tensor {
        self.forward_all(x).pop().expect("never empty")
    }
    fn hidden_activity(&self, x: &B::Tensor) -> Vec<B::Tensor> {
        let mut acts = self.forward_all(x);
        acts.pop();
        acts.remove(0);
        acts
    }
    /// Each hidden layer's pre-activation `z = x Wᵀ + b`, before its ReLU.
    fn hidden_drive(&self, x: &B::Tensor) -> Vec<B::Tensor> {
        let b = &self.backend;
        let acts = self.forward_all(x);
        let hidden = self.layers.len() - 1;
        (0..hidden)
            .map(|i| add_bias(b, &b.matmul(&acts[i], false, &self.layers[i].weights, true), &self.layers[i].bias))
            .collect()
    }
    fn logits_and_input_vjp(
        &self,
        x: &B::Tensor,
        dlogits: &mut dyn FnMut(&B::Tensor) -> B::Tensor,
    ) -> (B::Tensor, B::Tensor) {
        let b = &self.backend;
        let acts = self.forward_all(x);
        let logits = acts.last().expect("never empty").clone();
        let mut delta = dlogits(&logits);
        for (i, layer) in self.layers.iter().enumerate().rev() {
            let da = b.matmul(&delta, false, &layer.weights, false);
            if i == 0 {
                return (logits, da);
            }
            // acts[i] = relu(z): its derivative is 1 where the activation is positive.
            delta = b.zip(&da, &b.map(&acts[i], Unary::Step), Binary::Mul);
        }
        unreachable!("a network has at least its readout layer")
    }
    fn to_params(&self) -> Params {
        let b = &self.backend;
        let mut p = Params::default();
        for (i, l) in self.layers.iter().enumerate() {
            p.push(format!("layer.{i}.weight"), b.download(&l.weights));
            p.push(format!("layer.{i}.bias"), b.download(&l.bias));
        }
        p
    }
}
