//! Reading a store that still keeps per-record lineage (migrations 1-3: `records`,
//! `op_chains`, `source_files`, `version_records`) so the engine can rewrite it as lineage
//! files beside the data, and finishing that conversion with migration 4.
//!
//! The converted files are staged in [`STAGED`] while the legacy tables still exist
//! (`lineage_files` only appears with migration 4, which drops them); the final step
//! drops the legacy tables, creates `lineage_files` and moves the staged rows into it in
//! one transaction, so an interrupted upgrade leaves either the legacy store with some
//! files staged (a re-run skips them) or the finished one.

use std::collections::{BTreeSet, HashMap, VecDeque};

use serde::Deserialize;

use crate::db::{first, Cols};
use crate::error::{Error, Result};
use crate::schema;
use crate::types::{LineageFile, RecordedLineage, RunId};
use crate::{retry_busy, Registry};

/// Where converted lineage files wait for migration 4; same columns as `lineage_files`.
const STAGED: &str = "upgrade_lineage_files";

/// Created on opening for the upgrade. The index serves the per-run reject scans (the
/// legacy tables are keyed by record id only) and goes with `records` in migration 4.
const PREPARE: &str = r#"
CREATE TABLE IF NOT EXISTS upgrade_lineage_files (
    id {pk},
    run_id BIGINT NOT NULL REFERENCES runs(id),
    kind TEXT NOT NULL,
    data_path TEXT,
    lineage_path TEXT NOT NULL,
    index_path TEXT NOT NULL,
    row_count BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS upgrade_records_chain ON records (chain_id, record_id);
"#;

/// A data file listed by a legacy store's versions, with the run its lineage is
/// recorded under.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LegacyDataFile {
    /// Store path of the data file.
    pub path: String,
    /// The run of a version listing it; for a version without a run, the run of its
    /// nearest ancestor version that has one. `None` when no such run exists.
    pub run: Option<RunId>,
}

/// An operator of a legacy operator chain.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LegacyOperator {
    /// Operator name.
    pub name: String,
    /// Operator version.
    pub version: String,
    /// Its parameters (null in chains stored before they were kept).
    #[serde(default)]
    pub params: serde_json::Value,
}

/// A record a legacy run dropped, as its lineage row says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyReject {
    /// Record id.
    pub record_id: String,
    /// Input record id.
    pub source_id: String,
    /// Input file.
    pub source_file: String,
    /// Byte offset (JSONL) or row (Parquet) in the input file.
    pub source_offset: u64,
    /// The dropping step's label (`02-length_filter`).
    pub drop_step: String,
    /// Drop reason.
    pub drop_reason: String,
}

/// Where a scan of a run's rejects stopped: the last (chain, record) returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RejectCursor {
    chain: i64,
    record: String,
}

impl Registry {
    /// Opens the store at `location` for `curate registry upgrade`: migrations up to 3
    /// are applied, never migration 4 (which drops the per-record lineage tables). A
    /// store still at 3 is prepared for the conversion; one already at 4 or beyond is
    /// opened as it is (see [`Registry::needs_upgrade`]).
    pub fn open_for_upgrade(location: &str) -> Result<Self> {
        let reg = retry_busy(|| {
            let mut db = crate::connect(location)?;
            schema::migrate_to(db.as_mut(), schema::FILE_LINEAGE - 1)?;
            Ok(Registry { db: std::sync::Mutex::new(db) })
        })?;
        if reg.needs_upgrade()? {
            reg.write(|db| {
                let sql = db.dialect().ddl(PREPARE);
                db.batch(&sql)
            })?;
        }
        Ok(reg)
    }

    /// [`Registry::open_for_upgrade`] on `$CURATE_REGISTRY`, or `default` when it is unset.
    pub fn open_for_upgrade_from_env(default: &str) -> Result<Self> {
        Self::open_for_upgrade(&crate::location_from_env(default))
    }

    /// Whether the store still has its per-record lineage tables (schema below 4).
    pub fn needs_upgrade(&self) -> Result<bool> {
        Ok(self.schema_version()? < schema::FILE_LINEAGE)
    }

    /// Per-record lineage rows of a store that needs upgrading.
    pub fn legacy_record_count(&self) -> Result<i64> {
        self.read(|db| first(db.query("SELECT COUNT(*) FROM records", &[])?).map_or(Ok(0), |v| v.int()))
    }

    /// Every data file any version lists, once per run its lineage belongs to, in path
    /// order.
    pub fn legacy_data_files(&self) -> Result<Vec<LegacyDataFile>> {
        self.read(|db| {
            let mut run_of: HashMap<i64, Option<RunId>> = HashMap::new();
            for row in db.query("SELECT id, run_id FROM versions", &[])? {
                let mut c = Cols::new(row);
                run_of.insert(c.int()?, c.opt_int()?);
            }
            let mut parents: HashMap<i64, Vec<i64>> = HashMap::new();
            for row in db.query("SELECT version_id, parent_id FROM version_parents ORDER BY parent_id DESC", &[])? {
                let mut c = Cols::new(row);
                parents.entry(c.int()?).or_default().push(c.int()?);
            }
            let mut out = BTreeSet::new();
            for row in db.query("SELECT version_id, path FROM version_files", &[])? {
                let mut c = Cols::new(row);
                let version = c.int()?;
                out.insert(LegacyDataFile { path: c.text()?, run: effective_run(version, &run_of, &parents) });
            }
            // A file some run covers needs no run-less entry.
            let covered: BTreeSet<String> = out.iter().filter(|f| f.run.is_some()).map(|f| f.path.clone()).collect();
            Ok(out.into_iter().filter(|f| f.run.is_some() || !covered.contains(&f.path)).collect())
        })
    }

