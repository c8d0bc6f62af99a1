//! Errors of the evaluation instruments.

use std::borrow::Cow;

use thiserror::Error;

/// What an evaluation can refuse.
#[derive(Debug, Error)]
pub enum EvalError {
    /// A parameter is out of range; `name` is the parameter (and CLI flag) it concerns.
    #[error("invalid value for `{name}`: {reason}")]
    InvalidParam {
        /// The parameter's name (a registry option's own flag, so not only static names).
        name: Cow<'static, str>,
        /// Why the value is rejected.
        reason: String,
    },
    /// Data of the wrong shape for the model.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// Not enough data for the requested protocol.
    #[error("not enough data: {0}")]
    NotEnoughData(String),
    /// An error from the math core.
    #[error(transparent)]
    Core(#[from] bio_core::CoreError),
    /// Writing a picture or report failed.
    #[error("cannot write {path}: {reason}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

impl EvalError {
    /// Shorthand for [`EvalError::InvalidParam`].
    pub fn invalid(name: impl Into<Cow<'static, str>>, reason: impl Into<String>) -> Self {
        Self::InvalidParam { name: name.into(), reason: reason.into() }
    }
}
