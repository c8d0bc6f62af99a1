//! The `bio` network's forward pass and its exact input gradient.
//!
//! Forward, per hidden layer ℓ (equations in `docs/LEARNING_RULE.md`):
//! `x̂ = x / (ε + ‖x‖₂)` (divisive normalization of the presynaptic population),
//! `u = x̂ Wᵀ + b` (excitatory drive), `y = relu(u − θ(u))` (lateral inhibition).
//! Readout: `h̃ = y / (σ + Σ y)` (divisive normalization), `z = h̃ Vᵀ + c`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::params::{BioConfig, Competition, InitSign, ReadoutRule, ScalingNorm};
use crate::backend::{
    Backend, Binary, Dim, Reduce, Unary, add_member_rows, matmul_members, split_members, stack_members,
};
use crate::error::CoreError;
use crate::model::{Classifier, Params};
use crate::tensor::Matrix;

/// Guard of the input normalization `x / (ε + ‖x‖)`.
pub const INPUT_EPS: f32 = 1e-6;

/// One hidden layer: synapses, their mask, and each neuron's excitability state.
#[derive(Clone, Debug)]
pub struct BioLayer<B: Backend> {
    /// Synaptic weights, `out×in` (row `j` = neuron `j`'s incoming synapses).
    pub weights: B::Tensor,
    /// Structural mask, `out×in`: 1 = synapse present, 0 = removed.
    pub mask: B::Tensor,
    /// Homeostatic excitability (bias), `1×out`.
    pub bias: B::Tensor,
    /// Running firing rate of each neuron, `1×out`.
    pub rate: B::Tensor,
}

/// The class layer.
#[derive(Clone, Debug)]
pub struct Readout<B: Backend> {
    /// Weights, `classes×hidden`.
    pub weights: B::Tensor,
    /// Bias, `1×classes`.
    pub bias: B::Tensor,
}

/// A network of [`BioLayer`]s and a [`Readout`].
#[derive(Clone, Debug)]
pub struct BioNet<B: Backend> {
    backend: B,
    /// Hyper-parameters.
    pub config: BioConfig,
    input_dim: usize,
    classes: usize,
    /// Hidden layers, input side first.
    pub layers: Vec<BioLayer<B>>,
    /// The class layer.
    pub readout: Readout<B>,
    /// How many networks this one holds: 1, or a population's members stacked
    /// ([`crate::backend::stack_members`]; [`super::population::BioPopulation`]), whose tensors
    /// hold every member's one under another (biases and rates one row per member).
    members: usize,
}

/// What one hidden layer computed on a batch, kept for plasticity and for the backward pass.
#[derive(Clone, Debug)]
pub struct LayerTrace<B: Backend> {
    /// The layer's raw input `x`.
    pub input: B::Tensor,
    /// `‖x‖₂` per row (`batch×1`).
    pub input_norm: B::Tensor,
    /// The normalized input `x̂`.
    pub normalized: B::Tensor,
    /// The drive `u`.
    pub drive: B::Tensor,
    /// The inhibition threshold `θ` (`batch×1`).
    pub threshold: B::Tensor,
    /// The activity `y = relu(u − θ)`.
    pub activity: B::Tensor,
}

/// Everything the forward pass computed.
#[derive(Clone, Debug)]
pub struct BioTrace<B: Backend> {
    /// One entry per hidden layer.
    pub layers: Vec<LayerTrace<B>>,
    /// `σ + Σ y` of the last layer (`batch×1`).
    pub code_denominator: B::Tensor,
    /// The normalized code `h̃`.
    pub code: B::Tensor,
    /// Class scores.
    pub logits: B::Tensor,
}

fn uniform_init(rows: usize, cols: usize, scale: f32, spread: f32, sign: InitSign, rng: &mut ChaCha8Rng) -> Matrix {
    // Uniform on [1 − s, 1 + s]·scale: deliberately not lognormal, so lognormality can only emerge.
    Matrix::from_fn(rows, cols, |_, _| {
        let magnitude = scale * (1.0 - spread + 2.0 * spread * rng.random::<f32>());
        match sign {
            InitSign::Positive => magnitude,
            InitSign::Mixed => {
                if rng.random_bool(0.5) {
                    magnitude
                } else {
                    -magnitude
                }
            }
        }
    })
}

