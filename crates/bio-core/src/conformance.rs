//! The shared backend conformance suite: every operation of [`Backend`] checked against
//! [`ReferenceBackend`] on deterministic pseudo-random matrices.
//!
//! Each `check_<op>(&backend)` runs one operation over awkward shapes ([`SHAPES`]: `1×1`, `1×n`,
//! `n×1`, `7×13`, one large enough for parallel code paths and one of at least 64k entries) and
//! panics with a message naming the operation, the shape and the worst difference. [`run_all`] runs
//! every check; [`conformance_tests!`](crate::conformance_tests) turns them into one `#[test]` each:
//!
//! ```ignore
//! // tests/conformance.rs of a backend crate:
//! bio_core::conformance_tests!(|| Some(bio_cpu::CpuBackend::new()));
//! // a backend that may be missing at run time: ignored by default, a failure when run without it
//! bio_core::conformance_tests!(#[ignore = "needs a CUDA GPU; run with --include-ignored"] || CudaBackend::new().ok());
//! ```
//!
//! # Tolerances
//! An entry passes when `|got − want| ≤ abs + rel·scale`, with `scale` per operation:
//!
//! | operation | `rel` | `scale` | `abs` |
//! |---|---|---|---|
//! | `matmul` (inner dimension `k`) | [`MATMUL_RTOL`]` = 1e-5` | `Σₖ |aᵢₖ·bₖⱼ|`, which grows with `k` (≈ `1e-4` of `|want|` at `k ≈ 150` for random signs) | [`ABS_TOL`] |
//! | `reduce` Sum / Mean over `n` entries | [`REDUCE_RTOL`]` = 1e-5` | `Σ|x|` (divided by `n` for Mean) | [`ABS_TOL`] |
//! | elementwise maps and zips, `lincomb`, `softmax_rows`, optimizer steps | [`ELEMENTWISE_RTOL`]` = 1e-5` | `|want|` | [`ABS_TOL`] |
//! | `reduce` Max / Min, `row_kth_largest`, `argmax_rows`, upload/download, `full` | exact | | |
//! | `unfold`, `fold`, `max_pool`, `max_pool_backward`, the fused per-position steps against their chains | bit for bit ([`assert_bits`]) | | |
//!
//! Softmax rows must also sum to 1 within [`SOFTMAX_SUM_TOL`] and stay finite for logits of ±1e4.
//!
//! # Adding a check
//! Write a `pub fn check_<name><B: Backend>(b: &B)`, call it from [`run_all`], and add
//! `<name> => check_<name>` to the list inside [`conformance_tests!`](crate::conformance_tests).
//! Rule-step and attack-step checks belong in the section marked for them at the end of the file.

use std::panic::{AssertUnwindSafe, catch_unwind};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::backend::{
    AdamStep, Backend, Binary, Dim, ElementwiseOps, LinalgOps, OptimOps, Reduce, ReduceOps, ReferenceBackend,
    SelectOps, Unary,
};
use crate::tensor::Matrix;

mod conv;
pub use conv::{
    check_fold, check_fraction_positive, check_kwta_layer, check_kwta_rows, check_max_pool, check_max_pool_backward,
    check_relative_to_row_max, check_reshape, check_unfold, check_unit_l2_rows, check_window_refusal,
};

// ============================================================================================
// Tolerances, shapes and helpers
// ============================================================================================

/// Relative tolerance of `matmul`, multiplied by `Σₖ |aᵢₖ·bₖⱼ|` (a scale that grows with the inner
/// dimension `k`): about `√k·2⁻²⁴` is the typical error of an `f32` dot product relative to that scale.
pub const MATMUL_RTOL: f32 = 1e-5;
/// Relative tolerance of Sum / Mean reductions, multiplied by `Σ|x|` (divided by `n` for Mean).
pub const REDUCE_RTOL: f32 = 1e-5;
/// Relative tolerance of elementwise results, multiplied by `|want|`.
pub const ELEMENTWISE_RTOL: f32 = 1e-5;
/// Absolute tolerance added to every non-exact comparison.
pub const ABS_TOL: f32 = 1e-6;
/// How far a softmax row's sum may be from 1.
pub const SOFTMAX_SUM_TOL: f64 = 1e-5;

/// The shapes every elementwise, reduction and selection check runs on: tiny and degenerate ones,
/// an odd one, `130×257` (above the usual 32k-entry parallel threshold), long single rows and
/// columns, and a large one of 78 000 entries.
pub const SHAPES: [(usize, usize); 8] =
    [(1, 1), (1, 37), (37, 1), (7, 13), (130, 257), (1, 40_000), (40_000, 1), (260, 300)];

/// `(m, k, n)` of the matrix products checked, each in all four transpose combinations.
pub const MATMUL_SHAPES: [(usize, usize, usize); 9] = [
    (1, 1, 1),
    (1, 37, 1),
    (1, 13, 9),
    (9, 13, 1),
    (37, 1, 29),
    (7, 13, 5),
    (130, 257, 67),
    (20, 784, 100),
    (256, 64, 300),
];

/// A seeded, portable random generator: the same matrices on every machine.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// A `rows×cols` matrix of values drawn uniformly from `[lo, hi)`.
pub fn random_matrix(rng: &mut ChaCha8Rng, rows: usize, cols: usize, lo: f32, hi: f32) -> Matrix {
    Matrix::from_fn(rows, cols, |_, _| rng.random_range(lo..hi))
}

/// A `rows×cols` matrix of values drawn from `values`: many ties.
pub fn coarse_matrix(rng: &mut ChaCha8Rng, rows: usize, cols: usize, values: &[f32]) -> Matrix {
    Matrix::from_fn(rows, cols, |_, _| values[rng.random_range(0..values.len())])
}

/// Sets about one entry in `every` to exactly zero (where `Step`, `Sign` and friends switch).
fn sprinkle_zeros(rng: &mut ChaCha8Rng, m: &mut Matrix, every: u32) {
    for v in m.as_mut_slice() {
        if rng.random_ratio(1, every) {
            *v = 0.0;
        }
    }
}

fn shape_str((r, c): (usize, usize)) -> String {
    format!("{r}×{c}")
}

/// Downloads `t`, syncing first.
fn fetch<B: Backend>(b: &B, t: &B::Tensor) -> Matrix {
    b.sync();
    b.download(t)
}

/// Panics unless `got` has the shape of `want`.
fn assert_same_shape(ctx: &str, got: &Matrix, want: &Matrix) {
    assert_eq!(
        got.shape(),
        want.shape(),
        "conformance: {ctx}: result is {}, want {}",
        shape_str(got.shape()),
        shape_str(want.shape())
    );
}

/// Panics unless `got` has the shape of `want` and every entry is within `abs + rel·scale[i, j]`.
/// Entries that are NaN in both, or equal infinities, pass. `ctx` names the operation and shape.
pub fn assert_close_scaled(ctx: &str, got: &Matrix, want: &Matrix, scale: &Matrix, rel: f32, abs: f32) {
    assert_same_shape(ctx, got, want);
    // The worst entry is the one furthest beyond its tolerance.
    let mut worst: Option<(usize, f32, f32)> = None;
    let mut max_diff = 0.0f32;
    for (idx, ((&g, &w), &s)) in got.as_slice().iter().zip(want.as_slice()).zip(scale.as_slice()).enumerate() {
        let same = (g.is_nan() && w.is_nan()) || g == w;
        let diff = if same { 0.0 } else { (g - w).abs() };
        let diff = if diff.is_nan() { f32::INFINITY } else { diff };
        max_diff = max_diff.max(diff);
        let tol = abs + rel * s.abs();
        let excess = if same {
            0.0
        } else if diff.is_finite() && tol.is_finite() {
            diff / tol
        } else {
            f32::INFINITY
        };
        if excess > 1.0 && worst.is_none_or(|(_, e, _)| excess > e) {
            worst = Some((idx, excess, tol));
        }
    }
    if let Some((idx, _, tol)) = worst {
        let cols = want.cols().max(1);
        let (i, j) = (idx / cols, idx % cols);
        let (g, w) = (got.as_slice()[idx], want.as_slice()[idx]);
        panic!(
            "conformance: {ctx}: worst difference {:e} at ({i}, {j}): got {g:e}, want {w:e}, tolerance {tol:e} \
             (largest difference anywhere {max_diff:e})",
            (g - w).abs()
        );
    }
}

/// [`assert_close_scaled`] with the scale `|want|`: a relative tolerance plus an absolute floor.
pub fn assert_close(ctx: &str, got: &Matrix, want: &Matrix, rel: f32, abs: f32) {
    assert_close_scaled(ctx, got, want, want, rel, abs);
}

/// Panics unless `got` equals `want` entry for entry (NaN matches NaN; `-0.0` matches `0.0`).
pub fn assert_exact(ctx: &str, got: &Matrix, want: &Matrix) {
    assert_close_scaled(ctx, got, want, want, 0.0, 0.0);
}

/// Panics unless `got` has the shape of `want` and every entry has the same bits: for exact
/// operations (copies, the routing of values, sums in a fixed order, a fused operation against its
/// composed chain), where `-0.0` and `0.0`, or two NaNs of different payloads, must be told apart.
pub fn assert_bits(ctx: &str, got: &Matrix, want: &Matrix) {
    assert_same_shape(ctx, got, want);
    let differ = |(_, (g, w)): &(usize, (&f32, &f32))| g.to_bits() != w.to_bits();
    let mut diffs = got.as_slice().iter().zip(want.as_slice()).enumerate().filter(differ);
    if let Some((idx, (g, w))) = diffs.next() {
        let cols = want.cols().max(1);
        panic!(
            "conformance: {ctx}: entry ({}, {}) is {g:e} ({:#010x}), want {w:e} ({:#010x}); {} entries differ",
            idx / cols,
            idx % cols,
            g.to_bits(),
            w.to_bits(),
            1 + diffs.count()
        );
    }
}

/// Panics unless `f` panics: for contracts such as "panics if the inner dimensions differ".
fn assert_panics(ctx: &str, f: impl FnOnce()) {
    let outcome = catch_unwind(AssertUnwindSafe(f));
    assert!(outcome.is_err(), "conformance: {ctx}: expected a panic, the operation returned normally");
}

/// Unwraps the backend made by a conformance test's constructor. `None` means the backend is
/// unavailable here (no GPU, no driver): the test then fails, never passes silently. Tests of a
/// backend that may be absent should be marked `#[ignore]`, so that a plain `cargo test` reports
/// them as ignored and only an explicit `--include-ignored` run on a machine without it fails.
pub fn require_backend<B>(made: Option<B>, test: &str) -> B {
    match made {
        Some(b) => b,
        None => panic!(
            "conformance test `{test}`: the backend constructor returned None, so the backend is not \
             available on this machine. This test was run explicitly (e.g. --include-ignored) and fails \
             instead of passing without checking anything."
        ),
    }
}

