//! Choosing the backend at run time.
//!
//! A [`BackendChoice`] (`cpu`, `cuda`, `auto`) is resolved once into a [`Resolved`] backend, a concrete
//! [`CpuBackend`] or [`CudaBackend`]. Work is written once, generically over [`bio_core::Backend`], and
//! [`on_backend!`](crate::on_backend) monomorphizes it for each backend type and runs the copy that
//! matches, with no trait objects involved:
//!
//! ```
//! use bio_core::TensorStore;
//! use bio_run::{BackendChoice, on_backend, resolve};
//!
//! fn describe<B: bio_core::Backend>(b: &B) -> anyhow::Result<String> {
//!     Ok(b.name())
//! }
//! let (backend, _note) = resolve(BackendChoice::Cpu).unwrap();
//! let name = on_backend!(&backend, |b| describe(b)).unwrap();
//! assert!(name.starts_with("cpu"));
//! ```

use anyhow::{Result, bail};
use bio_core::TensorStore;
use bio_cpu::CpuBackend;
use bio_cuda::CudaBackend;
use serde::{Deserialize, Serialize};

/// Which backend to run on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// ndarray + rayon on every core.
    #[default]
    Cpu,
    /// NVIDIA GPU through cudarc.
    Cuda,
    /// CUDA when usable, else CPU (says which).
    Auto,
}

/// A backend ready to run: the outcome of [`resolve`].
#[derive(Clone, Debug)]
pub enum Resolved {
    /// The CPU backend.
    Cpu(CpuBackend),
    /// The CUDA backend (device 0).
    Cuda(CudaBackend),
}

impl Resolved {
    /// The backend's human-readable name, e.g. `cpu (2 threads)`.
    pub fn name(&self) -> String {
        match self {
            Resolved::Cpu(b) => b.name(),
            Resolved::Cuda(b) => b.name(),
        }
    }

    /// A backend for one of several runs side by side in this process: on CUDA a fork (same device
    /// and kernels, its own stream: [`CudaBackend::fork`]), so that concurrent runs overlap on the
    /// GPU instead of queueing on one stream; on the CPU a clone (the runs share the cores through
    /// rayon). Either way each run's results are those it gets alone.
    pub fn fork(&self) -> Result<Resolved> {
        Ok(match self {
            Resolved::Cpu(b) => Resolved::Cpu(b.clone()),
            Resolved::Cuda(b) => Resolved::Cuda(b.fork()?),
        })
    }
}

/// Resolves a [`BackendChoice`]; the second value, for `auto` only, says which backend was chosen
/// and, for the CPU, why CUDA was not used (front ends show it; this function prints nothing).
/// - `cpu`: the CPU backend, always.
/// - `cuda`: the CUDA backend, or an error whose one line is the CUDA crate's reason (it contains
///   "CUDA"; never a panic) when no usable GPU, driver, NVRTC or cuBLAS is found.
/// - `auto`: the CUDA backend when [`CudaBackend::new`] succeeds, else the CPU backend.
pub fn resolve(choice: BackendChoice) -> Result<(Resolved, Option<String>)> {
    match choice {
        BackendChoice::Cpu => Ok((Resolved::Cpu(CpuBackend::new()), None)),
        BackendChoice::Cuda => match CudaBackend::new() {
            Ok(cuda) => Ok((Resolved::Cuda(cuda), None)),
            Err(e) => bail!("{e}"),
        },
        BackendChoice::Auto => Ok(match CudaBackend::new() {
            Ok(cuda) => {
                let resolved = Resolved::Cuda(cuda);
                let note = format!("backend: {} (auto: CUDA is usable)", resolved.name());
                (resolved, Some(note))
            }
            Err(e) => {
                let resolved = Resolved::Cpu(CpuBackend::new());
                let note = format!("backend: {} (auto: CUDA not used: {e})", resolved.name());
                (resolved, Some(note))
            }
        }),
    }
}

/// `on_backend!(resolved, |b| body)`: binds the concrete backend inside a [`Resolved`] (by
/// reference) to `b` and evaluates `body` with it. `body` is compiled once per backend type, so it can
/// call a generic `fn work<B: Backend>(b: &B, …)`; every arm must have the same type.
#[macro_export]
macro_rules! on_backend {
    ($resolved:expr, |$b:ident| $body:expr) => {
        match $resolved {
            $crate::Resolved::Cpu($b) => $body,
            $crate::Resolved::Cuda($b) => $body,
        }
    };
}
