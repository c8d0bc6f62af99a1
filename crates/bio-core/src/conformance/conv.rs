//! Conformance checks of the patch-extraction family ([`ConvOps`]): each operation against the
//! host definition (the trait's defaults, run by [`ReferenceBackend`]) over geometries with and
//! without padding, strides above 1, one and several channels, and a batch large enough for
//! parallel code paths.

use super::{
    ABS_TOL, ELEMENTWISE_RTOL, REDUCE_RTOL, SHAPES, assert_close, assert_exact, coarse_matrix, fetch, random_matrix,
    rng, shape_str,
};
use crate::backend::{
    Backend, ConvOps, ReferenceBackend, Window, composed_fraction_positive, composed_kwta_rows,
    composed_relative_to_row_max, composed_unit_l2_rows,
};
use crate::tensor::Matrix;

/// `(batch, window)` pairs every check runs on.
fn geometries() -> Vec<(usize, Window)> {
    let w =
        |height, width, channels, kernel, stride, padding| Window { height, width, channels, kernel, stride, padding };
    vec![
        (1, w(1, 1, 1, 1, 1, 0)),
        (3, w(5, 4, 3, 3, 1, 1)),
        (2, w(7, 6, 2, 4, 2, 1)),
        (2, w(9, 9, 1, 3, 3, 0)),
        (40, w(28, 28, 1, 5, 1, 2)),
        (6, w(14, 14, 8, 4, 2, 1)),
    ]
}

/// `unfold` equals the definition exactly (it only copies), as a `(n·positions)×(k·k·C)` tensor,
/// whatever the shape of the input tensor holding the batch.
pub fn check_unfold<B: Backend>(b: &B) {
    let r = ReferenceBackend;
    let mut rng = rng(41);
    for (batch, g) in geometries() {
        let x = random_matrix(&mut rng, batch, g.image_len(), -1.0, 1.0);
        let want = r.unfold(&x, &g);
        let got = fetch(b, &b.unfold(&b.upload(&x), &g));
        assert_exact(&format!("unfold {g:?} of a {batch}-batch"), &got, &want);
        let positions = b.reshape(&b.upload(&x), batch * g.height * g.width, g.channels);
        assert_exact(&format!("unfold {g:?} of a position-rows batch"), &fetch(b, &b.unfold(&positions, &g)), &want);
    }
}

/// `fold` (col2im) against the definition; sums of overlapping windows may be ordered differently.
pub fn check_fold<B: Backend>(b: &B) {
    let r = ReferenceBackend;
    let mut rng = rng(42);
    for (batch, g) in geometries() {
        let cols = random_matrix(&mut rng, batch * g.positions(), g.patch_len(), -1.0, 1.0);
        let want = r.fold(&cols, &g);
        let got = fetch(b, &b.fold(&b.upload(&cols), &g));
        assert_close(
            &format!("fold {g:?} of a {batch}-batch"),
            &got,
            &want,
            ELEMENTWISE_RTOL,
            ABS_TOL * g.patch_len() as f32,
        );
    }
}

/// `max_pool` equals the definition exactly.
pub fn check_max_pool<B: Backend>(b: &B) {
    let r = ReferenceBackend;
    let mut rng = rng(43);
    for (batch, g) in geometries() {
        let x = random_matrix(&mut rng, batch * g.height * g.width, g.channels, -1.0, 1.0);
        let got = fetch(b, &b.max_pool(&b.upload(&x), &g));
        assert_exact(&format!("max_pool {g:?} of a {batch}-batch"), &got, &r.max_pool(&x, &g));
    }
}

/// `max_pool_backward` against the definition: each gradient routed to its window's first
/// maximum (ties included: a quarter of the inputs are equal), summed over overlapping windows.
pub fn check_max_pool_backward<B: Backend>(b: &B) {
    let r = ReferenceBackend;
    let mut rng = rng(44);
    for (batch, g) in geometries() {
        let mut x = random_matrix(&mut rng, batch * g.height * g.width, g.channels, -1.0, 1.0);
        x.as_mut_slice().iter_mut().step_by(4).for_each(|v| *v = 0.5);
        let grad = random_matrix(&mut rng, batch * g.positions(), g.channels, -1.0, 1.0);
        let want = r.max_pool_backward(&x, &g, &grad);
        let got = fetch(b, &b.max_pool_backward(&b.upload(&x), &g, &b.upload(&grad)));
        assert_close(
            &format!("max_pool_backward {g:?} of a {batch}-batch"),
            &got,
            &want,
            ELEMENTWISE_RTOL,
            ABS_TOL * 16.0,
        );
    }
}

/// `reshape` keeps every entry in row-major order.
pub fn check_reshape<B: Backend>(b: &B) {
    let mut rng = rng(45);
    let x = random_matrix(&mut rng, 6, 20, -1.0, 1.0);
    for (rows, cols) in [(120, 1), (1, 120), (12, 10), (6, 20)] {
        let got = fetch(b, &b.reshape(&b.upload(&x), rows, cols));
        let want = crate::tensor::Matrix::new(rows, cols, x.as_slice().to_vec()).expect("same count");
        assert_exact(&format!("reshape 6×20 → {rows}×{cols}"), &got, &want);
    }
}

