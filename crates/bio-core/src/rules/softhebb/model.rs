//! The SoftHebb network.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::SoftHebbConfig;
use crate::backend::{Backend, Binary, Dim, Reduce, Unary};
use crate::error::CoreError;
use crate::model::{Classifier, Params, add_bias};
use crate::rules::frozen::{LinearReadout, unit_normal};

/// `ε` of the input normalization `x̂ = x/(ε + ‖x‖₂)`.
pub const SOFTHEBB_INPUT_EPS: f32 = 1e-6;

/// The SoftHebb network: a soft-WTA hidden layer and a linear readout on its posterior `y`.
#[derive(Clone, Debug)]
pub struct SoftHebbNet<B: Backend> {
    pub(super) backend: B,
    /// Its hyper-parameters (`β`).
    pub config: SoftHebbConfig,
    pub(super) input_dim: usize,
    pub(super) classes: usize,
    /// Hidden weights `W`, `N×D`.
    pub weights: B::Tensor,
    /// Hidden biases (log-priors) `b`, `1×N`.
    pub bias: B::Tensor,
    /// The readout.
    pub readout: LinearReadout<B>,
}

/// The intermediate values of the forward pass for one batch.
pub struct SoftHebbTrace<T> {
    /// `‖x‖₂` per row (`batch×1`).
    pub(super) input_norm: T,
    /// `x̂`.
    pub(super) normalized: T,
    /// `y = softmax(β(x̂Wᵀ + b))`.
    pub(super) posterior: T,
}

impl<B: Backend> SoftHebbNet<B> {
    /// Hidden weights `N(0, 1)` (rows of norm ≈ √D, far from the unit sphere: as in `kh`, a
    /// frequent winner's norm shrinks, its drive falls and other units get their turn; a start on
    /// the sphere lets one unit take every input), uniform priors `b = −ln N/β`, readout
    /// `U(−1/√N, 1/√N)` with zero bias.
    pub fn init(backend: &B, config: SoftHebbConfig, input_dim: usize, classes: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = config.hidden[0];
        let w = unit_normal(n, input_dim, &mut rng);
        let bias = backend.full(1, n, -(n as f32).ln() / config.beta);
        let readout = LinearReadout::init(backend, classes, n, &mut rng);
        Self { backend: backend.clone(), config, input_dim, classes, weights: backend.upload(&w), bias, readout }
    }

    /// Rebuilds a network from [`Classifier::to_params`] output, checking every shape.
    pub fn from_params(
        backend: &B,
        config: SoftHebbConfig,
        input_dim: usize,
        classes: usize,
        params: &Params,
    ) -> Result<Self, CoreError> {
        let n = config.hidden[0];
        let weights = backend.upload(params.get("hidden.0.weight", (n, input_dim))?);
        let bias = backend.upload(params.get("hidden.0.bias", (1, n))?);
        let readout = LinearReadout::from_params(backend, params, classes, n)?;
        Ok(Self { backend: backend.clone(), config, input_dim, classes, weights, bias, readout })
    }

    pub(super) fn trace(&self, x: &B::Tensor) -> SoftHebbTrace<B::Tensor> {
        let b = &self.backend;
        let input_norm = b.map(&b.reduce(&b.map(x, Unary::Square), Dim::PerRow, Reduce::Sum), Unary::Sqrt);
        let normalized = b.zip(x, &b.map(&input_norm, Unary::Offset(SOFTHEBB_INPUT_EPS)), Binary::Div);
        let u = add_bias(b, &b.matmul(&normalized, false, &self.weights, true), &self.bias);
        let posterior = b.softmax_rows(&b.map(&u, Unary::Scale(self.config.beta)));
        SoftHebbTrace { input_norm, normalized, posterior }
    }

    /// The soft-WTA activations `y` (`batch×N`, each row sums to 1).
    pub fn posterior(&self, x: &B::Tensor) -> B::Tensor {
        self.trace(x).posterior
    }
}

impl<B: Backend> Classifier<B> for SoftHebbNet<B> {
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
        self.readout.logits(&self.backend, &self.posterior(x))
    }
    fn hidden_activity(&self, x: &B::Tensor) -> Vec<B::Tensor> {
        vec![self.posterior(x)]
    }
    /// `u = x̂ Wᵀ + b`, before the soft winner-take-all.
    fn hidden_drive(&self, x: &B::Tensor) -> Vec<B::Tensor> {
        let b = &self.backend;
        let t = self.trace(x);
        vec![add_bias(b, &b.matmul(&t.normalized, false, &self.weights, true), &self.bias)]
    }
    fn logits_and_input_vjp(
        &self,
        x: &B::Tensor,
        dlogits: &mut dyn FnMut(&B::Tensor) -> B::Tensor,
    ) -> (B::Tensor, B::Tensor) {
        let b = &self.backend;
        let t = self.trace(x);
        let logits = self.readout.logits(b, &t.posterior);
        let g = self.readout.backward(b, &dlogits(&logits));
        // Softmax: ∂L/∂u = β·y ⊙ (g − ⟨g, y⟩).
        let mean = b.reduce(&b.zip(&g, &t.posterior, Binary::Mul), Dim::PerRow, Reduce::Sum);
        let du =
            b.map(&b.zip(&t.posterior, &b.zip(&g, &mean, Binary::Sub), Binary::Mul), Unary::Scale(self.config.beta));
        let dxhat = b.matmul(&du, false, &self.weights, false);
        // x̂ = x/d, d = ε + ‖x‖: ∂L/∂x = ∂L/∂x̂/d − x·⟨x, ∂L/∂x̂⟩/(‖x‖·d²) (the second term is
        // 0 at x = 0, where ⟨x, ·⟩ vanishes).
        let d = b.map(&t.input_norm, Unary::Offset(SOFTHEBB_INPUT_EPS));
        let dot = b.reduce(&b.zip(x, &dxhat, Binary::Mul), Dim::PerRow, Reduce::Sum);
        let safe_norm = b.map(&t.input_norm, Unary::Clamp(1e-30, f32::MAX));
        let coef = b.zip(&b.zip(&dot, &safe_norm, Binary::Div), &b.map(&d, Unary::Square), Binary::Div);
        let dx = b.lincomb(1.0, &b.zip(&dxhat, &d, Binary::Div), -1.0, &b.zip(x, &coef, Binary::Mul));
        (logits, dx)
    }
    fn to_params(&self) -> Params {
        let b = &self.backend;
        let mut p = Params::default();
        p.push("hidden.0.weight", b.download(&self.weights));
        p.push("hidden.0.bias", b.download(&self.bias));
        self.readout.push_params(b, &mut p);
        p
    }
}
