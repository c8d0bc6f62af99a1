//! The `CpuBackend` type, its thread control and its tensor store.

use std::sync::Arc;

use bio_core::{Matrix, TensorStore};
use ndarray::Array2;
use rayon::{ThreadPool, ThreadPoolBuildError, ThreadPoolBuilder};

use crate::PARALLEL_MIN_ENTRIES;
use crate::linalg::GemmKernel;

/// The CPU backend: tensors are row-major [`ndarray::Array2<f32>`] values in host memory.
///
/// Matrix products use a single-threaded GEMM kernel ([`GemmKernel`]: the `gemm` crate on hosts with
/// AVX2 + FMA or AVX-512, `matrixmultiply` otherwise), large ones cut into one block per thread of this backend's
/// rayon pool. All other work runs serially on tensors below
/// [`PARALLEL_MIN_ENTRIES`](crate::PARALLEL_MIN_ENTRIES) entries and on rayon otherwise: in the
/// global pool for [`CpuBackend::new`], in a private pool for [`CpuBackend::with_threads`].
///
/// Cloning is cheap and clones share the pool.
#[derive(Clone, Debug)]
pub struct CpuBackend {
    /// `None`: rayon's global pool.
    pool: Option<Arc<ThreadPool>>,
    /// The kernel of every block of a matrix product.
    gemm: GemmKernel,
}

impl Default for CpuBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuBackend {
    /// A backend on rayon's global pool: all cores, unless `RAYON_NUM_THREADS` says otherwise.
    /// Like [`CpuBackend::with_threads`], asks the C library to keep freed memory
    /// ([`crate::keep_freed_memory`]).
    pub fn new() -> Self {
        crate::keep_freed_memory();
        Self { pool: None, gemm: GemmKernel::for_host() }
    }

    /// A backend whose rayon work runs in its own pool of `n` threads (`pool.install`).
    ///
    /// Matrix products are split across the same pool. Errors if the operating system refuses to
    /// start the threads.
    ///
    /// # Panics
    /// If `n == 0`.
    pub fn with_threads(n: usize) -> Result<Self, ThreadPoolBuildError> {
        assert!(n >= 1, "CpuBackend::with_threads needs at least one thread");
        crate::keep_freed_memory();
        let pool = ThreadPoolBuilder::new().num_threads(n).thread_name(|i| format!("bio-cpu-{i}")).build()?;
        Ok(Self { pool: Some(Arc::new(pool)), gemm: GemmKernel::for_host() })
    }

    /// The same backend with matrix products computed by `kernel` instead of the host's default
    /// ([`GemmKernel::for_host`]); for benchmarks and comparisons. Results differ between kernels
    /// in the last bits, never with the thread count.
    pub fn with_gemm_kernel(mut self, kernel: GemmKernel) -> Self {
        self.gemm = kernel;
        self
    }

    /// The kernel of this backend's matrix products.
    pub fn gemm_kernel(&self) -> GemmKernel {
        self.gemm
    }

    /// How many rayon threads this backend's parallel work uses.
    pub fn num_threads(&self) -> usize {
        match &self.pool {
            Some(pool) => pool.current_num_threads(),
            None => rayon::current_num_threads(),
        }
    }

    /// True when work over `entries` values should go to rayon.
    pub(crate) fn parallel(&self, entries: usize) -> bool {
        entries >= PARALLEL_MIN_ENTRIES && self.num_threads() > 1
    }

    /// Runs `f` in this backend's pool (in the caller's context for the global pool).
    pub(crate) fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }
}

impl TensorStore for CpuBackend {
    type Tensor = Array2<f32>;

    fn name(&self) -> String {
        let n = self.num_threads();
        format!("cpu ({n} thread{})", if n == 1 { "" } else { "s" })
    }

    fn upload(&self, m: &Matrix) -> Array2<f32> {
        Array2::from_shape_vec(m.shape(), m.as_slice().to_vec()).expect("a Matrix always has rows·cols entries")
    }

    fn download(&self, t: &Array2<f32>) -> Matrix {
        let data = match t.as_slice() {
            Some(s) => s.to_vec(),
            None => t.iter().copied().collect(),
        };
        Matrix::new(t.nrows(), t.ncols(), data).expect("an Array2 always has rows·cols entries")
    }

    fn shape(&self, t: &Array2<f32>) -> (usize, usize) {
        t.dim()
    }

    fn full(&self, rows: usize, cols: usize, value: f32) -> Array2<f32> {
        Array2::from_elem((rows, cols), value)
    }
}
