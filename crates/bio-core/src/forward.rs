//! A rule's forward pass as data: a list of [`Op`]s over the model's named tensors, which another
//! framework interprets without knowing the rule. Each rule says its own list
//! ([`crate::rules::Rule::forward_pass`]); Python's `Model.to_torch()` and `biorule.forward` build
//! the pass from it, and [`run`] here is the reference interpreter that the registry's test holds
//! against every rule's own `Classifier::forward`.
//!
//! Layout: a batch is a row per sample. [`Op::ToImage`] turns rows into images of
//! `(channels, height, width)` (what PyTorch's `conv2d` takes); [`Op::FromImage`] turns them back
//! into rows in (row, column, channel) order, the order the rules store. The per-sample ops that
//! compete or normalize ([`Op::KWinners`], [`Op::Triangle`]) act across features for rows and
//! across channels at each position for images: dimension 1 in both layouts.

use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::model::Params;
use crate::tensor::Matrix;

/// One step of a forward pass. Tensor names are those of the model's parameters
/// (`Classifier::to_params`, Python's `Model.weights()`); a weight is stored `out × in`, a bias
/// `1 × out`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[allow(missing_docs)] // each variant's doc says what its fields are
pub enum Op {
    /// `x ← x / (eps + ‖x‖₂)` per sample.
    L2Normalize { eps: f32 },
    /// `x ← x / max(‖x‖₂, guard)` per sample.
    UnitNorm { guard: f32 },
    /// `x ← x / max(maxⱼ xⱼ, guard)` per sample.
    PeakNorm { guard: f32 },
    /// `x ← x − gain · mean(x)` per sample.
    SubtractMean { gain: f32 },
    /// `x ← x Wᵀ + b` (no bias when `bias` is `None`).
    Linear { weight: String, bias: Option<String> },
    /// `x ← max(x, 0)`.
    Relu,
    /// `x ← relu(x − θ)` with `θ` the (k+1)-th largest entry along dimension 1 (the gathered
    /// value, so a gradient reaches the unit that sets it).
    KWinners { k: usize },
    /// `x ← relu(x − (mean + gain · std))` per sample (population standard deviation).
    Inhibitory { gain: f32 },
    /// `x ← relu(x − mean)` along dimension 1.
    Triangle,
    /// `x ← xⁿ` (the input is non-negative).
    Power { n: f32 },
    /// `x ← x / (constant + Σⱼ xⱼ)` per sample.
    DivisiveNorm { constant: f32 },
    /// `x ← softmax(β x)` per sample.
    Softmax { beta: f32 },
    /// Rows → images `(channels, height, width)`; a row holds the pixels in (row, column, channel)
    /// order.
    ToImage { height: usize, width: usize, channels: usize },
    /// `u = conv2d(a, W) + b`, stride 1, zero padding `padding`, square kernel `kernel`; `W` is
    /// stored `C_out × (kernel · kernel · C_in)` in (row, column, channel) order.
    Conv2d { weight: String, bias: String, kernel: usize, padding: usize },
    /// Max pooling per channel (padding counts as −∞).
    MaxPool2d { kernel: usize, stride: usize, padding: usize },
    /// Images → rows in (row, column, channel) order.
    FromImage,
}

/// A batch in flight through [`run`]: rows, or images `(channels, height, width)` per sample.
enum Value {
    Rows(Matrix),
    Images { n: usize, c: usize, h: usize, w: usize, data: Vec<f32> },
}

fn bad(reason: String) -> CoreError {
    CoreError::Incompatible(format!("forward pass: {reason}"))
}

fn tensor<'a>(params: &'a Params, name: &str) -> Result<&'a Matrix, CoreError> {
    params.find(name).ok_or_else(|| bad(format!("the model has no tensor `{name}`")))
}

/// Applies `f` to each sample's values along dimension 1 (a row; or, for images, the channels at
/// one position).
fn along_dim1(v: &mut Value, mut f: impl FnMut(&mut [f32])) {
    match v {
        Value::Rows(m) => {
            for i in 0..m.rows() {
                f(m.row_mut(i));
            }
        }
        Value::Images { n, c, h, w, data } => {
            let plane = *h * *w;
            let mut buf = vec![0.0; *c];
            for s in 0..*n {
                for p in 0..plane {
                    for (ch, b) in buf.iter_mut().enumerate() {
                        *b = data[(s * *c + ch) * plane + p];
                    }
                    f(&mut buf);
                    for (ch, b) in buf.iter().enumerate() {
                        data[(s * *c + ch) * plane + p] = *b;
                    }
                }
            }
        }
    }
}

