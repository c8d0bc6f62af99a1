//! The settings of the `kh` rule.

use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::rules::checks::{check_at_least, check_one_hidden, check_positive};

/// Unchecked hyper-parameters of the `kh` rule. Call [`KhParams::check`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KhParams {
    /// Hidden layer width; exactly one hidden layer.
    pub hidden: Vec<usize>,
    /// Lebesgue norm `p ≥ 2` of the weights (the drive weights each synapse by `|w|^(p−1)`).
    pub p: f32,
    /// Rank `k ≥ 2` of the unit pushed away from the input (anti-Hebbian).
    pub k: usize,
    /// Strength `Δ ≥ 0` of the anti-Hebbian push.
    pub delta: f32,
    /// Power `n ≥ 1` of the rectified-polynomial response `ReLU(·)ⁿ`.
    pub n: f32,
    /// Initial rate `ε₀` of the unsupervised phase: the largest weight change of the first step.
    /// The reference notebook uses 0.02 over 200 epochs of 600 batches (`Σε ≈ 1200` max-steps);
    /// 0.4 gives the same total over 10 epochs of full Fashion-MNIST in batches of 100.
    pub hebbian_rate: f32,
    /// Epochs of the unsupervised phase (at most half the run, see [`phase_split`](crate::rules::phase_split)).
    pub hidden_epochs: usize,
    /// Adam learning rate of the readout.
    pub readout_rate: f32,
}

impl Default for KhParams {
    fn default() -> Self {
        Self {
            hidden: vec![2000],
            p: 2.0,
            k: 2,
            delta: 0.4,
            n: 4.5,
            hebbian_rate: 0.4,
            hidden_epochs: 10,
            readout_rate: 1e-2,
        }
    }
}

/// Validated hyper-parameters of the `kh` rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KhConfig(KhParams);

impl std::ops::Deref for KhConfig {
    type Target = KhParams;
    fn deref(&self) -> &KhParams {
        &self.0
    }
}

impl KhParams {
    /// Validates every field, naming the first bad one by its CLI flag.
    pub fn check(self) -> Result<KhConfig, CoreError> {
        if self.k < 2 {
            return Err(CoreError::invalid("kh-k", format!("must be ≥ 2, got {}", self.k)));
        }
        check_one_hidden("kh", &self.hidden, self.k)?;
        check_at_least("kh-p", self.p, 2.0)?;
        check_at_least("kh-delta", self.delta, 0.0)?;
        check_at_least("kh-n", self.n, 1.0)?;
        check_at_least("kh-rate", self.hebbian_rate, 0.0)?;
        check_positive("kh-readout-rate", self.readout_rate)?;
        Ok(KhConfig(self))
    }
}
