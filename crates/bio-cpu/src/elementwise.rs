//! Elementwise maps, broadcasting zips and linear combinations.
//!
//! Each [`Unary`] / [`Binary`] variant is dispatched once per call to a monomorphized loop, so the
//! inner loop is a plain closure the compiler can vectorize instead of a `match` per entry. The
//! scalar formulas repeat those of [`Unary::apply`] and [`Binary::apply`] exactly; the conformance
//! suite holds them to it.

use bio_core::{Binary, ElementwiseOps, Unary, backend::broadcast_strides};
use ndarray::{Array2, ArrayView2, Zip};
use rayon::prelude::*;

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

/// `e^x` in plain `f32` arithmetic that the compiler vectorizes (libm's `expf` is a scalar call per
/// entry, the largest elementwise cost of the multiplicative Hebbian update).
///
/// Cody–Waite range reduction `x = n·ln2 + r`, `|r| ≤ ln2/2`, with `ln2` split in two so `r` is
/// exact, then the degree-6 minimax polynomial of Cephes' `expf` and `2ⁿ` built from the exponent
/// bits in two halves (so results that overflow or are subnormal come out right). Relative error
/// about 2 ulp of `f32` against `f32::exp`, far inside the conformance tolerance (1e-5); `NaN` gives
/// `NaN`, `+∞` gives `+∞`, `−∞` gives `0`.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Beyond these, e^x is +∞ or 0 in f32 whatever the rounding; the clamp keeps n in i32 range.
    let xc = x.clamp(-104.0, 89.0);
    // Round to nearest by the 1.5·2²³ trick (exact for |v| < 2²²): `round()` is a libm call on
    // baseline x86-64 and would stop the loop from vectorizing.
    const ROUND: f32 = 12_582_912.0;
    let shifted = xc * LOG2E + ROUND;
    let n = shifted - ROUND;
    // n as an integer, read from the bits of `shifted` (its low mantissa bits hold n exactly): a
    // float-to-int `as` cast saturates, needs NaN handling and stays scalar; this stays in SIMD lanes.
    let n_int = (shifted.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let r = xc - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    let half = n_int >> 1;
    let pow2 = |e: i32| f32::from_bits(((e + 127) as u32) << 23);
    let out = y * pow2(half) * pow2(n_int - half);
    if x.is_nan() { x } else { out }
}

fn dispatch_unary<J: UnaryJob>(op: Unary, job: J) -> J::Out {
    match op {
        Unary::Relu => job.run(|x| x.max(0.0)),
        Unary::Step => job.run(|x| if x > 0.0 { 1.0 } else { 0.0 }),
        Unary::Exp => job.run(exp),
        Unary::Ln => job.run(f32::ln),
        Unary::Sqrt => job.run(f32::sqrt),
        Unary::Abs => job.run(f32::abs),
        Unary::Sign => job.run(|x| Unary::Sign.apply(x)),
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
        // `map_collect` writes each output entry once into uninitialized memory: no zero-fill pass.
        // A row-major first operand makes the output row-major (the backend's contract).
        let a = self.a.as_standard_layout();
        let zip = Zip::from(&a);
        if self.cpu.parallel(self.a.len()) {
            self.cpu.install(|| zip.par_map_collect(|&x| f(x)))
        } else {
            zip.map_collect(|&x| f(x))
        }
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
        let a = self.a.as_standard_layout();
        let zip = Zip::from(&a).and(self.b);
        if self.cpu.parallel(self.a.len()) {
            self.cpu.install(|| zip.par_map_collect(|&x, &y| f(x, y)))
        } else {
            zip.map_collect(|&x, &y| f(x, y))
        }
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
        // One row broadcast over a row-major `a` (a bias): blocks of whole rows, each row zipped with
        // the same slice, so the inner loop is contiguous on both sides. The same `f` per entry.
        let cols = self.a.ncols();
        let one_row = cols > 0 && self.a.nrows() > 0 && self.b.strides()[0] == 0;
        if let Some(row) = one_row.then(|| self.b.row(0).to_slice()).flatten()
            && let Some(a) = self.a.as_slice_mut()
        {
            let rows = |block: &mut [f32]| {
                for out in block.chunks_exact_mut(cols) {
                    out.iter_mut().zip(row).for_each(|(x, &y)| *x = f(*x, y));
                }
            };
            if parallel {
                self.cpu.install(|| a.par_chunks_mut(cols * 64).for_each(rows));
            } else {
                rows(a);
            }
            return;
        }
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
        let a = a.as_standard_layout();
        let zip = Zip::from(&a).and(b);
        if self.parallel(a.len()) {
            self.install(|| zip.par_map_collect(|&x, &y| alpha * x + beta * y))
        } else {
            zip.map_collect(|&x, &y| alpha * x + beta * y)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::exp;

    /// `exp` against libm's over the whole useful range, the edges and the special values.
    #[test]
    fn exp_matches_libm() {
        let mut worst = 0.0f64;
        let mut x = -103.0f32;
        while x < 88.7 {
            let want = x.exp();
            let got = exp(x);
            if want.is_normal() {
                worst = worst.max(((got - want) / want).abs() as f64);
            } else {
                assert!((got - want).abs() <= 1e-38, "exp({x}) = {got}, libm {want}");
            }
            x += 0.000_731;
        }
        assert!(worst < 5e-7, "worst relative error {worst:e}");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(89.0), f32::INFINITY);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-200.0), 0.0);
        assert!(exp(f32::NAN).is_nan());
    }
}
