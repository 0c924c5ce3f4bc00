//! The project state directory: registry location, content-addressed data files, step cache.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use curate_core::cache::{CacheError, StepCache};
use curate_io::VersionStore;
use curate_registry::{FileEntry, GcPolicy, Registry, RunId, Version};

use crate::{file_err, Error, Result};

/// Environment variable naming the state directory.
pub const HOME_ENV: &str = "CURATE_HOME";
/// Environment variable naming the store of versions (a directory or `s3://bucket/prefix`).
pub const STORE_ENV: &str = "CURATE_STORE";

/// A project's state directory.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
    /// Where versions' files live; `None` means `store/` below the root.
    store: Option<String>,
}

impl Home {
    /// State below `root`, versions in `root/store`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Home { root: root.into(), store: None }
    }

    /// The same state with versions' files in `store` (a directory or `s3://` prefix).
    pub fn with_store(mut self, store: impl Into<String>) -> Self {
        self.store = Some(store.into());
        self
    }

    /// `$CURATE_HOME`, or `.curate` in the working directory.
    pub fn from_env() -> Self {
        let home = match std::env::var(HOME_ENV) {
            Ok(p) if !p.is_empty() => Home::new(p),
            _ => Home::new(".curate"),
        };
        match std::env::var(STORE_ENV) {
            Ok(s) if !s.is_empty() => home.with_store(s),
            _ => home,
        }
    }

    /// The state directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Opens the registry: `$CURATE_REGISTRY` when set, else `registry.db` here.
    pub fn registry(&self) -> Result<Registry> {
        Ok(Registry::open_from_env(&self.default_registry())?)
    }

    /// Opens the registry for commands that only read it, so they work where this
    /// process may not write it (see [`Registry::open_read_only`]).
    pub fn registry_read_only(&self) -> Result<Registry> {
        Ok(Registry::open_read_only_from_env(&self.default_registry())?)
    }

    /// Opens the registry for [`crate::upgrade`]: as [`Home::registry`] does, but without
    /// applying the migration that drops per-record lineage.
    pub fn registry_for_upgrade(&self) -> Result<Registry> {
        Ok(Registry::open_for_upgrade_from_env(&self.default_registry())?)
    }

    fn default_registry(&self) -> String {
        self.root.join("registry.db").to_string_lossy().into_owned()
    }

    /// The step output cache.
    pub fn step_cache(&self) -> StepCache {
        StepCache::new(self.root.join("cache"))
    }

    /// The store of versions' files.
    pub fn store(&self) -> Result<VersionStore> {
        let location = self.store.clone().unwrap_or_else(|| self.root.join("store").to_string_lossy().into_owned());
        VersionStore::open(&location).map_err(|e| Error::Invalid(format!("{STORE_ENV}: {e}")))
    }

    /// Adds a copy of `file` to the store, hashing the copy, and returns its manifest
    /// entry (for files nobody hashed while writing them).
    pub fn put(&self, file: &Path, rows: u64) -> Result<FileEntry> {
        let (path, content_hash, bytes) = self.store()?.put_hashing(file).map_err(|e| file_err(file, e))?;
        Ok(FileEntry { path, content_hash, rows, bytes })
    }

    /// Checks every file of `version` against its manifest (size, then blake3 hash) and
    /// returns the ones that do not match, in manifest order.
    pub fn verify(&self, version: &Version) -> Vec<BadFile> {
        let checked = crate::lineage::parallel(&version.files, crate::lineage::cores(), |f| Ok(self.check(f)))
            .unwrap_or_else(|e| version.files.iter().map(|_| Some(format!("not checked: {e}"))).collect());
        version.files.iter().zip(checked).filter_map(|(f, bad)| bad.map(|found| BadFile { file: f.clone(), found })).collect()
    }

    /// The on-disk paths of `version`'s files, each checked against the manifest (size
    /// and blake3 hash) before anything reads it; the first mismatch is an
    /// [`Error::Corrupt`] naming the version and the file.
    pub fn verified_files(&self, version: &Version) -> Result<Vec<String>> {
        let store = self.store()?;
        // Files are hashed on every core: this check reads the whole version.
        let checked = crate::lineage::parallel(&version.files, crate::lineage::cores(), |f| Ok(self.check(f)))?;
        let mut out = Vec::with_capacity(version.files.len());
        for (f, bad) in version.files.iter().zip(checked) {
            if let Some(found) = bad {
                return Err(Error::Corrupt {
                    version: version.reference.to_string(),
                    file: f.path.clone(),
                    expected: format!("{} bytes with blake3 {}", f.bytes, f.content_hash),
                    found,
                });
            }
            out.push(store.locate(&f.path));
        }
        Ok(out)
    }

    /// What is wrong with the stored object of `f`, or `None` when it matches. Only a
    /// remote object's size is checked: hashing it would download the version once more
    /// before every run, and object stores keep their own checksums.
    fn check(&self, f: &FileEntry) -> Option<String> {
        let store = match self.store() {
            Ok(s) => s,
            Err(e) => return Some(e.to_string()),
        };
        let size = match store.size(&f.path) {
            Ok(n) => n,
            Err(e) => return Some(format!("unreadable ({e})")),
        };
        let Some(path) = store.local_path(&f.path) else {
            return (size != f.bytes).then(|| format!("{size} bytes"));
        };
        let hash = std::fs::File::open(&path).and_then(|mut file| {
            let mut hasher = blake3::Hasher::new();
            std::io::copy(&mut file, &mut hasher)?;
            Ok(hasher.finalize().to_hex().to_string())
        });
        match hash {
            Err(e) => Some(format!("unreadable ({e})")),
            Ok(h) if size != f.bytes || h != f.content_hash => Some(format!("{size} bytes with blake3 {h}")),
            Ok(_) => None,
        }
    }

    /// Deletes the step cache entries of `keys` that exist; returns how many.
    pub fn remove_cache_entries<'k>(&self, keys: impl IntoIterator<Item = &'k str>) -> Result<usize> {
        let cache = self.step_cache();
        let mut removed = 0;
        for key in keys {
            let gone = cache.remove(key).map_err(|e| match e {
                CacheError::Io { path, source } => file_err(&path, source),
                other => Error::Invalid(other.to_string()),
            })?;
            if gone {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Deletes the stored objects among `paths` that no version lists any more; returns
    /// how many.
    pub(crate) fn remove_unreferenced(&self, paths: impl IntoIterator<Item = String>, reg: &Registry) -> Result<usize> {
        let referenced = reg.referenced_files()?;
        let store = self.store()?;
        let mut removed = 0;
        for rel in paths {
            if !referenced.contains(&rel) && store.remove(&rel).map_err(|e| Error::Invalid(e.to_string()))? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes stored objects no version lists, except those written within `grace`,
    /// and staging files left by killed processes; returns how many objects went. Only
    /// called while no run is running (see [`gc`]).
    fn sweep_objects(&self, referenced: &BTreeSet<String>, grace: Duration) -> Result<usize> {
        let store = self.store()?;
        let Some(root) = store.local_root().map(Path::to_path_buf) else {
            tracing::warn!(store = store.display(), "gc sweeps local stores only; unreferenced objects of a remote store stay");
            return Ok(0);
        };
        let objects = root.join("objects");
        let mut removed = 0;
        for path in walk(&objects) {
            let rel = path.strip_prefix(&root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            if !referenced.contains(&rel) && !recent(&path, grace) && remove_object(&path)? {
                removed += 1;
            }
        }
        // A staging copy is seconds old unless its writer died; an hour is ample.
        for path in walk(&root.join("tmp")) {
            if !recent(&path, grace.max(Duration::from_secs(3600))) {
                remove_object(&path)?;
            }
        }
        Ok(removed)
    }
}

/// Removes a store file and its fan-out directory when that is left empty; false when
/// it was already gone.
fn remove_object(path: &Path) -> Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                // Only succeeds when the fan-out directory is now empty.
                let _ = std::fs::remove_dir(dir);
            }
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(file_err(path, e)),
    }
}

/// Whether `path` was modified within `grace` (unreadable times count as recent).
fn recent(path: &Path, grace: Duration) -> bool {
    match std::fs::metadata(path).and_then(|m| m.modified()) {
        Ok(t) => t.elapsed().map_or(true, |age| age < grace),
        Err(_) => true,
    }
}

/// A stored file that does not match its version's manifest.
#[derive(Debug, Clone)]
pub struct BadFile {
    /// The manifest entry: path, expected size and hash.
    pub file: FileEntry,
    /// What is on disk instead (size and hash, or why it cannot be read).
    pub found: String,
}

/// Every file below `dir` (none when it does not exist).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// What `gc` removed.
#[derive(Debug, Default)]
pub struct GcSummary {
    /// Versions removed (`name@N`).
    pub versions: Vec<String>,
    /// Data files deleted from the store.
    pub objects: usize,
    /// Step cache entries deleted.
    pub cache_entries: usize,
    /// Runs still running, whose files gc therefore left alone.
    pub running: Vec<RunId>,
    /// Runs found dead and marked abandoned first.
    pub abandoned: Vec<RunId>,
}

/// Removes versions beyond the newest `keep_last` per dataset (tagged ones stay), their
/// now unreferenced data files, and step outputs no remaining version uses that were not
/// used within `grace_ms`.
///
/// Files go only while no run is running: a running run reads step outputs and stores
/// data files before its commit tells the registry, and runs cannot start until the
/// sweep is over. Runs whose process died are marked abandoned first so they do not
/// hold gc back forever; store files written within the grace period stay as well.
pub fn gc(home: &Home, reg: &Registry, keep_last: u32, grace_ms: i64) -> Result<GcSummary> {
    let abandoned = crate::record_run::reap_dead_runs(reg)?;
    let grace = Duration::from_millis(u64::try_from(grace_ms).unwrap_or(0));
    let (mut objects, mut cache_entries) = (0, 0);
    let report = reg.gc_sweep(&GcPolicy { keep_last, cache_grace_ms: grace_ms }, |s| -> Result<()> {
        cache_entries = home.remove_cache_entries(s.cache_entries.iter().map(|e| e.key.as_str()))?;
        objects = home.sweep_objects(s.referenced_files, grace)?;
        Ok(())
    })?;
    Ok(GcSummary {
        versions: report.versions.iter().map(|(v, _)| v.to_string()).collect(),
        objects,
        cache_entries,
        running: report.running,
        abandoned,
    })
}
