//! Elementwise maps, as enumerated operations so a GPU backend can compile each one to a kernel.

use serde::{Deserialize, Serialize};

use super::TensorStore;

/// A function applied to every entry.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Unary {
    /// `max(x, 0)`.
    Relu,
    /// `1` where `x > 0`, else `0` (the derivative of ReLU, and the "is active" indicator).
    Step,
    /// `e^x`.
    Exp,
    /// `ln x`.
    Ln,
    /// `√x`.
    Sqrt,
    /// `|x|`.
    Abs,
    /// `-1`, `0` or `1`.
    Sign,
    /// `x²`.
    Square,
    /// `1/x`.
    Recip,
    /// `a·x`.
    Scale(f32),
    /// `x + a`.
    Offset(f32),
    /// `x^p`, for `x ≥ 0`.
    Powf(f32),
    /// `min(max(x, lo), hi)`.
    Clamp(f32, f32),
}

impl Unary {
    /// The scalar function; the reference every backend must match.
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Unary::Relu => x.max(0.0),
            Unary::Step => {
                if x > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Unary::Exp => x.exp(),
            Unary::Ln => x.ln(),
            Unary::Sqrt => x.sqrt(),
            Unary::Abs => x.abs(),
            Unary::Sign => {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            }
            Unary::Square => x * x,
            Unary::Recip => 1.0 / x,
            Unary::Scale(a) => a * x,
            Unary::Offset(a) => x + a,
            Unary::Powf(p) => x.powf(p),
            Unary::Clamp(lo, hi) => x.max(lo).min(hi),
        }
    }
}

/// A function of two entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Binary {
    /// `a + b`.
    Add,
    /// `a - b`.
    Sub,
    /// `a · b`.
    Mul,
    /// `a / b`.
    Div,
    /// `max(a, b)`.
    Max,
    /// `min(a, b)`.
    Min,
    /// `1` where `a > b`, else `0`.
    Greater,
}

impl Binary {
    /// The scalar function; the reference every backend must match.
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            Binary::Add => a + b,
            Binary::Sub => a - b,
            Binary::Mul => a * b,
            Binary::Div => a / b,
            Binary::Max => a.max(b),
            Binary::Min => a.min(b),
            Binary::Greater => {
                if a > b {
                    1.0
                } else {
                    0.0
                }
            }
        }
    }
}

/// Entry-by-entry operations.
pub trait ElementwiseOps: TensorStore {
    /// `f(a)` for every entry.
    fn map(&self, a: &Self::Tensor, op: Unary) -> Self::Tensor;
    /// `a ∘ b` with `b` broadcast by [`super::broadcast_strides`] (same shape, `rows×1`, `1×cols` or `1×1`).
    fn zip(&self, a: &Self::Tensor, b: &Self::Tensor, op: Binary) -> Self::Tensor;
    /// In place: `a ← a ∘ b`, same broadcasting as [`ElementwiseOps::zip`]. Saves an allocation on hot paths.
    fn zip_assign(&self, a: &mut Self::Tensor, b: &Self::Tensor, op: Binary) {
        *a = self.zip(a, b, op);
    }
    /// `α·a + β·b` for tensors of equal shape.
    fn lincomb(&self, alpha: f32, a: &Self::Tensor, beta: f32, b: &Self::Tensor) -> Self::Tensor;
}
