//! What can go wrong reading a dataset, each case naming the file and what was expected.

use std::fmt;
use std::path::{Path, PathBuf};

use tensor::TensorError;

use super::DatasetKind;

// errors

/// Everything that can go wrong while loading data. Every message names the file (or
/// directory) involved and says what was expected.
#[derive(Debug)]
pub enum DataError {
    /// The operating system refused a read (missing permission, a directory, ...).
    Io {
        /// The file or directory being read.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file exists but its content is not what the format requires.
    Format {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it and what was expected.
        msg: String,
    },
    /// A dataset (or one of its files) is not where it was looked for.
    NotFound {
        /// Where it was looked for.
        path: PathBuf,
        /// What was looked for (a dataset or file description).
        what: String,
        /// What to do about it (which files to fetch, which flag to pass).
        hint: String,
    },
    /// An image file and its label file disagree on the number of items.
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
    UnknownDataset {
        /// The name as given.
        name: String,
    },
    /// A bad argument (ratios that sum to zero, a zero batch size, mismatched channels, ...).
    Invalid {
        /// The function or argument that rejected it.
        what: &'static str,
        /// What is wrong and what was expected.
        msg: String,
    },
    /// Building a tensor failed (a shape bug; reported rather than panicking).
    Tensor(TensorError),
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            DataError::Format { path, msg } => write!(f, "{}: {msg}", path.display()),
            DataError::NotFound { path, what, hint } => {
                write!(f, "{what} not found at {}: {hint}", path.display())
            }
            DataError::CountMismatch { images, labels, n_images, n_labels } => write!(
                f,
                "{} holds {n_images} images but {} holds {n_labels} labels; expected the same count",
                images.display(),
                labels.display()
            ),
            DataError::UnknownDataset { name } => {
                write!(f, "unknown dataset '{name}': expected one of {}", DatasetKind::names().join(", "))
            }
            DataError::Invalid { what, msg } => write!(f, "{what}: {msg}"),
            DataError::Tensor(e) => write!(f, "building a batch tensor: {e}"),
        }
    }
}

impl std::error::Error for DataError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DataError::Io { source, .. } => Some(source),
            DataError::Tensor(e) => Some(e),
            _ => None,
        }
    }
}

impl From<TensorError> for DataError {
    fn from(e: TensorError) -> Self {
        DataError::Tensor(e)
    }
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
