//! Elementwise maps, broadcasting zips and linear combinations.
//!
//! Each [`Unary`] / [`Binary`] variant is dispatched once per call to a monomorphized loop, so the
//! inner loop is a plain closure the compiler can vectorize instead of a `match` per entry. The
//! scalar formulas repeat those of [`Unary::apply`] and [`Binary::apply`] exactly; the conformance
//! suite holds them to it.

use bio_core::{Binary, ElementwiseOps, Unary, backend::broadcast_strides};
use ndarray::{Array2, ArrayView2, Zip};

use crate::CpuBackend;

/// A job generic over the scalar function of a [`Unary`].
trait UnaryJob {
    type Out;
    fn run<F: Fn(f32) -> f32 + Copy + Send + Sync>(self, f: F) -> Self::Out;
}

/// A job generic over the scalar function of a [`Binary`].
trait BinaryJob {
    type Out;
    fn run<F: Fn(f32, f32) -> f32 + Copy + Send + Sync>(self, f: F) -> Self::Out;
}

fn dispatch_unary<J: UnaryJob>(op: Unary, job: J) -> J::Out {
    match op {
        Unary::Relu => job.run(|x| x.max(0.0)),
        Unary::Step => job.run(|x| if x > 0.0 { 1.0 } else { 0.0 }),
        Unary::Exp => job.run(f32::exp),
        Unary::Ln => job.run(f32::ln),
        Unary::Sqrt => job.run(f32::sqrt),
        Unary::Abs => job.run(f32::abs),
        Unary::Sign => job.run(|x| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        }),
        Unary::Square => job.run(|x| x * x),
        Unary::Recip => job.run(|x| 1.0 / x),
        Unary::Scale(a) => job.run(move |x| a * x),
        Unary::Offset(a) => job.run(move |x| x + a),
        Unary::Powf(p) => job.run(move |x| x.powf(p)),
        Unary::Clamp(lo, hi) => job.run(move |x| x.max(lo).min(hi)),
    }
}

fn dispatch_binary<J: BinaryJob>(op: Binary, job: J) -> J::Out {
    match op {
        Binary::Add => job.run(|a, b| a + b),
        Binary::Sub => job.run(|a, b| a - b),
        Binary::Mul => job.run(|a, b| a * b),
        Binary::Div => job.run(|a, b| a / b),
        Binary::Max => job.run(f32::max),
        Binary::Min => job.run(f32::min),
        Binary::Greater => job.run(|a, b| if a > b { 1.0 } else { 0.0 }),
    }
}

/// `b` as a view of `a`'s shape, after checking the broadcasting rule every backend shares.
fn broadcast<'b>(a: &Array2<f32>, b: &'b Array2<f32>) -> ArrayView2<'b, f32> {
    broadcast_strides(a.dim(), b.dim());
    b.broadcast(a.dim()).expect("broadcast_strides accepted the shapes")
}

struct MapJob<'a> {
    cpu: &'a CpuBackend,
    a: &'a Array2<f32>,
}

impl UnaryJob for MapJob<'_> {
    type Out = Array2<f32>;
    fn run<F: Fn(f32) -> f32 + Copy + Send + Sync>(self, f: F) -> Array2<f32> {
        let mut out = Array2::zeros(self.a.dim());
        let zip = Zip::from(&mut out).and(self.a);
        if self.cpu.parallel(self.a.len()) {
            self.cpu.install(|| zip.par_for_each(|o, &x| *o = f(x)));
        } else {
            zip.for_each(|o, &x| *o = f(x));
        }
        out
    }
}

struct ZipJob<'a> {
    cpu: &'a CpuBackend,
    a: &'a Array2<f32>,
    b: ArrayView2<'a, f32>,
}

impl BinaryJob for ZipJob<'_> {
    type Out = Array2<f32>;
    fn run<F: Fn(f32, f32) -> f32 + Copy + Send + Sync>(self, f: F) -> Array2<f32> {
        let mut out = Array2::zeros(self.a.dim());
        let zip = Zip::from(&mut out).and(self.a).and(self.b);
        if self.cpu.parallel(self.a.len()) {
            self.cpu.install(|| zip.par_for_each(|o, &x, &y| *o = f(x, y)));
        } else {
            zip.for_each(|o, &x, &y| *o = f(x, y));
        }
        out
    }
}

struct ZipAssignJob<'a> {
    cpu: &'a CpuBackend,
    a: &'a mut Array2<f32>,
    b: ArrayView2<'a, f32>,
}

impl BinaryJob for ZipAssignJob<'_> {
    type Out = ();
    fn run<F: Fn(f32, f32) -> f32 + Copy + Send + Sync>(self, f: F) {
        let parallel = self.cpu.parallel(self.a.len());
        let zip = Zip::from(self.a).and(self.b);
        if parallel {
            self.cpu.install(|| zip.par_for_each(|x, &y| *x = f(*x, y)));
        } else {
            zip.for_each(|x, &y| *x = f(*x, y));
        }
    }
}

impl ElementwiseOps for CpuBackend {
    fn map(&self, a: &Array2<f32>, op: Unary) -> Array2<f32> {
        dispatch_unary(op, MapJob { cpu: self, a })
    }

    fn zip(&self, a: &Array2<f32>, b: &Array2<f32>, op: Binary) -> Array2<f32> {
        dispatch_binary(op, ZipJob { cpu: self, a, b: broadcast(a, b) })
    }

    fn zip_assign(&self, a: &mut Array2<f32>, b: &Array2<f32>, op: Binary) {
        let b = broadcast(a, b);
        dispatch_binary(op, ZipAssignJob { cpu: self, a, b });
    }

    fn lincomb(&self, alpha: f32, a: &Array2<f32>, beta: f32, b: &Array2<f32>) -> Array2<f32> {
        assert_eq!(a.dim(), b.dim(), "lincomb needs equal shapes");
        let mut out = Array2::zeros(a.dim());
        let zip = Zip::from(&mut out).and(a).and(b);
        if self.parallel(a.len()) {
            self.install(|| zip.par_for_each(|o, &x, &y| *o = alpha * x + beta * y));
        } else {
            zip.for_each(|o, &x, &y| *o = alpha * x + beta * y);
        }
        out
    }
}
