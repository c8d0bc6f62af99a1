//! The settings of the `softhebb` rule.

use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::rules::checks::{check_at_least, check_one_hidden, check_positive};

/// Unchecked hyper-parameters of the `softhebb` rule. Call [`SoftHebbParams::check`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SoftHebbParams {
    /// Hidden layer width; exactly one hidden layer.
    pub hidden: Vec<usize>,
    /// Inverse temperature `β > 0` of the soft winner-take-all.
    pub beta: f32,
    /// Initial rate `η₀` of the unsupervised phase: the largest weight change of the first step.
    pub hebbian_rate: f32,
    /// Epochs of the unsupervised phase (at most half the run, see [`phase_split`](crate::rules::phase_split)).
    pub hidden_epochs: usize,
    /// Adam learning rate of the readout.
    pub readout_rate: f32,
}

impl Default for SoftHebbParams {
    fn default() -> Self {
        Self { hidden: vec![2000], beta: 20.0, hebbian_rate: 0.4, hidden_epochs: 10, readout_rate: 1e-2 }
    }
}

/// Validated hyper-parameters of the `softhebb` rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SoftHebbConfig(SoftHebbParams);

impl std::ops::Deref for SoftHebbConfig {
    type Target = SoftHebbParams;
    fn deref(&self) -> &SoftHebbParams {
        &self.0
    }
}

impl SoftHebbParams {
    /// Validates every field, naming the first bad one by its CLI flag.
    pub fn check(self) -> Result<SoftHebbConfig, CoreError> {
        check_one_hidden("softhebb", &self.hidden, 2)?;
        check_positive("softhebb-beta", self.beta)?;
        check_at_least("softhebb-rate", self.hebbian_rate, 0.0)?;
        check_positive("softhebb-readout-rate", self.readout_rate)?;
        Ok(SoftHebbConfig(self))
    }
}