// ============================================================================================
// Tensor store
// ============================================================================================

/// `upload` then `download` returns every value bit for bit (including NaN, ±∞, `-0.0`,
/// subnormals and the extremes), `shape` is right, and a cloned tensor downloads the same.
pub fn check_upload_download<B: Backend>(b: &B) {
    let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, f32::MIN_POSITIVE / 8.0, f32::MAX, f32::MIN];
    let mut rng = rng(1);
    for &shape in &SHAPES {
        let mut m = random_matrix(&mut rng, shape.0, shape.1, -1e3, 1e3);
        for (slot, &v) in m.as_mut_slice().iter_mut().step_by(3).zip(&specials) {
            *slot = v;
        }
        let ctx = format!("upload/download on {}", shape_str(shape));
        let t = b.upload(&m);
        assert_eq!(b.shape(&t), shape, "conformance: {ctx}: shape() is wrong");
        for (name, back) in [("download", fetch(b, &t)), ("download of a clone", fetch(b, &t.clone()))] {
            assert_eq!(back.shape(), shape, "conformance: {ctx}: {name} has the wrong shape");
            if let Some(idx) = back.as_slice().iter().zip(m.as_slice()).position(|(x, y)| x.to_bits() != y.to_bits()) {
                panic!(
                    "conformance: {ctx}: {name} changed entry {idx}: {:e} (bits {:#x}) became {:e} (bits {:#x})",
                    m.as_slice()[idx],
                    m.as_slice()[idx].to_bits(),
                    back.as_slice()[idx],
                    back.as_slice()[idx].to_bits()
                );
            }
        }
    }
}

/// `full` makes the right shape filled with exactly the value (NaN, ±∞ and `-0.0` included).
pub fn check_full<B: Backend>(b: &B) {
    for &shape in &SHAPES {
        for value in [0.0, -0.0, 1.5, -3.25e7, f32::INFINITY, f32::NAN] {
            let ctx = format!("full({value}) on {}", shape_str(shape));
            let t = b.full(shape.0, shape.1, value);
            assert_eq!(b.shape(&t), shape, "conformance: {ctx}: shape() is wrong");
            let got = fetch(b, &t);
            assert_eq!(got.shape(), shape, "conformance: {ctx}: download has the wrong shape");
            let bad = got
                .as_slice()
                .iter()
                .position(|v| if value.is_nan() { !v.is_nan() } else { v.to_bits() != value.to_bits() });
            if let Some(idx) = bad {
                panic!("conformance: {ctx}: entry {idx} is {:e}", got.as_slice()[idx]);
            }
        }
    }
}

// ============================================================================================
// Linear algebra
// ============================================================================================

/// `matmul` in all four transpose combinations over [`MATMUL_SHAPES`], against the `f64`
/// reference product of the untransposed operands.
pub fn check_matmul<B: Backend>(b: &B) {
    let r = ReferenceBackend;
    let mut rng = rng(2);
    for &(m, k, n) in &MATMUL_SHAPES {
        let a = random_matrix(&mut rng, m, k, -1.0, 1.0);
        let bm = random_matrix(&mut rng, k, n, -1.0, 1.0);
        let want = r.matmul(&a, false, &bm, false);
        let scale = r.matmul(&r.map(&a, Unary::Abs), false, &r.map(&bm, Unary::Abs), false);
        let (at, bt) = (a.transpose(), bm.transpose());
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let ta_t = b.upload(if ta { &at } else { &a });
            let tb_t = b.upload(if tb { &bt } else { &bm });
            let got = fetch(b, &b.matmul(&ta_t, ta, &tb_t, tb));
            let ctx = format!("matmul {}", product_str(ta, tb, (m, k, n)));
            assert_close_scaled(&ctx, &got, &want, &scale, MATMUL_RTOL, ABS_TOL);
        }
    }
}

/// `op(a) · op(b)` as stored, e.g. `4×3ᵀ · 4×5 (m=3, k=4, n=5)`, for the products' messages.
fn product_str(ta: bool, tb: bool, (m, k, n): (usize, usize, usize)) -> String {
    format!(
        "{}{} · {}{} (m={m}, k={k}, n={n})",
        shape_str(if ta { (k, m) } else { (m, k) }),
        if ta { "ᵀ" } else { "" },
        shape_str(if tb { (n, k) } else { (k, n) }),
        if tb { "ᵀ" } else { "" },
    )
}

/// `matmul_stacked` (population training's products) in all four transpose combinations, for 1, 2
/// and 5 members over [`MATMUL_SHAPES`], each member against the `f64` reference product of its
/// own operands (the members differ, so a product of the wrong member or a stride of the wrong
/// member's size fails).
pub fn check_matmul_stacked<B: Backend>(b: &B) {
    let r = ReferenceBackend;
    let mut rng = rng(21);
    let stack = |members: &[Matrix]| {
        let cols = members[0].cols();
        let data: Vec<f32> = members.iter().flat_map(|m| m.as_slice().iter().copied()).collect();
        Matrix::new(data.len() / cols.max(1), cols, data).expect("equal members")
    };
    for members in [1usize, 2, 5] {
        for &(m, k, n) in &MATMUL_SHAPES {
            let a: Vec<Matrix> = (0..members).map(|_| random_matrix(&mut rng, m, k, -1.0, 1.0)).collect();
            let bm: Vec<Matrix> = (0..members).map(|_| random_matrix(&mut rng, k, n, -1.0, 1.0)).collect();
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let stored = |ms: &[Matrix], t: bool| {
                    stack(&ms.iter().map(|x| if t { x.transpose() } else { x.clone() }).collect::<Vec<_>>())
                };
                let got = fetch(
                    b,
                    &b.matmul_stacked(members, &b.upload(&stored(&a, ta)), ta, &b.upload(&stored(&bm, tb)), tb),
                );
                assert_eq!(got.shape(), (members * m, n), "conformance: matmul_stacked of {members} members: shape");
                for p in 0..members {
                    let want = r.matmul(&a[p], false, &bm[p], false);
                    let scale = r.matmul(&r.map(&a[p], Unary::Abs), false, &r.map(&bm[p], Unary::Abs), false);
                    let mine = Matrix::new(m, n, got.as_slice()[p * m * n..(p + 1) * m * n].to_vec()).expect("member");
                    let ctx = format!("matmul_stacked, member {p} of {members}: {}", product_str(ta, tb, (m, k, n)));
                    assert_close_scaled(&ctx, &mine, &want, &scale, MATMUL_RTOL, ABS_TOL);
                }
            }
        }
    }
}

/// `reduce_stacked` for every `Dim` and `Reduce` on stacks of 1, 3 and 4 members: each member's
/// result against the reference `reduce` of that member, with `reduce`'s tolerance (Max and Min
/// exactly). (A default implementation has `reduce`'s own bits; the CPU population test holds the
/// CPU to them.)
pub fn check_reduce_stacked<B: Backend>(b: &B) {
    check_reduce_stacked_by(b, |b, members, t, dim, op| b.reduce_stacked(members, t, dim, op));
}

/// [`check_reduce_stacked`] of an implementation `f` of `reduce_stacked` on `b` (e.g. a
/// composition a backend will call, checked on the reference backend).
pub fn check_reduce_stacked_by<B: Backend>(b: &B, f: impl Fn(&B, usize, &B::Tensor, Dim, Reduce) -> B::Tensor) {
    let r = ReferenceBackend;
    let mut rng = rng(22);
    for members in [1usize, 3, 4] {
        for &(rows, cols) in &[(1, 1), (5, 7), (20, 130)] {
            let parts: Vec<Matrix> = (0..members).map(|_| random_matrix(&mut rng, rows, cols, -1.0, 1.0)).collect();
            let data: Vec<f32> = parts.iter().flat_map(|m| m.as_slice().to_vec()).collect();
            let stack = b.upload(&Matrix::new(members * rows, cols, data).unwrap());
            for dim in [Dim::PerRow, Dim::PerCol, Dim::All] {
                let n = match dim {
                    Dim::PerRow => cols,
                    Dim::PerCol => rows,
                    Dim::All => rows * cols,
                } as f32;
                for op in [Reduce::Sum, Reduce::Mean, Reduce::Max, Reduce::Min] {
                    let got = fetch(b, &f(b, members, &stack, dim, op));
                    let member_len = got.len() / members;
                    assert_eq!(got.len() % members, 0, "conformance: reduce_stacked {dim:?} {op:?}: shape");
                    for (p, x) in parts.iter().enumerate() {
                        let want = r.reduce(x, dim, op);
                        let mine = Matrix::new(
                            want.rows(),
                            want.cols(),
                            got.as_slice()[p * member_len..(p + 1) * member_len].to_vec(),
                        )
                        .expect("a member's result");
                        let ctx = format!(
                            "reduce_stacked {op:?} {dim:?}, member {p} of {members} of {}",
                            shape_str((rows, cols))
                        );
                        match op {
                            Reduce::Sum | Reduce::Mean => {
                                let per = if op == Reduce::Mean { n } else { 1.0 };
                                let scale =
                                    r.map(&r.reduce(&r.map(x, Unary::Abs), dim, Reduce::Sum), Unary::Scale(1.0 / per));
                                assert_close_scaled(&ctx, &mine, &want, &scale, REDUCE_RTOL, ABS_TOL);
                            }
                            Reduce::Max | Reduce::Min => assert_exact(&ctx, &mine, &want),
                        }
                    }
                }
            }
        }
    }
}

/// `sparse_matmul` against the dense reference product, both transposes, for `a` with about 5 %
/// non-zeros (k-WTA codes), 50 % (above any sparse cut-off), none at all, and a zero row.
pub fn check_sparse_matmul<B: Backend>(b: &B) {
    let r = ReferenceBackend;
    let mut rng = rng(3);
    for &(m, k, n) in &MATMUL_SHAPES {
        for density in [0.05f64, 0.5, 0.0] {
            let mut a =
                Matrix::from_fn(m, k, |_, _| if rng.random_bool(density) { rng.random_range(0.0..1.0) } else { 0.0 });
            if m > 1 {
                a.as_mut_slice()[..k].iter_mut().for_each(|v| *v = 0.0);
            }
            let bm = random_matrix(&mut rng, k, n, -1.0, 1.0);
            let want = r.matmul(&a, false, &bm, false);
            let scale = r.matmul(&a, false, &r.map(&bm, Unary::Abs), false);
            for trans_a in [false, true] {
                let at = b.upload(&if trans_a { a.transpose() } else { a.clone() });
                let got = fetch(b, &b.sparse_matmul(&at, trans_a, &b.upload(&bm)));
                let ctx = format!(
                    "sparse_matmul {}{} · {} (density {density})",
                    shape_str(if trans_a { (k, m) } else { (m, k) }),
                    if trans_a { "ᵀ" } else { "" },
                    shape_str((k, n)),
                );
                assert_close_scaled(&ctx, &got, &want, &scale, MATMUL_RTOL, ABS_TOL);
            }
        }
    }
}

