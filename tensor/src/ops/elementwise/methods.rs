//! The element-wise ops as methods on [`Tensor`], each one line over a row of the op table.

use super::{binary, unary, UnaryOp};
use crate::elementwise_table as table;
use crate::error::Result;
use crate::tensor::Tensor;

/// Method shorthands, so model code reads `x.mul(&w)?.add(&b)?.relu()?`.
impl Tensor {
    /// self + other, broadcasting both to a common shape.
    pub fn add(&self, other: &Tensor) -> Result<Tensor> {
        binary(self, other, &table::ADD)
    }
    /// self − other, with broadcasting.
    pub fn sub(&self, other: &Tensor) -> Result<Tensor> {
        binary(self, other, &table::SUB)
    }
    /// self · other, with broadcasting.
    pub fn mul(&self, other: &Tensor) -> Result<Tensor> {
        binary(self, other, &table::MUL)
    }
    /// self / other, with broadcasting.
    pub fn div(&self, other: &Tensor) -> Result<Tensor> {
        binary(self, other, &table::DIV)
    }
    /// Element-wise max(self, other), with broadcasting.
    pub fn maximum(&self, other: &Tensor) -> Result<Tensor> {
        binary(self, other, &table::MAX)
    }
    /// Element-wise min(self, other), with broadcasting.
    pub fn minimum(&self, other: &Tensor) -> Result<Tensor> {
        binary(self, other, &table::MIN)
    }
    /// 1 where self > other, else 0 (same dtype), with broadcasting.
    pub fn gt(&self, other: &Tensor) -> Result<Tensor> {
        binary(self, other, &table::GT)
    }
    /// 1 where self < other, else 0, with broadcasting.
    pub fn lt(&self, other: &Tensor) -> Result<Tensor> {
        binary(self, other, &table::LT)
    }
    /// 1 where self = other, else 0, with broadcasting.
    pub fn eq_elementwise(&self, other: &Tensor) -> Result<Tensor> {
        binary(self, other, &table::EQ)
    }
    /// −self.
    pub fn neg(&self) -> Result<Tensor> {
        unary(self, UnaryOp::new(&table::NEG))
    }
    /// e^self.
    pub fn exp(&self) -> Result<Tensor> {
        unary(self, UnaryOp::new(&table::EXP))
    }
    /// Natural logarithm.
    pub fn log(&self) -> Result<Tensor> {
        unary(self, UnaryOp::new(&table::LOG))
    }
    /// Square root.
    pub fn sqrt(&self) -> Result<Tensor> {
        unary(self, UnaryOp::new(&table::SQRT))
    }
    /// Absolute value.
    pub fn abs(&self) -> Result<Tensor> {
        unary(self, UnaryOp::new(&table::ABS))
    }
    /// max(self, 0).
    pub fn relu(&self) -> Result<Tensor> {
        unary(self, UnaryOp::new(&table::RELU))
    }
    /// self where positive, slope·self elsewhere.
    pub fn leaky_relu(&self, slope: f64) -> Result<Tensor> {
        unary(self, UnaryOp::with(&table::LEAKY_RELU, slope, 0.0))
    }
    /// self·σ(self) (SiLU).
    pub fn silu(&self) -> Result<Tensor> {
        unary(self, UnaryOp::new(&table::SILU))
    }
    /// e^self − 1 − self (with self = log σ², twice the KL of N(0, σ²) from N(0, 1)).
    pub fn exp_minus_one_minus_x(&self) -> Result<Tensor> {
        unary(self, UnaryOp::new(&table::EXP_MINUS_ONE_MINUS_X))
    }
    /// Logistic sigmoid 1 / (1 + e^−self).
    pub fn sigmoid(&self) -> Result<Tensor> {
        unary(self, UnaryOp::new(&table::SIGMOID))
    }
    /// Hyperbolic tangent.
    pub fn tanh(&self) -> Result<Tensor> {
        unary(self, UnaryOp::new(&table::TANH))
    }
    /// ln(1 + e^self), computed without overflow.
    pub fn softplus(&self) -> Result<Tensor> {
        unary(self, UnaryOp::new(&table::SOFTPLUS))
    }
    /// self².
    pub fn square(&self) -> Result<Tensor> {
        unary(self, UnaryOp::new(&table::SQUARE))
    }
    /// 1 / self.
    pub fn recip(&self) -> Result<Tensor> {
        unary(self, UnaryOp::new(&table::RECIP))
    }
    /// self^p for a scalar exponent p.
    pub fn powf(&self, p: f64) -> Result<Tensor> {
        unary(self, UnaryOp::with(&table::POWF, p, 0.0))
    }
    /// Clamped to `[lo, hi]`.
    pub fn clamp(&self, lo: f64, hi: f64) -> Result<Tensor> {
        unary(self, UnaryOp::with(&table::CLAMP, lo, hi))
    }
    /// self + s for a scalar s.
    pub fn add_scalar(&self, s: f64) -> Result<Tensor> {
        unary(self, UnaryOp::with(&table::ADD_SCALAR, s, 0.0))
    }
    /// self · s for a scalar s.
    pub fn mul_scalar(&self, s: f64) -> Result<Tensor> {
        unary(self, UnaryOp::with(&table::MUL_SCALAR, s, 0.0))
    }
}