/// One random `p×p` window per neuron over a square image of `fan_in` pixels (the whole image when it
/// is not square or `p` covers it): a retinotopic, localized receptive field.
fn receptive_field_mask(width: usize, fan_in: usize, p: usize, rng: &mut ChaCha8Rng) -> Matrix {
    let side = (fan_in as f64).sqrt().round() as usize;
    if side * side != fan_in || p >= side {
        return Matrix::full(width, fan_in, 1.0);
    }
    let mut mask = Matrix::zeros(width, fan_in);
    for j in 0..width {
        let (top, left) = (rng.random_range(0..=side - p), rng.random_range(0..=side - p));
        for r in top..top + p {
            for c in left..left + p {
                mask.set(j, r * side + c, 1.0);
            }
        }
    }
    mask
}

/// Each neuron's total synaptic weight (the synaptic-scaling target) in the configured norm:
/// `S` for L2 (the drive is `S·cos(w, x)`), `S·√fan_in` for L1, so that in both cases the drive
/// from a normalized input is of order `S` whatever the layer's fan-in.
pub fn target_total(config: &BioConfig, fan_in: usize) -> f32 {
    match config.scaling_norm {
        ScalingNorm::L2 => config.total_weight,
        ScalingNorm::L1 => config.total_weight * (fan_in as f32).sqrt(),
    }
}

/// Divisive normalization of a population: `x̂ = x / (ε + ‖x‖₂)`; returns `(x̂, ‖x‖₂)`.
pub fn normalize_input<B: Backend>(b: &B, x: &B::Tensor) -> (B::Tensor, B::Tensor) {
    let norm = b.map(&b.reduce(&b.map(x, Unary::Square), Dim::PerRow, Reduce::Sum), Unary::Sqrt);
    let normalized = b.zip(x, &b.map(&norm, Unary::Offset(INPUT_EPS)), Binary::Div);
    (normalized, norm)
}

/// Feed-forward inhibition: an inhibitory interneuron pooling the whole presynaptic population
/// subtracts `g·mean(x̂)` from every input line, `x̃ = x̂ − g·mean_i(x̂_i)`, so a pixel dimmer than the
/// average lowers the drive of an excitatory synapse onto it. The map is linear and symmetric, so
/// the same function also carries gradients backward. `g = 0` leaves `x̂` unchanged.
pub fn feedforward_inhibition<B: Backend>(b: &B, x: &B::Tensor, gain: f32) -> B::Tensor {
    if gain == 0.0 {
        return x.clone();
    }
    let mean = b.reduce(x, Dim::PerRow, Reduce::Mean);
    b.zip(x, &b.map(&mean, Unary::Scale(gain)), Binary::Sub)
}

/// Lateral inhibition: the threshold `θ` per input (`batch×1`).
/// k-WTA: `θ` = the (k+1)-th largest drive. Inhibitory unit: `θ = mean(u) + γ·std(u)`.
/// Without competition: `θ = 0` (plain ReLU).
pub fn inhibition_threshold<B: Backend>(b: &B, u: &B::Tensor, config: &BioConfig, k: usize) -> B::Tensor {
    let (rows, _) = b.shape(u);
    if !config.mechanisms.competition {
        return b.full(rows, 1, 0.0);
    }
    match config.competition {
        Competition::KWinners => b.row_kth_largest(u, k + 1),
        Competition::Inhibitory { gain } => {
            let (mean, std) = row_mean_std(b, u);
            b.lincomb(1.0, &mean, gain, &std)
        }
    }
}

fn row_mean_std<B: Backend>(b: &B, u: &B::Tensor) -> (B::Tensor, B::Tensor) {
    let mean = b.reduce(u, Dim::PerRow, Reduce::Mean);
    let centered = b.zip(u, &mean, Binary::Sub);
    let var = b.reduce(&b.map(&centered, Unary::Square), Dim::PerRow, Reduce::Mean);
    (mean, b.map(&var, Unary::Sqrt))
}

