//! The CUDA C source of every kernel, compiled once per [`crate::CudaBackend`] by NVRTC at run time,
//! and the list of kernel names the Rust side loads and launches.
//!
//! Numerical choices, all made to match `bio_core::ReferenceBackend` closely:
//! - compiled with `--fmad=false` (no fused multiply-add contraction), IEEE division and square
//!   root, no flush-to-zero and no fast math, so elementwise ops round like the CPU code;
//! - sums (reductions, softmax normalizers) accumulate in `double`, like the reference;
//! - Max / Min reductions combine with `fmax` / `fmin`, which skip NaN like `f64::max` / `f64::min`;
//! - `bio_kth_largest_rows` is an exact radix select on the order-preserving 32-bit key of each
//!   float, which orders values exactly like `f32::total_cmp` (so `-0.0 < 0.0`, and NaN with the
//!   sign bit clear sorts above `+∞`);
//! - `bio_argmax_rows` reproduces the reference's scan (`v > best`, first index on ties; a NaN in
//!   column 0 makes the answer 0, other NaNs are never chosen).
//!
//! Every per-row kernel expects a power-of-two `blockDim.x` of at most [`MAX_ROW_BLOCK`];
//! `bio_reduce_cols` expects `blockDim = (32, COL_BLOCK_Y)`.

/// Largest block used by the per-row kernels (the size of their shared arrays).
pub(crate) const MAX_ROW_BLOCK: u32 = 256;
/// Rows handled in parallel by one block of `bio_reduce_cols` (its `blockDim.y`).
pub(crate) const COL_BLOCK_Y: u32 = 16;
/// Threads per block of the elementwise kernels.
pub(crate) const ELEMENTWISE_BLOCK: u32 = 256;
/// Threads per block of `bio_sparse_matmul` (its shared array's size).
pub(crate) const SPARSE_BLOCK: u32 = 256;
/// Output columns per thread of `bio_sparse_matmul` (registers per thread).
pub(crate) const SPARSE_COLS_PER_THREAD: u32 = 4;
/// Longest row `bio_plasticity_step` keeps in shared memory (the weights and the pull: 32 KiB);
/// longer rows take the composed definition.
pub(crate) const FUSED_MAX_COLS: usize = 4096;

/// One kernel of [`SOURCE`]; the discriminant indexes the loaded functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kernel {
    Fill,
    Map,
    Zip,
    ZipAssign,
    Lincomb,
    ReduceRows,
    ReduceCols,
    KthLargestRows,
    SoftmaxRows,
    ArgmaxRows,
    AdamStep,
    MomentumStep,
    SparseMatmul,
    PlasticityStep,
}

impl Kernel {
    /// Every kernel, in discriminant order.
    pub(crate) const ALL: [Kernel; 14] = [
        Kernel::Fill,
        Kernel::Map,
        Kernel::Zip,
        Kernel::ZipAssign,
        Kernel::Lincomb,
        Kernel::ReduceRows,
        Kernel::ReduceCols,
        Kernel::KthLargestRows,
        Kernel::SoftmaxRows,
        Kernel::ArgmaxRows,
        Kernel::AdamStep,
        Kernel::MomentumStep,
        Kernel::SparseMatmul,
        Kernel::PlasticityStep,
    ];

