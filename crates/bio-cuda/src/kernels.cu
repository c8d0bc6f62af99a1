/* The CUDA C source of bio-cuda's kernels: one NVRTC program, compiled at run time by
   src/compile.rs and read into the crate with include_str! (kernels.rs, SOURCE). The integer
   codes and block sizes below are mirrored in kernels.rs, whose tests check that they agree. */
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

/* One row's reduction as bio_reduce_rows forms it: each thread folds the columns t, t + blockDim,
   ... in double (comb: 0 sum, 2 max, 3 min; fmax / fmin skip NaN), then block_combine. Returns the
   result to every thread of the block; every thread must call it. */
static __device__ double row_combine(double* sh, const float* row, u64 cols, int comb) {
    double acc = comb == 2 ? -f64_inf() : (comb == 3 ? f64_inf() : 0.0);
    for (u64 j = threadIdx.x; j < cols; j += blockDim.x) {
        double x = (double)row[j];
        acc = comb == 2 ? fmax(acc, x) : (comb == 3 ? fmin(acc, x) : acc + x);
    }
    block_combine(sh, acc, comb);
    const double v = sh[0];
    __syncthreads();
    return v;
}

/* Exact k-th largest (1 <= k <= cols) of one row, returned to every thread of the block: radix
   select, 8 bits per pass from the top, on the total-order key. hist (256 entries), prefix_sh and
   rank_sh are the caller's shared memory. hist counts the candidates (keys matching the prefix
   chosen so far) per digit; thread 0 walks the digits from the top to find the one holding the
   k-th largest. Every thread must call it. */
static __device__ float row_kth_largest(const float* row, u64 cols, u64 k, unsigned int* hist,
                                        unsigned int* prefix_sh, u64* rank_sh) {
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
            *prefix_sh = prefix | ((unsigned int)digit << shift);
            *rank_sh = left;
        }
        __syncthreads();
        prefix = *prefix_sh;
        rank = *rank_sh;
        mask |= 0xffu << shift;
        __syncthreads();
    }
    return key_float(prefix);
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
        double v = row_combine(sh, a + r * cols, cols, comb);
        if (threadIdx.x == 0) {
            if (op == 1) v /= (double)(cols > 0 ? cols : 1);
            out[r] = (float)v;
        }
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

