//! Backpropagation with Adam or SGD-momentum on the mean cross-entropy: the baseline.

mod rule;

pub use rule::BackpropRule;