impl<B: Backend> BioNet<B> {
    /// A fresh network: positive (or mixed-sign, if configured) uniform weights with each neuron's
    /// total weight at its target, zero biases, firing rates at ρ, every synapse present.
    pub fn init(backend: &B, config: BioConfig, input_dim: usize, classes: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut layers = Vec::new();
        let mut fan_in = input_dim;
        for &width in &config.hidden {
            let scale = match config.scaling_norm {
                ScalingNorm::L1 => target_total(&config, fan_in) / fan_in as f32,
                ScalingNorm::L2 => target_total(&config, fan_in) / (fan_in as f32).sqrt(),
            };
            let mut w = uniform_init(width, fan_in, scale, config.init_spread, config.hidden_init, &mut rng);
            let mask = match config.receptive_field {
                Some(p) if layers.is_empty() => receptive_field_mask(width, fan_in, p, &mut rng),
                _ => Matrix::full(width, fan_in, 1.0),
            };
            for (wi, mi) in w.as_mut_slice().iter_mut().zip(mask.as_slice()) {
                *wi *= mi;
            }
            layers.push(BioLayer {
                weights: backend.upload(&w),
                mask: backend.upload(&mask),
                bias: backend.full(1, width, 0.0),
                rate: backend.full(1, width, config.active_fraction),
            });
            fan_in = width;
        }
        let v = if config.readout_rule == ReadoutRule::Assembly {
            // Fixed by construction: class c's unit sums its assembly, units j ≡ c (mod C).
            Matrix::from_fn(classes, fan_in, |c, j| if j % classes == c { 1.0 } else { 0.0 })
        } else {
            uniform_init(classes, fan_in, 1.0, 0.5, config.readout_init, &mut rng)
        };
        let readout = Readout { weights: backend.upload(&v), bias: backend.full(1, classes, 0.0) };
        Self { backend: backend.clone(), config, input_dim, classes, layers, readout, members: 1 }
    }

    /// Rebuilds a network from saved parameters, checking every shape.
    pub fn from_params(
        backend: &B,
        config: BioConfig,
        input_dim: usize,
        classes: usize,
        params: &Params,
    ) -> Result<Self, CoreError> {
        let mut layers = Vec::new();
        let mut fan_in = input_dim;
        for (i, &width) in config.hidden.iter().enumerate() {
            let get = |n: &str, s| params.get(&format!("hidden.{i}.{n}"), s).map(|m| backend.upload(m));
            layers.push(BioLayer {
                weights: get("weight", (width, fan_in))?,
                mask: get("mask", (width, fan_in))?,
                bias: get("bias", (1, width))?,
                rate: get("rate", (1, width))?,
            });
            fan_in = width;
        }
        let readout = Readout {
            weights: backend.upload(params.get("readout.weight", (classes, fan_in))?),
            bias: backend.upload(params.get("readout.bias", (1, classes))?),
        };
        Ok(Self { backend: backend.clone(), config, input_dim, classes, layers, readout, members: 1 })
    }

    /// How many networks this one holds (1 but inside a [`super::population::BioPopulation`]).
    pub fn members(&self) -> usize {
        self.members
    }

    /// One network holding `nets` (networks of one configuration and shape, each alone) as the
    /// members of a population: every tensor stacked, member `p` at block `p`.
    pub(super) fn stack(nets: &[BioNet<B>]) -> Self {
        let first = nets.first().expect("a population has members");
        let b = &first.backend;
        assert!(nets.iter().all(|n| n.members == 1), "stacking stacks");
        let stack = |pick: &dyn Fn(&BioNet<B>) -> &B::Tensor| {
            stack_members(b, &nets.iter().map(|n| pick(n).clone()).collect::<Vec<_>>())
        };
        let layers = (0..first.layers.len())
            .map(|i| BioLayer {
                weights: stack(&|n| &n.layers[i].weights),
                mask: stack(&|n| &n.layers[i].mask),
                bias: stack(&|n| &n.layers[i].bias),
                rate: stack(&|n| &n.layers[i].rate),
            })
            .collect();
        let readout = Readout { weights: stack(&|n| &n.readout.weights), bias: stack(&|n| &n.readout.bias) };
        Self {
            backend: b.clone(),
            config: first.config.clone(),
            input_dim: first.input_dim,
            classes: first.classes,
            layers,
            readout,
            members: nets.len(),
        }
    }

    /// The members of a stacked network, each a network alone ([`BioNet::stack`] undone).
    pub(super) fn unstack(&self) -> Vec<BioNet<B>> {
        let b = &self.backend;
        let split = |t: &B::Tensor| split_members(b, t, self.members);
        let layers: Vec<_> =
            self.layers.iter().map(|l| (split(&l.weights), split(&l.mask), split(&l.bias), split(&l.rate))).collect();
        let (weights, bias) = (split(&self.readout.weights), split(&self.readout.bias));
        (0..self.members)
            .map(|p| BioNet {
                layers: layers
                    .iter()
                    .map(|(w, m, c, r)| BioLayer {
                        weights: w[p].clone(),
                        mask: m[p].clone(),
                        bias: c[p].clone(),
                        rate: r[p].clone(),
                    })
                    .collect(),
                readout: Readout { weights: weights[p].clone(), bias: bias[p].clone() },
                members: 1,
                backend: b.clone(),
                config: self.config.clone(),
                input_dim: self.input_dim,
                classes: self.classes,
            })
            .collect()
    }

