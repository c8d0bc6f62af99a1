//! [`ConvNet`]: a stack of convolutional layers (patch extraction + one matrix product), each with
//! competition across channels at every position and max pooling, then a linear readout. Shared by
//! the local rule [`super::ConvRule`] and its backprop control [`super::BpConvRule`].
//!
//! For layer `l` with input `a` (a batch of `H×W×C` maps, channel-last), weights `W` (`C'×k·k·C`)
//! and bias `c` (`1×C'`):
//!
//! * patches `P = unfold(a)` (`(n·positions)×k·k·C`, stride 1, zero padding `⌊k/2⌋`: the map keeps
//!   its size);
//! * drive `u = P Wᵀ + c` (`(n·positions)×C'`, one row per position);
//! * competition across channels at each position ([`Activation`]): k-WTA `y = relu(u − θ)` with
//!   `θ` the row's (k+1)-th largest drive; the soft variant `y = relu(u − mean_c u)` (SoftHebb's
//!   triangle); or plain `y = relu(u)` (the backprop control);
//! * max pooling of `y` per channel (default window 4, stride 2, padding 1, as SoftHebb).
//!
//! The readout sees the last pooled map flattened per image (`(y, x, c)` order): `z = h Vᵀ + b`.
//!
//! With `--conv-whiten` (or `--conv-centre`) the first layer sees its patches whitened (or
//! centred), `P Z` ([`Whitening`], [`super::whiten::patch_transform`]); the drive is then
//! `u = P Z Wᵀ + c`, an ordinary convolution with the effective filters `W Z`.
//!
//! The input gradient is exact. Through the pooling: [`ConvOps::max_pool_backward`]. Through
//! k-WTA: `∂y_j/∂u_i = [u_j > θ](δ_ij − [i is the (k+1)-th])`, so `∂L/∂u = e − [u = θ]·Σ_j e_j`
//! with `e = g ⊙ [u > θ]`. Through the triangle: `∂L/∂u = e − mean_j e_j`. Then
//! `∂L/∂a = fold(∂L/∂u · W)`.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};
use serde::{Deserialize, Serialize};

use crate::backend::{Backend, Binary, Dim, KwtaSpec, Reduce, Unary, Window};
use crate::error::CoreError;
use crate::model::{Classifier, Params};
use crate::params::winners_at;
use crate::rules::LinearReadout;
use crate::tensor::Matrix;

/// Competition across the channels at each position.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    /// k-winners-take-all with `k = winners_at(ρ, C')` ([`winners_at`]): `y = relu(u − θ)`.
    Kwta {
        /// Target fraction `ρ` of active channels.
        density: f32,
    },
    /// Soft competition, SoftHebb's triangle: `y = relu(u − mean_c u)`.
    Triangle,
    /// No competition: `y = relu(u)`.
    Relu,
}

/// One layer's architecture: its convolution window and its pooling window.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerShape {
    /// The convolution's patch geometry (input map size and channels, kernel, stride 1, padding).
    pub conv: Window,
    /// Output channels `C'`.
    pub channels: usize,
    /// The max pooling after it, if any (its input is the `out_height×out_width×C'` map).
    pub pool: Option<Window>,
}

impl LayerShape {
    /// `(height, width, channels)` of the map this layer hands on.
    pub fn output(&self) -> (usize, usize, usize) {
        match self.pool {
            Some(p) => (p.out_height(), p.out_width(), self.channels),
            None => (self.conv.out_height(), self.conv.out_width(), self.channels),
        }
    }
}

/// A layer request: `channels:kernel`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerSpec {
    /// Output channels.
    pub channels: usize,
    /// Kernel side (odd, so that padding `⌊k/2⌋` keeps the map's size).
    pub kernel: usize,
}

/// Parses `96:5,384:3` (channels:kernel per layer); errors name `flag`.
pub fn parse_layers(flag: &'static str, text: &str) -> Result<Vec<LayerSpec>, CoreError> {
    let layers: Vec<LayerSpec> = text
        .split(',')
        .map(|part| {
            let (c, k) = part.trim().split_once(':').ok_or_else(|| {
                CoreError::invalid(flag, format!("`{part}` is not channels:kernel (e.g. 96:5,384:3)"))
            })?;
            let parse = |s: &str| s.trim().parse::<usize>().ok().filter(|&v| v >= 1);
            match (parse(c), parse(k)) {
                (Some(channels), Some(kernel)) if channels >= 2 && kernel % 2 == 1 => {
                    Ok(LayerSpec { channels, kernel })
                }
                _ => Err(CoreError::invalid(
                    flag,
                    format!("`{part}`: channels must be ≥ 2 and the kernel an odd number ≥ 1"),
                )),
            }
        })
        .collect::<Result<_, _>>()?;
    Ok(layers)
}

