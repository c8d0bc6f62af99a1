//! Export of a model's parameters in the safetensors format, readable by other frameworks.
//!
//! Layout: an 8-byte little-endian header length `N`, then `N` bytes of JSON, then the tensor data.
//! The JSON maps each tensor name to `{"dtype": "F32", "shape": [rows, cols] (a bias: [n]), "data_offsets":
//! [begin, end]}` (byte offsets into the data, which follow one another without gaps, in the
//! parameters' order), plus a `__metadata__` map of strings. The header is padded with spaces so that
//! the data starts at a multiple of 8 bytes.

use std::collections::BTreeMap;

use bio_core::{CoreError, Matrix, Params, SavedModel};
use serde_json::{Map, Value, json};

use crate::error::EvalError;

/// Key of the metadata entry describing the forward pass.
pub const FORWARD_KEY: &str = "forward";

pub use bio_core::rules::describe::{bio_forward_text, bp_forward_text};

/// Metadata describing a saved model: `format`, `rule`, `hidden` (comma-separated widths),
/// `input_dim`, `classes`, `config` (the hyper-parameters as JSON), [`FORWARD_KEY`] and
/// [`LAYERS_KEY`].
pub fn model_metadata(model: &SavedModel) -> BTreeMap<String, String> {
    // The rule's own description of its forward pass (empty for a rule this build does not know).
    let forward = bio_core::rules::find(model.rule()).and_then(|r| (r.forward_text)(model)).unwrap_or_default();
    let hidden: Vec<String> = model.hidden().iter().map(usize::to_string).collect();
    let mut m = BTreeMap::new();
    m.insert("format".to_string(), "biorule".to_string());
    m.insert("rule".to_string(), model.rule().to_string());
    m.insert("hidden".to_string(), hidden.join(","));
    m.insert("input_dim".to_string(), model.input_dim.to_string());
    m.insert("classes".to_string(), model.classes.to_string());
    m.insert("config".to_string(), model.config.clone());
    m.insert(FORWARD_KEY.to_string(), forward);
    // Which tensors make each layer, in the naming every other output uses (`bp`'s `layer.1.weight`
    // is its `readout`).
    let layers: Map<String, Value> = crate::layers::layers(model.params())
        .into_iter()
        .map(|l| (l.name, Value::String(l.prefix.to_string())))
        .collect();
    m.insert(LAYERS_KEY.to_string(), Value::Object(layers).to_string());
    m
}

/// Key of the metadata entry naming the layers: a JSON object from each layer's name (`hidden.0`,
/// …, `readout`, see [`crate::layers`]) to the prefix of its tensors (`layer.0` for `layer.0.weight`).
pub const LAYERS_KEY: &str = "layers";

/// A model's forward pass as ops over its tensors ([`bio_core::forward::Op`], what the rule's own
/// [`bio_core::rules::Rule::forward_pass`] says), as JSON `{"rule": …, "ops": [{"op": …}, …]}`, so
/// that another framework can rebuild it exactly (the Python `Model.to_torch` does).
///
/// A rule that is not registered is [`CoreError::UnknownRule`].
pub fn forward_pass(model: &SavedModel) -> Result<Value, EvalError> {
    let rule = bio_core::rules::find(model.rule())?;
    let ops = (rule.forward_pass)(model)?;
    Ok(json!({ "rule": rule.name, "ops": ops }))
}

/// Whether the tensor `name` is training state rather than part of the model: a `bio` unit's running
/// firing rate (`hidden.i.rate`), which only homeostasis reads.
fn is_training_state(name: &str) -> bool {
    name.ends_with(".rate")
}

/// The tensors an export carries: every parameter of the forward pass and the structural masks,
/// without training state (see `is_training_state`).
pub fn exported_params(model: &SavedModel) -> Params {
    let tensors = model.params().tensors.iter().filter(|(name, _)| !is_training_state(name)).cloned().collect();
    Params { tensors }
}

/// A model as a safetensors file: [`exported_params`] with [`model_metadata`].
pub fn export_safetensors(model: &SavedModel) -> Vec<u8> {
    to_safetensors(&exported_params(model), &model_metadata(model))
}

/// The shape a tensor is stored with: a bias (`*.bias`, held as `1×n`) is 1-D `(n,)`, the
/// convention of PyTorch and NumPy; everything else `(rows, cols)`.
fn file_shape(name: &str, m: &Matrix) -> Vec<usize> {
    if name.ends_with(".bias") && m.rows() == 1 { vec![m.cols()] } else { vec![m.rows(), m.cols()] }
}

