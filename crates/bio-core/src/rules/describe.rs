//! Each first rule's forward pass in words, with its own constants and every exported tensor's name
//! and shape (see [`super::Rule::forward_text`]): enough to rebuild a model from its export alone.

use crate::params::{BioConfig, BpConfig, Competition};
use crate::rules::bio::model::INPUT_EPS;

/// `name (d0, d1)`, or `name (n,)` for a vector, as the forward texts list tensors.
fn tensor_entry(name: &str, shape: &[usize]) -> String {
    match shape {
        [n] => format!("{name} ({n},)"),
        dims => format!("{name} ({})", dims.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")),
    }
}

/// The forward pass of a `bio` network of this configuration, in words, with every exported tensor's
/// name and shape, for a model export.
pub fn bio_forward_text(config: &BioConfig, input_dim: usize, classes: usize) -> String {
    let widths: Vec<String> = config.hidden.iter().map(usize::to_string).collect();
    let g = config.feedforward_inhibition;
    let feedforward = if g == 0.0 { format!("g = {g} here, so xf = xn") } else { format!("g = {g}") };
    let threshold = if !config.mechanisms.competition {
        "theta = 0 (lateral inhibition ablated: a plain ReLU)".to_string()
    } else {
        match config.competition {
            Competition::KWinners => {
                let ks: Vec<String> = config
                    .hidden
                    .iter()
                    .enumerate()
                    .map(|(i, &n)| format!("k = {} for hidden.{i}", config.winners(n)))
                    .collect();
                format!(
                    "theta = per row, the (k+1)-th largest entry of u (k-winners-take-all), with \
                     k = clamp(round({} * N_i), 1, N_i - 1): {}",
                    config.active_fraction,
                    ks.join(", ")
                )
            }
            Competition::Inhibitory { gain } => format!(
                "theta = per row, mean(u) + {gain} * std(u) (an inhibitory unit), std the population standard \
                 deviation (dividing by N_i)"
            ),
        }
    };
    let mut tensors = Vec::new();
    let mut fan_in = input_dim;
    for (i, &n) in config.hidden.iter().enumerate() {
        tensors.push(tensor_entry(&format!("hidden.{i}.weight"), &[n, fan_in]));
        tensors.push(tensor_entry(&format!("hidden.{i}.bias"), &[n]));
        tensors.push(format!(
            "{} (1 = synapse present, 0 = removed, already applied to hidden.{i}.weight, not needed for the forward pass)",
            tensor_entry(&format!("hidden.{i}.mask"), &[n, fan_in])
        ));
        fan_in = n;
    }
    tensors.push(tensor_entry("readout.weight", &[classes, fan_in]));
    tensors.push(tensor_entry("readout.bias", &[classes]));
    format!(
        "Input x: (batch, {input_dim}), pixels in [0, 1]. For each hidden layer i = 0..{last} in order, of N_i units \
         (widths {widths}): xn = x / ({eps:e} + ||x||_2) per row; xf = xn - g * mean(xn) per row \
         (feed-forward inhibition), {feedforward}; u = xf @ hidden.i.weight^T + hidden.i.bias; {threshold}; \
         x = relu(u - theta), the next layer's input. Readout: {readout} per row; \
         logits = h @ readout.weight^T + readout.bias. Tensors: {tensors}.",
        last = config.hidden.len() - 1,
        eps = INPUT_EPS,
        widths = widths.join(", "),
        readout = match config.response_power {
            1.0 => format!("h = x / ({} + sum(x))", config.normalization_sigma),
            n => format!(
                "r = x^{n} (elementwise power); h = r / ({:e} + sum(r)) (the constant is {}^{n})",
                config.normalization_sigma.powf(n),
                config.normalization_sigma
            ),
        },
        tensors = tensors.join("; "),
    )
}

/// The forward pass of a backprop network of this configuration, in words, with every exported
/// tensor's name and shape, for a model export.
pub fn bp_forward_text(config: &BpConfig, input_dim: usize, classes: usize) -> String {
    let last = config.hidden.len();
    let mut tensors = Vec::new();
    let mut fan_in = input_dim;
    for (i, &n) in config.hidden.iter().chain(std::iter::once(&classes)).enumerate() {
        tensors.push(tensor_entry(&format!("layer.{i}.weight"), &[n, fan_in]));
        tensors.push(tensor_entry(&format!("layer.{i}.bias"), &[n]));
        fan_in = n;
    }
    format!(
        "Input x: (batch, {input_dim}), pixels in [0, 1]. For each hidden layer i = 0..{hidden_last} in order: \
         x = relu(x @ layer.i.weight^T + layer.i.bias). Logits (no activation; softmax gives the class \
         probabilities): logits = x @ layer.{last}.weight^T + layer.{last}.bias. Tensors: {tensors}.",
        hidden_last = last - 1,
        tensors = tensors.join("; "),
    )
}
