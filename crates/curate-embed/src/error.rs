//! What can go wrong loading or running a model.

use std::path::PathBuf;

/// An error loading model files or encoding texts; messages name the file and the problem.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A model file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A model file is readable but not what a model of this kind needs.
    #[error("{path}: {message}")]
    Invalid {
        /// The file (or model directory).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The tokenizer failed on a text.
    #[error("tokenizer: {0}")]
    Tokenize(String),
}

impl ModelError {
    pub(crate) fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        ModelError::Invalid { path: path.into(), message: message.into() }
    }
}
