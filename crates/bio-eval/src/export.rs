//! Export of a model's parameters in the safetensors format, readable by other frameworks.
//!
//! Layout: an 8-byte little-endian header length `N`, then `N` bytes of JSON, then the tensor data.
//! The JSON maps each tensor name to `{"dtype": "F32", "shape": [rows, cols], "data_offsets":
//! [begin, end]}` (byte offsets into the data, which follow one another without gaps, in the
//! parameters' order), plus a `__metadata__` map of strings. The header is padded with spaces so that
//! the data starts at a multiple of 8 bytes.

use std::collections::BTreeMap;

use bio_core::{CoreError, Matrix, Params, SavedModel};
use serde_json::{Map, Value, json};

use crate::error::EvalError;

/// Key of the metadata entry describing the forward pass.
pub const FORWARD_KEY: &str = "forward";

/// Forward pass of a `bio` network, in words, for [`FORWARD_KEY`].
pub const BIO_FORWARD: &str = <bio_core::BioRule as bio_core::rules::Rule>::FORWARD;

/// Forward pass of a backprop network, in words, for [`FORWARD_KEY`].
pub const BP_FORWARD: &str = <bio_core::BackpropRule<bio_core::ReferenceBackend> as bio_core::rules::Rule>::FORWARD;

/// Metadata describing a saved model: `format`, `rule`, `hidden` (comma-separated widths),
/// `input_dim`, `classes`, `config` (the hyper-parameters as JSON) and [`FORWARD_KEY`].
pub fn model_metadata(model: &SavedModel) -> BTreeMap<String, String> {
    // The rule's own description of its forward pass (empty for a rule this build does not know).
    let forward = bio_core::rules::find(model.rule()).map_or("", |r| r.forward);
    let hidden: Vec<String> = model.hidden().iter().map(usize::to_string).collect();
    let mut m = BTreeMap::new();
    m.insert("format".to_string(), "biorule".to_string());
    m.insert("rule".to_string(), model.rule().to_string());
    m.insert("hidden".to_string(), hidden.join(","));
    m.insert("input_dim".to_string(), model.input_dim.to_string());
    m.insert("classes".to_string(), model.classes.to_string());
    m.insert("config".to_string(), model.config.clone());
    m.insert(FORWARD_KEY.to_string(), forward.to_string());
    m
}

