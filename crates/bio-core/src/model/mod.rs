//! Models: the `bio` network ([`BioNet`]), the backprop baseline ([`BpNet`]), the [`Classifier`]
//! trait every model implements, [`SavedModel`], the backend-free form that is written to disk, and
//! [`AnyModel`], a model of any registered rule on a backend.

mod bio;
mod bp;

pub use bio::{
    BioLayer, BioNet, BioTrace, CompetitionBackward, INPUT_EPS, LayerTrace, Readout, SurrogateBio,
    inhibition_threshold, normalize_input, target_total,
};
pub use bp::{BpGradients, BpNet, DenseLayer};

use std::any::Any;

use serde::{Deserialize, Serialize};

use crate::backend::{Backend, Binary, Dim, Reduce};
use crate::error::CoreError;
use crate::rules::{self, LearningRule, Rule, RuleVisitor};
use crate::tensor::Matrix;

/// Named host tensors: every weight, bias, mask and state vector of a model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// `(name, tensor)` pairs in a stable order, e.g. `hidden.0.weight`.
    pub tensors: Vec<(String, Matrix)>,
}

impl Params {
    /// Adds a tensor under `name`.
    pub fn push(&mut self, name: impl Into<String>, m: Matrix) {
        self.tensors.push((name.into(), m));
    }

    /// The tensor called `name`, with its shape checked.
    pub fn get(&self, name: &str, shape: (usize, usize)) -> Result<&Matrix, CoreError> {
        let m = self
            .tensors
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, m)| m)
            .ok_or_else(|| CoreError::Incompatible(format!("tensor `{name}` is missing")))?;
        if m.shape() != shape {
            return Err(CoreError::Incompatible(format!(
                "tensor `{name}` is {}×{}, expected {}×{}",
                m.rows(),
                m.cols(),
                shape.0,
                shape.1
            )));
        }
        if !m.all_finite() {
            return Err(CoreError::Incompatible(format!("tensor `{name}` holds NaN or infinite values")));
        }
        Ok(m)
    }

    /// Total number of entries.
    pub fn count(&self) -> usize {
        self.tensors.iter().map(|(_, m)| m.len()).sum()
    }
}

/// What every trained model offers to evaluation and attacks, whatever rule trained it.
pub trait Classifier<B: Backend> {
    /// The backend holding the model.
    fn backend(&self) -> &B;
    /// Input dimension (pixels).
    fn input_dim(&self) -> usize;
    /// Number of classes.
    fn classes(&self) -> usize;
    /// Class scores (logits) for a batch `x` (`batch×input_dim`, pixels in `[0, 1]`).
    fn logits(&self, x: &B::Tensor) -> B::Tensor;
    /// The activity of each hidden layer for a batch, first layer first.
    fn hidden_activity(&self, x: &B::Tensor) -> Vec<B::Tensor>;
    /// Each hidden layer's drive before its competition or nonlinearity (a graded, dense code of
    /// the same units, e.g. for transfer to novel classes), first layer first; empty when the model
    /// does not say.
    fn hidden_drive(&self, _x: &B::Tensor) -> Vec<B::Tensor> {
        Vec::new()
    }
    /// A vector–Jacobian product through the whole model: runs the forward pass on `x`, asks
    /// `dlogits(z)` for the gradient `g = ∂L/∂z` of some loss with respect to the logits `z`, and
    /// returns `(z, (∂z/∂x)ᵀ·g)` (row `i` is sample `i`'s own input gradient) with one forward pass.
    /// Exact, hand-derived backward pass unless the model says otherwise (see [`SurrogateBio`]).
    fn logits_and_input_vjp(
        &self,
        x: &B::Tensor,
        dlogits: &mut dyn FnMut(&B::Tensor) -> B::Tensor,
    ) -> (B::Tensor, B::Tensor);
    /// Every parameter as named host tensors.
    fn to_params(&self) -> Params;

    /// The same model with a smooth stand-in for a non-differentiable part in the backward pass
    /// (exact forward pass), for surrogate-gradient (BPDA) attacks; `None` when the exact gradient
    /// needs no stand-in. See [`SurrogateBio`].
    fn surrogate(&self, _temperature: f32) -> Option<Box<dyn Classifier<B> + '_>> {
        None
    }

    /// Per-sample cross-entropy losses and the gradient of their sum with respect to `x`
    /// (row `i` is sample `i`'s own input gradient), through [`Classifier::logits_and_input_vjp`].
    fn loss_and_input_gradient(&self, x: &B::Tensor, labels: &[usize]) -> (Vec<f32>, B::Tensor) {
        let mut losses = Vec::new();
        let (_, grad) = self.logits_and_input_vjp(x, &mut |z| {
            let (_, l, dz) = softmax_cross_entropy(self.backend(), z, labels);
            losses = l;
            dz
        });
        (losses, grad)
    }

    /// Predicted class of each row of `x`.
    fn predict(&self, x: &B::Tensor) -> Vec<usize> {
        self.backend().argmax_rows(&self.logits(x))
    }
}

