//! # tensor
//!
//! n-dimensional tensors of `f32` (and `f64`, for gradient checks) on three devices: the
//! reference tier (every op as its plain definition, [`reference`](mod@reference)), the fast CPU kernels
//! parallelised by rayon ([`cpu`]), and the GPU (the `gpu` crate's WGSL kernels).
//!
//! Tiers: core ([`Tensor`], [`ops`], [`reference`](mod@reference), shapes, devices); fast kernels ([`cpu`]);
//! GPU (the ops' GPU arms and `gpu_parts`); tooling ([`profile`]).
//!
//! How data flows: a [`Tensor`] is an `Arc<Storage>` plus a [`Layout`] (shape, strides,
//! offset). View ops (`permute`, `narrow`, `broadcast_to`, `reshape` of contiguous data)
//! only build a new layout over the same storage. Compute ops live in [`ops`], one file (or folder) per
//! op family: each checks its operands' shapes, dtypes and devices, then makes ONE match on
//! the device: the reference arm reads its operands as f64 and calls the definition in
//! [`reference`](mod@reference); the CPU arm makes the operands contiguous and calls the matching kernel in
//! [`cpu`] (rayon, generic over [`Float`]); the GPU arm calls the `gpu` crate's launcher
//! for the same op (f32 only), recording it into the context's pending command encoder
//! (once, or once per part when an operand is larger than one GPU binding, or lies in
//! several buffers because it is larger than one: `gpu_parts`).
//! Kernels never validate; ops never compute.
//!
//! Devices: a tensor lives on a [`Device`]; `to_device` / `to_cpu` move it, and
//! [`Device::from_preference`] turns a user's `auto` / `cpu` / `gpu` / `reference` into one. Nothing is
//! read back from the GPU except where asked (`to_vec`, `item`, `to_cpu`).
//!
//! ```
//! use tensor::{DType, Tensor};
//! // a: [2, 3], b: [3, 2] → a·b: [2, 2]
//! let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?;
//! let b = a.transpose(0, 1)?; // a view: same storage, swapped strides, no copy
//! assert!(b.shares_storage_with(&a));
//! let c = tensor::ops::matmul::matmul(&a, &b)?;
//! assert_eq!(c.shape(), &[2, 2]);
//! assert_eq!(c.to_vec_f32()?, vec![14.0, 32.0, 32.0, 77.0]);
//! // Element-wise ops broadcast: [2, 3] + [3] → [2, 3].
//! let bias = Tensor::from_vec(vec![10.0f32, 20.0, 30.0], &[3])?;
//! assert_eq!(a.add(&bias)?.to_vec_f32()?, vec![11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
//! assert_eq!(Tensor::zeros(&[4, 1, 28, 28], DType::F64).numel(), 4 * 28 * 28);
//! # Ok::<(), tensor::TensorError>(())
//! ```

#![warn(missing_docs)]

pub mod cpu;
pub mod device;
pub mod dtype;
pub mod elementwise_table;
pub mod error;
mod gpu_parts;
pub mod ops;
pub mod profile;
pub mod reference;
pub mod rng;
pub mod shape;
pub mod storage;
mod tensor;

/// Op geometries (convolution, pooling, batch norm), shared with the GPU launchers.
pub use ::descriptors;
pub use device::{Device, DevicePreference, GpuDevice};
pub use dtype::{DType, Float};
pub use error::{Result, TensorError};
pub use ops::pool::PoolIndices;
pub use rng::Rng;
pub use shape::{Layout, Shape};
pub use storage::{CpuStorage, GpuStorage, Storage};
pub use tensor::Tensor;
