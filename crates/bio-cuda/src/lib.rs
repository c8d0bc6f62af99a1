//! CUDA backend of biorule: [`CudaBackend`] implements every operation family of
//! `bio_core::Backend` on an NVIDIA GPU through [cudarc](https://docs.rs/cudarc), with cuBLAS SGEMM
//! for the matrix products and NVRTC-compiled kernels (CUDA C source embedded in this crate,
//! compiled at run time: no nvcc, no PTX files) for the rest.
//!
//! This crate builds on every machine: cudarc loads libcuda, libnvrtc and libcublas dynamically,
//! and [`CudaBackend::new`] checks for them before any driver call, returning a typed
//! [`CudaError`] instead of panicking when the driver, NVRTC, cuBLAS or a device is missing.
//!
//! **Status:** verified on one H200 (2026-11-30 and 2026-12-01): the conformance suite, the
//! rule-step comparisons against the CPU backend, the fused kernels and full Fashion-MNIST training
//! agree with `bio-cpu`. [`CudaBackend::fork`] (concurrent runs on one device) and the `ConvOps`
//! kernels are checked without a GPU only so far. See the README.
//!
#![doc = include_str!("../README.md")]

mod compile;
mod device;
mod kernels;
#[cfg(test)]
mod nvrtc_check;
mod ops;

pub use device::{CudaBackend, Tensor};

use thiserror::Error;

/// Why the CUDA backend cannot be used.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CudaError {
    /// The CUDA driver library (libcuda) could not be loaded.
    #[error(
        "CUDA is not available: the NVIDIA driver library (libcuda) was not found on this machine; use --backend cpu"
    )]
    NoDriver,
    /// NVRTC (the runtime compiler for the kernels) could not be loaded.
    #[error(
        "CUDA is not available: NVRTC (libnvrtc) was not found; install the CUDA toolkit runtime or use --backend cpu"
    )]
    NoNvrtc,
    /// The driver works but there is no device with the requested ordinal.
    #[error(
        "CUDA is not available: no CUDA device {ordinal} (the driver reports {found} device(s)); use --backend cpu"
    )]
    NoDevice {
        /// The ordinal that was asked for.
        ordinal: usize,
        /// How many devices the driver reports.
        found: usize,
    },
    /// A CUDA driver call failed (context, stream, module loading, ...).
    #[error("CUDA driver error: {0}")]
    Driver(String),
    /// NVRTC could not compile the kernels.
    #[error("NVRTC could not compile the CUDA kernels: {0}")]
    Compile(String),
    /// cuBLAS could not be loaded or set up.
    #[error("cuBLAS error: {0}")]
    Blas(String),
}

/// `Ok(())` when libcuda, libnvrtc and libcublas can all be loaded. Only tries to open the
/// libraries; calls no CUDA function (cudarc panics on a first call when a library is absent, so
/// this runs before any).
#[allow(unsafe_code)]
pub fn availability() -> Result<(), CudaError> {
    // SAFETY: these only try to dlopen the libraries; no CUDA function is called.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(CudaError::NoDriver);
    }
    // SAFETY: as above.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(CudaError::NoNvrtc);
    }
    // SAFETY: as above.
    if !unsafe { cudarc::cublas::sys::is_culib_present() } {
        return Err(CudaError::Blas(
            "libcublas was not found; install the CUDA toolkit runtime or use --backend cpu".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Holds on every machine: without a GPU `new` returns the library error, with one it may succeed.
    #[test]
    fn asking_for_cuda_never_panics() {
        let result = std::panic::catch_unwind(CudaBackend::new);
        let made = result.expect("CudaBackend::new panicked");
        if let Err(missing) = availability() {
            assert_eq!(made.unwrap_err(), missing);
        }
    }

    #[test]
    fn errors_name_the_way_out() {
        for e in [CudaError::NoDriver, CudaError::NoNvrtc, CudaError::NoDevice { ordinal: 1, found: 0 }] {
            assert!(e.to_string().contains("--backend cpu"), "{e}");
        }
    }
}
