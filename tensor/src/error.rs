//! The error type of the tensor crate: every public op validates its operands and reports
//! the shapes it got and what it expected, instead of panicking inside a kernel.

use crate::dtype::DType;

/// Why a tensor op refused its operands or failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TensorError {
    /// Operand shapes do not fit the op; the message names the op, the shapes and the rule.
    #[error("{op}: shape error: {msg}")]
    Shape {
        /// The op that failed.
        op: &'static str,
        /// What was wrong.
        msg: String,
    },
    /// Operands of different element types.
    #[error("{op}: dtype mismatch: expected {expected:?}, got {got:?}")]
    DType {
        /// The op that failed.
        op: &'static str,
        /// The dtype the op needed.
        expected: DType,
        /// The dtype it got.
        got: DType,
    },
    /// Operands on different devices, or an op not available on a device.
    #[error("{op}: device error: {msg}")]
    Device {
        /// The op that failed.
        op: &'static str,
        /// What was wrong.
        msg: String,
    },
    /// An axis index out of range for the tensor's rank.
    #[error("{op}: axis {axis} is out of range for a tensor of rank {rank}")]
    Axis {
        /// The op that failed.
        op: &'static str,
        /// The axis as given (negative counts from the end).
        axis: isize,
        /// The tensor's rank.
        rank: usize,
    },
    /// Any other invalid argument (a zero stride, a negative size, ...).
    #[error("{op}: invalid argument: {msg}")]
    Invalid {
        /// The op that failed.
        op: &'static str,
        /// What was wrong.
        msg: String,
    },
    /// A tensor or launch beyond one of the GPU adapter's limits; the message names the limit
    /// (e.g. `max_storage_buffer_binding_size`), what was requested and what the device allows.
    #[error("{op}: beyond a GPU limit: {msg}")]
    Limit {
        /// The op that failed.
        op: &'static str,
        /// What was wrong.
        msg: String,
    },
    /// Any other failure inside the GPU backend (out of memory, a lost device, a kernel
    /// refusing its arguments).
    #[error("gpu: {0}")]
    Gpu(String),
}

/// `Result` with a [`TensorError`].
pub type Result<T> = std::result::Result<T, TensorError>;

/// Shorthand for building a shape error.
pub(crate) fn shape_err<T>(op: &'static str, msg: impl Into<String>) -> Result<T> {
    Err(TensorError::Shape { op, msg: msg.into() })
}

/// Shorthand for building an invalid-argument error.
pub(crate) fn invalid<T>(op: &'static str, msg: impl Into<String>) -> Result<T> {
    Err(TensorError::Invalid { op, msg: msg.into() })
}

/// Maps an error of the gpu crate, raised while running `op`, to a tensor error: a limit
/// stays a limit (its message names it), a missing adapter is a device error, the rest are
/// GPU failures naming the op.
pub(crate) fn gpu_err(op: &'static str) -> impl Fn(gpu::GpuError) -> TensorError {
    move |e| match e {
        gpu::GpuError::LimitExceeded { .. } => TensorError::Limit { op, msg: e.to_string() },
        gpu::GpuError::NoAdapter(_) => TensorError::Device { op, msg: e.to_string() },
        _ => TensorError::Gpu(format!("{op}: {e}")),
    }
}