/// Bit for bit equality (a fused operation against the same backend's composed chain: `-0.0` and
/// `0.0`, or two NaNs, are told apart).
fn assert_bits(ctx: &str, got: &Matrix, want: &Matrix) {
    assert_eq!(got.shape(), want.shape(), "{ctx}: shape");
    for (i, (g, w)) in got.as_slice().iter().zip(want.as_slice()).enumerate() {
        assert_eq!(g.to_bits(), w.to_bits(), "{ctx}: entry {i} is {g:e}, the composed chain gives {w:e}");
    }
}

/// The inputs of the per-position checks: every shape of [`SHAPES`] and a conv layer's
/// `positions×channels` shape, continuous, with ties, and with rows of zeros (the guard's case)
/// and of negative values.
fn per_position_inputs(seed: u64) -> Vec<(String, Matrix)> {
    let mut rng = rng(seed);
    let mut out = Vec::new();
    for shape in SHAPES.iter().copied().chain([(3136, 96)]) {
        let (rows, cols) = shape;
        out.push((shape_str(shape), random_matrix(&mut rng, rows, cols, -2.0, 2.0)));
        let mut ties = coarse_matrix(&mut rng, rows, cols, &[-1.0, 0.0, 0.0, 0.25, 0.25, 3.0]);
        for i in (0..rows).step_by(5) {
            let fill = if i % 2 == 0 { 0.0 } else { -0.5 };
            ties.row_mut(i).fill(fill);
        }
        out.push((format!("{} with ties and flat rows", shape_str(shape)), ties));
    }
    out
}

/// `kwta_rows` equals the backend's own chain bit for bit and the reference exactly, for `k` = 1,
/// the middle and `cols`.
pub fn check_kwta_rows<B: Backend>(b: &B) {
    let r = ReferenceBackend;
    for (name, x) in per_position_inputs(46) {
        let cols = x.cols();
        let xt = b.upload(&x);
        let mut ks = vec![1, cols.div_ceil(2), cols];
        ks.dedup();
        for k in ks {
            let ctx = format!("kwta_rows k={k} on {name}");
            let (theta, y) = b.kwta_rows(&xt, k);
            let (theta_c, y_c) = composed_kwta_rows(b, &xt, k);
            assert_bits(&format!("{ctx} (threshold)"), &fetch(b, &theta), &fetch(b, &theta_c));
            assert_bits(&format!("{ctx} (activity)"), &fetch(b, &y), &fetch(b, &y_c));
            let (theta_r, y_r) = r.kwta_rows(&x, k);
            assert_exact(&format!("{ctx} (threshold, reference)"), &fetch(b, &theta), &theta_r);
            assert_exact(&format!("{ctx} (activity, reference)"), &fetch(b, &y), &y_r);
        }
    }
}

/// `relative_to_row_max` on activities (non-negative, some rows all zero) and on signed rows:
/// bit for bit the backend's own chain, exactly the reference (a maximum and one division).
pub fn check_relative_to_row_max<B: Backend>(b: &B) {
    let r = ReferenceBackend;
    for (name, x) in per_position_inputs(47) {
        let relu = Matrix::from_fn(x.rows(), x.cols(), |i, j| x.get(i, j).max(0.0));
        for (what, x) in [("activity", relu), ("signed", x)] {
            let ctx = format!("relative_to_row_max of a {what} {name}");
            let xt = b.upload(&x);
            let got = fetch(b, &b.relative_to_row_max(&xt));
            assert_bits(&ctx, &got, &fetch(b, &composed_relative_to_row_max(b, &xt)));
            assert_exact(&format!("{ctx} (reference)"), &got, &r.relative_to_row_max(&x));
        }
    }
}

/// `unit_l2_rows`: bit for bit the backend's own chain; against the reference within the
/// tolerance of a sum (the norm) followed by one division.
pub fn check_unit_l2_rows<B: Backend>(b: &B) {
    let r = ReferenceBackend;
    for (name, x) in per_position_inputs(48) {
        let ctx = format!("unit_l2_rows of {name}");
        let xt = b.upload(&x);
        let got = fetch(b, &b.unit_l2_rows(&xt));
        assert_bits(&ctx, &got, &fetch(b, &composed_unit_l2_rows(b, &xt)));
        assert_close(&format!("{ctx} (reference)"), &got, &r.unit_l2_rows(&x), REDUCE_RTOL, ABS_TOL);
    }
}

/// `fraction_positive` (NaN, zeros of both signs and negative values count as inactive): bit for
/// bit the backend's own chain and the reference.
pub fn check_fraction_positive<B: Backend>(b: &B) {
    let r = ReferenceBackend;
    for (name, mut x) in per_position_inputs(49) {
        x.as_mut_slice().iter_mut().step_by(7).for_each(|v| *v = f32::NAN);
        x.as_mut_slice().iter_mut().skip(3).step_by(11).for_each(|v| *v = -0.0);
        let ctx = format!("fraction_positive of {name}");
        let xt = b.upload(&x);
        let got = b.fraction_positive(&xt);
        assert_eq!(got.to_bits(), composed_fraction_positive(b, &xt).to_bits(), "{ctx}: {got} vs the composed chain");
        assert_eq!(got.to_bits(), r.fraction_positive(&x).to_bits(), "{ctx}: {got} vs the reference");
    }
}
