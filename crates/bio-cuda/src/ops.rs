//! The operation families of `bio_core::Backend` on [`CudaBackend`]: cuBLAS SGEMM for the matrix
//! products (`sparse_matmul` too: cuBLAS was faster where measured) and the NVRTC kernels of
//! [`crate::kernels`] for everything else, including the fused per-neuron `plasticity_step`; the
//! sparse-product kernel stays available as [`CudaBackend::sparse_matmul_kernel`]; `ConvOps` by its
//! own kernels too (none of its defaults' host round trips).
#![allow(unsafe_code)]

use bio_core::backend::{
    ConvOps, HebbianTerms, StackedGemm, Window, broadcast_strides, composed_plasticity_step,
    composed_plasticity_step_stacked, composed_reduce_stacked,
};
use bio_core::{
    AdamStep, Binary, Dim, ElementwiseOps, LinalgOps, OptimOps, PlasticityOps, PlasticityStep, Reduce, ReduceOps,
    ScalingNorm, SelectOps, TensorStore, Unary, WeightChange,
};
use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{Gemm, GemmConfig, StridedBatchedConfig};

use crate::device::{CudaBackend, Tensor, check, u64_of};
use crate::kernels::{FUSED_MAX_COLS, Kernel, binary, plasticity, reduce, unary};

/// A dimension as cuBLAS's `int`.
fn blas_dim(n: usize, what: &str) -> i32 {
    i32::try_from(n).unwrap_or_else(|_| panic!("bio-cuda: matmul {what} = {n} exceeds cuBLAS's 32-bit int"))
}

/// The column-major SGEMM that computes the row-major product `op(A)·op(B)` (`A` is
/// `a_shape`, `B` is `b_shape`, both row-major): `Cᵀ = op(B)ᵀ·op(A)ᵀ`. A row-major buffer read
/// column-major is its transpose, so B's buffer is cuBLAS's first operand with B's transpose flag,
/// A's the second with A's, each with its row length as leading dimension, and `ldc = n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RowMajorGemm {
    /// Transpose cuBLAS's first operand (B's buffer).
    pub(crate) trans_first: bool,
    /// Transpose cuBLAS's second operand (A's buffer).
    pub(crate) trans_second: bool,
    /// cuBLAS `m`: columns of the row-major result.
    pub(crate) m: usize,
    /// cuBLAS `n`: rows of the row-major result.
    pub(crate) n: usize,
    /// Inner dimension.
    pub(crate) k: usize,
    /// Leading dimension of the first operand (B's row length).
    pub(crate) ld_first: usize,
    /// Leading dimension of the second operand (A's row length).
    pub(crate) ld_second: usize,
    /// Leading dimension of the result (its row length).
    pub(crate) ldc: usize,
}

impl RowMajorGemm {
    /// The call for `op(A)·op(B)`; panics if the inner dimensions differ.
    pub(crate) fn new(a_shape: (usize, usize), trans_a: bool, b_shape: (usize, usize), trans_b: bool) -> Self {
        let (rows, ka) = if trans_a { (a_shape.1, a_shape.0) } else { a_shape };
        let (kb, cols) = if trans_b { (b_shape.1, b_shape.0) } else { b_shape };
        assert_eq!(ka, kb, "matmul inner dimensions differ: {ka} vs {kb}");
        Self {
            trans_first: trans_b,
            trans_second: trans_a,
            m: cols,
            n: rows,
            k: ka,
            ld_first: b_shape.1,
            ld_second: a_shape.1,
            ldc: cols,
        }
    }

    /// cuBLAS's parameters for this call (α = 1, β = 0).
    pub(crate) fn config(&self) -> GemmConfig<f32> {
        let op = |t: bool| if t { cublasOperation_t::CUBLAS_OP_T } else { cublasOperation_t::CUBLAS_OP_N };
        GemmConfig {
            transa: op(self.trans_first),
            transb: op(self.trans_second),
            m: blas_dim(self.m, "m"),
            n: blas_dim(self.n, "n"),
            k: blas_dim(self.k, "k"),
            alpha: 1.0f32,
            lda: blas_dim(self.ld_first, "lda"),
            ldb: blas_dim(self.ld_second, "ldb"),
            beta: 0.0f32,
            ldc: blas_dim(self.ldc, "ldc"),
        }
    }
}

/// A strided batched SGEMM over the members of two stacks ([`LinalgOps::matmul_stacked`]): one
/// member's [`RowMajorGemm`] and the batch strides, in floats, of cuBLAS's first operand (B's
/// stack), its second (A's) and the result: one member of each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StackedCall {
    /// The call for one member.
    pub(crate) gemm: RowMajorGemm,
    /// Batch strides of the first operand, the second and the result.
    pub(crate) strides: [usize; 3],
}

impl StackedCall {
    /// The call for `members` products of the stacks `a` (`a_shape`) and `b` (`b_shape`); panics as
    /// [`StackedGemm::new`] does.
    pub(crate) fn new(
        members: usize,
        a_shape: (usize, usize),
        trans_a: bool,
        b_shape: (usize, usize),
        trans_b: bool,
    ) -> Self {
        let plan = StackedGemm::new(members, a_shape, trans_a, b_shape, trans_b);
        let gemm = RowMajorGemm::new((plan.a_rows, a_shape.1), trans_a, (plan.b_rows, b_shape.1), trans_b);
        Self { gemm, strides: [plan.b_rows * b_shape.1, plan.a_rows * a_shape.1, plan.rows * plan.cols] }
    }
}

