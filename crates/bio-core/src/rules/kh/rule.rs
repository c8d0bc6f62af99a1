//! The Krotov–Hopfield plasticity and trainer.

use super::model::KhResponse;
use super::{KhConfig, KhNet, KhParams};
use crate::backend::{Backend, Binary, Dim, Reduce, Unary};
use crate::error::CoreError;
use crate::model::Params;
use crate::rules::frozen::{FeatureLayer, FrozenRule, FrozenState, LinearReadout, Schedule, host_mean};
use crate::rules::{Rule, RuleOption};

/// `1` where `d` exceeds the row's `j`-th largest value (`j` counting from 1), i.e. the row's top
/// `j − 1` entries; all ones when `j` exceeds the row length.
fn above_rank<B: Backend>(b: &B, d: &B::Tensor, j: usize) -> B::Tensor {
    let (rows, cols) = b.shape(d);
    if j > cols {
        return b.full(rows, cols, 1.0);
    }
    b.zip(d, &b.row_kth_largest(d, j), Binary::Greater)
}

/// One step of the Krotov–Hopfield plasticity on `w` (`N×D`) from a batch `x` (`B×D`), with
/// rate `rate` (see the module docs for the equations).
pub fn kh_plasticity<B: Backend>(b: &B, w: &mut B::Tensor, x: &B::Tensor, config: &KhConfig, rate: f32) {
    let wp = if config.p == 2.0 {
        w.clone()
    } else {
        b.zip(&b.map(w, Unary::Sign), &b.map(&b.map(w, Unary::Abs), Unary::Powf(config.p - 1.0)), Binary::Mul)
    };
    let drive = b.matmul(x, false, &wp, true);
    let first = above_rank(b, &drive, 2);
    let g = if config.delta > 0.0 {
        // Exactly the k-th ranked unit: in the top k but not in the top k − 1.
        let kth = b.lincomb(1.0, &above_rank(b, &drive, config.k + 1), -1.0, &above_rank(b, &drive, config.k));
        b.lincomb(1.0, &first, -config.delta, &kth)
    } else {
        first
    };
    let (batch, _) = b.shape(x);
    // Σ_b g_bμ·I_bμ per unit (N×1).
    let decay = b.matmul(&b.zip(&g, &drive, Binary::Mul), true, &b.full(batch, 1, 1.0), false);
    let ds = b.lincomb(1.0, &b.matmul(&g, true, x, false), -1.0, &b.zip(w, &decay, Binary::Mul));
    let largest = b.map(&b.reduce(&b.map(&ds, Unary::Abs), Dim::All, Reduce::Max), Unary::Clamp(1e-30, f32::MAX));
    *w = b.lincomb(1.0, w, rate, &b.zip(&ds, &largest, Binary::Div));
}

/// The host form of a [`KhRule`]'s state between batches.
pub type KhState = FrozenState<Schedule>;

/// The `kh` trainer: the schedule and the readout's Adam state. It draws no random numbers.
pub type KhRule<B> = FrozenRule<KhConfig, B>;

impl<B: Backend> FeatureLayer<B> for KhConfig {
    type Model = KhNet<B>;
    type Schedule = Schedule;
    type Trace = KhResponse<B::Tensor>;

    fn init(&self, backend: &B, input_dim: usize, classes: usize, seed: u64) -> KhNet<B> {
        KhNet::init(backend, self.clone(), input_dim, classes, seed)
    }

    fn model_from_params(
        &self,
        backend: &B,
        input_dim: usize,
        classes: usize,
        params: &Params,
    ) -> Result<KhNet<B>, CoreError> {
        KhNet::from_params(backend, self.clone(), input_dim, classes, params)
    }

    /// [`Schedule::at`].
    fn schedule(&self, epoch: usize, epochs: usize) -> Schedule {
        Schedule::at(self.hebbian_rate, self.hidden_epochs, epoch, epochs)
    }

    fn readout_rate(&self) -> f32 {
        self.readout_rate
    }

    fn readout(model: &KhNet<B>) -> &LinearReadout<B> {
        &model.readout
    }

    fn readout_mut(model: &mut KhNet<B>) -> &mut LinearReadout<B> {
        &mut model.readout
    }

    fn trace(&self, model: &KhNet<B>, x: &B::Tensor, _schedule: Schedule) -> KhResponse<B::Tensor> {
        model.response(x)
    }