/// One layer's max pooling: the window `(kernel, stride, padding)`, or `None`.
pub type Pooling = Option<(usize, usize, usize)>;

/// Parses a pooling window `kernel:stride:padding` (`4:2:1`), or `none`; errors name `flag`.
pub fn parse_pool(flag: &'static str, text: &str) -> Result<Pooling, CoreError> {
    if text.trim() == "none" {
        return Ok(None);
    }
    let parts: Vec<Option<usize>> = text.split(':').map(|s| s.trim().parse::<usize>().ok()).collect();
    match parts.as_slice() {
        [Some(k), Some(s), Some(p)] if *k >= 1 && *s >= 1 && p < k => Ok(Some((*k, *s, *p))),
        _ => Err(CoreError::invalid(
            flag,
            format!("`{text}` is not kernel:stride:padding with padding < kernel, or none"),
        )),
    }
}

/// Parses the pooling after each of `layers` layers: one window for every layer (`4:2:1`, or `none`),
/// or one per layer, comma-separated (`4:2:1,7:7:0`, `none,2:2:0`); errors name `flag`.
pub fn parse_pools(flag: &'static str, text: &str, layers: usize) -> Result<Vec<Pooling>, CoreError> {
    let pools = text.split(',').map(|part| parse_pool(flag, part)).collect::<Result<Vec<_>, _>>()?;
    match pools.len() {
        1 => Ok(vec![pools[0]; layers]),
        n if n == layers => Ok(pools),
        n => Err(CoreError::invalid(
            flag,
            format!("`{text}` gives {n} pooling windows for {layers} layers: give one for all layers or one for each"),
        )),
    }
}

/// The map size of a flat input: a square single-channel image when `input_dim` is a square
/// (28×28 for 784), else one row of `input_dim` pixels.
pub fn image_of(input_dim: usize) -> (usize, usize, usize) {
    let side = (input_dim as f64).sqrt().round() as usize;
    if side * side == input_dim { (side, side, 1) } else { (1, input_dim, 1) }
}

/// The architecture for an input map: each layer's windows, with stride 1 and padding `⌊k/2⌋`
/// (the map keeps its size), then its pooling window if any (`pools[l]`, one per layer, as
/// [`parse_pools`] gives them). Errors when a window does not fit.
pub fn architecture(
    image: (usize, usize, usize),
    layers: &[LayerSpec],
    pools: &[Pooling],
) -> Result<Vec<LayerShape>, CoreError> {
    assert_eq!(pools.len(), layers.len(), "one pooling window (or none) per layer");
    let (mut h, mut w, mut c) = image;
    let mut shapes = Vec::with_capacity(layers.len());
    for (spec, &pool) in layers.iter().zip(pools) {
        let conv =
            Window { height: h, width: w, channels: c, kernel: spec.kernel, stride: 1, padding: spec.kernel / 2 };
        conv.check()?;
        let pool = match pool {
            Some((kernel, stride, padding)) => {
                let p = Window {
                    height: conv.out_height(),
                    width: conv.out_width(),
                    channels: spec.channels,
                    kernel,
                    stride,
                    padding,
                };
                p.check()?;
                Some(p)
            }
            None => None,
        };
        let shape = LayerShape { conv, channels: spec.channels, pool };
        (h, w, c) = shape.output();
        shapes.push(shape);
    }
    Ok(shapes)
}

/// One convolutional layer's parameters.
#[derive(Clone, Debug)]
pub struct ConvLayer<B: Backend> {
    /// `W`, `C'×k·k·C`, columns in `(row in window, column in window, input channel)` order.
    pub weights: B::Tensor,
    /// `c`, `1×C'`.
    pub bias: B::Tensor,
}

