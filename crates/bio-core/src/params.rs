//! Hyper-parameters of every rule live in the rule's own folder (`rules/<name>/params.rs`,
//! `rules/conv/mod.rs`); this module re-exports `bio`'s and `bp`'s, the two every front end names,
//! and estimates a training's memory.

pub use crate::rules::bio::params::*;
pub use crate::rules::bp::params::*;

/// Batch-sized tensors kept per layer during a step (input, norms, drive, threshold, activity and
/// their gradients or plasticity terms).
const ACTIVATIONS_PER_LAYER: u64 = 8;

/// A rough upper estimate, in bytes, of what training a network `input_dim → hidden… → classes`
/// on batches of `batch` needs: `copies_per_weight` `f32` copies of every parameter (see
/// [`BIO_COPIES_PER_WEIGHT`], [`BP_COPIES_PER_WEIGHT`]) plus the per-batch activations. Saturates
/// instead of overflowing, so absurd widths give a huge figure rather than a wrong one.
pub fn training_memory_estimate(
    input_dim: usize,
    hidden: &[usize],
    classes: usize,
    batch: usize,
    copies_per_weight: u64,
) -> u64 {
    let f32_bytes = 4u64;
    let mut dims = vec![input_dim as u64];
    dims.extend(hidden.iter().map(|&h| h as u64));
    dims.push(classes as u64);
    let params =
        dims.windows(2).fold(0u64, |acc, w| acc.saturating_add(w[0].saturating_mul(w[1]).saturating_add(w[1])));
    let units = dims.iter().fold(0u64, |acc, &d| acc.saturating_add(d));
    let activations = units.saturating_mul(batch as u64).saturating_mul(ACTIVATIONS_PER_LAYER);
    params.saturating_mul(copies_per_weight).saturating_add(activations).saturating_mul(f32_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CoreError;

    #[test]
    fn defaults_are_valid() {
        assert!(BioParams::default().check().is_ok());
        assert!(BpParams::default().check().is_ok());
    }

    #[test]
    fn nonsense_is_rejected_naming_the_flag() {
        let bad = |p: BioParams| match p.check() {
            Err(CoreError::InvalidParam { name, .. }) => name,
            other => panic!("expected an error, got {other:?}"),
        };
        assert_eq!(bad(BioParams { hidden: vec![], ..Default::default() }), "hidden");
        assert_eq!(bad(BioParams { hidden: vec![0], ..Default::default() }), "hidden");
        assert_eq!(bad(BioParams { active_fraction: 1.5, ..Default::default() }), "active-fraction");
        assert_eq!(bad(BioParams { hidden: vec![4], active_fraction: 0.9, ..Default::default() }), "active-fraction");
        assert_eq!(bad(BioParams { hebbian_rate: -1.0, ..Default::default() }), "hebbian-rate");
        assert_eq!(bad(BioParams { fast_fraction: 1.5, ..Default::default() }), "fast-fraction");
        assert_eq!(bad(BioParams { hebbian_rate_end: Some(0.0), ..Default::default() }), "hebbian-rate-end");
        assert_eq!(bad(BioParams { reward_modulation: Some(-0.5), ..Default::default() }), "reward-modulation");
        assert_eq!(bad(BioParams { readout_gating: Some(f32::NAN), ..Default::default() }), "readout-gating");
        assert_eq!(bad(BioParams { metaplasticity: Some(0.0), ..Default::default() }), "metaplasticity");
        assert_eq!(bad(BioParams { metaplastic_homeostasis: true, ..Default::default() }), "metaplastic-homeostasis");
        assert_eq!(bad(BioParams { hebbian_rate_end: Some(f32::INFINITY), ..Default::default() }), "hebbian-rate-end");
        assert_eq!(
            bad(BioParams { fast_fraction: 0.5, fast_hebbian_rate: f32::NAN, ..Default::default() }),
            "fast-rate"
        );
        let no_slow_rate =
            BioParams { fast_fraction: 0.5, fast_hebbian_rate: 0.01, hebbian_rate: 0.0, ..Default::default() };
        assert_eq!(bad(no_slow_rate), "fast-fraction");
        assert_eq!(bad(BioParams { readout_rate: f32::NAN, ..Default::default() }), "readout-rate");
        let bp = BpParams { learning_rate: 0.0, ..Default::default() };
        assert!(matches!(bp.check(), Err(CoreError::InvalidParam { name, .. }) if name == "lr"));
    }

    #[test]
    fn winners_follow_the_active_fraction() {
        let c = BioParams::default().check().unwrap();
        assert_eq!(c.winners(2000), 100);
        assert_eq!(c.winners(10), 1);
    }
}
