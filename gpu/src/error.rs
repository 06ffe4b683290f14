//! The one error type of the crate: every fallible call returns `Result<T, GpuError>`.

/// Why a GPU call failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum GpuError {
    /// No adapter matched the requested [`crate::AdapterPreference`]; the string says what
    /// was found instead (e.g. "only a software adapter (llvmpipe, Vulkan) was found").
    #[error("no suitable GPU adapter: {0}")]
    NoAdapter(String),
    /// A request above one of the device's limits, named after the wgpu limit
    /// (e.g. `max_storage_buffer_binding_size`), in the limit's own unit (bytes, workgroups).
    #[error("GPU limit exceeded: {what} requested {requested}, the device allows at most {limit}")]
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
    #[error("{kernel}: {msg}")]
    InvalidArgument {
        /// The kernel's name.
        kernel: &'static str,
        /// What was wrong.
        msg: String,
    },
    /// Device creation failed, or wgpu reported a validation / out-of-memory / internal error.
    #[error("GPU device error: {0}")]
    Device(String),
    /// Mapping a staging buffer for a read-back failed.
    #[error("GPU buffer map failed: {0}")]
    Map(String),
}

/// `Result` with a [`GpuError`].
pub type Result<T> = std::result::Result<T, GpuError>;

/// Shorthand for an [`GpuError::InvalidArgument`] naming the kernel.
pub(crate) fn invalid(kernel: &'static str, msg: impl Into<String>) -> GpuError {
    GpuError::InvalidArgument { kernel, msg: msg.into() }
}
