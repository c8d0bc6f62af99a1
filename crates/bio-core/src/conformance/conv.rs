//! Conformance checks of the patch-extraction family ([`ConvOps`]): each operation against the
//! host definition (the trait's defaults, run by [`ReferenceBackend`]) over geometries with and
//! without padding, strides above 1 (and above the kernel), one and several channels, non-square
//! maps, and a batch large enough for parallel code paths. The four window operations are exact
//! (copies, the routing of values, sums in the definition's fixed order), so they are held to the
//! definition bit for bit ([`assert_bits`]); a window that does not fit is refused by every
//! backend with the same message ([`check_window_refusal`]).

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::{
    ABS_TOL, REDUCE_RTOL, SHAPES, assert_bits, assert_close, assert_exact, coarse_matrix, fetch, random_matrix, rng,
    shape_str,
};
use crate::backend::{
    Backend, ConvOps, KwtaSpec, ReferenceBackend, Window, composed_fraction_positive, composed_kwta_layer,
    composed_kwta_rows, composed_relative_to_row_max, composed_unit_l2_rows,
};
use crate::tensor::Matrix;

/// `(batch, window)` pairs every check runs on: the conv front's shapes (`28×28×1` with a 5×5
/// kernel, `14×14×8` pooled 4:2:1) and the windows of bio-cuda's kernel emulation
/// (`emulation/test.cpp`): kernel sides 1 to 5, strides 1 to 3 (also above the kernel, which
/// leaves pixels no window reads), padding 0 to 2, non-square maps, 1 to 8 channels.
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
        (1, w(8, 8, 3, 4, 2, 1)),
        (3, w(7, 5, 2, 3, 3, 2)),
        (2, w(5, 6, 4, 2, 1, 0)),
        (1, w(6, 9, 2, 5, 2, 2)),
        (3, w(4, 7, 1, 1, 2, 0)),
        (2, w(9, 7, 2, 2, 3, 0)),
        (1, w(3, 11, 3, 5, 1, 2)),
        (3, w(10, 3, 1, 3, 2, 1)),
    ]
}

/// The map position `y·W + x` where the first window (in output order) that holds at least two
/// map positions starts; `None` when every window holds one (a 1×1 kernel: no ties possible).
fn first_tied_window_start(g: &Window) -> Option<usize> {
    // The window's rows (columns) inside the map, as `max_pool_image` spans them.
    let span = |o: usize, size: usize| {
        let first = o * g.stride;
        (first.saturating_sub(g.padding), (first + g.kernel).saturating_sub(g.padding).min(size))
    };
    (0..g.out_height()).flat_map(|oy| (0..g.out_width()).map(move |ox| (oy, ox))).find_map(|(oy, ox)| {
        let ((y0, y1), (x0, x1)) = (span(oy, g.height), span(ox, g.width));
        ((y1 - y0) * (x1 - x0) >= 2).then_some(y0 * g.width + x0)
    })
}

