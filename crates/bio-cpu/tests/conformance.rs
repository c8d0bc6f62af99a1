//! The shared conformance suite of `bio_core::conformance`, run against `CpuBackend`.

bio_core::conformance_tests!(|| Some(bio_cpu::CpuBackend::new()));

/// The same suite in a private pool of one rayon thread (the serial fallback inside `install`).
mod one_thread {
    bio_core::conformance_tests!(|| bio_cpu::CpuBackend::with_threads(1).ok());
}

/// And in a private pool of three threads: parallel paths inside `pool.install`.
mod three_threads {
    bio_core::conformance_tests!(|| bio_cpu::CpuBackend::with_threads(3).ok());
}

/// Each GEMM kernel explicitly, whichever one this host picks by default (the other would go
/// untested on a host with or without AVX2 + FMA).
mod gemm_crate_kernel {
    bio_core::conformance_tests!(|| bio_cpu::CpuBackend::with_threads(3)
        .ok()
        .map(|cpu| cpu.with_gemm_kernel(bio_cpu::GemmKernel::Gemm)));
}

mod matrixmultiply_kernel {
    bio_core::conformance_tests!(|| bio_cpu::CpuBackend::with_threads(3)
        .ok()
        .map(|cpu| cpu.with_gemm_kernel(bio_cpu::GemmKernel::MatrixMultiply)));
}
