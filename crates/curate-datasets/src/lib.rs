//! Ties pipeline runs to the registry (ARCHITECTURE.md §4–5).
//!
//! A project's state lives in one directory (`$CURATE_HOME`, default `.curate`):
//! `registry.db` (unless `$CURATE_REGISTRY` names another store), `store/objects/` with
//! the immutable, content-addressed data files of every dataset version, and `cache/` with
//! step outputs for incremental runs. This crate commits a finished run as the next
//! version of its dataset (files, lineage of every kept and dropped record, task
//! outcomes), resolves `input: {dataset: ...}`, forgets sources and collects garbage.

#![warn(missing_docs)]

mod diff;
mod explain;
mod forget;
mod lineage;
mod process;
mod record_run;
mod store;
mod upgrade;
pub mod views;

pub use diff::{diff_records, RecordDiff};
pub use explain::{explain, DerivedRecord, Explanation, Occurrence};
pub use forget::{forget, ForgetReport};
pub use process::{current_owner, is_gone};
pub use record_run::{
    dead_runs, output_location, reap_dead_runs, record_run, resume_or_start_run, source_files, start_run, step_label, Committed,
    Compose, RunRecord,
};
pub use store::{gc, BadFile, GcSummary, Home, STORE_ENV};
pub use upgrade::{upgrade, UpgradeLimits, UpgradeReport};

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
    /// A stored file of a version does not match the version's manifest.
    #[error("{version}: stored file {file} does not match the version's manifest: expected {expected}, found {found} (`curate datasets verify {version}` checks every file)")]
    Corrupt {
        /// The version (`name@N`).
        version: String,
        /// The file's manifest path.
        file: String,
        /// Size and hash the manifest lists.
        expected: String,
        /// What is on disk instead.
        found: String,
    },
    /// A request that cannot be carried out as asked.
    #[error("{0}")]
    Invalid(String),
}

/// Result with this crate's error.
pub type Result<T> = std::result::Result<T, Error>;

fn file_err(path: &std::path::Path, e: impl std::fmt::Display) -> Error {
    Error::File { path: path.display().to_string(), message: e.to_string() }
}
