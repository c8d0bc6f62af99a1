//! Forks of one CUDA backend (`CudaBackend::fork`: same context and kernels, a stream and cuBLAS
//! handle of their own) running training steps at the same time, one per thread, give each run
//! exactly the bits it gets alone. This is what lets `bio sweep --jobs N` train N runs side by side on
//! one GPU without changing any run's result. Ignored by default (needs a GPU).

use bio_core::conformance::{random_matrix, rng};
use bio_core::{BioNet, BioParams, BioRule, Classifier, LearningRule, Matrix, Params, TensorStore};
use bio_cuda::CudaBackend;

const INPUT_DIM: usize = 196;
const CLASSES: usize = 10;
const BATCH: usize = 50;
const STEPS: usize = 20;

/// The parameters after `STEPS` `bio` steps from `seed` on `b`.
fn train(b: &CudaBackend, seed: u64) -> Params {
    let config = BioParams { hidden: vec![256], active_fraction: 0.05, ..Default::default() }.check().unwrap();
    let mut model = BioNet::init(b, config.clone(), INPUT_DIM, CLASSES, seed);
    let mut rule = BioRule::new(config, seed);
    rule.start_epoch(0, 1);
    let mut r = rng(seed);
    for step in 0..STEPS {
        let x: Matrix = random_matrix(&mut r, BATCH, INPUT_DIM, 0.0, 1.0);
        let labels: Vec<usize> = (0..BATCH).map(|i| (i * 7 + step) % CLASSES).collect();
        rule.train_batch(&mut model, &b.upload(&x), &labels).unwrap();
    }
    model.to_params()
}

fn bits(p: &Params) -> Vec<(String, Vec<u32>)> {
    p.tensors.iter().map(|(n, m)| (n.clone(), m.as_slice().iter().map(|v| v.to_bits()).collect())).collect()
}