/// How the initial weights are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConvInit {
    /// `U(0, 1)`, each filter then scaled to unit L2 norm (the multiplicative rule keeps signs).
    Positive,
    /// `U(−1, 1)`, each filter then scaled to unit L2 norm.
    Signed,
    /// `U(−1/√fan_in, 1/√fan_in)` (PyTorch's default for convolutions; the backprop control).
    Uniform,
    /// `N(0, (R/√fan_in)²)` with `R` = [`WIDE_RADIUS`]: filters of norm about 25, SoftHebb's start
    /// (Journé et al. 2023), which its norm-dependent rate brings towards 1.
    Wide,
}

/// The expected L2 norm of a [`ConvInit::Wide`] filter (SoftHebb's 25).
pub const WIDE_RADIUS: f32 = 25.0;

/// The first layer's fixed patch whitening `Z` ([`super::whiten`]): the identity until fitted.
#[derive(Clone, Debug)]
pub struct Whitening<B: Backend> {
    /// `Z`, `d×d` with `d` the first layer's patch length.
    pub matrix: B::Tensor,
    /// How many patches `Z` was fitted on; 0 while it is still the identity (not applied).
    pub samples: usize,
}

impl<B: Backend> Whitening<B> {
    /// Whether `Z` has been fitted (and is applied).
    pub fn fitted(&self) -> bool {
        self.samples > 0
    }
}

/// The intermediate values of one layer's forward pass.
pub struct LayerTrace<T> {
    /// The layer's input (any shape holding the batch of maps).
    pub input: T,
    /// `P = unfold(input)` (whitened, `P Z`, in a whitened first layer).
    pub patches: T,
    /// `u = P Wᵀ + c`; `None` where the forward pass of a Hebbian step left it out
    /// ([`ConvNet::trace_for`]'s learning layer, on backends that do).
    pub drive: Option<T>,
    /// The subtracted threshold per position (`θ` or `mean_c u`, `rows×1`), none for ReLU.
    pub threshold: Option<T>,
    /// `y`, the activity after competition; `None` where the forward pass of a Hebbian step left it
    /// out (as [`LayerTrace::drive`]).
    pub activity: Option<T>,
    /// The pooled activity (or `y` without pooling): the next layer's input.
    pub output: T,
    /// `r = y/max_c y` per position, where the forward pass computed it for a Hebbian step
    /// ([`ConvNet::trace_for`]); `None` otherwise.
    pub relative: Option<T>,
    /// The fraction of positive `y`, where the forward pass counted it on the way.
    pub fraction_positive: Option<f32>,
}

impl<T> LayerTrace<T> {
    /// The drive and the activity of a trace that has them (every trace but the learning
    /// layer's in a Hebbian step, [`ConvNet::trace_for`]); panics otherwise.
    pub fn full(&self) -> (&T, &T) {
        match (&self.drive, &self.activity) {
            (Some(drive), Some(activity)) => (drive, activity),
            _ => panic!("this layer trace has no drive or activity (a Hebbian step's pass left them out)"),
        }
    }
}

/// The convolutional network (see the module docs).
#[derive(Clone, Debug)]
pub struct ConvNet<B: Backend> {
    backend: B,
    input_dim: usize,
    classes: usize,
    /// Competition across channels.
    pub activation: Activation,
    /// Each layer's architecture.
    pub shapes: Vec<LayerShape>,
    /// Each layer's parameters.
    pub layers: Vec<ConvLayer<B>>,
    /// The readout on the flattened last map.
    pub readout: LinearReadout<B>,
    /// The first layer's patch whitening, when the rule asks for it.
    pub whitening: Option<Whitening<B>>,
}

/// The first layer's whitening `Z` in [`Classifier::to_params`].
pub const WHITEN: &str = "conv.0.whiten";
/// How many patches `Z` was fitted on (`1×1`; 0: not fitted, the identity).
pub const WHITEN_SAMPLES: &str = "conv.0.whiten_samples";
/// Derived: the first layer's filters on raw patches, `W Z`, which the exported forward pass uses.
pub const EFFECTIVE_WEIGHT: &str = "conv.0.effective_weight";

/// Each row of `m` scaled to unit L2 norm.
fn unit_rows(mut m: Matrix) -> Matrix {
    for i in 0..m.rows() {
        let row = m.row_mut(i);
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|v| *v /= norm);
    }
    m
}

