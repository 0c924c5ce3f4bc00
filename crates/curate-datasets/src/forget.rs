//! Forgetting source records: new versions of every dataset holding anything derived from
//! them, and optionally the same records purged from older versions' files.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use curate_registry::{FileEntry, FileReplacement, NewVersion, Registry, VersionRef};

use crate::lineage::{members, rewrite_without};
use crate::{file_err, Home, Result};

/// What a forget did.
#[derive(Debug, Default)]
pub struct ForgetReport {
    /// The audit entry recording the request.
    pub audit: i64,
    /// New versions committed, with the records each left out.
    pub versions: Vec<(VersionRef, usize)>,
    /// Older versions whose files were rewritten (`--purge`), with records removed.
    pub purged: Vec<(VersionRef, usize)>,
    /// Data files and step cache entries deleted from disk.
    pub deleted_files: usize,
}

/// Rewrites the files of a version that hold any of `drop`, returning the replacements.
fn rewrite_files(home: &Home, files: &[FileEntry], drop: &HashSet<String>, holding: &BTreeSet<String>) -> Result<Vec<FileReplacement>> {
    let mut out = Vec::new();
    for f in files.iter().filter(|f| holding.contains(&f.path)) {
        let src = home.object_path(&f.path);
        let ext = f.path.find('.').map_or("", |i| &f.path[i..]);
        let tmp = src.with_file_name(format!(".forget-{}-{}{ext}", std::process::id(), f.content_hash));
        let rows = rewrite_without(&src, &tmp, drop)?;
        let new = home.put(&tmp, rows)?;
        std::fs::remove_file(&tmp).map_err(|e| file_err(&tmp, e))?;
        out.push(FileReplacement { old_path: f.path.clone(), new });
    }
    Ok(out)
}

/// Forgets `sources`: plans with the registry (audit entry), then for each dataset
/// holding derived records commits a new version without them; with `purge`, also
/// rewrites older versions' files and deletes the old files and the step outputs of the
/// affected versions.
pub fn forget(home: &Home, reg: &Registry, sources: &[String], reason: &str, actor: &str, purge: bool) -> Result<ForgetReport> {
    let plan = reg.forget(sources, reason, actor)?;
    let mut report = ForgetReport { audit: plan.audit, ..Default::default() };
    for ds in &plan.datasets {
        if ds.exclude.is_empty() {
            continue;
        }
        let latest = reg.version(&format!("{}@{}", ds.dataset, ds.latest))?;
        let drop: HashSet<String> = ds.exclude.iter().map(|e| e.record_id.clone()).collect();
        let holding: BTreeSet<String> = ds.exclude.iter().map(|e| e.file.clone()).collect();
        let replacements = rewrite_files(home, &latest.files, &drop, &holding)?;
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
        report.versions.push((v, drop.len()));
    }

    if purge {
        // Every derived record and the (version, file) pairs still holding it: all versions
        // but the ones this request just committed.
        let mut by_version: BTreeMap<VersionRef, (HashSet<String>, BTreeSet<String>)> = BTreeMap::new();
        for source in sources {
            for d in reg.derived_from_source(source)? {
                for (v, file) in d.versions {
                    let e = by_version.entry(v).or_default();
                    e.0.insert(d.record_id.clone());
                    e.1.insert(file);
                }
            }
        }
        let mut stale_cache = BTreeSet::new();
        for (v, (drop, holding)) in &by_version {
            let version = reg.version(&v.to_string())?;
            let replacements = rewrite_files(home, &version.files, drop, holding)?;
            let removed: Vec<String> = drop.iter().cloned().collect();
            reg.purge_version(&v.to_string(), &replacements, &removed)?;
            stale_cache.extend(version.cache_keys.iter().cloned());
            report.purged.push((v.clone(), removed.len()));
        }
        // Step outputs of affected runs still hold the records; they go, and the next run
        // of those pipelines recomputes.
        report.deleted_files += home.remove_cache_entries(stale_cache.iter().map(String::as_str))?;
        report.deleted_files += home.sweep_objects(reg)?;
    }
    Ok(report)
}
