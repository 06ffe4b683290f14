//! Differentiable ops, one file per family, each op's forward and backward side by side.

pub mod batch_norm;
pub mod conv2d;
pub mod conv_transpose2d;
pub mod elementwise;
pub mod interpolate;
pub mod loss;
pub mod matmul;
pub mod pool;
pub mod reduce;
pub mod shape;