impl LinalgOps for CudaBackend {
    /// cuBLAS SGEMM on the row-major buffers (`C = op(A)·op(B)` computed as the column-major
    /// `Cᵀ = op(B)ᵀ·op(A)ᵀ`), FP32 math (no TF32).
    fn matmul(&self, a: &Tensor, trans_a: bool, b: &Tensor, trans_b: bool) -> Tensor {
        let g = RowMajorGemm::new(a.shape(), trans_a, b.shape(), trans_b);
        let (rows, cols) = (g.n, g.m);
        if rows == 0 || cols == 0 {
            return self.uninit(rows, cols);
        }
        if g.k == 0 {
            return self.full(rows, cols, 0.0);
        }
        let mut c = self.uninit(rows, cols);
        check(self.inner.ctx.bind_to_thread(), "binding the CUDA context");
        // SAFETY: with these dimensions cuBLAS reads B's buffer as a k×m or m×k column-major matrix
        // with ld = B.cols, i.e. exactly B.rows·B.cols floats, A's likewise, and writes m·n floats of
        // C (ldc = m); every buffer holds at least that many (checked by the model test of
        // RowMajorGemm). β = 0, so C's uninitialized contents are not read. The handle is bound to
        // this backend's stream, which orders the call after A's and B's producers.
        check(unsafe { self.inner.blas.gemm(g.config(), &b.data, &a.data, &mut c.data) }, "cublasSgemm");
        c
    }

    /// One `cublasSgemmStridedBatched` call for every member: each member is [`matmul`]'s
    /// column-major call on its own slice of the stacks (batch strides: one member of B, of A and of
    /// the result). Each member's product equals `matmul`'s up to rounding (cuBLAS may choose
    /// another kernel for a batch); the conformance suite holds it to the reference.
    ///
    /// [`matmul`]: LinalgOps::matmul
    fn matmul_stacked(&self, members: usize, a: &Tensor, trans_a: bool, b: &Tensor, trans_b: bool) -> Tensor {
        let call = StackedCall::new(members, a.shape(), trans_a, b.shape(), trans_b);
        let (rows, cols) = (members * call.gemm.n, call.gemm.m);
        if rows == 0 || cols == 0 {
            return self.uninit(rows, cols);
        }
        if call.gemm.k == 0 {
            return self.full(rows, cols, 0.0);
        }
        let stride = |n: usize| i64::try_from(n).expect("a member's size fits cuBLAS's 64-bit stride");
        let cfg = StridedBatchedConfig {
            gemm: call.gemm.config(),
            batch_size: blas_dim(members, "batch"),
            stride_a: stride(call.strides[0]),
            stride_b: stride(call.strides[1]),
            stride_c: stride(call.strides[2]),
        };
        let mut c = self.uninit(rows, cols);
        check(self.inner.ctx.bind_to_thread(), "binding the CUDA context");
        // SAFETY: member p's call is `matmul`'s for one member (see there) on the buffers offset by
        // p strides; the strides are one member's size, so the last member ends exactly at the end of
        // each stack (members·size floats, which each buffer holds: checked by the model test of
        // the strided call). β = 0; the handle is bound to this backend's stream.
        check(
            unsafe { self.inner.blas.gemm_strided_batched(cfg, &b.data, &a.data, &mut c.data) },
            "cublasSgemmStridedBatched",
        );
        c
    }

    /// cuBLAS, as [`LinalgOps::matmul`]: on the H200 the hand-written kernel
    /// ([`CudaBackend::sparse_matmul_kernel`]) was slower than cuBLAS SGEMM for both of this
    /// operation's uses at 5 % density (0.86× for the Hebbian pull, 0.45× for the attack's backward
    /// product; docs/PERFORMANCE.md, 2026-12-01).
    fn sparse_matmul(&self, a: &Tensor, trans_a: bool, b: &Tensor) -> Tensor {
        self.matmul(a, trans_a, b, false)
    }
}

impl CudaBackend {
    /// `bio_sparse_matmul`: each output row sums only the rows of `b` facing non-zeros of its row of
    /// `op(a)`, in ascending order (bio-cpu's order), whatever the density (a dense `a` costs a
    /// plain, slower product but the same result up to rounding). Not what
    /// [`LinalgOps::sparse_matmul`] uses (cuBLAS was faster where measured); kept, with its
    /// conformance check, so the two can be timed against each other on a new device.
    pub fn sparse_matmul_kernel(&self, a: &Tensor, trans_a: bool, b: &Tensor) -> Tensor {
        let ((m, ka), (kb, n)) = (if trans_a { (a.cols, a.rows) } else { a.shape() }, b.shape());
        assert_eq!(ka, kb, "matmul inner dimensions differ: {ka} vs {kb}");
        if m == 0 || n == 0 {
            return self.uninit(m, n);
        }
        if ka == 0 {
            return self.full(m, n, 0.0);
        }
        let mut out = self.uninit(m, n);
        let (a_rs, a_ks) = if trans_a { (1, m) } else { (ka, 1) };
        let (m64, k64, n64, rs64, ks64) = (u64_of(m), u64_of(ka), u64_of(n), u64_of(a_rs), u64_of(a_ks));
        let mut launch = self.launch_of(Kernel::SparseMatmul);
        launch.arg(&mut out.data).arg(&a.data).arg(&b.data).arg(&m64).arg(&k64).arg(&n64).arg(&rs64).arg(&ks64);
        // SAFETY: bio_sparse_matmul(out, a, b, m, k, n, a_rs, a_ks) reads a[i·a_rs + kk·a_ks] for
        // i < m, kk < k (inside a's m·k entries for both layouts), b[0..k·n) and writes out[0..m·n);
        // sparse_cfg gives a block of SPARSE_BLOCK threads, the size of its shared array.
        check(unsafe { launch.launch(Self::sparse_cfg(m, n)) }, "bio_sparse_matmul");
        out
    }
}