/// Shape contracts: `matmul` with differing inner dimensions, `zip` / `zip_assign` with a shape
/// that does not broadcast, `lincomb` of unequal shapes, and `row_kth_largest` with `k` outside
/// `1..=cols` all panic.
pub fn check_shape_contracts<B: Backend>(b: &B) {
    let a = b.upload(&Matrix::full(3, 4, 1.0));
    let c = b.upload(&Matrix::full(3, 5, 1.0));
    assert_panics("matmul 3×4 · 3×5", || drop(b.matmul(&a, false, &c, false)));
    assert_panics("matmul (3×4)ᵀ · (3×5)ᵀ", || drop(b.matmul(&a, true, &c, true)));
    let four = b.upload(&Matrix::full(4, 4, 1.0));
    assert_panics("matmul_stacked of 2 members with a 3-row stack", || {
        drop(b.matmul_stacked(2, &a, false, &four, false))
    });
    assert_panics("matmul_stacked of 0 members", || drop(b.matmul_stacked(0, &four, false, &four, false)));
    assert_panics("matmul_stacked of 2 members of 2×4 · 2×4", || {
        drop(b.matmul_stacked(2, &four, false, &four, false))
    });
    for bad in [(2, 4), (4, 3), (3, 2), (1, 3), (4, 1), (3, 5)] {
        let t = b.upload(&Matrix::full(bad.0, bad.1, 1.0));
        assert_panics(&format!("zip of 3×4 with {}", shape_str(bad)), || drop(b.zip(&a, &t, Binary::Add)));
        let mut a2 = a.clone();
        assert_panics(&format!("zip_assign of 3×4 with {}", shape_str(bad)), || {
            b.zip_assign(&mut a2, &t, Binary::Add)
        });
    }
    assert_panics("lincomb of 3×4 and 3×5", || drop(b.lincomb(1.0, &a, 1.0, &c)));
    assert_panics("row_kth_largest k=0 on 3×4", || drop(b.row_kth_largest(&a, 0)));
    assert_panics("row_kth_largest k=5 on 3×4", || drop(b.row_kth_largest(&a, 5)));
}

// ============================================================================================
// Elementwise
// ============================================================================================

/// Every [`Unary`] variant, each on inputs in its domain, as `(op, lo, hi, zeros)`.
fn unary_cases() -> Vec<(Unary, f32, f32, bool)> {
    vec![
        (Unary::Relu, -2.0, 2.0, true),
        (Unary::Step, -2.0, 2.0, true),
        (Unary::Exp, -10.0, 10.0, true),
        (Unary::Ln, 0.05, 4.0, false),
        (Unary::Sqrt, 0.0, 4.0, true),
        (Unary::Abs, -2.0, 2.0, true),
        (Unary::Sign, -2.0, 2.0, true),
        (Unary::Square, -3.0, 3.0, true),
        (Unary::Recip, 0.05, 4.0, false),
        (Unary::Scale(-1.7), -2.0, 2.0, true),
        (Unary::Scale(0.0), -2.0, 2.0, false),
        (Unary::Offset(0.3), -2.0, 2.0, true),
        (Unary::Powf(0.5), 0.0, 4.0, true),
        (Unary::Powf(2.5), 0.0, 4.0, true),
        (Unary::Powf(-1.5), 0.05, 4.0, false),
        (Unary::Clamp(-0.5, 0.25), -2.0, 2.0, true),
    ]
}

/// `map` for every [`Unary`] variant on every shape.
pub fn check_map<B: Backend>(b: &B) {
    let r = ReferenceBackend;
    let mut rng = rng(3);
    for (op, lo, hi, zeros) in unary_cases() {
        for &shape in &SHAPES {
            let mut a = random_matrix(&mut rng, shape.0, shape.1, lo, hi);
            if zeros {
                sprinkle_zeros(&mut rng, &mut a, 7);
            }
            let got = fetch(b, &b.map(&b.upload(&a), op));
            let ctx = format!("map {op:?} on {}", shape_str(shape));
            assert_close(&ctx, &got, &r.map(&a, op), ELEMENTWISE_RTOL, ABS_TOL);
        }
    }
}

const ALL_BINARY: [Binary; 7] =
    [Binary::Add, Binary::Sub, Binary::Mul, Binary::Div, Binary::Max, Binary::Min, Binary::Greater];

