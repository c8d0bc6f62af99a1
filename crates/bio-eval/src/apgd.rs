//! Auto-PGD (APGD, Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble
//! of diverse parameter-free attacks"), written from the paper's description.
//!
//! Per image, from a random start in the ball: a signed-gradient (L∞) or normalized-gradient (L2) step
//! of size `η`, starting at `2·eps`, followed by momentum `α = 0.75`:
//! `z = P(x_k + η·dir(∇L(x_k)))`, `x_{k+1} = P(x_k + α(z − x_k) + (1 − α)(x_k − x_{k−1}))`.
//! At the checkpoints `w_j = ⌈p_j·N⌉` (`p_0 = 0`, `p_1 = 0.22`,
//! `p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)`) the step is halved, and the iterate restarted
//! from the best point so far, when fewer than 75% of the steps since the last checkpoint raised the
//! loss, or when neither the step nor the best loss changed since then. `P` is the projection onto
//! the ball intersected with [0, 1] (for L2: onto the ball, then clamped to [0, 1], which stays in the
//! ball). Losses: the cross-entropy of the label (APGD-CE), or the targeted DLR loss
//! `−(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2 + 1e-12)` (APGD-T; `π` orders the logits, largest first),
//! both maximized.
//!
//! The per-image bookkeeping (steps, counters, best points) runs on the host; the model's forward and
//! backward passes run on its backend, one call per iteration for the images still being attacked.
//! An image leaves the batch once it is misclassified (`early_stop`), which is what makes the
//! ensemble of [`crate::ensemble`] affordable.

use bio_core::{Backend, Classifier, Matrix};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::attack::Norm;

/// Default number of APGD iterations.
pub const DEFAULT_ITERATIONS: usize = 100;
/// Default number of target classes of APGD-T (the reference setting: the 9 highest-scoring other
/// classes of the clean image).
pub const DEFAULT_DLR_TARGETS: usize = 9;
/// Momentum `α` of the APGD update.
pub const MOMENTUM: f32 = 0.75;
/// Fraction `ρ` of loss-raising steps below which the step is halved at a checkpoint.
pub const RHO: f32 = 0.75;
/// Guard of the DLR loss's denominator.
const DLR_GUARD: f32 = 1e-12;

/// The loss APGD maximizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApgdLoss {
    /// Cross-entropy of the attacked label (untargeted).
    CrossEntropy,
    /// The targeted difference-of-logits-ratio loss toward one target class per image (needs at least
    /// 4 classes: it reads the 1st, 3rd and 4th largest logits).
    TargetedDlr,
}

/// One APGD run's settings (validated by the caller).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ApgdRun {
    /// Norm of the ball.
    pub norm: Norm,
    /// Radius of the ball (> 0).
    pub eps: f32,
    /// Iterations (≥ 1).
    pub iterations: usize,
    /// The loss.
    pub loss: ApgdLoss,
    /// Stop attacking an image once the model misclassifies it. Without it (transfer attacks, whose
    /// examples should be confidently wrong on the source) the point of largest loss is returned.
    pub early_stop: bool,
}

/// What an attack returns for a set of images.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The adversarial images: for a fooled image the first iterate that fooled the model, else the
    /// iterate of largest loss.
    pub adversarial: Matrix,
    /// Whether the attacked model misclassifies each adversarial image.
    pub fooled: Vec<bool>,
    /// Forward-and-backward passes spent, summed over images.
    pub gradient_evaluations: usize,
}

/// The iterations after which APGD checks its progress: `⌈p_j·N⌉` for `p_1 = 0.22`,
/// `p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)`, while `p_j ≤ 1`, without repeats.
pub fn checkpoints(iterations: usize) -> Vec<usize> {
    let (mut previous, mut p) = (0.0f64, 0.22f64);
    let mut out: Vec<usize> = Vec::new();
    while p <= 1.0 {
        // The guard keeps 0.22·100 = 22.000000000000004 from rounding up to 23.
        let w = (p * iterations as f64 - 1e-9).ceil() as usize;
        if w > 0 && out.last() != Some(&w) {
            out.push(w);
        }
        let next = p + (p - previous - 0.03).max(0.06);
        previous = p;
        p = next;
    }
    out
}

