//! GEMM (the `gemm` crate's AVX2/AVX-512 kernels or ndarray's `matrixmultiply`, cut into deterministic
//! blocks over the rayon threads), and a sparse-times-dense product for k-WTA codes.

use std::mem::MaybeUninit;
use std::sync::OnceLock;

use bio_core::LinalgOps;
use bio_core::backend::StackedGemm;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis, linalg::general_mat_mul, s};
use rayon::prelude::*;

use crate::CpuBackend;
use crate::uninit::{written, zeroed};

/// Above this fraction of non-zeros in `a`, [`LinalgOps::sparse_matmul`] runs the dense GEMM: a
/// row update (`axpy`) runs at a fraction of the packed GEMM's FLOP rate, so skipping zeros only pays
/// when most entries are zero (k-WTA codes are about 5 % non-zero).
pub const SPARSE_MAX_DENSITY: f64 = 0.15;

impl LinalgOps for CpuBackend {
    fn matmul(&self, a: &Array2<f32>, trans_a: bool, b: &Array2<f32>, trans_b: bool) -> Array2<f32> {
        // Transposes are strided views: matrixmultiply packs its panels from any strides, so no copy.
        let av = if trans_a { a.t() } else { a.view() };
        let bv = if trans_b { b.t() } else { b.view() };
        let ((m, ka), (kb, n)) = (av.dim(), bv.dim());
        assert_eq!(ka, kb, "matmul inner dimensions differ: {ka} vs {kb}");
        // Written into a row-major output (ndarray's `dot` would return a column-major one when both
        // operands are transposed). With β = 0 the zeros are overwritten, never read.
        let mut c = Array2::zeros((m, n));
        let parts = if m * n * ka >= GEMM_SPLIT_MIN_WORK { self.num_threads() } else { 1 };
        let kernel = self.gemm_kernel();
        self.install(|| gemm_in_parts(kernel, av, bv, c.view_mut(), parts));
        c
    }

    /// Each member's product by the same blocks as [`LinalgOps::matmul`] of that member alone (so
    /// the same bits), written into its rows of one output; members too small to be cut run side by
    /// side on the pool instead, one member a task (their bits do not depend on the cut either).
    fn matmul_stacked(
        &self,
        members: usize,
        a: &Array2<f32>,
        trans_a: bool,
        b: &Array2<f32>,
        trans_b: bool,
    ) -> Array2<f32> {
        let plan = StackedGemm::new(members, a.dim(), trans_a, b.dim(), trans_b);
        fn member(m: &Array2<f32>, rows: usize, p: usize, trans: bool) -> ArrayView2<'_, f32> {
            let v = m.slice(s![p * rows..(p + 1) * rows, ..]);
            if trans { v.reversed_axes() } else { v }
        }
        let mut c = Array2::zeros((members * plan.rows, plan.cols));
        if plan.rows == 0 || plan.cols == 0 {
            return c;
        }
        let kernel = self.gemm_kernel();
        let work = plan.rows * plan.cols * plan.inner;
        let parts = if work >= GEMM_SPLIT_MIN_WORK { self.num_threads() } else { 1 };
        let job = |(p, out): (usize, ArrayViewMut2<f32>)| {
            gemm_in_parts(kernel, member(a, plan.a_rows, p, trans_a), member(b, plan.b_rows, p, trans_b), out, parts)
        };
        let outputs = c.axis_chunks_iter_mut(Axis(0), plan.rows).enumerate();
        if parts == 1 && members > 1 && self.num_threads() > 1 {
            self.install(|| outputs.collect::<Vec<_>>().into_par_iter().for_each(job));
        } else {
            self.install(|| outputs.for_each(job));
        }
        c
    }

    fn sparse_matmul(&self, a: &Array2<f32>, trans_a: bool, b: &Array2<f32>) -> Array2<f32> {
        let ((_, ka), (kb, n)) = (if trans_a { (a.ncols(), a.nrows()) } else { a.dim() }, b.dim());
        assert_eq!(ka, kb, "matmul inner dimensions differ: {ka} vs {kb}");
        let rows = if trans_a { SparseRows::of_transposed(a.view()) } else { SparseRows::of(a.view()) };
        if rows.too_dense_for(ka) || n == 0 {
            return self.matmul(a, trans_a, b, false);
        }
        self.sparse_product(&rows, b)
    }
}

