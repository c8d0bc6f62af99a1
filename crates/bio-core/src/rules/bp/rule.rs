//! The backprop trainer: its optimizer step and state, optionally on PGD adversarial examples.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::model::BpNet;
use super::params::{BP_COPIES_PER_WEIGHT, BpConfig, BpParams, Optimizer};
use crate::backend::Backend;
use crate::error::CoreError;
use crate::model::{Classifier, Params};
use crate::rules::optim::{Adam, AdamState};
use crate::rules::{BatchReport, LearningRule, RngState, Rule, RuleState, SavedModel, check_loss, count_correct};
use crate::tensor::Matrix;

/// The optimizer's state: Adam's, or the velocity of each tensor (SGD with momentum).
#[derive(Clone, Debug)]
enum Stepper<B: Backend> {
    Adam(Adam<B>),
    Momentum {
        /// One per tensor, weights then bias of each layer; empty before the first step.
        velocity: Vec<B::Tensor>,
        /// Steps taken.
        steps: u64,
    },
}

/// The backprop trainer: owns the optimizer state and the random stream of the PGD starts.
#[derive(Clone, Debug)]
pub struct BackpropRule<B: Backend> {
    config: BpConfig,
    stepper: Stepper<B>,
    /// Draws the random starts of adversarial training only (never used at `ε = 0`).
    rng: ChaCha8Rng,
}

impl<B: Backend> BackpropRule<B> {
    /// A trainer with empty optimizer state (and, for adversarial training, the random starts of
    /// seed 0; [`BackpropRule::with_seed`] picks another).
    pub fn new(config: BpConfig) -> Self {
        Self::with_seed(config, 0)
    }

    /// A trainer with empty optimizer state whose adversarial random starts follow `seed`.
    pub fn with_seed(config: BpConfig, seed: u64) -> Self {
        let stepper = match config.optimizer {
            Optimizer::Adam => Stepper::Adam(Adam::default()),
            Optimizer::Momentum { .. } => Stepper::Momentum { velocity: Vec::new(), steps: 0 },
        };
        Self { config, stepper, rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_adf0) }
    }
}