#[test]
#[ignore = "needs a CUDA GPU; run with --include-ignored on a GPU machine"]
fn runs_on_concurrent_forks_equal_their_runs_alone_bit_for_bit() {
    let gpu = CudaBackend::new().unwrap_or_else(|e| panic!("this test needs a CUDA GPU: {e}"));
    let seeds = [1u64, 2, 3, 4, 5, 6, 7, 8];
    let alone: Vec<_> = seeds.iter().map(|&s| bits(&train(&gpu, s))).collect();
    let together: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = seeds
            .iter()
            .map(|&s| {
                let fork = gpu.fork().expect("a fork of a working backend");
                scope.spawn(move || bits(&train(&fork, s)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a member's thread panicked")).collect()
    });
    for ((seed, a), t) in seeds.iter().zip(&alone).zip(&together) {
        assert!(a == t, "seed {seed}: the run on a concurrent fork differs from the run alone");
    }
    // Different seeds give different runs, so the comparison above is not vacuous.
    assert_ne!(alone[0], alone[1]);
}

/// Population training on the device (`BioPopulation`: stacked members, strided batched products,
/// the composed stacked step): after one step all but a few rows of every member's tensors are
/// within 1e-3 of their scale of its single run on the same GPU (a k-WTA tie or a pruning
/// threshold met within rounding moves a row); after `STEPS` steps the deviation is printed, not
/// held; then the time of a population step
/// against its members' single steps one after another at the `bio` MLP's size (784-2000-10,
/// batch 100) for P = 1, 8, 32, 128.
#[test]
#[ignore = "needs a CUDA GPU; run with --include-ignored on a GPU machine"]
fn population_members_track_their_single_runs_and_are_timed() {
    use bio_core::BioPopulation;
    use std::time::Instant;
    let gpu = CudaBackend::new().unwrap_or_else(|e| panic!("this test needs a CUDA GPU: {e}"));
    let config = BioParams { hidden: vec![256], active_fraction: 0.05, ..Default::default() }.check().unwrap();
    let seeds = [1u64, 2, 3, 4];
    let batches = |seed: u64, step: usize| {
        let mut r = rng(seed * 1000 + step as u64);
        let x: Matrix = random_matrix(&mut r, BATCH, INPUT_DIM, 0.0, 1.0);
        (x, (0..BATCH).map(|i| (i * 7 + step) % CLASSES).collect::<Vec<_>>())
    };
    for steps in [1, STEPS] {
        let mut population = BioPopulation::new(&gpu, config.clone(), INPUT_DIM, CLASSES, &seeds).unwrap();
        population.start_epoch(0, 1);
        for step in 0..steps {
            let batch: Vec<_> = seeds.iter().map(|&s| batches(s, step)).collect();
            population.train_batch(&batch).unwrap();
        }
        let (mut worst, mut rows_apart, mut rows_all) = (0.0f32, 0usize, 0usize);
        for (p, (&seed, net)) in seeds.iter().zip(population.networks()).enumerate() {
            let mut model = BioNet::init(&gpu, config.clone(), INPUT_DIM, CLASSES, seed);
            let mut rule = BioRule::new(config.clone(), seed);
            rule.start_epoch(0, 1);
            for step in 0..steps {
                let (x, labels) = batches(seed, step);
                rule.train_batch(&mut model, &gpu.upload(&x), &labels).unwrap();
            }
            for ((name, alone), (_, together)) in model.to_params().tensors.iter().zip(&net.to_params().tensors) {
                let scale = alone.as_slice().iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
                worst = worst.max(alone.max_abs_diff(together) / scale);
                // Rows (neurons, class units) with an entry more than 1e-3 of the scale away: a k-WTA
                // tie or a pruning threshold met within rounding (the batched product and the
                // composed step round differently from the single run's kernels) moves a few.
                let apart = (0..alone.rows())
                    .filter(|&i| alone.row(i).iter().zip(together.row(i)).any(|(a, t)| (a - t).abs() > 1e-3 * scale))
                    .count();
                if steps == 1 {
                    assert!(
                        apart <= (alone.rows() / 50).max(2),
                        "member {p} (seed {seed}), {name}: {apart} of {} rows apart from its single run",
                        alone.rows()
                    );
                }
                (rows_apart, rows_all) = (rows_apart + apart, rows_all + alone.rows());
            }
        }
        eprintln!(
            "population on the device after {steps} steps: {rows_apart} of {rows_all} rows more than 1e-3 of scale from their single runs; largest deviation {worst:e} of scale"
        );
    }
    let config = BioParams::default().check().unwrap();
    eprintln!("population step vs single steps ({}), bio 784-2000-10, batch 100, 10 steps:", gpu.device_name());
    for members in [1usize, 8, 32, 128] {
        let seeds: Vec<u64> = (0..members as u64).collect();
        let mut r = rng(members as u64);
        let data: Vec<(Matrix, Vec<usize>)> = (0..members)
            .map(|_| (random_matrix(&mut r, 100, 784, 0.0, 1.0), (0..100).map(|i| i % CLASSES).collect()))
            .collect();
        let mut population = BioPopulation::new(&gpu, config.clone(), 784, CLASSES, &seeds).unwrap();
        population.start_epoch(0, 1);
        population.train_batch(&data).unwrap();
        gpu.sync();
        let start = Instant::now();
        for _ in 0..10 {
            population.train_batch(&data).unwrap();
        }
        gpu.sync();
        let together = start.elapsed().as_secs_f64() / (10 * members) as f64;
        let mut nets: Vec<_> = seeds
            .iter()
            .map(|&s| (BioRule::new(config.clone(), s), BioNet::init(&gpu, config.clone(), 784, CLASSES, s)))
            .collect();
        let uploaded: Vec<_> = data.iter().map(|(x, _)| gpu.upload(x)).collect();
        for (rule, _) in &mut nets {
            rule.start_epoch(0, 1);
        }
        gpu.sync();
        let start = Instant::now();
        for _ in 0..10 {
            for ((rule, net), (x, (_, labels))) in nets.iter_mut().zip(uploaded.iter().zip(&data)) {
                rule.train_batch(net, x, labels).unwrap();
            }
        }
        gpu.sync();
        let alone = start.elapsed().as_secs_f64() / (10 * members) as f64;
        eprintln!(
            "  population P={members:>3}: {:.3} ms per member-step ({:.0} member-steps/s); single runs {:.3} ms ({:.2}×); 32 runs × 10 epochs of 600 steps at this rate: {:.1} s",
            together * 1e3,
            1.0 / together,
            alone * 1e3,
            alone / together,
            together * 32.0 * 6000.0
        );
    }
}
