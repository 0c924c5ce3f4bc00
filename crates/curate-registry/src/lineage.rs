//! Record index: per-record lineage, `explain`, reverse lookup from sources, `forget`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::cache::IN_CHUNK;
use crate::db::{first, placeholders, Cols, Db, Value};
use crate::error::{Error, Result};
use crate::runs::ensure_run;
use crate::types::{
    AuditEntry, AuditId, DatasetForget, DerivedRecord, Dropped, Exclusion, Explanation, ForgetNote, ForgetPlan,
    Occurrence, OpChainId, Operator, RecordLineage, RunId, VersionRef,
};
use crate::{now_ms, Registry};

/// Records per bulk transaction. Record ids are hash-like, so each insert lands on a
/// random B-tree page and every commit rewrites roughly one page per row until the
/// whole index is dirty: few, large transactions cut SQLite's write volume about
/// five-fold (10M records: 503 s at 50k per commit, 228 s at 500k), while still
/// letting other writers in between chunks and bounding a replay after a lost race.
const RECORD_CHUNK: usize = 500_000;

const RECORD_COLUMNS: &[&str] =
    &["record_id", "source_id", "source_file_id", "source_offset", "chain_id", "drop_step", "drop_reason"];

impl Registry {
    /// Stores the operator chain of one run step once and returns its id; records refer
    /// to it instead of repeating operator lists. Registering the same chain again
    /// returns the same id.
    pub fn register_op_chain(&self, run: RunId, step: &str, operators: &[Operator]) -> Result<OpChainId> {
        let ops = serde_json::to_string(operators)?;
        self.write(|db| {
            ensure_run(db, run)?;
            let params: [Value; 3] = [run.into(), step.into(), ops.as_str().into()];
            let existing = db.query("SELECT id FROM op_chains WHERE run_id = ? AND step = ? AND ops = ?", &params)?;
            let row = match first(existing) {
                Some(id) => id,
                None => first(db.query(
                    "INSERT INTO op_chains (run_id, step, ops) VALUES (?, ?, ?) RETURNING id",
                    &params,
                )?)
                .ok_or_else(|| Error::Corrupt("INSERT RETURNING gave no row".into()))?,
            };
            Ok(OpChainId(row.int()?))
        })
    }

    /// Bulk-loads record lineage; a (record id, chain) pair already present keeps its
    /// first lineage, while the same record id under another chain (another run) is added.
    /// Returns how many records were new. Commits every few tens of thousands of
    /// records, so an interrupted load leaves a prefix that a rerun completes.
    pub fn insert_records<I>(&self, records: I) -> Result<u64>
    where
        I: IntoIterator<Item = RecordLineage>,
    {
        let mut file_ids: HashMap<String, i64> = HashMap::new();
        let mut inserted = 0;
        let mut chunk = Vec::with_capacity(RECORD_CHUNK);
        let mut records = records.into_iter().peekable();
        while records.peek().is_some() {
            chunk.clear();
            chunk.extend(records.by_ref().take(RECORD_CHUNK));
            let (n, learnt) = self.write(|db| {
                let learnt = intern_source_files(db, &file_ids, &chunk)?;
                let mut rows = Vec::with_capacity(chunk.len());
                for r in &chunk {
                    let file_id = file_ids.get(&r.source_file).or_else(|| learnt.get(&r.source_file)).copied();
                    let file_id = file_id.ok_or_else(|| Error::Corrupt(format!("source file {} not interned", r.source_file)))?;
                    let offset = i64::try_from(r.source_offset)
                        .map_err(|_| Error::InvalidManifest(format!("offset of {} exceeds 2^63", r.record_id)))?;
                    rows.push(vec![
                        r.record_id.as_str().into(),
                        r.source_id.as_str().into(),
                        file_id.into(),
                        offset.into(),
                        r.chain.0.into(),
                        r.dropped.as_ref().map(|d| d.step.as_str()).into(),
                        r.dropped.as_ref().map(|d| d.reason.as_str()).into(),
                    ]);
                }
                Ok((db.bulk_insert("records", RECORD_COLUMNS, &rows)?, learnt))
            })?;
            // Only ids from committed transactions may be cached.
            file_ids.extend(learnt);
            inserted += n;
        }
        self.after_bulk_load("records", inserted)?;
        Ok(inserted)
    }

