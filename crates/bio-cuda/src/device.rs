//! [`CudaBackend`]: the CUDA context, stream, compiled kernels and cuBLAS handle; [`Tensor`]; the
//! tensor store (upload, download, fill, sync).
#![allow(unsafe_code)]

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use bio_core::{Matrix, TensorStore};
use cudarc::cublas::CudaBlas;
use cudarc::driver::{
    CudaContext, CudaEvent, CudaFunction, CudaSlice, CudaStream, DriverError, LaunchArgs, LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::Ptx;

use crate::CudaError;
use crate::compile::compile_source;
use crate::kernels::{
    COL_BLOCK_Y, ELEMENTWISE_BLOCK, Kernel, MAX_ROW_BLOCK, Param, SOURCE, SPARSE_BLOCK, SPARSE_COLS_PER_THREAD,
};

/// A `rows×cols` row-major `f32` matrix in plain device memory (`cuMemAlloc[Async]`, never managed
/// or unified memory) on the stream of the [`CudaBackend`] that made it.
///
/// Cloning allocates a new buffer and queues a device-to-device copy on that stream.
#[derive(Clone)]
pub struct Tensor {
    /// At least one element, even for an empty shape (zero-byte allocations are avoided); only the
    /// first `rows·cols` entries are meaningful.
    pub(crate) data: CudaSlice<f32>,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
}

impl Tensor {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// `(rows, cols)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Number of entries, `rows·cols`.
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    /// True when the tensor has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cuda::Tensor({}×{} on device {})", self.rows, self.cols, self.data.ordinal())
    }
}

/// The CUDA backend: one device, one stream, the kernels of `src/kernels.cu` compiled by NVRTC,
/// and a cuBLAS handle for the matrix products.
///
/// Every operation is queued on the backend's single stream, so results are ordered without
/// events; [`TensorStore::sync`] waits for the stream and [`TensorStore::download`] synchronizes
/// before returning. Cloning is cheap: clones share the context, stream, kernels and handle.
///
/// Operations panic (with a message starting `bio-cuda:`) if the driver reports an error after
/// construction, e.g. out of device memory: the `Backend` traits have no error channel, and such an
/// error leaves the CUDA context unusable anyway. Shape errors panic like every other backend's.
#[derive(Clone)]
pub struct CudaBackend {
    pub(crate) inner: Arc<Inner>,
}

/// What a backend owns. Field order is drop order: the cuBLAS handle and the kernels go before
/// the stream and context they belong to.
pub(crate) struct Inner {
    pub(crate) blas: CudaBlas,
    pub(crate) kernels: Vec<CudaFunction>,
    pub(crate) stream: Arc<CudaStream>,
    pub(crate) ctx: Arc<CudaContext>,
    device_name: String,
    ordinal: usize,
    arch: String,
}

impl fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CudaBackend")
            .field("device", &self.inner.device_name)
            .field("ordinal", &self.inner.ordinal)
            .field("kernels", &self.inner.arch)
            .finish()
    }
}

fn driver(what: &str) -> impl FnOnce(DriverError) -> CudaError + '_ {
    move |e| CudaError::Driver(format!("{what}: {e}"))
}

/// Panics with a uniform message when the driver fails in the middle of an operation.
pub(crate) fn check<T, E: fmt::Display>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("bio-cuda: {what} failed: {e}"),
    }
}

/// Converts a size for a kernel argument.
pub(crate) fn u64_of(n: usize) -> u64 {
    n as u64
}

/// A value passed to a kernel, with the PTX type of the parameter it fills.
pub(crate) trait KernelArg {
    /// The parameter's PTX type.
    const PARAM: Param;
}
impl<T> KernelArg for &CudaSlice<T> {
    const PARAM: Param = Param::Ptr;
}
impl<T> KernelArg for &mut CudaSlice<T> {
    const PARAM: Param = Param::Ptr;
}
impl KernelArg for &u64 {
    const PARAM: Param = Param::U64;
}
impl KernelArg for &u32 {
    const PARAM: Param = Param::U32;
}
impl KernelArg for &i32 {
    const PARAM: Param = Param::U32;
}
impl KernelArg for &f32 {
    const PARAM: Param = Param::F32;
}