impl<B: Backend> ConvNet<B> {
    /// A fresh network: filters drawn by `init`, zero biases, readout `U(−1/√F, 1/√F)`; with
    /// `whiten`, an unfitted [`Whitening`] of the first layer (the identity, not applied).
    #[allow(clippy::too_many_arguments)]
    pub fn init(
        backend: &B,
        shapes: Vec<LayerShape>,
        activation: Activation,
        init: ConvInit,
        whiten: bool,
        input_dim: usize,
        classes: usize,
        seed: u64,
    ) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let layers = shapes
            .iter()
            .map(|s| {
                let fan_in = s.conv.patch_len();
                let w = match init {
                    ConvInit::Positive | ConvInit::Signed => {
                        let lo = if init == ConvInit::Positive { 0.0 } else { -1.0 };
                        let dist = Uniform::new(lo, 1.0f32).expect("a finite range");
                        unit_rows(Matrix::from_fn(s.channels, fan_in, |_, _| dist.sample(&mut rng)))
                    }
                    ConvInit::Uniform => {
                        let bound = 1.0 / (fan_in as f32).sqrt();
                        let dist = Uniform::new(-bound, bound).expect("a finite range");
                        Matrix::from_fn(s.channels, fan_in, |_, _| dist.sample(&mut rng))
                    }
                    ConvInit::Wide => {
                        let sd = WIDE_RADIUS / (fan_in as f32).sqrt();
                        let dist = Normal::new(0.0, sd).expect("a finite standard deviation");
                        Matrix::from_fn(s.channels, fan_in, |_, _| dist.sample(&mut rng))
                    }
                };
                ConvLayer { weights: backend.upload(&w), bias: backend.full(1, s.channels, 0.0) }
            })
            .collect();
        let features = Self::feature_len(&shapes);
        let readout = LinearReadout::init(backend, classes, features, &mut rng);
        let whitening = whiten.then(|| {
            let d = shapes[0].conv.patch_len();
            Whitening { matrix: backend.upload(&Matrix::from_fn(d, d, |i, j| f32::from(u8::from(i == j)))), samples: 0 }
        });
        Self { backend: backend.clone(), input_dim, classes, activation, shapes, layers, readout, whitening }
    }

    /// Rebuilds a network from [`Classifier::to_params`] output, checking every shape (and, with
    /// `whiten`, reading the first layer's [`Whitening`]).
    pub fn from_params(
        backend: &B,
        shapes: Vec<LayerShape>,
        activation: Activation,
        whiten: bool,
        input_dim: usize,
        classes: usize,
        params: &Params,
    ) -> Result<Self, CoreError> {
        let layers = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Ok(ConvLayer {
                    weights: backend.upload(params.get(&format!("conv.{i}.weight"), (s.channels, s.conv.patch_len()))?),
                    bias: backend.upload(params.get(&format!("conv.{i}.bias"), (1, s.channels))?),
                })
            })
            .collect::<Result<Vec<_>, CoreError>>()?;
        let features = Self::feature_len(&shapes);
        let readout = LinearReadout::from_params(backend, params, classes, features)?;
        let whitening = if whiten {
            let d = shapes[0].conv.patch_len();
            let matrix = backend.upload(params.get(WHITEN, (d, d))?);
            let samples = params.get(WHITEN_SAMPLES, (1, 1))?.as_slice()[0];
            if !(samples >= 0.0 && samples.fract() == 0.0) {
                return Err(CoreError::Incompatible(format!("`{WHITEN_SAMPLES}` is {samples}, not a count")));
            }
            Some(Whitening { matrix, samples: samples as usize })
        } else {
            None
        };
        Ok(Self { backend: backend.clone(), input_dim, classes, activation, shapes, layers, readout, whitening })
    }

    /// Features the readout sees: the last map's `height·width·channels`.
    pub fn feature_len(shapes: &[LayerShape]) -> usize {
        shapes.last().map(|s| s.output()).map(|(h, w, c)| h * w * c).unwrap_or(0)
    }

    /// Winners per position of layer `l` under k-WTA.
    pub fn winners(&self, l: usize) -> Option<usize> {
        match self.activation {
            Activation::Kwta { density } => Some(winners_at(density, self.shapes[l].channels)),
            _ => None,
        }
    }

    /// Layer `l`'s drive `u = P Wᵀ + c` from its patches `P` (the bias added in place: the same
    /// sums as `zip(Add)` without a second tensor of the drive's size).
    pub fn drive(&self, l: usize, patches: &B::Tensor) -> B::Tensor {
        let b = &self.backend;
        let layer = &self.layers[l];
        let mut drive = b.matmul(patches, false, &layer.weights, true);
        b.zip_assign(&mut drive, &layer.bias, Binary::Add);
        drive
    }

    /// Layer `l`'s competition across channels at each position: the subtracted threshold per
    /// position (none for ReLU) and the activity `y` ([`Activation`]). k-WTA is the backend's
    /// fused [`ConvOps::kwta_rows`](crate::backend::ConvOps::kwta_rows).
    pub fn compete(&self, l: usize, drive: &B::Tensor) -> (Option<B::Tensor>, B::Tensor) {
        let b = &self.backend;
        match self.activation {
            Activation::Kwta { .. } => {
                let k = self.winners(l).expect("k-WTA");
                let (threshold, activity) = b.kwta_rows(drive, k + 1);
                (Some(threshold), activity)
            }
            Activation::Triangle => {
                let threshold = b.reduce(drive, Dim::PerRow, Reduce::Mean);
                let activity = b.map(&b.zip(drive, &threshold, Binary::Sub), Unary::Relu);
                (Some(threshold), activity)
            }
            Activation::Relu => (None, b.map(drive, Unary::Relu)),
        }
    }

    /// Layer `l`'s pooled activity (the activity itself without pooling): the next layer's input.
    pub fn pool(&self, l: usize, activity: &B::Tensor) -> B::Tensor {
        match &self.shapes[l].pool {
            Some(p) => self.backend.max_pool(activity, p),
            None => activity.clone(),
        }
    }

    /// The fitted whitening of layer `l`'s patches, if any (only the first layer has one).
    fn whitening_of(&self, l: usize) -> Option<&B::Tensor> {
        self.whitening.as_ref().filter(|w| l == 0 && w.fitted()).map(|w| &w.matrix)
    }

    /// Layer `l`'s forward pass on `input`: [`ConvOps::unfold`](crate::backend::ConvOps::unfold)
    /// (whitened in a whitened first layer), [`ConvNet::drive`], [`ConvNet::compete`],
    /// [`ConvNet::pool`]; for k-WTA without whitening the same chain as the one operation
    /// [`ConvOps::kwta_layer`](crate::backend::ConvOps::kwta_layer).
    pub fn layer_forward(&self, l: usize, input: &B::Tensor) -> LayerTrace<B::Tensor> {
        self.layer_forward_for(l, input, false)
    }

    /// [`ConvNet::layer_forward`]; with `relative`, a k-WTA layer without whitening also returns
    /// its relative activity ([`LayerTrace::relative`]) from the same pass.
    fn layer_forward_for(&self, l: usize, input: &B::Tensor, relative: bool) -> LayerTrace<B::Tensor> {
        if let (Some(k), None) = (self.winners(l), self.whitening_of(l)) {
            // The same chain as one backend operation (the CPU runs it image by image).
            let (shape, layer) = (&self.shapes[l], &self.layers[l]);
            let spec = KwtaSpec { conv: &shape.conv, k: k + 1, pool: shape.pool.as_ref(), relative };
            let f = self.backend.kwta_layer(input, &layer.weights, &layer.bias, &spec);
            return LayerTrace {
                input: input.clone(),
                patches: f.patches,
                drive: f.drive,
                threshold: Some(f.threshold),
                activity: f.activity,
                output: f.output,
                relative: f.relative,
                fraction_positive: f.fraction_positive,
            };
        }
        let mut patches = self.backend.unfold(input, &self.shapes[l].conv);
        if let Some(z) = self.whitening_of(l) {
            patches = self.backend.matmul(&patches, false, z, false);
        }
        let drive = self.drive(l, &patches);
        let (threshold, activity) = self.compete(l, &drive);
        let output = self.pool(l, &activity);
        LayerTrace {
            input: input.clone(),
            patches,
            drive: Some(drive),
            threshold,
            activity: Some(activity),
            output,
            relative: None,
            fraction_positive: None,
        }
    }

    /// Every layer's trace on `x`, first layer first.
    pub fn trace(&self, x: &B::Tensor) -> Vec<LayerTrace<B::Tensor>> {
        self.trace_for(x, None)
    }

    /// [`ConvNet::trace`] for a Hebbian step of layer `learner`: that layer's forward pass also
    /// gives its relative activity where its backend computes it on the way
    /// ([`ConvOps::kwta_layer`](crate::backend::ConvOps::kwta_layer)).
    pub fn trace_for(&self, x: &B::Tensor, learner: Option<usize>) -> Vec<LayerTrace<B::Tensor>> {
        let mut traces: Vec<LayerTrace<B::Tensor>> = Vec::with_capacity(self.layers.len());
        for l in 0..self.layers.len() {
            let input = traces.last().map(|t| &t.output).unwrap_or(x);
            traces.push(self.layer_forward_for(l, input, learner == Some(l)));
        }
        traces
    }

    /// The readout's input: the last map flattened per image (`n×F`).
    pub fn features(&self, traces: &[LayerTrace<B::Tensor>]) -> B::Tensor {
        let b = &self.backend;
        let last = &traces.last().expect("at least one layer").output;
        let (rows, cols) = b.shape(last);
        let features = Self::feature_len(&self.shapes);
        b.reshape(last, rows * cols / features, features)
    }

    /// `∂L/∂u` of layer `l` from the gradient `g` reaching its pooled output.
    pub fn drive_gradient(&self, l: usize, t: &LayerTrace<B::Tensor>, g: &B::Tensor) -> B::Tensor {
        let b = &self.backend;
        let (drive, activity) = t.full();
        let gy = match &self.shapes[l].pool {
            Some(p) => b.max_pool_backward(activity, p, g),
            None => {
                let (r, c) = b.shape(activity);
                b.reshape(g, r, c)
            }
        };
        let e = b.zip(&gy, &b.map(activity, Unary::Step), Binary::Mul);
        match self.activation {
            Activation::Relu => e,
            Activation::Triangle => b.zip(&e, &b.reduce(&e, Dim::PerRow, Reduce::Mean), Binary::Sub),
            Activation::Kwta { .. } => {
                let theta = t.threshold.as_ref().expect("k-WTA has a threshold");
                // [u = θ]: the (k+1)-th unit, whose drive is the threshold.
                let gap = b.map(&b.zip(drive, theta, Binary::Sub), Unary::Abs);
                let at = b.map(&b.map(&b.map(&gap, Unary::Step), Unary::Scale(-1.0)), Unary::Offset(1.0));
                let total = b.reduce(&e, Dim::PerRow, Reduce::Sum);
                b.lincomb(1.0, &e, -1.0, &b.zip(&at, &total, Binary::Mul))
            }
        }
    }

    /// Backward through every layer from the gradient `g` on the features: returns each layer's
    /// `∂L/∂u` (first layer first) and `∂L/∂x` (`n×input_dim`).
    pub fn backward(&self, traces: &[LayerTrace<B::Tensor>], g: &B::Tensor) -> (Vec<B::Tensor>, B::Tensor) {
        let b = &self.backend;
        let mut g = g.clone();
        let mut drives = Vec::with_capacity(traces.len());
        for l in (0..traces.len()).rev() {
            let du = self.drive_gradient(l, &traces[l], &g);
            let mut dp = b.matmul(&du, false, &self.layers[l].weights, false);
            if let Some(z) = self.whitening_of(l) {
                dp = b.matmul(&dp, false, z, true);
            }
            g = b.fold(&dp, &self.shapes[l].conv);
            drives.push(du);
        }
        drives.reverse();
        (drives, g)
    }

    /// Logits of `x`.
    fn logits_of(&self, traces: &[LayerTrace<B::Tensor>]) -> B::Tensor {
        self.readout.logits(&self.backend, &self.features(traces))
    }
}

