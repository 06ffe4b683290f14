//! # tensor
//!
//! n-dimensional tensors of `f32` (and `f64`, for gradient checks) with CPU kernels
//! parallelised by rayon.
//!
//! How data flows: a [`Tensor`] is an `Arc<Storage>` plus a [`Layout`] (shape, strides,
//! offset). View ops (`permute`, `narrow`, `broadcast_to`, `reshape` of contiguous data)
//! only build a new layout over the same storage. Compute ops live in [`ops`], one file per
//! op family: each checks its operands' shapes, dtypes and devices, then makes ONE match on
//! the device: the CPU arm makes the operands contiguous and calls the matching kernel in
//! [`cpu`] (rayon, generic over [`Float`]); the GPU arm calls the `gpu` crate's launcher
//! for the same op (f32 only), recording it into the context's pending command encoder.
//! Kernels never validate; ops never compute.
//!
//! Devices: a tensor lives on a [`Device`]; `to_device` / `to_cpu` move it, and
//! [`Device::from_preference`] turns a user's `auto` / `cpu` / `gpu` into one. Nothing is
//! read back from the GPU except where asked (`to_vec`, `item`, `to_cpu`).

pub mod cpu;
pub mod device;
pub mod dtype;
pub mod error;
pub mod ops;
pub mod profile;
pub mod rng;
pub mod shape;
pub mod storage;
mod tensor;

pub use device::{Device, DevicePreference, GpuDevice};
pub use dtype::{DType, Float};
pub use error::{Result, TensorError};
pub use ops::pool::PoolIndices;
pub use rng::Rng;
pub use shape::{Layout, Shape};
pub use storage::{CpuStorage, GpuStorage, Storage};
pub use tensor::Tensor;
