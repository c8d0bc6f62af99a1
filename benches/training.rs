//! Hot paths at the training shape 784-2000-10, batch 100, on the CPU backend: the GEMM shapes of
//! training and attacks, k-WTA selection, the Hebbian update with synaptic scaling, the readout
//! update, one PGD step, whole training steps, and IDX decoding.

use bio_benches::{EMBEDDED_TRAIN_IMAGES, fashion_mnist_train_images, flops, labels, uniform};
use bio_core::backend::composed_plasticity_step;
use bio_core::model::{one_hot, softmax_cross_entropy};
use bio_core::rules::{hebbian_drive, hidden_plasticity, plasticity_settings, readout_update};
use bio_core::{
    BackpropRule, BioNet, BioParams, BioRule, BpParams, Classifier, ElementwiseOps, LearningRule, LinalgOps,
    PlasticityOps, SelectOps, TensorStore, Unary,
};
use bio_cpu::CpuBackend;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const BATCH: usize = 100;
const INPUT: usize = 784;
const HIDDEN: usize = 2000;
const CLASSES: usize = 10;

fn gemm(c: &mut Criterion) {
    let b = CpuBackend::new();
    let x = b.upload(&uniform(BATCH, INPUT, 1));
    let w = b.upload(&uniform(HIDDEN, INPUT, 2));
    let y = b.upload(&uniform(BATCH, HIDDEN, 3));
    let v = b.upload(&uniform(CLASSES, HIDDEN, 4));
    let e = b.upload(&uniform(BATCH, CLASSES, 5));
    let mut g = c.benchmark_group("gemm");
    // Throughput in FLOPs (criterion prints them as "elements").
    let mut case = |name: &str, f: f64, run: &dyn Fn() -> ndarray_t::T| {
        g.throughput(Throughput::Elements(f as u64));
        g.bench_function(name, |bench| bench.iter(run));
    };
    case("forward x·Wᵀ 100×784·(2000×784)ᵀ", flops::gemm(BATCH, HIDDEN, INPUT), &|| {
        b.matmul(&x, false, &w, true)
    });
    case("hebbian/bp dW yᵀ·x (100×2000)ᵀ·100×784", flops::gemm(HIDDEN, INPUT, BATCH), &|| {
        b.matmul(&y, true, &x, false)
    });
    case("readout h·Vᵀ 100×2000·(10×2000)ᵀ", flops::gemm(BATCH, CLASSES, HIDDEN), &|| {
        b.matmul(&y, false, &v, true)
    });
    case("readout update Eᵀ·h (100×10)ᵀ·100×2000", flops::gemm(CLASSES, HIDDEN, BATCH), &|| {
        b.matmul(&e, true, &y, false)
    });
    case("bp hidden error δ·V 100×10·10×2000", flops::gemm(BATCH, HIDDEN, CLASSES), &|| {
        b.matmul(&e, false, &v, false)
    });
    case("input gradient du·W 100×2000·2000×784", flops::gemm(BATCH, INPUT, HIDDEN), &|| {
        b.matmul(&y, false, &w, false)
    });
    g.finish();
}

/// The tensor type of the CPU backend, named for the closures above.
mod ndarray_t {
    /// `CpuBackend::Tensor`.
    pub type T = <bio_cpu::CpuBackend as bio_core::TensorStore>::Tensor;
}

fn bio_model(b: &CpuBackend) -> BioNet<CpuBackend> {
    BioNet::init(b, BioParams::default().check().expect("defaults are valid"), INPUT, CLASSES, 0)
}

