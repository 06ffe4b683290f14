//! Tier: fast kernels (each held to `crate::reference` by the tests).
//!
//! CPU kernels, parallelised with rayon and generic over the float type (`f32`, `f64`).
//! Kernels take dense row-major slices and explicit sizes; they assume their inputs were
//! validated by the op layer (`crate::ops`) and never allocate more than their output.

pub mod batch_norm;
pub mod caching_allocator;
pub mod concat;
pub mod conv;
pub mod copy;
pub mod elementwise;
pub mod gemm;
pub mod indirect;
pub mod interpolate;
pub mod optim;
pub mod phase_grid;
pub mod pool;
pub mod reduce;
pub mod tuning;
pub mod upsampled_conv;
pub mod winograd;
