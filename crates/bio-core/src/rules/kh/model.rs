//! The Krotov–Hopfield network.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::KhConfig;
use crate::backend::{Backend, Binary, Dim, Reduce, Unary, guard};
use crate::error::CoreError;
use crate::model::{Classifier, Params};
use crate::rules::frozen::{LinearReadout, unit_normal};

/// The Krotov–Hopfield network: `N` rectified-polynomial hidden units and a linear readout.
#[derive(Clone, Debug)]
pub struct KhNet<B: Backend> {
    pub(super) backend: B,
    /// Its hyper-parameters (the response power `n`).
    pub config: KhConfig,
    pub(super) input_dim: usize,
    pub(super) classes: usize,
    /// Hidden weights `W`, `N×D`.
    pub weights: B::Tensor,
    /// The readout.
    pub readout: LinearReadout<B>,
}

/// The intermediate values of the response for one batch.
pub struct KhResponse<T> {
    /// `r = ReLU(x Wᵀ)`.
    pub(super) r: T,
    /// `max_μ r_μ` per row, guarded (`batch×1`).
    pub(super) peak: T,
    /// `‖(r/peak)ⁿ‖₂` per row, guarded (`batch×1`).
    pub(super) norm: T,
    /// `ĥ = rⁿ/‖rⁿ‖₂`.
    pub(super) code: T,
}

impl<B: Backend> KhNet<B> {
    /// Hidden weights `N(0, 1)` (the paper's start), readout `U(−1/√N, 1/√N)`, zero bias.
    pub fn init(backend: &B, config: KhConfig, input_dim: usize, classes: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = config.hidden[0];
        let w = unit_normal(n, input_dim, &mut rng);
        let readout = LinearReadout::init(backend, classes, n, &mut rng);
        Self { backend: backend.clone(), config, input_dim, classes, weights: backend.upload(&w), readout }
    }

    /// Rebuilds a network from [`Classifier::to_params`] output, checking every shape.
    pub fn from_params(
        backend: &B,
        config: KhConfig,
        input_dim: usize,
        classes: usize,
        params: &Params,
    ) -> Result<Self, CoreError> {
        let n = config.hidden[0];
        let weights = backend.upload(params.get("hidden.0.weight", (n, input_dim))?);
        let readout = LinearReadout::from_params(backend, params, classes, n)?;
        Ok(Self { backend: backend.clone(), config, input_dim, classes, weights, readout })
    }

    pub(super) fn response(&self, x: &B::Tensor) -> KhResponse<B::Tensor> {
        let b = &self.backend;
        let r = b.map(&b.matmul(x, false, &self.weights, true), Unary::Relu);
        let peak = guard(b, &b.reduce(&r, Dim::PerRow, Reduce::Max));
        // (r/peak)ⁿ has the same direction as rⁿ and never overflows.
        let q = b.map(&b.zip(&r, &peak, Binary::Div), Unary::Powf(self.config.n));
        let norm = guard(b, &b.map(&b.reduce(&b.map(&q, Unary::Square), Dim::PerRow, Reduce::Sum), Unary::Sqrt));
        let code = b.zip(&q, &norm, Binary::Div);
        KhResponse { r, peak, norm, code }
    }

    /// The per-sample normalized code `ĥ` the readout sees (`batch×N`).
    pub fn code(&self, x: &B::Tensor) -> B::Tensor {
        self.response(x).code
    }
}

impl<B: Backend> Classifier<B> for KhNet<B> {
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
        self.readout.logits(&self.backend, &self.code(x))
    }
    fn hidden_activity(&self, x: &B::Tensor) -> Vec<B::Tensor> {
        vec![self.code(x)]
    }
    /// `x Wᵀ`, before the rectified power.
    fn hidden_drive(&self, x: &B::Tensor) -> Vec<B::Tensor> {
        vec![self.backend.matmul(x, false, &self.weights, true)]
    }
    fn logits_and_input_vjp(
        &self,
        x: &B::Tensor,
        dlogits: &mut dyn FnMut(&B::Tensor) -> B::Tensor,
    ) -> (B::Tensor, B::Tensor) {
        let b = &self.backend;
        let t = self.response(x);
        let logits = self.readout.logits(b, &t.code);
        let g = self.readout.backward(b, &dlogits(&logits));
        // Through ĥ = q/‖q‖: the tangential part g − ĥ⟨g, ĥ⟩.
        let along = b.reduce(&b.zip(&g, &t.code, Binary::Mul), Dim::PerRow, Reduce::Sum);
        let tangential = b.lincomb(1.0, &g, -1.0, &b.zip(&t.code, &along, Binary::Mul));
        // ∂ĥ_μ/∂r_μ factor n·ĥ_μ/r_μ = n·(r_μ/peak)^(n−1)/(peak·‖q‖), zero where r_μ = 0.
        let ratio = b.zip(&t.r, &t.peak, Binary::Div);
        let slope = b.zip(&b.map(&ratio, Unary::Powf(self.config.n - 1.0)), &b.map(&t.r, Unary::Step), Binary::Mul);
        let denom = b.map(&b.zip(&t.peak, &t.norm, Binary::Mul), Unary::Scale(1.0 / self.config.n));
        let dr = b.zip(&b.zip(&slope, &tangential, Binary::Mul), &denom, Binary::Div);
        let dx = b.matmul(&dr, false, &self.weights, false);
        (logits, dx)
    }
    fn to_params(&self) -> Params {
        let b = &self.backend;
        let mut p = Params::default();
        p.push("hidden.0.weight", b.download(&self.weights));
        self.readout.push_params(b, &mut p);
        p
    }
}