fn select_and_rules(c: &mut Criterion) {
    let b = CpuBackend::new();
    let mut g = c.benchmark_group("rule");
    g.sample_size(30);
    let u = b.upload(&uniform(BATCH, HIDDEN, 6));
    let config = BioParams::default().check().expect("defaults are valid");
    let k = config.winners(HIDDEN) + 1;
    g.throughput(Throughput::Elements((BATCH * HIDDEN) as u64));
    g.bench_function("k-WTA row_kth_largest 100×2000", |bench| bench.iter(|| b.row_kth_largest(&u, k)));

    let mut model = bio_model(&b);
    let x = b.upload(&uniform(BATCH, INPUT, 7));
    let y = labels(BATCH, CLASSES);
    let trace = model.trace(&x);
    g.throughput(Throughput::Elements((HIDDEN * INPUT) as u64));
    // The rule's hidden-layer plasticity, and its two halves each against the unfused / dense form
    // it replaced, so one run gives the ratios.
    g.bench_function("hidden_plasticity 2000×784 (drive + fused step)", |bench| {
        bench.iter(|| hidden_plasticity(&b, &mut model.layers[0], &trace.layers[0], config.hebbian_rate, &config))
    });
    let terms = hebbian_drive(&b, &trace.layers[0], &config);
    let settings = plasticity_settings((BATCH, INPUT), config.hebbian_rate, &config);
    g.bench_function("plasticity_step fused (with the pull) 2000×784", |bench| {
        let layer = &mut model.layers[0];
        bench.iter(|| b.plasticity_step(&mut layer.weights, &mut layer.mask, &terms, &settings))
    });
    g.bench_function("plasticity_step composed (sparse pull + chain) 2000×784", |bench| {
        let layer = &mut model.layers[0];
        bench.iter(|| {
            let pull = b.sparse_matmul(&terms.relative, true, &terms.pattern);
            composed_plasticity_step(&b, &mut layer.weights, &mut layer.mask, &pull, &terms.wins, &settings)
        })
    });
    let relative = b.map(&trace.layers[0].activity, Unary::Step);
    let pattern = &trace.layers[0].input;
    g.bench_function("hebbian pull rᵀ·p sparse 2000×100·100×784", |bench| {
        bench.iter(|| b.sparse_matmul(&relative, true, pattern))
    });
    g.bench_function("hebbian pull rᵀ·p dense 2000×100·100×784", |bench| {
        bench.iter(|| b.matmul(&relative, true, pattern, false))
    });
    let (probs, _, _) = softmax_cross_entropy(&b, &trace.logits, &y);
    let error = b.lincomb(1.0, &one_hot(&b, &y, CLASSES), -1.0, &probs);
    g.throughput(Throughput::Elements((CLASSES * HIDDEN) as u64));
    g.bench_function("readout_update 10×2000", |bench| {
        bench.iter(|| readout_update(&b, &mut model.readout, &error, &trace.code, 1e-3, true))
    });

    g.throughput(Throughput::Elements(BATCH as u64));
    let x0 = x.clone();
    g.bench_function("pgd step (input gradient + sign step) 100 images", |bench| {
        bench.iter(|| {
            let (_, grad) = model.loss_and_input_gradient(&x0, &y);
            let moved = b.lincomb(1.0, &x0, 0.01, &b.map(&grad, Unary::Sign));
            b.map(&moved, Unary::Clamp(0.0, 1.0))
        })
    });
    g.finish();
}

fn steps(c: &mut Criterion) {
    let b = CpuBackend::new();
    let x = b.upload(&uniform(BATCH, INPUT, 4));
    let y = labels(BATCH, CLASSES);
    let mut g = c.benchmark_group("train_step");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(20);
    let mut bio = BioRule::new(BioParams::default().check().expect("defaults are valid"), 0);
    let mut bio_model = LearningRule::<CpuBackend>::init_model(&bio, &b, INPUT, CLASSES, 0);
    g.bench_function("bio 784-2000-10", |bench| {
        bench.iter(|| bio.train_batch(&mut bio_model, &x, &y).expect("finite"))
    });
    let mut bp = BackpropRule::new(BpParams::default().check().expect("defaults are valid"));
    let mut bp_model = bp.init_model(&b, INPUT, CLASSES, 0);
    g.bench_function("bp adam 784-2000-10", |bench| {
        bench.iter(|| bp.train_batch(&mut bp_model, &x, &y).expect("finite"))
    });
    g.finish();
}

fn idx(c: &mut Criterion) {
    let mut g = c.benchmark_group("data");
    g.sample_size(10);
    match fashion_mnist_train_images() {
        Some(path) => {
            g.bench_function("read_idx_images fashion-mnist train", |bench| {
                bench.iter(|| bio_data::read_idx_images(&path).expect("readable"))
            });
        }
        None => {
            eprintln!("fashion-mnist not installed: the IDX benchmark decodes the embedded subset instead");
            g.bench_function("parse_idx_images embedded train", |bench| {
                bench.iter(|| bio_data::parse_idx_images(EMBEDDED_TRAIN_IMAGES, "embedded").expect("valid"))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, gemm, select_and_rules, steps, idx);
criterion_main!(benches);