fn rows<'a>(v: &'a mut Value, op: &Op) -> Result<&'a mut Matrix, CoreError> {
    match v {
        Value::Rows(m) => Ok(m),
        Value::Images { .. } => Err(bad(format!("{op:?} needs rows, the batch is images (add `from_image`)"))),
    }
}

/// Runs `ops` on `x` (a row per sample) with the tensors of `params`: the reference interpreter,
/// in plain loops on the host.
pub fn run(ops: &[Op], params: &Params, x: &Matrix) -> Result<Matrix, CoreError> {
    let mut v = Value::Rows(x.clone());
    for op in ops {
        match op {
            Op::L2Normalize { eps } => {
                let m = rows(&mut v, op)?;
                for i in 0..m.rows() {
                    let r = m.row_mut(i);
                    let norm = r.iter().map(|a| a * a).sum::<f32>().sqrt();
                    r.iter_mut().for_each(|a| *a /= eps + norm);
                }
            }
            Op::UnitNorm { guard } => {
                let m = rows(&mut v, op)?;
                for i in 0..m.rows() {
                    let r = m.row_mut(i);
                    let norm = r.iter().map(|a| a * a).sum::<f32>().sqrt().max(*guard);
                    r.iter_mut().for_each(|a| *a /= norm);
                }
            }
            Op::PeakNorm { guard } => {
                let m = rows(&mut v, op)?;
                for i in 0..m.rows() {
                    let r = m.row_mut(i);
                    let peak = r.iter().copied().fold(f32::NEG_INFINITY, f32::max).max(*guard);
                    r.iter_mut().for_each(|a| *a /= peak);
                }
            }
            Op::SubtractMean { gain } => {
                let m = rows(&mut v, op)?;
                for i in 0..m.rows() {
                    let r = m.row_mut(i);
                    let mean = r.iter().sum::<f32>() / r.len() as f32;
                    r.iter_mut().for_each(|a| *a -= gain * mean);
                }
            }
            Op::Linear { weight, bias } => {
                let w = tensor(params, weight)?;
                let b = bias.as_deref().map(|b| tensor(params, b)).transpose()?;
                let m = rows(&mut v, op)?;
                if w.cols() != m.cols() || b.is_some_and(|b| b.len() != w.rows()) {
                    return Err(bad(format!(
                        "`{weight}` is {}×{} and the batch has {} features",
                        w.rows(),
                        w.cols(),
                        m.cols()
                    )));
                }
                let out = Matrix::from_fn(m.rows(), w.rows(), |i, j| {
                    let dot: f32 = m.row(i).iter().zip(w.row(j)).map(|(a, b)| a * b).sum();
                    dot + b.map_or(0.0, |b| b.as_slice()[j])
                });
                v = Value::Rows(out);
            }
            Op::Relu => along_dim1(&mut v, |r| r.iter_mut().for_each(|a| *a = a.max(0.0))),
            Op::KWinners { k } => {
                let mut err = None;
                along_dim1(&mut v, |r| {
                    if *k >= r.len() {
                        err = Some(bad(format!("k-winners with k = {k} over {} values", r.len())));
                        return;
                    }
                    let mut sorted = r.to_vec();
                    sorted.sort_by(|a, b| b.total_cmp(a));
                    let theta = sorted[*k];
                    r.iter_mut().for_each(|a| *a = (*a - theta).max(0.0));
                });
                if let Some(e) = err {
                    return Err(e);
                }
            }
            Op::Inhibitory { gain } => along_dim1(&mut v, |r| {
                let mean = r.iter().sum::<f32>() / r.len() as f32;
                let std = (r.iter().map(|a| (a - mean) * (a - mean)).sum::<f32>() / r.len() as f32).sqrt();
                r.iter_mut().for_each(|a| *a = (*a - (mean + gain * std)).max(0.0));
            }),
            Op::Triangle => along_dim1(&mut v, |r| {
                let mean = r.iter().sum::<f32>() / r.len() as f32;
                r.iter_mut().for_each(|a| *a = (*a - mean).max(0.0));
            }),
            Op::Power { n } => along_dim1(&mut v, |r| r.iter_mut().for_each(|a| *a = a.powf(*n))),
            Op::DivisiveNorm { constant } => {
                let m = rows(&mut v, op)?;
                for i in 0..m.rows() {
                    let r = m.row_mut(i);
                    let total = constant + r.iter().sum::<f32>();
                    r.iter_mut().for_each(|a| *a /= total);
                }
            }
            Op::Softmax { beta } => {
                let m = rows(&mut v, op)?;
                for i in 0..m.rows() {
                    let r = m.row_mut(i);
                    let peak = r.iter().map(|a| beta * a).fold(f32::NEG_INFINITY, f32::max);
                    r.iter_mut().for_each(|a| *a = (*beta * *a - peak).exp());
                    let total: f32 = r.iter().sum();
                    r.iter_mut().for_each(|a| *a /= total);
                }
            }
            Op::ToImage { height, width, channels } => {
                let m = rows(&mut v, op)?;
                let (h, w, c) = (*height, *width, *channels);
                if m.cols() != h * w * c {
                    return Err(bad(format!("{h}×{w}×{c} images from rows of {}", m.cols())));
                }
                let n = m.rows();
                let mut data = vec![0.0; n * c * h * w];
                for s in 0..n {
                    for (p, px) in m.row(s).chunks(c).enumerate() {
                        for (ch, val) in px.iter().enumerate() {
                            data[(s * c + ch) * h * w + p] = *val;
                        }
                    }
                }
                v = Value::Images { n, c, h, w, data };
            }
            Op::Conv2d { weight, bias, kernel, padding } => {
                let Value::Images { n, c, h, w, data } = &v else {
                    return Err(bad("conv2d needs images (add `to_image`)".into()));
                };
                let (n, c, h, w, k, pad) = (*n, *c, *h, *w, *kernel, *padding);
                let wt = tensor(params, weight)?;
                let b = tensor(params, bias)?;
                if wt.cols() != k * k * c || b.len() != wt.rows() {
                    return Err(bad(format!("`{weight}` is {}×{}, not C×{}", wt.rows(), wt.cols(), k * k * c)));
                }
                let (oh, ow, co) =
                    ((h + 2 * pad + 1).saturating_sub(k), (w + 2 * pad + 1).saturating_sub(k), wt.rows());
                let mut out = vec![0.0; n * co * oh * ow];
                for s in 0..n {
                    for o in 0..co {
                        let filter = wt.row(o);
                        for y in 0..oh {
                            for x in 0..ow {
                                let mut acc = b.as_slice()[o];
                                for dy in 0..k {
                                    for dx in 0..k {
                                        let (iy, ix) =
                                            ((y + dy) as isize - pad as isize, (x + dx) as isize - pad as isize);
                                        if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                            continue;
                                        }
                                        for ch in 0..c {
                                            let pixel = data[((s * c + ch) * h + iy as usize) * w + ix as usize];
                                            acc += filter[(dy * k + dx) * c + ch] * pixel;
                                        }
                                    }
                                }
                                out[((s * co + o) * oh + y) * ow + x] = acc;
                            }
                        }
                    }
                }
                v = Value::Images { n, c: co, h: oh, w: ow, data: out };
            }
            Op::MaxPool2d { kernel, stride, padding } => {
                let Value::Images { n, c, h, w, data } = &v else {
                    return Err(bad("max_pool2d needs images".into()));
                };
                let (n, c, h, w, k, st, pad) = (*n, *c, *h, *w, *kernel, *stride, *padding);
                let (oh, ow) = ((h + 2 * pad - k) / st + 1, (w + 2 * pad - k) / st + 1);
                let mut out = vec![0.0; n * c * oh * ow];
                for plane in 0..n * c {
                    for y in 0..oh {
                        for x in 0..ow {
                            let mut best = f32::NEG_INFINITY;
                            for dy in 0..k {
                                for dx in 0..k {
                                    let (iy, ix) =
                                        ((y * st + dy) as isize - pad as isize, (x * st + dx) as isize - pad as isize);
                                    if iy >= 0 && ix >= 0 && iy < h as isize && ix < w as isize {
                                        best = best.max(data[(plane * h + iy as usize) * w + ix as usize]);
                                    }
                                }
                            }
                            out[(plane * oh + y) * ow + x] = best;
                        }
                    }
                }
                v = Value::Images { n, c, h: oh, w: ow, data: out };
            }
            Op::FromImage => {
                let Value::Images { n, c, h, w, data } = &v else {
                    return Err(bad("from_image needs images".into()));
                };
                let (n, c, h, w) = (*n, *c, *h, *w);
                let out = Matrix::from_fn(n, h * w * c, |s, j| {
                    let (p, ch) = (j / c, j % c);
                    data[(s * c + ch) * h * w + p]
                });
                v = Value::Rows(out);
            }
        }
    }
    match v {
        Value::Rows(m) => Ok(m),
        Value::Images { .. } => Err(bad("the pass ends with images, not logits (add `from_image`)".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(tensors: Vec<(&str, Matrix)>) -> Params {
        Params { tensors: tensors.into_iter().map(|(n, m)| (n.to_string(), m)).collect() }
    }

    #[test]
    fn a_linear_relu_pass_is_computed_by_hand() {
        let p = params(vec![
            ("l.weight", Matrix::new(2, 3, vec![1.0, 0.0, -1.0, 0.5, 0.5, 0.5]).unwrap()),
            ("l.bias", Matrix::row_vector(vec![0.0, -1.0])),
        ]);
        let x = Matrix::new(1, 3, vec![1.0, 2.0, 3.0]).unwrap();
        let ops = [Op::Linear { weight: "l.weight".into(), bias: Some("l.bias".into()) }, Op::Relu];
        // (1 − 3, 0.5·6 − 1) = (−2, 2) → relu → (0, 2)
        assert_eq!(run(&ops, &p, &x).unwrap().as_slice(), &[0.0, 2.0]);
    }

    #[test]
    fn k_winners_keeps_the_margin_over_the_next_value() {
        let x = Matrix::new(1, 4, vec![3.0, 1.0, 4.0, 2.0]).unwrap();
        let out = run(&[Op::KWinners { k: 2 }], &Params::default(), &x).unwrap();
        assert_eq!(out.as_slice(), &[1.0, 0.0, 2.0, 0.0]);
        assert!(run(&[Op::KWinners { k: 4 }], &Params::default(), &x).is_err());
    }

    #[test]
    fn images_round_trip_and_a_one_by_one_conv_is_a_per_pixel_product() {
        // 2×2 image, 2 channels, pixels in (row, column, channel) order.
        let x = Matrix::new(1, 8, vec![1.0, 10.0, 2.0, 20.0, 3.0, 30.0, 4.0, 40.0]).unwrap();
        let there_and_back = [Op::ToImage { height: 2, width: 2, channels: 2 }, Op::FromImage];
        assert_eq!(run(&there_and_back, &Params::default(), &x).unwrap().as_slice(), x.as_slice());
        let p = params(vec![
            ("c.weight", Matrix::new(1, 2, vec![1.0, 0.1]).unwrap()),
            ("c.bias", Matrix::row_vector(vec![0.5])),
        ]);
        let ops = [
            Op::ToImage { height: 2, width: 2, channels: 2 },
            Op::Conv2d { weight: "c.weight".into(), bias: "c.bias".into(), kernel: 1, padding: 0 },
            Op::MaxPool2d { kernel: 2, stride: 2, padding: 0 },
            Op::FromImage,
        ];
        // Per pixel 1·a + 0.1·b + 0.5 = 2.5, 4.5, 6.5, 8.5; the pool keeps the largest.
        assert_eq!(run(&ops, &p, &x).unwrap().as_slice(), &[8.5]);
    }

    #[test]
    fn ops_read_and_write_as_tagged_json() {
        let ops = vec![Op::L2Normalize { eps: 1e-6 }, Op::Linear { weight: "w".into(), bias: None }, Op::Triangle];
        let text = serde_json::to_string(&ops).unwrap();
        assert!(
            text.starts_with(r#"[{"op":"l2_normalize","eps":0.000001},{"op":"linear","weight":"w","bias":null}"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Vec<Op>>(&text).unwrap(), ops);
    }
}