    /// The `extern "C"` name of the kernel in [`SOURCE`].
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kernel::Fill => "bio_fill",
            Kernel::Map => "bio_map",
            Kernel::Zip => "bio_zip",
            Kernel::ZipAssign => "bio_zip_assign",
            Kernel::Lincomb => "bio_lincomb",
            Kernel::ReduceRows => "bio_reduce_rows",
            Kernel::ReduceCols => "bio_reduce_cols",
            Kernel::KthLargestRows => "bio_kth_largest_rows",
            Kernel::SoftmaxRows => "bio_softmax_rows",
            Kernel::ArgmaxRows => "bio_argmax_rows",
            Kernel::AdamStep => "bio_adam_step",
            Kernel::MomentumStep => "bio_momentum_step",
            Kernel::SparseMatmul => "bio_sparse_matmul",
            Kernel::PlasticityStep => "bio_plasticity_step",
        }
    }

    /// The kernel's parameter list, as the PTX `.param` types NVRTC gives the `extern "C"`
    /// signature in [`SOURCE`]. Every launch checks the arguments it pushes against this list
    /// (`crate::device::Launch`), and the NVRTC test checks it against the compiled PTX.
    pub(crate) fn params(self) -> &'static [Param] {
        use Param::{F32, Ptr, U32, U64};
        match self {
            Kernel::Fill => &[Ptr, U64, U32],
            Kernel::Map => &[Ptr, Ptr, U64, U32, F32, F32],
            Kernel::Zip => &[Ptr, Ptr, Ptr, U64, U64, U64, U64, U32],
            Kernel::ZipAssign => &[Ptr, Ptr, U64, U64, U64, U64, U32],
            Kernel::Lincomb => &[Ptr, Ptr, Ptr, U64, F32, F32],
            Kernel::ReduceRows | Kernel::ReduceCols => &[Ptr, Ptr, U64, U64, U32],
            Kernel::KthLargestRows => &[Ptr, Ptr, U64, U64, U64],
            Kernel::SoftmaxRows | Kernel::ArgmaxRows => &[Ptr, Ptr, U64, U64],
            Kernel::AdamStep => &[Ptr, Ptr, Ptr, Ptr, U64, F32, F32, F32, F32],
            Kernel::MomentumStep => &[Ptr, Ptr, Ptr, U64, F32, F32],
            Kernel::SparseMatmul => &[Ptr, Ptr, Ptr, U64, U64, U64, U64, U64],
            Kernel::PlasticityStep => &[Ptr, Ptr, Ptr, Ptr, Ptr, U64, U64, U64, U32, F32, F32, F32, F32],
        }
    }
}

/// A kernel parameter as PTX declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Param {
    /// A device pointer (`.u64`).
    Ptr,
    /// `u64` (`.u64`).
    U64,
    /// `int` or `unsigned int` (`.u32`).
    U32,
    /// `float` (`.f32`).
    F32,
}

impl Param {
    /// The PTX type of the parameter (read by the NVRTC test).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn ptx_type(self) -> &'static str {
        match self {
            Param::Ptr | Param::U64 => ".u64",
            Param::U32 => ".u32",
            Param::F32 => ".f32",
        }
    }
}

/// Bits of the `flags` argument of `bio_plasticity_step`.
pub(crate) mod plasticity {
    /// L2 norm (else L1).
    pub(crate) const L2: u32 = 1;
    /// Mixed-sign layer: normalize magnitudes.
    pub(crate) const SIGNED: u32 = 2;
    /// Additive change (else multiplicative).
    pub(crate) const ADDITIVE: u32 = 4;
    /// Structural plasticity (pruning).
    pub(crate) const PRUNE: u32 = 8;
    /// Synaptic scaling.
    pub(crate) const SCALE: u32 = 16;
}

/// Integer codes of `bio_core::Unary`, shared with `unary_apply` in [`SOURCE`].
pub(crate) mod unary {
    pub(crate) const RELU: i32 = 0;
    pub(crate) const STEP: i32 = 1;
    pub(crate) const EXP: i32 = 2;
    pub(crate) const LN: i32 = 3;
    pub(crate) const SQRT: i32 = 4;
    pub(crate) const ABS: i32 = 5;
    pub(crate) const SIGN: i32 = 6;
    pub(crate) const SQUARE: i32 = 7;
    pub(crate) const RECIP: i32 = 8;
    pub(crate) const SCALE: i32 = 9;
    pub(crate) const OFFSET: i32 = 10;
    pub(crate) const POWF: i32 = 11;
    pub(crate) const CLAMP: i32 = 12;
}

/// Integer codes of `bio_core::Binary`, shared with `binary_apply` in [`SOURCE`].
pub(crate) mod binary {
    pub(crate) const ADD: i32 = 0;
    pub(crate) const SUB: i32 = 1;
    pub(crate) const MUL: i32 = 2;
    pub(crate) const DIV: i32 = 3;
    pub(crate) const MAX: i32 = 4;
    pub(crate) const MIN: i32 = 5;
    pub(crate) const GREATER: i32 = 6;
}

