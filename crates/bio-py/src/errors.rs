//! Library errors as Python exceptions, with the CLI's one-line messages.

use bio_run::{ErrorKind, error_kind};
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

/// A library error as the matching Python exception, chosen by the error's type
/// ([`bio_run::error_kind`]), never by its message.
pub fn to_py(e: anyhow::Error) -> PyErr {
    let message = one_line(&e);
    match error_kind(&e) {
        ErrorKind::Invalid => PyValueError::new_err(message),
        ErrorKind::File => PyOSError::new_err(message),
        ErrorKind::NotFound => PyFileNotFoundError::new_err(message),
        ErrorKind::Diverged => DivergedError::new_err(message),
        ErrorKind::Other => PyRuntimeError::new_err(message),
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
