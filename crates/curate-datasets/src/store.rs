//! The project state directory: registry location, content-addressed data files, step cache.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use curate_core::cache::{CacheError, StepCache};
use curate_registry::{FileEntry, GcPolicy, Registry, RunId, Version};

use crate::{file_err, Error, Result};

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
        Ok(Registry::open_from_env(&self.default_registry())?)
    }

    /// Opens the registry for commands that only read it, so they work where this
    /// process may not write it (see [`Registry::open_read_only`]).
    pub fn registry_read_only(&self) -> Result<Registry> {
        Ok(Registry::open_read_only_from_env(&self.default_registry())?)
    }

    fn default_registry(&self) -> String {
        self.root.join("registry.db").to_string_lossy().into_owned()
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

    /// Adds a copy of `file` to the store under its content hash and returns its manifest
    /// entry.
    ///
    /// The object is a reflink where the file system supports it, else a byte copy, and
    /// never a hard link: editing or replacing the run's output file must not change a
    /// committed version. The hash is taken of the copy itself, the object is read-only,
    /// and it and its directory are on disk before this returns, so a registry commit
    /// that names it cannot survive a power loss that the file does not.
    pub fn put(&self, file: &Path, rows: u64) -> Result<FileEntry> {
        let staging = self.store_root().join("tmp");
        std::fs::create_dir_all(&staging).map_err(|e| file_err(&staging, e))?;
        // Keep the full extension (`.jsonl.zst`) so readers can tell the format; a leading
        // dot marks a hidden staging file, not an extension.
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default().trim_start_matches('.');
        let ext = name.find('.').map_or("", |i| &name[i..]);
        let tmp = staging.join(format!("{}-{}{ext}", std::process::id(), unique()));
        let staged = stage_copy(file, &tmp);
        let (hash, bytes) = match staged {
            Ok(v) => v,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let rel = format!("objects/{}/{hash}{ext}", &hash[..2]);
        let dest = self.object_path(&rel);
        let dir = dest.parent().unwrap_or(&self.root);
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
            if let Some(objects) = dir.parent() {
                sync_dir(objects)?;
            }
        }
        // Replacing an existing object with this fresh copy is always right (same hash,
        // same bytes) and heals stores whose objects were hard links to run outputs.
        std::fs::rename(&tmp, &dest).map_err(|e| file_err(&dest, e))?;
        sync_dir(dir)?;
        Ok(FileEntry { path: rel, content_hash: hash, rows, bytes })
    }

    /// Checks every file of `version` against its manifest (size, then blake3 hash) and
    /// returns the ones that do not match, in manifest order.
    pub fn verify(&self, version: &Version) -> Vec<BadFile> {
        version.files.iter().filter_map(|f| self.check(f).map(|found| BadFile { file: f.clone(), found })).collect()
    }

    /// The on-disk paths of `version`'s files, each checked against the manifest (size
    /// and blake3 hash) before anything reads it; the first mismatch is an
    /// [`Error::Corrupt`] naming the version and the file.
    pub fn verified_files(&self, version: &Version) -> Result<Vec<PathBuf>> {
        let mut out = Vec::with_capacity(version.files.len());
        for f in &version.files {
            if let Some(found) = self.check(f) {
                return Err(Error::Corrupt {
                    version: version.reference.to_string(),
                    file: f.path.clone(),
                    expected: format!("{} bytes with blake3 {}", f.bytes, f.content_hash),
                    found,
                });
            }
            out.push(self.object_path(&f.path));
        }
        Ok(out)
    }

    /// What is wrong with the stored object of `f`, or `None` when it matches.
    fn check(&self, f: &FileEntry) -> Option<String> {
        let path = self.object_path(&f.path);
        let size = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) => return Some(format!("unreadable ({e})")),
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
        let mut removed = 0;
        for rel in paths {
            if !referenced.contains(&rel) && remove_object(&self.object_path(&rel))? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes stored objects no version lists, except those written within `grace`,
    /// and staging files left by killed processes; returns how many objects went. Only
    /// called while no run is running (see [`gc`]).
    fn sweep_objects(&self, referenced: &BTreeSet<String>, grace: Duration) -> Result<usize> {
        let objects = self.store_root().join("objects");
        let mut removed = 0;
        for path in walk(&objects) {
            let rel = path.strip_prefix(self.store_root()).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            if !referenced.contains(&rel) && !recent(&path, grace) && remove_object(&path)? {
                removed += 1;
            }
        }
        // A staging copy is seconds old unless its writer died; an hour is ample.
        for path in walk(&self.store_root().join("tmp")) {
            if !recent(&path, grace.max(Duration::from_secs(3600))) {
                remove_object(&path)?;
            }
        }
        Ok(removed)
    }
}

/// Copies `src` to the new file `dest` (a reflink when the file system can), makes it
/// read-only and durable, and returns its blake3 hash and size, both of the copy.
fn stage_copy(src: &Path, dest: &Path) -> Result<(String, u64)> {
    use std::io::{Read, Write};
    let mut from = std::fs::File::open(src).map_err(|e| file_err(src, e))?;
    let mut to = std::fs::OpenOptions::new().write(true).create_new(true).open(dest).map_err(|e| file_err(dest, e))?;
    let mut hasher = blake3::Hasher::new();
    if reflink(&from, &to) {
        let mut copy = std::fs::File::open(dest).map_err(|e| file_err(dest, e))?;
        std::io::copy(&mut copy, &mut hasher).map_err(|e| file_err(dest, e))?;
    } else {
        // Hash what is written, in the same pass, so the object's name is the hash of
        // its own bytes even if the source changes underneath.
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = from.read(&mut buf).map_err(|e| file_err(src, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            to.write_all(&buf[..n]).map_err(|e| file_err(dest, e))?;
        }
    }
    let bytes = to.metadata().map_err(|e| file_err(dest, e))?.len();
    let mut perms = to.metadata().map_err(|e| file_err(dest, e))?.permissions();
    perms.set_readonly(true);
    to.set_permissions(perms).map_err(|e| file_err(dest, e))?;
    to.sync_all().map_err(|e| file_err(dest, e))?;
    Ok((hasher.finalize().to_hex().to_string(), bytes))
}

/// Makes `to` share `from`'s extents (`ioctl FICLONE`); false where the file system
/// cannot (ext4, across file systems, other platforms), so the caller copies.
#[cfg(target_os = "linux")]
fn reflink(from: &std::fs::File, to: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: both descriptors are open for the duration of the call, and FICLONE takes
    // the source descriptor as its argument and writes no memory.
    unsafe { libc::ioctl(to.as_raw_fd(), libc::FICLONE, from.as_raw_fd()) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn reflink(_: &std::fs::File, _: &std::fs::File) -> bool {
    false
}

/// Makes a directory's entries (a rename into it, a new subdirectory) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| file_err(dir, e))
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

fn unique() -> u64 {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    SEQ.fetch_add(1, Ordering::Relaxed)
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