/// Integer codes of `bio_core::Reduce`, shared with the reduction kernels in [`SOURCE`].
pub(crate) mod reduce {
    pub(crate) const SUM: i32 = 0;
    pub(crate) const MEAN: i32 = 1;
    pub(crate) const MAX: i32 = 2;
    pub(crate) const MIN: i32 = 3;
}

/// The CUDA C source of all kernels (one NVRTC program).
pub(crate) const SOURCE: &str = r#"
typedef unsigned long long u64;

#define MAX_ROW_BLOCK 256
#define COL_BLOCK_Y 16
#define SPARSE_BLOCK 256
#define SPARSE_COLS_PER_THREAD 4
#define FUSED_MAX_COLS 4096

static __device__ __forceinline__ float f32_inf() { return __int_as_float(0x7f800000); }
static __device__ __forceinline__ double f64_inf() { return __longlong_as_double(0x7ff0000000000000LL); }

/* Codes: see kernels.rs (mod unary). Mirrors bio_core::Unary::apply. */
static __device__ __forceinline__ float unary_apply(int op, float x, float p0, float p1) {
    switch (op) {
    case 0: return fmaxf(x, 0.0f);                       /* Relu */
    case 1: return x > 0.0f ? 1.0f : 0.0f;               /* Step */
    case 2: return expf(x);                              /* Exp */
    case 3: return logf(x);                              /* Ln */
    case 4: return sqrtf(x);                             /* Sqrt */
    case 5: return fabsf(x);                             /* Abs */
    case 6: return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f); /* Sign (NaN -> 0 like the reference) */
    case 7: return x * x;                                /* Square */
    case 8: return 1.0f / x;                             /* Recip */
    case 9: return p0 * x;                               /* Scale(a) */
    case 10: return x + p0;                              /* Offset(a) */
    case 11: return powf(x, p0);                         /* Powf(p) */
    case 12: return fminf(fmaxf(x, p0), p1);             /* Clamp(lo, hi) */
    default: return __int_as_float(0x7fc00000);          /* unknown code: NaN, never silent */
    }
}

/* Codes: see kernels.rs (mod binary). Mirrors bio_core::Binary::apply. */
static __device__ __forceinline__ float binary_apply(int op, float a, float b) {
    switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
    case 3: return a / b;
    case 4: return fmaxf(a, b);
    case 5: return fminf(a, b);
    case 6: return a > b ? 1.0f : 0.0f;
    default: return __int_as_float(0x7fc00000);
    }
}

/* Order-preserving key: unsigned order of keys == f32::total_cmp order of floats. */
static __device__ __forceinline__ unsigned int float_key(float x) {
    unsigned int u = __float_as_uint(x);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
static __device__ __forceinline__ float key_float(unsigned int k) {
    unsigned int u = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
    return __uint_as_float(u);
}

/* Block-wide combination of one double per thread (blockDim.x a power of two <= MAX_ROW_BLOCK).
   op: 0 = sum, 2 = max, 3 = min. Result in sh[0]; every thread must call it. */
static __device__ void block_combine(double* sh, double v, int op) {
    unsigned int t = threadIdx.x;
    sh[t] = v;
    __syncthreads();
    for (unsigned int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (t < s) {
            double a = sh[t], b = sh[t + s];
            sh[t] = op == 2 ? fmax(a, b) : (op == 3 ? fmin(a, b) : a + b);
        }
        __syncthreads();
    }
}

extern "C" {

__global__ void bio_fill(float* out, u64 n, unsigned int bits) {
    float v = __uint_as_float(bits);
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x) {
        out[i] = v;
    }
}

__global__ void bio_map(float* out, const float* a, u64 n, int op, float p0, float p1) {
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x) {
        out[i] = unary_apply(op, a[i], p0, p1);
    }
}