/// The four broadcast forms of `b` for an `a` of `shape`.
fn broadcast_forms((r, c): (usize, usize)) -> [(&'static str, (usize, usize)); 4] {
    [("same shape", (r, c)), ("rows×1", (r, 1)), ("1×cols", (1, c)), ("1×1", (1, 1))]
}

/// Operands for a binary op: continuous values (`coarse = false`) or few distinct values, so
/// `Max`, `Min` and `Greater` meet ties. `Div` gets a divisor away from zero.
fn binary_operands(
    rng: &mut ChaCha8Rng,
    op: Binary,
    a_shape: (usize, usize),
    b_shape: (usize, usize),
    coarse: bool,
) -> (Matrix, Matrix) {
    const COARSE: [f32; 5] = [-1.0, -0.5, 0.0, 0.5, 1.0];
    let a = if coarse {
        coarse_matrix(rng, a_shape.0, a_shape.1, &COARSE)
    } else {
        random_matrix(rng, a_shape.0, a_shape.1, -2.0, 2.0)
    };
    let b = match (op, coarse) {
        (Binary::Div, false) => random_matrix(rng, b_shape.0, b_shape.1, 0.5, 2.0),
        (Binary::Div, true) => coarse_matrix(rng, b_shape.0, b_shape.1, &[-1.0, 0.5, 1.0, 2.0]),
        (_, false) => random_matrix(rng, b_shape.0, b_shape.1, -2.0, 2.0),
        (_, true) => coarse_matrix(rng, b_shape.0, b_shape.1, &COARSE),
    };
    (a, b)
}

/// `zip` for every [`Binary`] variant, every broadcast form (same shape, `rows×1`, `1×cols`,
/// `1×1`) and every shape, with continuous and tied operands.
pub fn check_zip<B: Backend>(b: &B) {
    let r = ReferenceBackend;
    let mut rng = rng(4);
    for op in ALL_BINARY {
        for &shape in &SHAPES {
            for (form, b_shape) in broadcast_forms(shape) {
                for coarse in [false, true] {
                    let (x, y) = binary_operands(&mut rng, op, shape, b_shape, coarse);
                    let got = fetch(b, &b.zip(&b.upload(&x), &b.upload(&y), op));
                    let ctx = format!("zip {op:?} on {} with b {} ({form})", shape_str(shape), shape_str(b_shape));
                    assert_close(&ctx, &got, &r.zip(&x, &y, op), ELEMENTWISE_RTOL, ABS_TOL);
                }
            }
        }
    }
}

/// `zip_assign` for every [`Binary`] variant, broadcast form and shape: the same result as `zip`.
pub fn check_zip_assign<B: Backend>(b: &B) {
    let r = ReferenceBackend;
    let mut rng = rng(5);
    for op in ALL_BINARY {
        for &shape in &SHAPES {
            for (form, b_shape) in broadcast_forms(shape) {
                let (x, y) = binary_operands(&mut rng, op, shape, b_shape, false);
                let mut t = b.upload(&x);
                b.zip_assign(&mut t, &b.upload(&y), op);
                let got = fetch(b, &t);
                let ctx = format!("zip_assign {op:?} on {} with b {} ({form})", shape_str(shape), shape_str(b_shape));
                assert_close(&ctx, &got, &r.zip(&x, &y, op), ELEMENTWISE_RTOL, ABS_TOL);
            }
        }
    }
}

/// `lincomb` on every shape with several coefficient pairs, zero coefficients included.
pub fn check_lincomb<B: Backend>(b: &B) {
    let r = ReferenceBackend;
    let mut rng = rng(6);
    for &shape in &SHAPES {
        for (alpha, beta) in [(1.0, 1.0), (0.5, -2.0), (0.0, 3.0), (-1.0, 0.0), (1e-3, 7.5)] {
            let x = random_matrix(&mut rng, shape.0, shape.1, -2.0, 2.0);
            let y = random_matrix(&mut rng, shape.0, shape.1, -2.0, 2.0);
            let got = fetch(b, &b.lincomb(alpha, &b.upload(&x), beta, &b.upload(&y)));
            let ctx = format!("lincomb({alpha}, a, {beta}, b) on {}", shape_str(shape));
            assert_close(&ctx, &got, &r.lincomb(alpha, &x, beta, &y), ELEMENTWISE_RTOL, ABS_TOL);
        }
    }
}

// ============================================================================================
// Reductions
// ============================================================================================

/// `reduce` for every [`Reduce`] × [`Dim`] on every shape. Max and Min must be exact.
pub fn check_reduce<B: Backend>(b: &B) {
    let r = ReferenceBackend;
    let mut rng = rng(7);
    for &shape in &SHAPES {
        let x = random_matrix(&mut rng, shape.0, shape.1, -2.0, 2.0);
        let xt = b.upload(&x);
        let abs_x = r.map(&x, Unary::Abs);
        for dim in [Dim::PerRow, Dim::PerCol, Dim::All] {
            let n = match dim {
                Dim::PerRow => shape.1,
                Dim::PerCol => shape.0,
                Dim::All => shape.0 * shape.1,
            };
            let abs_sum = r.reduce(&abs_x, dim, Reduce::Sum);
            for op in [Reduce::Sum, Reduce::Mean, Reduce::Max, Reduce::Min] {
                let got = fetch(b, &b.reduce(&xt, dim, op));
                let want = r.reduce(&x, dim, op);
                let ctx = format!("reduce {op:?} {dim:?} on {}", shape_str(shape));
                match op {
                    Reduce::Sum | Reduce::Mean => {
                        let per = if op == Reduce::Mean { n as f32 } else { 1.0 };
                        let scale = r.map(&abs_sum, Unary::Scale(1.0 / per));
                        assert_close_scaled(&ctx, &got, &want, &scale, REDUCE_RTOL, ABS_TOL);
                    }
                    Reduce::Max | Reduce::Min => assert_exact(&ctx, &got, &want),
                }
            }
        }
    }
}

// ============================================================================================
// Selection
// ============================================================================================

/// `row_kth_largest` for `k` = 1, the middle and `cols`, on continuous rows and on rows full of
/// ties. Exact.
pub fn check_row_kth_largest<B: Backend>(b: &B) {
    let r = ReferenceBackend;
    let mut rng = rng(8);
    for &shape in &SHAPES {
        let cols = shape.1;
        let mut ks = vec![1, cols.div_ceil(2), cols];
        ks.dedup();
        for ties in [false, true] {
            let x = if ties {
                coarse_matrix(&mut rng, shape.0, cols, &[-1.0, 0.0, 0.25, 0.25, 3.0])
            } else {
                random_matrix(&mut rng, shape.0, cols, -2.0, 2.0)
            };
            let xt = b.upload(&x);
            for &k in &ks {
                let got = fetch(b, &b.row_kth_largest(&xt, k));
                let ctx =
                    format!("row_kth_largest k={k} on {}{}", shape_str(shape), if ties { " with ties" } else { "" });
                assert_exact(&ctx, &got, &r.row_kth_largest(&x, k));
            }
        }
    }
}

/// `softmax_rows` on ordinary logits and on huge ones (±1e4): close to the reference, finite,
/// and every row sums to 1.
pub fn check_softmax_rows<B: Backend>(b: &B) {
    let r = ReferenceBackend;
    let mut rng = rng(9);
    for &shape in &SHAPES {
        for huge in [false, true] {
            let x = if huge {
                Matrix::from_fn(shape.0, shape.1, |_, _| {
                    let sign = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
                    sign * 1e4 + rng.random_range(-3.0..3.0)
                })
            } else {
                random_matrix(&mut rng, shape.0, shape.1, -5.0, 5.0)
            };
            let got = fetch(b, &b.softmax_rows(&b.upload(&x)));
            let ctx = format!("softmax_rows on {}{}", shape_str(shape), if huge { " with logits ±1e4" } else { "" });
            assert!(got.all_finite(), "conformance: {ctx}: non-finite output");
            assert_close(&ctx, &got, &r.softmax_rows(&x), ELEMENTWISE_RTOL, ABS_TOL);
            for i in 0..got.rows() {
                let sum: f64 = got.row(i).iter().map(|&v| v as f64).sum();
                assert!(
                    (sum - 1.0).abs() <= SOFTMAX_SUM_TOL,
                    "conformance: {ctx}: row {i} sums to {sum} (worst difference {:e})",
                    (sum - 1.0).abs()
                );
            }
        }
    }
}

/// `argmax_rows` on continuous rows, rows full of ties and constant rows: the first largest wins.
pub fn check_argmax_rows<B: Backend>(b: &B) {
    let r = ReferenceBackend;
    let mut rng = rng(10);
    for &shape in &SHAPES {
        let inputs = [
            ("", random_matrix(&mut rng, shape.0, shape.1, -2.0, 2.0)),
            (" with ties", coarse_matrix(&mut rng, shape.0, shape.1, &[-1.0, 0.0, 2.0])),
            (" with constant rows", Matrix::from_fn(shape.0, shape.1, |i, _| i as f32 * 0.5 - 1.0)),
        ];
        for (what, x) in inputs {
            let got = b.argmax_rows(&b.upload(&x));
            let want = r.argmax_rows(&x);
            let ctx = format!("argmax_rows on {}{what}", shape_str(shape));
            assert_eq!(got.len(), want.len(), "conformance: {ctx}: {} indices, want {}", got.len(), want.len());
            if let Some(i) = got.iter().zip(&want).position(|(g, w)| g != w) {
                panic!(
                    "conformance: {ctx}: row {i}: index {}, want {} (worst difference: wrong index)",
                    got[i], want[i]
                );
            }
        }
    }
}

// ============================================================================================
// Optimizer steps
// ============================================================================================

const OPTIM_STEPS: usize = 5;

/// `adam_step` over several steps with fresh gradients, comparing `p`, `m` and `v` after each.
pub fn check_adam_step<B: Backend>(b: &B) {
    let r = ReferenceBackend;
    let mut rng = rng(11);
    let (lr, beta1, beta2, eps) = (1e-2f32, 0.9f32, 0.999f32, 1e-8f32);
    for &shape in &SHAPES {
        let mut p = random_matrix(&mut rng, shape.0, shape.1, -1.0, 1.0);
        let (mut m, mut v) = (Matrix::zeros(shape.0, shape.1), Matrix::zeros(shape.0, shape.1));
        let (mut pt, mut mt, mut vt) = (b.upload(&p), b.upload(&m), b.upload(&v));
        for t in 1..=OPTIM_STEPS as i32 {
            let g = random_matrix(&mut rng, shape.0, shape.1, -1.0, 1.0);
            let lr_t = lr * (1.0 - beta2.powi(t)).sqrt() / (1.0 - beta1.powi(t));
            let s = AdamStep { lr_t, beta1, beta2, eps };
            r.adam_step(&mut p, &g, &mut m, &mut v, s);
            b.adam_step(&mut pt, &b.upload(&g), &mut mt, &mut vt, s);
            for (name, t_, want) in [("p", &pt, &p), ("m", &mt, &m), ("v", &vt, &v)] {
                let ctx = format!("adam_step {t} ({name}) on {}", shape_str(shape));
                assert_close(&ctx, &fetch(b, t_), want, ELEMENTWISE_RTOL, ABS_TOL);
            }
        }
    }
}

/// `momentum_step` over several steps with fresh gradients, comparing `p` and `m` after each.
pub fn check_momentum_step<B: Backend>(b: &B) {
    let r = ReferenceBackend;
    let mut rng = rng(12);
    for &shape in &SHAPES {
        let mut p = random_matrix(&mut rng, shape.0, shape.1, -1.0, 1.0);
        let mut m = Matrix::zeros(shape.0, shape.1);
        let (mut pt, mut mt) = (b.upload(&p), b.upload(&m));
        for t in 1..=OPTIM_STEPS {
            let g = random_matrix(&mut rng, shape.0, shape.1, -1.0, 1.0);
            r.momentum_step(&mut p, &g, &mut m, 0.05, 0.9);
            b.momentum_step(&mut pt, &b.upload(&g), &mut mt, 0.05, 0.9);
            for (name, t_, want) in [("p", &pt, &p), ("m", &mt, &m)] {
                let ctx = format!("momentum_step {t} ({name}) on {}", shape_str(shape));
                assert_close(&ctx, &fetch(b, t_), want, ELEMENTWISE_RTOL, ABS_TOL);
            }
        }
    }
}

/// `plasticity_step_stacked` on stacks of 1 and 3 members (k-WTA-like relative activity, pruning
/// and scaling on, both signs, both changes): each member against the reference `plasticity_step`
/// on that member alone (weights within [`STEP_RTOL`], the mask exactly). (A default
/// implementation has the backend's own step's bits; the CPU population test holds the CPU to them.)
pub fn check_plasticity_step_stacked<B: Backend>(b: &B) {
    check_plasticity_step_stacked_by(b, |b, members, w, m, terms, step| {
        b.plasticity_step_stacked(members, w, m, terms, step)
    });
}

/// An implementation of `plasticity_step_stacked` on a backend `B`, for
/// [`check_plasticity_step_stacked_by`].
pub type StackedStep<B> = fn(
    &B,
    usize,
    &mut <B as crate::backend::TensorStore>::Tensor,
    &mut <B as crate::backend::TensorStore>::Tensor,
    &crate::backend::HebbianTerms<<B as crate::backend::TensorStore>::Tensor>,
    &crate::backend::PlasticityStep,
);

/// [`check_plasticity_step_stacked`] of an implementation `f` of `plasticity_step_stacked` on `b`.
pub fn check_plasticity_step_stacked_by<B: Backend>(b: &B, f: StackedStep<B>) {
    use crate::backend::{HebbianTerms, PlasticityOps, PlasticityStep, WeightChange};
    let r = ReferenceBackend;
    use crate::params::ScalingNorm;
    let mut rng = rng(23);
    let (rows, cols, batch) = (37, 130, 16);
    for members in [1usize, 3] {
        for (signed, change) in [(false, WeightChange::Multiplicative), (true, WeightChange::Additive { unit: 0.5 })] {
            let step = PlasticityStep {
                step: 0.3,
                norm: ScalingNorm::L2,
                signed,
                change,
                prune_below: Some(0.3),
                scale_to: Some(1.0),
            };
            let lo = if signed { -1.0 } else { 0.0 };
            let draw =
                |rng: &mut ChaCha8Rng, r: usize, c: usize, density: f64, lo: f32| -> Vec<Matrix> {
                    (0..members)
                        .map(|_| {
                            Matrix::from_fn(r, c, |_, _| {
                                if rng.random_bool(density) { rng.random_range(lo..1.0) } else { 0.0 }
                            })
                        })
                        .collect()
                };
            let weights = draw(&mut rng, rows, cols, 0.9, lo);
            let masks: Vec<Matrix> = weights
                .iter()
                .map(|w| Matrix::from_fn(rows, cols, |i, j| if w.get(i, j) == 0.0 { 0.0 } else { 1.0 }))
                .collect();
            let relative = draw(&mut rng, batch, rows, 0.05, 0.0);
            let pattern = draw(&mut rng, batch, cols, 1.0, 0.0);
            let wins = draw(&mut rng, rows, 1, 0.8, 0.0);
            let stack = |ms: &[Matrix]| {
                let (r, c) = ms[0].shape();
                b.upload(&Matrix::new(members * r, c, ms.iter().flat_map(|m| m.as_slice().to_vec()).collect()).unwrap())
            };
            let (mut w, mut m) = (stack(&weights), stack(&masks));
            let terms = HebbianTerms { relative: stack(&relative), pattern: stack(&pattern), wins: stack(&wins) };
            f(b, members, &mut w, &mut m, &terms, &step);
            let (w, m) = (fetch(b, &w), fetch(b, &m));
            for p in 0..members {
                let (mut wp, mut mp) = (weights[p].clone(), masks[p].clone());
                let one =
                    HebbianTerms { relative: relative[p].clone(), pattern: pattern[p].clone(), wins: wins[p].clone() };
                r.plasticity_step(&mut wp, &mut mp, &one, &step);
                let len = rows * cols;
                let member =
                    |t: &Matrix| Matrix::new(rows, cols, t.as_slice()[p * len..(p + 1) * len].to_vec()).unwrap();
                let ctx = format!("plasticity_step_stacked, member {p} of {members} ({step:?})");
                assert_close(&format!("{ctx}, weights"), &member(&w), &wp, STEP_RTOL, ABS_TOL);
                assert_exact(&format!("{ctx}, mask"), &member(&m), &mp);
            }
        }
    }
}

// ============================================================================================
// Fused plasticity step
// ============================================================================================

/// `plasticity_step_from_relative`: bit for bit the backend's own `plasticity_step` with
/// `wins = matmul(relative, true, ones)`, weights and mask, for tall sparse activity (a conv
/// layer's positions as rows, about 10 % non-zero, zero rows and zeros of both signs), dense
/// activity and a short batch, positive and signed layers.
pub fn check_plasticity_step_from_relative<B: Backend>(b: &B) {
    use crate::backend::{HebbianTerms, PlasticityStep, WeightChange};
    use crate::params::ScalingNorm;
    let mut rng = rng(51);
    for (batch, neurons, cols, density, signed) in
        [(1500, 96, 25, 0.1f64, false), (900, 40, 27, 0.1, true), (300, 20, 9, 0.9, false), (16, 50, 30, 0.05, true)]
    {
        let lo = if signed { -1.0 } else { 0.0 };
        let w = random_matrix(&mut rng, neurons, cols, lo, 1.0);
        let mask = Matrix::from_fn(neurons, cols, |_, _| 1.0);
        let relative = Matrix::from_fn(batch, neurons, |i, j| match (i % 7, j % 13) {
            (0, _) => 0.0,
            (_, 0) => -0.0,
            _ if rng.random_bool(density) => rng.random_range(0.0..1.0),
            _ => 0.0,
        });
        let pattern = random_matrix(&mut rng, batch, cols, -1.0, 1.0);
        let step = PlasticityStep {
            step: 0.01,
            norm: ScalingNorm::L2,
            signed,
            change: WeightChange::Multiplicative,
            prune_below: None,
            scale_to: Some(1.0),
        };
        let (mut w_got, mut m_got) = (b.upload(&w), b.upload(&mask));
        let (mut w_want, mut m_want) = (b.upload(&w), b.upload(&mask));
        let (rt, pt) = (b.upload(&relative), b.upload(&pattern));
        let wins = b.matmul(&rt, true, &b.full(batch, 1, 1.0), false);
        b.plasticity_step(
            &mut w_want,
            &mut m_want,
            &HebbianTerms { relative: rt.clone(), pattern: pt.clone(), wins },
            &step,
        );
        b.plasticity_step_from_relative(&mut w_got, &mut m_got, rt, pt, &step);
        let ctx =
            format!("plasticity_step_from_relative, {batch} rows of {neurons} (density {density}, signed {signed})");
        assert_bits(&format!("{ctx}, weights"), &fetch(b, &w_got), &fetch(b, &w_want));
        assert_bits(&format!("{ctx}, mask"), &fetch(b, &m_got), &fetch(b, &m_want));
    }
}

/// `plasticity_step` against the default (sparse pull, then the composed definition) on the
/// reference backend, over positive and mixed-sign layers with partly pruned masks, both norms, both
/// weight changes, with and without pruning and scaling, relative activity at k-WTA-like (≈ 5 %) and
/// dense (50 %) densities, three steps each (weights within [`STEP_RTOL`]; the mask exactly, since
/// pruning is a comparison).
pub fn check_plasticity_step<B: Backend>(b: &B) {
    use crate::backend::{HebbianTerms, PlasticityOps, PlasticityStep, WeightChange};
    use crate::params::ScalingNorm;
    let r = ReferenceBackend;
    let mut rng = rng(13);
    let shapes = [(1, 1), (1, 37), (37, 1), (7, 13), (130, 257), (300, 784)];
    let mut case = 0;
    for &(rows, cols) in &shapes {
        for signed in [false, true] {
            for norm in [ScalingNorm::L2, ScalingNorm::L1] {
                for change in [WeightChange::Multiplicative, WeightChange::Additive { unit: 0.5 }] {
                    for (prune, scale) in [(Some(0.3), Some(1.0)), (None, Some(2.0)), (Some(0.5), None), (None, None)] {
                        case += 1;
                        let density = if case % 2 == 0 { 0.05 } else { 0.5 };
                        let lo = if signed { -1.0 } else { 0.0 };
                        let mut mask =
                            Matrix::from_fn(rows, cols, |_, _| if rng.random_ratio(1, 10) { 0.0 } else { 1.0 });
                        let mut w = r.zip(&random_matrix(&mut rng, rows, cols, lo, 1.0), &mask, Binary::Mul);
                        let (mut wt, mut mt) = (b.upload(&w), b.upload(&mask));
                        let step =
                            PlasticityStep { step: 0.3, norm, signed, change, prune_below: prune, scale_to: scale };
                        for t in 1..=3 {
                            let batch = 16;
                            let relative = Matrix::from_fn(batch, rows, |_, _| {
                                if rng.random_bool(density) { rng.random_range(0.0..1.0) } else { 0.0 }
                            });
                            let pattern = random_matrix(&mut rng, batch, cols, 0.0, 1.0);
                            let mut wins = random_matrix(&mut rng, rows, 1, 0.0, 2.0);
                            sprinkle_zeros(&mut rng, &mut wins, 3);
                            let want_terms = HebbianTerms {
                                relative: relative.clone(),
                                pattern: pattern.clone(),
                                wins: wins.clone(),
                            };
                            let got_terms = HebbianTerms {
                                relative: b.upload(&relative),
                                pattern: b.upload(&pattern),
                                wins: b.upload(&wins),
                            };
                            r.plasticity_step(&mut w, &mut mask, &want_terms, &step);
                            b.plasticity_step(&mut wt, &mut mt, &got_terms, &step);
                            let ctx = format!(
                                "plasticity_step case {case} step {t} on {} (density {density}, {step:?})",
                                shape_str((rows, cols))
                            );
                            assert_close(&format!("{ctx}, weights"), &fetch(b, &wt), &w, STEP_RTOL, ABS_TOL);
                            assert_close(&format!("{ctx}, mask"), &fetch(b, &mt), &mask, 0.0, 0.0);
                        }
                    }
                }
            }
        }
    }
}

// ============================================================================================
// Rule-step and attack-step checks
// ============================================================================================
//
// Whole learning-rule steps and the attack's input gradient, run on `B` and on `ReferenceBackend`
// from the same parameters and data, compared after the fact.

/// Relative tolerance of whole-step checks: a few updates compound the per-op differences.
pub const STEP_RTOL: f32 = 1e-3;

fn step_data() -> (Matrix, Vec<usize>) {
    let mut rng = rng(900);
    (random_matrix(&mut rng, 16, 24, 0.0, 1.0), (0..16).map(|i| i % 3).collect())
}

/// Inputs of [`check_rule_steps`]: 16 samples of `inputs` values (the rule's
/// [`Rule::example_input_dim`](crate::rules::Rule::example_input_dim)) in 3 classes.
fn rule_step_data(inputs: usize) -> (Matrix, Vec<usize>) {
    let mut rng = rng(901);
    (random_matrix(&mut rng, 16, inputs, 0.0, 1.0), (0..16).map(|i| i % 3).collect())
}

fn assert_params_close(ctx: &str, got: &crate::Params, want: &crate::Params) {
    assert_eq!(got.tensors.len(), want.tensors.len(), "{ctx}: different tensor lists");
    for ((name, g), (_, w)) in got.tensors.iter().zip(&want.tensors) {
        assert_close(&format!("{ctx}, tensor {name}"), g, w, STEP_RTOL, 1e-5);
    }
}

/// Three steps of the `bio` rule (Hebbian, scaling, homeostasis, pruning, readout) agree with the reference.
pub fn check_bio_step<B: Backend>(b: &B) {
    use crate::{BioNet, BioParams, BioRule, Classifier, LearningRule};
    let params = BioParams {
        hidden: vec![20],
        active_fraction: 0.2,
        hebbian_rate: 0.05,
        consolidation_epochs: 0,
        ..Default::default()
    };
    let config = params.check().expect("valid parameters");
    let mut want = BioNet::init(&ReferenceBackend, config.clone(), 24, 3, 7);
    let mut got = BioNet::from_params(b, config.clone(), 24, 3, &want.to_params()).expect("same shapes");
    let (x, y) = step_data();
    let (mut rule_want, mut rule_got) = (BioRule::new(config.clone(), 1), BioRule::new(config, 1));
    let xb = b.upload(&x);
    for step in 0..3 {
        let r = LearningRule::<ReferenceBackend>::train_batch(&mut rule_want, &mut want, &x, &y).expect("finite");
        let g = LearningRule::<B>::train_batch(&mut rule_got, &mut got, &xb, &y).expect("finite");
        assert!(
            (r.loss - g.loss).abs() <= STEP_RTOL * r.loss.abs() + 1e-5,
            "bio step {step}: loss {} vs {}",
            g.loss,
            r.loss
        );
    }
    assert_params_close("bio rule, 3 steps", &got.to_params(), &want.to_params());
}

/// Three Adam steps of the backprop baseline agree with the reference.
pub fn check_bp_step<B: Backend>(b: &B) {
    use crate::{BackpropRule, BpNet, BpParams, Classifier, LearningRule};
    let config = BpParams { hidden: vec![20], ..Default::default() }.check().expect("valid parameters");
    let mut want = BpNet::init(&ReferenceBackend, config.clone(), 24, 3, 7);
    let mut got = BpNet::from_params(b, config.clone(), 24, 3, &want.to_params()).expect("same shapes");
    let (x, y) = step_data();
    let mut rule_want = BackpropRule::<ReferenceBackend>::new(config.clone());
    let mut rule_got = BackpropRule::<B>::new(config);
    let xb = b.upload(&x);
    for _ in 0..3 {
        rule_want.train_batch(&mut want, &x, &y).expect("finite");
        rule_got.train_batch(&mut got, &xb, &y).expect("finite");
    }
    assert_params_close("bp rule, 3 Adam steps", &got.to_params(), &want.to_params());
}

/// Two epochs of two steps each of every registered rule, at its default settings on one hidden
/// layer of 20 units, agree with the reference (losses and every tensor), starting from the same
/// weights and the same seed. A rule with phases (`kh`, `softhebb`: unsupervised, then readout;
/// `bio`: plastic, then consolidation) runs one epoch of each.
pub fn check_rule_steps<B: Backend>(b: &B) {
    for info in crate::rules::rules() {
        let name = info.name;
        let reference = crate::rules::dispatch(name, RuleSteps { b: &ReferenceBackend, init: None });
        let (init, want, want_losses) = reference.expect("registered");
        assert_ne!(init, want, "`{name}`: four steps changed nothing, so the comparison would prove nothing");
        let (_, got, got_losses) = crate::rules::dispatch(name, RuleSteps { b, init: Some(init) }).expect("registered");
        for (step, (g, w)) in got_losses.iter().zip(&want_losses).enumerate() {
            assert!((g - w).abs() <= STEP_RTOL * w.abs() + 1e-5, "`{name}` step {step}: loss {g} vs {w}");
        }
        assert_params_close(&format!("`{name}` rule, 2 epochs of 2 steps"), &got, &want);
    }
}

/// The steps of [`check_rule_steps`] for one rule on one backend: its initial parameters (from
/// `init`, or a fresh model), its parameters after the steps, and each step's loss.
struct RuleSteps<'a, B> {
    b: &'a B,
    init: Option<crate::Params>,
}