/// Serializes `params` (names must be distinct, as [`bio_core::Classifier::to_params`] guarantees;
/// a repeated name keeps only its last tensor in the header) as little-endian `F32` tensors of
/// shape `[rows, cols]` (biases `[n]`, see `file_shape`), with `metadata` as `__metadata__`.
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
            json!({ "dtype": "F32", "shape": file_shape(name, m), "data_offsets": [offset, end] }),
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
        meta.insert(FORWARD_KEY.to_string(), "x @ w^T".to_string());
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

    use bio_core::{BioParams, BpParams, Classifier, Competition, Mechanisms, ReferenceBackend, TensorStore};

    fn bio_model(params: BioParams) -> SavedModel {
        bio_core::BioNet::init(&ReferenceBackend, params.check().unwrap(), 16, 3, 1).to_saved()
    }

    /// Models whose forward texts differ: k-WTA over two layers, the inhibitory unit with feed-forward
    /// inhibition, lateral inhibition ablated, and a two-hidden-layer `bp`.
    fn sample_models() -> Vec<SavedModel> {
        let kwta = bio_model(BioParams { hidden: vec![6, 4], active_fraction: 0.3, ..Default::default() });
        let inhibitory = bio_model(BioParams {
            hidden: vec![7],
            competition: Competition::Inhibitory { gain: 0.5 },
            feedforward_inhibition: 0.8,
            ..Default::default()
        });
        let ablated = bio_model(BioParams {
            hidden: vec![5],
            mechanisms: Mechanisms { competition: false, ..Default::default() },
            ..Default::default()
        });
        let bp = BpParams { hidden: vec![6, 4], ..Default::default() }.check().unwrap();
        let bp = bio_core::BpNet::init(&ReferenceBackend, bp, 16, 3, 1).to_saved();
        vec![kwta, inhibitory, ablated, bp]
    }

    #[test]
    fn forward_pass_follows_the_configuration() {
        let [kwta, inhibitory, ablated, bp] = sample_models().try_into().unwrap();
        let ops_of = |m: &SavedModel, kind: &str| -> Vec<Value> {
            let pass = forward_pass(m).unwrap();
            assert_eq!(pass["rule"], json!(m.rule()));
            pass["ops"].as_array().unwrap().iter().filter(|op| op["op"] == kind).cloned().collect()
        };
        // ρ = 0.3 of 6 and of 4 units: round(1.8) = 2 and round(1.2) = 1.
        let k = ops_of(&kwta, "k_winners");
        assert_eq!(k, vec![json!({ "op": "k_winners", "k": 2 }), json!({ "op": "k_winners", "k": 1 })]);
        assert_eq!(ops_of(&kwta, "l2_normalize")[0]["eps"], json!(bio_core::rules::INPUT_EPS));
        assert_eq!(ops_of(&inhibitory, "inhibitory")[0], json!({ "op": "inhibitory", "gain": 0.5 }));
        assert_eq!(ops_of(&inhibitory, "subtract_mean")[0], json!({ "op": "subtract_mean", "gain": 0.8f32 }));
        assert!(ops_of(&ablated, "k_winners").is_empty() && ops_of(&ablated, "relu").len() == 1);
        assert_eq!(ops_of(&bp, "linear").len(), 3);
        assert_eq!(ops_of(&bp, "relu").len(), 2);
    }

    /// The `(name, shape)` pairs listed after "Tensors:" in a forward text.
    fn named_tensors(forward: &str) -> Vec<(String, Vec<usize>)> {
        let (_, list) = forward.split_once("Tensors: ").expect("a tensor list");
        list.trim_end_matches('.')
            .split("; ")
            .map(|entry| {
                let (name, rest) = entry.split_once(" (").expect("name (shape)");
                let (dims, _) = rest.split_once(')').expect("closing parenthesis");
                let shape = dims.split(',').map(str::trim).filter(|d| !d.is_empty()).map(|d| d.parse().unwrap());
                (name.to_string(), shape.collect())
            })
            .collect()
    }

    /// Every tensor in the file's header with its stored shape.
    fn header_shapes(bytes: &[u8]) -> Vec<(String, Vec<usize>)> {
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header: Map<String, Value> = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        let shape = |v: &Value| v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
        let mut tensors: Vec<_> =
            header.iter().filter(|(k, _)| *k != "__metadata__").map(|(k, v)| (k.clone(), shape(v))).collect();
        tensors.sort();
        tensors
    }

    #[test]
    fn forward_text_names_every_tensor_with_its_shape() {
        for model in sample_models() {
            let bytes = export_safetensors(&model);
            let (_, meta) = read_safetensors(&bytes).unwrap();
            let forward = &meta[FORWARD_KEY];
            let mut named = named_tensors(forward);
            named.sort();
            assert_eq!(named, header_shapes(&bytes), "{forward}");
            assert!(named.iter().all(|(n, s)| !n.ends_with(".bias") || s.len() == 1), "biases are 1-D: {named:?}");
        }
    }

    #[test]
    fn forward_text_covers_every_case_of_the_model() {
        let texts: Vec<String> = sample_models().iter().map(|m| model_metadata(m)[FORWARD_KEY].clone()).collect();
        assert!(texts[0].contains("g = 0 here, so xf = xn"), "{}", texts[0]);
        assert!(texts[0].contains("clamp(round(0.3 * N_i), 1, N_i - 1)"), "{}", texts[0]);
        assert!(texts[0].contains("k = 2 for hidden.0, k = 1 for hidden.1"), "{}", texts[0]);
        assert!(texts[1].contains("g = 0.8") && texts[1].contains("mean(u) + 0.5 * std(u)"), "{}", texts[1]);
        assert!(texts[2].contains("theta = 0 (lateral inhibition ablated"), "{}", texts[2]);
        assert!(texts[3].contains("layer.2.weight^T + layer.2.bias") && !texts[3].contains("last."), "{}", texts[3]);
    }

    #[test]
    fn training_state_is_not_exported() {
        let model = &sample_models()[0];
        assert!(model.params().tensors.iter().any(|(n, _)| n == "hidden.0.rate"));
        let (params, _) = read_safetensors(&export_safetensors(model)).unwrap();
        assert!(params.tensors.iter().all(|(n, _)| !n.ends_with(".rate")), "{:?}", params.tensors);
        assert_eq!(params.tensors.len(), model.params().tensors.len() - 2);
    }

    /// The forward pass written in the metadata, computed on the exported tensors alone.
    fn documented_forward(model: &SavedModel, params: &Params, x: &Matrix) -> Matrix {
        let tensor = |name: &str| params.find(name).cloned().unwrap();
        let affine = |x: &Matrix, layer: &str| {
            let (w, b) = (tensor(&format!("{layer}.weight")), tensor(&format!("{layer}.bias")));
            Matrix::from_fn(x.rows(), w.rows(), |r, j| {
                x.row(r).iter().zip(w.row(j)).map(|(a, b)| a * b).sum::<f32>() + b.as_slice()[j]
            })
        };
        let rows = |m: &Matrix, f: &dyn Fn(&[f32]) -> Vec<f32>| {
            let data: Vec<f32> = (0..m.rows()).flat_map(|r| f(m.row(r))).collect();
            Matrix::new(m.rows(), data.len() / m.rows().max(1), data).unwrap()
        };
        if let Ok(config) = model.config_of::<bio_core::BioRule>() {
            {
                let mut x = x.clone();
                for (i, &n) in config.hidden.iter().enumerate() {
                    let g = config.feedforward_inhibition;
                    let xf = rows(&x, &|r| {
                        let norm = r.iter().map(|v| v * v).sum::<f32>().sqrt();
                        let xn: Vec<f32> = r.iter().map(|v| v / (1e-6 + norm)).collect();
                        let mean = xn.iter().sum::<f32>() / xn.len() as f32;
                        xn.iter().map(|v| v - g * mean).collect()
                    });
                    let u = affine(&xf, &format!("hidden.{i}"));
                    x = rows(&u, &|r| {
                        let theta = match (config.mechanisms.competition, config.competition) {
                            (false, _) => 0.0,
                            (true, Competition::KWinners) => {
                                let mut sorted = r.to_vec();
                                sorted.sort_by(|a, b| b.total_cmp(a));
                                sorted[config.winners(n)]
                            }
                            (true, Competition::Inhibitory { gain }) => {
                                let mean = r.iter().sum::<f32>() / n as f32;
                                let var = r.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n as f32;
                                mean + gain * var.sqrt()
                            }
                        };
                        r.iter().map(|v| (v - theta).max(0.0)).collect()
                    });
                }
                let sigma = config.normalization_sigma;
                let h = rows(&x, &|r| r.iter().map(|v| v / (sigma + r.iter().sum::<f32>())).collect());
                affine(&h, "readout")
            }
        } else {
            let config = model.config_of::<bio_core::BackpropRule<ReferenceBackend>>().unwrap();
            {
                let mut x = x.clone();
                for i in 0..config.hidden.len() {
                    x = rows(&affine(&x, &format!("layer.{i}")), &|r| r.iter().map(|v| v.max(0.0)).collect());
                }
                affine(&x, &format!("layer.{}", config.hidden.len()))
            }
        }
    }

    #[test]
    fn the_documented_forward_pass_gives_the_models_logits() {
        let b = ReferenceBackend;
        let x = Matrix::from_fn(5, 16, |r, c| ((r * 7 + c * 3) % 11) as f32 / 10.0);
        for model in sample_models() {
            let (params, _) = read_safetensors(&export_safetensors(&model)).unwrap();
            let expected = b.download(&model.load(&b).unwrap().logits(&b.upload(&x)));
            let rebuilt = documented_forward(&model, &params, &x);
            for (a, e) in rebuilt.as_slice().iter().zip(expected.as_slice()) {
                assert!((a - e).abs() <= 1e-4 * (1.0 + e.abs()), "{}: {a} vs {e}", model.rule());
            }
        }
    }
}
