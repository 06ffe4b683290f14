//! The error type of the nn crate: tensor errors from layers, I/O and format errors from
//! checkpoints (always naming the file), state mismatches listing every offending tensor,
//! and invalid layer or optimizer configurations.

use std::fmt;
use std::path::PathBuf;

use tensor::TensorError;

/// One tensor whose shape in a file differs from the model's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// The tensor's state_dict name.
    pub name: String,
    /// Its shape in the file.
    pub file: Vec<usize>,
    /// Its shape in the model.
    pub model: Vec<usize>,
}

/// Every difference between a file's tensors and a model's state, found in one pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateMismatch {
    /// Names the model has and the file lacks.
    pub missing: Vec<String>,
    /// Names the file has and the model lacks.
    pub unexpected: Vec<String>,
    /// Names both have, with different shapes.
    pub shape_mismatches: Vec<ShapeMismatch>,
}

impl StateMismatch {
    /// True when the file and the model agree.
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.shape_mismatches.is_empty()
    }
}

impl fmt::Display for StateMismatch {
    /// `missing: a.b.weight, …; unexpected: x.y; shape mismatch: c.weight file [64, 3, 3, 3] vs model [64, 1, 3, 3]`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = vec![];
        if !self.missing.is_empty() {
            parts.push(format!("missing: {}", self.missing.join(", ")));
        }
        if !self.unexpected.is_empty() {
            parts.push(format!("unexpected: {}", self.unexpected.join(", ")));
        }
        if !self.shape_mismatches.is_empty() {
            let list: Vec<String> = self
                .shape_mismatches
                .iter()
                .map(|m| format!("{} file {:?} vs model {:?}", m.name, m.file, m.model))
                .collect();
            parts.push(format!("shape mismatch: {}", list.join(", ")));
        }
        write!(f, "{}", parts.join("; "))
    }
}

/// Every way an nn call can fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor op failed (shapes, dtypes, devices); the message names the op.
    #[error("{0}")]
    Tensor(#[from] TensorError),
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A checkpoint file is truncated, corrupted, or holds something this crate cannot read.
    #[error("{}: {msg}", path.display())]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        msg: String,
    },
    /// A checkpoint's tensors do not match the model (or optimizer) they are loaded into.
    #[error("{}: the file does not match the model: {mismatch}", path.display())]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// Every difference found.
        mismatch: StateMismatch,
    },
    /// A gradient holds a NaN or an infinity; the optimizer changed nothing.
    #[error("the gradient of {parameter} holds non-finite values (NaN or infinity); no parameter was updated")]
    NonFiniteGradient {
        /// The parameter whose gradient it is.
        parameter: String,
    },
    /// A layer, optimizer or schedule was configured with values that cannot work.
    #[error("{what}: invalid configuration: {msg}")]
    Config {
        /// The layer, optimizer or schedule.
        what: &'static str,
        /// What was wrong.
        msg: String,
    },
}

/// `Result` with the nn [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Shorthand for a configuration error.
pub(crate) fn config_err<T>(what: &'static str, msg: impl Into<String>) -> Result<T> {
    Err(Error::Config { what, msg: msg.into() })
}
