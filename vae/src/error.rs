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

impl Error {
    /// What kind of thing went wrong, the word every message starts with: configuration, data,
    /// checkpoint, training, I/O, picture, metric, or tensor (a shape or device mismatch inside
    /// the model, which is a bug to report).
    pub fn category(&self) -> &'static str {
        match self {
            Error::Tensor(_) | Error::Nn(nn::Error::Tensor(_)) => "tensor",
            Error::Nn(nn::Error::Io { .. }) | Error::Io { .. } => "I/O",
            Error::Nn(nn::Error::Checkpoint { .. } | nn::Error::Mismatch { .. }) => "checkpoint",
            Error::Nn(nn::Error::NonFiniteGradient { .. }) | Error::NonFinite { .. } => "training",
            Error::Nn(nn::Error::Config { .. }) | Error::Config(_) => "configuration",
            Error::Data(_) => "data",
            Error::Plot(_) => "picture",
            Error::Metric(_) => "metric",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.category())?;
        match self {
            Error::Tensor(e) => write!(f, "{e}"),
            Error::Nn(e) => write!(f, "{e}"),
            Error::Data(e) => write!(f, "{e}"),
            Error::Plot(e) => write!(f, "{e}"),
            Error::Metric(e) => write!(f, "{e}"),
            Error::Config(msg) => write!(f, "{msg}"),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::NonFinite { epoch, step, what, kept } => {
                write!(f, "a non-finite value (NaN or infinity) at epoch {epoch}, step {step}: {what}; try a lower --lr{kept}")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_starts_with_what_kind_of_thing_went_wrong() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let cases: Vec<(Error, &str)> = vec![
            (Error::Config("--beta -5".into()), "configuration: --beta -5"),
            (Error::Io { path: "a.csv".into(), source: io() }, "I/O: a.csv: gone"),
            (Error::Nn(nn::Error::Io { path: "b.safetensors".into(), source: io() }), "I/O: b.safetensors"),
            (
                Error::Nn(nn::Error::Checkpoint { path: "c.safetensors".into(), msg: "truncated".into() }),
                "checkpoint: ",
            ),
            (Error::Nn(nn::Error::NonFiniteGradient { parameter: "w".into() }), "training: "),
            (
                Error::NonFinite { epoch: 1, step: 2, what: "loss".into(), kept: String::new() },
                "training: a non-finite",
            ),
            (Error::Data(DataError::UnknownDataset { name: "x".into() }), "data: "),
        ];
        for (e, start) in cases {
            assert!(e.to_string().starts_with(start), "{e} does not start with {start}");
        }
    }
}
