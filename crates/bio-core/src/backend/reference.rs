//! `ReferenceBackend`: the plain-Rust, single-threaded backend. Slow and obviously correct; the
//! conformance suite checks every other backend against it, and doc examples run on it.

use super::{
    AdamStep, Binary, Dim, ElementwiseOps, LinalgOps, OptimOps, PlasticityOps, Reduce, ReduceOps, SelectOps,
    TensorStore, Unary, broadcast_strides,
};
use crate::tensor::Matrix;

/// The reference backend: tensors are host [`Matrix`] values, every loop is written out.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReferenceBackend;

impl TensorStore for ReferenceBackend {
    type Tensor = Matrix;

    fn name(&self) -> String {
        "reference".into()
    }
    fn upload(&self, m: &Matrix) -> Matrix {
        m.clone()
    }
    fn download(&self, t: &Matrix) -> Matrix {
        t.clone()
    }
    fn shape(&self, t: &Matrix) -> (usize, usize) {
        t.shape()
    }
    fn full(&self, rows: usize, cols: usize, value: f32) -> Matrix {
        Matrix::full(rows, cols, value)
    }
}

impl LinalgOps for ReferenceBackend {
    fn matmul(&self, a: &Matrix, trans_a: bool, b: &Matrix, trans_b: bool) -> Matrix {
        let (m, ka) = if trans_a { (a.cols(), a.rows()) } else { a.shape() };
        let (kb, n) = if trans_b { (b.cols(), b.rows()) } else { b.shape() };
        assert_eq!(ka, kb, "matmul inner dimensions differ: {ka} vs {kb}");
        let at = |i: usize, k: usize| if trans_a { a.get(k, i) } else { a.get(i, k) };
        let bt = |k: usize, j: usize| if trans_b { b.get(j, k) } else { b.get(k, j) };
        // Accumulate in f64 so the reference is more accurate than what it checks.
        Matrix::from_fn(m, n, |i, j| (0..ka).map(|k| at(i, k) as f64 * bt(k, j) as f64).sum::<f64>() as f32)
    }
}

impl ElementwiseOps for ReferenceBackend {
    fn map(&self, a: &Matrix, op: Unary) -> Matrix {
        Matrix::from_fn(a.rows(), a.cols(), |i, j| op.apply(a.get(i, j)))
    }
    fn zip(&self, a: &Matrix, b: &Matrix, op: Binary) -> Matrix {
        let (rs, cs) = broadcast_strides(a.shape(), b.shape());
        let bv = b.as_slice();
        Matrix::from_fn(a.rows(), a.cols(), |i, j| op.apply(a.get(i, j), bv[i * rs + j * cs]))
    }
    fn lincomb(&self, alpha: f32, a: &Matrix, beta: f32, b: &Matrix) -> Matrix {
        assert_eq!(a.shape(), b.shape(), "lincomb needs equal shapes");
        Matrix::from_fn(a.rows(), a.cols(), |i, j| alpha * a.get(i, j) + beta * b.get(i, j))
    }
}

fn fold(values: impl Iterator<Item = f32>, op: Reduce) -> f32 {
    let mut n = 0usize;
    let mut acc: f64 = match op {
        Reduce::Sum | Reduce::Mean => 0.0,
        Reduce::Max => f64::NEG_INFINITY,
        Reduce::Min => f64::INFINITY,
    };
    for v in values {
        n += 1;
        let v = v as f64;
        acc = match op {
            Reduce::Sum | Reduce::Mean => acc + v,
            Reduce::Max => acc.max(v),
            Reduce::Min => acc.min(v),
        };
    }
    if op == Reduce::Mean {
        acc /= n.max(1) as f64;
    }
    acc as f32
}

impl ReduceOps for ReferenceBackend {
    fn reduce(&self, a: &Matrix, dim: Dim, op: Reduce) -> Matrix {
        match dim {
            Dim::PerRow => Matrix::from_fn(a.rows(), 1, |i, _| fold(a.row(i).iter().copied(), op)),
            Dim::PerCol => Matrix::from_fn(1, a.cols(), |_, j| fold((0..a.rows()).map(|i| a.get(i, j)), op)),
            Dim::All => Matrix::full(1, 1, fold(a.as_slice().iter().copied(), op)),
        }
    }
}

impl SelectOps for ReferenceBackend {
    fn row_kth_largest(&self, a: &Matrix, k: usize) -> Matrix {
        assert!(k >= 1 && k <= a.cols(), "k = {k} outside 1..={}", a.cols());
        Matrix::from_fn(a.rows(), 1, |i, _| {
            let mut row = a.row(i).to_vec();
            row.sort_by(|x, y| y.total_cmp(x));
            row[k - 1]
        })
    }
    fn softmax_rows(&self, a: &Matrix) -> Matrix {
        let mut out = a.clone();
        for i in 0..a.rows() {
            let row = out.row_mut(i);
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0f64;
            for v in row.iter_mut() {
                *v = (*v - max).exp();
                sum += *v as f64;
            }
            for v in row.iter_mut() {
                *v = (*v as f64 / sum) as f32;
            }
        }
        out
    }
    fn argmax_rows(&self, a: &Matrix) -> Vec<usize> {
        (0..a.rows())
            .map(|i| {
                let row = a.row(i);
                let mut best = 0;
                for (j, &v) in row.iter().enumerate() {
                    if v > row[best] {
                        best = j;
                    }
                }
                best
            })
            .collect()
    }
}

impl OptimOps for ReferenceBackend {
    fn adam_step(&self, p: &mut Matrix, g: &Matrix, m: &mut Matrix, v: &mut Matrix, s: AdamStep) {
        for idx in 0..p.len() {
            let gi = g.as_slice()[idx];
            let mi = s.beta1 * m.as_slice()[idx] + (1.0 - s.beta1) * gi;
            let vi = s.beta2 * v.as_slice()[idx] + (1.0 - s.beta2) * gi * gi;
            m.as_mut_slice()[idx] = mi;
            v.as_mut_slice()[idx] = vi;
            p.as_mut_slice()[idx] -= s.lr_t * mi / (vi.sqrt() + s.eps);
        }
    }
    fn momentum_step(&self, p: &mut Matrix, g: &Matrix, m: &mut Matrix, lr: f32, momentum: f32) {
        for idx in 0..p.len() {
            let mi = momentum * m.as_slice()[idx] + g.as_slice()[idx];
            m.as_mut_slice()[idx] = mi;
            p.as_mut_slice()[idx] -= lr * mi;
        }
    }
}

/// The composed definition: the reference of every fused implementation.
impl PlasticityOps for ReferenceBackend {}

/// The host defaults are the definition.
impl super::ConvOps for ReferenceBackend {}