impl<B: Backend> crate::rules::RuleVisitor<B> for RuleSteps<'_, B> {
    type Output = (crate::Params, crate::Params, Vec<f32>);
    fn visit<R: crate::rules::Rule + crate::LearningRule<B>>(self) -> Self::Output {
        use crate::Classifier;
        let config = crate::rules::config_from_settings::<R>(&[20], &Default::default())
            .unwrap_or_else(|e| panic!("`{}`: defaults at width 20: {e}", R::NAME));
        let inputs = R::example_input_dim(&config);
        let mut rule = R::new(config, 1);
        let mut model = match &self.init {
            None => rule.init_model(self.b, inputs, 3, 7),
            Some(p) => rule.model_from_params(self.b, inputs, 3, p).expect("same shapes"),
        };
        let init = model.to_params();
        let (x, y) = rule_step_data(inputs);
        let xb = self.b.upload(&x);
        let mut losses = Vec::new();
        for epoch in 0..2 {
            rule.start_epoch(epoch, 2);
            for _ in 0..2 {
                let report = rule.train_batch(&mut model, &xb, &y).unwrap_or_else(|e| panic!("`{}`: {e}", R::NAME));
                losses.push(report.loss);
            }
        }
        (init, model.to_params(), losses)
    }
}

/// Relative error `‖g − g_fd‖ / ‖(g, g_fd)‖` between `grad` and central differences (step 1e-3) of
/// the scalar `f` at `x`: the one finite-difference checker of the workspace's gradient tests.
pub fn finite_difference_error(x: &Matrix, grad: &Matrix, f: impl Fn(&Matrix) -> f64) -> f32 {
    let h = 1e-3f32;
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for i in 0..x.rows() {
        for j in 0..x.cols() {
            let (mut plus, mut minus) = (x.clone(), x.clone());
            plus.set(i, j, x.get(i, j) + h);
            minus.set(i, j, x.get(i, j) - h);
            let fd = (f(&plus) - f(&minus)) / (2.0 * h as f64);
            let g = grad.get(i, j) as f64;
            num += (g - fd).powi(2);
            den += g.powi(2) + fd.powi(2);
        }
    }
    (num.sqrt() / den.sqrt().max(1e-12)) as f32
}

