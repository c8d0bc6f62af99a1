//! Fused optimizer steps: one pass over parameters, gradients and moments, in place.

use bio_core::{AdamStep, OptimOps};
use ndarray::{Array2, Zip};

use crate::CpuBackend;

impl OptimOps for CpuBackend {
    fn adam_step(&self, p: &mut Array2<f32>, g: &Array2<f32>, m: &mut Array2<f32>, v: &mut Array2<f32>, s: AdamStep) {
        let shape = p.dim();
        assert!(
            g.dim() == shape && m.dim() == shape && v.dim() == shape,
            "adam_step needs equal shapes: p {shape:?}, g {:?}, m {:?}, v {:?}",
            g.dim(),
            m.dim(),
            v.dim()
        );
        let AdamStep { lr_t, beta1, beta2, eps } = s;
        let kernel = move |p: &mut f32, &g: &f32, m: &mut f32, v: &mut f32| {
            let mi = beta1 * *m + (1.0 - beta1) * g;
            let vi = beta2 * *v + (1.0 - beta2) * g * g;
            *m = mi;
            *v = vi;
            *p -= lr_t * mi / (vi.sqrt() + eps);
        };
        let parallel = self.parallel(p.len());
        let zip = Zip::from(p).and(g).and(m).and(v);
        if parallel {
            self.install(|| zip.par_for_each(kernel));
        } else {
            zip.for_each(kernel);
        }
    }

    fn momentum_step(&self, p: &mut Array2<f32>, g: &Array2<f32>, m: &mut Array2<f32>, lr: f32, momentum: f32) {
        let shape = p.dim();
        assert!(
            g.dim() == shape && m.dim() == shape,
            "momentum_step needs equal shapes: p {shape:?}, g {:?}, m {:?}",
            g.dim(),
            m.dim()
        );
        let kernel = move |p: &mut f32, &g: &f32, m: &mut f32| {
            let mi = momentum * *m + g;
            *m = mi;
            *p -= lr * mi;
        };
        let parallel = self.parallel(p.len());
        let zip = Zip::from(p).and(g).and(m);
        if parallel {
            self.install(|| zip.par_for_each(kernel));
        } else {
            zip.for_each(kernel);
        }
    }
}