/// A launch of one [`Kernel`]: cudarc's builder plus the parameter types pushed so far, which
/// [`Launch::launch`] checks against [`Kernel::params`] (the list the NVRTC test checks against the
/// compiled PTX) before anything is queued.
pub(crate) struct Launch<'a> {
    builder: LaunchArgs<'a>,
    kernel: Kernel,
    pushed: Vec<Param>,
}

impl<'a> Launch<'a> {
    /// Pushes one argument.
    pub(crate) fn arg<T: KernelArg>(&mut self, value: T) -> &mut Self
    where
        LaunchArgs<'a>: PushKernelArg<T>,
    {
        self.pushed.push(T::PARAM);
        self.builder.arg(value);
        self
    }

    /// Queues the kernel; panics first if the arguments pushed do not match [`Kernel::params`].
    ///
    /// # Safety
    /// As cudarc's `LaunchArgs::launch`: the kernel must only touch memory the arguments own.
    pub(crate) unsafe fn launch(&mut self, cfg: LaunchConfig) -> Result<Option<(CudaEvent, CudaEvent)>, DriverError> {
        let want = self.kernel.params();
        assert!(
            self.pushed == want,
            "bio-cuda: the launch of {} passes {:?} but the kernel takes {want:?}",
            self.kernel.name(),
            self.pushed
        );
        // SAFETY: the caller's contract; the argument list matches the kernel's signature.
        unsafe { self.builder.launch(cfg) }
    }
}

/// Compiles the kernels for `arch` (e.g. `compute_90`), falling back to NVRTC's default target when
/// this NVRTC does not know the device's architecture.
fn compile(arch: &str) -> Result<(Ptx, String), CudaError> {
    match compile_source(SOURCE, Some(arch)) {
        Ok(c) => Ok((Ptx::from_src(c.ptx), arch.to_owned())),
        Err(first) => match compile_source(SOURCE, None) {
            Ok(c) => Ok((Ptx::from_src(c.ptx), "nvrtc default".to_owned())),
            Err(second) => Err(CudaError::Compile(format!(
                "NVRTC could not compile the kernels for {arch}: {first}; nor for its default target: {second}"
            ))),
        },
    }
}

/// A cuBLAS handle bound to `stream`, in FP32 math mode (no TF32).
fn fp32_blas(stream: &Arc<CudaStream>) -> Result<CudaBlas, CudaError> {
    let blas = CudaBlas::new(stream.clone()).map_err(|e| CudaError::Blas(format!("creating a handle: {e}")))?;
    // SAFETY: the handle is valid (just created) and the mode is a plain enum value.
    unsafe {
        cudarc::cublas::sys::cublasSetMathMode(*blas.handle(), cudarc::cublas::sys::cublasMath_t::CUBLAS_DEFAULT_MATH)
    }
    .result()
    .map_err(|e| CudaError::Blas(format!("setting FP32 math mode: {e}")))?;
    Ok(blas)
}

impl CudaBackend {
    /// The backend on device 0. See [`CudaBackend::with_device`].
    pub fn new() -> Result<Self, CudaError> {
        Self::with_device(0)
    }

