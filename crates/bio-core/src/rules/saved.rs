//! What a checkpoint holds, whatever rule trained it ([`SavedModel`]), and a model of any
//! registered rule on a backend ([`AnyModel`]). Loading a saved model is a dispatch on its rule's
//! name, so [`SavedModel::load`] and [`SavedModel::initial_params`] are in `registry.rs`.

use std::any::Any;

use serde::{Deserialize, Serialize};

use super::{LearningRule, Rule};
use crate::backend::Backend;
use crate::error::CoreError;
use crate::model::{Classifier, Params};

/// A model in backend-free form, whatever rule trained it: what a checkpoint holds. A tagged
/// envelope: the rule's name, its validated configuration as JSON, and the named parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedModel {
    /// The registered rule that trained it (see [`crate::rules::Rule::NAME`]).
    pub rule: String,
    /// The rule's configuration ([`crate::rules::Rule::Config`]) as JSON.
    pub config: String,
    /// Hidden layer widths: the columns of each hidden layer's activity ([`Rule::widths`]; a
    /// checkpoint written before it was recomputed may hold `--hidden` for a conv model, which
    /// [`SavedModel::load`] recomputes from the configuration).
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
            hidden: widths::<R>(config, model.input_dim()),
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
    pub(super) fn new<M: Classifier<B> + Clone + 'static>(
        rule: String,
        config: String,
        hidden: Vec<usize>,
        model: M,
    ) -> Self {
        AnyModel { rule, config, hidden, model: Box::new(model) }
    }

    /// The model of rule `R` with configuration `config`.
    pub fn of<R: Rule + LearningRule<B>>(config: &R::Config, model: R::Model) -> Self {
        let json = serde_json::to_string(config).expect("a config is plain data");
        let hidden = widths::<R>(config, model.input_dim());
        AnyModel::new(R::NAME.to_string(), json, hidden, model)
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

/// [`Rule::widths`] of a model that exists: its architecture fitted its input when it was built, so
/// the error case cannot occur; `--hidden` is the answer if it ever did.
pub(super) fn widths<R: Rule>(config: &R::Config, input_dim: usize) -> Vec<usize> {
    R::widths(config, input_dim).unwrap_or_else(|_| R::hidden(config).to_vec())
}
