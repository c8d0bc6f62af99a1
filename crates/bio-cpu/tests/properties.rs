//! Property tests of `CpuBackend`: `row_kth_largest` against a sort, and broadcasting `zip` /
//! `zip_assign` against explicit indexing, on shapes that reach the parallel paths.

use bio_core::{Binary, ElementwiseOps, Matrix, SelectOps, TensorStore};
use bio_cpu::CpuBackend;
use proptest::prelude::*;

/// A matrix of up to `max_rows × max_cols` whose entries come from `values`.
fn matrix(
    max_rows: usize,
    max_cols: usize,
    values: impl Strategy<Value = f32> + Clone,
) -> impl Strategy<Value = Matrix> {
    (1..=max_rows, 1..=max_cols).prop_flat_map(move |(r, c)| {
        proptest::collection::vec(values.clone(), r * c).prop_map(move |v| Matrix::new(r, c, v).unwrap())
    })
}

/// Finite values, small integers (ties), and every special value including NaN and `-0.0`.
fn entry() -> impl Strategy<Value = f32> + Clone {
    prop_oneof![
        4 => -1e3f32..1e3,
        4 => (-3i32..=3).prop_map(|v| v as f32),
        1 => proptest::num::f32::ANY,
    ]
}

/// The `k`-th largest of `row` by sorting a copy in descending total order.
fn kth_by_sort(row: &[f32], k: usize) -> f32 {
    let mut sorted = row.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    sorted[k - 1]
}

const BINARY: [Binary; 7] =
    [Binary::Add, Binary::Sub, Binary::Mul, Binary::Div, Binary::Max, Binary::Min, Binary::Greater];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn kth_largest_matches_sort(m in matrix(40, 1200, entry()), k_frac in 0.0f64..1.0) {
        let cpu = CpuBackend::new();
        let k = 1 + ((m.cols() - 1) as f64 * k_frac).round() as usize;
        let got = cpu.download(&cpu.row_kth_largest(&cpu.upload(&m), k));
        prop_assert_eq!(got.shape(), (m.rows(), 1));
        for i in 0..m.rows() {
            let want = kth_by_sort(m.row(i), k);
            prop_assert_eq!(got.get(i, 0).to_bits(), want.to_bits(), "row {} k {}", i, k);
        }
    }

    #[test]
    fn broadcasting_matches_indexing(
        a in matrix(180, 260, -10.0f32..10.0),
        form in 0usize..4,
        op in 0usize..BINARY.len(),
        seed in proptest::collection::vec(0.5f32..4.0, 260),
    ) {
        let cpu = CpuBackend::new();
        let op = BINARY[op];
        let (r, c) = a.shape();
        // b: same shape, one value per row, one per column, or one value.
        let (br, bc) = [(r, c), (r, 1), (1, c), (1, 1)][form];
        let b = Matrix::from_fn(br, bc, |i, j| seed[(i * 31 + j * 7) % seed.len()] - 2.0 * (((i + j) % 2) as f32));
        let b_at = |i: usize, j: usize| b.get(if br == 1 { 0 } else { i }, if bc == 1 { 0 } else { j });
        let (at, bt) = (cpu.upload(&a), cpu.upload(&b));
        let zipped = cpu.download(&cpu.zip(&at, &bt, op));
        let mut assigned = at.clone();
        cpu.zip_assign(&mut assigned, &bt, op);
        let assigned = cpu.download(&assigned);
        for i in 0..r {
            for j in 0..c {
                let want = op.apply(a.get(i, j), b_at(i, j));
                prop_assert_eq!(zipped.get(i, j).to_bits(), want.to_bits(), "zip {:?} at ({}, {})", op, i, j);
                prop_assert_eq!(assigned.get(i, j).to_bits(), want.to_bits(), "zip_assign {:?} at ({}, {})", op, i, j);
            }
        }
    }
}

#[test]
fn kth_largest_handles_nan_rows() {
    let cpu = CpuBackend::new();
    let m = Matrix::new(1, 4, vec![1.0, f32::NAN, -0.0, 0.0]).unwrap();
    let t = cpu.upload(&m);
    let got: Vec<f32> = (1..=4).map(|k| cpu.download(&cpu.row_kth_largest(&t, k)).get(0, 0)).collect();
    assert!(got[0].is_nan());
    assert_eq!(got[1..].iter().map(|v| v.to_bits()).collect::<Vec<_>>(), [1.0f32, 0.0, -0.0].map(f32::to_bits));
}

#[test]
fn name_and_threads() {
    let cpu = CpuBackend::with_threads(2).unwrap();
    assert_eq!(cpu.name(), "cpu (2 threads)");
    assert_eq!(CpuBackend::with_threads(1).unwrap().name(), "cpu (1 thread)");
    assert!(CpuBackend::new().num_threads() >= 1);
}

#[test]
fn outputs_are_row_major_even_for_double_transpose() {
    use bio_core::{LinalgOps, ReferenceBackend, Unary};
    let cpu = CpuBackend::new();
    let (a, b) = (Matrix::from_fn(3, 2, |i, j| (i * 2 + j) as f32), Matrix::from_fn(4, 3, |i, j| i as f32 - j as f32));
    let c = cpu.matmul(&cpu.upload(&a), true, &cpu.upload(&b), true); // aᵀ·bᵀ: 2×4
    assert!(c.is_standard_layout());
    assert_eq!(cpu.download(&c), ReferenceBackend.matmul(&a, true, &b, true));
    // A column-major input (a caller's own ndarray) still gives row-major, correct results.
    let f = cpu.upload(&a).reversed_axes(); // 2×3, column-major
    let want = a.transpose();
    assert_eq!(cpu.download(&f), want);
    let mapped = cpu.map(&f, Unary::Scale(2.0));
    assert!(mapped.is_standard_layout());
    assert_eq!(cpu.download(&mapped), ReferenceBackend.map(&want, Unary::Scale(2.0)));
    assert_eq!(cpu.download(&cpu.softmax_rows(&f)), ReferenceBackend.softmax_rows(&want));
}
