//! Hot paths at the training shape 784-2000-10, batch 100, on the CPU backend.

use bio_benches::{labels, uniform};
use bio_core::{BackpropRule, BioParams, BioRule, BpParams, Classifier, LearningRule, LinalgOps, TensorStore};
use bio_cpu::CpuBackend;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const BATCH: usize = 100;
const INPUT: usize = 784;
const HIDDEN: usize = 2000;

fn gemm(c: &mut Criterion) {
    let b = CpuBackend::new();
    let x = b.upload(&uniform(BATCH, INPUT, 1));
    let w = b.upload(&uniform(HIDDEN, INPUT, 2));
    let mut g = c.benchmark_group("gemm");
    g.throughput(Throughput::Elements((2 * BATCH * INPUT * HIDDEN) as u64));
    g.bench_function("forward x·Wᵀ 100×784·(2000×784)ᵀ", |bench| bench.iter(|| b.matmul(&x, false, &w, true)));
    let y = b.upload(&uniform(BATCH, HIDDEN, 3));
    g.bench_function("hebbian yᵀ·x (100×2000)ᵀ·100×784", |bench| bench.iter(|| b.matmul(&y, true, &x, false)));
    g.finish();
}

fn steps(c: &mut Criterion) {
    let b = CpuBackend::new();
    let x = b.upload(&uniform(BATCH, INPUT, 4));
    let y = labels(BATCH, 10);
    let mut g = c.benchmark_group("train_step");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(20);
    let mut bio = BioRule::new(BioParams::default().check().expect("defaults are valid"), 0);
    let mut bio_model = LearningRule::<CpuBackend>::init_model(&bio, &b, INPUT, 10, 0);
    g.bench_function("bio 784-2000-10", |bench| {
        bench.iter(|| bio.train_batch(&mut bio_model, &x, &y).expect("finite"))
    });
    let mut bp = BackpropRule::new(BpParams::default().check().expect("defaults are valid"));
    let mut bp_model = bp.init_model(&b, INPUT, 10, 0);
    g.bench_function("bp adam 784-2000-10", |bench| {
        bench.iter(|| bp.train_batch(&mut bp_model, &x, &y).expect("finite"))
    });
    g.bench_function("bp input gradient (attack step)", |bench| {
        bench.iter(|| bp_model.loss_and_input_gradient(&x, &y))
    });
    g.finish();
}

criterion_group!(benches, gemm, steps);
criterion_main!(benches);
