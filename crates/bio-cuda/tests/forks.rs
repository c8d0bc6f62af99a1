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
