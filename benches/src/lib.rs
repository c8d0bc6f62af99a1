//! Shared inputs, FLOP formulas and measurements of biorule's benchmarks (run them with
//! `cargo xtask bench`): the criterion micro benchmarks in `benches/training.rs` and the macro
//! benchmarks of the `macro` binary (`benches/src/bin/macro.rs`).

use std::path::PathBuf;
use std::time::Instant;

use bio_core::{LinalgOps, Matrix, TensorStore};
use bio_cpu::CpuBackend;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A deterministic matrix of uniform values in `[0, 1)`, like a batch of pixels.
pub fn uniform(rows: usize, cols: usize, seed: u64) -> Matrix {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Matrix::from_fn(rows, cols, |_, _| rng.random::<f32>())
}

/// Labels `0..classes` cycling over `n` samples.
pub fn labels(n: usize, classes: usize) -> Vec<usize> {
    (0..n).map(|i| i % classes).collect()
}

/// Analytic GEMM FLOP counts (one multiply-add = 2 FLOPs) of the workloads, for a network
/// `d`-`h`-`c` (input, hidden width, classes) and a batch of `b` samples. Only the matrix products
/// are counted; elementwise work, reductions and selections are the overhead these counts expose.
pub mod flops {
    /// `op(A)·op(B)` with `op(A)` of `m×k` and `op(B)` of `k×n`: `2·m·n·k`.
    pub fn gemm(m: usize, n: usize, k: usize) -> f64 {
        2.0 * m as f64 * n as f64 * k as f64
    }

    /// One `bio` training step: forward `x̂·Wᵀ` (`2bdh`) and `h̃·Vᵀ` (`2bhc`), the Hebbian pull
    /// `rᵀ·p` (`2bhd`) and per-neuron sum `rᵀ·1` (`2bh`), the readout's `Eᵀ·h̃` (`2bch`):
    /// `4bdh + 4bhc + 2bh`. These are the FLOPs of the *dense* algorithm: the pull is computed as a
    /// sparse product over the ≈ 5 % non-zero `r` (`sparse_matmul`), so the run does less, and its
    /// "× bound" is measured against the dense work it replaces.
    pub fn bio_step(b: usize, d: usize, h: usize, c: usize) -> f64 {
        gemm(b, h, d) + gemm(b, c, h) + gemm(h, d, b) + gemm(h, 1, b) + gemm(c, h, b)
    }

    /// One backprop step (one hidden layer, no input gradient): forward `2bdh + 2bhc`, readout
    /// gradient `δᵀ·h` (`2bch`), hidden error `δ·V` (`2bch`), hidden gradient `δᵀ·x` (`2bhd`):
    /// `4bdh + 6bhc`.
    pub fn bp_step(b: usize, d: usize, h: usize, c: usize) -> f64 {
        gemm(b, h, d) + gemm(b, c, h) + gemm(c, h, b) + gemm(b, h, c) + gemm(h, d, b)
    }

    /// A forward pass of either network (`2bdh + 2bhc`): clean predictions, features.
    pub fn forward(b: usize, d: usize, h: usize, c: usize) -> f64 {
        gemm(b, h, d) + gemm(b, c, h)
    }

    /// One `loss_and_input_gradient` of the `bio` network: forward `2bdh + 2bhc`, then
    /// `dz·V` (`2bch`) and `du·W` (`2bhd`): `4bdh + 4bhc` (dense count; under k-WTA `du·W` runs as a
    /// sparse product, like the Hebbian pull in [`bio_step`]).
    pub fn input_gradient(b: usize, d: usize, h: usize, c: usize) -> f64 {
        forward(b, d, h, c) + gemm(b, h, c) + gemm(b, d, h)
    }

    /// The forward pass of one conv layer on `b` images (`unfold(x)·Wᵀ`, one row per position:
    /// `2·(b·positions)·patch·channels`) and the readout on its `features` (`2bFc`).
    pub fn conv_forward(b: usize, positions: usize, patch: usize, channels: usize, features: usize, c: usize) -> f64 {
        gemm(b * positions, channels, patch) + gemm(b, c, features)
    }