/* b entry (i, j) lives at i*rs + j*cs (bio_core::broadcast_strides). */
__global__ void bio_zip(float* out, const float* a, const float* b, u64 rows, u64 cols, u64 rs, u64 cs, int op) {
    u64 n = rows * cols;
    for (u64 idx = (u64)blockIdx.x * blockDim.x + threadIdx.x; idx < n; idx += (u64)gridDim.x * blockDim.x) {
        u64 i = idx / cols, j = idx - i * cols;
        out[idx] = binary_apply(op, a[idx], b[i * rs + j * cs]);
    }
}

__global__ void bio_zip_assign(float* a, const float* b, u64 rows, u64 cols, u64 rs, u64 cs, int op) {
    u64 n = rows * cols;
    for (u64 idx = (u64)blockIdx.x * blockDim.x + threadIdx.x; idx < n; idx += (u64)gridDim.x * blockDim.x) {
        u64 i = idx / cols, j = idx - i * cols;
        a[idx] = binary_apply(op, a[idx], b[i * rs + j * cs]);
    }
}

__global__ void bio_lincomb(float* out, const float* a, const float* b, u64 n, float alpha, float beta) {
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x) {
        out[i] = alpha * a[i] + beta * b[i];
    }
}

/* One block per row (grid-strided). op: 0 sum, 1 mean, 2 max, 3 min. Dim::All is rows = 1. */
__global__ void bio_reduce_rows(float* out, const float* a, u64 rows, u64 cols, int op) {
    __shared__ double sh[MAX_ROW_BLOCK];
    int comb = op == 1 ? 0 : op;
    for (u64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* row = a + r * cols;
        double acc = comb == 2 ? -f64_inf() : (comb == 3 ? f64_inf() : 0.0);
        for (u64 j = threadIdx.x; j < cols; j += blockDim.x) {
            double x = (double)row[j];
            acc = comb == 2 ? fmax(acc, x) : (comb == 3 ? fmin(acc, x) : acc + x);
        }
        block_combine(sh, acc, comb);
        if (threadIdx.x == 0) {
            double v = sh[0];
            if (op == 1) v /= (double)(cols > 0 ? cols : 1);
            out[r] = (float)v;
        }
        __syncthreads();
    }
}

/* blockDim = (32, COL_BLOCK_Y): 32 neighbouring columns per block (coalesced reads), rows strided
   over threadIdx.y, then combined in shared memory. Column tiles are grid-strided. */
__global__ void bio_reduce_cols(float* out, const float* a, u64 rows, u64 cols, int op) {
    __shared__ double sh[COL_BLOCK_Y][32];
    int comb = op == 1 ? 0 : op;
    unsigned int tx = threadIdx.x, ty = threadIdx.y;
    for (u64 tile = blockIdx.x; tile * 32 < cols; tile += gridDim.x) {
        u64 j = tile * 32 + tx;
        double acc = comb == 2 ? -f64_inf() : (comb == 3 ? f64_inf() : 0.0);
        if (j < cols) {
            for (u64 i = ty; i < rows; i += blockDim.y) {
                double x = (double)a[i * cols + j];
                acc = comb == 2 ? fmax(acc, x) : (comb == 3 ? fmin(acc, x) : acc + x);
            }
        }
        sh[ty][tx] = acc;
        __syncthreads();
        for (unsigned int s = blockDim.y / 2; s > 0; s >>= 1) {
            if (ty < s) {
                double p = sh[ty][tx], q = sh[ty + s][tx];
                sh[ty][tx] = comb == 2 ? fmax(p, q) : (comb == 3 ? fmin(p, q) : p + q);
            }
            __syncthreads();
        }
        if (ty == 0 && j < cols) {
            double v = sh[0][tx];
            if (op == 1) v /= (double)(rows > 0 ? rows : 1);
            out[j] = (float)v;
        }
        __syncthreads();
    }
}

/* Exact k-th largest (k from 1) of each row: radix select, 8 bits per pass from the top, on the
   total-order key. hist counts the candidates (keys matching the prefix chosen so far) per digit;
   thread 0 walks the digits from the top to find the one holding the k-th largest. */
