//! The backprop trainer: its optimizer step and state.

use serde::{Deserialize, Serialize};

use crate::backend::{AdamStep, Backend};
use crate::error::CoreError;
use crate::model::{BpNet, Classifier, Params};
use crate::params::{BP_COPIES_PER_WEIGHT, BpConfig, BpParams, Optimizer};
use crate::rules::{BatchReport, LearningRule, Rule, RuleState, check_loss, count_correct};
use crate::tensor::Matrix;

/// Optimizer moments of one tensor.
#[derive(Clone, Debug)]
struct Moments<T> {
    first: T,
    second: Option<T>,
}

/// The backprop trainer: owns the optimizer state.
#[derive(Clone, Debug)]
pub struct BackpropRule<B: Backend> {
    config: BpConfig,
    moments: Vec<Moments<B::Tensor>>,
    steps: u64,
}

impl<B: Backend> BackpropRule<B> {
    /// A trainer with empty optimizer state.
    pub fn new(config: BpConfig) -> Self {
        Self { config, moments: Vec::new(), steps: 0 }
    }
}

impl<B: Backend> LearningRule<B> for BackpropRule<B> {
    type Model = BpNet<B>;

    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn init_model(&self, backend: &B, input_dim: usize, classes: usize, seed: u64) -> BpNet<B> {
        BpNet::init(backend, self.config.clone(), input_dim, classes, seed)
    }

    fn model_from_params(
        &self,
        backend: &B,
        input_dim: usize,
        classes: usize,
        params: &Params,
    ) -> Result<BpNet<B>, CoreError> {
        BpNet::from_params(backend, self.config.clone(), input_dim, classes, params)
    }

    fn start_epoch(&mut self, _epoch: usize, _epochs: usize) {}

    fn train_batch(&mut self, model: &mut BpNet<B>, x: &B::Tensor, labels: &[usize]) -> Result<BatchReport, CoreError> {
        let b = model.backend().clone();
        let n = labels.len().max(1);
        let g = model.gradients(x, labels, false, 1.0 / n as f32);
        let loss = g.losses.iter().sum::<f32>() / n as f32;
        check_loss(loss, model.classes(), "backprop")?;
        let correct = count_correct(&b.argmax_rows(&g.logits), labels);
        if self.moments.is_empty() {
            let with_second = matches!(self.config.optimizer, Optimizer::Adam);
            for layer in &model.layers {
                for t in [&layer.weights, &layer.bias] {
                    let (r, c) = b.shape(t);
                    self.moments
                        .push(Moments { first: b.full(r, c, 0.0), second: with_second.then(|| b.full(r, c, 0.0)) });
                }
            }
        }
        self.steps += 1;
        let lr = self.config.learning_rate;
        let (beta1, beta2) = (0.9f32, 0.999f32);
        let t = self.steps as i32;
        let adam =
            AdamStep { lr_t: lr * (1.0 - beta2.powi(t)).sqrt() / (1.0 - beta1.powi(t)), beta1, beta2, eps: 1e-8 };
        let mut moments = self.moments.iter_mut();
        for (layer, (dw, db)) in model.layers.iter_mut().zip(&g.layers) {
            for (param, grad) in [(&mut layer.weights, dw), (&mut layer.bias, db)] {
                let m = moments.next().expect("one moment per tensor");
                match (self.config.optimizer, m.second.as_mut()) {
                    (Optimizer::Adam, Some(v)) => b.adam_step(param, grad, &mut m.first, v, adam),
                    (Optimizer::Momentum { momentum }, _) => b.momentum_step(param, grad, &mut m.first, lr, momentum),
                    (Optimizer::Adam, None) => unreachable!("Adam moments are created with a second moment"),
                }
            }
        }
        Ok(BatchReport { loss, correct, samples: labels.len(), active_fraction: g.active_fraction })
    }

    fn save_state(&self, model: &BpNet<B>) -> RuleState {
        let b = model.backend();
        let moments =
            self.moments.iter().map(|m| (b.download(&m.first), m.second.as_ref().map(|v| b.download(v)))).collect();
        RuleState::encode(Self::NAME, &BpState { steps: self.steps, moments })
    }

    fn restore_state(&mut self, model: &BpNet<B>, state: RuleState) -> Result<(), CoreError> {
        let BpState { steps, moments } = state.decode(Self::NAME)?;
        let b = model.backend();
        if !moments.is_empty() {
            let shapes: Vec<(usize, usize)> =
                model.layers.iter().flat_map(|l| [b.shape(&l.weights), b.shape(&l.bias)]).collect();
            if moments.len() != shapes.len() {
                return Err(CoreError::Incompatible(format!(
                    "optimizer state holds {} tensors, the model has {}",
                    moments.len(),
                    shapes.len()
                )));
            }
            let with_second = matches!(self.config.optimizer, Optimizer::Adam);
            for (i, ((first, second), shape)) in moments.iter().zip(&shapes).enumerate() {
                let bad = |m: &Matrix| m.shape() != *shape || !m.all_finite();
                if bad(first) || second.as_ref().is_some_and(bad) || second.is_some() != with_second {
                    return Err(CoreError::Incompatible(format!(
                        "optimizer moment {i} does not fit a {}×{} tensor of this optimizer",
                        shape.0, shape.1
                    )));
                }
            }
        }
        self.moments = moments
            .iter()
            .map(|(first, second)| Moments { first: b.upload(first), second: second.as_ref().map(|v| b.upload(v)) })
            .collect();
        self.steps = steps;
        Ok(())
    }
}

/// What [`BackpropRule`] carries from one batch to the next.
#[derive(Serialize, Deserialize)]
struct BpState {
    /// Optimizer steps taken.
    steps: u64,
    /// First and (Adam) second moments of each tensor, weights then bias of each layer; empty
    /// before the first step.
    moments: Vec<(Matrix, Option<Matrix>)>,
}

impl<B: Backend> Rule for BackpropRule<B> {
    const NAME: &'static str = "bp";
    const SUMMARY: &'static str = "backpropagation with Adam or SGD-momentum: the baseline";
    const FORWARD: &'static str = "x = relu(x @ layer.i.weight^T + layer.i.bias) for every layer but the last; logits = x @ last.weight^T + last.bias.";
    const OPTIONS: &'static [crate::rules::RuleOption] = crate::params::BP_OPTIONS;
    const DIVERGENCE_HINT: &'static [&'static str] = &["lr"];
    const SCHEDULE_DEPENDS_ON_EPOCHS: bool = false;
    const COPIES_PER_WEIGHT: u64 = BP_COPIES_PER_WEIGHT;
    type Params = BpParams;
    type Config = BpConfig;

    fn forward_text(config: &BpConfig, input_dim: usize, classes: usize) -> String {
        crate::rules::describe::bp_forward_text(config, input_dim, classes)
    }

    fn set_hidden(params: &mut BpParams, hidden: &[usize]) {
        params.hidden = hidden.to_vec();
    }

    fn check(params: BpParams) -> Result<BpConfig, CoreError> {
        params.check()
    }

    fn hidden(config: &BpConfig) -> &[usize] {
        &config.hidden
    }

    fn new(config: BpConfig, _seed: u64) -> Self {
        BackpropRule::new(config)
    }
}