    /// Runs with a recorded operator chain, oldest first.
    pub fn legacy_runs(&self) -> Result<Vec<RunId>> {
        self.read(|db| {
            db.query("SELECT DISTINCT run_id FROM op_chains ORDER BY run_id", &[])?.into_iter().map(|r| Cols::new(r).int()).collect()
        })
    }

    /// The operators a kept record of `run` went through: its longest operator chain
    /// (the one the last step registered); empty when the run registered none.
    pub fn legacy_operators(&self, run: RunId) -> Result<Vec<LegacyOperator>> {
        self.read(|db| {
            let mut best: Vec<LegacyOperator> = Vec::new();
            for row in db.query("SELECT ops FROM op_chains WHERE run_id = ? ORDER BY id", &[run.into()])? {
                let ops: Vec<LegacyOperator> = serde_json::from_str(&Cols::new(row).text()?)?;
                if ops.len() >= best.len() {
                    best = ops;
                }
            }
            Ok(best)
        })
    }

    /// Up to `limit` records `run` dropped, after `cursor` (from the start with the
    /// default cursor), in a stable order; returns them and the cursor to continue from.
    pub fn legacy_rejects(&self, run: RunId, cursor: &RejectCursor, limit: usize) -> Result<(Vec<LegacyReject>, RejectCursor)> {
        self.read(|db| {
            let rows = db.query(
                "SELECT r.chain_id, r.record_id, r.source_id, s.path, r.source_offset, r.drop_step, r.drop_reason \
                 FROM records r JOIN op_chains c ON c.id = r.chain_id LEFT JOIN source_files s ON s.id = r.source_file_id \
                 WHERE c.run_id = ? AND r.drop_step IS NOT NULL AND (r.chain_id > ? OR (r.chain_id = ? AND r.record_id > ?)) \
                 ORDER BY r.chain_id, r.record_id LIMIT ?",
                &[
                    run.into(),
                    cursor.chain.into(),
                    cursor.chain.into(),
                    cursor.record.as_str().into(),
                    i64::try_from(limit).unwrap_or(i64::MAX).into(),
                ],
            )?;
            let mut out = Vec::with_capacity(rows.len());
            let mut next = cursor.clone();
            for row in rows {
                let mut c = Cols::new(row);
                let chain = c.int()?;
                let record_id = c.text()?;
                let source_id = c.text()?;
                let source_file = c
                    .opt_text()?
                    .ok_or_else(|| Error::Corrupt(format!("lineage of record {record_id:?} names a source file that is not recorded")))?;
                let source_offset = u64::try_from(c.int()?).map_err(|_| Error::Corrupt(format!("record {record_id:?} has a negative source offset")))?;
                let drop_step = c.text()?;
                let drop_reason = c.opt_text()?.unwrap_or_default();
                next = RejectCursor { chain, record: record_id.clone() };
                out.push(LegacyReject { record_id, source_id, source_file, source_offset, drop_step, drop_reason });
            }
            Ok((out, next))
        })
    }

    /// Lineage files converted so far by an upgrade of this store, oldest run first.
    pub fn staged_lineage_files(&self) -> Result<Vec<RecordedLineage>> {
        self.read(|db| crate::lineage::select_lineage_files(db, STAGED))
    }

    /// Stages converted lineage files of `run` (their objects already in the store) in
    /// one transaction, to be recorded as the run's lineage by [`Registry::finish_upgrade`].
    pub fn stage_lineage_files(&self, run: RunId, files: &[LineageFile]) -> Result<()> {
        self.write(|db| crate::lineage::insert_lineage_files(db, STAGED, run, files))
    }

    /// Ends the upgrade in one transaction: migration 4 drops the per-record lineage
    /// tables and creates `lineage_files`, which receives the staged files; later
    /// migrations follow. Returns the per-record rows that were dropped; 0 on a store
    /// already upgraded.
    pub fn finish_upgrade(&self) -> Result<i64> {
        let records = self.write(|db| {
            schema::lock_migrations(db)?;
            // Another process may have finished it since this one looked.
            if schema::applied(db)? >= schema::FILE_LINEAGE {
                return Ok(0);
            }
            let records = first(db.query("SELECT COUNT(*) FROM records", &[])?).map_or(Ok(0), |v| v.int())?;
            schema::apply(db, schema::FILE_LINEAGE)?;
            db.execute(
                &format!(
                    "INSERT INTO lineage_files (run_id, kind, data_path, lineage_path, index_path, row_count) \
                     SELECT run_id, kind, data_path, lineage_path, index_path, row_count FROM {STAGED} ORDER BY id"
                ),
                &[],
            )?;
            db.batch(&format!("DROP TABLE {STAGED}"))?;
            Ok(records)
        })?;
        self.migrate()?;
        Ok(records)
    }
}

/// The run of `version`, or else of its nearest ancestor that has one (breadth first,
/// newest parent first).
fn effective_run(version: i64, run_of: &HashMap<i64, Option<RunId>>, parents: &HashMap<i64, Vec<i64>>) -> Option<RunId> {
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from([version]);
    while let Some(v) = queue.pop_front() {
        if !seen.insert(v) {
            continue;
        }
        if let Some(run) = run_of.get(&v).copied().flatten() {
            return Some(run);
        }
        queue.extend(parents.get(&v).into_iter().flatten().copied());
    }
    None
}
