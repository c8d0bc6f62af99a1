//! The fused kernels at the training shape (784-2000, batch 100, k-WTA-like 5 % activity), on a GPU:
//! the fused `plasticity_step` against the composed definition run on the same device (weights
//! within the conformance tolerance, masks exactly), and the time of each, with the sparse and
//! dense products beside them (the sparse kernel checked against cuBLAS first); and population
//! training's stacked products (`matmul_stacked`, one strided batched cuBLAS call for P members)
//! against each member's own `matmul`, timed against P separate calls. Ignored by default (needs a
//! GPU); run by `scripts/gpu-check.sh run`.

use bio_core::backend::{HebbianTerms, composed_plasticity_step};
use bio_core::conformance::{random_matrix, rng};
use bio_core::{LinalgOps, Matrix, PlasticityOps, PlasticityStep, ScalingNorm, TensorStore, WeightChange};
use bio_cuda::CudaBackend;
use rand::Rng;

mod common;
use common::time_us;

const NEURONS: usize = 2000;
const INPUTS: usize = 784;
const BATCH: usize = 100;

#[test]
#[ignore = "needs a CUDA GPU; run with --include-ignored on a GPU machine"]
fn fused_kernels_match_the_composed_chain_at_the_training_shape_and_are_timed() {
    let gpu = CudaBackend::new().unwrap_or_else(|e| panic!("this test needs a CUDA GPU: {e}"));
    let mut r = rng(17);
    let relative =
        Matrix::from_fn(BATCH, NEURONS, |_, _| if r.random_bool(0.05) { r.random_range(0.0..1.0) } else { 0.0 });
    let pattern = random_matrix(&mut r, BATCH, INPUTS, 0.0, 1.0);
    let wins = random_matrix(&mut r, NEURONS, 1, 0.0, 8.0);
    let w0 = random_matrix(&mut r, NEURONS, INPUTS, 0.0, 0.1);
    let terms =
        HebbianTerms { relative: gpu.upload(&relative), pattern: gpu.upload(&pattern), wins: gpu.upload(&wins) };
    let step = PlasticityStep {
        step: 0.02,
        norm: ScalingNorm::L2,
        signed: false,
        change: WeightChange::Multiplicative,
        prune_below: Some(0.01),
        scale_to: Some(1.0),
    };
    let composed = |w: &mut bio_cuda::Tensor, m: &mut bio_cuda::Tensor| {
        let pull = gpu.sparse_matmul(&terms.relative, true, &terms.pattern);
        composed_plasticity_step(&gpu, w, m, &pull, &terms.wins, &step);
    };

    let (mut wf, mut mf) = (gpu.upload(&w0), gpu.full(NEURONS, INPUTS, 1.0));
    let (mut wc, mut mc) = (gpu.upload(&w0), gpu.full(NEURONS, INPUTS, 1.0));
    for _ in 0..3 {
        gpu.plasticity_step(&mut wf, &mut mf, &terms, &step);
        composed(&mut wc, &mut mc);
    }
    let (wf, wc) = (gpu.download(&wf), gpu.download(&wc));
    assert_eq!(gpu.download(&mf), gpu.download(&mc), "masks differ");
    let worst = wf.as_slice().iter().zip(wc.as_slice()).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    let scale = wc.as_slice().iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let identical = wf.as_slice().iter().zip(wc.as_slice()).filter(|(a, b)| a.to_bits() == b.to_bits()).count();
    eprintln!(
        "fused vs composed after 3 steps: max |diff| {worst:e} (max |w| {scale:e}); {identical} of {} bit-identical",
        wf.len()
    );
    assert!(worst <= 1e-3 * scale + 1e-6, "fused and composed differ by {worst:e}");

    let (mut w, mut m) = (gpu.upload(&w0), gpu.full(NEURONS, INPUTS, 1.0));
    let fused_us = time_us(&gpu, 50, || gpu.plasticity_step(&mut w, &mut m, &terms, &step));
    let composed_us = time_us(&gpu, 50, || composed(&mut w, &mut m));
    let weights = gpu.upload(&w0);
    let du = gpu.upload(&relative);
    for (what, a, ta, b) in [("pull", &terms.relative, true, &terms.pattern), ("du·W", &du, false, &weights)] {
        let (got, want) =
            (gpu.download(&gpu.sparse_matmul_kernel(a, ta, b)), gpu.download(&gpu.matmul(a, ta, b, false)));
        let worst = got.as_slice().iter().zip(want.as_slice()).map(|(g, w)| (g - w).abs()).fold(0.0f32, f32::max);
        let scale = want.as_slice().iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(worst <= 1e-4 * scale + 1e-6, "{what}: sparse_matmul_kernel differs from cuBLAS by {worst:e}");
    }
    let pull_sparse = time_us(&gpu, 50, || drop(gpu.sparse_matmul_kernel(&terms.relative, true, &terms.pattern)));
    let pull_dense = time_us(&gpu, 50, || drop(gpu.matmul(&terms.relative, true, &terms.pattern, false)));
    let back_sparse = time_us(&gpu, 50, || drop(gpu.sparse_matmul_kernel(&du, false, &weights)));
    let back_dense = time_us(&gpu, 50, || drop(gpu.matmul(&du, false, &weights, false)));
    eprintln!("GPU kernel times ({}), median of 50, synchronized, µs:", gpu.device_name());
    eprintln!(
        "  plasticity_step {NEURONS}×{INPUTS}, batch {BATCH}: fused {fused_us:.1}, composed {composed_us:.1} ({:.1}×)",
        composed_us / fused_us
    );
    eprintln!("  pull rᵀ·p: sparse_matmul_kernel {pull_sparse:.1}, cuBLAS {pull_dense:.1}");
    eprintln!(
        "  du·W {BATCH}×{NEURONS}·{NEURONS}×{INPUTS}: sparse_matmul_kernel {back_sparse:.1}, cuBLAS {back_dense:.1}"
    );
}

