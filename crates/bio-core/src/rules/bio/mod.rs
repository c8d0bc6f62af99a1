//! The `bio` rule: competitive, multiplicative Hebbian plasticity with synaptic scaling, homeostasis
//! and structural plasticity in the hidden layers, and a local sign-preserving readout.
//!
//! Each mechanism is a named function with its equation: here, and for the weight-sized ones
//! (Hebbian change, pruning, scaling) in [`crate::backend::PlasticityOps`], which a backend may fuse
//! into one pass. `docs/LEARNING_RULE.md` gives the whole rule and says which properties hold by construction and which must emerge.

pub(crate) mod model;
pub(crate) mod params;
mod plasticity;
mod population;
mod rule;
#[cfg(test)]
mod tests;

pub use plasticity::{
    hebbian_drive, hidden_plasticity, homeostasis, modulated_plasticity, plasticity_settings, readout_update, regrow,
};
pub use population::BioPopulation;
pub use rule::BioRule;