    /// The full forward pass, keeping every intermediate.
    pub fn trace(&self, x: &B::Tensor) -> BioTrace<B> {
        let b = &self.backend;
        let mut input = x.clone();
        let mut layers = Vec::with_capacity(self.layers.len());
        let members = self.members;
        for layer in &self.layers {
            let (normalized, input_norm) = normalize_input(b, &input);
            let presynaptic = feedforward_inhibition(b, &normalized, self.config.feedforward_inhibition);
            let drive = matmul_members(b, members, &presynaptic, false, &layer.weights, true);
            let drive = add_member_rows(b, members, &drive, &layer.bias);
            let k = self.config.winners(b.shape(&layer.weights).0 / members);
            let threshold = inhibition_threshold(b, &drive, &self.config, k);
            let activity = b.map(&b.zip(&drive, &threshold, Binary::Sub), Unary::Relu);
            let next = activity.clone();
            layers.push(LayerTrace { input, input_norm, normalized, drive, threshold, activity });
            input = next;
        }
        // The readout sees the response yⁿ (n = 1: the activity itself); the semi-saturation constant
        // is raised to the same power, σⁿ, so it stays small beside Σyⁿ whatever n.
        let power = self.config.response_power;
        let response = if power == 1.0 { input } else { b.map(&input, Unary::Powf(power)) };
        let total = b.reduce(&response, Dim::PerRow, Reduce::Sum);
        let code_denominator = b.map(&total, Unary::Offset(self.config.normalization_sigma.powf(power)));
        let code = b.zip(&response, &code_denominator, Binary::Div);
        let logits = matmul_members(b, members, &code, false, &self.readout.weights, true);
        let logits = add_member_rows(b, members, &logits, &self.readout.bias);
        BioTrace { layers, code_denominator, code, logits }
    }

    /// Backward through one competition stage: `∂L/∂u` from `∂L/∂y`, exact or through the surrogate.
    fn competition_backward(&self, t: &LayerTrace<B>, dy: &B::Tensor, backward: CompetitionBackward) -> B::Tensor {
        let b = &self.backend;
        let gap = b.zip(&t.drive, &t.threshold, Binary::Sub);
        let kwta = self.config.mechanisms.competition && matches!(self.config.competition, Competition::KWinners);
        // −1 at the threshold unit of k-WTA (its gap is exactly 0), 0 elsewhere.
        let at_threshold = kwta.then(|| b.map(&b.map(&b.map(&gap, Unary::Abs), Unary::Step), Unary::Offset(-1.0)));
        let slope = match backward {
            CompetitionBackward::Exact => b.map(&gap, Unary::Step),
            CompetitionBackward::Sigmoid { temperature } => {
                // σ(gap / (T·std(u))): the derivative of a softplus of the gap, scaled per input so one
                // temperature suits every model. The threshold unit's own output is 0 whatever its drive
                // (both of its paths cancel), so its slope is set to 0 as in the exact pass.
                let (_, std) = row_mean_std(b, &t.drive);
                let scale = b.map(&std, Unary::Clamp(1e-12, f32::MAX));
                let scaled = b.zip(&gap, &b.map(&scale, Unary::Scale(temperature)), Binary::Div);
                let sigmoid = b.map(&b.map(&b.map(&scaled, Unary::Scale(-1.0)), Unary::Exp), Unary::Offset(1.0));
                let sigmoid = b.map(&sigmoid, Unary::Recip);
                match &at_threshold {
                    Some(at) => b.lincomb(1.0, &sigmoid, 1.0, &b.zip(&sigmoid, at, Binary::Mul)),
                    None => sigmoid,
                }
            }
        };
        let dy_active = b.zip(dy, &slope, Binary::Mul);
        if !self.config.mechanisms.competition {
            return dy_active;
        }
        // Every active unit's output falls one-for-one with θ: ∂L/∂θ = −Σ_active ∂L/∂y.
        let dtheta = b.map(&b.reduce(&dy_active, Dim::PerRow, Reduce::Sum), Unary::Scale(-1.0));
        match self.config.competition {
            Competition::KWinners => {
                // θ is the drive of the (k+1)-th unit itself: that unit receives ∂L/∂θ.
                let at_threshold = at_threshold.expect("set under k-WTA");
                let from_theta = b.zip(&at_threshold, &dtheta, Binary::Mul);
                b.lincomb(1.0, &dy_active, -1.0, &from_theta)
            }
            Competition::Inhibitory { gain } => {
                // ∂θ/∂u_m = 1/N + γ (u_m − μ) / (N·s).
                let (_, n) = b.shape(&t.drive);
                let (mean, std) = row_mean_std(b, &t.drive);
                let centered = b.zip(&t.drive, &mean, Binary::Sub);
                let scaled = b.zip(&centered, &b.map(&std, Unary::Offset(1e-12)), Binary::Div);
                let dtheta_du = b.map(&scaled, Unary::Scale(gain / n as f32));
                let dtheta_du = b.map(&dtheta_du, Unary::Offset(1.0 / n as f32));
                b.lincomb(1.0, &dy_active, 1.0, &b.zip(&dtheta_du, &dtheta, Binary::Mul))
            }
        }
    }

