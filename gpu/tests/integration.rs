//! The launchers' tests, one binary: each WGSL kernel family against an f64 reference (or the
//! reference tier), with odd sizes and poisoned outputs, and the context itself (uploads,
//! read-backs, limits, counters, pipelines). `cargo test --release -p gpu --test integration
//! matmul` runs one module.

mod common;

mod adam;
mod batch_norm;
mod context;
mod conv2d;
mod conv_transpose2d;
mod elementwise;
mod interpolate;
mod kernel_timer;
mod matmul;
mod pool;
mod reduce;
mod winograd;