/// A model in backend-free form, whatever rule trained it: what a checkpoint holds. A tagged
/// envelope: the rule's name, its validated configuration as JSON, and the named parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedModel {
    /// The registered rule that trained it (see [`crate::rules::Rule::NAME`]).
    pub rule: String,
    /// The rule's configuration ([`crate::rules::Rule::Config`]) as JSON.
    pub config: String,
    /// Hidden layer widths.
    pub hidden: Vec<usize>,
    /// Input dimension.
    pub input_dim: usize,
    /// Number of classes.
    pub classes: usize,
    /// Its parameters.
    pub params: Params,
}

impl SavedModel {
    /// The backend-free form of a model of rule `R` with configuration `config`.
    pub fn of<R: Rule, B: Backend>(config: &R::Config, model: &dyn Classifier<B>) -> SavedModel {
        SavedModel {
            rule: R::NAME.to_string(),
            config: serde_json::to_string(config).expect("a config is plain data"),
            hidden: R::hidden(config).to_vec(),
            input_dim: model.input_dim(),
            classes: model.classes(),
            params: model.to_params(),
        }
    }

    /// The registered name of the rule that trained it.
    pub fn rule(&self) -> &str {
        &self.rule
    }

    /// Hidden layer widths.
    pub fn hidden(&self) -> &[usize] {
        &self.hidden
    }

    /// Parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The configuration, as rule `R`'s type; [`CoreError::Incompatible`] if the model is another
    /// rule's or the configuration does not parse.
    pub fn config_of<R: Rule>(&self) -> Result<R::Config, CoreError> {
        if self.rule != R::NAME {
            return Err(CoreError::Incompatible(format!(
                "the model was trained by `{}`, not `{}`",
                self.rule,
                R::NAME
            )));
        }
        serde_json::from_str(&self.config)
            .map_err(|e| CoreError::Incompatible(format!("the `{}` configuration does not parse: {e}", self.rule)))
    }

    /// The configuration as a JSON object (for front ends that show or export it).
    pub fn config_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.config).unwrap_or(serde_json::Value::Null)
    }

    /// The parameters this model started from when its rule initialised it with `seed` (the run's
    /// seed), recomputed (initialisation is deterministic), e.g. to picture what training changed.
    pub fn initial_params(&self, seed: u64) -> Result<Params, CoreError> {
        struct Initial<'a>(&'a SavedModel, u64);
        impl RuleVisitor<crate::ReferenceBackend> for Initial<'_> {
            type Output = Result<Params, CoreError>;
            fn visit<R: Rule + LearningRule<crate::ReferenceBackend>>(self) -> Self::Output {
                let Initial(s, seed) = self;
                let rule = R::new(s.config_of::<R>()?, seed);
                Ok(rule.init_model(&crate::ReferenceBackend, s.input_dim, s.classes, seed).to_params())
            }
        }
        rules::dispatch(&self.rule, Initial(self, seed))?
    }

    /// Uploads the model to a backend, whatever registered rule trained it.
    pub fn load<B: Backend>(&self, backend: &B) -> Result<AnyModel<B>, CoreError> {
        struct Load<'a, B> {
            saved: &'a SavedModel,
            backend: &'a B,
        }
        impl<B: Backend> RuleVisitor<B> for Load<'_, B> {
            type Output = Result<AnyModel<B>, CoreError>;
            fn visit<R: Rule + LearningRule<B>>(self) -> Self::Output {
                let config = self.saved.config_of::<R>()?;
                let s = self.saved;
                let model = R::new(config, 0).model_from_params(self.backend, s.input_dim, s.classes, &s.params)?;
                Ok(AnyModel::new(s.rule.clone(), s.config.clone(), s.hidden.clone(), model))
            }
        }
        rules::dispatch(&self.rule, Load { saved: self, backend })?
    }
}

/// A model of any rule, on a backend; evaluation code uses it without caring which rule trained it.
pub struct AnyModel<B: Backend> {
    rule: String,
    config: String,
    hidden: Vec<usize>,
    model: Box<dyn DynModel<B>>,
}

/// What [`AnyModel`] needs of the model inside: a [`Classifier`] that can be cloned and downcast.
trait DynModel<B: Backend>: Classifier<B> {
    fn clone_box(&self) -> Box<dyn DynModel<B>>;
    fn as_any(&self) -> &dyn Any;
}

