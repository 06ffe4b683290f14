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
    /// A buffer the device could not hold: the driver is out of memory, or the pool would go
    /// over the limit `Context::set_memory_limit` set. Returned once the pool has released its
    /// idle buffers and tried again. Sizes in bytes.
    #[error(
        "GPU out of memory: a buffer of {} was requested with {} in use by tensors{} (idle buffers were \
         released first; a smaller batch needs less)",
        mib(*.requested),
        mib(*.in_use),
        .limit.map(|l| format!(", {} the limit", mib(l))).unwrap_or_default()
    )]
    OutOfMemory {
        /// The buffer asked for (its size class).
        requested: u64,
        /// Bytes handed out by the pool and not given back.
        in_use: u64,
        /// The limit `Context::set_memory_limit` set, if one did.
        limit: Option<u64>,
    },
    /// Device creation failed, or wgpu reported a validation / out-of-memory / internal error.
    #[error("GPU device error: {0}")]
    Device(String),
    /// Mapping a staging buffer for a read-back failed.
    #[error("GPU buffer map failed: {0}")]
    Map(String),
}

/// `bytes` in MiB, for messages.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// `Result` with a [`GpuError`].
pub type Result<T> = std::result::Result<T, GpuError>;

/// Shorthand for an [`GpuError::InvalidArgument`] naming the kernel.
pub(crate) fn invalid(kernel: &'static str, msg: impl Into<String>) -> GpuError {
    GpuError::InvalidArgument { kernel, msg: msg.into() }
}
