//! Shared by the GPU-only test files (`mod common;`).

use std::time::Instant;

use bio_core::TensorStore;
use bio_cuda::CudaBackend;

/// Median wall time of `f` over `reps` runs (each synchronized), in microseconds.
pub fn time_us(gpu: &CudaBackend, reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    gpu.sync();
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            f();
            gpu.sync();
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[reps / 2]
}
