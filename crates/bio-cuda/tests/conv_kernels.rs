//! The conv kernels on a GPU against the host definitions of `bio_core::backend::conv` (run by
//! `ReferenceBackend`, whose `ConvOps` are the trait's defaults): bit for bit for the four window
//! operations (the gathers of `fold` and `max_pool_backward` add in the order the definitions
//! scatter), over the windows the emulation checks (kernel sides 1 to 5, strides 1 to 3 and above
//! the kernel, padding 0 to 2, non-square maps, ties, signed zeros and NaN in the pooled inputs);
//! the fused per-position kernels against the composed chains on the same device, bit for bit; a
//! window that does not fit refused before any launch; and the time of each window operation
//! against the host round trip it replaces. Stricter than the conformance suite's conv checks
//! (`tests/conformance.rs`), which hold `fold` and the pooling gradient to a tolerance.
//!
//! Ignored by default (needs a GPU); run by `scripts/gpu-check.sh run`. Run without a usable GPU,
//! every test fails.

use std::panic::{AssertUnwindSafe, catch_unwind};

use bio_core::backend::{
    ConvOps, Window, composed_fraction_positive, composed_kwta_rows, composed_relative_to_row_max,
    composed_unit_l2_rows,
};
use bio_core::conformance::{coarse_matrix, random_matrix, rng};
use bio_core::{Matrix, ReferenceBackend, TensorStore};
use bio_cuda::CudaBackend;

mod common;
use common::time_us;

fn gpu() -> CudaBackend {
    CudaBackend::new().unwrap_or_else(|e| panic!("this test needs a CUDA GPU: {e}"))
}

/// The windows of the emulation (`emulation/test.cpp`), with the batch each runs on.
fn windows() -> Vec<(usize, Window)> {
    let w =
        |height, width, channels, kernel, stride, padding| Window { height, width, channels, kernel, stride, padding };
    [
        w(1, 1, 1, 1, 1, 0),
        w(5, 4, 3, 3, 1, 1),
        w(7, 6, 2, 4, 2, 1),
        w(9, 9, 1, 3, 3, 0),
        w(28, 28, 1, 5, 1, 2),
        w(14, 14, 3, 4, 2, 1),
        w(8, 8, 3, 4, 2, 1),
        w(7, 5, 2, 3, 3, 2),
        w(5, 6, 4, 2, 1, 0),
        w(6, 9, 2, 5, 2, 2),
        w(4, 7, 1, 1, 2, 0),
        w(9, 7, 2, 2, 3, 0),
        w(3, 11, 3, 5, 1, 2),
        w(10, 3, 1, 3, 2, 1),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, g)| (1 + i % 3 * 7, g))
    .collect()
}

fn assert_bits(ctx: &str, got: &Matrix, want: &Matrix) {
    assert_eq!(got.shape(), want.shape(), "{ctx}: shape");
    for (i, (g, w)) in got.as_slice().iter().zip(want.as_slice()).enumerate() {
        assert_eq!(g.to_bits(), w.to_bits(), "{ctx}: entry {i} is {g:e}, the definition gives {w:e}");
    }
}

#[test]
#[ignore = "needs a CUDA GPU; run with --include-ignored on a GPU machine"]
fn window_operations_equal_the_host_definitions_bit_for_bit() {
    let (gpu, r) = (gpu(), ReferenceBackend);
    let mut rng = rng(71);
    let pool_values = [0.0, -0.0, 0.5, 0.5, -1.0, f32::NAN, 2.0, 0.5];
    for (batch, g) in windows() {
        let ctx = format!("{g:?}, batch {batch}");
        let x = random_matrix(&mut rng, batch, g.image_len(), -1.0, 1.0);
        assert_bits(&format!("unfold {ctx}"), &gpu.download(&gpu.unfold(&gpu.upload(&x), &g)), &r.unfold(&x, &g));
        let cols = random_matrix(&mut rng, batch * g.positions(), g.patch_len(), -1.0, 1.0);
        assert_bits(&format!("fold {ctx}"), &gpu.download(&gpu.fold(&gpu.upload(&cols), &g)), &r.fold(&cols, &g));
        let px = coarse_matrix(&mut rng, batch * g.height * g.width, g.channels, &pool_values);
        let pooled = gpu.download(&gpu.max_pool(&gpu.upload(&px), &g));
        assert_bits(&format!("max_pool {ctx}"), &pooled, &r.max_pool(&px, &g));
        let grad = random_matrix(&mut rng, batch * g.positions(), g.channels, -1.0, 1.0);
        let back = gpu.download(&gpu.max_pool_backward(&gpu.upload(&px), &g, &gpu.upload(&grad)));
        assert_bits(&format!("max_pool_backward {ctx}"), &back, &r.max_pool_backward(&px, &g, &grad));
    }
}

