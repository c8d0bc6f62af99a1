//! Shared inputs of biorule's criterion benchmarks (run them with `cargo xtask bench`).

use bio_core::Matrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A deterministic matrix of uniform values in `[0, 1)`, like a batch of pixels.
pub fn uniform(rows: usize, cols: usize, seed: u64) -> Matrix {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Matrix::from_fn(rows, cols, |_, _| rng.random::<f32>())
}

/// Labels `0..classes` cycling over `n` samples.
pub fn labels(n: usize, classes: usize) -> Vec<usize> {
    (0..n).map(|i| i % classes).collect()
}