/// The weights and bias of every layer, in order.
fn shapes<B: Backend>(model: &BpNet<B>) -> Vec<(usize, usize)> {
    let b = model.backend();
    model.layers.iter().flat_map(|l| [b.shape(&l.weights), b.shape(&l.bias)]).collect()
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

    /// One optimizer step on the mean cross-entropy of the batch, or with adversarial training
    /// (Madry et al.) of its PGD examples only; the report is of the clean batch, before the update.
    fn train_batch(&mut self, model: &mut BpNet<B>, x: &B::Tensor, labels: &[usize]) -> Result<BatchReport, CoreError> {
        let b = model.backend().clone();
        let n = labels.len().max(1);
        let g = model.gradients(x, labels, false, 1.0 / n as f32);
        let loss = g.losses.iter().sum::<f32>() / n as f32;
        check_loss(loss, model.classes(), "backprop")?;
        let correct = count_correct(&b.argmax_rows(&g.logits), labels);
        let active_fraction = g.active_fraction;
        let g = match self.config.adversarial().examples(model, x, labels, &mut self.rng) {
            Some(adv) => {
                let g = model.gradients(&adv, labels, false, 1.0 / n as f32);
                check_loss(g.losses.iter().sum::<f32>() / n as f32, model.classes(), "backprop adversarial")?;
                g
            }
            None => g,
        };
        let grads: Vec<B::Tensor> = g.layers.into_iter().flat_map(|(dw, db)| [dw, db]).collect();
        let shapes = shapes(model);
        let mut params: Vec<&mut B::Tensor> =
            model.layers.iter_mut().flat_map(|l| [&mut l.weights, &mut l.bias]).collect();
        let lr = self.config.learning_rate;
        match (&mut self.stepper, self.config.optimizer) {
            (Stepper::Adam(adam), _) => adam.step(&b, &mut params, &grads, lr),
            (Stepper::Momentum { velocity, steps }, Optimizer::Momentum { momentum }) => {
                if velocity.is_empty() {
                    *velocity = shapes.into_iter().map(|(r, c)| b.full(r, c, 0.0)).collect();
                }
                *steps += 1;
                for ((p, grad), v) in params.iter_mut().zip(&grads).zip(velocity.iter_mut()) {
                    b.momentum_step(p, grad, v, lr, momentum);
                }
            }
            (Stepper::Momentum { .. }, Optimizer::Adam) => unreachable!("the stepper follows the configuration"),
        }
        Ok(BatchReport { loss, correct, samples: labels.len(), active_fraction })
    }

    fn save_state(&self, model: &BpNet<B>) -> RuleState {
        let b = model.backend();
        let (steps, moments) = match &self.stepper {
            Stepper::Adam(adam) => {
                let AdamState { steps, moments } = adam.save(b);
                let mut moments = moments.into_iter();
                (steps, std::iter::from_fn(|| Some((moments.next()?, moments.next()))).collect())
            }
            Stepper::Momentum { velocity, steps } => (*steps, velocity.iter().map(|v| (b.download(v), None)).collect()),
        };
        let optimizer = BpState { steps, moments };
        if self.config.adversarial().is_on() {
            RuleState::encode(Self::NAME, &AdversarialBpState { optimizer, rng: RngState::capture(&self.rng) })
        } else {
            RuleState::encode(Self::NAME, &optimizer)
        }
    }

    fn restore_state(&mut self, model: &BpNet<B>, state: RuleState) -> Result<(), CoreError> {
        let (BpState { steps, moments }, rng) = if self.config.adversarial().is_on() {
            let AdversarialBpState { optimizer, rng } = state.decode(Self::NAME)?;
            (optimizer, Some(rng))
        } else {
            (state.decode(Self::NAME)?, None)
        };
        let b = model.backend();
        let shapes = shapes(model);
        let of_adam = moments.iter().all(|(_, second)| second.is_some());
        let restored = match &mut self.stepper {
            Stepper::Adam(adam) if of_adam => {
                let moments = moments.into_iter().flat_map(|(m, v)| [Some(m), v]).flatten().collect();
                adam.restore(b, &shapes, AdamState { steps, moments }, "backprop")
            }
            Stepper::Momentum { velocity, steps: taken } if moments.iter().all(|(_, second)| second.is_none()) => {
                if !moments.is_empty() && moments.len() != shapes.len() {
                    return Err(CoreError::Incompatible(format!(
                        "the backprop optimizer state holds {} tensors, the model has {}",
                        moments.len(),
                        shapes.len()
                    )));
                }
                for (i, ((m, _), shape)) in moments.iter().zip(&shapes).enumerate() {
                    if m.shape() != *shape || !m.all_finite() {
                        return Err(CoreError::Incompatible(format!(
                            "backprop optimizer moment {i} does not fit a finite {}×{} tensor",
                            shape.0, shape.1
                        )));
                    }
                }
                *velocity = moments.iter().map(|(m, _)| b.upload(m)).collect();
                *taken = steps;
                Ok(())
            }
            _ => Err(CoreError::Incompatible("the backprop optimizer state is of the other optimizer".into())),
        };
        if let (Ok(()), Some(rng)) = (&restored, rng) {
            self.rng = rng.restore();
        }
        restored
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

/// What [`BackpropRule`] carries with adversarial training: the optimizer's state, then the random
/// stream of the PGD starts. Clean training saves the [`BpState`] alone, so its checkpoints keep
/// the bytes they had before adversarial training existed.
#[derive(Serialize, Deserialize)]
struct AdversarialBpState {
    /// The optimizer's state.
    optimizer: BpState,
    /// The random stream of the PGD starts.
    rng: RngState,
}

impl<B: Backend> BpNet<B> {
    /// Backend-free form.
    pub fn to_saved(&self) -> SavedModel {
        SavedModel::of::<BackpropRule<B>, B>(&self.config, self)
    }
}

impl<B: Backend> Rule for BackpropRule<B> {
    const NAME: &'static str = "bp";
    const SUMMARY: &'static str =
        "backpropagation with Adam or SGD-momentum: the baseline, optionally with PGD adversarial training";
    const FORWARD: &'static str = "x = relu(x @ layer.i.weight^T + layer.i.bias) for every layer but the last; logits = x @ last.weight^T + last.bias.";
    const OPTIONS: &'static [crate::rules::RuleOption] = super::params::BP_OPTIONS;
    const DIVERGENCE_HINT: &'static [&'static str] = &["lr"];
    const SCHEDULE_DEPENDS_ON_EPOCHS: bool = false;
    const COPIES_PER_WEIGHT: u64 = BP_COPIES_PER_WEIGHT;
    type Params = BpParams;
    type Config = BpConfig;

    fn forward_text(config: &BpConfig, input_dim: usize, classes: usize) -> String {
        crate::rules::describe::bp_forward_text(config, input_dim, classes)
    }

    fn forward_pass(
        config: &BpConfig,
        _input_dim: usize,
        _classes: usize,
    ) -> Result<Vec<crate::forward::Op>, CoreError> {
        use crate::forward::Op;
        let layers = config.hidden.len() + 1;
        let mut ops = Vec::new();
        for i in 0..layers {
            ops.push(Op::Linear { weight: format!("layer.{i}.weight"), bias: Some(format!("layer.{i}.bias")) });
            if i + 1 < layers {
                ops.push(Op::Relu);
            }
        }
        Ok(ops)
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

    fn new(config: BpConfig, seed: u64) -> Self {
        BackpropRule::with_seed(config, seed)
    }
}