    /// The logits at `x` and the vector–Jacobian product `(∂z/∂x)ᵀ·dlogits(z)`, with the competition
    /// differentiated as `backward` says (the forward pass is always the exact one).
    pub fn logits_and_input_vjp_with(
        &self,
        x: &B::Tensor,
        dlogits: &mut dyn FnMut(&B::Tensor) -> B::Tensor,
        backward: CompetitionBackward,
    ) -> (B::Tensor, B::Tensor) {
        let b = &self.backend;
        let trace = self.trace(x);
        let dz = dlogits(&trace.logits);
        // z = h̃ Vᵀ + c
        let dcode = b.matmul(&dz, false, &self.readout.weights, false);
        // h̃ = h / (σ + Σh): ∂L/∂h = (∂L/∂h̃ − Σ_j ∂L/∂h̃_j h̃_j) / (σ + Σh)
        let proj = b.reduce(&b.zip(&dcode, &trace.code, Binary::Mul), Dim::PerRow, Reduce::Sum);
        let mut grad = b.zip(&b.zip(&dcode, &proj, Binary::Sub), &trace.code_denominator, Binary::Div);
        let power = self.config.response_power;
        if power != 1.0 {
            // ∂yⁿ/∂y = n·yⁿ⁻¹ (0 for a silent unit, as n > 1).
            let last = &trace.layers.last().expect("at least one hidden layer").activity;
            let slope = b.map(&b.map(last, Unary::Powf(power - 1.0)), Unary::Scale(power));
            grad = b.zip(&grad, &slope, Binary::Mul);
        }
        for (layer, t) in self.layers.iter().zip(&trace.layers).rev() {
            // Under exact k-WTA only the k winners and the threshold unit carry gradient: a sparse
            // product (the surrogate's is dense, and the product then costs a dense one).
            let du = self.competition_backward(t, &grad, backward);
            let dxhat = feedforward_inhibition(
                b,
                &b.sparse_matmul(&du, false, &layer.weights),
                self.config.feedforward_inhibition,
            );
            grad = normalize_backward(b, t, &dxhat);
        }
        (trace.logits, grad)
    }
}

/// How the backward pass of a [`BioNet`] treats its competition stage `y = relu(u − θ(u))`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CompetitionBackward {
    /// The exact derivative: `∂y_j/∂u_j = step(u_j − θ)`, and `∂L/∂θ` to the unit that sets θ (k-WTA).
    Exact,
    /// A surrogate for gradient attacks through the non-smooth competition (BPDA, Athalye et al.
    /// 2018): the rectification's step is replaced by `σ((u_j − θ)/(T·std_j(u)))`, the derivative of
    /// a softplus of temperature `T` relative to the spread of the drives, so units just below the
    /// threshold also receive gradient (an attack can learn to swap winners). θ keeps its exact
    /// derivative. As `T → 0` it becomes [`CompetitionBackward::Exact`] wherever the exact
    /// derivative exists (no tie at the threshold).
    Sigmoid {
        /// `T > 0`, in units of the per-input standard deviation of the drives.
        temperature: f32,
    },
}

