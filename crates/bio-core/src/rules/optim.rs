//! Adam (Kingma & Ba 2015), the one optimizer state of the workspace's rules: `bp`, `bpconv` and
//! every frozen-feature readout keep their moments, step count and bias correction here, over the
//! backend's fused [`OptimOps::adam_step`](crate::backend::OptimOps::adam_step).

use serde::{Deserialize, Serialize};

use crate::backend::{AdamStep, Backend};
use crate::error::CoreError;
use crate::tensor::Matrix;

/// Decay of the first moment, `β₁`.
pub const ADAM_BETA1: f32 = 0.9;
/// Decay of the second moment, `β₂`.
pub const ADAM_BETA2: f32 = 0.999;
/// The guard `ε` of `√v + ε`.
pub const ADAM_EPS: f32 = 1e-8;

/// Adam's state for a list of parameter tensors: their first and second moments and the steps
/// taken.
#[derive(Clone, Debug)]
pub struct Adam<B: Backend> {
    /// `(m, v)` of each tensor, in the order the steps give them; empty before the first step.
    moments: Vec<(B::Tensor, B::Tensor)>,
    /// Steps taken.
    steps: u64,
}

impl<B: Backend> Default for Adam<B> {
    fn default() -> Self {
        Self { moments: Vec::new(), steps: 0 }
    }
}

/// The host form of an [`Adam`] state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamState {
    /// Steps taken.
    pub steps: u64,
    /// `m, v` of the first tensor, then of the second, …; empty before the first step.
    pub moments: Vec<Matrix>,
}

impl<B: Backend> Adam<B> {
    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// One step `t` of every tensor `θ` with its gradient `g` (same order on every call):
    /// `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`, `θ ← θ − lr_t·m/(√v + ε)` with the bias
    /// correction folded into `lr_t = lr·√(1−β₂ᵗ)/(1−β₁ᵗ)`. The moments start at zero.
    pub fn step(&mut self, b: &B, params: &mut [&mut B::Tensor], grads: &[B::Tensor], lr: f32) {
        assert_eq!(params.len(), grads.len(), "one gradient per parameter tensor");
        if self.moments.is_empty() {
            self.moments = params
                .iter()
                .map(|p| {
                    let (r, c) = b.shape(p);
                    (b.full(r, c, 0.0), b.full(r, c, 0.0))
                })
                .collect();
        }
        self.steps += 1;
        let t = self.steps.min(i32::MAX as u64) as i32;
        let (beta1, beta2) = (ADAM_BETA1, ADAM_BETA2);
        let s =
            AdamStep { lr_t: lr * (1.0 - beta2.powi(t)).sqrt() / (1.0 - beta1.powi(t)), beta1, beta2, eps: ADAM_EPS };
        for ((p, g), (m, v)) in params.iter_mut().zip(grads).zip(&mut self.moments) {
            b.adam_step(p, g, m, v, s);
        }
    }

    /// Host copy of the state.
    pub fn save(&self, b: &B) -> AdamState {
        let moments = self.moments.iter().flat_map(|(m, v)| [b.download(m), b.download(v)]).collect();
        AdamState { steps: self.steps, moments }
    }

    /// Puts back a saved state for parameter tensors of `shapes`, checking that its moments fit
    /// them and are finite; `what` names the optimizer in errors.
    pub fn restore(&mut self, b: &B, shapes: &[(usize, usize)], state: AdamState, what: &str) -> Result<(), CoreError> {
        let moments = &state.moments;
        if !moments.is_empty() && moments.len() != 2 * shapes.len() {
            return Err(CoreError::Incompatible(format!(
                "the {what} optimizer state holds {} tensors, expected {}",
                moments.len(),
                2 * shapes.len()
            )));
        }
        for (i, m) in moments.iter().enumerate() {
            let shape = shapes[i / 2];
            if m.shape() != shape || !m.all_finite() {
                return Err(CoreError::Incompatible(format!(
                    "{what} optimizer moment {i} is {}×{}, expected a finite {}×{}",
                    m.rows(),
                    m.cols(),
                    shape.0,
                    shape.1
                )));
            }
        }
        self.moments = moments.chunks(2).map(|mv| (b.upload(&mv[0]), b.upload(&mv[1]))).collect();
        self.steps = state.steps;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::ReferenceBackend;

    #[test]
    fn the_first_step_moves_each_weight_by_the_rate_against_its_gradient() {
        // At t = 1, m̂ = g and v̂ = g², so every weight moves by lr·g/(|g| + ε) ≈ ±lr.
        let b = ReferenceBackend;
        let mut p = Matrix::from_fn(2, 3, |i, j| (i * 3 + j) as f32);
        let g = Matrix::from_fn(2, 3, |i, j| if (i + j) % 2 == 0 { 0.5 } else { -2.0 });
        let before = p.clone();
        let mut adam = Adam::<ReferenceBackend>::default();
        adam.step(&b, &mut [&mut p], std::slice::from_ref(&g), 0.1);
        for i in 0..2 {
            for j in 0..3 {
                let moved = p.get(i, j) - before.get(i, j);
                assert!((moved + 0.1 * g.get(i, j).signum()).abs() < 1e-5, "({i}, {j}) moved {moved}");
            }
        }
        assert_eq!(adam.steps(), 1);
    }

    #[test]
    fn a_restored_state_continues_bit_for_bit_and_a_wrong_one_is_refused() {
        let b = ReferenceBackend;
        let g = [Matrix::from_fn(2, 2, |i, j| i as f32 - j as f32 + 0.3), Matrix::from_fn(1, 2, |_, j| j as f32 - 0.7)];
        let (mut w, mut c) = (Matrix::zeros(2, 2), Matrix::zeros(1, 2));
        let mut adam = Adam::<ReferenceBackend>::default();
        adam.step(&b, &mut [&mut w, &mut c], &g, 0.01);
        let saved = adam.save(&b);
        assert_eq!(saved.moments.len(), 4);
        let mut resumed = Adam::<ReferenceBackend>::default();
        resumed.restore(&b, &[(2, 2), (1, 2)], saved.clone(), "test").expect("fits");
        let (mut w2, mut c2) = (w.clone(), c.clone());
        adam.step(&b, &mut [&mut w, &mut c], &g, 0.01);
        resumed.step(&b, &mut [&mut w2, &mut c2], &g, 0.01);
        assert_eq!((w, c), (w2, c2));
        let mut fresh = Adam::<ReferenceBackend>::default();
        assert!(fresh.restore(&b, &[(2, 2)], saved.clone(), "test").is_err(), "two tensors' state for one");
        assert!(fresh.restore(&b, &[(2, 2), (2, 1)], saved, "test").is_err(), "a moment of the wrong shape");
        let empty = AdamState { steps: 0, moments: Vec::new() };
        assert!(fresh.restore(&b, &[(2, 2)], empty, "test").is_ok(), "the state before the first step");
    }
}
