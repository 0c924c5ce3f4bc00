//! Metadata store for curate: pipeline runs, immutable dataset versions with tags and
//! derivations, the content-addressed task cache index, per-record lineage, the
//! audit trail of `forget` requests, and the service's run queue, tokens and audit log. Record-level lineage lives beside the data (see
//! `curate-lineage`); nothing here grows with the number of records.
//!
//! One logical schema runs on an embedded SQLite file (the default) or on PostgreSQL
//! (`postgres://` URLs). [`Registry::open`] picks the backend from the location string
//! and applies pending migrations.
//!
//! How the engine drives it:
//!
//! ```
//! use curate_registry::*;
//!
//! # fn main() -> Result<()> {
//! # let dir = tempfile::tempdir()?;
//! # let location = dir.path().join("registry.db");
//! # let location = location.to_str().expect("utf-8 temp path");
//! let reg = Registry::open(location)?; // or Registry::open_from_env(".curate/registry.db")
//!
//! // A run, its step counters and task outcomes.
//! let run = reg.start_run(&NewRun { pipeline: "web", spec: "...", spec_hash: "5e1f", code_version: "0.3.1", ..Default::default() })?;
//! reg.record_task_outcomes(run, &[TaskOutcome {
//!     task_key: "ab12".into(), step: "clean".into(),
//!     decision: TaskDecision::Recomputed, reason: "no cache entry".into(),
//! }])?;
//! reg.cache_insert("ab12", "cache/ab12", &serde_json::json!({"rows": 2}))?;
//! reg.record_step(run, "clean", &StepCounters { input: 3, kept: 2, errors: 0,
//!     dropped: [("too_short".to_owned(), 1)].into() })?;
//!
//! // Commit the version: a manifest of files (records live in the files, their lineage
//! // in a sidecar per file), with its derivation.
//! let manifest = NewVersion {
//!     dataset: "web".into(),
//!     files: vec![FileEntry { path: "objects/f0/f00d.parquet".into(), content_hash: "f00d".into(), rows: 2, bytes: 512 }],
//!     sources: vec![SourceFile { path: "raw/a.jsonl".into(), content_hash: "beef".into() }],
//!     spec_hash: Some("5e1f".into()), run: Some(run), cache_keys: vec!["ab12".into()],
//!     ..Default::default()
//! };
//! let v = reg.commit_version(&manifest)?;
//! assert_eq!(v.to_string(), "web@1");
//! reg.tag("web@1", "release-2026-12")?;
//! reg.record_lineage_files(run, &[LineageFile {
//!     kind: LineageKind::Kept, data: Some("objects/f0/f00d.parquet".into()),
//!     lineage: "objects/1a/1a2b.lineage.parquet".into(), index: "objects/3c/3c4d.idx".into(), rows: 2,
//! }])?;
//! reg.finish_run(run, RunStatus::Succeeded)?;
//!
//! // Which versions hold a file whose id index matched a record.
//! let holding = reg.versions_holding(&["objects/f0/f00d.parquet".to_owned()])?;
//! assert_eq!(holding["objects/f0/f00d.parquet"][0].to_string(), "web@1");
//!
//! // Garbage collection returns what to delete on disk.
//! let removed = reg.gc(&GcPolicy { keep_last: 3, cache_grace_ms: 24 * 3600 * 1000 })?;
//! assert!(removed.versions.is_empty());
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod cache;
mod datasets;
mod db;
mod error;
mod legacy;
mod lineage;
mod queue;
mod runs;
mod schema;
mod tokens;
mod types;
mod watches;

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use db::{Db, TxMode};

pub use error::{Error, Result};
pub use legacy::{LegacyDataFile, LegacyOperator, LegacyReject, RejectCursor};
pub use queue::*;
pub use tokens::{ApiCall, Scope, TokenInfo};
pub use types::*;
pub use watches::{WatchCommit, WatchState};

/// Environment variable naming the registry location (file path or `postgres://` URL).
pub const REGISTRY_ENV: &str = "CURATE_REGISTRY";

/// How many times a transaction that lost to a concurrent writer is replayed.
const MAX_ATTEMPTS: u32 = 8;

/// Handle to one registry store; cheap to share between threads behind an `Arc`.
///
/// Calls on one handle are serialised on its single connection; open one handle per
/// worker thread when they should write in parallel.
pub struct Registry {
    db: Mutex<Box<dyn Db>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    /// Opens (creating and migrating if needed) the store at `location`: a
    /// `postgres://`/`postgresql://` URL, or else a SQLite file path (`sqlite://` optional).
    ///
    /// Lock contention while opening (several processes creating one fresh SQLite store
    /// at once) is waited out rather than reported.
    pub fn open(location: &str) -> Result<Self> {
        retry_busy(|| {
            let mut db = connect(location)?;
            schema::migrate(db.as_mut())?;
            Ok(Registry { db: Mutex::new(db) })
        })
    }

    /// Opens the store for reading only, so commands that only look work on a store
    /// this process may not write (a read-only `registry.db` or directory) and take no
    /// write lock. A store that does not exist yet or needs migrating is opened as by
    /// [`Registry::open`], since there is nothing to read before that.
    pub fn open_read_only(location: &str) -> Result<Self> {
        let db: Box<dyn Db> = match sqlite_path(location) {
            Some(path) if !path.exists() => return Self::open(location),
            Some(path) => Box::new(retry_busy(|| db::Sqlite::open_read_only(path))?),
            None => Box::new(retry_busy(|| db::Postgres::open(location))?),
        };
        let reg = Registry { db: Mutex::new(db) };
        match reg.schema_version() {
            Ok(v) if v == schema::LATEST => Ok(reg),
            Ok(v) if v > schema::LATEST => Err(Error::SchemaTooNew { found: v, known: schema::LATEST }),
            _ => {
                drop(reg);
                Self::open(location)
            }
        }
    }