    /// Where a record came from, what touched it in each run that processed it, whether
    /// it was dropped, which dataset versions hold it, and what was derived from it;
    /// `None` for an unknown record id.
    pub fn explain(&self, record_id: &str) -> Result<Option<Explanation>> {
        self.read(|db| {
            let rows = db.query(
                "SELECT r.source_id, s.path, r.source_offset, c.run_id, c.step, c.ops, r.drop_step, r.drop_reason \
                 FROM records r JOIN source_files s ON s.id = r.source_file_id JOIN op_chains c ON c.id = r.chain_id \
                 WHERE r.record_id = ? ORDER BY c.run_id, r.chain_id",
                &[record_id.into()],
            )?;
            if rows.is_empty() {
                return Ok(None);
            }
            let mut occurrences = Vec::with_capacity(rows.len());
            for row in rows {
                let mut c = Cols::new(row);
                let (source_id, source_file, source_offset) = (c.text()?, c.text()?, c.int()? as u64);
                let (run, step) = (c.int()?, c.text()?);
                let operators = serde_json::from_str(&c.text()?)?;
                let dropped = match (c.opt_text()?, c.opt_text()?) {
                    (Some(step), Some(reason)) => Some(Dropped { step, reason }),
                    _ => None,
                };
                occurrences.push(Occurrence { source_id, source_file, source_offset, run, step, operators, dropped });
            }
            let versions = memberships(db, &[record_id.to_owned()])?.remove(record_id).unwrap_or_default();
            let mut derived = derivation_closure(db, &[record_id.to_owned()])?;
            derived.retain(|(r, _)| r != record_id);
            derived.sort();
            let ids: Vec<String> = derived.iter().map(|(r, _)| r.clone()).collect();
            let mut member = memberships(db, &ids)?;
            let derived = derived
                .into_iter()
                .map(|(record_id, source_id)| {
                    let versions = member.remove(&record_id).unwrap_or_default();
                    DerivedRecord { record_id, source_id, versions }
                })
                .collect();
            let forgets = forget_notes(db, record_id)?;
            Ok(Some(Explanation { record_id: record_id.to_owned(), occurrences, versions, derived, forgets }))
        })
    }

    /// Every record derived, directly or through intermediate records, from
    /// `source_id`, with the dataset versions holding each.
    pub fn derived_from_source(&self, source_id: &str) -> Result<Vec<DerivedRecord>> {
        self.read(|db| {
            let derived = derivation_closure(db, &[source_id.to_owned()])?;
            let ids: Vec<String> = derived.iter().map(|(r, _)| r.clone()).collect();
            let mut member = memberships(db, &ids)?;
            Ok(derived
                .into_iter()
                .map(|(record_id, source_id)| {
                    let versions = member.remove(&record_id).unwrap_or_default();
                    DerivedRecord { record_id, source_id, versions }
                })
                .collect())
        })
    }

    /// Output locations of the runs that processed any of `record_ids` (runs recorded
    /// before outputs were tracked are left out), so a purge can reach those files.
    pub fn record_outputs(&self, record_ids: &[String]) -> Result<BTreeSet<String>> {
        self.read(|db| {
            let mut out = BTreeSet::new();
            for chunk in record_ids.chunks(IN_CHUNK) {
                let params: Vec<Value> = chunk.iter().map(|s| s.as_str().into()).collect();
                let sql = format!(
                    "SELECT DISTINCT u.output FROM records r JOIN op_chains c ON c.id = r.chain_id \
                     JOIN runs u ON u.id = c.run_id WHERE r.record_id IN ({}) AND u.output IS NOT NULL",
                    placeholders(chunk.len())
                );
                for row in db.query(&sql, &params)? {
                    out.insert(Cols::new(row).text()?);
                }
            }
            Ok(out)
        })
    }