    /// The backend on the device with this ordinal: checks that libcuda, libnvrtc and libcublas
    /// can be loaded (before any driver call), creates the context and a stream, compiles every
    /// kernel once with NVRTC for the device's architecture, and creates a cuBLAS handle in FP32
    /// math mode (no TF32).
    ///
    /// Never panics for a missing or unusable GPU: every failure is a [`CudaError`]. (cudarc
    /// panics when it meets a driver too old for a function it needs; that panic is caught and
    /// reported as [`CudaError::Driver`], though the panic message still reaches stderr.)
    pub fn with_device(ordinal: usize) -> Result<Self, CudaError> {
        crate::availability()?;
        match catch_unwind(AssertUnwindSafe(|| Self::build(ordinal))) {
            Ok(result) => result,
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".into());
                Err(CudaError::Driver(format!("cudarc panicked while setting up the device: {msg}")))
            }
        }
    }

    fn build(ordinal: usize) -> Result<Self, CudaError> {
        let found = match CudaContext::device_count() {
            Ok(n) => n.max(0) as usize,
            Err(e) if e.0 == cudarc::driver::sys::CUresult::CUDA_ERROR_NO_DEVICE => 0,
            Err(e) => return Err(CudaError::Driver(format!("cuInit / cuDeviceGetCount: {e}"))),
        };
        if ordinal >= found {
            return Err(CudaError::NoDevice { ordinal, found });
        }
        let ctx = CudaContext::new(ordinal).map_err(driver("creating the context"))?;
        // SAFETY: event tracking only synchronizes a buffer's uses across streams. This backend
        // allocates, copies, launches and frees everything on the one stream created below (the
        // cuBLAS handle is bound to it too), and this `CudaContext` value is shared only with the
        // backend's forks, each of which keeps its own tensors on its own stream (see `fork`), so
        // stream order alone keeps every use after its producer and before the free.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream().map_err(driver("creating a stream"))?;
        let device_name = ctx.name().map_err(driver("reading the device name"))?;
        let (major, minor) = ctx.compute_capability().map_err(driver("reading the compute capability"))?;
        let (ptx, arch) = compile(&format!("compute_{major}{minor}"))?;
        let module = ctx.load_module(ptx).map_err(|e| {
            CudaError::Driver(format!(
                "loading the compiled kernels: {e} (CUDA_ERROR_UNSUPPORTED_PTX_VERSION means libnvrtc is newer \
                 than the driver)"
            ))
        })?;
        let kernels = Kernel::ALL
            .iter()
            .map(|k| module.load_function(k.name()).map_err(driver(k.name())))
            .collect::<Result<Vec<_>, _>>()?;
        let blas = fp32_blas(&stream)?;
        Ok(Self { inner: Arc::new(Inner { blas, kernels, stream, ctx, device_name, ordinal, arch }) })
    }

    /// A backend for concurrent work on the same device: it shares this backend's context and
    /// compiled kernels (nothing is compiled again) but queues on a stream of its own, with a cuBLAS
    /// handle of its own. Work queued on different forks may run at the same time on the GPU, so
    /// several training runs in one process (one fork per thread: `bio sweep --jobs N`) fill the
    /// device instead of taking turns on one stream, and each run's results are those it gets alone:
    /// the same kernels in the same order on its stream.
    ///
    /// A tensor belongs to the fork that made it: never pass it to another fork (the context tracks
    /// no events, see [`CudaBackend::with_device`], so nothing would order the two streams' uses).
    pub fn fork(&self) -> Result<Self, CudaError> {
        let inner = &self.inner;
        let stream = inner.ctx.new_stream().map_err(driver("creating a stream"))?;
        let blas = fp32_blas(&stream)?;
        Ok(Self {
            inner: Arc::new(Inner {
                blas,
                kernels: inner.kernels.clone(),
                stream,
                ctx: inner.ctx.clone(),
                device_name: inner.device_name.clone(),
                ordinal: inner.ordinal,
                arch: inner.arch.clone(),
            }),
        })
    }

    /// The device's name as the driver reports it, e.g. `NVIDIA H200`.
    pub fn device_name(&self) -> &str {
        &self.inner.device_name
    }

    /// The device ordinal this backend runs on.
    pub fn ordinal(&self) -> usize {
        self.inner.ordinal
    }

    /// The virtual architecture the kernels were compiled for (e.g. `compute_90`), or
    /// `nvrtc default` when NVRTC did not know the device's.
    pub fn kernel_arch(&self) -> &str {
        &self.inner.arch
    }

    pub(crate) fn stream(&self) -> &Arc<CudaStream> {
        &self.inner.stream
    }

    /// A launch of `k` on the backend's stream.
    pub(crate) fn launch_of(&self, k: Kernel) -> Launch<'_> {
        Launch { builder: self.stream().launch_builder(&self.inner.kernels[k as usize]), kernel: k, pushed: Vec::new() }
    }

    /// A tensor whose entries are not initialized: every caller writes all `rows·cols` of them
    /// (by a kernel, a copy or cuBLAS with β = 0) before the tensor is read.
    pub(crate) fn uninit(&self, rows: usize, cols: usize) -> Tensor {
        let n = rows.checked_mul(cols).expect("bio-cuda: tensor size overflows usize");
        // SAFETY: `alloc` returns device memory with unspecified contents; no host memory is
        // involved, and (see above) every entry is written on this stream before it is read.
        let data = check(unsafe { self.stream().alloc::<f32>(n.max(1)) }, "device allocation");
        Tensor { data, rows, cols }
    }

    /// Launch shape of the elementwise kernels (grid-strided, so the grid is capped).
    pub(crate) fn elementwise_cfg(n: usize) -> LaunchConfig {
        let blocks = n.div_ceil(ELEMENTWISE_BLOCK as usize).clamp(1, 1 << 16) as u32;
        LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (ELEMENTWISE_BLOCK, 1, 1), shared_mem_bytes: 0 }
    }

    /// Launch shape of the one-block-per-row kernels: a power-of-two block fitted to the row.
    pub(crate) fn rows_cfg(rows: usize, cols: usize) -> LaunchConfig {
        let threads = cols.next_power_of_two().clamp(32, MAX_ROW_BLOCK as usize) as u32;
        let blocks = rows.clamp(1, 1 << 20) as u32;
        LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (threads, 1, 1), shared_mem_bytes: 0 }
    }

    /// Launch shape of `bio_sparse_matmul`: one block row per output row, one block column per
    /// tile of `SPARSE_BLOCK · SPARSE_COLS_PER_THREAD` output columns (both grid-strided).
    pub(crate) fn sparse_cfg(rows: usize, cols: usize) -> LaunchConfig {
        let tile = (SPARSE_BLOCK * SPARSE_COLS_PER_THREAD) as usize;
        let x = rows.clamp(1, 1 << 20) as u32;
        let y = cols.div_ceil(tile).clamp(1, 1 << 15) as u32;
        LaunchConfig { grid_dim: (x, y, 1), block_dim: (SPARSE_BLOCK, 1, 1), shared_mem_bytes: 0 }
    }

    /// Launch shape of `bio_reduce_cols`: 32 columns per block.
    pub(crate) fn cols_cfg(cols: usize) -> LaunchConfig {
        let blocks = cols.div_ceil(32).clamp(1, 1 << 20) as u32;
        LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (32, COL_BLOCK_Y, 1), shared_mem_bytes: 0 }
    }
}

