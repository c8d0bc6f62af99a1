//! Population training against single runs on the CPU (issue 29: "on the CPU where it pays;
//! measure"): `P` `bio` networks 784-2000-10 (the defaults), batch 100, trained `STEPS` steps as one
//! `BioPopulation` and as `P` single runs one after another, on the same backend and threads, with
//! each member's own batches of synthetic images. Prints milliseconds per member-step of each
//! and their ratio (above 1: the population is faster).
//!
//! `cargo run --release -p bio-cpu --example population_timing`; environment: `THREADS` (default
//! 2), `STEPS` (default 30), `SIZES` (default `1 2 4 8`).

use std::time::Instant;

use bio_core::train::train_epoch;
use bio_core::{BioParams, BioPopulation, BioRule, LearningRule, Matrix, TensorStore};
use bio_cpu::CpuBackend;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let (threads, steps) = (env("THREADS", 2), env("STEPS", 30).max(1));
    let sizes: Vec<usize> = std::env::var("SIZES")
        .unwrap_or_else(|_| "1 2 4 8".into())
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    let cpu = CpuBackend::with_threads(threads).expect("a thread pool");
    let config = BioParams::default().check().expect("the defaults are valid");
    let mut state = 12_345u64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    // Half the pixels blank, like a clothing image's background.
    let mut batch = || {
        let images = Matrix::from_fn(100, 784, |_, _| if uniform() < 0.5 { 0.0 } else { uniform() });
        let labels = (0..100).map(|i| i % 10).collect::<Vec<_>>();
        (images, labels)
    };
    println!("bio 784-2000-10, batch 100, {steps} steps, {threads} threads ({})", cpu.name());
    println!("members  population ms/member-step  single runs ms/member-step  ratio");
    for &p in &sizes {
        let data: Vec<Vec<(Matrix, Vec<usize>)>> = (0..p).map(|_| (0..steps).map(|_| batch()).collect()).collect();
        let seeds: Vec<u64> = (0..p as u64).collect();
        // Both timings include building the networks.
        let start = Instant::now();
        let mut population = BioPopulation::new(&cpu, config.clone(), 784, 10, &seeds).expect("a population");
        population.start_epoch(0, 1);
        for s in 0..steps {
            let step: Vec<_> = data.iter().map(|d| d[s].clone()).collect();
            population.train_batch(&step).expect("a step");
        }
        let together = start.elapsed().as_secs_f64() * 1e3 / (steps * p) as f64;
        let start = Instant::now();
        for (m, d) in data.iter().enumerate() {
            let mut rule = BioRule::new(config.clone(), m as u64);
            let mut net = rule.init_model(&cpu, 784, 10, m as u64);
            rule.start_epoch(0, 1);
            train_epoch(&cpu, &mut rule, &mut net, d.iter().cloned(), |_| {}).expect("a run");
        }
        let alone = start.elapsed().as_secs_f64() * 1e3 / (steps * p) as f64;
        println!("{p:>7}  {together:>27.2}  {alone:>26.2}  {:>5.2}", alone / together);
    }
}