/// `(code, p0, p1)` of a unary op for `bio_map`.
fn unary_code(op: Unary) -> (i32, f32, f32) {
    match op {
        Unary::Relu => (unary::RELU, 0.0, 0.0),
        Unary::Step => (unary::STEP, 0.0, 0.0),
        Unary::Exp => (unary::EXP, 0.0, 0.0),
        Unary::Ln => (unary::LN, 0.0, 0.0),
        Unary::Sqrt => (unary::SQRT, 0.0, 0.0),
        Unary::Abs => (unary::ABS, 0.0, 0.0),
        Unary::Sign => (unary::SIGN, 0.0, 0.0),
        Unary::Square => (unary::SQUARE, 0.0, 0.0),
        Unary::Recip => (unary::RECIP, 0.0, 0.0),
        Unary::Scale(a) => (unary::SCALE, a, 0.0),
        Unary::Offset(a) => (unary::OFFSET, a, 0.0),
        Unary::Powf(p) => (unary::POWF, p, 0.0),
        Unary::Clamp(lo, hi) => (unary::CLAMP, lo, hi),
    }
}

fn binary_code(op: Binary) -> i32 {
    match op {
        Binary::Add => binary::ADD,
        Binary::Sub => binary::SUB,
        Binary::Mul => binary::MUL,
        Binary::Div => binary::DIV,
        Binary::Max => binary::MAX,
        Binary::Min => binary::MIN,
        Binary::Greater => binary::GREATER,
    }
}

impl ElementwiseOps for CudaBackend {
    fn map(&self, a: &Tensor, op: Unary) -> Tensor {
        let mut out = self.uninit(a.rows, a.cols);
        let n = a.len();
        if n > 0 {
            let (code, p0, p1) = unary_code(op);
            let n64 = u64_of(n);
            let mut launch = self.launch_of(Kernel::Map);
            launch.arg(&mut out.data).arg(&a.data).arg(&n64).arg(&code).arg(&p0).arg(&p1);
            // SAFETY: bio_map(float* out, const float* a, u64 n, int op, float p0, float p1) reads
            // a[0..n) and writes out[0..n); both hold at least n floats.
            check(unsafe { launch.launch(Self::elementwise_cfg(n)) }, "bio_map");
        }
        out
    }

    fn zip(&self, a: &Tensor, b: &Tensor, op: Binary) -> Tensor {
        let (rs, cs) = broadcast_strides(a.shape(), b.shape());
        let mut out = self.uninit(a.rows, a.cols);
        let n = a.len();
        if n > 0 {
            let (rows, cols, rs, cs, code) = (u64_of(a.rows), u64_of(a.cols), u64_of(rs), u64_of(cs), binary_code(op));
            let mut launch = self.launch_of(Kernel::Zip);
            launch.arg(&mut out.data).arg(&a.data).arg(&b.data).arg(&rows).arg(&cols).arg(&rs).arg(&cs).arg(&code);
            // SAFETY: bio_zip(out, a, b, rows, cols, rs, cs, op) reads a[0..n), writes out[0..n) and
            // reads b[i·rs + j·cs] for i < rows, j < cols; broadcast_strides accepted b's shape, so
            // that index is below b's length.
            check(unsafe { launch.launch(Self::elementwise_cfg(n)) }, "bio_zip");
        }
        out
    }

    fn zip_assign(&self, a: &mut Tensor, b: &Tensor, op: Binary) {
        let (rs, cs) = broadcast_strides(a.shape(), b.shape());
        let n = a.len();
        if n > 0 {
            let (rows, cols, rs, cs, code) = (u64_of(a.rows), u64_of(a.cols), u64_of(rs), u64_of(cs), binary_code(op));
            let mut launch = self.launch_of(Kernel::ZipAssign);
            launch.arg(&mut a.data).arg(&b.data).arg(&rows).arg(&cols).arg(&rs).arg(&cs).arg(&code);
            // SAFETY: bio_zip_assign(a, b, rows, cols, rs, cs, op) updates a[0..n) in place, each
            // entry read and written by the same thread; b is read as in `zip` (in bounds). `a` and
            // `b` are distinct buffers (one is borrowed mutably).
            check(unsafe { launch.launch(Self::elementwise_cfg(n)) }, "bio_zip_assign");
        }
    }

    fn lincomb(&self, alpha: f32, a: &Tensor, beta: f32, b: &Tensor) -> Tensor {
        assert_eq!(a.shape(), b.shape(), "lincomb needs equal shapes");
        let mut out = self.uninit(a.rows, a.cols);
        let n = a.len();
        if n > 0 {
            let n64 = u64_of(n);
            let mut launch = self.launch_of(Kernel::Lincomb);
            launch.arg(&mut out.data).arg(&a.data).arg(&b.data).arg(&n64).arg(&alpha).arg(&beta);
            // SAFETY: bio_lincomb(out, a, b, u64 n, float alpha, float beta) touches [0..n) of three
            // buffers of at least n floats each.
            check(unsafe { launch.launch(Self::elementwise_cfg(n)) }, "bio_lincomb");
        }
        out
    }
}

fn reduce_code(op: Reduce) -> i32 {
    match op {
        Reduce::Sum => reduce::SUM,
        Reduce::Mean => reduce::MEAN,
        Reduce::Max => reduce::MAX,
        Reduce::Min => reduce::MIN,
    }
}