/// `matmul_stacked` at the `bio` MLP's two large products (forward `x·Wᵀ` and Hebbian `yᵀ·x`) for
/// P = 1, 8, 32, 128 members: each member within the conformance tolerance of that member's own
/// `matmul`, then the time of one stacked call against P calls, and the FP32 rate it reaches.
#[test]
#[ignore = "needs a CUDA GPU; run with --include-ignored on a GPU machine"]
fn stacked_products_match_each_member_and_are_timed() {
    let gpu = CudaBackend::new().expect("a CUDA GPU");
    let mut rng = rng(12);
    eprintln!("stacked products ({}), median of 10, synchronized:", gpu.device_name());
    for members in [1usize, 8, 32, 128] {
        // (what, member shapes of the stored operands, transposes, the product's shape)
        let cases = [
            ("forward x·Wᵀ", (BATCH, INPUTS), false, (NEURONS, INPUTS), true),
            ("Hebbian yᵀ·x", (BATCH, NEURONS), true, (BATCH, INPUTS), false),
        ];
        for (what, a_shape, ta, b_shape, tb) in cases {
            let a: Vec<Matrix> =
                (0..members).map(|_| random_matrix(&mut rng, a_shape.0, a_shape.1, -1.0, 1.0)).collect();
            let b: Vec<Matrix> =
                (0..members).map(|_| random_matrix(&mut rng, b_shape.0, b_shape.1, -1.0, 1.0)).collect();
            let stack = |x: &[Matrix]| {
                let data: Vec<f32> = x.iter().flat_map(|m| m.as_slice().to_vec()).collect();
                gpu.upload(&Matrix::new(members * x[0].rows(), x[0].cols(), data).unwrap())
            };
            let (a_stack, b_stack) = (stack(&a), stack(&b));
            let got = gpu.download(&gpu.matmul_stacked(members, &a_stack, ta, &b_stack, tb));
            let (a_dev, b_dev): (Vec<_>, Vec<_>) =
                (a.iter().map(|m| gpu.upload(m)).collect(), b.iter().map(|m| gpu.upload(m)).collect());
            let member_len = got.len() / members;
            for p in 0..members {
                let want = gpu.download(&gpu.matmul(&a_dev[p], ta, &b_dev[p], tb));
                let mine = &got.as_slice()[p * member_len..(p + 1) * member_len];
                let worst = mine.iter().zip(want.as_slice()).map(|(g, w)| (g - w).abs()).fold(0.0f32, f32::max);
                let scale = want.as_slice().iter().fold(0.0f32, |m, v| m.max(v.abs()));
                assert!(
                    worst <= 1e-5 * scale + 1e-6,
                    "{what}, member {p} of {members}: differs from its matmul by {worst:e}"
                );
            }
            let stacked_us = time_us(&gpu, 10, || drop(gpu.matmul_stacked(members, &a_stack, ta, &b_stack, tb)));
            let separate_us = time_us(&gpu, 10, || {
                for p in 0..members {
                    drop(gpu.matmul(&a_dev[p], ta, &b_dev[p], tb));
                }
            });
            let inner = if ta { a_shape.0 } else { a_shape.1 };
            let flops = 2.0 * (member_len * inner * members) as f64;
            eprintln!(
                "  stacked P={members:>3} {what}: one call {stacked_us:.1} µs ({:.2} TFLOP/s), {members} calls {separate_us:.1} µs ({:.2}×)",
                flops / stacked_us / 1e6,
                separate_us / stacked_us
            );
        }
    }
}