impl CpuBackend {
    /// `A·b` for the sparse `A` of `rows`: output rows in parallel, each by
    /// [`SparseRows::add_row_product`].
    pub(crate) fn sparse_product(&self, rows: &SparseRows, b: &Array2<f32>) -> Array2<f32> {
        let n = b.ncols();
        let b = b.as_standard_layout();
        let b = b.as_slice().expect("standard layout is contiguous");
        let mut c = Array2::<f32>::zeros((rows.rows(), n));
        let Some(out) = c.as_slice_mut().filter(|_| n > 0) else { return c };
        let row_job = |(i, out_row): (usize, &mut [f32])| rows.add_row_product(i, b, out_row);
        if self.parallel(out.len()) {
            self.install(|| out.par_chunks_mut(n).enumerate().for_each(row_job));
        } else {
            out.chunks_mut(n).enumerate().for_each(row_job);
        }
        c
    }
}

/// Products with at least this many multiply-adds are split across the backend's threads.
pub const GEMM_SPLIT_MIN_WORK: usize = 1 << 20;

/// The single-threaded GEMM kernel that computes each block of a matrix product.
///
/// Chosen by measurement (docs/PERFORMANCE.md, "GEMM kernel"): the `gemm` crate ran every training
/// shape faster than `matrixmultiply` both on an AVX-512 Xeon (its AVX-512 kernels, 1.2–4.8×) and
/// on an AVX2-only AMD EPYC (its AVX2 + FMA kernels, 1.05–1.9×), so it is the default wherever
/// the CPU has AVX2 and FMA; `matrixmultiply` elsewhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmKernel {
    /// `matrixmultiply` through ndarray's `general_mat_mul` (AVX2 + FMA, or SSE).
    MatrixMultiply,
    /// The `gemm` crate (AVX-512 where the CPU has it, else AVX2 + FMA), one call per `k`-chunk of
    /// at most `GEMM_K_CHUNK` (512) so its blocking depends on `k` only.
    Gemm,
}

/// Largest inner dimension of one call of the `gemm` crate: it cuts `k` into blocks whose size
/// also depends on the output's shape when that is small (≤ 64×64); cutting `k` ourselves into
/// chunks of at most this many keeps every output entry's sums the same whatever the block.
pub const GEMM_K_CHUNK: usize = 512;

impl GemmKernel {
    /// The kernel for this host, decided once per process: `BIO_CPU_GEMM=gemm|matrixmultiply` if
    /// set, else [`GemmKernel::Gemm`] when the CPU has AVX2 and FMA (or AVX-512F) and
    /// [`GemmKernel::MatrixMultiply`] otherwise.
    pub fn for_host() -> Self {
        static KERNEL: OnceLock<GemmKernel> = OnceLock::new();
        *KERNEL.get_or_init(|| match std::env::var("BIO_CPU_GEMM").as_deref() {
            Ok("gemm") => GemmKernel::Gemm,
            Ok("matrixmultiply") => GemmKernel::MatrixMultiply,
            _ if host_has_wide_fma() => GemmKernel::Gemm,
            _ => GemmKernel::MatrixMultiply,
        })
    }

    /// Short name, as accepted by `BIO_CPU_GEMM`.
    pub fn name(self) -> &'static str {
        match self {
            GemmKernel::MatrixMultiply => "matrixmultiply",
            GemmKernel::Gemm => "gemm",
        }
    }
}

