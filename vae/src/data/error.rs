//! What can go wrong reading a dataset, each case naming the file and what was expected.

use std::path::{Path, PathBuf};

use tensor::TensorError;

use super::DatasetKind;

// errors

/// Everything that can go wrong while loading data. Every message names the file (or
/// directory) involved and says what was expected.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The operating system refused a read (missing permission, a directory, ...).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory being read.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file exists but its content is not what the format requires.
    #[error("{}: {msg}", path.display())]
    Format {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it and what was expected.
        msg: String,
    },
    /// A dataset (or one of its files) is not where it was looked for.
    #[error("{what} not found at {}: {hint}", path.display())]
    NotFound {
        /// Where it was looked for.
        path: PathBuf,
        /// What was looked for (a dataset or file description).
        what: String,
        /// What to do about it (which files to fetch, which flag to pass).
        hint: String,
    },
    /// An image file and its label file disagree on the number of items.
    #[error(
        "{} holds {n_images} images but {} holds {n_labels} labels; expected the same count",
        images.display(),
        labels.display()
    )]
    CountMismatch {
        /// The image file.
        images: PathBuf,
        /// The label file.
        labels: PathBuf,
        /// Number of images in `images`.
        n_images: usize,
        /// Number of labels in `labels`.
        n_labels: usize,
    },
    /// `--dataset` named no dataset this crate knows.
    #[error("unknown dataset '{name}': expected one of {}", DatasetKind::names().join(", "))]
    UnknownDataset {
        /// The name as given.
        name: String,
    },
    /// A bad argument (ratios that sum to zero, a zero batch size, mismatched channels, ...).
    #[error("{what}: {msg}")]
    Invalid {
        /// The function or argument that rejected it.
        what: &'static str,
        /// What is wrong and what was expected.
        msg: String,
    },
    /// Building a tensor failed (a shape bug; reported rather than panicking).
    #[error("building a batch tensor: {0}")]
    Tensor(#[from] TensorError),
}

/// The result of every loader in this module.
pub type Result<T> = std::result::Result<T, DataError>;

pub(crate) fn io_err(path: &Path, source: std::io::Error) -> DataError {
    DataError::Io { path: path.to_path_buf(), source }
}

pub(crate) fn format_err<T>(path: &Path, msg: impl Into<String>) -> Result<T> {
    Err(DataError::Format { path: path.to_path_buf(), msg: msg.into() })
}

pub(crate) fn invalid<T>(what: &'static str, msg: impl Into<String>) -> Result<T> {
    Err(DataError::Invalid { what, msg: msg.into() })
}

/// Reads a whole file, naming it in the error.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| io_err(path, e))
}
