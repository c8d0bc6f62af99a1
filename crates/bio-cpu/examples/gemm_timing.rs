//! Times the GEMM shapes of a training step, with transposed operands as strided views and, for
//! comparison, with the transposes materialized beforehand. `cargo run --release -p bio-cpu --example gemm_timing`.

use std::time::Instant;

use bio_core::{LinalgOps, Matrix, TensorStore};
use bio_cpu::CpuBackend;

fn matrix(rows: usize, cols: usize, seed: u32) -> Matrix {
    let mut s = seed.wrapping_mul(2_654_435_761).max(1);
    Matrix::from_fn(rows, cols, |_, _| {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        (s as f32 / u32::MAX as f32) - 0.5
    })
}

/// Best-of GFLOP/s for `op(a)·op(b)`.
fn time(cpu: &CpuBackend, a: &Matrix, ta: bool, b: &Matrix, tb: bool) -> f64 {
    let (a, b) = (cpu.upload(a), cpu.upload(b));
    let c = cpu.matmul(&a, ta, &b, tb);
    let (m, n) = c.dim();
    let k = if ta { a.nrows() } else { a.ncols() };
    let flops = 2.0 * (m * n * k) as f64;
    let reps = ((2e10 / flops) as usize).clamp(3, 400);
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(cpu.matmul(&a, ta, &b, tb));
        }
        best = best.min(t.elapsed().as_secs_f64() / reps as f64);
    }
    flops / best / 1e9
}

fn main() {
    let cpu = CpuBackend::new();
    println!("{}", cpu.name());
    let x = matrix(100, 784, 1);
    let w = matrix(2000, 784, 2);
    let d = matrix(100, 2000, 3);
    let v = matrix(10, 2000, 4);
    let cases: [(&str, &Matrix, bool, &Matrix, bool); 3] = [
        ("100×784 · (2000×784)ᵀ", &x, false, &w, true),
        ("(100×2000)ᵀ · (100×784)", &d, true, &x, false),
        ("100×2000 · (10×2000)ᵀ", &d, false, &v, true),
    ];
    for (label, a, ta, b, tb) in cases {
        let strided = time(&cpu, a, ta, b, tb);
        let at = if ta { a.transpose() } else { a.clone() };
        let bt = if tb { b.transpose() } else { b.clone() };
        let copied = time(&cpu, &at, false, &bt, false);
        println!("{label:<26} strided views {strided:6.1} GFLOP/s   pre-transposed {copied:6.1} GFLOP/s");
    }
    let big = matrix(2048, 2048, 5);
    println!("{:<26} {:6.1} GFLOP/s", "2048³", time(&cpu, &big, false, &big, false));
    println!("{:<26} {:6.1} GFLOP/s", "2048³ both transposed", time(&cpu, &big, true, &big, true));
}