    /// One `conv` step of the Hebbian phase: [`conv_forward`] (the rule scores every batch), the
    /// pull `rᵀ·p` (`2·channels·patch·rows`, dense count: it runs as a sparse product) and the
    /// per-filter sum `rᵀ·1` (`2·channels·rows`), `rows = b·positions`.
    pub fn conv_hebbian_step(
        b: usize,
        positions: usize,
        patch: usize,
        channels: usize,
        features: usize,
        c: usize,
    ) -> f64 {
        let rows = b * positions;
        conv_forward(b, positions, patch, channels, features, c) + gemm(channels, patch, rows) + gemm(channels, 1, rows)
    }

    /// One `conv` step of the readout phase: [`conv_forward`] and the readout's gradient `Eᵀ·h`
    /// (`2cFb`).
    pub fn conv_readout_step(
        b: usize,
        positions: usize,
        patch: usize,
        channels: usize,
        features: usize,
        c: usize,
    ) -> f64 {
        conv_forward(b, positions, patch, channels, features, c) + gemm(c, features, b)
    }

    /// A PGD robustness evaluation of `n` images with `steps` steps: one input gradient per step,
    /// plus the clean and the adversarial predictions (two forward passes).
    pub fn pgd(n: usize, steps: usize, d: usize, h: usize, c: usize) -> f64 {
        steps as f64 * input_gradient(n, d, h, c) + 2.0 * forward(n, d, h, c)
    }
}

/// Peak resident memory of this process in bytes (`VmHWM` of `/proc/self/status`), if readable.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Best-of-`tries` seconds of one `op(a)·op(b)` on `cpu`, repeating the product enough times per
/// try (at least `min_reps`, about 0.2 s of work) that timer resolution does not matter.
pub fn time_gemm(cpu: &CpuBackend, a: &Matrix, ta: bool, b: &Matrix, tb: bool, tries: usize) -> f64 {
    let (a, b) = (cpu.upload(a), cpu.upload(b));
    let start = Instant::now();
    std::hint::black_box(cpu.matmul(&a, ta, &b, tb));
    let first = start.elapsed().as_secs_f64().max(1e-6);
    let reps = ((0.2 / first) as usize).clamp(1, 1000);
    let mut best = f64::INFINITY;
    for _ in 0..tries.max(1) {
        let t = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(cpu.matmul(&a, ta, &b, tb));
        }
        best = best.min(t.elapsed().as_secs_f64() / reps as f64);
    }
    best
}

/// The machine's achievable GEMM rate: GFLOP/s of the best of `tries` `n³` f32 products through
/// the CPU backend (the same `matrixmultiply` kernel and thread split as training).
pub fn calibration_gflops(cpu: &CpuBackend, n: usize, tries: usize) -> f64 {
    let a = uniform(n, n, 11);
    let b = uniform(n, n, 12);
    flops::gemm(n, n, n) / time_gemm(cpu, &a, false, &b, false, tries) / 1e9
}

/// The real Fashion-MNIST training-images file, when the dataset is installed.
pub fn fashion_mnist_train_images() -> Option<PathBuf> {
    let dir = bio_data::find("fashion-mnist", None).ok()?;
    ["train-images-idx3-ubyte", "train-images-idx3-ubyte.gz"].iter().map(|f| dir.join(f)).find(|p| p.is_file())
}

/// The gzipped IDX training images of the embedded subset (the fallback of the IDX benchmark).
pub const EMBEDDED_TRAIN_IMAGES: &[u8] = include_bytes!("../../crates/bio-data/embedded/train-images-idx3-ubyte.gz");

/// The host's vector ISA, clock and theoretical FP32 peak: the "honest ceiling" the macro benchmarks
/// compare against, besides the calibration GEMM measured through the backend itself.
pub mod host {
    use std::time::Instant;

    /// What the CPU offers for FP32 arithmetic.
    #[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
    pub struct Isa {
        /// `model name` of `/proc/cpuinfo`, if readable.
        pub model: String,
        /// AVX2 and FMA (256-bit FMA: 8 f32 lanes).
        pub avx2_fma: bool,
        /// AVX-512F (512-bit FMA: 16 f32 lanes).
        pub avx512f: bool,
        /// AMX tiles (`amx_tile` in `/proc/cpuinfo`): bf16 and int8 only, so not part of an FP32 peak.
        pub amx: bool,
    }

