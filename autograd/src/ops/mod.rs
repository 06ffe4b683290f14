//! Differentiable ops, one file per family, each op's forward and backward side by side.

pub mod elementwise;
pub mod reduce;
pub mod shape;