fn host_has_wide_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            || (std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `c = a·b` by `kernel`, the output cut into up to `parts` blocks along its longer side, one
/// single-threaded GEMM per block on rayon. Every entry of `c` is summed over `k` in the same
/// blocks and order whatever the cut, so the result does not depend on `parts` (tested); one
/// thread pool (rayon's) instead of two competing for the cores.
pub(crate) fn gemm_in_parts(
    kernel: GemmKernel,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    c: ArrayViewMut2<f32>,
    parts: usize,
) {
    let (m, n) = c.dim();
    let (left, right) = (parts / 2, parts - parts / 2);
    let (mid, along_n) = if n >= m { (n * left / parts, true) } else { (m * left / parts, false) };
    let halves = if along_n { [(m, mid), (m, n - mid)] } else { [(mid, n), (m - mid, n)] };
    if parts <= 1 || !halves.iter().all(|&(hm, hn)| kernel.may_cut(m, n, hm, hn)) {
        gemm_block(kernel, a, b, c);
        return;
    }
    if along_n {
        let (b1, b2) = b.split_at(Axis(1), mid);
        let (c1, c2) = c.split_at(Axis(1), mid);
        rayon::join(|| gemm_in_parts(kernel, a, b1, c1, left), || gemm_in_parts(kernel, a, b2, c2, right));
    } else {
        let (a1, a2) = a.split_at(Axis(0), mid);
        let (c1, c2) = c.split_at(Axis(0), mid);
        rayon::join(|| gemm_in_parts(kernel, a1, b, c1, left), || gemm_in_parts(kernel, a2, b, c2, right));
    }
}

impl GemmKernel {
    /// Whether an `m×n` output block may be cut so that one piece is `hm×hn`, keeping every entry's
    /// sum order. `matrixmultiply` runs one algorithm at every shape. The `gemm` crate switches to
    /// other algorithms (other summation orders) for outputs with one row or column (GEMV) or at
    /// most 16×16 entries: a block is cut only into pieces that stay on its general kernel.
    pub(crate) fn may_cut(self, m: usize, n: usize, hm: usize, hn: usize) -> bool {
        let general = |m: usize, n: usize| m >= 2 && n >= 2 && m * n > 16 * 16;
        match self {
            GemmKernel::MatrixMultiply => hm >= 1 && hn >= 1,
            GemmKernel::Gemm => general(m, n) && general(hm, hn),
        }
    }
}

/// One block `c = a·b` on the calling thread.
fn gemm_block(kernel: GemmKernel, a: ArrayView2<f32>, b: ArrayView2<f32>, mut c: ArrayViewMut2<f32>) {
    match kernel {
        GemmKernel::MatrixMultiply => general_mat_mul(1.0, &a, &b, 0.0, &mut c),
        GemmKernel::Gemm => {
            let ((m, k), n) = (a.dim(), c.ncols());
            if m == 0 || n == 0 {
                return;
            }
            if k == 0 {
                c.fill(0.0);
                return;
            }
            let [c_rs, c_cs] = stride2(c.strides());
            // SAFETY: the pointer and strides are those of a live, unique `m×n` view.
            #[allow(unsafe_code)]
            unsafe {
                gemm_crate(a, b, c.as_mut_ptr(), c_rs, c_cs);
            }
        }
    }
}

/// [`gemm_block`] into the `m×n` row-major entries of `out` (`m = a.nrows()`, `n = b.ncols()`),
/// which need not be initialized: the same kernel call with the same bits, and no zero fill
/// where the kernel overwrites its output without reading it (the `gemm` crate with `k ≥ 1`: its
/// first `k`-chunk runs with `read_dst = false`, which sets the factor of the old output to zero,
/// and its microkernels then store without loading). Returns the entries, now initialized.
pub(crate) fn gemm_block_into<'a>(
    kernel: GemmKernel,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    out: &'a mut [MaybeUninit<f32>],
) -> &'a mut [f32] {
    let (m, n) = (a.nrows(), b.ncols());
    assert_eq!(out.len(), m * n, "gemm_block_into: the output holds m·n entries");
    if kernel == GemmKernel::Gemm && a.ncols() > 0 && m > 0 && n > 0 {
        // SAFETY: `out` is a unique block of `m·n` entries, addressed row-major with strides
        // `(n, 1)`; the first chunk's call writes every entry before any is read (above).
        #[allow(unsafe_code)]
        unsafe {
            gemm_crate(a, b, out.as_mut_ptr().cast::<f32>(), n as isize, 1);
            return written(out);
        }
    }
    let out = zeroed(out);
    gemm_block(kernel, a, b, ArrayViewMut2::from_shape((m, n), &mut *out).expect("m·n entries"));
    out
}