impl CudaBackend {
    /// `bio_reduce_rows` over `a` seen as `rows×cols` (for `Dim::All`: `1×len`), into `out`.
    fn reduce_rows_into(&self, out: &mut Tensor, a: &Tensor, rows: usize, cols: usize, op: Reduce) {
        debug_assert_eq!(rows * cols, a.len());
        let (rows64, cols64, code) = (u64_of(rows), u64_of(cols), reduce_code(op));
        let mut launch = self.launch_of(Kernel::ReduceRows);
        launch.arg(&mut out.data).arg(&a.data).arg(&rows64).arg(&cols64).arg(&code);
        // SAFETY: bio_reduce_rows(out, a, rows, cols, op) reads a[0..rows·cols) (= a's entries) and
        // writes out[0..rows); `out` holds at least `rows` floats (and ≥ 1). The block size from
        // rows_cfg is a power of two ≤ MAX_ROW_BLOCK, as the kernel's shared array requires.
        check(unsafe { launch.launch(Self::rows_cfg(rows, cols)) }, "bio_reduce_rows");
    }
}

impl ReduceOps for CudaBackend {
    /// On the device: [`composed_reduce_stacked`] (a reshape and a row reduction for `All`, a
    /// stacked product with ones for `PerCol` sums and means), no host round trip.
    fn reduce_stacked(&self, members: usize, a: &Tensor, dim: Dim, op: Reduce) -> Tensor {
        composed_reduce_stacked(self, members, a, dim, op)
    }

    fn reduce(&self, a: &Tensor, dim: Dim, op: Reduce) -> Tensor {
        match dim {
            Dim::PerRow => {
                let mut out = self.uninit(a.rows, 1);
                if a.rows > 0 {
                    self.reduce_rows_into(&mut out, a, a.rows, a.cols, op);
                }
                out
            }
            Dim::All => {
                let mut out = self.uninit(1, 1);
                self.reduce_rows_into(&mut out, a, 1, a.len(), op);
                out
            }
            Dim::PerCol => {
                let mut out = self.uninit(1, a.cols);
                if a.cols > 0 {
                    let (rows, cols, code) = (u64_of(a.rows), u64_of(a.cols), reduce_code(op));
                    let mut launch = self.launch_of(Kernel::ReduceCols);
                    launch.arg(&mut out.data).arg(&a.data).arg(&rows).arg(&cols).arg(&code);
                    // SAFETY: bio_reduce_cols(out, a, rows, cols, op) reads a[0..rows·cols) and
                    // writes out[0..cols); cols_cfg gives the (32, COL_BLOCK_Y) block it expects.
                    check(unsafe { launch.launch(Self::cols_cfg(a.cols)) }, "bio_reduce_cols");
                }
                out
            }
        }
    }
}

impl SelectOps for CudaBackend {
    /// Exact: a radix select on the float's order-preserving bit key, so the result is always one of
    /// the row's own values. Ordering is `f32::total_cmp`'s (like the reference backend), NaN
    /// included.
    fn row_kth_largest(&self, a: &Tensor, k: usize) -> Tensor {
        assert!(k >= 1 && k <= a.cols, "k = {k} outside 1..={}", a.cols);
        let mut out = self.uninit(a.rows, 1);
        if a.rows > 0 {
            let (rows, cols, k64) = (u64_of(a.rows), u64_of(a.cols), u64_of(k));
            let mut launch = self.launch_of(Kernel::KthLargestRows);
            launch.arg(&mut out.data).arg(&a.data).arg(&rows).arg(&cols).arg(&k64);
            // SAFETY: bio_kth_largest_rows(out, a, rows, cols, k) reads a[0..rows·cols) and writes
            // out[0..rows); 1 ≤ k ≤ cols was checked, which the digit walk relies on. Block size
            // from rows_cfg (power of two ≤ 256; the histogram loop covers all 256 bins).
            check(unsafe { launch.launch(Self::rows_cfg(a.rows, a.cols)) }, "bio_kth_largest_rows");
        }
        out
    }

    fn softmax_rows(&self, a: &Tensor) -> Tensor {
        let mut out = self.uninit(a.rows, a.cols);
        if a.rows > 0 && a.cols > 0 {
            let (rows, cols) = (u64_of(a.rows), u64_of(a.cols));
            let mut launch = self.launch_of(Kernel::SoftmaxRows);
            launch.arg(&mut out.data).arg(&a.data).arg(&rows).arg(&cols);
            // SAFETY: bio_softmax_rows(out, a, rows, cols) reads a[0..rows·cols) and writes
            // out[0..rows·cols); both hold that many floats. Block size from rows_cfg.
            check(unsafe { launch.launch(Self::rows_cfg(a.rows, a.cols)) }, "bio_softmax_rows");
        }
        out
    }

    /// The first index of the row's largest value. Matches the reference's scan with NaN too: a
    /// NaN in column 0 gives 0, other NaNs are skipped.
    fn argmax_rows(&self, a: &Tensor) -> Vec<usize> {
        if a.rows == 0 {
            return Vec::new();
        }
        assert!(u32::try_from(a.cols).is_ok(), "bio-cuda: argmax_rows returns u32 column indices; {} columns", a.cols);
        // SAFETY: device memory with unspecified contents; bio_argmax_rows writes all `rows` entries
        // before the download below reads them (same stream).
        let mut idx = check(unsafe { self.stream().alloc::<u32>(a.rows) }, "device allocation");
        let (rows, cols) = (u64_of(a.rows), u64_of(a.cols));
        let mut launch = self.launch_of(Kernel::ArgmaxRows);
        launch.arg(&mut idx).arg(&a.data).arg(&rows).arg(&cols);
        // SAFETY: bio_argmax_rows(unsigned int* out, const float* a, rows, cols) reads
        // a[0..rows·cols) and writes out[0..rows); `idx` holds `rows` u32. Block size from rows_cfg.
        check(unsafe { launch.launch(Self::rows_cfg(a.rows, a.cols)) }, "bio_argmax_rows");
        let host = check(self.stream().clone_dtoh(&idx), "download of argmax indices");
        check(self.stream().synchronize(), "stream synchronize");
        host.into_iter().map(|i| i as usize).collect()
    }
}

