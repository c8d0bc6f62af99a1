//! Times the fused conv forward pass (`ConvOps::kwta_layer`) at the conv front's shapes: a batch
//! of 100 28×28 images, 96 filters of 5×5 (padding 2), 10 winners per position, max pooling 4/2/1
//! and the relative activity (what a Hebbian step asks for). For profiling the pass in isolation
//! (`perf record` on this binary); the acceptance figures come from `cargo xtask bench --conv`.
//!
//! `cargo run --release -p bio-cpu --example kwta_layer_timing`; environment: `THREADS` (default
//! 2), `REPS` (default 30), `NO_RELATIVE=1` to leave the relative activity out.

use std::time::Instant;

use bio_core::backend::{ConvOps, KwtaSpec, Window};
use bio_cpu::CpuBackend;
use ndarray::Array2;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let (threads, reps) = (env("THREADS", 2), env("REPS", 30).max(1));
    let cpu = CpuBackend::with_threads(threads).expect("a thread pool");
    let mut state = 12_345u64;
    let mut uniform = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    // Half the pixels blank, like a clothing image's background; positive filters (the default start).
    let x = Array2::from_shape_fn((100, 784), |_| if uniform() < 0.5 { 0.0 } else { uniform() });
    let weights = Array2::from_shape_fn((96, 25), |_| uniform() * 0.2);
    let bias = Array2::zeros((1, 96));
    let conv = Window { height: 28, width: 28, channels: 1, kernel: 5, stride: 1, padding: 2 };
    let pool = Window { height: 28, width: 28, channels: 96, kernel: 4, stride: 2, padding: 1 };
    let relative = std::env::var("NO_RELATIVE").is_err();
    let spec = KwtaSpec { conv: &conv, k: 10, pool: Some(&pool), relative };
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(cpu.kwta_layer(&x, &weights, &bias, &spec));
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "kwta_layer, batch 100, 96:5, pool 4/2/1, relative {relative}, {threads} threads: best {:.2} ms, median {:.2} ms ({reps} runs)",
        times[0],
        times[reps / 2]
    );
}
