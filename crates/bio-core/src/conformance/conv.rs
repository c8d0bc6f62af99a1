//! Conformance checks of the patch-extraction family ([`ConvOps`]): each operation against the
//! host definition (the trait's defaults, run by [`ReferenceBackend`]) over geometries with and
//! without padding, strides above 1, one and several channels, and a batch large enough for
//! parallel code paths.

use super::{ABS_TOL, ELEMENTWISE_RTOL, assert_close, assert_exact, fetch, random_matrix, rng};
use crate::backend::{Backend, ConvOps, ReferenceBackend, Window};

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
