//! Ties pipeline runs to the registry (ARCHITECTURE.md §4–5).
//!
//! A project's state lives in one directory (`$CURATE_HOME`, default `.curate`):
//! `registry.db` (unless `$CURATE_REGISTRY` names another store), `store/objects/` with
//! the immutable, content-addressed data files of every dataset version, and `cache/` with
//! step outputs for incremental runs. This crate commits a finished run as the next
//! version of its dataset (files, lineage of every kept and dropped record, task
//! outcomes), resolves `input: {dataset: ...}`, forgets sources and collects garbage.

#![warn(missing_docs)]

mod forget;
mod lineage;
mod record_run;
mod store;

pub use forget::{forget, ForgetReport};
pub use record_run::{record_run, source_files, start_run, step_label, Committed, RunRecord};
pub use store::{gc, GcSummary, Home};

/// A failure while recording or changing datasets.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The registry refused or failed.
    #[error("registry: {0}")]
    Registry(#[from] curate_registry::Error),
    /// Reading or writing a file failed.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// Reading the run's input failed (the message names the file).
    #[error("input: {0}")]
    Input(String),
    /// A request that cannot be carried out as asked.
    #[error("{0}")]
    Invalid(String),
}

/// Result with this crate's error.
pub type Result<T> = std::result::Result<T, Error>;

fn file_err(path: &std::path::Path, e: impl std::fmt::Display) -> Error {
    Error::File { path: path.display().to_string(), message: e.to_string() }
}