/// A [`BioNet`] seen through a surrogate backward pass: the same (exact) logits and predictions, but
/// input gradients taken with [`CompetitionBackward::Sigmoid`]. For surrogate-gradient attacks.
#[derive(Clone, Copy, Debug)]
pub struct SurrogateBio<'a, B: Backend> {
    net: &'a BioNet<B>,
    temperature: f32,
}

impl<'a, B: Backend> SurrogateBio<'a, B> {
    /// `net` with the sigmoid surrogate of temperature `temperature` (> 0; see
    /// [`CompetitionBackward::Sigmoid`]).
    pub fn new(net: &'a BioNet<B>, temperature: f32) -> Self {
        Self { net, temperature }
    }
    /// The surrogate's temperature.
    pub fn temperature(&self) -> f32 {
        self.temperature
    }
}

impl<B: Backend> Classifier<B> for SurrogateBio<'_, B> {
    fn backend(&self) -> &B {
        &self.net.backend
    }
    fn input_dim(&self) -> usize {
        self.net.input_dim
    }
    fn classes(&self) -> usize {
        self.net.classes
    }
    fn logits(&self, x: &B::Tensor) -> B::Tensor {
        self.net.logits(x)
    }
    fn hidden_activity(&self, x: &B::Tensor) -> Vec<B::Tensor> {
        self.net.hidden_activity(x)
    }
    fn logits_and_input_vjp(
        &self,
        x: &B::Tensor,
        dlogits: &mut dyn FnMut(&B::Tensor) -> B::Tensor,
    ) -> (B::Tensor, B::Tensor) {
        self.net.logits_and_input_vjp_with(x, dlogits, CompetitionBackward::Sigmoid { temperature: self.temperature })
    }
    fn to_params(&self) -> Params {
        self.net.to_params()
    }
}

/// Backward through `x̂ = x / (ε + n)`, `n = ‖x‖₂`:
/// `∂L/∂x = ∂L/∂x̂ / d − x · (x·∂L/∂x̂) / (n·d²)` with `d = ε + n`.
fn normalize_backward<B: Backend>(b: &B, t: &LayerTrace<B>, dxhat: &B::Tensor) -> B::Tensor {
    let d = b.map(&t.input_norm, Unary::Offset(INPUT_EPS));
    let dot = b.reduce(&b.zip(&t.input, dxhat, Binary::Mul), Dim::PerRow, Reduce::Sum);
    let n_safe = b.map(&t.input_norm, Unary::Clamp(1e-30, f32::MAX));
    let coef = b.zip(&b.zip(&dot, &n_safe, Binary::Div), &b.map(&d, Unary::Square), Binary::Div);
    let first = b.zip(dxhat, &d, Binary::Div);
    let second = b.zip(&t.input, &coef, Binary::Mul);
    b.lincomb(1.0, &first, -1.0, &second)
}

impl<B: Backend> Classifier<B> for BioNet<B> {
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
        self.trace(x).logits
    }
    fn hidden_activity(&self, x: &B::Tensor) -> Vec<B::Tensor> {
        self.trace(x).layers.into_iter().map(|t| t.activity).collect()
    }
    /// `u = W x̃ + b` of each layer, before the threshold of its competition.
    fn hidden_drive(&self, x: &B::Tensor) -> Vec<B::Tensor> {
        self.trace(x).layers.into_iter().map(|t| t.drive).collect()
    }
    fn logits_and_input_vjp(
        &self,
        x: &B::Tensor,
        dlogits: &mut dyn FnMut(&B::Tensor) -> B::Tensor,
    ) -> (B::Tensor, B::Tensor) {
        self.logits_and_input_vjp_with(x, dlogits, CompetitionBackward::Exact)
    }
    fn surrogate(&self, temperature: f32) -> Option<Box<dyn Classifier<B> + '_>> {
        Some(Box::new(SurrogateBio::new(self, temperature)))
    }
    fn to_params(&self) -> Params {
        let b = &self.backend;
        let mut p = Params::default();
        for (i, l) in self.layers.iter().enumerate() {
            p.push(format!("hidden.{i}.weight"), b.download(&l.weights));
            p.push(format!("hidden.{i}.mask"), b.download(&l.mask));
            p.push(format!("hidden.{i}.bias"), b.download(&l.bias));
            p.push(format!("hidden.{i}.rate"), b.download(&l.rate));
        }
        p.push("readout.weight", b.download(&self.readout.weights));
        p.push("readout.bias", b.download(&self.readout.bias));
        p
    }
}