    /// The normalized code `ĥ`.
    fn features(trace: &KhResponse<B::Tensor>) -> &B::Tensor {
        &trace.code
    }

    /// The units with a positive response.
    fn active_fraction(b: &B, trace: &KhResponse<B::Tensor>) -> f32 {
        host_mean(b, &b.map(&trace.r, Unary::Step))
    }

    /// [`kh_plasticity`] at the schedule's rate.
    fn learn(&self, b: &B, model: &mut KhNet<B>, x: &B::Tensor, _trace: KhResponse<B::Tensor>, schedule: Schedule) {
        if schedule.rate > 0.0 {
            kh_plasticity(b, &mut model.weights, x, self, schedule.rate);
        }
    }
}

/// Peak host copies of the hidden weights while training: `W`, `sign(W)|W|^(p−1)` (or its clone),
/// `GᵀX`, `W ⊙ Σ gI`, `ΔW`, `|ΔW|` and `ΔW/max` (some freed before the next is made).
pub const KH_COPIES_PER_WEIGHT: u64 = 6;

impl<B: Backend> Rule for KhRule<B> {
    const NAME: &'static str = "kh";
    const SUMMARY: &'static str = "Krotov & Hopfield 2019: competing hidden units (unsupervised, p-norm, anti-Hebbian k-th unit), ReLU^n features, Adam readout";
    const FORWARD: &'static str = "r = relu(x @ hidden.0.weight^T); h = r^n (n from the config); code = h / ||h||_2 per row \
        (0 where h is all 0); logits = code @ readout.weight^T + readout.bias.";
    const OPTIONS: &'static [RuleOption] = &[
        crate::rule_option!(KhParams, "kh-p", p, "Lebesgue norm p ≥ 2 of the hidden weights"),
        crate::rule_option!(KhParams, "kh-k", k, "rank k ≥ 2 of the unit pushed away from the input"),
        crate::rule_option!(KhParams, "kh-delta", delta, "anti-Hebbian strength Δ ≥ 0 of the k-th unit"),
        crate::rule_option!(KhParams, "kh-n", n, "power n ≥ 1 of the ReLU^n response"),
        crate::rule_option!(
            KhParams,
            "kh-rate",
            hebbian_rate,
            "initial unsupervised rate ε₀ (largest weight change of a step), annealed linearly to 0"
        ),
        crate::rule_option!(
            KhParams,
            "kh-hidden-epochs",
            hidden_epochs,
            "unsupervised epochs (at most half the run; the rest trains the readout)"
        ),
        crate::rule_option!(KhParams, "kh-readout-rate", readout_rate, "Adam learning rate of the readout"),
    ];
    const DIVERGENCE_HINT: &'static [&'static str] = &["kh-rate", "kh-readout-rate"];
    const DEFAULT_EPOCHS: usize = 20;
    const SCHEDULE_DEPENDS_ON_EPOCHS: bool = true;
    const COPIES_PER_WEIGHT: u64 = KH_COPIES_PER_WEIGHT;
    type Params = KhParams;
    type Config = KhConfig;

    /// `n` (the response power) and `guard` (the floor of the peak and norm divided by).
    fn forward_pass(
        config: &KhConfig,
        _input_dim: usize,
        _classes: usize,
    ) -> Result<Vec<crate::forward::Op>, CoreError> {
        use crate::forward::Op;
        let guard = crate::backend::NORM_GUARD;
        Ok(vec![
            Op::Linear { weight: "hidden.0.weight".into(), bias: None },
            Op::Relu,
            // Dividing by the row's peak first keeps rⁿ from overflowing; the unit-norm code is the same.
            Op::PeakNorm { guard },
            Op::Power { n: config.n },
            Op::UnitNorm { guard },
            Op::Linear { weight: "readout.weight".into(), bias: Some("readout.bias".into()) },
        ])
    }

    fn set_hidden(params: &mut KhParams, hidden: &[usize]) {
        params.hidden = hidden.to_vec();
    }

    fn check(params: KhParams) -> Result<KhConfig, CoreError> {
        params.check()
    }

    fn hidden(config: &KhConfig) -> &[usize] {
        &config.hidden
    }

    /// The rule draws no random numbers: `seed` is unused.
    fn new(config: KhConfig, _seed: u64) -> Self {
        KhRule::new(config)
    }
}