/// One fused kernel per step (`bio_plasticity_step`, one block per neuron), the same operations in
/// the same order as the composed definition; rows longer than 4096 entries (`FUSED_MAX_COLS`) take the
/// composed definition (with the sparse pull).
impl PlasticityOps for CudaBackend {
    /// On the device: [`composed_plasticity_step_stacked`] (every member's pull in one strided
    /// batched GEMM, then the composed step over all members' rows), no host round trip.
    fn plasticity_step_stacked(
        &self,
        members: usize,
        weights: &mut Tensor,
        mask: &mut Tensor,
        terms: &HebbianTerms<Tensor>,
        step: &PlasticityStep,
    ) {
        composed_plasticity_step_stacked(self, members, weights, mask, terms, step);
    }

    fn plasticity_step(
        &self,
        weights: &mut Tensor,
        mask: &mut Tensor,
        terms: &HebbianTerms<Tensor>,
        step: &PlasticityStep,
    ) {
        let (rows, cols) = weights.shape();
        let batch = terms.relative.rows;
        assert_eq!(mask.shape(), (rows, cols), "plasticity_step: mask shape differs from the weights'");
        assert_eq!(terms.relative.shape(), (batch, rows), "plasticity_step: relative must be batch×neurons");
        assert_eq!(terms.pattern.shape(), (batch, cols), "plasticity_step: pattern must be batch×inputs");
        assert_eq!(terms.wins.shape(), (rows, 1), "plasticity_step: wins must be one value per neuron");
        if cols > FUSED_MAX_COLS || rows == 0 || cols == 0 {
            let pull = self.sparse_matmul(&terms.relative, true, &terms.pattern);
            return composed_plasticity_step(self, weights, mask, &pull, &terms.wins, step);
        }
        let mut flags = 0u32;
        if step.norm == ScalingNorm::L2 {
            flags |= plasticity::L2;
        }
        if step.signed {
            flags |= plasticity::SIGNED;
        }
        let unit = match step.change {
            WeightChange::Multiplicative => 0.0,
            WeightChange::Additive { unit } => {
                flags |= plasticity::ADDITIVE;
                unit
            }
        };
        if step.prune_below.is_some() {
            flags |= plasticity::PRUNE;
        }
        if step.scale_to.is_some() {
            flags |= plasticity::SCALE;
        }
        let (fraction, total) = (step.prune_below.unwrap_or(0.0), step.scale_to.unwrap_or(0.0));
        let (rows64, cols64, batch64) = (u64_of(rows), u64_of(cols), u64_of(batch));
        let mut launch = self.launch_of(Kernel::PlasticityStep);
        launch
            .arg(&mut weights.data)
            .arg(&mut mask.data)
            .arg(&terms.relative.data)
            .arg(&terms.pattern.data)
            .arg(&terms.wins.data)
            .arg(&rows64)
            .arg(&cols64)
            .arg(&batch64)
            .arg(&flags)
            .arg(&step.step)
            .arg(&unit)
            .arg(&fraction)
            .arg(&total);
        // SAFETY: bio_plasticity_step(w, mask, rel, pat, wins, rows, cols, batch, flags, step, unit,
        // fraction, total) reads and writes w and mask [0..rows·cols) (distinct buffers, borrowed
        // mutably), reads rel [0..batch·rows), pat [0..batch·cols) and wins [0..rows), shapes checked
        // above; cols ≤ FUSED_MAX_COLS (its shared rows) and rows_cfg's block is a power of two
        // ≤ MAX_ROW_BLOCK (its other shared arrays).
        check(unsafe { launch.launch(Self::rows_cfg(rows, cols)) }, "bio_plasticity_step");
    }
}

impl OptimOps for CudaBackend {
    fn adam_step(&self, p: &mut Tensor, g: &Tensor, m: &mut Tensor, v: &mut Tensor, s: AdamStep) {
        assert!(
            p.shape() == g.shape() && p.shape() == m.shape() && p.shape() == v.shape(),
            "adam_step needs p, g, m and v of one shape"
        );
        let n = p.len();
        if n == 0 {
            return;
        }
        let n64 = u64_of(n);
        let mut launch = self.launch_of(Kernel::AdamStep);
        launch
            .arg(&mut p.data)
            .arg(&g.data)
            .arg(&mut m.data)
            .arg(&mut v.data)
            .arg(&n64)
            .arg(&s.lr_t)
            .arg(&s.beta1)
            .arg(&s.beta2)
            .arg(&s.eps);
        // SAFETY: bio_adam_step(p, g, m, v, u64 n, lr_t, beta1, beta2, eps) touches [0..n) of four
        // distinct buffers (three borrowed mutably) of n floats each.
        check(unsafe { launch.launch(Self::elementwise_cfg(n)) }, "bio_adam_step");
    }

    fn momentum_step(&self, p: &mut Tensor, g: &Tensor, m: &mut Tensor, lr: f32, momentum: f32) {
        assert!(p.shape() == g.shape() && p.shape() == m.shape(), "momentum_step needs p, g and m of one shape");
        let n = p.len();
        if n == 0 {
            return;
        }
        let n64 = u64_of(n);
        let mut launch = self.launch_of(Kernel::MomentumStep);
        launch.arg(&mut p.data).arg(&g.data).arg(&mut m.data).arg(&n64).arg(&lr).arg(&momentum);
        // SAFETY: bio_momentum_step(p, g, m, u64 n, lr, momentum) touches [0..n) of three distinct
        // buffers of n floats each.
        check(unsafe { launch.launch(Self::elementwise_cfg(n)) }, "bio_momentum_step");
    }
}

