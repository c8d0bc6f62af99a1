//! Choosing the backend at run time.

use anyhow::{Result, bail};
use clap::ValueEnum;

/// `--backend`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// ndarray + rayon on every core.
    Cpu,
    /// NVIDIA GPU through cudarc.
    Cuda,
    /// CUDA when usable, else CPU (says which).
    Auto,
}

/// Returns the CPU backend, or the reason the requested backend cannot be used.
/// (Only the CPU backend has kernels today; `cuda` fails with the CUDA crate's one-line reason.)
pub fn cpu_or_explain(choice: BackendChoice, quiet: bool) -> Result<bio_cpu::CpuBackend> {
    match choice {
        BackendChoice::Cpu => Ok(bio_cpu::CpuBackend::new()),
        BackendChoice::Cuda => match bio_cuda::CudaBackend::new() {
            Ok(_) => bail!("the CUDA backend cannot run models in this build"),
            Err(e) => bail!("{e}"),
        },
        BackendChoice::Auto => {
            let cpu = bio_cpu::CpuBackend::new();
            if !quiet {
                let why = bio_cuda::CudaBackend::new().err().map(|e| e.to_string()).unwrap_or_default();
                eprintln!("backend: {} ({why})", bio_core::TensorStore::name(&cpu));
            }
            Ok(cpu)
        }
    }
}
