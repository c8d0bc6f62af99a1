//! Backpropagation with Adam or SGD-momentum on the mean cross-entropy: the baseline.

pub(crate) mod model;
pub(crate) mod params;
mod rule;

pub use rule::BackpropRule;

#[cfg(test)]
mod tests;