/// The window's sizes as the conv kernels take them (height, width, channels, kernel, stride,
/// padding), after [`Window::assert_fits`]: a window that does not fit is refused with the message
/// every backend gives before anything is launched (the kernels' index arithmetic assumes that it
/// fits).
#[track_caller]
fn window_args(g: &Window, op: &str) -> [u64; 6] {
    g.assert_fits(op);
    [g.height, g.width, g.channels, g.kernel, g.stride, g.padding].map(u64_of)
}

/// Every operation on the device, none through the host: the four window operations compute each
/// output entry in one thread as the host definitions of `bio_core::backend::conv` do (the same
/// bits: `fold` and `max_pool_backward` gather their sums in the order the definitions scatter
/// them); the per-position steps are fused kernels that equal the composed chains bit for bit;
/// `reshape` is a device-to-device copy.
impl ConvOps for CudaBackend {
    fn unfold(&self, x: &Tensor, g: &Window) -> Tensor {
        let [h, w, c, k, s, p] = window_args(g, "unfold");
        let batch = g.batch_of(x.len());
        let mut out = self.uninit(batch * g.positions(), g.patch_len());
        let n = out.len();
        if n > 0 {
            let batch64 = u64_of(batch);
            let mut launch = self.launch_of(Kernel::Unfold);
            launch.arg(&mut out.data).arg(&x.data).arg(&batch64).arg(&h).arg(&w).arg(&c).arg(&k).arg(&s).arg(&p);
            // SAFETY: bio_unfold(out, x, batch, h, w, c, k, s, p) writes out[0..batch·positions·k·k·c)
            // (out's entries) and reads x at ((img·h + y)·w + x')·c + ch with img < batch, y < h,
            // x' < w, ch < c, i.e. inside x's batch·h·w·c entries (batch_of checked the count); the
            // window was checked, so the output sizes do not underflow.
            check(unsafe { launch.launch(Self::elementwise_cfg(n)) }, "bio_unfold");
        }
        out
    }

    fn fold(&self, cols: &Tensor, g: &Window) -> Tensor {
        let [h, w, c, k, s, p] = window_args(g, "fold");
        let per = g.positions() * g.patch_len();
        assert!(cols.len().is_multiple_of(per), "fold: {} entries are not whole images of patches", cols.len());
        let batch = cols.len() / per;
        let mut out = self.uninit(batch, g.image_len());
        let n = out.len();
        if n > 0 {
            let batch64 = u64_of(batch);
            let mut launch = self.launch_of(Kernel::Fold);
            launch.arg(&mut out.data).arg(&cols.data).arg(&batch64).arg(&h).arg(&w).arg(&c).arg(&k).arg(&s).arg(&p);
            // SAFETY: bio_fold(out, cols, batch, h, w, c, k, s, p) writes out[0..batch·h·w·c) (out's
            // entries) and reads cols at (img·positions + o)·k·k·c + (i·k + j)·c + ch with i, j < k
            // (covering() keeps the window entry inside the window) and o < positions: inside cols'
            // batch·positions·k·k·c entries (checked above).
            check(unsafe { launch.launch(Self::elementwise_cfg(n)) }, "bio_fold");
        }
        out
    }

    fn max_pool(&self, x: &Tensor, g: &Window) -> Tensor {
        let [h, w, c, k, s, p] = window_args(g, "max_pool");
        let batch = g.batch_of(x.len());
        let mut out = self.uninit(batch * g.positions(), g.channels);
        let n = out.len();
        if n > 0 {
            let batch64 = u64_of(batch);
            let mut launch = self.launch_of(Kernel::MaxPool);
            launch.arg(&mut out.data).arg(&x.data).arg(&batch64).arg(&h).arg(&w).arg(&c).arg(&k).arg(&s).arg(&p);
            // SAFETY: bio_max_pool(out, x, batch, h, w, c, k, s, p) writes out[0..batch·positions·c)
            // and reads x only inside each window's span, clipped to the h×w map: inside x's
            // batch·h·w·c entries. A checked window holds at least one position, so the span is
            // never empty.
            check(unsafe { launch.launch(Self::elementwise_cfg(n)) }, "bio_max_pool");
        }
        out
    }

    fn max_pool_backward(&self, x: &Tensor, g: &Window, grad: &Tensor) -> Tensor {
        let [h, w, c, k, s, p] = window_args(g, "max_pool_backward");
        let batch = g.batch_of(x.len());
        assert_eq!(grad.len(), batch * g.positions() * g.channels, "max_pool_backward: gradient of the wrong size");
        let mut out = self.uninit(batch * g.height * g.width, g.channels);
        let n = out.len();
        if n > 0 {
            let batch64 = u64_of(batch);
            let mut launch = self.launch_of(Kernel::MaxPoolBackward);
            launch
                .arg(&mut out.data)
                .arg(&x.data)
                .arg(&grad.data)
                .arg(&batch64)
                .arg(&h)
                .arg(&w)
                .arg(&c)
                .arg(&k)
                .arg(&s)
                .arg(&p);
            // SAFETY: bio_max_pool_backward(out, x, grad, batch, h, w, c, k, s, p) writes
            // out[0..batch·h·w·c), reads x as bio_max_pool does and grad at
            // (img·positions + o)·c + ch with o < positions: inside grad's entries (checked above).
            check(unsafe { launch.launch(Self::elementwise_cfg(n)) }, "bio_max_pool_backward");
        }
        out
    }