/// The pooling inputs of a `batch` of maps of `g` (`(n·H·W)×C`), each named: continuous values;
/// values drawn from a few (ties, `±0`, NaN) so that the first-maximum rule decides; and three
/// whose ties decide by construction: every entry `0.5` (each window's gradient must go to its
/// first position), and `+0.0` where the first window holding two map positions starts
/// ([`first_tied_window_start`]) with `-0.0` everywhere else, and the reverse (that window's
/// maximum is the zero it starts with: `+0.0 > -0.0` is false, and so is `-0.0 > +0.0`). An
/// implementation that keeps the last maximum (`>=`), or lets `max` pick either zero, fails these
/// for every geometry with a window of two positions or more.
fn pool_inputs(rng: &mut rand_chacha::ChaCha8Rng, batch: usize, g: &Window) -> Vec<(&'static str, Matrix)> {
    let (rows, hw) = (batch * g.height * g.width, g.height * g.width);
    let at = first_tied_window_start(g).unwrap_or(0);
    let signed_zeros =
        |first: f32, rest: f32| Matrix::from_fn(rows, g.channels, |i, _| if i % hw == at { first } else { rest });
    vec![
        ("continuous", random_matrix(rng, rows, g.channels, -1.0, 1.0)),
        ("few values", coarse_matrix(rng, rows, g.channels, &[0.0, -0.0, 0.5, 0.5, -1.0, f32::NAN, 2.0, 0.5])),
        ("all 0.5", Matrix::full(rows, g.channels, 0.5)),
        ("+0 where a window starts, -0 elsewhere", signed_zeros(0.0, -0.0)),
        ("-0 where a window starts, +0 elsewhere", signed_zeros(-0.0, 0.0)),
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

/// `fold` (col2im) equals the definition bit for bit: each input position sums its patch entries
/// in the definition's order (output positions, then window entries), whatever the backend's
/// parallelism.
pub fn check_fold<B: Backend>(b: &B) {
    let r = ReferenceBackend;
    let mut rng = rng(42);
    for (batch, g) in geometries() {
        let cols = random_matrix(&mut rng, batch * g.positions(), g.patch_len(), -1.0, 1.0);
        let want = r.fold(&cols, &g);
        let got = fetch(b, &b.fold(&b.upload(&cols), &g));
        assert_bits(&format!("fold {g:?} of a {batch}-batch"), &got, &want);
    }
}

/// `max_pool` equals the definition bit for bit (it copies each window's first maximum), with the
/// ties of `pool_inputs`.
pub fn check_max_pool<B: Backend>(b: &B) {
    let r = ReferenceBackend;
    let mut rng = rng(43);
    for (batch, g) in geometries() {
        for (what, x) in pool_inputs(&mut rng, batch, &g) {
            let got = fetch(b, &b.max_pool(&b.upload(&x), &g));
            assert_bits(&format!("max_pool {g:?} of a {batch}-batch, {what}"), &got, &r.max_pool(&x, &g));
        }
    }
}

/// `max_pool_backward` equals the definition bit for bit: each gradient routed to its window's
/// first maximum (the ties of `pool_inputs`), summed over overlapping windows in the order of
/// the output positions.
pub fn check_max_pool_backward<B: Backend>(b: &B) {
    let r = ReferenceBackend;
    let mut rng = rng(44);
    for (batch, g) in geometries() {
        for (what, x) in pool_inputs(&mut rng, batch, &g) {
            let grad = random_matrix(&mut rng, batch * g.positions(), g.channels, -1.0, 1.0);
            let want = r.max_pool_backward(&x, &g, &grad);
            let got = fetch(b, &b.max_pool_backward(&b.upload(&x), &g, &b.upload(&grad)));
            assert_bits(&format!("max_pool_backward {g:?} of a {batch}-batch, {what}"), &got, &want);
        }
    }
}

/// A window that does not fit its map (padding not below the kernel, a kernel wider or taller
/// than the padded map, a zero stride or channel count) is refused by each of the four window
/// operations with one panic, `<op>: <`[`Window::check`]`'s message>` ([`Window::assert_fits`]),
/// before any work: not garbage, not an index panic deep inside. The tensors passed are those of
/// a window that fits, so only the refusal can stop the call.
pub fn check_window_refusal<B: Backend>(b: &B) {
    let ok = Window { height: 6, width: 5, channels: 2, kernel: 3, stride: 1, padding: 1 };
    let x = b.upload(&Matrix::full(ok.height * ok.width, ok.channels, 0.5));
    let cols = b.upload(&Matrix::full(ok.positions(), ok.patch_len(), 0.5));
    let grad = b.upload(&Matrix::full(ok.positions(), ok.channels, 0.5));
    let bad = [
        Window { padding: 3, ..ok },
        Window { kernel: 8, ..ok },
        Window { kernel: 7, padding: 0, ..ok },
        Window { kernel: 6, padding: 0, ..ok },
        Window { stride: 0, ..ok },
        Window { channels: 0, ..ok },
    ];
    for g in bad {
        let reason = g.check().expect_err("a window that does not fit");
        for op in ["unfold", "fold", "max_pool", "max_pool_backward"] {
            let outcome = catch_unwind(AssertUnwindSafe(|| match op {
                "unfold" => drop(b.unfold(&x, &g)),
                "fold" => drop(b.fold(&cols, &g)),
                "max_pool" => drop(b.max_pool(&x, &g)),
                _ => drop(b.max_pool_backward(&x, &g, &grad)),
            }));
            let Err(payload) = outcome else {
                panic!("conformance: window_refusal: {op} accepted {g:?}, which does not fit");
            };
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            assert_eq!(
                msg,
                format!("{op}: {reason}"),
                "conformance: window_refusal: {op} of {g:?} panicked, but not with Window::assert_fits's message"
            );
        }
    }
    b.sync();
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
        let mut ks = vec![1, cols.min(11), cols.div_ceil(2), cols];
        ks.sort_unstable();
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

/// `kwta_layer` equals the chain of the other operations bit for bit ([`composed_kwta_layer`]):
/// one and three channels, strides, paddings, with and without pooling, `k` from 1 to all
/// channels, a batch of images whose product blocks are the general kernel's and one of tiny
/// images whose are not, and a layer of 96 filters on 28×28 images; with and without the relative
/// activity (bit for bit `relative_to_row_max` of the activity), and a counted fraction of positive
/// activity equal to the chain's `fraction_positive`.
pub fn check_kwta_layer<B: Backend>(b: &B) {
    let mut rng = rng(49);
    let layers = [
        (Window { height: 28, width: 28, channels: 1, kernel: 5, stride: 1, padding: 2 }, 96, Some((4, 2, 1)), 5),
        (Window { height: 9, width: 7, channels: 3, kernel: 3, stride: 2, padding: 1 }, 20, Some((2, 2, 0)), 7),
        (Window { height: 12, width: 12, channels: 2, kernel: 3, stride: 1, padding: 1 }, 33, None, 3),
        (Window { height: 3, width: 3, channels: 1, kernel: 2, stride: 1, padding: 0 }, 4, Some((2, 1, 0)), 6),
    ];
    for (conv, channels, pool, batch) in layers {
        conv.check().expect("the window fits");
        let pool = pool.map(|(kernel, stride, padding)| Window {
            height: conv.out_height(),
            width: conv.out_width(),
            channels,
            kernel,
            stride,
            padding,
        });
        let x = b.upload(&random_matrix(&mut rng, batch, conv.image_len(), 0.0, 1.0));
        let weights = b.upload(&random_matrix(&mut rng, channels, conv.patch_len(), -1.0, 1.0));
        let bias = b.upload(&random_matrix(&mut rng, 1, channels, -0.5, 0.5));
        let mut ks = vec![1, channels.min(11), channels];
        ks.dedup();
        for (k, relative) in ks.into_iter().flat_map(|k| [(k, false), (k, true)]) {
            let spec = KwtaSpec { conv: &conv, k, pool: pool.as_ref(), relative };
            let got = b.kwta_layer(&x, &weights, &bias, &spec);
            let want = composed_kwta_layer(b, &x, &weights, &bias, &spec);
            let ctx = format!(
                "kwta_layer k={k} on {batch} images {conv:?}, {channels} filters, pool {pool:?}, relative {relative}"
            );
            let (want_drive, want_activity) = (
                want.drive.as_ref().expect("the chain's drive"),
                want.activity.as_ref().expect("the chain's activity"),
            );
            // The drive and the activity may be left out only in a Hebbian step's pass.
            for (what, left_out) in [("drive", got.drive.is_none()), ("activity", got.activity.is_none())] {
                assert!(relative || !left_out, "{ctx}: the {what} left out though no relative activity was asked");
            }
            for (what, got, want) in [
                ("patches", Some(&got.patches), &want.patches),
                ("drive", got.drive.as_ref(), want_drive),
                ("threshold", Some(&got.threshold), &want.threshold),
                ("activity", got.activity.as_ref(), want_activity),
                ("output", Some(&got.output), &want.output),
            ] {
                let Some(got) = got else { continue };
                assert_eq!(b.shape(got), b.shape(want), "{ctx} ({what}: shape)");
                assert_bits(&format!("{ctx} ({what})"), &fetch(b, got), &fetch(b, want));
            }
            match (&got.relative, &want.relative) {
                (Some(got), Some(want)) => {
                    assert_eq!(b.shape(got), b.shape(want), "{ctx} (relative: shape)");
                    assert_bits(&format!("{ctx} (relative)"), &fetch(b, got), &fetch(b, want));
                }
                (None, None) => {}
                (got, _) => panic!("{ctx}: relative activity {} though {} asked", got.is_some(), relative),
            }
            if let Some(fraction) = got.fraction_positive {
                let chain = composed_fraction_positive(b, want_activity);
                assert_eq!(fraction.to_bits(), chain.to_bits(), "{ctx}: fraction positive {fraction} vs {chain}");
            }
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
