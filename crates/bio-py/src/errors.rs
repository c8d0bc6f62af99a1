//! Library errors as Python exceptions, with the CLI's one-line messages.

use bio_core::CoreError;
use bio_data::DataError;
use bio_eval::EvalError;
use pyo3::PyErr;
use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyRuntimeError, PyValueError};

// Module `biorule`: where users import it from (and what tracebacks then show), not `_biorule`.
pyo3::create_exception!(
    biorule,
    DivergedError,
    PyRuntimeError,
    "Training produced NaN or infinite values (e.g. a learning rate far too large)."
);

/// The line the `bio` command prints after `error:` (one definition for every front end).
pub use bio_run::one_line;

/// Which Python exception a library error becomes.
enum Kind {
    Value,
    Os,
    NotFound,
    Diverged,
    Runtime,
}

fn core_kind(e: &CoreError) -> Kind {
    match e {
        CoreError::Diverged(_) => Kind::Diverged,
        CoreError::InvalidParam { .. }
        | CoreError::UnknownRule { .. }
        | CoreError::UnknownSetting { .. }
        | CoreError::Shape(_)
        | CoreError::Incompatible(_) => Kind::Value,
    }
}

fn data_kind(e: &DataError) -> Kind {
    match e {
        DataError::NotFound { .. } => Kind::NotFound,
        DataError::UnknownDataset { .. } | DataError::Invalid { .. } | DataError::NotEnoughExamples { .. } => {
            Kind::Value
        }
        // Everything else concerns a file: unreadable, malformed, corrupt, or from another release.
        _ => Kind::Os,
    }
}

/// The first typed cause in the chain decides; an untyped error whose message names a setting
/// (`invalid value for …`, as every refused setting in `bio-run` does) is a `ValueError`.
fn kind(e: &anyhow::Error) -> Kind {
    for cause in e.chain() {
        if let Some(c) = cause.downcast_ref::<CoreError>() {
            return core_kind(c);
        }
        if let Some(d) = cause.downcast_ref::<DataError>() {
            return data_kind(d);
        }
        if let Some(v) = cause.downcast_ref::<EvalError>() {
            return match v {
                EvalError::Core(c) => core_kind(c),
                EvalError::Write { .. } => Kind::Os,
                _ => Kind::Value,
            };
        }
        if cause.downcast_ref::<std::io::Error>().is_some() {
            return Kind::Os;
        }
    }
    if e.chain().any(|c| c.to_string().starts_with("invalid value for")) { Kind::Value } else { Kind::Runtime }
}

/// A library error as the matching Python exception.
pub fn to_py(e: anyhow::Error) -> PyErr {
    let message = one_line(&e);
    match kind(&e) {
        Kind::Value => PyValueError::new_err(message),
        Kind::Os => PyOSError::new_err(message),
        Kind::NotFound => PyFileNotFoundError::new_err(message),
        Kind::Diverged => DivergedError::new_err(message),
        Kind::Runtime => PyRuntimeError::new_err(message),
    }
}

/// Shorthand: `ValueError(message)`.
pub fn value_error(message: impl Into<String>) -> PyErr {
    PyValueError::new_err(message.into())
}

/// `result.map_err(to_py)` for any error the library crates return.
pub trait IntoPy<T> {
    /// Converts the error into a Python exception.
    fn py_err(self) -> Result<T, PyErr>;
}

impl<T, E: Into<anyhow::Error>> IntoPy<T> for Result<T, E> {
    fn py_err(self) -> Result<T, PyErr> {
        self.map_err(|e| to_py(e.into()))
    }
}