    /// One block per row: the radix select of `row_kth_largest`, then `relu(u − θ)` as `zip(Sub)`
    /// and `map(Relu)` compute it.
    fn kwta_rows(&self, u: &Tensor, k: usize) -> (Tensor, Tensor) {
        assert!(k >= 1 && k <= u.cols, "k = {k} outside 1..={}", u.cols);
        let (mut theta, mut activity) = (self.uninit(u.rows, 1), self.uninit(u.rows, u.cols));
        if u.rows > 0 {
            let (rows, cols, k64) = (u64_of(u.rows), u64_of(u.cols), u64_of(k));
            let mut launch = self.launch_of(Kernel::KwtaRows);
            launch.arg(&mut theta.data).arg(&mut activity.data).arg(&u.data).arg(&rows).arg(&cols).arg(&k64);
            // SAFETY: bio_kwta_rows(theta, act, u, rows, cols, k) reads u[0..rows·cols), writes
            // theta[0..rows) and act[0..rows·cols) (two distinct fresh buffers of those sizes);
            // 1 ≤ k ≤ cols was checked. Block size from rows_cfg (a power of two ≤ 256), as for
            // bio_kth_largest_rows.
            check(unsafe { launch.launch(Self::rows_cfg(u.rows, u.cols)) }, "bio_kwta_rows");
        }
        (theta, activity)
    }

    /// One block per row: the peak as `reduce(PerRow, Max)` forms it with the same block size,
    /// guarded, then the division.
    fn relative_to_row_max(&self, y: &Tensor) -> Tensor {
        let mut out = self.uninit(y.rows, y.cols);
        if !y.is_empty() {
            let (rows, cols) = (u64_of(y.rows), u64_of(y.cols));
            let mut launch = self.launch_of(Kernel::RelativeToRowMax);
            launch.arg(&mut out.data).arg(&y.data).arg(&rows).arg(&cols);
            // SAFETY: bio_relative_to_row_max(out, y, rows, cols) reads y[0..rows·cols) and writes
            // out[0..rows·cols). Block size from rows_cfg, as reduce(PerRow) uses (the same bits).
            check(unsafe { launch.launch(Self::rows_cfg(y.rows, y.cols)) }, "bio_relative_to_row_max");
        }
        out
    }

    /// One block per row: `Σ p·p` as `reduce(PerRow, Sum)` of `map(Square)` forms it with the same
    /// block size, the square root and the guard, then the division.
    fn unit_l2_rows(&self, p: &Tensor) -> Tensor {
        let mut out = self.uninit(p.rows, p.cols);
        if !p.is_empty() {
            let (rows, cols) = (u64_of(p.rows), u64_of(p.cols));
            let mut launch = self.launch_of(Kernel::UnitL2Rows);
            launch.arg(&mut out.data).arg(&p.data).arg(&rows).arg(&cols);
            // SAFETY: bio_unit_l2_rows(out, p, rows, cols) reads p[0..rows·cols) and writes
            // out[0..rows·cols). Block size from rows_cfg, as reduce(PerRow) uses (the same bits).
            check(unsafe { launch.launch(Self::rows_cfg(p.rows, p.cols)) }, "bio_unit_l2_rows");
        }
        out
    }

    /// The positive entries counted on the device (an integer, exact in any order), then
    /// `count/n` in `f64` rounded once: the value `reduce(All, Mean)` of `map(Step)` computes.
    fn fraction_positive(&self, y: &Tensor) -> f32 {
        let n = y.len();
        if n == 0 {
            return 0.0;
        }
        let mut count = check(self.stream().alloc_zeros::<u64>(1), "device allocation");
        let n64 = u64_of(n);
        let mut launch = self.launch_of(Kernel::CountPositive);
        launch.arg(&mut count).arg(&y.data).arg(&n64);
        // SAFETY: bio_count_positive(count, a, n) reads a[0..n) (y's entries) and adds to count[0]
        // (one zeroed u64); elementwise_cfg's block (ELEMENTWISE_BLOCK, a power of two
        // ≤ MAX_ROW_BLOCK) fits its shared array.
        check(unsafe { launch.launch(Self::elementwise_cfg(n)) }, "bio_count_positive");
        let host = check(self.stream().clone_dtoh(&count), "download of the positive count");
        check(self.stream().synchronize(), "stream synchronize");
        (host[0] as f64 / n as f64) as f32
    }

