//! The reference tier: every op family's definition, written as plainly as possible. f64, one
//! thread, no blocking, no packing, no tricks; a few dozen lines per family, each loop the
//! formula in the doc comment above it. Read these first: they say what an op computes. The
//! fast kernels in `crate::cpu` and the WGSL kernels in `shaders/` say how to compute it
//! quickly, and the tests hold both to these (the workspace's `tests/reference_tier.rs`).
//!
//! Layouts are PyTorch's, row-major, as everywhere in the crate. Element-wise ops have no
//! file here: each row of `crate::elementwise_table` is its own definition, and its f64
//! instantiation is the reference its f32 kernel and its WGSL are held to.

pub mod batch_norm;
pub mod conv;
pub mod interpolate;
pub mod matmul;
pub mod optim;
pub mod pool;
pub mod reduce;