__global__ void bio_kth_largest_rows(float* out, const float* a, u64 rows, u64 cols, u64 k) {
    __shared__ unsigned int hist[256];
    __shared__ unsigned int prefix_sh;
    __shared__ u64 rank_sh;
    for (u64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* row = a + r * cols;
        unsigned int prefix = 0, mask = 0;
        u64 rank = k;
        for (int shift = 24; shift >= 0; shift -= 8) {
            for (unsigned int b = threadIdx.x; b < 256; b += blockDim.x) hist[b] = 0;
            __syncthreads();
            for (u64 j = threadIdx.x; j < cols; j += blockDim.x) {
                unsigned int key = float_key(row[j]);
                if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 0xffu], 1u);
            }
            __syncthreads();
            if (threadIdx.x == 0) {
                u64 left = rank;
                int digit = 255;
                for (; digit > 0; --digit) {
                    if (left <= (u64)hist[digit]) break;
                    left -= (u64)hist[digit];
                }
                prefix_sh = prefix | ((unsigned int)digit << shift);
                rank_sh = left;
            }
            __syncthreads();
            prefix = prefix_sh;
            rank = rank_sh;
            mask |= 0xffu << shift;
            __syncthreads();
        }
        if (threadIdx.x == 0) out[r] = key_float(prefix);
        __syncthreads();
    }
}

/* Stable softmax per row: max, exp(x - max) into out, double sum, divide in double. */
__global__ void bio_softmax_rows(float* out, const float* a, u64 rows, u64 cols) {
    __shared__ double sh[MAX_ROW_BLOCK];
    for (u64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* row = a + r * cols;
        float* dst = out + r * cols;
        float mx = -f32_inf();
        for (u64 j = threadIdx.x; j < cols; j += blockDim.x) mx = fmaxf(mx, row[j]);
        block_combine(sh, (double)mx, 2);
        float rmax = (float)sh[0];
        __syncthreads();
        double sum = 0.0;
        for (u64 j = threadIdx.x; j < cols; j += blockDim.x) {
            float e = expf(row[j] - rmax);
            dst[j] = e;
            sum += (double)e;
        }
        block_combine(sh, sum, 0);
        double total = sh[0];
        __syncthreads();
        for (u64 j = threadIdx.x; j < cols; j += blockDim.x) dst[j] = (float)((double)dst[j] / total);
        __syncthreads();
    }
}

/* First index of the largest value of each row, as the reference's sequential scan finds it. */
__global__ void bio_argmax_rows(unsigned int* out, const float* a, u64 rows, u64 cols) {
    __shared__ float best_v[MAX_ROW_BLOCK];
    __shared__ u64 best_i[MAX_ROW_BLOCK];
    const u64 NONE = ~0ULL;
    unsigned int t = threadIdx.x;
    for (u64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* row = a + r * cols;
        float bv = 0.0f;
        u64 bi = NONE;
        for (u64 j = t; j < cols; j += blockDim.x) {
            float x = row[j];
            if (x == x && (bi == NONE || x > bv)) { bv = x; bi = j; }
        }
        best_v[t] = bv;
        best_i[t] = bi;
        __syncthreads();
        for (unsigned int s = blockDim.x / 2; s > 0; s >>= 1) {
            if (t < s) {
                float ov = best_v[t + s];
                u64 oi = best_i[t + s];
                if (oi != NONE && (best_i[t] == NONE || ov > best_v[t] || (ov == best_v[t] && oi < best_i[t]))) {
                    best_v[t] = ov;
                    best_i[t] = oi;
                }
            }
            __syncthreads();
        }
        if (t == 0) {
            u64 i = best_i[0];
            float first = cols > 0 ? row[0] : 0.0f;
            out[r] = (cols == 0 || first != first || i == NONE) ? 0u : (unsigned int)i;
        }
        __syncthreads();
    }
}

/* Same operation order as the reference: m = b1*m + (1-b1)*g; v = b2*v + ((1-b2)*g)*g;
   p -= (lr_t*m) / (sqrt(v) + eps). */
