//! Patch extraction and pooling on the CPU: the per-image definitions of `bio_core::backend`,
//! run in parallel over the images of a batch on rayon, without host round trips.

use bio_core::backend::{ConvOps, Window, fold_image, max_pool_backward_image, max_pool_image, unfold_image};
use ndarray::Array2;
use rayon::prelude::*;

use crate::CpuBackend;

/// A tensor's entries as one row-major slice (a copy only for non-standard layouts).
fn entries(t: &Array2<f32>) -> std::borrow::Cow<'_, [f32]> {
    match t.as_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(t.iter().copied().collect()),
    }
}

impl CpuBackend {
    /// `out` (`rows×cols`) filled image by image: `f(n, out_image)` for each of `batch` images,
    /// in parallel when the output is large.
    fn per_image(&self, rows: usize, cols: usize, batch: usize, f: impl Fn(usize, &mut [f32]) + Sync) -> Array2<f32> {
        let mut out = vec![0.0f32; rows * cols];
        let len = (rows * cols) / batch.max(1);
        if batch > 0 && len > 0 {
            if self.parallel(rows * cols) {
                self.install(|| out.par_chunks_mut(len).enumerate().for_each(|(n, dst)| f(n, dst)));
            } else {
                out.chunks_mut(len).enumerate().for_each(|(n, dst)| f(n, dst));
            }
        }
        Array2::from_shape_vec((rows, cols), out).expect("rows·cols entries")
    }
}

impl ConvOps for CpuBackend {
    fn unfold(&self, x: &Array2<f32>, g: &Window) -> Array2<f32> {
        let x = entries(x);
        let batch = g.batch_of(x.len());
        let len = g.image_len();
        self.per_image(batch * g.positions(), g.patch_len(), batch, |n, dst| {
            unfold_image(g, &x[n * len..(n + 1) * len], dst)
        })
    }

    fn fold(&self, cols: &Array2<f32>, g: &Window) -> Array2<f32> {
        let c = entries(cols);
        let per = g.positions() * g.patch_len();
        assert!(c.len().is_multiple_of(per), "fold: {} entries are not whole images of patches", c.len());
        let batch = c.len() / per;
        self.per_image(batch, g.image_len(), batch, |n, dst| fold_image(g, &c[n * per..(n + 1) * per], dst))
    }

    fn max_pool(&self, x: &Array2<f32>, g: &Window) -> Array2<f32> {
        let x = entries(x);
        let batch = g.batch_of(x.len());
        let len = g.image_len();
        self.per_image(batch * g.positions(), g.channels, batch, |n, dst| {
            max_pool_image(g, &x[n * len..(n + 1) * len], dst)
        })
    }

    fn max_pool_backward(&self, x: &Array2<f32>, g: &Window, grad: &Array2<f32>) -> Array2<f32> {
        let (x, grad) = (entries(x), entries(grad));
        let batch = g.batch_of(x.len());
        let (len, out_len) = (g.image_len(), g.positions() * g.channels);
        assert_eq!(grad.len(), batch * out_len, "max_pool_backward: gradient of the wrong size");
        self.per_image(batch * g.height * g.width, g.channels, batch, |n, dst| {
            max_pool_backward_image(g, &x[n * len..(n + 1) * len], &grad[n * out_len..(n + 1) * out_len], dst)
        })
    }

    fn reshape(&self, t: &Array2<f32>, rows: usize, cols: usize) -> Array2<f32> {
        Array2::from_shape_vec((rows, cols), entries(t).into_owned()).expect("reshape keeps the number of entries")
    }
}