    /// A device-to-device copy with the new shape.
    fn reshape(&self, t: &Tensor, rows: usize, cols: usize) -> Tensor {
        assert_eq!(rows * cols, t.len(), "reshape keeps the number of entries: {:?} to {rows}×{cols}", t.shape());
        Tensor { rows, cols, ..t.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bio_core::Matrix;

    /// A plain model of column-major SGEMM with β = 0, reading only the elements the BLAS contract
    /// allows (so an out-of-range index panics here instead of reading past a device buffer).
    fn sgemm_col_major(g: &RowMajorGemm, first: &[f32], second: &[f32]) -> Vec<f32> {
        let (m, n, k) = (g.m, g.n, g.k);
        // op(X)[r, c] of a column-major X with leading dimension ld.
        let at = |x: &[f32], ld: usize, trans: bool, r: usize, c: usize| {
            if trans { x[c + r * ld] } else { x[r + c * ld] }
        };
        // Leading dimensions must cover the stored rows, as cuBLAS requires.
        assert!(g.ld_first >= if g.trans_first { k } else { m }.max(1));
        assert!(g.ld_second >= if g.trans_second { n } else { k }.max(1));
        assert!(g.ldc >= m.max(1));
        let mut c = vec![f32::NAN; g.ldc * n];
        for col in 0..n {
            for row in 0..m {
                let mut acc = 0.0f64;
                for p in 0..k {
                    acc += at(first, g.ld_first, g.trans_first, row, p) as f64
                        * at(second, g.ld_second, g.trans_second, p, col) as f64;
                }
                c[row + col * g.ldc] = acc as f32;
            }
        }
        c
    }

    #[test]
    fn row_major_trick_gives_the_reference_product_in_all_four_cases() {
        use bio_core::{LinalgOps, ReferenceBackend};
        let mut rng = bio_core::conformance::rng(42);
        for (m, k, n) in [(1, 1, 1), (2, 3, 4), (5, 1, 3), (1, 7, 1), (6, 4, 2)] {
            let a = bio_core::conformance::random_matrix(&mut rng, m, k, -1.0, 1.0);
            let b = bio_core::conformance::random_matrix(&mut rng, k, n, -1.0, 1.0);
            let want = ReferenceBackend.matmul(&a, false, &b, false);
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let a_stored: Matrix = if ta { a.transpose() } else { a.clone() };
                let b_stored: Matrix = if tb { b.transpose() } else { b.clone() };
                let g = RowMajorGemm::new(a_stored.shape(), ta, b_stored.shape(), tb);
                assert_eq!((g.n, g.m), (m, n), "result shape");
                let c = sgemm_col_major(&g, b_stored.as_slice(), a_stored.as_slice());
                assert_eq!(c.len(), m * n, "C buffer is the row-major m×n result");
                let got = Matrix::new(m, n, c).unwrap();
                assert_eq!(got, want, "m={m} k={k} n={n} ta={ta} tb={tb}");
            }
        }
    }

    /// The strided batched call, modelled member by member on the slices its strides select (each
    /// slice checked to lie inside its stack), gives each member's reference product in all four
    /// transpose cases.
    #[test]
    fn stacked_call_gives_each_members_product() {
        use bio_core::{LinalgOps, ReferenceBackend};
        let mut rng = bio_core::conformance::rng(43);
        for members in [1usize, 2, 3] {
            for (m, k, n) in [(1, 1, 1), (2, 3, 4), (5, 1, 3), (1, 7, 1), (6, 4, 2)] {
                let a: Vec<Matrix> =
                    (0..members).map(|_| bio_core::conformance::random_matrix(&mut rng, m, k, -1.0, 1.0)).collect();
                let b: Vec<Matrix> =
                    (0..members).map(|_| bio_core::conformance::random_matrix(&mut rng, k, n, -1.0, 1.0)).collect();
                for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                    let stack = |x: &[Matrix], t: bool| {
                        let stored: Vec<Matrix> = x.iter().map(|x| if t { x.transpose() } else { x.clone() }).collect();
                        let (r, c) = stored[0].shape();
                        let data: Vec<f32> = stored.iter().flat_map(|x| x.as_slice().to_vec()).collect();
                        Matrix::new(members * r, c, data).unwrap()
                    };
                    let (a_stack, b_stack) = (stack(&a, ta), stack(&b, tb));
                    let call = StackedCall::new(members, a_stack.shape(), ta, b_stack.shape(), tb);
                    let g = call.gemm;
                    assert_eq!((g.n, g.m), (m, n), "a member's result shape");
                    assert_eq!(call.strides[2] * members, members * m * n, "the result is the stack of members");
                    for p in 0..members {
                        let slice = |x: &Matrix, stride: usize| {
                            assert!((p + 1) * stride <= x.len(), "member {p} of {members} lies inside its stack");
                            x.as_slice()[p * stride..(p + 1) * stride].to_vec()
                        };
                        let c =
                            sgemm_col_major(&g, &slice(&b_stack, call.strides[0]), &slice(&a_stack, call.strides[1]));
                        assert_eq!(c.len(), call.strides[2], "C stride is one member's result");
                        let want = ReferenceBackend.matmul(&a[p], false, &b[p], false);
                        assert_eq!(
                            Matrix::new(m, n, c).unwrap(),
                            want,
                            "member {p} of {members}: m={m} k={k} n={n} ta={ta} tb={tb}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "matmul inner dimensions differ")]
    fn gemm_plan_checks_inner_dimensions() {
        RowMajorGemm::new((3, 4), false, (3, 5), false);
    }

    /// The integer codes must stay in step with the `switch` statements of the kernel source.
    #[test]
    fn op_codes_match_the_source_switches() {
        let src = crate::kernels::SOURCE;
        let unary = [
            (Unary::Relu, "Relu"),
            (Unary::Step, "Step"),
            (Unary::Exp, "Exp"),
            (Unary::Ln, "Ln"),
            (Unary::Sqrt, "Sqrt"),
            (Unary::Abs, "Abs"),
            (Unary::Sign, "Sign"),
            (Unary::Square, "Square"),
            (Unary::Recip, "Recip"),
            (Unary::Scale(2.0), "Scale(a)"),
            (Unary::Offset(2.0), "Offset(a)"),
            (Unary::Powf(2.0), "Powf(p)"),
            (Unary::Clamp(0.0, 1.0), "Clamp(lo, hi)"),
        ];
        let mut codes: Vec<i32> = unary.iter().map(|(op, _)| unary_code(*op).0).collect();
        for (op, label) in unary {
            let code = unary_code(op).0;
            let line = src.lines().find(|l| l.contains(&format!("case {code}:"))).expect("case line");
            assert!(line.contains(&format!("/* {label}")), "code {code} of {op:?} labels `{line}`");
        }
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), 13, "unary codes collide");
        let binary: Vec<i32> =
            [Binary::Add, Binary::Sub, Binary::Mul, Binary::Div, Binary::Max, Binary::Min, Binary::Greater]
                .into_iter()
                .map(binary_code)
                .collect();
        assert_eq!(binary, (0..7).collect::<Vec<_>>());
        assert!(src.contains("case 6: return a > b ? 1.0f : 0.0f;"));
        assert_eq!(
            [Reduce::Sum, Reduce::Mean, Reduce::Max, Reduce::Min].map(reduce_code),
            [0, 1, 2, 3],
            "bio_reduce_* treat 1 as mean, 2 as max, 3 as min"
        );
    }
}
