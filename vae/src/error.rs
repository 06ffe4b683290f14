//! The vae crate's error type: everything a run can fail on, each message naming the file,
//! flag or shape involved.

use std::fmt;
use std::path::PathBuf;

use crate::data::DataError;

#[derive(Debug)]
pub enum Error {
    Tensor(tensor::TensorError),
    Nn(nn::Error),
    Data(DataError),
    Plot(crate::plot::PlotError),
    /// Bad input to a metric or t-SNE (shapes, sizes).
    Metric(crate::linalg::InputError),
    /// A flag or configuration value that cannot work, with what was expected.
    Config(String),
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The loss (or a component) became NaN or infinite.
    NonFinite {
        epoch: usize,
        step: usize,
        what: String,
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
            Error::NonFinite { epoch, step, what } => {
                write!(f, "the loss became non-finite at epoch {epoch}, step {step} ({what}); try a lower --lr")
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