/// [`finite_difference_error`] of a model's input gradient of the summed cross-entropy.
pub fn input_gradient_error<M: crate::Classifier<ReferenceBackend>>(model: &M, x: &Matrix, labels: &[usize]) -> f32 {
    let (_, grad) = model.loss_and_input_gradient(x, labels);
    finite_difference_error(x, &grad, |m| model.loss_and_input_gradient(m, labels).0.iter().map(|&v| v as f64).sum())
}

/// The attack step's input gradient (both models) agrees with the reference.
pub fn check_attack_gradient<B: Backend>(b: &B) {
    use crate::{BioNet, BioParams, BpNet, BpParams, Classifier};
    let (x, y) = step_data();
    let xb = b.upload(&x);
    let bio = BioParams { hidden: vec![20], active_fraction: 0.2, ..Default::default() }.check().expect("valid");
    let want = BioNet::init(&ReferenceBackend, bio.clone(), 24, 3, 3);
    let got = BioNet::from_params(b, bio, 24, 3, &want.to_params()).expect("same shapes");
    let (lw, gw) = want.loss_and_input_gradient(&x, &y);
    let (lg, gg) = got.loss_and_input_gradient(&xb, &y);
    assert_close("bio input gradient", &b.download(&gg), &gw, STEP_RTOL, 1e-5);
    assert_close("bio losses", &Matrix::col_vector(lg), &Matrix::col_vector(lw), STEP_RTOL, 1e-5);
    let bp = BpParams { hidden: vec![20], ..Default::default() }.check().expect("valid");
    let want = BpNet::init(&ReferenceBackend, bp.clone(), 24, 3, 3);
    let got = BpNet::from_params(b, bp, 24, 3, &want.to_params()).expect("same shapes");
    let (_, gw) = want.loss_and_input_gradient(&x, &y);
    let (_, gg) = got.loss_and_input_gradient(&xb, &y);
    assert_close("bp input gradient", &b.download(&gg), &gw, STEP_RTOL, 1e-5);
}

// ============================================================================================
// Running the suite
// ============================================================================================

/// Runs every check against `b`, panicking at the first failure.
pub fn run_all<B: Backend>(b: &B) {
    check_upload_download(b);
    check_full(b);
    check_matmul(b);
    check_sparse_matmul(b);
    check_matmul_stacked(b);
    check_shape_contracts(b);
    check_map(b);
    check_zip(b);
    check_zip_assign(b);
    check_lincomb(b);
    check_reduce(b);
    check_reduce_stacked(b);
    check_row_kth_largest(b);
    check_softmax_rows(b);
    check_argmax_rows(b);
    check_adam_step(b);
    check_momentum_step(b);
    check_plasticity_step(b);
    check_plasticity_step_from_relative(b);
    check_plasticity_step_stacked(b);
    check_bio_step(b);
    check_bp_step(b);
    check_rule_steps(b);
    check_attack_gradient(b);
    check_unfold(b);
    check_fold(b);
    check_max_pool(b);
    check_max_pool_backward(b);
    check_reshape(b);
    check_kwta_rows(b);
    check_kwta_layer(b);
    check_relative_to_row_max(b);
    check_unit_l2_rows(b);
    check_fraction_positive(b);
    check_window_refusal(b);
}