/// Per-row loss values and `∂L/∂z` of `loss` for logits `z` (host), labels and targets.
fn loss_and_dlogits(z: &Matrix, labels: &[usize], targets: Option<&[usize]>, loss: ApgdLoss) -> (Vec<f32>, Matrix) {
    let (n, c) = z.shape();
    let mut values = Vec::with_capacity(n);
    let mut dz = Matrix::zeros(n, c);
    for (i, &y) in labels.iter().enumerate().take(n) {
        let row = z.row(i);
        let d = dz.row_mut(i);
        match loss {
            ApgdLoss::CrossEntropy => {
                let top = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let sum: f32 = row.iter().map(|v| (v - top).exp()).sum();
                for (j, out) in d.iter_mut().enumerate() {
                    *out = (row[j] - top).exp() / sum;
                }
                values.push(sum.ln() + top - row[y]);
                d[y] -= 1.0;
            }
            ApgdLoss::TargetedDlr => {
                let t = targets.expect("the targeted loss has targets")[i];
                let mut order: Vec<usize> = (0..c).collect();
                order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
                let denominator = row[order[0]] - 0.5 * (row[order[2]] + row[order[3]]) + DLR_GUARD;
                let numerator = row[y] - row[t];
                values.push(-numerator / denominator);
                d[y] -= 1.0 / denominator;
                d[t] += 1.0 / denominator;
                let dden = numerator / (denominator * denominator);
                d[order[0]] += dden;
                d[order[2]] -= 0.5 * dden;
                d[order[3]] -= 0.5 * dden;
            }
        }
    }
    (values, dz)
}

/// Index of the largest entry of each row.
pub(crate) fn argmax_rows(z: &Matrix) -> Vec<usize> {
    (0..z.rows())
        .map(|i| z.row(i).iter().enumerate().fold(0, |best, (j, &v)| if v > z.row(i)[best] { j } else { best }))
        .collect()
}

/// Losses, input gradients and predictions of `model` at the rows of `x`.
fn evaluate<B: Backend, M: Classifier<B> + ?Sized>(
    model: &M,
    x: &Matrix,
    labels: &[usize],
    targets: Option<&[usize]>,
    loss: ApgdLoss,
) -> (Vec<f32>, Matrix, Vec<usize>) {
    let b = model.backend();
    let mut values = Vec::new();
    let mut predictions = Vec::new();
    let (_, grad) = model.logits_and_input_vjp(&b.upload(x), &mut |z| {
        let z = b.download(z);
        let (v, dz) = loss_and_dlogits(&z, labels, targets, loss);
        values = v;
        predictions = argmax_rows(&z);
        b.upload(&dz)
    });
    (values, b.download(&grad), predictions)
}

/// The ball around `clean` intersected with [0, 1].
struct Ball<'a> {
    clean: &'a [f32],
    norm: Norm,
    eps: f32,
}

impl Ball<'_> {
    fn project(&self, x: &mut [f32]) {
        match self.norm {
            Norm::Linf => {
                for (v, &c) in x.iter_mut().zip(self.clean) {
                    *v = v.clamp((c - self.eps).max(0.0), (c + self.eps).min(1.0));
                }
            }
            Norm::L2 => {
                let length = x.iter().zip(self.clean).map(|(v, c)| (v - c) * (v - c)).sum::<f32>().sqrt();
                let factor = if length > self.eps { self.eps / length } else { 1.0 };
                for (v, &c) in x.iter_mut().zip(self.clean) {
                    *v = (c + (*v - c) * factor).clamp(0.0, 1.0);
                }
            }
        }
    }

    /// A uniformly random point of the ball (before the pixel clamp).
    fn random_start(&self, rng: &mut ChaCha8Rng) -> Vec<f32> {
        let mut x: Vec<f32> = match self.norm {
            Norm::Linf => self.clean.iter().map(|c| c + self.eps * (2.0 * rng.random::<f32>() - 1.0)).collect(),
            Norm::L2 => {
                let d = self.clean.len();
                let noise: Vec<f32> = (0..d).map(|_| rng.sample::<f32, _>(StandardNormal)).collect();
                let length = noise.iter().map(|v| v * v).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
                let radius = self.eps * rng.random::<f32>().powf(1.0 / d as f32);
                self.clean.iter().zip(&noise).map(|(c, v)| c + v * radius / length).collect()
            }
        };
        self.project(&mut x);
        x
    }

    /// `x + step·dir(g)`, projected: `dir` is the sign (L∞) or the unit vector (L2) of `g`.
    fn step(&self, x: &[f32], g: &[f32], step: f32) -> Vec<f32> {
        let mut out: Vec<f32> = match self.norm {
            Norm::Linf => x.iter().zip(g).map(|(v, d)| v + step * sign(*d)).collect(),
            Norm::L2 => {
                let length = g.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                x.iter().zip(g).map(|(v, d)| v + step * d / length).collect()
            }
        };
        self.project(&mut out);
        out
    }
}