    impl Isa {
        /// Detected at run time (CPUID through `is_x86_feature_detected!`; AMX from `/proc/cpuinfo`).
        pub fn detect() -> Self {
            let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
            let field = |name: &str| {
                cpuinfo
                    .lines()
                    .find(|l| l.starts_with(name))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
                    .unwrap_or_default()
            };
            let flags = field("flags");
            #[cfg(target_arch = "x86_64")]
            let (avx2_fma, avx512f) = (
                std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
                std::arch::is_x86_feature_detected!("avx512f"),
            );
            #[cfg(not(target_arch = "x86_64"))]
            let (avx2_fma, avx512f) = (false, false);
            Isa {
                model: field("model name"),
                avx2_fma,
                avx512f,
                amx: flags.split_whitespace().any(|f| f == "amx_tile"),
            }
        }

        /// f32 lanes of the widest FMA: 16 (AVX-512), 8 (AVX2 + FMA), else 4 (SSE, counted as if it
        /// had FMA: an upper bound).
        pub fn f32_lanes(&self) -> usize {
            if self.avx512f {
                16
            } else if self.avx2_fma {
                8
            } else {
                4
            }
        }

        /// One line: `AVX2+FMA, AVX-512F, AMX (bf16/int8 only)`.
        pub fn describe(&self) -> String {
            let mut parts = Vec::new();
            if self.avx2_fma {
                parts.push("AVX2+FMA");
            }
            if self.avx512f {
                parts.push("AVX-512F");
            }
            if self.amx {
                parts.push("AMX (bf16/int8 only, not in the FP32 peak)");
            }
            if parts.is_empty() {
                parts.push("no AVX2");
            }
            parts.join(", ")
        }
    }

    /// FMA units per core assumed by [`peak_gflops`]: two, as on current Intel server and AMD Zen
    /// cores (some Xeon SKUs have one 512-bit unit: then the peak printed is twice the real one).
    pub const FMA_UNITS: usize = 2;

    /// Theoretical FP32 peak in GFLOP/s: `cores × lanes × FMA units × 2 FLOPs × GHz`.
    pub fn peak_gflops(cores: usize, lanes: usize, ghz: f64) -> f64 {
        (cores * lanes * FMA_UNITS * 2) as f64 * ghz
    }

    /// The clock of the calling core in GHz while it runs scalar code: best of `tries` timings of a
    /// chain of dependent register-to-register 64-bit `add`s (one cycle of latency each on x86-64
    /// cores, so the chain runs at one add per cycle; `add reg, imm` is not used because Golden Cove
    /// and later cores fold chains of immediate adds at rename: on this project's AVX-512/AMX Xeon they
    /// "ran" at 17.6 GHz, while `add reg, reg` and `imul` (3 cycles) both gave 2.97 GHz). Heavy
    /// AVX-512 code may run at a lower clock, so a peak from this figure is an upper bound. `None`
    /// off x86-64.
    pub fn measure_ghz(tries: usize) -> Option<f64> {
        #[cfg(target_arch = "x86_64")]
        {
            // × 100 adds: 2 million cycles, under a millisecond, short enough that on a shared host
            // some tries run without being preempted (the best one counts).
            const BLOCKS: u64 = 20_000;
            let mut best = f64::INFINITY;
            for _ in 0..tries.max(1) {
                let t = Instant::now();
                std::hint::black_box(add_chain(BLOCKS));
                best = best.min(t.elapsed().as_secs_f64());
            }
            Some((BLOCKS * 100) as f64 / best / 1e9)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (tries, Instant::now());
            None
        }
    }

    /// `blocks × 100` dependent adds into one register (the loop counter is an independent chain).
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    fn add_chain(blocks: u64) -> u64 {
        let (mut x, one) = (0u64, std::hint::black_box(1u64));
        for _ in 0..blocks {
            // SAFETY: register arithmetic only: no memory, no stack, no flags the compiler relies on.
            unsafe {
                std::arch::asm!(".rept 100", "add {x}, {one}", ".endr", x = inout(reg) x, one = in(reg) one, options(nomem, nostack));
            }
        }
        x
    }
}