__global__ void bio_adam_step(float* p, const float* g, float* m, float* v, u64 n,
                              float lr_t, float beta1, float beta2, float eps) {
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x) {
        float gi = g[i];
        float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] - lr_t * mi / (sqrtf(vi) + eps);
    }
}

/* m = mu*m + g; p -= lr*m. */
__global__ void bio_momentum_step(float* p, const float* g, float* m, u64 n, float lr, float momentum) {
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x) {
        float mi = momentum * m[i] + g[i];
        m[i] = mi;
        p[i] = p[i] - lr * mi;
    }
}

/* out (m×n, row-major) = op(a)·b summed over the non-zero entries of op(a) only (NaN counts as
   non-zero), k ascending: the order of bio-cpu's sparse product. op(a)[i][kk] = a[i*a_rs + kk*a_ks]
   (a_rs = K, a_ks = 1 for a; a_rs = 1, a_ks = M for aᵀ). blockDim.x <= SPARSE_BLOCK; each thread owns
   SPARSE_COLS_PER_THREAD columns of a tile (blockIdx.y) of one output row (blockIdx.x), both
   grid-strided. A chunk of the row of op(a) sits in shared memory; the zero test is uniform over the
   block, so the threads skip a zero together. */
__global__ void bio_sparse_matmul(float* out, const float* a, const float* b, u64 m, u64 k, u64 n,
                                  u64 a_rs, u64 a_ks) {
    __shared__ float av[SPARSE_BLOCK];
    const unsigned int t = threadIdx.x, bd = blockDim.x;
    const u64 tile_width = (u64)bd * SPARSE_COLS_PER_THREAD;
    for (u64 i = blockIdx.x; i < m; i += gridDim.x) {
        for (u64 tile = blockIdx.y; tile * tile_width < n; tile += gridDim.y) {
            float acc[SPARSE_COLS_PER_THREAD];
            for (int q = 0; q < SPARSE_COLS_PER_THREAD; ++q) acc[q] = 0.0f;
            const u64 c0 = tile * tile_width + t;
            for (u64 base = 0; base < k; base += bd) {
                const u64 chunk = k - base < (u64)bd ? k - base : (u64)bd;
                __syncthreads();
                if (t < chunk) av[t] = a[i * a_rs + (base + t) * a_ks];
                __syncthreads();
                for (u64 q = 0; q < chunk; ++q) {
                    const float v = av[q];
                    if (v != 0.0f) {
                        const float* brow = b + (base + q) * n;
                        for (int p = 0; p < SPARSE_COLS_PER_THREAD; ++p) {
                            const u64 c = c0 + (u64)p * bd;
                            if (c < n) acc[p] += v * brow[c];
                        }
                    }
                }
            }
            for (int p = 0; p < SPARSE_COLS_PER_THREAD; ++p) {
                const u64 c = c0 + (u64)p * bd;
                if (c < n) out[i * n + c] = acc[p];
            }
        }
    }
}

/* Row norm of the weights in shared memory, as the composed definition forms it: Σ|w| or
   √Σ(w·w), summed in double per thread and combined by block_combine (the same order as
   bio_reduce_rows with the same block size), then max(norm, 1e-12) unless raw. */
static __device__ float fused_row_norm(double* sh, const float* row, u64 cols, bool l2) {
    double acc = 0.0;
    for (u64 c = threadIdx.x; c < cols; c += blockDim.x) {
        const float x = row[c];
        acc += l2 ? (double)(x * x) : (double)fabsf(x);
    }
    block_combine(sh, acc, 0);
    const double total = sh[0];
    __syncthreads();
    return l2 ? sqrtf((float)total) : (float)total;
}

/* max(x, 1e-12) as the composed definition's guard (Clamp(NORM_GUARD, f32::MAX)). */
static __device__ __forceinline__ float norm_guard(float x) {
    return fminf(fmaxf(x, 1e-12f), __int_as_float(0x7f7fffff));
}