fn sign(v: f32) -> f32 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// One APGD run (one random start) on every row of `clean`.
pub fn apgd<B: Backend, M: Classifier<B> + ?Sized>(
    model: &M,
    run: &ApgdRun,
    clean: &Matrix,
    labels: &[usize],
    targets: Option<&[usize]>,
    rng: &mut ChaCha8Rng,
) -> Outcome {
    let (n, d) = clean.shape();
    let balls: Vec<Ball> = (0..n).map(|i| Ball { clean: clean.row(i), norm: run.norm, eps: run.eps }).collect();
    let mut x = Matrix::zeros(n, d);
    for (i, ball) in balls.iter().enumerate() {
        x.row_mut(i).copy_from_slice(&ball.random_start(rng));
    }
    let mut evaluations = n;
    let (mut loss, mut grad, predictions) = evaluate(model, &x, labels, targets, run.loss);
    let mut fooled: Vec<bool> = predictions.iter().zip(labels).map(|(p, y)| p != y).collect();
    let mut adversarial = x.clone();
    let (mut best_loss, mut best_x, mut best_grad) = (loss.clone(), x.clone(), grad.clone());
    let mut previous = x.clone();
    let mut eta = vec![2.0 * run.eps; n];
    let checkpoints = checkpoints(run.iterations);
    let mut next_checkpoint = 0;
    let mut last_checkpoint = 0usize;
    let mut raised = vec![0usize; n];
    let (mut eta_at_checkpoint, mut best_at_checkpoint) = (eta.clone(), best_loss.clone());

    for k in 0..run.iterations {
        let active: Vec<usize> = (0..n).filter(|&i| !(run.early_stop && fooled[i])).collect();
        if active.is_empty() {
            break;
        }
        let mut candidates = Matrix::zeros(active.len(), d);
        for (row, &i) in active.iter().enumerate() {
            let z = balls[i].step(x.row(i), grad.row(i), eta[i]);
            let next = if k == 0 {
                z
            } else {
                let mut m: Vec<f32> = (0..d)
                    .map(|j| {
                        let xj = x.get(i, j);
                        xj + MOMENTUM * (z[j] - xj) + (1.0 - MOMENTUM) * (xj - previous.get(i, j))
                    })
                    .collect();
                balls[i].project(&mut m);
                m
            };
            candidates.row_mut(row).copy_from_slice(&next);
        }
        let sub_labels: Vec<usize> = active.iter().map(|&i| labels[i]).collect();
        let sub_targets: Option<Vec<usize>> = targets.map(|t| active.iter().map(|&i| t[i]).collect());
        let (new_loss, new_grad, new_predictions) =
            evaluate(model, &candidates, &sub_labels, sub_targets.as_deref(), run.loss);
        evaluations += active.len();
        for (row, &i) in active.iter().enumerate() {
            previous.row_mut(i).copy_from_slice(x.row(i));
            x.row_mut(i).copy_from_slice(candidates.row(row));
            grad.row_mut(i).copy_from_slice(new_grad.row(row));
            if new_loss[row] > loss[i] {
                raised[i] += 1;
            }
            loss[i] = new_loss[row];
            if new_loss[row] > best_loss[i] {
                best_loss[i] = new_loss[row];
                best_x.row_mut(i).copy_from_slice(candidates.row(row));
                best_grad.row_mut(i).copy_from_slice(new_grad.row(row));
            }
            if new_predictions[row] != labels[i] && !fooled[i] {
                fooled[i] = true;
                adversarial.row_mut(i).copy_from_slice(candidates.row(row));
            }
        }
        if checkpoints.get(next_checkpoint) == Some(&(k + 1)) {
            let span = k + 1 - last_checkpoint;
            for &i in &active {
                let too_few_raises = (raised[i] as f32) < RHO * span as f32;
                let stalled = eta_at_checkpoint[i] == eta[i] && best_at_checkpoint[i] == best_loss[i];
                if too_few_raises || stalled {
                    eta[i] /= 2.0;
                    // Restart from the best point, without momentum from the abandoned path.
                    x.row_mut(i).copy_from_slice(best_x.row(i));
                    previous.row_mut(i).copy_from_slice(best_x.row(i));
                    grad.row_mut(i).copy_from_slice(best_grad.row(i));
                    loss[i] = best_loss[i];
                }
                raised[i] = 0;
                eta_at_checkpoint[i] = eta[i];
                best_at_checkpoint[i] = best_loss[i];
            }
            last_checkpoint = k + 1;
            next_checkpoint += 1;
        }
    }
    for (i, &f) in fooled.iter().enumerate() {
        if !f || !run.early_stop {
            adversarial.row_mut(i).copy_from_slice(best_x.row(i));
        }
    }
    if !run.early_stop {
        // The returned points are the largest-loss ones: say whether those fool the model.
        let (_, _, predictions) = evaluate(model, &adversarial, labels, targets, run.loss);
        fooled = predictions.iter().zip(labels).map(|(p, y)| p != y).collect();
    }
    Outcome { adversarial, fooled, gradient_evaluations: evaluations }
}

