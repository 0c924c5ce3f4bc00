//! Task cache index (content-addressed step outputs) and garbage collection.

use std::collections::{HashMap, HashSet};

use crate::datasets::load_files;
use crate::db::{lock_store, placeholders, Cols, Db, Value};
use crate::error::{Error, Result};
use crate::types::{CacheEntry, GcPolicy, GcReport, Sweep, VersionRef};
use crate::{now_ms, Registry};

/// Ids per `IN (...)` list; well under SQLite's and PostgreSQL's parameter limits.
pub(crate) const IN_CHUNK: usize = 500;

impl Registry {
    /// Looks up a cache entry and, on a hit, stamps it as used now.
    pub fn cache_lookup(&self, key: &str) -> Result<Option<CacheEntry>> {
        let now = now_ms();
        self.write(|db| {
            let rows = db.query(
                "UPDATE cache_entries SET last_used_at = ? WHERE cache_key = ? \
                 RETURNING cache_key, location, stats, created_at, last_used_at",
                &[now.into(), key.into()],
            )?;
            rows.into_iter().next().map(cache_entry).transpose()
        })
    }

    /// A run's cache bookkeeping in one transaction: entries it reused are stamped as used
    /// now, entries it stored (key, location, stats) inserted or replaced.
    pub fn cache_record(&self, used: &[String], stored: &[(String, String, serde_json::Value)]) -> Result<()> {
        let now = now_ms();
        let stored = stored.iter().map(|(k, l, s)| Ok((k, l, serde_json::to_string(s)?))).collect::<Result<Vec<_>>>()?;
        self.write(|db| {
            for chunk in used.chunks(IN_CHUNK) {
                let mut params: Vec<Value> = vec![now.into()];
                params.extend(chunk.iter().map(|k| Value::from(k.as_str())));
                db.execute(&format!("UPDATE cache_entries SET last_used_at = ? WHERE cache_key IN ({})", placeholders(chunk.len())), &params)?;
            }
            for (key, location, stats) in &stored {
                db.execute(
                    "INSERT INTO cache_entries (cache_key, location, stats, created_at, last_used_at) VALUES (?, ?, ?, ?, ?) \
                     ON CONFLICT (cache_key) DO UPDATE SET location = excluded.location, stats = excluded.stats, \
                     last_used_at = excluded.last_used_at",
                    &[key.as_str().into(), location.as_str().into(), stats.as_str().into(), now.into(), now.into()],
                )?;
            }
            Ok(())
        })
    }

    /// Inserts or replaces the entry for `key` (a recomputed output supersedes the old one).
    pub fn cache_insert(&self, key: &str, location: &str, stats: &serde_json::Value) -> Result<()> {
        let stats = serde_json::to_string(stats)?;
        let now = now_ms();
        self.write(|db| {
            db.execute(
                "INSERT INTO cache_entries (cache_key, location, stats, created_at, last_used_at) VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT (cache_key) DO UPDATE SET location = excluded.location, stats = excluded.stats, \
                 last_used_at = excluded.last_used_at",
                &[key.into(), location.into(), stats.as_str().into(), now.into(), now.into()],
            )?;
            Ok(())
        })
    }

    /// Removes untagged versions beyond the newest `keep_last` per dataset (unless a
    /// surviving version derives from them), then cache entries no surviving version
    /// references and nobody used within the grace period. Returns what went, so the
    /// caller can delete the files. Same as [`Registry::gc_sweep`] with nothing to sweep.
    pub fn gc(&self, policy: &GcPolicy) -> Result<GcReport> {
        self.gc_sweep(policy, |_| Ok::<_, Error>(()))
    }