#[test]
#[ignore = "needs a CUDA GPU; run with --include-ignored on a GPU machine"]
fn fused_per_position_kernels_equal_the_composed_chains_on_the_device() {
    let gpu = gpu();
    let mut rng = rng(72);
    for (rows, cols) in [(1, 1), (3, 37), (5, 300), (7, 1), (3136, 96), (2, 1000), (4, 257)] {
        for (what, x) in [
            ("continuous", random_matrix(&mut rng, rows, cols, -2.0, 2.0)),
            ("ties", coarse_matrix(&mut rng, rows, cols, &[-1.0, 0.0, -0.0, 0.25, 0.25, 3.0])),
        ] {
            let ctx = format!("{rows}×{cols} {what}");
            let xt = gpu.upload(&x);
            let mut ks = vec![1, cols.div_ceil(2), cols];
            ks.dedup();
            for k in ks {
                let ((t, y), (tc, yc)) = (gpu.kwta_rows(&xt, k), composed_kwta_rows(&gpu, &xt, k));
                assert_bits(&format!("kwta_rows k={k} {ctx} (threshold)"), &gpu.download(&t), &gpu.download(&tc));
                assert_bits(&format!("kwta_rows k={k} {ctx} (activity)"), &gpu.download(&y), &gpu.download(&yc));
            }
            let (rel, relc) = (gpu.relative_to_row_max(&xt), composed_relative_to_row_max(&gpu, &xt));
            assert_bits(&format!("relative_to_row_max {ctx}"), &gpu.download(&rel), &gpu.download(&relc));
            let (unit, unitc) = (gpu.unit_l2_rows(&xt), composed_unit_l2_rows(&gpu, &xt));
            assert_bits(&format!("unit_l2_rows {ctx}"), &gpu.download(&unit), &gpu.download(&unitc));
            let (f, fc) = (gpu.fraction_positive(&xt), composed_fraction_positive(&gpu, &xt));
            assert_eq!(f.to_bits(), fc.to_bits(), "fraction_positive {ctx}: {f} vs the chain's {fc}");
        }
    }
    let t = gpu.upload(&Matrix::from_fn(6, 20, |i, j| (i * 20 + j) as f32));
    let reshaped = gpu.reshape(&t, 12, 10);
    assert_eq!(gpu.download(&reshaped).as_slice(), gpu.download(&t).as_slice());
    assert_eq!(gpu.shape(&reshaped), (12, 10));
}

#[test]
#[ignore = "needs a CUDA GPU; run with --include-ignored on a GPU machine"]
fn windows_that_do_not_fit_are_refused_before_any_launch() {
    let gpu = gpu();
    let ok = Window { height: 6, width: 6, channels: 2, kernel: 3, stride: 1, padding: 1 };
    let x = gpu.upload(&Matrix::zeros(1, ok.image_len()));
    let grad = gpu.upload(&Matrix::zeros(ok.positions(), ok.channels));
    for bad in [Window { padding: 3, ..ok }, Window { kernel: 9, ..ok }, Window { stride: 0, ..ok }] {
        let reason = bad.check().expect_err("a window that does not fit").to_string();
        for op in ["unfold", "fold", "max_pool", "max_pool_backward"] {
            let call = || match op {
                "unfold" => drop(gpu.unfold(&x, &bad)),
                "fold" => drop(gpu.fold(&x, &bad)),
                "max_pool" => drop(gpu.max_pool(&x, &bad)),
                _ => drop(gpu.max_pool_backward(&x, &bad, &grad)),
            };
            let err = catch_unwind(AssertUnwindSafe(call)).expect_err(&format!("{op} accepted {bad:?}"));
            let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
            assert_eq!(msg, format!("bio-cuda: {op}: {reason}"), "{op} of {bad:?}");
        }
    }
    gpu.sync();
}

#[test]
#[ignore = "needs a CUDA GPU; run with --include-ignored on a GPU machine"]
fn window_operations_timed_against_the_host_round_trip() {
    let (gpu, r) = (gpu(), ReferenceBackend);
    let mut rng = rng(73);
    // The conv front's shapes: a 5×5 convolution of 28×28 images, then 4×4 pooling with stride 2.
    let conv = Window { height: 28, width: 28, channels: 1, kernel: 5, stride: 1, padding: 2 };
    let pool = Window { height: 28, width: 28, channels: 32, kernel: 4, stride: 2, padding: 1 };
    let batch = 100;
    let x = gpu.upload(&random_matrix(&mut rng, batch, conv.image_len(), 0.0, 1.0));
    let cols = gpu.upload(&random_matrix(&mut rng, batch * conv.positions(), conv.patch_len(), -1.0, 1.0));
    let maps = gpu.upload(&random_matrix(&mut rng, batch * pool.height * pool.width, pool.channels, -1.0, 1.0));
    let grad = gpu.upload(&random_matrix(&mut rng, batch * pool.positions(), pool.channels, -1.0, 1.0));
    let host = |f: &dyn Fn(&ReferenceBackend) -> Matrix| drop(gpu.upload(&f(&r)));
    eprintln!(
        "conv kernels ({}), batch {batch}, median of 20, synchronized, µs (kernel / host round trip):",
        gpu.device_name()
    );
    let rows: [(&str, f64, f64); 4] = [
        (
            "unfold 28×28×1 k5 p2",
            time_us(&gpu, 20, || drop(gpu.unfold(&x, &conv))),
            time_us(&gpu, 20, || host(&|r| r.unfold(&gpu.download(&x), &conv))),
        ),
        (
            "fold 28×28×1 k5 p2",
            time_us(&gpu, 20, || drop(gpu.fold(&cols, &conv))),
            time_us(&gpu, 20, || host(&|r| r.fold(&gpu.download(&cols), &conv))),
        ),
        (
            "max_pool 28×28×32 k4 s2 p1",
            time_us(&gpu, 20, || drop(gpu.max_pool(&maps, &pool))),
            time_us(&gpu, 20, || host(&|r| r.max_pool(&gpu.download(&maps), &pool))),
        ),
        (
            "max_pool_backward 28×28×32 k4 s2 p1",
            time_us(&gpu, 20, || drop(gpu.max_pool_backward(&maps, &pool, &grad))),
            time_us(&gpu, 20, || host(&|r| r.max_pool_backward(&gpu.download(&maps), &pool, &gpu.download(&grad)))),
        ),
    ];
    for (what, kernel, round_trip) in rows {
        eprintln!("  {what}: {kernel:.1} / {round_trip:.1} ({:.1}×)", round_trip / kernel);
    }
}
