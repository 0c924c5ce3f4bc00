//! Forgetting source records: new versions of every dataset holding anything derived from
//! them, and optionally the same records purged from older versions' files and from the
//! output directories of the runs that produced them.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use curate_registry::{FileEntry, FileReplacement, NewVersion, Registry, VersionRef};

use crate::lineage::{count_ids, members, rewrite_without};
use crate::store::sync_dir;
use crate::{file_err, Home, Result};

/// What a forget did.
#[derive(Debug, Default)]
pub struct ForgetReport {
    /// The audit entry recording the request.
    pub audit: i64,
    /// Requested ids the registry has never seen (not part of the request as audited).
    pub unknown: Vec<String>,
    /// New versions committed, with the records (rows) each left out.
    pub versions: Vec<(VersionRef, u64)>,
    /// Older versions whose files were rewritten (`--purge`), with records removed.
    pub purged: Vec<(VersionRef, u64)>,
    /// Run output files rewritten without the records (`--purge`), with records removed.
    pub outputs: Vec<(PathBuf, u64)>,
    /// Data files and step cache entries deleted from disk.
    pub deleted_files: usize,
}

/// Rewrites the files of a version that hold any of `drop`; returns the replacements and
/// how many rows they lost (an id present twice is two records gone).
fn rewrite_files(home: &Home, files: &[FileEntry], drop: &HashSet<String>, holding: &BTreeSet<String>) -> Result<(Vec<FileReplacement>, u64)> {
    let mut out = Vec::new();
    let mut removed = 0;
    for f in files.iter().filter(|f| holding.contains(&f.path)) {
        let src = home.object_path(&f.path);
        let ext = f.path.find('.').map_or("", |i| &f.path[i..]);
        let tmp = src.with_file_name(format!(".forget-{}-{}{ext}", std::process::id(), f.content_hash));
        let rows = rewrite_without(&src, &tmp, drop)?;
        let new = home.put(&tmp, rows)?;
        std::fs::remove_file(&tmp).map_err(|e| file_err(&tmp, e))?;
        removed += f.rows.saturating_sub(rows);
        out.push(FileReplacement { old_path: f.path.clone(), new });
    }
    Ok((out, removed))
}

/// Forgets `sources`: plans with the registry (audit entry), then for each dataset
/// holding derived records commits a new version without them; with `purge`, also
/// rewrites older versions' files and the Parquet files in the output directories of
/// every run that processed the records (kept and rejected alike), and deletes the old
/// files and the step outputs of the affected versions.
pub fn forget(home: &Home, reg: &Registry, sources: &[String], reason: &str, actor: &str, purge: bool) -> Result<ForgetReport> {
    let plan = reg.forget(sources, reason, actor)?;
    let mut report = ForgetReport { audit: plan.audit, unknown: plan.unknown.clone(), ..Default::default() };
    let known: Vec<String> = sources.iter().filter(|s| !plan.unknown.contains(s)).cloned().collect();
    for ds in &plan.datasets {
        if ds.exclude.is_empty() {
            continue;
        }
        let latest = reg.version(&format!("{}@{}", ds.dataset, ds.latest))?;
        let drop: HashSet<String> = ds.exclude.iter().map(|e| e.record_id.clone()).collect();
        let holding: BTreeSet<String> = ds.exclude.iter().map(|e| e.file.clone()).collect();
        let (replacements, removed) = rewrite_files(home, &latest.files, &drop, &holding)?;
        let mut files = latest.files.clone();
        for r in &replacements {
            if let Some(f) = files.iter_mut().find(|f| f.path == r.old_path) {
                *f = r.new.clone();
            }
        }
        files.retain(|f| f.rows > 0);
        files.dedup_by(|a, b| a.path == b.path);
        let version = NewVersion {
            dataset: ds.dataset.clone(),
            files,
            schema: latest.schema.clone(),
            parents: latest.parents.iter().map(ToString::to_string).collect(),
            sources: latest.sources.clone(),
            spec_hash: latest.spec_hash.clone(),
            run: latest.run,
            cache_keys: if purge { Vec::new() } else { latest.cache_keys.clone() },
            forget_audit: Some(plan.audit),
        };
        let v = reg.try_commit_version(&version, members(home, &version.files))?;
        report.versions.push((v, removed));
    }

    if purge {
        // Every derived record and the (version, file) pairs still holding it: all versions
        // but the ones this request just committed.
        let mut by_version: BTreeMap<VersionRef, (HashSet<String>, BTreeSet<String>)> = BTreeMap::new();
        let mut derived: HashSet<String> = HashSet::new();
        for source in &known {
            for d in reg.derived_from_source(source)? {
                derived.insert(d.record_id.clone());
                for (v, file) in d.versions {
                    let e = by_version.entry(v).or_default();
                    e.0.insert(d.record_id.clone());
                    e.1.insert(file);
                }
            }
        }
        let mut stale_cache = BTreeSet::new();
        let mut old_objects = Vec::new();
        for (v, (drop, holding)) in &by_version {
            let version = reg.version(&v.to_string())?;
            let (replacements, removed) = rewrite_files(home, &version.files, drop, holding)?;
            let ids: Vec<String> = drop.iter().cloned().collect();
            reg.purge_version(&v.to_string(), &replacements, &ids)?;
            stale_cache.extend(version.cache_keys.iter().cloned());
            old_objects.extend(replacements.into_iter().map(|r| r.old_path));
            report.purged.push((v.clone(), removed));
        }
        // Step outputs of affected runs still hold the records; they go, and the next run
        // of those pipelines recomputes. The replaced objects go unless another version
        // shares them; other unreferenced files are left to gc, which knows about runs.
        report.deleted_files += home.remove_cache_entries(stale_cache.iter().map(String::as_str))?;
        report.deleted_files += home.remove_unreferenced(old_objects, reg)?;
        let ids: Vec<String> = derived.iter().cloned().collect();
        for output in reg.record_outputs(&ids)? {
            if output.contains("://") {
                tracing::warn!(output, "forget --purge rewrites local output directories only; {output} still holds the records");
                continue;
            }
            report.outputs.extend(purge_output(Path::new(&output), &derived)?);
        }
    }
    Ok(report)
}

/// Rewrites every Parquet file under a run output's `data/` and `rejects/` that holds
/// any of `drop`, each atomically (a sibling file renamed over it); returns the files
/// changed with the records each lost.
fn purge_output(dir: &Path, drop: &HashSet<String>) -> Result<Vec<(PathBuf, u64)>> {
    let mut changed = Vec::new();
    if !dir.is_dir() {
        return Ok(changed);
    }
    // A run writing there now would publish files this pass never sees: wait for none.
    let _lock = curate_io::OutputLock::acquire(&dir.join(curate_io::LOCK_FILE), &dir.display().to_string(), "curate forget --purge")
        .map_err(|e| crate::Error::Invalid(format!("forget --purge: {e}")))?;
    for sub in ["data", "rejects"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else { continue };
        let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "parquet")).collect();
        files.sort();
        for path in files {
            if count_ids(&path, drop)? == 0 {
                continue;
            }
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let tmp = path.with_file_name(format!(".forget-{}-{name}", std::process::id()));
            let before = crate::lineage::rows(&path)?;
            let kept = rewrite_without(&path, &tmp, drop)?;
            std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(|e| file_err(&tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| file_err(&path, e))?;
            if let Some(parent) = path.parent() {
                sync_dir(parent)?;
            }
            changed.push((path, before.saturating_sub(kept)));
        }
    }
    Ok(changed)
}