impl<B: Backend> Classifier<B> for ConvNet<B> {
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
        self.logits_of(&self.trace(x))
    }
    /// Each layer's pooled map, flattened per image (`n×(h·w·C')`).
    fn hidden_activity(&self, x: &B::Tensor) -> Vec<B::Tensor> {
        let b = &self.backend;
        let (n, _) = b.shape(x);
        self.trace(x)
            .iter()
            .map(|t| {
                let (r, c) = b.shape(&t.output);
                b.reshape(&t.output, n, r * c / n.max(1))
            })
            .collect()
    }
    fn logits_and_input_vjp(
        &self,
        x: &B::Tensor,
        dlogits: &mut dyn FnMut(&B::Tensor) -> B::Tensor,
    ) -> (B::Tensor, B::Tensor) {
        let b = &self.backend;
        let traces = self.trace(x);
        let logits = self.logits_of(&traces);
        let g = self.readout.backward(b, &dlogits(&logits));
        let (_, dx) = self.backward(&traces, &g);
        let (n, d) = b.shape(x);
        (logits, b.reshape(&dx, n, d))
    }
    fn to_params(&self) -> Params {
        let b = &self.backend;
        let mut p = Params::default();
        for (i, l) in self.layers.iter().enumerate() {
            p.push(format!("conv.{i}.weight"), b.download(&l.weights));
            p.push(format!("conv.{i}.bias"), b.download(&l.bias));
        }
        self.readout.push_params(b, &mut p);
        if let Some(w) = &self.whitening {
            p.push(WHITEN.to_string(), b.download(&w.matrix));
            p.push(WHITEN_SAMPLES.to_string(), Matrix::from_fn(1, 1, |_, _| w.samples as f32));
            // Derived, for the export: the filters on raw patches, `W Z` (`W` while unfitted).
            let effective = match self.whitening_of(0) {
                Some(z) => b.matmul(&self.layers[0].weights, false, z, false),
                None => self.layers[0].weights.clone(),
            };
            p.push(EFFECTIVE_WEIGHT.to_string(), b.download(&effective));
        }
        p
    }
}

