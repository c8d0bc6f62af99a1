//! The conv kernels on a GPU: the fused per-position kernels against the composed chains on the
//! same device, bit for bit, and the time of each window operation against the host round trip it
//! replaces. The four window operations against the host definitions (bit for bit, over the
//! emulation's windows, with tie inputs) and the refusal of a window that does not fit are checks
//! of the shared conformance suite (`unfold`, `fold`, `max_pool`, `max_pool_backward`,
//! `window_refusal` in `tests/conformance.rs`), not repeated here.
//!
//! Ignored by default (needs a GPU); run by `scripts/gpu-check.sh run`. Run without a usable GPU,
//! every test fails.

use bio_core::backend::{
    ConvOps, Window, composed_fraction_positive, composed_kwta_rows, composed_relative_to_row_max,
    composed_unit_l2_rows,
};
use bio_core::conformance::{assert_bits, coarse_matrix, random_matrix, rng};
use bio_core::{Matrix, ReferenceBackend, TensorStore};
use bio_cuda::CudaBackend;

mod common;
use common::time_us;

fn gpu() -> CudaBackend {
    CudaBackend::new().unwrap_or_else(|e| panic!("this test needs a CUDA GPU: {e}"))
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
