//! NumPy arrays in and out: images as an `n × d` [`Matrix`] (from float32 or float64, 2-D or
//! `n × h × w`, any memory order, copied once), labels as class indices, results back as arrays.

use bio_core::Matrix;
use numpy::{
    PyArray1, PyArray2, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::prelude::*;

use crate::errors::value_error;

/// Images read from NumPy, with the `(height, width)` they had (a 2-D input of `d` pixels counts as
/// `√d × √d` when `d` is a square, else `1 × d`).
pub struct Images {
    /// One image per row.
    pub matrix: Matrix,
    /// Height and width of one image.
    pub shape: (usize, usize),
}

fn untyped<'py>(obj: &Bound<'py, PyAny>, name: &str) -> PyResult<Bound<'py, PyUntypedArray>> {
    obj.cast::<PyUntypedArray>().cloned().map_err(|_| {
        let given = obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
        value_error(format!("`{name}` must be a NumPy array, got {given}"))
    })
}

/// Reads `obj` as images: a float32 or float64 array of shape `(n, d)` or `(n, h, w)` with finite
/// values in [0, 1] ([`bio_core::pixels::check_unit_pixels`]); `expected_dim` (a model's input size) is checked when given.
pub fn images(obj: &Bound<'_, PyAny>, name: &str, expected_dim: Option<usize>) -> PyResult<Images> {
    let array = untyped(obj, name)?;
    let shape = array.shape().to_vec();
    let (n, image_shape) = match shape.as_slice() {
        [n, d] => {
            let side = (*d as f64).sqrt().round() as usize;
            (*n, if side * side == *d { (side, side) } else { (1, *d) })
        }
        [n, h, w] => (*n, (*h, *w)),
        _ => {
            return Err(value_error(format!(
                "`{name}` must have shape (n, pixels) or (n, height, width), got shape {shape:?}"
            )));
        }
    };
    let dim = image_shape.0 * image_shape.1;
    if let Some(expected) = expected_dim
        && dim != expected
    {
        return Err(value_error(format!(
            "`{name}` has {dim} pixels per image (shape {shape:?}), the model expects {expected}"
        )));
    }
    if n == 0 || dim == 0 {
        return Err(value_error(format!("`{name}` is empty (shape {shape:?})")));
    }
    let dtype = array.dtype();
    // Logical (row-major) order whatever the memory order, so F-ordered and strided views read right.
    let values: Vec<f32> = if dtype.is_equiv_to(&numpy::dtype::<f32>(obj.py())) {
        let typed = array.cast::<PyArrayDyn<f32>>()?.readonly();
        let view = typed.as_array();
        match view.as_slice() {
            Some(s) => s.to_vec(),
            None => view.iter().copied().collect(),
        }
    } else if dtype.is_equiv_to(&numpy::dtype::<f64>(obj.py())) {
        let typed = array.cast::<PyArrayDyn<f64>>()?.readonly();
        typed.as_array().iter().map(|&v| v as f32).collect()
    } else {
        return Err(value_error(format!("`{name}` must be float32 or float64 (pixels in [0, 1]), got dtype {dtype}")));
    };
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(value_error(format!("`{name}` holds a NaN or infinite value (flat index {i})")));
    }
    let matrix = Matrix::new(n, dim, values).map_err(|e| value_error(e.to_string()))?;
    // The same range check, and message, as the attacks' (fit, predict, metrics, attack, fewshot).
    bio_core::pixels::check_unit_pixels(&matrix).map_err(|e| value_error(format!("`{name}`: {e}")))?;
    Ok(Images { matrix, shape: image_shape })
}

/// Reads `obj` as `n` class labels: a 1-D array of any integer dtype, each in `0..classes` when
/// `classes` is given (else only ≥ 0).
pub fn labels(obj: &Bound<'_, PyAny>, name: &str, n: usize, classes: Option<usize>) -> PyResult<Vec<usize>> {
    let array = untyped(obj, name)?;
    let shape = array.shape().to_vec();
    if shape.len() != 1 || shape[0] != n {
        return Err(value_error(format!("`{name}` must have shape ({n},), one label per image, got shape {shape:?}")));
    }
    let kind = array.dtype().kind();
    if kind != b'i' && kind != b'u' {
        return Err(value_error(format!("`{name}` must hold integers, got dtype {}", array.dtype())));
    }
    let as_i64 = array.call_method1("astype", ("int64",))?;
    let typed = as_i64.cast::<PyArray1<i64>>()?.readonly();
    let mut out = Vec::with_capacity(n);
    for (i, &label) in typed.as_array().iter().enumerate() {
        let valid = label >= 0 && classes.is_none_or(|c| (label as usize) < c);
        if !valid {
            let range = classes.map_or_else(
                || "≥ 0".to_string(),
                |c| format!("between 0 and {} (the model's {c} classes)", c.saturating_sub(1)),
            );
            return Err(value_error(format!("`{name}[{i}]` is {label}; labels must be {range}")));
        }
        out.push(label as usize);
    }
    Ok(out)
}

/// A matrix as a float32 array of its shape.
pub fn matrix_to_py<'py>(py: Python<'py>, m: &Matrix) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let flat = PyArray1::from_slice(py, m.as_slice());
    flat.reshape([m.rows(), m.cols()])
}

/// Images as a float32 array shaped `(n, h, w)` when they came in that way, else `(n, d)`.
pub fn images_to_py<'py>(py: Python<'py>, m: &Matrix, like: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let flat = matrix_to_py(py, m)?;
    let shape: Vec<usize> = untyped(like, "x")?.shape().to_vec();
    if shape.len() == 3 { Ok(flat.reshape(shape)?.into_any()) } else { Ok(flat.into_any()) }
}

/// Class indices as an int64 array.
pub fn labels_to_py<'py>(py: Python<'py>, labels: &[usize]) -> Bound<'py, PyArray1<i64>> {
    let values: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
    PyArray1::from_vec(py, values)
}
