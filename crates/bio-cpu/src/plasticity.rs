//! The `bio` plasticity step fused per neuron: each row of the weights is read and written a few
//! times while it sits in L1, instead of a dozen weight-sized temporaries (see docs/PERFORMANCE.md).

use bio_core::backend::{NORM_GUARD, composed_plasticity_step};
use bio_core::{PlasticityOps, PlasticityStep, ScalingNorm, WeightChange};
use ndarray::Array2;
use rayon::prelude::*;

use crate::CpuBackend;
use crate::elementwise::exp;

/// One neuron's weights, mask, pull and wins, as the zipped row iterators yield them.
type NeuronRow<'a> = (((&'a mut [f32], &'a mut [f32]), &'a [f32]), &'a f32);

impl PlasticityOps for CpuBackend {
    fn plasticity_step(
        &self,
        weights: &mut Array2<f32>,
        mask: &mut Array2<f32>,
        pull: &Array2<f32>,
        wins: &Array2<f32>,
        step: &PlasticityStep,
    ) {
        let (rows, cols) = weights.dim();
        assert_eq!(mask.dim(), (rows, cols), "plasticity_step: mask shape differs from the weights'");
        assert_eq!(pull.dim(), (rows, cols), "plasticity_step: pull shape differs from the weights'");
        assert_eq!(wins.dim(), (rows, 1), "plasticity_step: wins must be one value per neuron");
        if !(weights.is_standard_layout() && mask.is_standard_layout() && pull.is_standard_layout()) || cols == 0 {
            return composed_plasticity_step(self, weights, mask, pull, wins, step);
        }
        let wins: Vec<f32> = wins.iter().copied().collect();
        let w = weights.as_slice_mut().expect("standard layout");
        let m = mask.as_slice_mut().expect("standard layout");
        let p = pull.as_slice().expect("standard layout");
        let job = |(((w, m), p), &wins): NeuronRow<'_>| plasticity_row(w, m, p, wins, step);
        if self.parallel(rows * cols) {
            self.install(|| {
                w.par_chunks_mut(cols).zip(m.par_chunks_mut(cols)).zip(p.par_chunks(cols)).zip(&wins).for_each(job)
            });
        } else {
            w.chunks_mut(cols).zip(m.chunks_mut(cols)).zip(p.chunks(cols)).zip(&wins).for_each(job);
        }
    }
}

/// One neuron: the composed definition's arithmetic (`bio_core::backend::hebbian_change`,
/// `prune_weak_synapses`, `scale_synapses`) entry by entry, in the same order; the only change is
/// `|w|·(wins/g)` for `|w|/g·wins` (a divide per synapse cost more than the rest of the step).
fn plasticity_row(w: &mut [f32], m: &mut [f32], pull: &[f32], wins: f32, s: &PlasticityStep) {
    // Σ|W| or √ΣW² whether or not the layer is signed (the L1 norm of |W| and of W agree).
    let g = norm(w, s.norm).max(NORM_GUARD);
    match (s.change, s.signed) {
        (WeightChange::Multiplicative, false) => multiplicative::<false>(w, pull, g, wins, s.step),
        (WeightChange::Multiplicative, true) => multiplicative::<true>(w, pull, g, wins, s.step),
        (WeightChange::Additive { unit }, signed) => {
            let pressure = wins / g;
            for ((w, &m), &p) in w.iter_mut().zip(m.iter()).zip(pull) {
                let magnitude = if signed { w.abs() } else { *w };
                let delta = s.step * p - s.step * (magnitude * pressure);
                *w = (*w + unit * delta) * m;
            }
        }
    }
    if let Some(fraction) = s.prune_below {
        let present = (sum_f64(m, f64::from) as f32).max(NORM_GUARD);
        let mean = sum_abs(w) / present;
        let threshold = fraction * mean;
        for (w, m) in w.iter_mut().zip(m.iter_mut()) {
            *m *= if w.abs() > threshold { 1.0 } else { 0.0 };
            *w *= *m;
        }
    }
    if let Some(total) = s.scale_to {
        let factor = total * (1.0 / norm(w, s.norm).max(NORM_GUARD));
        w.iter_mut().for_each(|w| *w *= factor);
    }
}

/// `W ← W ⊙ exp(s·pull − s·(w̃·wins))`, `w̃ = |W|/g` (or `W/g` for a positive layer); monomorphized
/// so the loop has no branch and vectorizes.
fn multiplicative<const SIGNED: bool>(w: &mut [f32], pull: &[f32], g: f32, wins: f32, step: f32) {
    // One rounding away from `|w|/g·wins`: a multiply instead of a divide per synapse.
    let pressure = wins / g;
    for (w, &p) in w.iter_mut().zip(pull) {
        let magnitude = if SIGNED { w.abs() } else { *w };
        *w *= exp(step * p - step * (magnitude * pressure));
    }
}

/// `Σ|w|` or `√Σw²`, accumulated in `f64` like the CPU reductions.
fn norm(w: &[f32], kind: ScalingNorm) -> f32 {
    match kind {
        ScalingNorm::L1 => sum_abs(w),
        ScalingNorm::L2 => (sum_squares(w) as f32).sqrt(),
    }
}

fn sum_abs(w: &[f32]) -> f32 {
    sum_f64(w, |x| x.abs() as f64) as f32
}

fn sum_squares(w: &[f32]) -> f64 {
    sum_f64(w, |x| (x * x) as f64)
}

/// `Σ f(x)` in `f64` over 8 independent partial sums (a single running sum is a latency-bound chain).
#[inline]
fn sum_f64(w: &[f32], f: impl Fn(f32) -> f64) -> f64 {
    let mut lanes = [0f64; 8];
    let chunks = w.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|&x| f(x)).sum();
    for c in chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l += f(x);
        }
    }
    lanes.iter().sum::<f64>() + tail
}
