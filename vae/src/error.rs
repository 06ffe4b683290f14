//! The vae crate's error type: everything a run can fail on, each message naming the file,
//! flag or shape involved.

use std::path::PathBuf;

use crate::data::DataError;

/// Everything a `vae` run can fail on. Every message starts with [`Error::category`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed (shape, dtype or device mismatch).
    #[error("tensor: {0}")]
    Tensor(#[from] tensor::TensorError),
    /// An `nn` operation failed (layer construction, checkpoint I/O, optimizer).
    #[error("{category}: {0}", category = nn_category(.0))]
    Nn(#[from] nn::Error),
    /// Loading or batching a dataset failed.
    #[error("data: {0}")]
    Data(#[from] DataError),
    /// Drawing or saving a picture failed.
    #[error("picture: {0}")]
    Plot(#[from] crate::plot::PlotError),
    /// Bad input to a metric or t-SNE (shapes, sizes).
    #[error("metric: {0}")]
    Metric(#[from] crate::tools::linalg::InputError),
    /// A flag or configuration value that cannot work, with what was expected.
    #[error("configuration: {0}")]
    Config(String),
    /// A file or directory could not be read or written.
    #[error("I/O: {}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The loss, a component of it, or a gradient became NaN or infinite.
    #[error(
        "training: a non-finite value (NaN or infinity) at epoch {epoch}, step {step}: {what}; try a lower --lr{kept}"
    )]
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
            Error::Tensor(_) => "tensor",
            Error::Nn(e) => nn_category(e),
            Error::Io { .. } => "I/O",
            Error::NonFinite { .. } => "training",
            Error::Config(_) => "configuration",
            Error::Data(_) => "data",
            Error::Plot(_) => "picture",
            Error::Metric(_) => "metric",
        }
    }
}

/// The category of an `nn` error, in [`Error::category`]'s words.
fn nn_category(e: &nn::Error) -> &'static str {
    match e {
        nn::Error::Tensor(_) => "tensor",
        nn::Error::Io { .. } => "I/O",
        nn::Error::Checkpoint { .. } | nn::Error::Mismatch { .. } => "checkpoint",
        nn::Error::NonFiniteGradient { .. } => "training",
        nn::Error::Config { .. } => "configuration",
    }
}

/// Result with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

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
