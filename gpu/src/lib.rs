//! # gpu
//!
//! Tier: GPU (the WGSL kernels' launchers and the machinery that feeds them).
//!
//! f32 compute kernels on any GPU wgpu can drive (Vulkan, Metal, DX12; Mesa's lavapipe in
//! CI), knowing nothing of tensors or autograd: the `tensor` crate maps its ops onto these
//! launchers.
//!
//! What the crate holds: a [`Context`] owns the wgpu device and queue, a pool of reusable
//! storage buffers ([`GpuBuffer`] gives its buffer back on drop), a cache of compiled
//! pipelines keyed by (shader, entry point, pipeline constant), a cache of bind groups keyed
//! by the buffers they bind, and ONE pending command encoder. How data flows:
//! [`Context::upload`] copies host f32s into a pooled buffer; each launcher in [`kernels`] (one
//! file per WGSL family in `shaders/`) checks its typed arguments, packs a `#[repr(C)]`
//! `Params` struct that mirrors the shader's `struct Params`, and records a dispatch into the
//! pending encoder, handed every few dozen launches to the context's submitting thread so
//! that the GPU runs the first kernels while the host records the next; [`Context::read`]
//! submits and copies a buffer back through a staging buffer. [`counters`] counts what a
//! context was asked to do; [`kernel_timer`], once enabled, times each launch on the GPU's clock.
//! A buffer may be as large as the device creates (max_buffer_size), larger than one kernel
//! binding may be (max_storage_buffer_binding_size): [`Context::window`] binds a part of it,
//! and the `tensor` crate splits an op's launches into parts that fit (and spreads a tensor
//! larger than one buffer over several, each part inside one). Requests beyond the
//! device's limits (a buffer above max_buffer_size, a whole buffer bound beyond
//! max_storage_buffer_binding_size, a grid above max_compute_workgroups_per_dimension²) come
//! back as [`GpuError::LimitExceeded`], never as a wgpu panic.

#![warn(missing_docs)]

pub mod bind_groups;
pub mod buffer_pool;
pub mod context;
pub mod counters;
/// The op descriptors (their own crate, below this one and `tensor`), under their old path.
pub use ::descriptors;
pub mod error;
pub mod kernel_timer;
pub mod kernels;
pub mod pipeline_cache;
pub mod tuning;

pub use buffer_pool::{BufferWindow, GpuBuffer, PoolStats};
pub use context::{
    available_adapters, AdapterInfo, AdapterPreference, Context, DeviceKind, DeviceLimits, SubmitPolicy,
};
pub use counters::Counters;
pub use error::{GpuError, Result};
pub use kernel_timer::{GridTime, KernelTime};

use std::sync::OnceLock;

/// The shared context for tests (this crate's and the callers'): any adapter, software
/// included, opened once per test binary.
///
/// With no adapter it prints why and returns `None` (the test should return early: a skip),
/// unless the environment sets `VAE_REQUIRE_GPU=1`, as CI does: then a missing adapter
/// panics, so a broken driver setup fails the build instead of silently skipping.
pub fn test_context() -> Option<&'static Context> {
    static CTX: OnceLock<std::result::Result<Context, GpuError>> = OnceLock::new();
    match CTX.get_or_init(|| Context::new(AdapterPreference::AnyIncludingSoftware)) {
        Ok(ctx) => Some(ctx),
        Err(e) => {
            if std::env::var("VAE_REQUIRE_GPU").is_ok_and(|v| v == "1") {
                panic!("VAE_REQUIRE_GPU=1 but no GPU context: {e}");
            }
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| eprintln!("skipping GPU tests: {e} (set VAE_REQUIRE_GPU=1 to make this a failure)"));
            None
        }
    }
}
