//! What kind of failure an error chain is, decided by the typed errors in it (never by reading the
//! message), so that every front end maps failures the same way (Python picks its exception by it).

use bio_core::CoreError;
use bio_data::DataError;
use bio_eval::EvalError;

/// The kind of a failure, for a front end to present it (e.g. as a Python exception type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input was refused: a setting out of range or of another rule, an unknown rule or
    /// setting, data of the wrong shape (Python: `ValueError`).
    Invalid,
    /// A file could not be read or written, or is malformed (Python: `OSError`).
    File,
    /// A file or dataset is missing (Python: `FileNotFoundError`).
    NotFound,
    /// Training produced NaN or infinite values (Python: `DivergedError`).
    Diverged,
    /// Anything else (Python: `RuntimeError`).
    Other,
}

fn core_kind(e: &CoreError) -> ErrorKind {
    match e {
        CoreError::Diverged(_) => ErrorKind::Diverged,
        CoreError::InvalidParam { .. }
        | CoreError::UnknownRule { .. }
        | CoreError::UnknownSetting { .. }
        | CoreError::Shape(_)
        | CoreError::Incompatible(_) => ErrorKind::Invalid,
    }
}

fn data_kind(e: &DataError) -> ErrorKind {
    match e {
        DataError::NotFound { .. } => ErrorKind::NotFound,
        DataError::UnknownDataset { .. } | DataError::Invalid { .. } | DataError::NotEnoughExamples { .. } => {
            ErrorKind::Invalid
        }
        // Everything else concerns a file: unreadable, malformed, corrupt, or from another release.
        _ => ErrorKind::File,
    }
}

fn eval_kind(e: &EvalError) -> ErrorKind {
    match e {
        EvalError::Core(c) => core_kind(c),
        EvalError::Write { .. } => ErrorKind::File,
        EvalError::Shape(_) | EvalError::NotEnoughData(_) => ErrorKind::Invalid,
    }
}

/// The kind of `e`: the first typed cause in its chain decides ([`CoreError`], [`DataError`],
/// [`EvalError`], `std::io::Error`); a chain without one is [`ErrorKind::Other`], whatever its
/// message says. Refused settings in `bio-run` are [`CoreError::InvalidParam`] (see
/// [`invalid!`](crate::invalid)).
pub fn error_kind(e: &anyhow::Error) -> ErrorKind {
    for cause in e.chain() {
        if let Some(c) = cause.downcast_ref::<CoreError>() {
            return core_kind(c);
        }
        if let Some(d) = cause.downcast_ref::<DataError>() {
            return data_kind(d);
        }
        if let Some(v) = cause.downcast_ref::<EvalError>() {
            return eval_kind(v);
        }
        if cause.downcast_ref::<std::io::Error>().is_some() {
            return ErrorKind::File;
        }
    }
    ErrorKind::Other
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::*;

    fn refused(name: &str) -> anyhow::Result<()> {
        crate::invalid!(name.to_string(), "must be ≥ 1, got {}", 0);
    }

    #[test]
    fn each_typed_error_has_its_kind_through_any_context() {
        let e = refused("batch").context("point `a`").unwrap_err();
        assert_eq!(error_kind(&e), ErrorKind::Invalid);
        assert_eq!(crate::one_line(&e), "point `a`: invalid value for `batch`: must be ≥ 1, got 0");
        match e.root_cause().downcast_ref::<CoreError>() {
            Some(CoreError::InvalidParam { name, .. }) => assert_eq!(name, "batch"),
            other => panic!("expected an invalid setting, got {other:?}"),
        }
        let unknown_rule = bio_core::rules::find("no-such-rule").map(drop).unwrap_err();
        assert!(matches!(unknown_rule, CoreError::UnknownRule { .. }), "{unknown_rule:?}");
        assert_eq!(error_kind(&anyhow::Error::new(unknown_rule).context("--rule")), ErrorKind::Invalid);
        let setting = CoreError::UnknownSetting { name: "hebian-rate".into(), rule: "bio".into() };
        assert_eq!(error_kind(&anyhow::Error::new(setting)), ErrorKind::Invalid);
        let eval = EvalError::invalid("eps", "too large");
        assert_eq!(error_kind(&anyhow::Error::new(eval)), ErrorKind::Invalid);
        assert_eq!(error_kind(&anyhow::Error::new(CoreError::Diverged("NaN".into()))), ErrorKind::Diverged);
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "read-only");
        assert_eq!(error_kind(&anyhow::Error::new(io).context("writing x")), ErrorKind::File);
    }

    #[test]
    fn an_untyped_error_is_other_whatever_its_message_says() {
        let e = anyhow::anyhow!("invalid value for `eps`: looks like a refused setting, but is not typed");
        assert_eq!(error_kind(&e), ErrorKind::Other);
        assert_eq!(error_kind(&anyhow::anyhow!("internal error")), ErrorKind::Other);
    }
}