/// The forward pass in words with this architecture's constants and tensor shapes (for exports).
pub fn forward_words(shapes: &[LayerShape], activation: Activation, whiten: bool, classes: usize) -> String {
    let mut text = String::from(
        "x (n, H*W) in [0,1] is a batch of H×W single-channel maps, channel-last. Per layer i: \
         P = unfold(a) (stride 1, zero padding k//2; one row per output position, columns ordered \
         (row in window, column in window, input channel)); u = P @ conv.i.weight^T + conv.i.bias \
         (one row per position); ",
    );
    text.push_str(match activation {
        Activation::Kwta { .. } => {
            "y = relu(u - theta), theta = the (k+1)-th largest entry of u's row (k per layer below); "
        }
        Activation::Triangle => "y = relu(u - mean(u's row)); ",
        Activation::Relu => "y = relu(u); ",
    });
    text.push_str(
        "a = max pool of y per channel (window, stride, padding below; padding ignored), the next layer's input. \
         logits = flatten(a) @ readout.weight^T + readout.bias, flatten in (row, column, channel) order. Layers: ",
    );
    let layers: Vec<String> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let k = match activation {
                Activation::Kwta { density } => format!(", k = {}", winners_at(density, s.channels)),
                _ => String::new(),
            };
            let pool =
                s.pool.map(|p| format!("pool {}/{}/{}", p.kernel, p.stride, p.padding)).unwrap_or("no pool".into());
            format!(
                "{i}: {}×{}×{} → {} channels, kernel {}{k}, {pool} → {:?}",
                s.conv.height,
                s.conv.width,
                s.conv.channels,
                s.channels,
                s.conv.kernel,
                s.output()
            )
        })
        .collect();
    text.push_str(&layers.join("; "));
    let mut tensors: Vec<String> = shapes
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            [
                format!("conv.{i}.weight ({}, {})", s.channels, s.conv.patch_len()),
                format!("conv.{i}.bias (1, {})", s.channels),
            ]
        })
        .collect();
    tensors.push(format!("readout.weight ({classes}, {})", ConvNet::<crate::ReferenceBackend>::feature_len(shapes)));
    tensors.push(format!("readout.bias (1, {classes})"));
    if whiten {
        let d = shapes[0].conv.patch_len();
        text.push_str(&format!(
            ". Layer 0's patches are whitened (or centred), P @ {WHITEN}, so it uses {EFFECTIVE_WEIGHT} = conv.0.weight @ {WHITEN} in place of conv.0.weight"
        ));
        tensors.push(format!("{WHITEN} ({d}, {d})"));
        tensors.push(format!("{EFFECTIVE_WEIGHT} ({}, {d})", shapes[0].channels));
    }
    format!("{text}. Tensors: {}.", tensors.join("; "))
}