impl<B: Backend, M: Classifier<B> + Clone + 'static> DynModel<B> for M {
    fn clone_box(&self) -> Box<dyn DynModel<B>> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl<B: Backend> Clone for AnyModel<B> {
    fn clone(&self) -> Self {
        AnyModel {
            rule: self.rule.clone(),
            config: self.config.clone(),
            hidden: self.hidden.clone(),
            model: self.model.clone_box(),
        }
    }
}

impl<B: Backend> std::fmt::Debug for AnyModel<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnyModel").field("rule", &self.rule).field("hidden", &self.hidden).finish_non_exhaustive()
    }
}

impl<B: Backend> AnyModel<B> {
    /// Wraps `model`, trained by rule `rule` with configuration `config` (JSON).
    fn new<M: Classifier<B> + Clone + 'static>(rule: String, config: String, hidden: Vec<usize>, model: M) -> Self {
        AnyModel { rule, config, hidden, model: Box::new(model) }
    }

    /// The model of rule `R` with configuration `config`.
    pub fn of<R: Rule + LearningRule<B>>(config: &R::Config, model: R::Model) -> Self {
        let json = serde_json::to_string(config).expect("a config is plain data");
        AnyModel::new(R::NAME.to_string(), json, R::hidden(config).to_vec(), model)
    }

    /// The registered name of the rule that trained it.
    pub fn rule(&self) -> &str {
        &self.rule
    }

    /// The model inside, if it is an `M` (e.g. `BioNet<B>`).
    pub fn downcast_ref<M: 'static>(&self) -> Option<&M> {
        self.model.as_any().downcast_ref()
    }

    /// Back to backend-free form.
    pub fn to_saved(&self) -> SavedModel {
        SavedModel {
            rule: self.rule.clone(),
            config: self.config.clone(),
            hidden: self.hidden.clone(),
            input_dim: self.model.input_dim(),
            classes: self.model.classes(),
            params: self.model.to_params(),
        }
    }
}

impl<B: Backend> Classifier<B> for AnyModel<B> {
    fn backend(&self) -> &B {
        self.model.backend()
    }
    fn input_dim(&self) -> usize {
        self.model.input_dim()
    }
    fn classes(&self) -> usize {
        self.model.classes()
    }
    fn logits(&self, x: &B::Tensor) -> B::Tensor {
        self.model.logits(x)
    }
    fn hidden_activity(&self, x: &B::Tensor) -> Vec<B::Tensor> {
        self.model.hidden_activity(x)
    }
    fn hidden_drive(&self, x: &B::Tensor) -> Vec<B::Tensor> {
        self.model.hidden_drive(x)
    }
    fn logits_and_input_vjp(
        &self,
        x: &B::Tensor,
        dlogits: &mut dyn FnMut(&B::Tensor) -> B::Tensor,
    ) -> (B::Tensor, B::Tensor) {
        self.model.logits_and_input_vjp(x, dlogits)
    }
    fn to_params(&self) -> Params {
        self.model.to_params()
    }
    fn surrogate(&self, temperature: f32) -> Option<Box<dyn Classifier<B> + '_>> {
        self.model.surrogate(temperature)
    }
}

/// One-hot targets as a `labels.len()×classes` tensor.
pub fn one_hot<B: Backend>(b: &B, labels: &[usize], classes: usize) -> B::Tensor {
    let m = Matrix::from_fn(labels.len(), classes, |i, j| if labels[i] == j { 1.0 } else { 0.0 });
    b.upload(&m)
}

/// Softmax probabilities, per-sample cross-entropy losses and `∂(Σ loss)/∂logits = p − t`.
pub fn softmax_cross_entropy<B: Backend>(
    b: &B,
    logits: &B::Tensor,
    labels: &[usize],
) -> (B::Tensor, Vec<f32>, B::Tensor) {
    let (_, classes) = b.shape(logits);
    let probs = b.softmax_rows(logits);
    let targets = one_hot(b, labels, classes);
    // loss_i = −ln p_{i,y_i}, read from the probabilities of the true class (guarded against 0 on the
    // host, where NaN stays NaN: a clamp would turn a diverged model's NaN into a finite loss).
    let picked = b.download(&b.reduce(&b.zip(&probs, &targets, Binary::Mul), Dim::PerRow, Reduce::Sum));
    let losses = picked.as_slice().iter().map(|&p| if p.is_nan() { p } else { -p.max(1e-30).ln() }).collect();
    let grad = b.lincomb(1.0, &probs, -1.0, &targets);
    (probs, losses, grad)
}

/// Adds a `1×n` bias row to every row of `t`.
pub(crate) fn add_bias<B: Backend>(b: &B, t: &B::Tensor, bias: &B::Tensor) -> B::Tensor {
    b.zip(t, bias, Binary::Add)
}
