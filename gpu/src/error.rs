//! The one error type of the crate: every fallible call returns `Result<T, GpuError>`.

use std::fmt;

/// Why a GPU call failed.
#[derive(Clone, Debug, PartialEq)]
pub enum GpuError {
    /// No adapter matched the requested [`crate::AdapterPreference`]; the string says what
    /// was found instead (e.g. "only a software adapter (llvmpipe, Vulkan) was found").
    NoAdapter(String),
    /// A request above one of the device's limits, named after the wgpu limit
    /// (e.g. `max_storage_buffer_binding_size`), in the limit's own unit (bytes, workgroups).
    LimitExceeded {
        /// The wgpu limit's name.
        what: String,
        /// What was asked for, in the limit's unit.
        requested: u64,
        /// What the device allows.
        limit: u64,
    },
    /// A launch whose arguments do not fit its Params (a buffer too short, a rank too high,
    /// one buffer bound twice with write access): names the kernel.
    InvalidArgument {
        /// The kernel's name.
        kernel: &'static str,
        /// What was wrong.
        msg: String,
    },
    /// Device creation failed, or wgpu reported a validation / out-of-memory / internal error.
    Device(String),
    /// Mapping a staging buffer for a read-back failed.
    Map(String),
}

/// `Result` with a [`GpuError`].
pub type Result<T> = std::result::Result<T, GpuError>;

impl fmt::Display for GpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuError::NoAdapter(why) => write!(f, "no suitable GPU adapter: {why}"),
            GpuError::LimitExceeded { what, requested, limit } => {
                write!(f, "GPU limit exceeded: {what} requested {requested}, the device allows at most {limit}")
            }
            GpuError::InvalidArgument { kernel, msg } => write!(f, "{kernel}: {msg}"),
            GpuError::Device(msg) => write!(f, "GPU device error: {msg}"),
            GpuError::Map(msg) => write!(f, "GPU buffer map failed: {msg}"),
        }
    }
}

impl std::error::Error for GpuError {}

/// Shorthand for an [`GpuError::InvalidArgument`] naming the kernel.
pub(crate) fn invalid(kernel: &'static str, msg: impl Into<String>) -> GpuError {
    GpuError::InvalidArgument { kernel, msg: msg.into() }
}
