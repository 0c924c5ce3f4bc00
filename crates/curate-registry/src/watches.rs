//! Watched pipelines: the cursor of input files their latest version consumed, and what
//! the watcher saw at its last look (lag, files pending, last error).

use crate::db::{first, Cols, Db, Row};
use crate::error::Result;
use crate::queue::JobId;
use crate::{now_ms, Registry};

/// A watch's cursor, committed with the version it describes.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchCommit {
    /// The watched pipeline.
    pub pipeline: String,
    /// The input files the version consumed, with the objects made from each.
    pub cursor: serde_json::Value,
}

/// A watched pipeline as the registry keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchState {
    /// The pipeline.
    pub pipeline: String,
    /// Paused watches start no runs.
    pub paused: bool,
    /// The input files the latest version consumed (`{"files": {path: {...}}}`).
    pub cursor: serde_json::Value,
    /// The latest version the watch committed.
    pub last_version: Option<String>,
    /// When the watcher last listed the input.
    pub checked_at_ms: Option<i64>,
    /// Age of the oldest input change no version holds yet.
    pub lag_ms: i64,
    /// Input files changed since the latest version.
    pub pending: i64,
    /// Why the last incremental run or listing failed.
    pub last_error: Option<String>,
}

const COLS: &str = "pipeline, paused, cursor, last_version, checked_at, lag_ms, pending, last_error";

fn watch_row(row: Row) -> Result<WatchState> {
    let mut c = Cols::new(row);
    Ok(WatchState {
        pipeline: c.text()?,
        paused: c.int()? != 0,
        cursor: serde_json::from_str(&c.text()?)?,
        last_version: c.opt_text()?,
        checked_at_ms: c.opt_int()?,
        lag_ms: c.int()?,
        pending: c.int()?,
        last_error: c.opt_text()?,
    })
}

/// Creates the watch row of `pipeline` with an empty cursor if it has none.
fn ensure(db: &mut dyn Db, pipeline: &str) -> Result<()> {
    db.execute("INSERT INTO watches (pipeline, cursor) VALUES (?, '{}') ON CONFLICT (pipeline) DO NOTHING", &[pipeline.into()])?;
    Ok(())
}

/// Stores a version's cursor; called inside the transaction that commits the version.
pub(crate) fn commit_cursor(db: &mut dyn Db, w: &WatchCommit, version: &str) -> Result<()> {
    ensure(db, &w.pipeline)?;
    db.execute(
        "UPDATE watches SET cursor = ?, last_version = ?, last_error = NULL WHERE pipeline = ?",
        &[w.cursor.to_string().into(), version.into(), w.pipeline.as_str().into()],
    )?;
    Ok(())
}

impl Registry {
    /// The watch of `pipeline`, if it was ever watched.
    pub fn watch(&self, pipeline: &str) -> Result<Option<WatchState>> {
        self.read(|db| db.query(&format!("SELECT {COLS} FROM watches WHERE pipeline = ?"), &[pipeline.into()])?.into_iter().next().map(watch_row).transpose())
    }

    /// Every watch, by pipeline.
    pub fn watches(&self) -> Result<Vec<WatchState>> {
        self.read(|db| db.query(&format!("SELECT {COLS} FROM watches ORDER BY pipeline"), &[])?.into_iter().map(watch_row).collect())
    }

    /// Records what the watcher saw: lag, pending files, and an error (or none).
    pub fn note_watch(&self, pipeline: &str, lag_ms: i64, pending: i64, error: Option<&str>) -> Result<()> {
        self.write(|db| {
            ensure(db, pipeline)?;
            db.execute(
                "UPDATE watches SET checked_at = ?, lag_ms = ?, pending = ?, last_error = ? WHERE pipeline = ?",
                &[now_ms().into(), lag_ms.into(), pending.into(), error.into(), pipeline.into()],
            )?;
            Ok(())
        })
    }

    /// Pauses or resumes the watch of `pipeline`.
    pub fn set_watch_paused(&self, pipeline: &str, paused: bool) -> Result<()> {
        self.write(|db| {
            ensure(db, pipeline)?;
            db.execute("UPDATE watches SET paused = ? WHERE pipeline = ?", &[i64::from(paused).into(), pipeline.into()])?;
            Ok(())
        })
    }

    /// The run of `pipeline` that has not ended, if any.
    pub fn unfinished_job(&self, pipeline: &str) -> Result<Option<JobId>> {
        self.read(|db| {
            first(db.query(
                "SELECT id FROM jobs WHERE pipeline = ? AND state IN ('queued', 'running', 'cancelling') ORDER BY id LIMIT 1",
                &[pipeline.into()],
            )?)
            .map(|v| v.int())
            .transpose()
        })
    }
}
