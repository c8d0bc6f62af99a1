//! The errors of the math core: invalid hyper-parameters, shape mismatches and numerical divergence.

use std::borrow::Cow;

use thiserror::Error;

/// Everything `bio-core` can refuse or detect.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CoreError {
    /// A hyper-parameter is out of range; `name` is the parameter (and CLI flag) it concerns.
    #[error("invalid value for `{name}`: {reason}")]
    InvalidParam {
        /// The parameter's name (a registry option's own flag, so not only static names).
        name: Cow<'static, str>,
        /// Why the value is rejected.
        reason: String,
    },
    /// No registered learning rule has this name.
    #[error("unknown learning rule `{name}` (known: {known})")]
    UnknownRule {
        /// The name asked for.
        name: String,
        /// The registered names, comma-separated.
        known: String,
    },
    /// A setting no rule declares.
    #[error("unknown setting `{name}` (not a setting of the `{rule}` rule nor of any other)")]
    UnknownSetting {
        /// The setting's flag.
        name: String,
        /// The rule being configured.
        rule: String,
    },
    /// Tensors or data of the wrong shape.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// Training produced NaN or infinite values.
    #[error("training diverged: {0}")]
    Diverged(String),
    /// A saved model or parameter set is inconsistent with what is being loaded.
    #[error("incompatible parameters: {0}")]
    Incompatible(String),
}

impl CoreError {
    /// Shorthand for [`CoreError::InvalidParam`].
    pub fn invalid(name: impl Into<Cow<'static, str>>, reason: impl Into<String>) -> Self {
        Self::InvalidParam { name: name.into(), reason: reason.into() }
    }
}
