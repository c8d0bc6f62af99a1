//! Errors of the evaluation instruments.

use std::borrow::Cow;

use thiserror::Error;

/// What an evaluation can refuse. A setting out of range is the workspace's one invalid-setting
/// error, [`CoreError::InvalidParam`](bio_core::CoreError::InvalidParam), inside [`EvalError::Core`]
/// (made with [`EvalError::invalid`]).
#[derive(Debug, Error)]
pub enum EvalError {
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
    /// A setting out of range: [`CoreError::InvalidParam`](bio_core::CoreError::InvalidParam)
    /// naming the setting (its flag) and why.
    pub fn invalid(name: impl Into<Cow<'static, str>>, reason: impl Into<String>) -> Self {
        Self::Core(bio_core::CoreError::InvalidParam { name: name.into(), reason: reason.into() })
    }

    /// The setting this error refuses, when it is an invalid setting.
    pub fn invalid_setting(&self) -> Option<&str> {
        match self {
            Self::Core(bio_core::CoreError::InvalidParam { name, .. }) => Some(name),
            _ => None,
        }
    }
}
