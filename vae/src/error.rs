//! The vae crate's error type: everything a run can fail on, each message naming the file,
//! flag or shape involved.

use std::fmt;
use std::path::PathBuf;

use crate::data::DataError;

#[derive(Debug)]
/// Everything a `vae` run can fail on.
pub enum Error {
    /// A tensor operation failed (shape, dtype or device mismatch).
    Tensor(tensor::TensorError),
    /// An `nn` operation failed (layer construction, checkpoint I/O, optimizer).
    Nn(nn::Error),
    /// Loading or batching a dataset failed.
    Data(DataError),
    /// Drawing or saving a picture failed.
    Plot(crate::plot::PlotError),
    /// Bad input to a metric or t-SNE (shapes, sizes).
    Metric(crate::linalg::InputError),
    /// A flag or configuration value that cannot work, with what was expected.
    Config(String),
    /// A file or directory could not be read or written.
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The loss, a component of it, or a gradient became NaN or infinite.
    NonFinite {
        /// The epoch it happened in.
        epoch: usize,
        /// The step within that epoch.
        step: usize,
        /// What went non-finite: a loss term, or the gradient of a named parameter.
        what: String,
        /// What the run kept (its last good checkpoint, or that none was written yet); empty
        /// where the caller has no run folder.
        kept: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Tensor(e) => write!(f, "{e}"),
            Error::Nn(e) => write!(f, "{e}"),
            Error::Data(e) => write!(f, "{e}"),
            Error::Plot(e) => write!(f, "{e}"),
            Error::Metric(e) => write!(f, "{e}"),
            Error::Config(msg) => write!(f, "configuration: {msg}"),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::NonFinite { epoch, step, what, kept } => {
                write!(
                    f,
                    "training: a non-finite value (NaN or infinity) at epoch {epoch}, step {step}: {what}; try a lower --lr{kept}"
                )
            }
        }
    }
}

impl std::error::Error for Error {}

impl From<tensor::TensorError> for Error {
    fn from(e: tensor::TensorError) -> Self {
        Error::Tensor(e)
    }
}

impl From<nn::Error> for Error {
    fn from(e: nn::Error) -> Self {
        Error::Nn(e)
    }
}

impl From<DataError> for Error {
    fn from(e: DataError) -> Self {
        Error::Data(e)
    }
}

/// Result with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl From<crate::plot::PlotError> for Error {
    fn from(e: crate::plot::PlotError) -> Self {
        Error::Plot(e)
    }
}

impl From<crate::linalg::InputError> for Error {
    fn from(e: crate::linalg::InputError) -> Self {
        Error::Metric(e)
    }
}
