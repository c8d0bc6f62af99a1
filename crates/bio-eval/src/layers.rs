//! One naming of a model's layers for every output that names a layer (the biological metrics and
//! class selectivity of `bio eval metrics`, `bio report` and Python's `metrics`, the pictures, the
//! `layer` column of `bio inspect`, the `layers` entry of an export's metadata, the few-shot and
//! one-shot feature names): the `k`-th hidden layer is `hidden.k` and the output layer is
//! `readout`, whatever the rule calls its tensors (`bio`'s `hidden.0.weight`, `bp`'s
//! `layer.0.weight` … `layer.N.weight` with the last its readout, `conv`'s `conv.0.weight`).
//!
//! The tensors keep their own names: they are the keys of checkpoints and exported files, which
//! other programs read. Result files written before this naming stored `bp`'s layers as `layer.k`;
//! [`from_stored`] reads them in it.

use bio_core::{Matrix, Params};

/// Name of the output layer.
pub const READOUT: &str = "readout";

/// Name of the `index`-th hidden layer (0 = the first).
pub fn hidden_layer(index: usize) -> String {
    format!("hidden.{index}")
}

/// One layer of a model: the name every output shows, and its tensors' prefix in the parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer<'a> {
    /// `hidden.k` or [`READOUT`].
    pub name: String,
    /// Prefix of its tensors (`layer.1` for `layer.1.weight`).
    pub prefix: &'a str,
    /// Its weight matrix (`<prefix>.weight`).
    pub weight: &'a Matrix,
}

/// The layers of `params`, input side first: one per `<prefix>.weight` tensor, in the order of the
/// parameters; the `k`-th produces the `k`-th hidden layer, and the last is the readout (this holds
/// for every registered rule).
pub fn layers(params: &Params) -> Vec<Layer<'_>> {
    let weights: Vec<(&str, &Matrix)> =
        params.tensors.iter().filter_map(|(name, w)| name.strip_suffix(".weight").map(|prefix| (prefix, w))).collect();
    let last = weights.len().saturating_sub(1);
    weights
        .into_iter()
        .enumerate()
        .map(|(k, (prefix, weight))| Layer {
            name: if k == last { READOUT.to_string() } else { hidden_layer(k) },
            prefix,
            weight,
        })
        .collect()
}

/// The layer the tensor `tensor` of `params` belongs to (`layer.1.bias` of a one-hidden-layer `bp`
/// model → `readout`); `None` for a tensor of no layer.
pub fn layer_of_tensor(params: &Params, tensor: &str) -> Option<String> {
    let (prefix, _) = tensor.rsplit_once('.')?;
    layers(params).into_iter().find(|l| l.prefix == prefix).map(|l| l.name)
}

/// A layer name read from a result file, in the one naming: `bp`'s `layer.k` (and `conv`'s
/// `conv.k`) of files written before it becomes `hidden.k` for a hidden layer and [`READOUT`] for
/// the output layer (`hidden` says which, as [`crate::LayerMetrics::hidden`] records it); any other
/// name is kept.
pub fn from_stored(name: &str, hidden: bool) -> String {
    let index = name.strip_prefix("layer.").or_else(|| name.strip_prefix("conv."));
    match index.and_then(|k| k.parse::<usize>().ok()) {
        Some(k) if hidden => hidden_layer(k),
        Some(_) => READOUT.to_string(),
        None => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(names: &[&str]) -> Params {
        let mut p = Params::default();
        for name in names {
            p.push(*name, Matrix::zeros(2, 2));
        }
        p
    }

    #[test]
    fn every_rule_gets_the_same_layer_names() {
        let bio = params(&["hidden.0.weight", "hidden.0.mask", "hidden.0.bias", "readout.weight", "readout.bias"]);
        let bp = params(&["layer.0.weight", "layer.0.bias", "layer.1.weight", "layer.1.bias"]);
        let conv = params(&["conv.0.weight", "conv.0.bias", "conv.1.weight", "conv.1.bias", "readout.weight"]);
        let names = |p: &Params| layers(p).into_iter().map(|l| l.name).collect::<Vec<_>>();
        assert_eq!(names(&bio), ["hidden.0", "readout"]);
        assert_eq!(names(&bp), names(&bio));
        assert_eq!(names(&conv), ["hidden.0", "hidden.1", "readout"]);
        assert_eq!(layers(&bp)[1].prefix, "layer.1");
        assert_eq!(layer_of_tensor(&bp, "layer.1.bias").as_deref(), Some("readout"));
        assert_eq!(layer_of_tensor(&bio, "hidden.0.mask").as_deref(), Some("hidden.0"));
        assert_eq!(layer_of_tensor(&bio, "nothing"), None);
    }

    #[test]
    fn names_stored_by_older_files_are_read_in_the_one_naming() {
        assert_eq!(from_stored("layer.0", true), "hidden.0");
        assert_eq!(from_stored("layer.2", false), "readout");
        assert_eq!(from_stored("hidden.1", true), "hidden.1");
        assert_eq!(from_stored("readout", false), "readout");
        assert_eq!(from_stored("conv.1", true), "hidden.1");
        assert_eq!(from_stored("layer.x", true), "layer.x");
    }
}
