//! CUDA backend of biorule. This crate builds on every machine (cudarc loads the CUDA libraries
//! dynamically); [`CudaBackend::new`] returns a typed [`CudaError`] instead of panicking when the
//! driver or NVRTC is absent.
//!
//! Status: the device kernels are not written yet, so [`CudaBackend::new`] reports
//! [`CudaError::NotImplemented`] even on a machine with a GPU. Use the CPU backend (`bio-cpu`).
//!
//! ```
//! match bio_cuda::CudaBackend::new() {
//!     Ok(_) => println!("CUDA ready"),
//!     Err(e) => println!("no CUDA: {e}"),
//! }
//! ```

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
    /// The libraries are present but this build has no device kernels yet.
    #[error("the CUDA backend's kernels are not implemented in this build yet; use --backend cpu")]
    NotImplemented,
}

/// Handle to the CUDA backend (not constructible until the kernels exist).
#[derive(Debug)]
pub struct CudaBackend {
    _private: (),
}

impl CudaBackend {
    /// Checks the CUDA libraries before any driver call (cudarc panics on a first call without them).
    pub fn new() -> Result<Self, CudaError> {
        availability()?;
        Err(CudaError::NotImplemented)
    }
}

/// `Ok(())` when libcuda and libnvrtc can both be loaded.
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
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn asking_for_cuda_never_panics() {
        let result = std::panic::catch_unwind(super::CudaBackend::new);
        assert!(result.is_ok(), "CudaBackend::new panicked");
        assert!(result.unwrap().is_err());
    }
}
