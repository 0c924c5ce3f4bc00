//! Forgetting source records: new versions of every dataset holding anything derived from
//! them, and optionally the same records purged from older versions' files and from the
//! output directories of the runs that produced them. Records are found through the
//! per-file id indexes, so the cost follows the files that hold them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use curate_io::store::sync_dir;
use curate_io::VersionStore;
use curate_registry::{
    DatasetForget, Exclusion, FileEntry, FileReplacement, LineageFile, NewVersion, Registry, RunId, VersionRef,
};

use crate::lineage::{find, read_sidecar, rewrite_data, rewrite_lineage, Hit, LineageSet};
use crate::{file_err, Error, Home, Result};

/// What a forget did.
#[derive(Debug, Default)]
pub struct ForgetReport {
    /// The audit entry recording the request.
    pub audit: i64,
    /// Requested ids no lineage holds (not part of the request as audited).
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

/// The rows to remove from one stored lineage file (and its data file).
struct Doomed {
    file: LineageFile,
    runs: Vec<RunId>,
    rows: HashSet<u64>,
    ids: BTreeSet<String>,
}

/// Every record derived from `sources`, found through the indexes: records whose source
/// id is a requested one, then (for records kept under new ids) records derived from
/// those, until nothing new turns up.
fn closure(store: &VersionStore, set: &LineageSet, sources: &[String]) -> Result<(Vec<Hit>, HashSet<String>)> {
    let mut keys: HashSet<String> = sources.iter().cloned().collect();
    loop {
        let hits = find(store, set, &keys)?;
        let new: Vec<String> = hits.iter().flat_map(|h| h.rows.iter()).map(|r| r.id.clone()).filter(|id| !keys.contains(id)).collect();
        if new.is_empty() {
            return Ok((hits, keys));
        }
        keys.extend(new);
    }
}

/// A stored object as a local file: the object itself for a local store, a downloaded
/// copy (removed when the guard drops) for a remote one.
struct LocalCopy {
    path: PathBuf,
    temporary: bool,
}

impl Drop for LocalCopy {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn local_copy(store: &VersionStore, rel: &str) -> Result<LocalCopy> {
    if let Some(path) = store.local_path(rel) {
        return Ok(LocalCopy { path, temporary: false });
    }
    let bytes = store.read(rel).map_err(|e| Error::File { path: rel.to_owned(), message: e.to_string() })?;
    let name = rel.rsplit('/').next().unwrap_or(rel);
    let path = std::env::temp_dir().join(format!("curate-forget-{}-{name}", curate_core::io::scratch_id()));
    std::fs::write(&path, &bytes).map_err(|e| file_err(&path, e))?;
    Ok(LocalCopy { path, temporary: true })
}

/// Rewrites one stored file (data, when it has one, and lineage) without `d.rows`; returns
/// the new data entry (none for rejects or when nothing is left) and the new lineage.
fn rewrite_object(store: &VersionStore, d: &Doomed) -> Result<(Option<FileEntry>, Option<LineageFile>)> {
    let scratch = store.local_root().map_or_else(std::env::temp_dir, |r| r.join("tmp"));
    std::fs::create_dir_all(&scratch).map_err(|e| file_err(&scratch, e))?;
    // Files are rewritten in parallel: names carry the sidecar they come from.
    let stem = d.file.lineage.rsplit('/').next().unwrap_or(&d.file.lineage).split('.').next().unwrap_or_default().to_owned();
    let tmp = |name: &str| scratch.join(format!(".forget-{}-{stem}-{name}", curate_core::io::scratch_id()));
    let adopt = |path: &Path, hash: &str, ext: &str| store.adopt(path, hash, ext).map_err(|e| file_err(path, e));
    let mut data = None;
    let mut kept_rows = None;
    if let Some(rel) = &d.file.data {
        let src = local_copy(store, rel)?;
        let ext = curate_io::store::extension(rel.rsplit('/').next().unwrap_or(rel));
        let out = tmp(&format!("data{ext}"));
        let (kept, hash) = rewrite_data(&src.path, &out, &d.rows)?;
        if kept > 0 {
            let bytes = std::fs::metadata(&out).map_err(|e| file_err(&out, e))?.len();
            data = Some(FileEntry { path: adopt(&out, &hash, ext)?, content_hash: hash, rows: kept, bytes });
        } else {
            std::fs::remove_file(&out).map_err(|e| file_err(&out, e))?;
        }
        kept_rows = Some(kept);
    }
    let src = local_copy(store, &d.file.lineage)?;
    let (sidecar, index) = (tmp("lineage.parquet"), tmp("lineage.idx"));
    let (kept, sidecar_hash, index_hash) = rewrite_lineage(&src.path, &sidecar, &index, &d.rows)?;
    if kept_rows.unwrap_or(kept) == 0 {
        for p in [&sidecar, &index] {
            std::fs::remove_file(p).map_err(|e| file_err(p, e))?;
        }
        return Ok((data, None));
    }
    let lineage = LineageFile {
        kind: d.file.kind,
        data: data.as_ref().map(|e| e.path.clone()),
        lineage: adopt(&sidecar, &sidecar_hash, ".parquet")?,
        index: adopt(&index, &index_hash, ".idx")?,
        rows: kept,
    };
    Ok((data, Some(lineage)))
}

/// Forgets `sources`: records an audit entry with the plan, then for each dataset whose
/// latest version holds derived records commits a new version without them; with
/// `purge`, also rewrites older versions' files, the rejects' lineage and the files in
/// the output directories of every run that processed the records, and deletes the old
/// files and the step outputs of the affected versions.
pub fn forget(home: &Home, reg: &Registry, sources: &[String], reason: &str, actor: &str, purge: bool) -> Result<ForgetReport> {
    let store = home.store()?;
    let set = LineageSet::load(reg)?;
    let mut requested: Vec<String> = Vec::new();
    for s in sources {
        if !requested.contains(s) {
            requested.push(s.clone());
        }
    }
    let (hits, keys) = closure(&store, &set, &requested)?;
    let seen: HashSet<&str> = hits.iter().flat_map(|h| h.rows.iter()).flat_map(|r| [r.id.as_str(), r.source_id.as_str()]).collect();
    let (known, unknown): (Vec<String>, Vec<String>) = requested.iter().cloned().partition(|s| seen.contains(s.as_str()));
    if known.is_empty() {
        return Err(curate_registry::Error::UnknownSources(unknown).into());
    }
    let mut doomed: Vec<Doomed> = hits
        .iter()
        .map(|h| {
            let (file, runs) = &set.files[h.file];
            Doomed {
                file: file.clone(),
                runs: runs.clone(),
                rows: h.rows.iter().map(|r| r.row).collect(),
                ids: h.rows.iter().map(|r| r.id.clone()).collect(),
            }
        })
        .collect();
    doomed.sort_by(|a, b| a.file.lineage.cmp(&b.file.lineage));
    let by_data: HashMap<&str, &Doomed> = doomed.iter().filter_map(|d| d.file.data.as_deref().map(|p| (p, d))).collect();
    let data_paths: Vec<String> = by_data.keys().map(|p| p.to_string()).collect();
    let holding = reg.versions_holding(&data_paths)?;

    // The plan: per dataset, the records of its latest version to leave out.
    let mut plan: BTreeMap<String, DatasetForget> = BTreeMap::new();
    let latest: HashMap<String, i64> = reg.datasets()?.into_iter().map(|d| (d.name, d.latest)).collect();
    for (path, versions) in &holding {
        for v in versions {
            let entry = plan.entry(v.dataset.clone()).or_insert_with(|| DatasetForget {
                dataset: v.dataset.clone(),
                latest: latest.get(&v.dataset).copied().unwrap_or(0),
                exclude: Vec::new(),
                affected_versions: Vec::new(),
            });
            if !entry.affected_versions.contains(&v.version) {
                entry.affected_versions.push(v.version);
            }
            if entry.latest == v.version {
                if let Some(d) = by_data.get(path.as_str()) {
                    entry.exclude.extend(d.ids.iter().map(|id| Exclusion { record_id: id.clone(), file: path.clone() }));
                }
            }
        }
    }
    let plan: Vec<DatasetForget> = plan
        .into_values()
        .map(|mut d| {
            d.affected_versions.sort_unstable();
            d.exclude.sort_by(|a, b| (&a.record_id, &a.file).cmp(&(&b.record_id, &b.file)));
            d
        })
        .collect();
    let audit = reg.record_forget(&known, reason, actor, &plan)?;
    let mut report = ForgetReport { audit, unknown, ..Default::default() };

    // Each affected stored file is rewritten once, whichever versions share it, and the
    // files are rewritten in parallel: those of the latest versions, and with `purge`
    // every file holding the records.
    let mut latest_versions = HashMap::new();
    for ds in plan.iter().filter(|d| !d.exclude.is_empty()) {
        latest_versions.insert(ds.dataset.clone(), reg.version(&format!("{}@{}", ds.dataset, ds.latest))?);
    }
    let in_latest: HashSet<&str> = latest_versions.values().flat_map(|v| v.files.iter().map(|f| f.path.as_str())).collect();
    let needed: Vec<&Doomed> = doomed.iter().filter(|d| purge || d.file.data.as_deref().is_some_and(|p| in_latest.contains(p))).collect();
    let results = crate::lineage::parallel(&needed, crate::lineage::cores(), |d| rewrite_object(&store, d))?;
    let mut rewritten: HashMap<String, (Option<FileEntry>, Option<LineageFile>)> = HashMap::new();
    let mut recorded = Vec::new();
    for (d, r) in needed.iter().zip(results) {
        if let Some(l) = &r.1 {
            // The rewritten file's records came from the same runs.
            recorded.extend(d.runs.iter().map(|&run| (run, l.clone())));
        }
        rewritten.insert(d.file.lineage.clone(), r);
    }
    reg.record_lineage_of_runs(&recorded)?;
    let rewrite = |d: &Doomed| -> Result<(Option<FileEntry>, Option<LineageFile>)> {
        rewritten.get(&d.file.lineage).cloned().ok_or_else(|| Error::Invalid(format!("{} was not rewritten", d.file.lineage)))
    };
    for ds in plan.iter().filter(|d| !d.exclude.is_empty()) {
        let latest = latest_versions.get(&ds.dataset).ok_or_else(|| Error::Invalid(format!("{} has no latest version", ds.dataset)))?;
        let mut files = Vec::with_capacity(latest.files.len());
        let mut removed = 0;
        for f in &latest.files {
            match by_data.get(f.path.as_str()) {
                Some(d) => {
                    let (data, _) = rewrite(d)?;
                    removed += f.rows - data.as_ref().map_or(0, |e| e.rows);
                    files.extend(data);
                }
                None => files.push(f.clone()),
            }
        }
        let version = NewVersion {
            dataset: ds.dataset.clone(),
            files,
            schema: latest.schema.clone(),
            parents: latest.parents.iter().map(ToString::to_string).collect(),
            sources: latest.sources.clone(),
            spec_hash: latest.spec_hash.clone(),
            run: latest.run,
            cache_keys: if purge { Vec::new() } else { latest.cache_keys.clone() },
            forget_audit: Some(audit),
            job: None,
            watch: None,
        };
        report.versions.push((reg.commit_version(&version)?, removed));
    }

    if purge {
        let new_versions: HashSet<VersionRef> = report.versions.iter().map(|(v, _)| v.clone()).collect();
        let mut stale_cache = BTreeSet::new();
        let mut old_objects = Vec::new();
        let mut by_version: BTreeMap<VersionRef, Vec<&Doomed>> = BTreeMap::new();
        for (path, versions) in &holding {
            for v in versions.iter().filter(|v| !new_versions.contains(v)) {
                if let Some(d) = by_data.get(path.as_str()) {
                    by_version.entry(v.clone()).or_default().push(d);
                }
            }
        }
        for (v, ds) in &by_version {
            let version = reg.version(&v.to_string())?;
            let mut replacements = Vec::new();
            let mut removed = 0;
            for d in ds {
                let old = d.file.data.clone().unwrap_or_default();
                let (data, _) = rewrite(d)?;
                let before = version.files.iter().find(|f| f.path == old).map_or(0, |f| f.rows);
                let new = data.unwrap_or(FileEntry { path: old.clone(), content_hash: String::new(), rows: 0, bytes: 0 });
                removed += before - new.rows;
                replacements.push(FileReplacement { old_path: old, new });
            }
            let (emptied, replaced): (Vec<FileReplacement>, Vec<FileReplacement>) = replacements.into_iter().partition(|r| r.new.rows == 0);
            reg.purge_version(&v.to_string(), &replaced, &emptied.iter().map(|r| r.old_path.clone()).collect::<Vec<_>>())?;
            stale_cache.extend(version.cache_keys.iter().cloned());
            old_objects.extend(replaced.into_iter().chain(emptied).map(|r| r.old_path));
            report.purged.push((v.clone(), removed));
        }
        // Rejects' lineage (and any other lineage file holding the records) is rewritten
        // too, and every lineage row points at the rewritten files.
        let mut replacements = Vec::new();
        for d in &doomed {
            let (_, lineage) = rewrite(d)?;
            old_objects.push(d.file.lineage.clone());
            old_objects.push(d.file.index.clone());
            if let Some(l) = lineage {
                replacements.push((d.file.lineage.clone(), l));
            }
        }
        reg.replace_lineage_files(&replacements)?;
        reg.drop_lineage_files(&doomed.iter().filter(|d| !replacements.iter().any(|(o, _)| o == &d.file.lineage)).map(|d| d.file.lineage.clone()).collect::<Vec<_>>())?;
        report.deleted_files += home.remove_cache_entries(stale_cache.iter().map(String::as_str))?;
        report.deleted_files += home.remove_unreferenced(old_objects, reg)?;
        let runs: Vec<RunId> = doomed.iter().flat_map(|d| d.runs.iter().copied()).collect::<BTreeSet<_>>().into_iter().collect();
        for output in reg.run_outputs(&runs)? {
            if output.contains("://") {
                tracing::warn!(output, "forget --purge rewrites local output directories only; {output} still holds the records");
                continue;
            }
            report.outputs.extend(purge_output(Path::new(&output), &keys)?);
        }
    }
    Ok(report)
}

/// Rewrites every data and rejects file under a run output that holds any of `ids` (found
/// through its `_lineage` sidecars), with its sidecar and index, each atomically (a
/// sibling file renamed over it); returns the output files changed with the records each
/// lost.
fn purge_output(dir: &Path, ids: &HashSet<String>) -> Result<Vec<(PathBuf, u64)>> {
    let mut changed = Vec::new();
    let lineage_dir = dir.join(curate_io::LINEAGE_DIR);
    if !lineage_dir.is_dir() {
        return Ok(changed);
    }
    // A run writing there now would publish files this pass never sees: wait for none.
    let _lock = curate_io::OutputLock::acquire(&dir.join(curate_io::LOCK_FILE), &dir.display().to_string(), "curate forget --purge")
        .map_err(|e| Error::Invalid(format!("forget --purge: {e}")))?;
    let local = VersionStore::open(&lineage_dir.to_string_lossy()).map_err(|e| Error::Invalid(e.to_string()))?;
    let mut sidecars: Vec<PathBuf> = std::fs::read_dir(&lineage_dir)
        .map_err(|e| file_err(&lineage_dir, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    sidecars.sort();
    for sidecar in sidecars {
        let name = sidecar.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let (rows, _) = read_sidecar(&local, &name, None)?;
        let doomed: HashSet<u64> = rows.iter().filter(|r| ids.contains(&r.id) || ids.contains(&r.source_id)).map(|r| r.row).collect();
        if doomed.is_empty() {
            continue;
        }
        // `_lineage/data-000012-000.parquet` describes `data/part-000012-000.<ext>`.
        let stem = name.trim_end_matches(".parquet");
        let (table, seq) = stem.split_once('-').unwrap_or((stem, ""));
        let prefix = format!("part-{seq}.");
        let data = std::fs::read_dir(dir.join(table))
            .map_err(|e| file_err(&dir.join(table), e))?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&prefix)));
        let index = sidecar.with_extension("idx");
        let tmp = |p: &Path| p.with_file_name(format!(".forget-{}-{}", curate_core::io::scratch_id(), p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()));
        let mut renames = Vec::new();
        if let Some(data) = &data {
            let out = tmp(data);
            let (kept, _) = rewrite_data(data, &out, &doomed)?;
            std::fs::File::open(&out).and_then(|f| f.sync_all()).map_err(|e| file_err(&out, e))?;
            changed.push((data.clone(), rows.len() as u64 - kept));
            renames.push((out, data.clone()));
        }
        let (new_sidecar, new_index) = (tmp(&sidecar), tmp(&index));
        rewrite_lineage(&sidecar, &new_sidecar, &new_index, &doomed)?;
        renames.push((new_sidecar, sidecar.clone()));
        renames.push((new_index, index));
        for (from, to) in renames {
            std::fs::rename(&from, &to).map_err(|e| file_err(&to, e))?;
            if let Some(parent) = to.parent() {
                sync_dir(parent).map_err(|e| file_err(parent, e))?;
            }
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    #[test]
    fn lineage_names_follow_the_sink() {
        assert_eq!(
            crate::record_run::lineage_names("data/part-000012-003.jsonl.zst"),
            ("_lineage/data-000012-003.parquet".to_owned(), "_lineage/data-000012-003.idx".to_owned())
        );
        assert_eq!(crate::record_run::lineage_names("rejects/part-000001-000.parquet").0, "_lineage/rejects-000001-000.parquet");
    }
}
