//! Choosing the backend at run time.
//!
//! `--backend cpu|cuda|auto` is resolved once per command into a [`Resolved`] backend, a concrete
//! [`bio_cpu::CpuBackend`] or [`bio_cuda::CudaBackend`]. The commands themselves are written once,
//! generically over [`bio_core::Backend`] (`fn run_on<B: Backend>(b: &B, …)`), and
//! [`with_backend!`](crate::backend::with_backend) monomorphizes that body for each backend type and
//! runs the copy that matches the resolved one, with no trait objects involved:
//!
//! ```ignore
//! pub fn run(args: Args) -> Result<()> {
//!     with_backend!(args.backend, args.json, |b| run_on(&b, &args))
//! }
//! ```

use anyhow::{Result, bail};
use bio_core::TensorStore;
use bio_cpu::CpuBackend;
use bio_cuda::CudaBackend;
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
}

/// Resolves `--backend`:
/// - `cpu`: the CPU backend, always.
/// - `cuda`: the CUDA backend, or an error whose one line is the CUDA crate's reason (it contains
///   "CUDA"; never a panic) when no usable GPU, driver, NVRTC or cuBLAS is found.
/// - `auto`: the CUDA backend when [`CudaBackend::new`] succeeds, else the CPU backend; unless
///   `quiet`, says on stderr which one was chosen and, for the CPU, why CUDA was not used.
pub fn resolve(choice: BackendChoice, quiet: bool) -> Result<Resolved> {
    match choice {
        BackendChoice::Cpu => Ok(Resolved::Cpu(CpuBackend::new())),
        BackendChoice::Cuda => match CudaBackend::new() {
            Ok(cuda) => Ok(Resolved::Cuda(cuda)),
            Err(e) => bail!("{e}"),
        },
        BackendChoice::Auto => {
            let (resolved, why) = match CudaBackend::new() {
                Ok(cuda) => (Resolved::Cuda(cuda), None),
                Err(e) => (Resolved::Cpu(CpuBackend::new()), Some(e.to_string())),
            };
            if !quiet {
                match why {
                    None => eprintln!("backend: {} (auto: CUDA is usable)", resolved.name()),
                    Some(why) => eprintln!("backend: {} (auto: CUDA not used: {why})", resolved.name()),
                }
            }
            Ok(resolved)
        }
    }
}

/// `with_backend!(choice, quiet, |b| body)`: resolves `choice` with [`resolve`], binds the concrete
/// backend (by value) to `b` and evaluates `body`, which must be an `anyhow::Result<T>`; the whole
/// expression is that result, or the resolution error. `body` is compiled once per backend type, so
/// it can call a generic `fn run_on<B: Backend>(b: &B, …)`.
macro_rules! with_backend {
    ($choice:expr, $quiet:expr, |$b:ident| $body:expr) => {
        match $crate::backend::resolve($choice, $quiet) {
            ::std::result::Result::Err(e) => ::std::result::Result::Err(e),
            ::std::result::Result::Ok($crate::backend::Resolved::Cpu($b)) => $body,
            ::std::result::Result::Ok($crate::backend::Resolved::Cuda($b)) => $body,
        }
    };
}
pub(crate) use with_backend;
