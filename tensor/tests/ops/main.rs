//! The tensor ops through the crate's public API, one module per file of `tensor/src/ops/`:
//! output shapes as PyTorch gives them, non-contiguous operands, f32 against f64, each
//! backward as the adjoint of its forward, and bad arguments as errors naming the op.

mod batch_norm;
mod concat;
mod conv2d;
mod conv_transpose2d;
mod elementwise;
mod interpolate;
mod matmul;
mod optim;
mod pool;
mod reduce;
mod tuning;
