//! Checks of settings shared by several rules; each error names the setting's flag.

use crate::error::CoreError;

/// `v` must be finite and at least `min`.
pub(crate) fn check_at_least(name: &'static str, v: f32, min: f32) -> Result<(), CoreError> {
    if !(v.is_finite() && v >= min) {
        return Err(CoreError::invalid(name, format!("must be a finite number ≥ {min}, got {v}")));
    }
    Ok(())
}

/// `v` must be finite and positive.
pub(crate) fn check_positive(name: &'static str, v: f32) -> Result<(), CoreError> {
    if !(v.is_finite() && v > 0.0) {
        return Err(CoreError::invalid(name, format!("must be a finite number > 0, got {v}")));
    }
    Ok(())
}

/// One hidden layer of at least `min` units.
pub(crate) fn check_one_hidden(rule: &str, hidden: &[usize], min: usize) -> Result<usize, CoreError> {
    match hidden {
        [w] if *w >= min => Ok(*w),
        [w] => Err(CoreError::invalid("hidden", format!("the `{rule}` layer needs at least {min} units, got {w}"))),
        _ => Err(CoreError::invalid(
            "hidden",
            format!("the `{rule}` rule has exactly one hidden layer, got {} widths", hidden.len()),
        )),
    }
}

/// Hidden widths: at least one layer, every width at least 2.
pub(crate) fn check_hidden(hidden: &[usize]) -> Result<(), CoreError> {
    if hidden.is_empty() {
        return Err(CoreError::invalid("hidden", "at least one hidden layer is needed"));
    }
    if let Some(w) = hidden.iter().find(|&&w| w < 2) {
        return Err(CoreError::invalid("hidden", format!("every hidden width must be ≥ 2, got {w}")));
    }
    Ok(())
}