impl TensorStore for CudaBackend {
    type Tensor = Tensor;

    fn name(&self) -> String {
        format!("cuda ({}, device {})", self.inner.device_name, self.inner.ordinal)
    }

    fn upload(&self, m: &Matrix) -> Tensor {
        let (rows, cols) = m.shape();
        let mut t = self.uninit(rows, cols);
        if !m.is_empty() {
            let mut dst = t.data.slice_mut(0..m.len());
            check(self.stream().memcpy_htod(m.as_slice(), &mut dst), "upload (host to device copy)");
        }
        t
    }

    fn download(&self, t: &Tensor) -> Matrix {
        let n = t.len();
        let values = if n == 0 {
            Vec::new()
        } else {
            let v = check(self.stream().clone_dtoh(&t.data.slice(0..n)), "download (device to host copy)");
            check(self.stream().synchronize(), "download (stream synchronize)");
            v
        };
        Matrix::new(t.rows, t.cols, values).expect("bio-cuda: downloaded length matches the shape")
    }

    fn shape(&self, t: &Tensor) -> (usize, usize) {
        t.shape()
    }

    fn full(&self, rows: usize, cols: usize, value: f32) -> Tensor {
        let mut out = self.uninit(rows, cols);
        let n = out.len();
        if n > 0 {
            let (n64, bits) = (u64_of(n), value.to_bits());
            let mut launch = self.launch_of(Kernel::Fill);
            launch.arg(&mut out.data).arg(&n64).arg(&bits);
            // SAFETY: bio_fill(float* out, u64 n, unsigned int bits) writes out[0..n), and `out`
            // holds at least n floats.
            check(unsafe { launch.launch(Self::elementwise_cfg(n)) }, "bio_fill");
        }
        out
    }

    fn sync(&self) {
        check(self.stream().synchronize(), "stream synchronize");
    }
}