/// `c = a·b` by the `gemm` crate, one call per equal `k`-chunk of at most [`GEMM_K_CHUNK`] (a
/// function of `k` alone); the first chunk overwrites `c` without reading it, the rest add.
///
/// # Safety
/// `c` with strides `(c_rs, c_cs)` addresses `a.nrows()×b.ncols()` entries of one live
/// allocation that nothing else accesses during the call, and `a.ncols() ≥ 1`.
#[allow(unsafe_code)]
unsafe fn gemm_crate(a: ArrayView2<f32>, b: ArrayView2<f32>, c: *mut f32, c_rs: isize, c_cs: isize) {
    let ((m, k), n) = (a.dim(), b.ncols());
    let chunk = k.div_ceil(k.div_ceil(GEMM_K_CHUNK));
    for start in (0..k).step_by(chunk) {
        let end = (start + chunk).min(k);
        let (a, b) = (a.slice(s![.., start..end]), b.slice(s![start..end, ..]));
        let ([a_rs, a_cs], [b_rs, b_cs]) = (stride2(a.strides()), stride2(b.strides()));
        // SAFETY: the operands are live ndarray views of shapes m×(end − start) and
        // (end − start)×n, the output is the caller's (see above), so every element `gemm`
        // addresses is in bounds and the destination aliases neither operand.
        unsafe {
            gemm::gemm(
                m,
                n,
                end - start,
                c,
                c_cs,
                c_rs,
                start > 0, // the first chunk overwrites c (never reads it), the rest add
                a.as_ptr(),
                a_cs,
                a_rs,
                b.as_ptr(),
                b_cs,
                b_rs,
                1.0, // factor of the old c (gemm's α)
                1.0, // factor of the product (gemm's β)
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    }
}

fn stride2(strides: &[isize]) -> [isize; 2] {
    [strides[0], strides[1]]
}

/// The non-zero entries of a matrix, grouped by row (compressed sparse rows).
pub(crate) struct SparseRows {
    starts: Vec<usize>,
    columns: Vec<usize>,
    values: Vec<f32>,
}

impl SparseRows {
    /// Collects the non-zeros of `a` (`NaN` counts as non-zero).
    pub(crate) fn of(a: ArrayView2<f32>) -> Self {
        let mut starts = Vec::with_capacity(a.nrows() + 1);
        let (mut columns, mut values) = (Vec::new(), Vec::new());
        starts.push(0);
        for row in a.rows() {
            for (k, &v) in row.iter().enumerate() {
                if v != 0.0 {
                    columns.push(k);
                    values.push(v);
                }
            }
            starts.push(values.len());
        }
        Self { starts, columns, values }
    }

    /// Collects the non-zeros of `aᵀ`, reading `a` in its own row order (a counting sort by column),
    /// so a row-major `a` is never walked down its columns.
    pub(crate) fn of_transposed(a: ArrayView2<f32>) -> Self {
        let mut starts = vec![0usize; a.ncols() + 1];
        for row in a.rows() {
            for (j, &v) in row.iter().enumerate() {
                starts[j + 1] += usize::from(v != 0.0);
            }
        }
        for j in 0..a.ncols() {
            starts[j + 1] += starts[j];
        }
        let total = starts[a.ncols()];
        let (mut columns, mut values) = (vec![0usize; total], vec![0f32; total]);
        let mut next = starts.clone();
        for (k, row) in a.rows().into_iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                if v != 0.0 {
                    columns[next[j]] = k;
                    values[next[j]] = v;
                    next[j] += 1;
                }
            }
        }
        Self { starts, columns, values }
    }

    /// Number of rows.
    pub(crate) fn rows(&self) -> usize {
        self.starts.len() - 1
    }

    /// More non-zeros than [`SPARSE_MAX_DENSITY`] of a matrix with these rows and `cols` columns:
    /// the dense GEMM is faster.
    pub(crate) fn too_dense_for(&self, cols: usize) -> bool {
        self.values.len() as f64 > SPARSE_MAX_DENSITY * (self.rows() * cols) as f64
    }

    /// `out += Σ_k a_ik·b_k`, row `i` of `A·b` over the non-zero `a_ik` only, in the order stored
    /// (`b` row-major with `out.len()` columns). The one place both sparse paths sum, so they agree
    /// bit for bit.
    #[inline(always)]
    pub(crate) fn add_row_product(&self, i: usize, b: &[f32], out: &mut [f32]) {
        let n = out.len();
        for (k, v) in self.of_row(i) {
            for (o, &x) in out.iter_mut().zip(&b[k * n..(k + 1) * n]) {
                *o += v * x;
            }
        }
    }

    #[inline(always)]
    pub(crate) fn of_row(&self, i: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        let range = self.starts[i]..self.starts[i + 1];
        self.columns[range.clone()].iter().copied().zip(self.values[range].iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bio_core::conformance::{random_matrix, rng};
    use bio_core::{Matrix, TensorStore};

    /// Cutting the output into blocks (how the product uses several threads) changes no bit, with
    /// either kernel, including shapes whose pieces would reach the `gemm` crate's special cases
    /// (one row or column, at most 16×16 outputs) and inner dimensions above `GEMM_K_CHUNK`.
    #[test]
    fn gemm_result_does_not_depend_on_the_cut() {
        let cpu = CpuBackend::new();
        let mut rng = rng(8);
        let shapes = [
            (100, 784, 2000),
            (2000, 100, 784),
            (100, 2000, 784),
            (37, 513, 3),
            (100, 2000, 10),
            (10, 100, 2000),
            (3, 1100, 700),
            (40, 1025, 40),
            (17, 300, 19),
            (1, 600, 300),
            (300, 2, 300),
        ];
        for kernel in [GemmKernel::MatrixMultiply, GemmKernel::Gemm] {
            for &(m, k, n) in &shapes {
                let a: Matrix = random_matrix(&mut rng, m, k, -1.0, 1.0);
                let b: Matrix = random_matrix(&mut rng, k, n, -1.0, 1.0);
                let (a, b) = (cpu.upload(&a), cpu.upload(&b));
                let whole = {
                    let mut c = Array2::zeros((m, n));
                    gemm_in_parts(kernel, a.view(), b.view(), c.view_mut(), 1);
                    c
                };
                for parts in [2, 3, 7, 16, 64] {
                    let mut c = Array2::zeros((m, n));
                    gemm_in_parts(kernel, a.view(), b.view(), c.view_mut(), parts);
                    assert_eq!(c, whole, "{kernel:?}: {m}×{k}·{k}×{n} in {parts} parts");
                }
                // Transposed operands (strided views), as the backward passes use them.
                let (at, bt) = (a.t().to_owned(), b.t().to_owned());
                let mut c = Array2::zeros((m, n));
                gemm_in_parts(kernel, at.t(), bt.t(), c.view_mut(), 5);
                assert_eq!(c, whole, "{kernel:?}: {m}×{k}·{k}×{n} from transposes");
            }
        }
    }

    /// Population training's stacked product gives each member exactly the bits of `matmul` of that
    /// member alone (so a member of a population equals its single run), with either kernel, one or
    /// two threads (members side by side or each cut into blocks), every transpose, at the `bio`
    /// MLP's shapes (forward, Hebbian `yᵀ·x`, readout) and small ones.
    #[test]
    fn stacked_members_equal_their_single_products_bit_for_bit() {
        let mut rng = rng(10);
        let shapes = [(100, 784, 2000), (2000, 100, 784), (100, 2000, 10), (7, 13, 5), (1, 37, 1), (3, 0, 4)];
        for kernel in [GemmKernel::MatrixMultiply, GemmKernel::Gemm] {
            for threads in [1, 2] {
                let cpu = CpuBackend::with_threads(threads).unwrap().with_gemm_kernel(kernel);
                for &(m, k, n) in &shapes {
                    let members = if m * k * n > 1_000_000 { 2 } else { 4 };
                    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                        let stored = |rows: usize, cols: usize, t: bool, rng: &mut _| {
                            let x: Vec<Matrix> =
                                (0..members).map(|_| random_matrix(rng, rows, cols, -1.0, 1.0)).collect();
                            let x: Vec<Matrix> = x.iter().map(|x| if t { x.transpose() } else { x.clone() }).collect();
                            let data = x.iter().flat_map(|x| x.as_slice().to_vec()).collect::<Vec<_>>();
                            let (r, c) = x[0].shape();
                            (x, Matrix::new(members * r, c, data).unwrap())
                        };
                        let (a, a_stack) = stored(m, k, ta, &mut rng);
                        let (b, b_stack) = stored(k, n, tb, &mut rng);
                        let got = cpu.download(&cpu.matmul_stacked(
                            members,
                            &cpu.upload(&a_stack),
                            ta,
                            &cpu.upload(&b_stack),
                            tb,
                        ));
                        for p in 0..members {
                            let want = cpu.download(&cpu.matmul(&cpu.upload(&a[p]), ta, &cpu.upload(&b[p]), tb));
                            let mine = &got.as_slice()[p * m * n..(p + 1) * m * n];
                            assert!(
                                mine.iter().zip(want.as_slice()).all(|(x, y)| x.to_bits() == y.to_bits()),
                                "{kernel:?}, {threads} threads: member {p} of {members}, {m}×{k}·{k}×{n}, ta={ta} tb={tb}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// The `gemm` crate path against a plain `f64` sum (the conformance suite checks the default
    /// kernel, which is `matrixmultiply` on hosts without AVX2 + FMA).
    #[test]
    fn gemm_crate_kernel_computes_the_product() {
        let cpu = CpuBackend::new();
        let mut rng = rng(9);
        for &(m, k, n) in &[(5, 1300, 7), (64, 70, 65), (1, 3, 1), (4, 0, 3), (0, 4, 3)] {
            let a: Matrix = random_matrix(&mut rng, m, k, -1.0, 1.0);
            let b: Matrix = random_matrix(&mut rng, k, n, -1.0, 1.0);
            let (a, b) = (cpu.upload(&a), cpu.upload(&b));
            let mut c = Array2::from_elem((m, n), f32::NAN);
            gemm_in_parts(GemmKernel::Gemm, a.view(), b.view(), c.view_mut(), 2);
            for ((i, j), &got) in c.indexed_iter() {
                let want: f64 = (0..k).map(|l| f64::from(a[[i, l]]) * f64::from(b[[l, j]])).sum();
                assert!((f64::from(got) - want).abs() <= 1e-4 * (1.0 + want.abs()), "{m}×{k}·{k}×{n} at {i},{j}");
            }
        }
    }
}
