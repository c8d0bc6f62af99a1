//! Hyper-parameters of the backprop baseline and their settings as the registry declares them
//! ([`BP_OPTIONS`]), validated by [`BpParams::check`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::CoreError;
use crate::rules::adversarial::{self, AdversarialTraining};
use crate::rules::checks::check_hidden;
use crate::rules::{OptionKind, RuleOption, choice_name, number_setting, params_mut, params_ref};

/// The optimizer of the backprop baseline.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Optimizer {
    /// Adam with β₁ = 0.9, β₂ = 0.999, ε = 1e-8.
    Adam,
    /// SGD with momentum.
    Momentum {
        /// Momentum coefficient μ.
        momentum: f32,
    },
}

/// Learning rate of the backprop baseline under each optimizer when none is given.
fn default_learning_rate(optimizer: Optimizer) -> f32 {
    match optimizer {
        Optimizer::Adam => 1e-3,
        Optimizer::Momentum { .. } => 0.05,
    }
}

/// Momentum coefficient μ of `--optimizer momentum` when none is given.
pub const DEFAULT_MOMENTUM: f32 = 0.9;

/// The settings of the `bp` baseline, in the order they are applied (the optimizer first: it sets
/// the default learning rate).
pub const BP_OPTIONS: &[RuleOption] = &[
    RuleOption {
        flag: "optimizer",
        field: "optimizer",
        help: "Optimizer: adam, or momentum (SGD with momentum)",
        kind: OptionKind::Choice(&["adam", "momentum"]),
        get: |p| match params_ref::<BpParams>(p).optimizer {
            Optimizer::Adam => "adam".into(),
            Optimizer::Momentum { .. } => "momentum".into(),
        },
        set: |p, v| {
            let p = params_mut::<BpParams>(p);
            p.optimizer = match choice_name(v)?.as_str() {
                "adam" => Optimizer::Adam,
                "momentum" => Optimizer::Momentum { momentum: DEFAULT_MOMENTUM },
                _ => return Err("expected one of adam, momentum".into()),
            };
            p.learning_rate = default_learning_rate(p.optimizer);
            Ok(())
        },
    },
    crate::rule_option!(BpParams, "lr", learning_rate, "Learning rate (default 1e-3 for Adam, 0.05 for momentum)"),
    RuleOption {
        flag: "momentum",
        field: "optimizer",
        help: "Momentum coefficient, with --optimizer momentum (default 0.9)",
        kind: OptionKind::Number,
        get: |p| match params_ref::<BpParams>(p).optimizer {
            Optimizer::Momentum { momentum } => number_setting(momentum),
            Optimizer::Adam => Value::Null,
        },
        set: |p, v| match &mut params_mut::<BpParams>(p).optimizer {
            Optimizer::Momentum { momentum } => {
                *momentum = crate::rules::OptionValue::from_setting(v)?;
                Ok(())
            }
            Optimizer::Adam => Err("it applies with `--optimizer momentum` only".into()),
        },
    },
    crate::rule_option!(BpParams, "adversarial-eps", adversarial_eps, adversarial::EPS_HELP),
    crate::rule_option!(BpParams, "adversarial-steps", adversarial_steps, adversarial::STEPS_HELP),
];

/// Unchecked hyper-parameters of the `bp` baseline. Call [`BpParams::check`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BpParams {
    /// Hidden layer widths (ReLU).
    pub hidden: Vec<usize>,
    /// Optimizer.
    pub optimizer: Optimizer,
    /// Learning rate.
    pub learning_rate: f32,
    /// L∞ radius of PGD adversarial training; 0 (and files written before the setting) trains on
    /// clean inputs.
    #[serde(default)]
    pub adversarial_eps: f32,
    /// PGD steps per batch (step size `2.5·ε/steps`, random start; see [`AdversarialTraining`]).
    #[serde(default = "adversarial::default_steps")]
    pub adversarial_steps: usize,
}

impl Default for BpParams {
    fn default() -> Self {
        Self {
            hidden: vec![2000],
            optimizer: Optimizer::Adam,
            learning_rate: default_learning_rate(Optimizer::Adam),
            adversarial_eps: 0.0,
            adversarial_steps: adversarial::DEFAULT_STEPS,
        }
    }
}

/// Validated hyper-parameters of the `bp` baseline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BpConfig(BpParams);

impl std::ops::Deref for BpConfig {
    type Target = BpParams;
    fn deref(&self) -> &BpParams {
        &self.0
    }
}

impl BpParams {
    /// Validates every field, naming the first bad one.
    pub fn check(self) -> Result<BpConfig, CoreError> {
        check_hidden(&self.hidden)?;
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(CoreError::invalid("lr", format!("must be > 0, got {}", self.learning_rate)));
        }
        if let Optimizer::Momentum { momentum } = self.optimizer
            && !(0.0..1.0).contains(&momentum)
        {
            return Err(CoreError::invalid("momentum", format!("must be in [0, 1), got {momentum}")));
        }
        self.adversarial().check("adversarial-eps", "adversarial-steps")?;
        Ok(BpConfig(self))
    }

    /// The PGD adversarial training these params ask for.
    pub fn adversarial(&self) -> AdversarialTraining {
        AdversarialTraining { eps: self.adversarial_eps, steps: self.adversarial_steps }
    }
}

/// Copies of each weight matrix backprop holds at its peak: weights, gradient, two Adam moments and
/// two temporaries of the optimizer step.
pub const BP_COPIES_PER_WEIGHT: u64 = 6;
