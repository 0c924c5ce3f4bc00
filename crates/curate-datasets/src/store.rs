//! The project state directory: registry location, content-addressed data files, step cache.

use std::path::{Path, PathBuf};

use curate_core::cache::StepCache;
use curate_registry::{FileEntry, GcPolicy, Registry};

use crate::{file_err, Result};

/// Environment variable naming the state directory.
pub const HOME_ENV: &str = "CURATE_HOME";

/// A project's state directory.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// State below `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Home { root: root.into() }
    }

    /// `$CURATE_HOME`, or `.curate` in the working directory.
    pub fn from_env() -> Self {
        match std::env::var(HOME_ENV) {
            Ok(p) if !p.is_empty() => Home::new(p),
            _ => Home::new(".curate"),
        }
    }

    /// The state directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Opens the registry: `$CURATE_REGISTRY` when set, else `registry.db` here.
    pub fn registry(&self) -> Result<Registry> {
        let default = self.root.join("registry.db");
        Ok(Registry::open_from_env(&default.to_string_lossy())?)
    }

    /// The step output cache.
    pub fn step_cache(&self) -> StepCache {
        StepCache::new(self.root.join("cache"))
    }

    fn store_root(&self) -> PathBuf {
        self.root.join("store")
    }

    /// Where a manifest path (`objects/ab/ab12….parquet`) lives on disk.
    pub fn object_path(&self, manifest_path: &str) -> PathBuf {
        self.store_root().join(manifest_path)
    }

    /// Adds `file` to the store under its content hash (a hard link when possible, else a
    /// copy) and returns its manifest entry.
    pub fn put(&self, file: &Path, rows: u64) -> Result<FileEntry> {
        let mut hasher = blake3::Hasher::new();
        let mut f = std::fs::File::open(file).map_err(|e| file_err(file, e))?;
        let bytes = std::io::copy(&mut f, &mut hasher).map_err(|e| file_err(file, e))?;
        let hash = hasher.finalize().to_hex().to_string();
        // Keep the full extension (`.jsonl.zst`) so readers can tell the format; a leading
        // dot marks a hidden staging file, not an extension.
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default().trim_start_matches('.');
        let ext = name.find('.').map_or("", |i| &name[i..]);
        let rel = format!("objects/{}/{hash}{ext}", &hash[..2]);
        let dest = self.object_path(&rel);
        if !dest.exists() {
            let dir = dest.parent().unwrap_or(&self.root);
            std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
            let tmp = dir.join(format!(".{hash}.{}.tmp", std::process::id()));
            if std::fs::hard_link(file, &tmp).is_err() {
                std::fs::copy(file, &tmp).map_err(|e| file_err(&tmp, e))?;
            }
            std::fs::rename(&tmp, &dest).map_err(|e| file_err(&dest, e))?;
        }
        Ok(FileEntry { path: rel, content_hash: hash, rows, bytes })
    }

    /// Deletes the step cache entries of `keys` that exist; returns how many.
    pub fn remove_cache_entries<'k>(&self, keys: impl IntoIterator<Item = &'k str>) -> Result<usize> {
        let cache = self.step_cache();
        let mut removed = 0;
        for key in keys {
            let dir = cache.entry_dir(key);
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| file_err(&dir, e))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes stored objects no version lists any more; returns how many.
    pub fn sweep_objects(&self, reg: &Registry) -> Result<usize> {
        let referenced = reg.referenced_files()?;
        let objects = self.store_root().join("objects");
        let mut removed = 0;
        for path in walk(&objects) {
            let rel = path.strip_prefix(self.store_root()).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            if !referenced.contains(&rel) {
                std::fs::remove_file(&path).map_err(|e| file_err(&path, e))?;
                removed += 1;
                if let Some(dir) = path.parent() {
                    // Only succeeds when the fan-out directory is now empty.
                    let _ = std::fs::remove_dir(dir);
                }
            }
        }
        Ok(removed)
    }
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
}

/// Removes versions beyond the newest `keep_last` per dataset (tagged ones stay), their
/// now unreferenced data files, and step outputs no remaining version uses that were not
/// used within `grace_ms`.
pub fn gc(home: &Home, reg: &Registry, keep_last: u32, grace_ms: i64) -> Result<GcSummary> {
    let report = reg.gc(&GcPolicy { keep_last, cache_grace_ms: grace_ms })?;
    let cache_entries = home.remove_cache_entries(report.cache_entries.iter().map(|e| e.key.as_str()))?;
    let objects = home.sweep_objects(reg)?;
    Ok(GcSummary { versions: report.versions.iter().map(|(v, _)| v.to_string()).collect(), objects, cache_entries })
}
