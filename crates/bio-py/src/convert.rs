//! JSON values to Python objects and back: keyword arguments become the serde form of the specs,
//! and reports (which are all `Serialize`) become dicts.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::Value;

use crate::errors::value_error;

/// A Python value (None, bool, int, float, str, or a list/tuple of them) as JSON; `name` is the
/// argument it came from, for the error message.
pub fn py_to_json(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Value> {
    if obj.is_none() {
        return Ok(Value::Null);
    }
    // bool before int: Python's bool is an int subclass.
    if obj.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(obj.extract()?));
    }
    if obj.is_instance_of::<PyInt>() {
        return match obj.extract::<i64>() {
            Ok(v) => Ok(Value::from(v)),
            Err(_) => Ok(Value::from(obj.extract::<u64>()?)),
        };
    }
    if obj.is_instance_of::<PyFloat>() {
        let v: f64 = obj.extract()?;
        return serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| value_error(format!("invalid value for `{name}`: must be finite, got {v}")));
    }
    if obj.is_instance_of::<PyString>() {
        return Ok(Value::String(obj.extract()?));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let items: Vec<Bound<'_, PyAny>> = obj.try_iter()?.collect::<PyResult<_>>()?;
        return items.iter().map(|item| py_to_json(item, name)).collect::<PyResult<Vec<_>>>().map(Value::Array);
    }
    // NumPy scalars (np.int64(3), np.float32(0.1)) offer `item()`, which gives the Python value.
    if obj.hasattr("item")? && obj.hasattr("dtype")? {
        return py_to_json(&obj.call_method0("item")?, name);
    }
    let given = obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
    Err(value_error(format!("invalid value for `{name}`: expected a number, string, bool or list, got {given}")))
}

/// A JSON value as a Python object (dicts, lists, floats, ints, strings, None).
pub fn json_to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.into_pyobject(py)?.into_any(),
            (None, Some(u)) => u.into_pyobject(py)?.into_any(),
            _ => n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any(),
        },
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, json_to_py(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

/// Any serializable report as a Python object.
pub fn to_py_object<'py, T: serde::Serialize>(py: Python<'py>, value: &T) -> PyResult<Bound<'py, PyAny>> {
    let json = serde_json::to_value(value).map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?;
    json_to_py(py, &json)
}

/// Hidden-layer widths given as argument `name`: a list (or tuple, or NumPy array) of
/// non-negative integers; `None` when not given. Anything else (a string such as `"50"`, a bare
/// number, a float width) is one clear `ValueError` instead of PyO3's "Can't extract `str` to `Vec`".
pub fn layer_widths(obj: Option<&Bound<'_, PyAny>>, name: &str) -> PyResult<Option<Vec<usize>>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    let refuse = || {
        let given = obj.repr().map(|r| r.to_string()).unwrap_or_else(|_| "?".into());
        value_error(format!("invalid value for `{name}`: expected a list of layer widths like [400], got {given}"))
    };
    // A string is iterable, but never a list of widths.
    if obj.is_instance_of::<PyString>() || obj.is_instance_of::<pyo3::types::PyBytes>() {
        return Err(refuse());
    }
    let Ok(items) = obj.try_iter() else {
        return Err(refuse());
    };
    let mut widths = Vec::new();
    for item in items {
        let item = item?;
        // bool is an int subclass, and a float width (400.0) is more likely a mistake than meant.
        let integer = (item.is_instance_of::<PyInt>() || (item.hasattr("dtype")? && item.hasattr("item")?))
            && !item.is_instance_of::<PyBool>();
        match item.extract::<usize>() {
            Ok(width) if integer => widths.push(width),
            _ => return Err(refuse()),
        }
    }
    Ok(Some(widths))
}