/// Generates one `#[test]` per conformance check for the backend that `$make` builds.
///
/// `$make` is called once per test and returns `Option<B>`; `None` means "not available here" and
/// makes the test **fail** (see [`conformance::require_backend`](crate::conformance::require_backend)).
/// Attributes written before `$make` are put on every generated test, which is how a backend that
/// may be missing at run time opts out of default runs:
///
/// ```ignore
/// // Always available:
/// bio_core::conformance_tests!(|| Some(bio_cpu::CpuBackend::new()));
/// // Only on machines with a GPU: `cargo test` lists these as ignored;
/// // `cargo test -- --include-ignored` runs them, and fails if no GPU is found.
/// bio_core::conformance_tests!(#[ignore = "needs a CUDA GPU; run with --include-ignored"] || CudaBackend::new().ok());
/// ```
///
/// The tests are plain functions named after the checks (`matmul`, `zip`, `reduce`, ...) at the
/// invocation site; to instantiate the suite twice in one file, invoke it in two modules.
#[macro_export]
macro_rules! conformance_tests {
    // Collect the leading attributes one by one (a `meta` repetition before an `expr` is ambiguous).
    (@collect [$($attrs:tt)*] #[$attr:meta] $($rest:tt)*) => {
        $crate::conformance_tests!(@collect [$($attrs)* #[$attr]] $($rest)*);
    };
    (@collect $attrs:tt $make:expr $(,)?) => {
        $crate::conformance_tests!(@tests $attrs ($make)
            upload_download => check_upload_download,
            full => check_full,
            matmul => check_matmul,
            sparse_matmul => check_sparse_matmul,
            matmul_stacked => check_matmul_stacked,
            shape_contracts => check_shape_contracts,
            map => check_map,
            zip => check_zip,
            zip_assign => check_zip_assign,
            lincomb => check_lincomb,
            reduce => check_reduce,
            reduce_stacked => check_reduce_stacked,
            row_kth_largest => check_row_kth_largest,
            softmax_rows => check_softmax_rows,
            argmax_rows => check_argmax_rows,
            adam_step => check_adam_step,
            momentum_step => check_momentum_step,
            plasticity_step => check_plasticity_step,
            plasticity_step_from_relative => check_plasticity_step_from_relative,
            plasticity_step_stacked => check_plasticity_step_stacked,
            bio_step => check_bio_step,
            bp_step => check_bp_step,
            rule_steps => check_rule_steps,
            attack_gradient => check_attack_gradient,
            unfold => check_unfold,
            fold => check_fold,
            max_pool => check_max_pool,
            max_pool_backward => check_max_pool_backward,
            reshape => check_reshape,
            kwta_rows => check_kwta_rows,
            kwta_layer => check_kwta_layer,
            relative_to_row_max => check_relative_to_row_max,
            unit_l2_rows => check_unit_l2_rows,
            fraction_positive => check_fraction_positive,
            window_refusal => check_window_refusal
        );
    };
    (@tests $attrs:tt ($make:expr) $($name:ident => $check:ident),* $(,)?) => {
        $( $crate::conformance_tests!(@test $attrs ($make) $name $check); )*
    };
    (@test [$($attr:tt)*] ($make:expr) $name:ident $check:ident) => {
        #[test]
        $($attr)*
        fn $name() {
            let backend = $crate::conformance::require_backend(($make)(), stringify!($name));
            $crate::conformance::$check(&backend);
        }
    };
    ($($input:tt)*) => {
        $crate::conformance_tests!(@collect [] $($input)*);
    };
}

#[cfg(test)]
mod tests {
    //! The suite run against the reference itself, the reference checked against answers computed
    //! independently here, and the suite checked to catch one planted bug per check.

    use super::*;
    use crate::backend::{HebbianTerms, PlasticityOps, PlasticityStep, TensorStore, Window};

    mod reference_suite {
        crate::conformance_tests!(|| Some(crate::ReferenceBackend));
    }

    // ---- Independent answers ---------------------------------------------------------------

    #[test]
    fn reduce_matches_independent_loops() {
        let r = ReferenceBackend;
        let mut rng = rng(100);
        for (rows, cols) in [(1, 1), (3, 5), (17, 4), (1, 300)] {
            let x = random_matrix(&mut rng, rows, cols, -2.0, 2.0);
            let v = x.as_slice();
            let row_sum = |i: usize| (0..cols).map(|j| v[i * cols + j] as f64).sum::<f64>();
            let col_sum = |j: usize| (0..rows).map(|i| v[i * cols + j] as f64).sum::<f64>();
            let total: f64 = v.iter().map(|&x| x as f64).sum();
            let sorted = |mut xs: Vec<f32>| {
                xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
                (xs[0], xs[xs.len() - 1])
            };
            for i in 0..rows {
                let mean = r.reduce(&x, Dim::PerRow, Reduce::Mean).get(i, 0) as f64;
                assert!((mean - row_sum(i) / cols as f64).abs() < 1e-6, "row mean {i}");
                let sum = r.reduce(&x, Dim::PerRow, Reduce::Sum).get(i, 0) as f64;
                assert!((sum - row_sum(i)).abs() < 1e-5, "row sum {i}");
                let (lo, hi) = sorted(x.row(i).to_vec());
                assert_eq!(r.reduce(&x, Dim::PerRow, Reduce::Max).get(i, 0), hi);
                assert_eq!(r.reduce(&x, Dim::PerRow, Reduce::Min).get(i, 0), lo);
            }
            for j in 0..cols {
                let mean = r.reduce(&x, Dim::PerCol, Reduce::Mean).get(0, j) as f64;
                assert!((mean - col_sum(j) / rows as f64).abs() < 1e-6, "col mean {j}");
                let (lo, hi) = sorted((0..rows).map(|i| x.get(i, j)).collect());
                assert_eq!(r.reduce(&x, Dim::PerCol, Reduce::Max).get(0, j), hi);
                assert_eq!(r.reduce(&x, Dim::PerCol, Reduce::Min).get(0, j), lo);
            }
            let mean = r.reduce(&x, Dim::All, Reduce::Mean).get(0, 0) as f64;
            assert!((mean - total / v.len() as f64).abs() < 1e-6, "total mean");
            assert_eq!(r.reduce(&x, Dim::All, Reduce::Sum).shape(), (1, 1));
        }
    }

    #[test]
    fn kth_largest_matches_sorted_copy() {
        let r = ReferenceBackend;
        let mut rng = rng(101);
        for (rows, cols) in [(1, 1), (5, 9), (3, 40)] {
            for x in [
                random_matrix(&mut rng, rows, cols, -1.0, 1.0),
                coarse_matrix(&mut rng, rows, cols, &[0.0, 1.0, 1.0, 2.0]),
            ] {
                for k in 1..=cols {
                    let got = r.row_kth_largest(&x, k);
                    for i in 0..rows {
                        let mut ascending = x.row(i).to_vec();
                        ascending.sort_by(|a, b| a.partial_cmp(b).unwrap());
                        assert_eq!(got.get(i, 0), ascending[cols - k], "row {i}, k {k}");
                    }
                }
            }
        }
    }

    #[test]
    fn matmul_matches_triple_loop() {
        let r = ReferenceBackend;
        let mut rng = rng(102);
        let (m, k, n) = (4, 6, 3);
        let a = random_matrix(&mut rng, m, k, -1.0, 1.0); // m×k
        let b = random_matrix(&mut rng, k, n, -1.0, 1.0); // k×n
        let (at, bt) = (a.transpose(), b.transpose());
        let (av, bv) = (a.as_slice(), b.as_slice());
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let got = r.matmul(if ta { &at } else { &a }, ta, if tb { &bt } else { &b }, tb);
            assert_eq!(got.shape(), (m, n));
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = (0..k).map(|p| av[i * k + p] as f64 * bv[p * n + j] as f64).sum();
                    assert!((got.get(i, j) as f64 - want).abs() < 1e-6, "({i}, {j}) ta={ta} tb={tb}");
                }
            }
        }
    }

    #[test]
    fn zip_broadcast_matches_hand_indexing() {
        let r = ReferenceBackend;
        let mut rng = rng(103);
        let (rows, cols) = (4, 5);
        let a = random_matrix(&mut rng, rows, cols, -1.0, 1.0);
        let same = random_matrix(&mut rng, rows, cols, -1.0, 1.0);
        let per_row = random_matrix(&mut rng, rows, 1, -1.0, 1.0);
        let per_col = random_matrix(&mut rng, 1, cols, -1.0, 1.0);
        let scalar = random_matrix(&mut rng, 1, 1, -1.0, 1.0);
        for i in 0..rows {
            for j in 0..cols {
                let x = a.get(i, j);
                assert_eq!(r.zip(&a, &same, Binary::Sub).get(i, j), x - same.get(i, j));
                assert_eq!(r.zip(&a, &per_row, Binary::Sub).get(i, j), x - per_row.get(i, 0));
                assert_eq!(r.zip(&a, &per_col, Binary::Sub).get(i, j), x - per_col.get(0, j));
                assert_eq!(r.zip(&a, &scalar, Binary::Sub).get(i, j), x - scalar.get(0, 0));
            }
        }
    }

    #[test]
    fn softmax_rows_are_distributions_with_exp_ratios() {
        let r = ReferenceBackend;
        let x = Matrix::new(2, 3, vec![1.0, 2.0, 3.0, 1e4, -1e4, 1e4]).unwrap();
        let s = r.softmax_rows(&x);
        for i in 0..2 {
            assert!((s.row(i).iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
        assert!((s.get(0, 2) / s.get(0, 0) - 2f32.exp()).abs() < 1e-4);
        assert_eq!((s.get(1, 0), s.get(1, 1), s.get(1, 2)), (0.5, 0.0, 0.5));
    }

    #[test]
    fn argmax_takes_first_of_ties() {
        let x = Matrix::new(3, 3, vec![1.0, 3.0, 3.0, 2.0, 2.0, 2.0, 0.0, -1.0, 5.0]).unwrap();
        assert_eq!(ReferenceBackend.argmax_rows(&x), vec![1, 0, 2]);
    }

    #[test]
    fn optimizer_steps_match_formulas() {
        let r = ReferenceBackend;
        let (mut p, g, mut m, mut v) =
            (Matrix::full(1, 1, 1.0), Matrix::full(1, 1, 0.5), Matrix::full(1, 1, 0.2), Matrix::full(1, 1, 0.1));
        r.adam_step(&mut p, &g, &mut m, &mut v, AdamStep { lr_t: 0.1, beta1: 0.9, beta2: 0.99, eps: 1e-8 });
        let (m1, v1) = (0.9 * 0.2 + 0.1 * 0.5, 0.99 * 0.1 + 0.01 * 0.25);
        assert!((m.get(0, 0) - m1).abs() < 1e-7 && (v.get(0, 0) - v1).abs() < 1e-7);
        assert!((p.get(0, 0) - (1.0 - 0.1 * m1 / (v1.sqrt() + 1e-8))).abs() < 1e-6);
        let (mut p, mut m) = (Matrix::full(1, 1, 1.0), Matrix::full(1, 1, 0.2));
        r.momentum_step(&mut p, &g, &mut m, 0.1, 0.9);
        assert!((m.get(0, 0) - 0.68).abs() < 1e-7 && (p.get(0, 0) - 0.932).abs() < 1e-6);
    }

    // ---- The helpers ---------------------------------------------------------------------------

    #[test]
    #[should_panic(expected = "returned None")]
    fn missing_backend_fails() {
        require_backend::<ReferenceBackend>(None, "demo");
    }

    #[test]
    #[should_panic(expected = "conformance: demo: worst difference")]
    fn nan_against_a_number_fails() {
        let want = Matrix::full(1, 2, 1.0);
        assert_close("demo", &Matrix::row_vector(vec![1.0, f32::NAN]), &want, 1e-3, 1e-3);
    }

    #[test]
    #[should_panic(expected = "conformance: demo: worst difference")]
    fn finite_against_infinity_fails() {
        let want = Matrix::row_vector(vec![f32::INFINITY]);
        assert_close("demo", &Matrix::row_vector(vec![1e30]), &want, 1e-3, 1e-3);
    }

    #[test]
    fn matching_specials_pass() {
        let m = Matrix::row_vector(vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0]);
        assert_exact("demo", &m, &m.clone());
    }

    // ---- Planted bugs: each check must catch the one aimed at it ---------------------------

    /// One deliberate bug in one operation.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Fault {
        None,
        UploadFlushesSubnormals,
        FullLosesNegativeZero,
        MatmulPerturbed,
        AcceptsBadK,
        ExpSloppy,
        RowBroadcastUsesFirstRow,
        ZipAssignNoop,
        LincombSwapped,
        MeanAsSumPerCol,
        KthOffByOne,
        SoftmaxUnstable,
        ArgmaxLastOfTies,
        AdamVUsesAbsG,
        MomentumForgets,
        SparseDropsFirstColumn,
        StackedReusesFirstMember,
        PlasticityForgetsPruning,
        WindowUnchecked,
        FoldSumsInF64,
        PoolKeepsLastOfTies,
    }

    /// The reference backend with one fault planted.
    #[derive(Clone, Copy, Debug)]
    struct Faulty(Fault);

    impl TensorStore for Faulty {
        type Tensor = Matrix;
        fn name(&self) -> String {
            format!("faulty ({:?})", self.0)
        }
        fn upload(&self, m: &Matrix) -> Matrix {
            let mut m = m.clone();
            if self.0 == Fault::UploadFlushesSubnormals {
                m.as_mut_slice().iter_mut().filter(|v| v.is_subnormal()).for_each(|v| *v = 0.0);
            }
            m
        }
        fn download(&self, t: &Matrix) -> Matrix {
            t.clone()
        }
        fn shape(&self, t: &Matrix) -> (usize, usize) {
            t.shape()
        }
        fn full(&self, rows: usize, cols: usize, value: f32) -> Matrix {
            let value = if self.0 == Fault::FullLosesNegativeZero { value + 0.0 } else { value };
            Matrix::full(rows, cols, value)
        }
    }

    impl LinalgOps for Faulty {
        fn matmul(&self, a: &Matrix, ta: bool, b: &Matrix, tb: bool) -> Matrix {
            let mut c = ReferenceBackend.matmul(a, ta, b, tb);
            let k = if ta { a.rows() } else { a.cols() };
            if self.0 == Fault::MatmulPerturbed && k > 100 {
                c.as_mut_slice()[0] += 1e-2;
            }
            c
        }
        fn sparse_matmul(&self, a: &Matrix, ta: bool, b: &Matrix) -> Matrix {
            let mut a = if ta { a.transpose() } else { a.clone() };
            if self.0 == Fault::SparseDropsFirstColumn && a.cols() > 1 {
                (0..a.rows()).for_each(|i| a.set(i, 0, 0.0));
            }
            ReferenceBackend.matmul(&a, false, b, false)
        }
        fn matmul_stacked(&self, members: usize, a: &Matrix, ta: bool, b: &Matrix, tb: bool) -> Matrix {
            if self.0 != Fault::StackedReusesFirstMember {
                return ReferenceBackend.matmul_stacked(members, a, ta, b, tb);
            }
            // Every member multiplied by the first member of `b` (a batch stride of 0).
            let first = b.rows() / members.max(1);
            let b0 = Matrix::new(first, b.cols(), b.as_slice()[..first * b.cols()].to_vec()).unwrap();
            let b_all = Matrix::from_fn(b.rows(), b.cols(), |i, j| b0.get(i % first.max(1), j));
            ReferenceBackend.matmul_stacked(members, a, ta, &b_all, tb)
        }
    }

    /// The input position `(y, x)` of window entry `(i, j)` at output `(oy, ox)`, or `None` in the
    /// padding (written again here, so that a planted bug does not borrow the definition's code).
    fn window_source(g: &Window, oy: usize, ox: usize, i: usize, j: usize) -> Option<(usize, usize)> {
        let y = (oy * g.stride + i).checked_sub(g.padding)?;
        let x = (ox * g.stride + j).checked_sub(g.padding)?;
        (y < g.height && x < g.width).then_some((y, x))
    }

    /// Each output entry of max pooling `x` (`(n·positions)×C` in order) as the index in `x` of
    /// its window's **last** maximum (`>=`): the tie-break bug.
    fn last_maxima(g: &Window, x: &Matrix) -> Vec<usize> {
        let (hw, c, v) = (g.height * g.width, g.channels, x.as_slice());
        let mut out = Vec::new();
        for n in 0..g.batch_of(x.len()) {
            for (oy, ox) in (0..g.out_height()).flat_map(|oy| (0..g.out_width()).map(move |ox| (oy, ox))) {
                for ch in 0..c {
                    let mut best: Option<usize> = None;
                    for (i, j) in (0..g.kernel).flat_map(|i| (0..g.kernel).map(move |j| (i, j))) {
                        if let Some((y, xx)) = window_source(g, oy, ox, i, j) {
                            let idx = (n * hw + y * g.width + xx) * c + ch;
                            if best.is_none_or(|b| v[idx] >= v[b]) {
                                best = Some(idx);
                            }
                        }
                    }
                    out.push(best.expect("a window that fits holds a map position"));
                }
            }
        }
        out
    }

    impl crate::backend::ConvOps for Faulty {
        fn unfold(&self, x: &Matrix, g: &Window) -> Matrix {
            if self.0 == Fault::WindowUnchecked && g.check().is_err() {
                return Matrix::zeros(1, 1);
            }
            ReferenceBackend.unfold(x, g)
        }
        fn fold(&self, cols: &Matrix, g: &Window) -> Matrix {
            if self.0 != Fault::FoldSumsInF64 {
                return ReferenceBackend.fold(cols, g);
            }
            let (c, k, len) = (g.channels, g.kernel, g.patch_len());
            let batch = cols.len() / (g.positions() * len);
            let mut acc = vec![0.0f64; batch * g.image_len()];
            for (row, patch) in cols.as_slice().chunks(len).enumerate() {
                let (n, o) = (row / g.positions(), row % g.positions());
                let (oy, ox) = (o / g.out_width(), o % g.out_width());
                for (i, j) in (0..k).flat_map(|i| (0..k).map(move |j| (i, j))) {
                    if let Some((y, x)) = window_source(g, oy, ox, i, j) {
                        for ch in 0..c {
                            acc[n * g.image_len() + (y * g.width + x) * c + ch] +=
                                f64::from(patch[(i * k + j) * c + ch]);
                        }
                    }
                }
            }
            Matrix::new(batch, g.image_len(), acc.into_iter().map(|v| v as f32).collect()).unwrap()
        }
        fn max_pool(&self, x: &Matrix, g: &Window) -> Matrix {
            if self.0 != Fault::PoolKeepsLastOfTies {
                return ReferenceBackend.max_pool(x, g);
            }
            let values = last_maxima(g, x).into_iter().map(|i| x.as_slice()[i]).collect::<Vec<_>>();
            Matrix::new(values.len() / g.channels, g.channels, values).unwrap()
        }
        fn max_pool_backward(&self, x: &Matrix, g: &Window, grad: &Matrix) -> Matrix {
            if self.0 != Fault::PoolKeepsLastOfTies {
                return ReferenceBackend.max_pool_backward(x, g, grad);
            }
            let mut out = Matrix::zeros(x.len() / g.channels, g.channels);
            for (i, v) in last_maxima(g, x).into_iter().zip(grad.as_slice()) {
                out.as_mut_slice()[i] += v;
            }
            out
        }
    }

    impl PlasticityOps for Faulty {
        fn plasticity_step(&self, w: &mut Matrix, mask: &mut Matrix, terms: &HebbianTerms<Matrix>, s: &PlasticityStep) {
            let mut s = *s;
            if self.0 == Fault::PlasticityForgetsPruning {
                s.prune_below = None;
            }
            let pull = self.sparse_matmul(&terms.relative, true, &terms.pattern);
            crate::backend::composed_plasticity_step(self, w, mask, &pull, &terms.wins, &s);
        }
    }

    impl ElementwiseOps for Faulty {
        fn map(&self, a: &Matrix, op: Unary) -> Matrix {
            let mut out = ReferenceBackend.map(a, op);
            if self.0 == Fault::ExpSloppy && op == Unary::Exp {
                out.as_mut_slice().iter_mut().for_each(|v| *v *= 1.0 + 1e-4);
            }
            out
        }
        fn zip(&self, a: &Matrix, b: &Matrix, op: Binary) -> Matrix {
            if self.0 == Fault::RowBroadcastUsesFirstRow && b.cols() == 1 && b.rows() > 1 && a.cols() > 1 {
                return ReferenceBackend.zip(a, &Matrix::full(1, 1, b.get(0, 0)), op);
            }
            ReferenceBackend.zip(a, b, op)
        }
        fn zip_assign(&self, a: &mut Matrix, b: &Matrix, op: Binary) {
            let out = ReferenceBackend.zip(a, b, op);
            if self.0 != Fault::ZipAssignNoop {
                *a = out;
            }
        }
        fn lincomb(&self, alpha: f32, a: &Matrix, beta: f32, b: &Matrix) -> Matrix {
            if self.0 == Fault::LincombSwapped {
                return ReferenceBackend.lincomb(alpha, b, beta, a);
            }
            ReferenceBackend.lincomb(alpha, a, beta, b)
        }
    }

    impl ReduceOps for Faulty {
        fn reduce(&self, a: &Matrix, dim: Dim, op: Reduce) -> Matrix {
            if self.0 == Fault::MeanAsSumPerCol && dim == Dim::PerCol && op == Reduce::Mean {
                return ReferenceBackend.reduce(a, dim, Reduce::Sum);
            }
            ReferenceBackend.reduce(a, dim, op)
        }
    }

    impl SelectOps for Faulty {
        fn row_kth_largest(&self, a: &Matrix, k: usize) -> Matrix {
            match self.0 {
                Fault::AcceptsBadK => ReferenceBackend.row_kth_largest(a, k.clamp(1, a.cols())),
                Fault::KthOffByOne if k < a.cols() => ReferenceBackend.row_kth_largest(a, k + 1),
                _ => ReferenceBackend.row_kth_largest(a, k),
            }
        }
        fn softmax_rows(&self, a: &Matrix) -> Matrix {
            if self.0 == Fault::SoftmaxUnstable {
                let e = ReferenceBackend.map(a, Unary::Exp);
                let sums = ReferenceBackend.reduce(&e, Dim::PerRow, Reduce::Sum);
                return ReferenceBackend.zip(&e, &sums, Binary::Div);
            }
            ReferenceBackend.softmax_rows(a)
        }
        fn argmax_rows(&self, a: &Matrix) -> Vec<usize> {
            if self.0 == Fault::ArgmaxLastOfTies {
                return (0..a.rows())
                    .map(|i| {
                        let row = a.row(i);
                        (0..row.len()).fold(0, |best, j| if row[j] >= row[best] { j } else { best })
                    })
                    .collect();
            }
            ReferenceBackend.argmax_rows(a)
        }
    }

    impl OptimOps for Faulty {
        fn adam_step(&self, p: &mut Matrix, g: &Matrix, m: &mut Matrix, v: &mut Matrix, s: AdamStep) {
            if self.0 == Fault::AdamVUsesAbsG {
                let v_before = v.clone();
                ReferenceBackend.adam_step(p, g, m, v, s);
                *v = ReferenceBackend.lincomb(s.beta2, &v_before, 1.0 - s.beta2, &ReferenceBackend.map(g, Unary::Abs));
                return;
            }
            ReferenceBackend.adam_step(p, g, m, v, s);
        }
        fn momentum_step(&self, p: &mut Matrix, g: &Matrix, m: &mut Matrix, lr: f32, momentum: f32) {
            let momentum = if self.0 == Fault::MomentumForgets { 0.0 } else { momentum };
            ReferenceBackend.momentum_step(p, g, m, lr, momentum);
        }
    }

    #[test]
    fn faultless_wrapper_passes_everything() {
        run_all(&Faulty(Fault::None));
    }

    macro_rules! catches {
        ($($test:ident: $fault:ident by $check:ident expecting $msg:literal;)*) => {$(
            #[test]
            #[should_panic(expected = $msg)]
            fn $test() {
                $check(&Faulty(Fault::$fault));
            }
        )*};
    }

    catches! {
        catches_upload: UploadFlushesSubnormals by check_upload_download expecting "conformance: upload/download";
        catches_full: FullLosesNegativeZero by check_full expecting "conformance: full(-0)";
        catches_matmul: MatmulPerturbed by check_matmul expecting "conformance: matmul";
        catches_contracts: AcceptsBadK by check_shape_contracts expecting "conformance: row_kth_largest k=0";
        catches_map: ExpSloppy by check_map expecting "conformance: map Exp";
        catches_zip: RowBroadcastUsesFirstRow by check_zip expecting "(rows×1)";
        catches_zip_assign: ZipAssignNoop by check_zip_assign expecting "conformance: zip_assign";
        catches_lincomb: LincombSwapped by check_lincomb expecting "conformance: lincomb";
        catches_reduce: MeanAsSumPerCol by check_reduce expecting "conformance: reduce Mean PerCol";
        catches_kth: KthOffByOne by check_row_kth_largest expecting "conformance: row_kth_largest";
        catches_softmax: SoftmaxUnstable by check_softmax_rows expecting "with logits ±1e4: non-finite";
        catches_argmax: ArgmaxLastOfTies by check_argmax_rows expecting "conformance: argmax_rows";
        catches_adam: AdamVUsesAbsG by check_adam_step expecting "(v)";
        catches_momentum: MomentumForgets by check_momentum_step expecting "conformance: momentum_step 2";
        catches_sparse: SparseDropsFirstColumn by check_sparse_matmul expecting "conformance: sparse_matmul";
        catches_stacked: StackedReusesFirstMember by check_matmul_stacked expecting "conformance: matmul_stacked, member 1 of 2";
        catches_plasticity: PlasticityForgetsPruning by check_plasticity_step expecting "conformance: plasticity_step";
        catches_window: WindowUnchecked by check_window_refusal expecting "conformance: window_refusal: unfold accepted";
        catches_fold_order: FoldSumsInF64 by check_fold expecting "conformance: fold";
        catches_pool_ties: PoolKeepsLastOfTies by check_max_pool expecting "conformance: max_pool";
        catches_pool_gradient_ties: PoolKeepsLastOfTies by check_max_pool_backward expecting "conformance: max_pool_backward";
    }
}