    /// Opens the store named by `$CURATE_REGISTRY`, or `default` when it is unset.
    pub fn open_from_env(default: &str) -> Result<Self> {
        Self::open(&location_from_env(default))
    }

    /// [`Registry::open_read_only`] on `$CURATE_REGISTRY`, or `default` when it is unset.
    pub fn open_read_only_from_env(default: &str) -> Result<Self> {
        Self::open_read_only(&location_from_env(default))
    }

    /// Highest schema migration applied to the store.
    pub fn schema_version(&self) -> Result<i64> {
        self.read(schema::applied)
    }

    /// Re-applies pending migrations; returns the resulting schema version.
    pub fn migrate(&self) -> Result<i64> {
        schema::migrate(self.conn().as_mut())
    }

    fn conn(&self) -> MutexGuard<'_, Box<dyn Db>> {
        // A panic in another thread mid-call leaves at worst an open transaction, which
        // the next begin() surfaces as an error; the connection itself stays usable.
        self.db.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` in one write transaction, replaying it when a concurrent writer wins.
    fn write<T>(&self, mut f: impl FnMut(&mut dyn Db) -> Result<T>) -> Result<T> {
        self.transact(TxMode::Write, &mut f)
    }

    /// Runs `f` on one consistent snapshot.
    fn read<T>(&self, mut f: impl FnMut(&mut dyn Db) -> Result<T>) -> Result<T> {
        self.transact(TxMode::Read, &mut f)
    }

    fn transact<T>(&self, mode: TxMode, f: &mut dyn FnMut(&mut dyn Db) -> Result<T>) -> Result<T> {
        let mut guard = self.conn();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut tx = OpenTx { db: guard.as_mut(), done: false };
            let result = tx.db.begin(mode).and_then(|()| f(tx.db)).and_then(|v| tx.db.commit().map(|()| v));
            let err = match result {
                Ok(v) => {
                    tx.done = true;
                    return Ok(v);
                }
                Err(e) => e,
            };
            drop(tx);
            if !err.is_retryable() {
                return Err(err);
            }
            if attempt >= MAX_ATTEMPTS {
                return Err(Error::Contention { attempts: attempt, last: Box::new(err) });
            }
            // Jittered backoff so two losers do not collide again in lockstep.
            let jitter = u64::from(std::process::id() ^ now_ms() as u32) % 20;
            std::thread::sleep(Duration::from_millis(10 * u64::from(attempt) + jitter));
        }
    }
}

/// The role of control plane of a store, held by one `curate serve` at a time; released
/// when dropped with the [`Registry`] that took it, or when the process ends.
#[derive(Debug)]
pub struct ControlPlaneLock {
    _file: Option<std::fs::File>,
}

impl Registry {
    /// Takes the control plane role, or `None` when another process holds it. On
    /// PostgreSQL the lock belongs to this handle's connection: keep the handle open.
    pub fn lock_control_plane(&self) -> Result<Option<ControlPlaneLock>> {
        Ok(self.conn().lock_control_plane()?.map(|file| ControlPlaneLock { _file: file }))
    }
}

/// A read-write connection to the store at `location`, creating a SQLite file's directory.
fn connect(location: &str) -> Result<Box<dyn Db>> {
    Ok(match sqlite_path(location) {
        None => Box::new(db::Postgres::open(location)?),
        Some(path) => {
            // A default such as `.curate/registry.db` should work in a fresh checkout.
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            Box::new(db::Sqlite::open(path)?)
        }
    })
}

/// The store location `$CURATE_REGISTRY` names, else `default`.
fn location_from_env(default: &str) -> String {
    match std::env::var(REGISTRY_ENV) {
        Ok(loc) if !loc.is_empty() => loc,
        _ => default.to_owned(),
    }
}

/// The SQLite file a location names; `None` for PostgreSQL URLs.
fn sqlite_path(location: &str) -> Option<&std::path::Path> {
    if location.starts_with("postgres://") || location.starts_with("postgresql://") {
        return None;
    }
    Some(std::path::Path::new(location.strip_prefix("sqlite://").unwrap_or(location)))
}

/// How long opening a store keeps retrying while other processes hold its locks.
const OPEN_PATIENCE: Duration = Duration::from_secs(60);

/// Runs `f` again while it fails on lock contention, for up to [`OPEN_PATIENCE`]: some
/// steps of opening a store (switching a fresh file to WAL, WAL recovery) report busy at
/// once instead of waiting on the busy timeout.
fn retry_busy<T>(mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let started = std::time::Instant::now();
    let mut attempt: u64 = 0;
    loop {
        match f() {
            Err(e) if e.is_retryable() && started.elapsed() < OPEN_PATIENCE => {
                attempt += 1;
                let jitter = u64::from(std::process::id() ^ now_ms() as u32) % 20;
                std::thread::sleep(Duration::from_millis((10 * attempt).min(200) + jitter));
            }
            other => return other,
        }
    }
}

/// Rolls back on drop unless committed, so an error or a panic inside a transaction
/// body (e.g. in a caller's record iterator) never leaves the connection mid-transaction.
struct OpenTx<'a> {
    db: &'a mut dyn Db,
    done: bool,
}

impl Drop for OpenTx<'_> {
    fn drop(&mut self) {
        if !self.done {
            // Fails harmlessly when BEGIN itself failed or the server already aborted;
            // the error worth reporting is the one that got us here.
            let _ = self.db.rollback();
        }
    }
}

/// Milliseconds since the Unix epoch, the registry's timestamp unit.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
