//! Lineage bookkeeping at file granularity: which lineage sidecar and id index describe
//! each output file of a run, and the audit trail of `forget` requests. Record-level
//! lineage lives in the sidecars beside the data (ARCHITECTURE.md §5), so nothing here
//! grows with the number of records.

use std::collections::{BTreeMap, BTreeSet};

use crate::cache::IN_CHUNK;
use crate::db::{first, placeholders, Cols, Db, Value};
use crate::error::{Error, Result};
use crate::runs::ensure_run;
use crate::types::{AuditEntry, AuditId, BloomRef, DatasetForget, ForgetNote, LineageFile, LineageKind, RecordedLineage, RunId, VersionRef};
use crate::{now_ms, Registry};

impl Registry {
    /// Records the lineage files of a run's outputs (one row per output file).
    pub fn record_lineage_files(&self, run: RunId, files: &[LineageFile]) -> Result<()> {
        self.write(|db| insert_lineage_files(db, "lineage_files", run, files))
    }

    /// Records lineage files of several runs in one transaction.
    pub fn record_lineage_of_runs(&self, files: &[(RunId, LineageFile)]) -> Result<()> {
        self.write(|db| {
            for (run, f) in files {
                insert_lineage_files(db, "lineage_files", *run, std::slice::from_ref(f))?;
            }
            Ok(())
        })
    }

    /// Every recorded lineage file, oldest run first.
    pub fn lineage_files(&self) -> Result<Vec<RecordedLineage>> {
        self.read(|db| select_lineage_files(db, "lineage_files"))
    }

    /// Points lineage rows at rewritten files: each `(old lineage path, new file)` pair
    /// replaces the data, lineage and index paths and the row count of the rows that
    /// named the old lineage file. The sanctioned edit of `forget --purge`.
    pub fn replace_lineage_files(&self, replacements: &[(String, LineageFile)]) -> Result<()> {
        self.write(|db| {
            for (old, new) in replacements {
                // The old sidecar's filter does not describe the rewritten file.
                db.execute("DELETE FROM lineage_blooms WHERE lineage_path = ?", &[old.as_str().into()])?;
                db.execute(
                    "UPDATE lineage_files SET data_path = ?, lineage_path = ?, index_path = ?, row_count = ? WHERE lineage_path = ?",
                    &[
                        new.data.as_deref().into(),
                        new.lineage.as_str().into(),
                        new.index.as_str().into(),
                        (new.rows as i64).into(),
                        old.as_str().into(),
                    ],
                )?;
            }
            Ok(())
        })
    }

    /// Records where sidecars' bloom filters sit in a bloom pack.
    pub fn record_blooms(&self, blooms: &[BloomRef]) -> Result<()> {
        self.write(|db| {
            for b in blooms {
                db.execute(
                    "INSERT INTO lineage_blooms (lineage_path, pack_path, pack_slot) VALUES (?, ?, ?) \
                     ON CONFLICT (lineage_path) DO UPDATE SET pack_path = excluded.pack_path, pack_slot = excluded.pack_slot",
                    &[
                        b.lineage.as_str().into(),
                        b.pack.as_str().into(),
                        i64::try_from(b.slot).map_err(|_| Error::InvalidManifest("slot exceeds 2^63".into()))?.into(),
                    ],
                )?;
            }
            Ok(())
        })
    }

    /// Every recorded bloom filter location, by sidecar.
    pub fn blooms(&self) -> Result<BTreeMap<String, BloomRef>> {
        self.read(|db| {
            db.query("SELECT lineage_path, pack_path, pack_slot FROM lineage_blooms", &[])?
                .into_iter()
                .map(|row| {
                    let mut c = Cols::new(row);
                    let b = BloomRef { lineage: c.text()?, pack: c.text()?, slot: c.int()? as u64 };
                    Ok((b.lineage.clone(), b))
                })
                .collect()
        })
    }

    /// Forgets the lineage rows naming these sidecars (their records were all purged).
    pub fn drop_lineage_files(&self, lineage_paths: &[String]) -> Result<()> {
        self.write(|db| {
            for p in lineage_paths {
                db.execute("DELETE FROM lineage_files WHERE lineage_path = ?", &[p.as_str().into()])?;
                db.execute("DELETE FROM lineage_blooms WHERE lineage_path = ?", &[p.as_str().into()])?;
            }
            Ok(())
        })
    }

    /// For each of `data_paths`, the versions whose manifests list it, oldest first.
    pub fn versions_holding(&self, data_paths: &[String]) -> Result<BTreeMap<String, Vec<VersionRef>>> {
        self.read(|db| {
            let mut out: BTreeMap<String, Vec<VersionRef>> = BTreeMap::new();
            for chunk in data_paths.chunks(IN_CHUNK) {
                let params: Vec<Value> = chunk.iter().map(|s| s.as_str().into()).collect();
                let sql = format!(
                    "SELECT f.path, d.name, v.version FROM version_files f JOIN versions v ON v.id = f.version_id \
                     JOIN datasets d ON d.id = v.dataset_id WHERE f.path IN ({}) ORDER BY d.name, v.version",
                    placeholders(chunk.len())
                );
                for row in db.query(&sql, &params)? {
                    let mut c = Cols::new(row);
                    let path = c.text()?;
                    out.entry(path).or_default().push(VersionRef { dataset: c.text()?, version: c.int()? });
                }
            }
            Ok(out)
        })
    }