/* The bio rule's plasticity step fused per neuron (bio_core::PlasticityOps::plasticity_step): one
   block per row j of w and mask (rows×cols, cols <= FUSED_MAX_COLS), grid-strided; blockDim.x a
   power of two <= MAX_ROW_BLOCK. The pull Σ_b rel[b][j]·pat[b] is formed in shared memory over the
   non-zero rel[b][j] (b ascending, as bio_sparse_matmul), the row of w is kept in shared memory, and
   the Hebbian change, pruning and scaling run on it with the composed definition's operations in
   its order. Each thread touches only its own columns c = t + q·blockDim of the two shared rows.
   flags: 1 L2 norm, 2 signed, 4 additive, 8 prune, 16 scale (kernels.rs, mod plasticity). */
__global__ void bio_plasticity_step(float* w, float* mask, const float* rel, const float* pat, const float* wins,
                                    u64 rows, u64 cols, u64 batch, unsigned int flags,
                                    float step, float unit, float fraction, float total) {
    __shared__ float row_w[FUSED_MAX_COLS];
    __shared__ float row_p[FUSED_MAX_COLS];
    __shared__ float rv[MAX_ROW_BLOCK];
    __shared__ double sh[MAX_ROW_BLOCK];
    const unsigned int t = threadIdx.x, bd = blockDim.x;
    const bool l2 = (flags & 1u) != 0, is_signed = (flags & 2u) != 0, additive = (flags & 4u) != 0;
    const bool prune = (flags & 8u) != 0, scale = (flags & 16u) != 0;
    for (u64 j = blockIdx.x; j < rows; j += gridDim.x) {
        float* wj = w + j * cols;
        float* mj = mask + j * cols;
        for (u64 c = t; c < cols; c += bd) {
            row_w[c] = wj[c];
            row_p[c] = 0.0f;
        }
        for (u64 base = 0; base < batch; base += bd) {
            const u64 chunk = batch - base < (u64)bd ? batch - base : (u64)bd;
            __syncthreads();
            if (t < chunk) rv[t] = rel[(base + t) * rows + j];
            __syncthreads();
            for (u64 q = 0; q < chunk; ++q) {
                const float v = rv[q];
                if (v != 0.0f) {
                    const float* prow = pat + (base + q) * cols;
                    for (u64 c = t; c < cols; c += bd) row_p[c] += v * prow[c];
                }
            }
        }
        /* Hebbian change: d = s·pull + (−s)·((|w|/g)·wins), w ← w·exp(d) or (1·w + unit·d)·mask. */
        const float g = norm_guard(fused_row_norm(sh, row_w, cols, l2));
        const float wn = wins[j];
        for (u64 c = t; c < cols; c += bd) {
            const float x = row_w[c];
            const float magnitude = is_signed ? fabsf(x) : x;
            const float d = step * row_p[c] + (-step) * ((magnitude / g) * wn);
            row_w[c] = additive ? (1.0f * x + unit * d) * mj[c] : x * expf(d);
        }
        /* Pruning: keep |w| > fraction·(Σ|w| / max(Σmask, 1e-12)); mask ← mask·keep; w ← w·mask. */
        if (prune) {
            double present = 0.0, magnitude = 0.0;
            for (u64 c = t; c < cols; c += bd) {
                present += (double)mj[c];
                magnitude += (double)fabsf(row_w[c]);
            }
            block_combine(sh, present, 0);
            const float kept = norm_guard((float)sh[0]);
            __syncthreads();
            block_combine(sh, magnitude, 0);
            const float mean = (float)sh[0] / kept;
            __syncthreads();
            const float threshold = fraction * mean;
            for (u64 c = t; c < cols; c += bd) {
                const float x = row_w[c];
                const float m = mj[c] * (fabsf(x) > threshold ? 1.0f : 0.0f);
                mj[c] = m;
                row_w[c] = x * m;
            }
        }
        /* Scaling: w ← w · (total · (1 / max(norm, 1e-12))). */
        if (scale) {
            const float factor = total * (1.0f / norm_guard(fused_row_norm(sh, row_w, cols, l2)));
            for (u64 c = t; c < cols; c += bd) row_w[c] = row_w[c] * factor;
        }
        for (u64 c = t; c < cols; c += bd) wj[c] = row_w[c];
        __syncthreads();
    }
}

} /* extern "C" */
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_defines_every_kernel_the_rust_side_launches() {
        for (i, k) in Kernel::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i, "Kernel::ALL is out of discriminant order at {k:?}");
            let signature = format!("__global__ void {}(", k.name());
            assert!(SOURCE.contains(&signature), "kernel source lacks `{signature}`");
        }
        let defined = SOURCE.matches("__global__ void ").count();
        assert_eq!(defined, Kernel::ALL.len(), "the source defines kernels the Rust side never loads");
    }

    /// The launch code pushes as many arguments as [`Kernel::params`] lists, at every launch site,
    /// and launches every kernel (a text scan of the launch code: no GPU needed; on a GPU each launch
    /// also checks the types it pushes, `device::Launch`).
    #[test]
    fn every_launch_site_pushes_the_listed_number_of_arguments() {
        let code = [include_str!("ops.rs"), include_str!("device.rs")];
        let mut launched = Vec::new();
        for file in code {
            let mut rest = file;
            while let Some(at) = rest.find("launch_of(Kernel::") {
                let after = &rest[at + "launch_of(Kernel::".len()..];
                let name = &after[..after.find(')').expect("closing parenthesis")];
                let kernel = *Kernel::ALL.iter().find(|k| format!("{k:?}") == name).expect("a Kernel variant");
                let end = after.find(".launch(").unwrap_or_else(|| panic!("launch_of({name}) is never launched"));
                let pushed = after[..end].matches(".arg(").count();
                assert_eq!(pushed, kernel.params().len(), "the launch of {} pushes {pushed} arguments", kernel.name());
                launched.push(kernel);
                rest = &after[end..];
            }
        }
        for k in Kernel::ALL {
            assert!(launched.contains(&k), "{} is compiled but never launched", k.name());
        }
    }

    #[test]
    fn shared_sizes_agree_with_the_source() {
        assert!(SOURCE.contains(&format!("#define MAX_ROW_BLOCK {MAX_ROW_BLOCK}\n")));
        assert!(SOURCE.contains(&format!("#define COL_BLOCK_Y {COL_BLOCK_Y}\n")));
        assert!(SOURCE.contains(&format!("#define SPARSE_BLOCK {SPARSE_BLOCK}\n")));
        assert!(SOURCE.contains(&format!("#define SPARSE_COLS_PER_THREAD {SPARSE_COLS_PER_THREAD}\n")));
        assert!(SOURCE.contains(&format!("#define FUSED_MAX_COLS {FUSED_MAX_COLS}\n")));
        assert!(MAX_ROW_BLOCK.is_power_of_two() && COL_BLOCK_Y.is_power_of_two());
    }

    #[test]
    fn source_is_balanced_and_has_no_nul() {
        assert!(!SOURCE.contains('\0'), "NVRTC takes a C string");
        for (open, close) in [('{', '}'), ('(', ')'), ('[', ']')] {
            assert_eq!(SOURCE.matches(open).count(), SOURCE.matches(close).count(), "unbalanced {open}{close}");
        }
    }

    /// The host-side model of the radix-select key must order like `f32::total_cmp`.
    #[test]
    fn key_order_is_total_cmp_order() {
        fn key(x: f32) -> u32 {
            let u = x.to_bits();
            if u & 0x8000_0000 != 0 { !u } else { u | 0x8000_0000 }
        }
        fn unkey(k: u32) -> f32 {
            f32::from_bits(if k & 0x8000_0000 != 0 { k & 0x7fff_ffff } else { !k })
        }
        let values = [
            f32::NEG_INFINITY,
            -3.5,
            -f32::MIN_POSITIVE / 4.0,
            -0.0,
            0.0,
            f32::MIN_POSITIVE / 4.0,
            1.0,
            f32::MAX,
            f32::INFINITY,
            f32::NAN,
        ];
        for &x in &values {
            assert_eq!(unkey(key(x)).to_bits(), x.to_bits());
            for &y in &values {
                assert_eq!(key(x).cmp(&key(y)), x.total_cmp(&y), "{x} vs {y}");
            }
        }
    }
}