/// The `count` classes other than `label` that score highest on `logits`, best first.
pub fn top_other_classes(logits: &[f32], label: usize, count: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..logits.len()).filter(|&c| c != label).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    order.truncate(count);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_follow_the_papers_schedule() {
        // p = 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99 (each gap 0.03 shorter, at least 0.06).
        assert_eq!(checkpoints(100), vec![22, 41, 57, 70, 80, 87, 93, 99]);
    }

    #[test]
    fn dlr_gradient_matches_finite_differences() {
        let z = Matrix::new(1, 5, vec![0.3, 2.0, -0.5, 1.1, 0.7]).unwrap();
        let (labels, targets) = ([1usize], [3usize]);
        let (_, dz) = loss_and_dlogits(&z, &labels, Some(&targets), ApgdLoss::TargetedDlr);
        for j in 0..5 {
            let h = 1e-3;
            let (mut plus, mut minus) = (z.clone(), z.clone());
            plus.set(0, j, z.get(0, j) + h);
            minus.set(0, j, z.get(0, j) - h);
            let f = |m: &Matrix| loss_and_dlogits(m, &labels, Some(&targets), ApgdLoss::TargetedDlr).0[0];
            let fd = (f(&plus) - f(&minus)) / (2.0 * h);
            assert!((fd - dz.get(0, j)).abs() < 1e-2, "logit {j}: {fd} vs {}", dz.get(0, j));
        }
    }

    #[test]
    fn cross_entropy_gradient_is_softmax_minus_one_hot() {
        let z = Matrix::new(1, 3, vec![1.0, 2.0, 0.5]).unwrap();
        let (loss, dz) = loss_and_dlogits(&z, &[0], None, ApgdLoss::CrossEntropy);
        let sum: f32 = z.row(0).iter().map(|v| v.exp()).sum();
        assert!((loss[0] - (sum.ln() - 1.0)).abs() < 1e-5);
        assert!((dz.get(0, 0) - (1f32.exp() / sum - 1.0)).abs() < 1e-5);
        assert!((dz.get(0, 1) - 2f32.exp() / sum).abs() < 1e-5);
    }
}