    /// Output locations of `runs` (runs recorded before outputs were tracked are left out).
    pub fn run_outputs(&self, runs: &[RunId]) -> Result<BTreeSet<String>> {
        self.read(|db| {
            let mut out = BTreeSet::new();
            for chunk in runs.chunks(IN_CHUNK) {
                let params: Vec<Value> = chunk.iter().map(|&r| r.into()).collect();
                let sql = format!("SELECT DISTINCT output FROM runs WHERE id IN ({}) AND output IS NOT NULL", placeholders(chunk.len()));
                for row in db.query(&sql, &params)? {
                    out.insert(Cols::new(row).text()?);
                }
            }
            Ok(out)
        })
    }

    /// Records a forget request (the sources found in lineage and the per-dataset plan);
    /// the versions that carry it out are committed with `forget_audit` set to the id.
    pub fn record_forget(&self, sources: &[String], reason: &str, actor: &str, plan: &[DatasetForget]) -> Result<AuditId> {
        let plan_json = serde_json::to_string(plan)?;
        let sources_json = serde_json::to_string(sources)?;
        self.write(|db| {
            first(db.query(
                "INSERT INTO forget_audits (actor, at, reason, sources, plan) VALUES (?, ?, ?, ?, ?) RETURNING id",
                &[actor.into(), now_ms().into(), reason.into(), sources_json.as_str().into(), plan_json.as_str().into()],
            )?)
            .ok_or_else(|| Error::Corrupt("INSERT RETURNING gave no row".into()))?
            .int()
        })
    }

    /// The forget requests whose sources include any of `ids`, oldest first. Audits are
    /// scanned whole: there is one per human request.
    pub fn forget_notes(&self, ids: &[String]) -> Result<Vec<ForgetNote>> {
        self.read(|db| {
            let mut notes = Vec::new();
            for row in db.query("SELECT id, actor, at, reason, sources FROM forget_audits ORDER BY id", &[])? {
                let mut c = Cols::new(row);
                let (audit, actor, at_ms, reason) = (c.int()?, c.text()?, c.int()?, c.text()?);
                let sources: Vec<String> = serde_json::from_str(&c.text()?)?;
                if let Some(source_id) = sources.into_iter().find(|s| ids.contains(s)) {
                    notes.push(ForgetNote { audit, at_ms, actor, reason, source_id, without: Vec::new() });
                }
            }
            for n in &mut notes {
                n.without = audit_versions(db, n.audit)?;
            }
            Ok(notes)
        })
    }

    /// Loads a forget audit entry with the versions committed to execute it.
    pub fn audit(&self, id: AuditId) -> Result<AuditEntry> {
        self.read(|db| {
            let row = db
                .query("SELECT actor, at, reason, sources, plan FROM forget_audits WHERE id = ?", &[id.into()])?
                .into_iter()
                .next()
                .ok_or(Error::AuditNotFound(id))?;
            let mut c = Cols::new(row);
            let (actor, at_ms, reason) = (c.text()?, c.int()?, c.text()?);
            let sources = serde_json::from_str(&c.text()?)?;
            let plan = serde_json::from_str(&c.text()?)?;
            let resulting_versions = audit_versions(db, id)?;
            Ok(AuditEntry { id, actor, at_ms, reason, sources, plan, resulting_versions })
        })
    }
}

/// Every lineage row of `table` (`lineage_files`, or the upgrade's staging table of the
/// same shape), oldest run first.
pub(crate) fn select_lineage_files(db: &mut dyn Db, table: &str) -> Result<Vec<RecordedLineage>> {
    db.query(&format!("SELECT run_id, kind, data_path, lineage_path, index_path, row_count FROM {table} ORDER BY run_id, id"), &[])?
        .into_iter()
        .map(|row| {
            let mut c = Cols::new(row);
            let run = c.int()?;
            let kind = LineageKind::parse(&c.text()?)?;
            let file = LineageFile { kind, data: c.opt_text()?, lineage: c.text()?, index: c.text()?, rows: c.int()? as u64 };
            Ok(RecordedLineage { run, file })
        })
        .collect()
}

/// Inserts lineage rows of `run` into `table` (`lineage_files`, or the upgrade's staging
/// table of the same shape).
pub(crate) fn insert_lineage_files(db: &mut dyn Db, table: &str, run: RunId, files: &[LineageFile]) -> Result<()> {
    ensure_run(db, run)?;
    for f in files {
        db.execute(
            &format!("INSERT INTO {table} (run_id, kind, data_path, lineage_path, index_path, row_count) VALUES (?, ?, ?, ?, ?, ?)"),
            &[
                run.into(),
                f.kind.as_str().into(),
                f.data.as_deref().into(),
                f.lineage.as_str().into(),
                f.index.as_str().into(),
                i64::try_from(f.rows).map_err(|_| Error::InvalidManifest("row count exceeds 2^63".into()))?.into(),
            ],
        )?;
    }
    Ok(())
}

/// Versions committed to execute forget request `id`.
fn audit_versions(db: &mut dyn Db, id: AuditId) -> Result<Vec<VersionRef>> {
    db.query(
        "SELECT d.name, v.version FROM versions v JOIN datasets d ON d.id = v.dataset_id \
         WHERE v.forget_audit_id = ? ORDER BY d.name, v.version",
        &[id.into()],
    )?
    .into_iter()
    .map(|row| {
        let mut c = Cols::new(row);
        Ok(VersionRef { dataset: c.text()?, version: c.int()? })
    })
    .collect()
}
