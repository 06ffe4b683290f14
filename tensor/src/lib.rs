//! # tensor
//!
//! n-dimensional tensors of `f32` (and `f64`, for gradient checks) with CPU kernels
//! parallelised by rayon.
//!
//! How data flows: a [`Tensor`] is an `Arc<Storage>` plus a [`Layout`] (shape, strides,
//! offset). View ops (`permute`, `narrow`, `broadcast_to`, `reshape` of contiguous data)
//! only build a new layout over the same storage. Compute ops live in [`ops`], one file per
//! op family: each checks its operands' shapes, dtypes and devices, makes them contiguous,
//! and calls the matching kernel in [`cpu`] (rayon, generic over [`Float`]). Kernels never
//! validate; ops never compute.

pub mod cpu;
pub mod device;
pub mod dtype;
pub mod error;
pub mod ops;
pub mod rng;
pub mod shape;
pub mod storage;
mod tensor;

pub use device::Device;
pub use dtype::{DType, Float};
pub use error::{Result, TensorError};
pub use rng::Rng;
pub use shape::{Layout, Shape};
pub use storage::{CpuStorage, Storage};
pub use tensor::Tensor;