    /// Plans the removal of everything derived from `sources` and records an audit
    /// entry. Each affected dataset (specialised ones included, since their records
    /// trace back through the global one) gets the records of its latest version to
    /// exclude; the engine then commits new versions with `forget_audit` set to
    /// the returned audit id.
    ///
    /// Ids the registry has never seen are left out of the audit entry and returned in
    /// [`ForgetPlan::unknown`]; when no id is known nothing is recorded and the call
    /// fails with [`Error::UnknownSources`], so a typo cannot pass for an erasure.
    pub fn forget(&self, sources: &[String], reason: &str, actor: &str) -> Result<ForgetPlan> {
        let mut requested: Vec<String> = Vec::with_capacity(sources.len());
        for s in sources {
            if !requested.contains(s) {
                requested.push(s.clone());
            }
        }
        self.write(|db| {
            let seen = known_ids(db, &requested)?;
            let (known, unknown): (Vec<String>, Vec<String>) = requested.iter().cloned().partition(|s| seen.contains(s));
            if known.is_empty() {
                return Err(Error::UnknownSources(unknown));
            }
            let derived = derivation_closure(db, &known)?;
            let ids: Vec<String> = derived.into_iter().map(|(r, _)| r).collect();
            let mut by_dataset: BTreeMap<String, (BTreeSet<i64>, Vec<Exclusion>)> = BTreeMap::new();
            let latest = latest_versions(db)?;
            for (record_id, versions) in memberships(db, &ids)? {
                for (v, file) in versions {
                    let entry = by_dataset.entry(v.dataset.clone()).or_default();
                    entry.0.insert(v.version);
                    if latest.get(&v.dataset) == Some(&v.version) {
                        entry.1.push(Exclusion { record_id: record_id.clone(), file });
                    }
                }
            }
            let datasets: Vec<DatasetForget> = by_dataset
                .into_iter()
                .map(|(dataset, (versions, mut exclude))| {
                    exclude.sort_by(|a, b| a.record_id.cmp(&b.record_id));
                    let latest = latest.get(&dataset).copied().unwrap_or(0);
                    DatasetForget { dataset, latest, exclude, affected_versions: versions.into_iter().collect() }
                })
                .collect();
            let plan_json = serde_json::to_string(&datasets)?;
            let sources_json = serde_json::to_string(&known)?;
            let audit = first(db.query(
                "INSERT INTO forget_audits (actor, at, reason, sources, plan) VALUES (?, ?, ?, ?, ?) RETURNING id",
                &[actor.into(), now_ms().into(), reason.into(), sources_json.as_str().into(), plan_json.as_str().into()],
            )?)
            .ok_or_else(|| Error::Corrupt("INSERT RETURNING gave no row".into()))?
            .int()?;
            Ok(ForgetPlan { audit, datasets, unknown })
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

/// Which of `ids` occur in the record index, as a record or as a source.
fn known_ids(db: &mut dyn Db, ids: &[String]) -> Result<HashSet<String>> {
    let mut seen = HashSet::new();
    for chunk in ids.chunks(IN_CHUNK) {
        let params: Vec<Value> = chunk.iter().map(|s| s.as_str().into()).collect();
        let list = placeholders(chunk.len());
        for sql in [
            format!("SELECT DISTINCT source_id FROM records WHERE source_id IN ({list})"),
            format!("SELECT DISTINCT record_id FROM records WHERE record_id IN ({list})"),
        ] {
            for row in db.query(&sql, &params)? {
                seen.insert(Cols::new(row).text()?);
            }
        }
    }
    Ok(seen)
}

/// The forget requests whose sources include `record_id` or any record it derives from.
/// Audits are scanned whole: there is one per human request, and their source lists
/// are stored as JSON.
fn forget_notes(db: &mut dyn Db, record_id: &str) -> Result<Vec<ForgetNote>> {
    let mut ancestors: HashSet<String> = HashSet::from([record_id.to_owned()]);
    let mut frontier = vec![record_id.to_owned()];
    while !frontier.is_empty() {
        let mut next = Vec::new();
        for chunk in frontier.chunks(IN_CHUNK) {
            let params: Vec<Value> = chunk.iter().map(|s| s.as_str().into()).collect();
            let sql = format!("SELECT DISTINCT source_id FROM records WHERE record_id IN ({})", placeholders(chunk.len()));
            for row in db.query(&sql, &params)? {
                let source = Cols::new(row).text()?;
                if ancestors.insert(source.clone()) {
                    next.push(source);
                }
            }
        }
        frontier = next;
    }
    let mut notes = Vec::new();
    for row in db.query("SELECT id, actor, at, reason, sources FROM forget_audits ORDER BY id", &[])? {
        let mut c = Cols::new(row);
        let (audit, actor, at_ms, reason) = (c.int()?, c.text()?, c.int()?, c.text()?);
        let sources: Vec<String> = serde_json::from_str(&c.text()?)?;
        if let Some(source_id) = sources.into_iter().find(|s| ancestors.contains(s)) {
            notes.push(ForgetNote { audit, at_ms, actor, reason, source_id, without: Vec::new() });
        }
    }
    for n in &mut notes {
        n.without = audit_versions(db, n.audit)?;
    }
    Ok(notes)
}

/// Ids for the chunk's source paths not yet in `known`, inserting new paths.
fn intern_source_files(
    db: &mut dyn Db,
    known: &HashMap<String, i64>,
    chunk: &[RecordLineage],
) -> Result<HashMap<String, i64>> {
    let mut learnt = HashMap::new();
    for r in chunk {
        if known.contains_key(&r.source_file) || learnt.contains_key(&r.source_file) {
            continue;
        }
        let path: Value = r.source_file.as_str().into();
        db.execute("INSERT INTO source_files (path) VALUES (?) ON CONFLICT (path) DO NOTHING", std::slice::from_ref(&path))?;
        let id = first(db.query("SELECT id FROM source_files WHERE path = ?", &[path])?)
            .ok_or_else(|| Error::Corrupt(format!("source file {} vanished", r.source_file)))?
            .int()?;
        learnt.insert(r.source_file.clone(), id);
    }
    Ok(learnt)
}

/// (record id, its source id) for every record reachable from `sources` through the
/// source-id links, breadth first. Following links transitively is what reaches
/// specialised datasets whose records were derived from a global dataset's records. A
/// record that keeps its source's id (operators keep ids) is reported too.
fn derivation_closure(db: &mut dyn Db, sources: &[String]) -> Result<Vec<(String, String)>> {
    let mut expanded: HashSet<String> = sources.iter().cloned().collect();
    let mut emitted: HashSet<String> = HashSet::new();
    let mut frontier: Vec<String> = sources.to_vec();
    let mut out = Vec::new();
    while !frontier.is_empty() {
        let mut next = Vec::new();
        for chunk in frontier.chunks(IN_CHUNK) {
            let params: Vec<Value> = chunk.iter().map(|s| s.as_str().into()).collect();
            let sql = format!("SELECT record_id, source_id FROM records WHERE source_id IN ({})", placeholders(chunk.len()));
            for row in db.query(&sql, &params)? {
                let mut c = Cols::new(row);
                let (record, source) = (c.text()?, c.text()?);
                if !emitted.insert(record.clone()) {
                    continue;
                }
                if expanded.insert(record.clone()) {
                    next.push(record.clone());
                }
                out.push((record, source));
            }
        }
        frontier = next;
    }
    Ok(out)
}

/// For each record id, the versions holding it and the file it sits in.
fn memberships(db: &mut dyn Db, record_ids: &[String]) -> Result<HashMap<String, Vec<(VersionRef, String)>>> {
    let mut out: HashMap<String, Vec<(VersionRef, String)>> = HashMap::new();
    for chunk in record_ids.chunks(IN_CHUNK) {
        let params: Vec<Value> = chunk.iter().map(|s| s.as_str().into()).collect();
        let sql = format!(
            "SELECT vr.record_id, d.name, v.version, f.path FROM version_records vr \
             JOIN versions v ON v.id = vr.version_id JOIN datasets d ON d.id = v.dataset_id \
             JOIN version_files f ON f.id = vr.file_id \
             WHERE vr.record_id IN ({}) ORDER BY d.name, v.version",
            placeholders(chunk.len())
        );
        for row in db.query(&sql, &params)? {
            let mut c = Cols::new(row);
            let record = c.text()?;
            let v = VersionRef { dataset: c.text()?, version: c.int()? };
            out.entry(record).or_default().push((v, c.text()?));
        }
    }
    Ok(out)
}

/// Latest version number of every dataset that has one.
fn latest_versions(db: &mut dyn Db) -> Result<HashMap<String, i64>> {
    db.query("SELECT name, last_version FROM datasets WHERE last_version > 0", &[])?
        .into_iter()
        .map(|row| {
            let mut c = Cols::new(row);
            Ok((c.text()?, c.int()?))
        })
        .collect()
}
