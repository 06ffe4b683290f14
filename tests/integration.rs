//! The workspace's integration tests, one binary: gradient checks of every differentiable op
//! (`grad_*`), CPU/GPU parity (`parity_*`), the reference tier, NaN propagation, end-to-end
//! training and the repository's own rules (docs, paths). One binary links the stack once;
//! `cargo test --release -p vae-stack --test integration grad_conv2d` runs one module.
//! `profile_gpu` and `parity_device` are binaries of their own: they read process-wide
//! counters (the profiler's totals, the GPU device's pending work) that tests running beside
//! them would move.

mod common;
/// nn's test fixtures (the example residual block, nn-to-gradcheck glue), shared, not copied.
#[path = "../nn/tests/common/mod.rs"]
mod nn_common;

mod docs_paths;
mod e2e_gpu;
mod e2e_reference;
mod e2e_train;
mod grad_batch_norm;
mod grad_conv2d;
mod grad_conv_transpose2d;
mod grad_elementwise;
mod grad_interpolate;
mod grad_matmul;
mod grad_nn_layers;
mod grad_pool;
mod grad_reduce;
mod grad_shape;
mod grad_vae_loss;
mod nan_propagation;
mod parity_batch_norm;
mod parity_chunked;
mod parity_concat;
mod parity_conv2d;
mod parity_conv_transpose2d;
mod parity_elementwise;
mod parity_interpolate;
mod parity_large;
mod parity_loss;
mod parity_matmul;
mod parity_optim;
mod parity_pool;
mod parity_reduce;
mod reading_path;
mod reference_tier;
mod repository;
