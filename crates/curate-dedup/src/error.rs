//! Error type shared by every module of the crate.

use std::path::PathBuf;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum DedupError {
    /// A parameter is outside its valid range; the message names it and the accepted values.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParam {
        /// Parameter name as the user would write it.
        name: &'static str,
        /// What was wrong and what is accepted.
        reason: String,
    },
    /// A URL could not be parsed into scheme and host.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The offending input.
        url: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// Underlying I/O failure, with the file involved.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// File or directory being accessed.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A persisted file is not in the expected format (bad magic, truncated, checksum mismatch).
    #[error("corrupt or foreign file {path}: {reason}")]
    Corrupt {
        /// File being read.
        path: PathBuf,
        /// What check failed.
        reason: String,
    },
    /// A persisted file was written by an incompatible format version.
    #[error(
        "{path}: format version {found} is not supported (this build reads version {expected})"
    )]
    VersionMismatch {
        /// File being read.
        path: PathBuf,
        /// Version this build understands.
        expected: u32,
        /// Version found in the file.
        found: u32,
    },
    /// A persisted MinHash index was built with different parameters than the current run.
    #[error("{path}: index was built with {found} but this run uses {expected}; rebuild the index or use the same parameters")]
    IndexParamsMismatch {
        /// File being read.
        path: PathBuf,
        /// Parameters of the current run.
        expected: String,
        /// Parameters stored in the file.
        found: String,
    },
    /// A record id was used twice in one dedup run (survivor choice would be ambiguous).
    #[error("duplicate record id {0}: ids must be unique within a run and against a loaded index")]
    DuplicateId(u64),
}

impl DedupError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DedupError::Io {
            path: path.into(),
            source,
        }
    }

    /// Builds an [`DedupError::InvalidParam`].
    pub(crate) fn param(name: &'static str, reason: impl Into<String>) -> Self {
        DedupError::InvalidParam {
            name,
            reason: reason.into(),
        }
    }
}

/// Crate-wide result alias.
pub type Result<T, E = DedupError> = std::result::Result<T, E>;