    /// [`Registry::gc`], calling `sweep` to delete files while no run can start or
    /// resume; the transaction commits only after `sweep` returns.
    ///
    /// While any run is running (and not abandoned), cache entries stay and `sweep` is
    /// not called: such a run may be reading step outputs, and storing data files, that
    /// the registry will only hear of when it commits. [`GcReport::running`] lists them.
    /// An error from `sweep` rolls the registry changes back and is returned as it is.
    pub fn gc_sweep<E: From<Error>>(
        &self,
        policy: &GcPolicy,
        mut sweep: impl FnMut(&Sweep<'_>) -> Result<(), E>,
    ) -> Result<GcReport, E> {
        let cutoff = now_ms().saturating_sub(policy.cache_grace_ms);
        let mut sweep_error: Option<E> = None;
        let result = self.write(|db| {
            lock_store(db, true)?;
            let doomed = doomed_versions(db, policy.keep_last)?;
            let mut report = GcReport::default();
            for (id, reference) in &doomed {
                report.versions.push((reference.clone(), load_files(db, *id)?));
            }
            let ids: Vec<i64> = doomed.iter().map(|(id, _)| *id).collect();
            for chunk in ids.chunks(IN_CHUNK) {
                let list = placeholders(chunk.len());
                let params: Vec<Value> = chunk.iter().map(|&i| i.into()).collect();
                for table in ["version_files", "version_sources", "version_cache_refs"] {
                    db.execute(&format!("DELETE FROM {table} WHERE version_id IN ({list})"), &params)?;
                }
                let both: Vec<Value> = params.iter().chain(params.iter()).cloned().collect();
                db.execute(
                    &format!("DELETE FROM version_parents WHERE version_id IN ({list}) OR parent_id IN ({list})"),
                    &both,
                )?;
                db.execute(&format!("DELETE FROM versions WHERE id IN ({list})"), &params)?;
            }
            report.running = db
                .query(&format!("SELECT id FROM runs WHERE {} ORDER BY id", crate::runs::LIVE), &[])?
                .into_iter()
                .map(|r| Cols::new(r).int())
                .collect::<Result<_>>()?;
            if !report.running.is_empty() {
                return Ok(report);
            }
            report.cache_entries = db
                .query(
                    "SELECT cache_key, location, stats, created_at, last_used_at FROM cache_entries c \
                     WHERE last_used_at < ? AND NOT EXISTS \
                     (SELECT 1 FROM version_cache_refs r WHERE r.cache_key = c.cache_key) ORDER BY cache_key",
                    &[cutoff.into()],
                )?
                .into_iter()
                .map(cache_entry)
                .collect::<Result<_>>()?;
            for chunk in report.cache_entries.chunks(IN_CHUNK) {
                let params: Vec<Value> = chunk.iter().map(|e| e.key.as_str().into()).collect();
                db.execute(
                    &format!("DELETE FROM cache_entries WHERE cache_key IN ({})", placeholders(chunk.len())),
                    &params,
                )?;
            }
            let referenced = crate::datasets::referenced_files_in(db)?;
            if let Err(e) = sweep(&Sweep { referenced_files: &referenced, cache_entries: &report.cache_entries }) {
                sweep_error = Some(e);
                return Err(Error::SweepFailed);
            }
            Ok(report)
        });
        result.map_err(|e| sweep_error.take().unwrap_or_else(|| e.into()))
    }
}

/// Picks the versions gc removes: outside the newest `keep_last`, untagged, and not an
/// ancestor of any version that stays (a kept child must stay reproducible).
fn doomed_versions(db: &mut dyn Db, keep_last: u32) -> Result<Vec<(i64, VersionRef)>> {
    let mut candidates: HashMap<i64, VersionRef> = HashMap::new();
    let mut kept: Vec<i64> = Vec::new();
    let rows = db.query(
        "SELECT v.id, d.name, v.version, d.last_version, \
         (SELECT COUNT(*) FROM tags t WHERE t.version_id = v.id) \
         FROM versions v JOIN datasets d ON d.id = v.dataset_id",
        &[],
    )?;
    for row in rows {
        let mut c = Cols::new(row);
        let (id, dataset, version, last, tags) = (c.int()?, c.text()?, c.int()?, c.int()?, c.int()?);
        // Numbers are dense per dataset (gc only ever removes old ones), so "newest N"
        // is a comparison against the dataset's counter.
        if version > last - i64::from(keep_last) || tags > 0 {
            kept.push(id);
        } else {
            candidates.insert(id, VersionRef { dataset, version });
        }
    }
    let mut parents: HashMap<i64, Vec<i64>> = HashMap::new();
    for row in db.query("SELECT version_id, parent_id FROM version_parents", &[])? {
        let mut c = Cols::new(row);
        let (child, parent) = (c.int()?, c.int()?);
        parents.entry(child).or_default().push(parent);
    }
    // Walk up from every kept version, rescuing each candidate ancestor found.
    let mut seen: HashSet<i64> = kept.iter().copied().collect();
    while let Some(id) = kept.pop() {
        for &p in parents.get(&id).map(Vec::as_slice).unwrap_or(&[]) {
            if seen.insert(p) {
                candidates.remove(&p);
                kept.push(p);
            }
        }
    }
    let mut doomed: Vec<(i64, VersionRef)> = candidates.into_iter().collect();
    doomed.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(doomed)
}

fn cache_entry(row: crate::db::Row) -> Result<CacheEntry> {
    let mut c = Cols::new(row);
    Ok(CacheEntry {
        key: c.text()?,
        location: c.text()?,
        stats: serde_json::from_str(&c.text()?)?,
        created_at_ms: c.int()?,
        last_used_ms: c.int()?,
    })
}