/* Exact k-th largest (k from 1) of each row: row_kth_largest, one block per row (grid-strided). */
__global__ void bio_kth_largest_rows(float* out, const float* a, u64 rows, u64 cols, u64 k) {
    __shared__ unsigned int hist[256];
    __shared__ unsigned int prefix_sh;
    __shared__ u64 rank_sh;
    for (u64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const float v = row_kth_largest(a + r * cols, cols, k, hist, &prefix_sh, &rank_sh);
        if (threadIdx.x == 0) out[r] = v;
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

/* ---- Patch extraction and pooling (bio_core::backend::conv): a batch of NHWC maps, the window's
   sizes h, w, c (input), k (side), s (stride), p (padding) as passed to Window::check first by the
   Rust side. One thread per output entry, grid-strided; each thread gathers what it needs, so no
   kernel writes an entry twice (no atomics: the sums are formed in the host definitions' order). */

/* Output size along one axis of `size` input positions: (size + 2p - k) / s + 1. */
static __device__ __forceinline__ u64 out_size(u64 size, u64 k, u64 s, u64 p) { return (size + 2 * p - k) / s + 1; }

/* The input positions *lo up to *hi (exclusive) of window o along one axis (o·s − p .. o·s − p + k
   clipped to the map), as max_pool_image's `span`. */
static __device__ __forceinline__ void window_span(u64 o, u64 size, u64 k, u64 s, u64 p, u64* lo, u64* hi) {
    const u64 first = o * s;
    const u64 end = first + k > p ? first + k - p : 0;
    *lo = first > p ? first - p : 0;
    *hi = end < size ? end : size;
}

/* The windows *lo up to *hi (exclusive) along one axis that hold input position q
   (o·s ≤ q + p < o·s + k), of `outs` windows in all; none (*lo >= *hi) when a stride above k skips q. */
static __device__ __forceinline__ void covering(u64 q, u64 outs, u64 k, u64 s, u64 p, u64* lo, u64* hi) {
    const u64 padded = q + p;
    const u64 last = padded / s + 1;
    *lo = padded + 1 > k ? (padded + 1 - k + s - 1) / s : 0;
    *hi = last < outs ? last : outs;
}

/* unfold_image on every image: out (batch·positions × k·k·c) entry (row, (i·k + j)·c + ch) is the
   input at (oy·s + i − p, ox·s + j − p), channel ch, or 0 in the padding. */
__global__ void bio_unfold(float* out, const float* x, u64 batch, u64 h, u64 w, u64 c, u64 k, u64 s, u64 p) {
    const u64 ow = out_size(w, k, s, p), positions = out_size(h, k, s, p) * ow, len = k * k * c;
    const u64 n = batch * positions * len;
    for (u64 idx = (u64)blockIdx.x * blockDim.x + threadIdx.x; idx < n; idx += (u64)gridDim.x * blockDim.x) {
        const u64 row = idx / len, e = idx - row * len;
        const u64 img = row / positions, pos = row - img * positions;
        const u64 oy = pos / ow, ox = pos - oy * ow;
        const u64 ij = e / c, ch = e - ij * c;
        const u64 i = ij / k, j = ij - i * k;
        const u64 y = oy * s + i, xx = ox * s + j; /* padded coordinates */
        const bool inside = y >= p && xx >= p && y - p < h && xx - p < w;
        out[idx] = inside ? x[((img * h + (y - p)) * w + (xx - p)) * c + ch] : 0.0f;
    }
}

/* fold_image (col2im) as a gather: out (batch × h·w·c) entry (y, x, ch) sums, from 0, the patch
   entries copied from it, windows in ascending (oy, ox) order: the order in which fold_image adds
   them, so the sums round the same. */
__global__ void bio_fold(float* out, const float* cols, u64 batch, u64 h, u64 w, u64 c, u64 k, u64 s, u64 p) {
    const u64 oh = out_size(h, k, s, p), ow = out_size(w, k, s, p), len = k * k * c;
    const u64 n = batch * h * w * c;
    for (u64 idx = (u64)blockIdx.x * blockDim.x + threadIdx.x; idx < n; idx += (u64)gridDim.x * blockDim.x) {
        const u64 pix = idx / c, ch = idx - pix * c;
        const u64 img = pix / (h * w), yx = pix - img * (h * w);
        const u64 y = yx / w, xx = yx - y * w;
        u64 oy0, oy1, ox0, ox1;
        covering(y, oh, k, s, p, &oy0, &oy1);
        covering(xx, ow, k, s, p, &ox0, &ox1);
        const float* patches = cols + img * oh * ow * len + ch;
        float acc = 0.0f;
        for (u64 oy = oy0; oy < oy1; ++oy) {
            const u64 i = y + p - oy * s;
            for (u64 ox = ox0; ox < ox1; ++ox) {
                const u64 j = xx + p - ox * s;
                acc += patches[(oy * ow + ox) * len + (i * k + j) * c];
            }
        }
        out[idx] = acc;
    }
}

/* max_pool_image on every image: out (batch·positions × c) entry (oy, ox, ch) starts at the
   window's first input position and takes a later value only when strictly greater (the first
   maximum; NaN never wins unless it starts the window). Padding is ignored. */
__global__ void bio_max_pool(float* out, const float* x, u64 batch, u64 h, u64 w, u64 c, u64 k, u64 s, u64 p) {
    const u64 ow = out_size(w, k, s, p), positions = out_size(h, k, s, p) * ow;
    const u64 n = batch * positions * c;
    for (u64 idx = (u64)blockIdx.x * blockDim.x + threadIdx.x; idx < n; idx += (u64)gridDim.x * blockDim.x) {
        const u64 row = idx / c, ch = idx - row * c;
        const u64 img = row / positions, pos = row - img * positions;
        const u64 oy = pos / ow, ox = pos - oy * ow;
        u64 y0, y1, x0, x1;
        window_span(oy, h, k, s, p, &y0, &y1);
        window_span(ox, w, k, s, p, &x0, &x1);
        const float* im = x + img * h * w * c + ch;
        float best = im[(y0 * w + x0) * c];
        for (u64 y = y0; y < y1; ++y) {
            for (u64 xx = x0; xx < x1; ++xx) {
                const float v = im[(y * w + xx) * c];
                best = v > best ? v : best;
            }
        }
        out[idx] = best;
    }
}

/* max_pool_backward_image as a gather: out (batch·h·w × c) entry (y, x, ch) sums, from 0, the
   gradients of the windows whose argmax (pool_argmax: the first maximum in window order, NaN never
   wins unless first) it is, windows in ascending (oy, ox) order as the host adds them. */
__global__ void bio_max_pool_backward(float* out, const float* x, const float* grad, u64 batch, u64 h, u64 w, u64 c,
                                      u64 k, u64 s, u64 p) {
    const u64 oh = out_size(h, k, s, p), ow = out_size(w, k, s, p);
    const u64 n = batch * h * w * c;
    for (u64 idx = (u64)blockIdx.x * blockDim.x + threadIdx.x; idx < n; idx += (u64)gridDim.x * blockDim.x) {
        const u64 pix = idx / c, ch = idx - pix * c;
        const u64 img = pix / (h * w), yx = pix - img * (h * w);
        const u64 y = yx / w, xx = yx - y * w;
        u64 oy0, oy1, ox0, ox1;
        covering(y, oh, k, s, p, &oy0, &oy1);
        covering(xx, ow, k, s, p, &ox0, &ox1);
        const float* im = x + img * h * w * c + ch;
        const float* g = grad + img * oh * ow * c + ch;
        float acc = 0.0f;
        for (u64 oy = oy0; oy < oy1; ++oy) {
            u64 y0, y1;
            window_span(oy, h, k, s, p, &y0, &y1);
            for (u64 ox = ox0; ox < ox1; ++ox) {
                u64 x0, x1;
                window_span(ox, w, k, s, p, &x0, &x1);
                u64 best = y0 * w + x0;
                float bv = im[best * c];
                for (u64 wy = y0; wy < y1; ++wy) {
                    for (u64 wx = x0; wx < x1; ++wx) {
                        const float v = im[(wy * w + wx) * c];
                        if (v > bv) { bv = v; best = wy * w + wx; }
                    }
                }
                if (best == yx) acc += g[(oy * ow + ox) * c];
            }
        }
        out[idx] = acc;
    }
}

/* ---- The per-position steps of a conv layer (ConvOps::kwta_rows, relative_to_row_max,
   unit_l2_rows, fraction_positive) fused: one block per row (grid-strided, blockDim.x a power of
   two <= MAX_ROW_BLOCK), each entry computed with the composed chain's operations in its order and
   its reductions' block size (the same bits as the chain of the kernels above). */

/* kwta_rows: theta[r] = the k-th largest of row r (row_kth_largest), act = relu(u − theta) as
   bio_zip (Sub) then bio_map (Relu). 1 <= k <= cols. */
__global__ void bio_kwta_rows(float* theta, float* act, const float* u, u64 rows, u64 cols, u64 k) {
    __shared__ unsigned int hist[256];
    __shared__ unsigned int prefix_sh;
    __shared__ u64 rank_sh;
    for (u64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* row = u + r * cols;
        const float t = row_kth_largest(row, cols, k, hist, &prefix_sh, &rank_sh);
        if (threadIdx.x == 0) theta[r] = t;
        for (u64 j = threadIdx.x; j < cols; j += blockDim.x) act[r * cols + j] = fmaxf(row[j] - t, 0.0f);
    }
}

/* relative_to_row_max: out = y / max(peak, 1e-12), the peak as bio_reduce_rows (Max) forms it. */
__global__ void bio_relative_to_row_max(float* out, const float* y, u64 rows, u64 cols) {
    __shared__ double sh[MAX_ROW_BLOCK];
    for (u64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* row = y + r * cols;
        const float peak = norm_guard((float)row_combine(sh, row, cols, 2));
        for (u64 j = threadIdx.x; j < cols; j += blockDim.x) out[r * cols + j] = row[j] / peak;
    }
}

/* unit_l2_rows: out = p / max(√Σ p·p, 1e-12), the sum as bio_reduce_rows (Sum) of bio_map (Square)
   forms it (fused_row_norm). */
__global__ void bio_unit_l2_rows(float* out, const float* p, u64 rows, u64 cols) {
    __shared__ double sh[MAX_ROW_BLOCK];
    for (u64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* row = p + r * cols;
        const float norm = norm_guard(fused_row_norm(sh, row, cols, true));
        for (u64 j = threadIdx.x; j < cols; j += blockDim.x) out[r * cols + j] = row[j] / norm;
    }
}

/* fraction_positive's count: *count (zeroed by the caller) += the entries of a[0..n - 1] above zero
   (NaN and both zeros are not). Grid-strided, counted per block in double (exact below 2^53),
   one atomic per block: an integer sum, the same in any order. blockDim.x a power of two
   <= MAX_ROW_BLOCK. */
__global__ void bio_count_positive(u64* count, const float* a, u64 n) {
    __shared__ double sh[MAX_ROW_BLOCK];
    double mine = 0.0;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x) {
        mine += a[i] > 0.0f ? 1.0 : 0.0;
    }
    block_combine(sh, mine, 0);
    if (threadIdx.x == 0 && sh[0] > 0.0) atomicAdd(count, (u64)sh[0]);
}

} /* extern "C" */