/// Serializes `params` (names must be distinct, as [`bio_core::Classifier::to_params`] guarantees;
/// a repeated name keeps only its last tensor in the header) as little-endian `F32` tensors of
/// shape `[rows, cols]`, with `metadata` as `__metadata__`.
pub fn to_safetensors(params: &Params, metadata: &BTreeMap<String, String>) -> Vec<u8> {
    let mut header = Map::new();
    if !metadata.is_empty() {
        let meta: Map<String, Value> = metadata.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        header.insert("__metadata__".into(), Value::Object(meta));
    }
    let mut offset = 0usize;
    for (name, m) in &params.tensors {
        let end = offset + 4 * m.len();
        header.insert(
            name.clone(),
            json!({ "dtype": "F32", "shape": [m.rows(), m.cols()], "data_offsets": [offset, end] }),
        );
        offset = end;
    }
    let mut json = serde_json::to_vec(&Value::Object(header)).expect("a JSON map of strings and numbers serializes");
    while !(8 + json.len()).is_multiple_of(8) {
        json.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + json.len() + offset);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    for (_, m) in &params.tensors {
        for v in m.as_slice() {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

fn bad(reason: impl Into<String>) -> EvalError {
    EvalError::Core(CoreError::Incompatible(format!("safetensors: {}", reason.into())))
}

/// Reads a safetensors file: its `F32` tensors (1-D as `1×n`, 2-D as they are), in the order of their
/// data, and its `__metadata__`.
pub fn read_safetensors(bytes: &[u8]) -> Result<(Params, BTreeMap<String, String>), EvalError> {
    let len_bytes: [u8; 8] =
        bytes.get(..8).and_then(|b| b.try_into().ok()).ok_or_else(|| bad("shorter than 8 bytes"))?;
    let len = usize::try_from(u64::from_le_bytes(len_bytes)).map_err(|_| bad("header length overflows"))?;
    let data_start =
        8usize.checked_add(len).filter(|&e| e <= bytes.len()).ok_or_else(|| bad("header runs past the end"))?;
    let header: Map<String, Value> =
        serde_json::from_slice(&bytes[8..data_start]).map_err(|e| bad(format!("header is not a JSON object: {e}")))?;
    let data = &bytes[data_start..];
    let mut metadata = BTreeMap::new();
    let mut entries = Vec::new();
    for (name, value) in &header {
        if name == "__metadata__" {
            let obj = value.as_object().ok_or_else(|| bad("__metadata__ is not an object"))?;
            for (k, v) in obj {
                let v = v.as_str().ok_or_else(|| bad(format!("metadata `{k}` is not a string")))?;
                metadata.insert(k.clone(), v.to_string());
            }
            continue;
        }
        let dtype = value.get("dtype").and_then(Value::as_str).ok_or_else(|| bad(format!("`{name}` has no dtype")))?;
        if dtype != "F32" {
            return Err(bad(format!("`{name}` is {dtype}, only F32 is read")));
        }
        let dims = |key: &str| -> Result<Vec<usize>, EvalError> {
            value
                .get(key)
                .and_then(Value::as_array)
                .ok_or_else(|| bad(format!("`{name}` has no {key}")))?
                .iter()
                .map(|v| {
                    v.as_u64().and_then(|v| usize::try_from(v).ok()).ok_or_else(|| bad(format!("`{name}`: bad {key}")))
                })
                .collect()
        };
        let shape = dims("shape")?;
        let offsets = dims("data_offsets")?;
        let (rows, cols) = match shape[..] {
            [] => (1, 1),
            [n] => (1, n),
            [r, c] => (r, c),
            _ => return Err(bad(format!("`{name}` has {} dimensions, at most 2 are read", shape.len()))),
        };
        let [begin, end] = offsets[..] else {
            return Err(bad(format!("`{name}`: data_offsets must hold two numbers")));
        };
        let expected = rows.checked_mul(cols).and_then(|n| n.checked_mul(4));
        if begin > end || end > data.len() || expected != Some(end - begin) {
            return Err(bad(format!(
                "`{name}`: offsets [{begin}, {end}] do not fit shape {rows}×{cols} in {} bytes",
                data.len()
            )));
        }
        let values = data[begin..end].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        entries.push((begin, name.clone(), Matrix::new(rows, cols, values)?));
    }
    entries.sort_by_key(|(begin, _, _)| *begin);
    let tensors = entries.into_iter().map(|(_, name, m)| (name, m)).collect();
    Ok((Params { tensors }, metadata))
}

/// The tensors of a safetensors file (see [`read_safetensors`]).
pub fn from_safetensors(bytes: &[u8]) -> Result<Params, EvalError> {
    read_safetensors(bytes).map(|(p, _)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_params() -> Params {
        let mut p = Params::default();
        p.push("hidden.0.weight", Matrix::from_fn(3, 5, |i, j| (i * 5 + j) as f32 * 0.37 - 2.0));
        p.push("hidden.0.mask", Matrix::from_fn(3, 5, |i, j| ((i + j) % 2) as f32));
        p.push("readout.bias", Matrix::row_vector(vec![f32::MIN_POSITIVE, -0.0, 1e30]));
        p.push("a \"quoted\" name", Matrix::col_vector(vec![1.5, 2.5]));
        p
    }

    #[test]
    fn round_trip_is_exact() {
        let p = sample_params();
        let mut meta = BTreeMap::new();
        meta.insert("rule".to_string(), "bio".to_string());
        meta.insert(FORWARD_KEY.to_string(), BIO_FORWARD.to_string());
        let bytes = to_safetensors(&p, &meta);
        let (back, meta_back) = read_safetensors(&bytes).unwrap();
        assert_eq!(meta_back, meta);
        assert_eq!(back.tensors.len(), p.tensors.len());
        for ((n1, m1), (n2, m2)) in p.tensors.iter().zip(&back.tensors) {
            assert_eq!(n1, n2);
            assert_eq!(m1.shape(), m2.shape());
            let bits = |m: &Matrix| m.as_slice().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(m1), bits(m2));
        }
        assert_eq!(from_safetensors(&bytes).unwrap(), back);
    }

    #[test]
    fn header_is_valid_aligned_json() {
        let p = sample_params();
        let bytes = to_safetensors(&p, &BTreeMap::new());
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert!((8 + n).is_multiple_of(8), "data must start 8-byte aligned");
        let text = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
        assert!(text.starts_with('{'));
        assert!(text.trim_end().ends_with('}'));
        assert!(text[text.trim_end().len()..].bytes().all(|b| b == b' '), "padding is spaces");
        let v: Value = serde_json::from_str(text).unwrap();
        let w = &v["hidden.0.weight"];
        assert_eq!(w["dtype"], "F32");
        assert_eq!(w["shape"], json!([3, 5]));
        assert_eq!(w["data_offsets"], json!([0, 60]));
        assert_eq!(v["hidden.0.mask"]["data_offsets"], json!([60, 120]));
        assert!(v.get("__metadata__").is_none());
        let total: usize = p.tensors.iter().map(|(_, m)| 4 * m.len()).sum();
        assert_eq!(bytes.len(), 8 + n + total);
    }

    #[test]
    fn corrupt_files_are_rejected() {
        let bytes = to_safetensors(&sample_params(), &BTreeMap::new());
        assert!(from_safetensors(&bytes[..4]).is_err());
        assert!(from_safetensors(&bytes[..bytes.len() - 1]).is_err());
        let mut huge = bytes.clone();
        huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(from_safetensors(&huge).is_err());
    }

    #[test]
    fn metadata_describes_the_model() {
        let config = bio_core::BioParams { hidden: vec![4, 3], ..Default::default() }.check().unwrap();
        let net = bio_core::BioNet::init(&bio_core::ReferenceBackend, config, 6, 2, 1);
        let saved = net.to_saved();
        let meta = model_metadata(&saved);
        assert_eq!(meta["rule"], "bio");
        assert_eq!(meta["hidden"], "4,3");
        assert_eq!(meta[FORWARD_KEY], BIO_FORWARD);
        let bytes = to_safetensors(saved.params(), &meta);
        assert_eq!(&from_safetensors(&bytes).unwrap(), saved.params());
    }
}
