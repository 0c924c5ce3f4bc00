//! The store of dataset versions: immutable, content-addressed objects
//! (`objects/ab/ab12….parquet`) below a local directory or an object-store prefix
//! (`CURATE_STORE=s3://bucket/prefix`), so several machines sharing one registry also
//! share the files its versions list.

use std::fs::File;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use object_store::ObjectStoreExt;

use crate::location::{block_on, upload, Location};
use crate::IoError;

/// A store of content-addressed objects.
#[derive(Debug, Clone)]
pub struct VersionStore {
    root: Location,
}

/// The store path of an object with this content hash and extension (`.parquet`,
/// `.jsonl.zst`, `.idx`).
pub fn object_name(hash: &str, ext: &str) -> String {
    format!("objects/{}/{hash}{ext}", &hash[..hash.len().min(2)])
}

/// The extension of a file name as objects keep it: everything from the first dot
/// (`.jsonl.zst`), a leading dot (hidden staging files) not counting.
pub fn extension(name: &str) -> &str {
    let name = name.trim_start_matches('.');
    name.find('.').map_or("", |i| &name[i..])
}

impl VersionStore {
    /// A store at a local directory or an `s3://` prefix.
    pub fn open(location: &str) -> Result<Self, IoError> {
        Ok(VersionStore { root: Location::parse(location)? })
    }

    /// The local directory, for a local store.
    pub fn local_root(&self) -> Option<&Path> {
        self.root.local.as_deref()
    }

    /// The store as written (`.curate/store`, `s3://bucket/prefix`).
    pub fn display(&self) -> &str {
        &self.root.display
    }

    /// Where readers find an object: a local path or a URL.
    pub fn locate(&self, rel: &str) -> String {
        match self.local_root() {
            Some(root) => root.join(rel).to_string_lossy().into_owned(),
            None => format!("{}/{rel}", self.root.display),
        }
    }

    /// A local object's path; `None` for a remote store.
    pub fn local_path(&self, rel: &str) -> Option<PathBuf> {
        self.local_root().map(|r| r.join(rel))
    }

    fn err(&self, rel: &str, e: impl std::fmt::Display) -> IoError {
        IoError::Store { location: self.locate(rel), message: e.to_string() }
    }

    /// Adds `file`, whose blake3 hash the caller computed while writing it, as object
    /// `objects/…/{hash}{ext}` and returns that path. A local object is a copy (a
    /// reflink where the file system can, never a hard link: editing the run's output
    /// must not change a version), read-only and on disk, with its directory, before
    /// this returns.
    pub fn put(&self, file: &Path, hash: &str, ext: &str) -> Result<String, IoError> {
        let rel = object_name(hash, ext);
        let Some(root) = self.local_root() else {
            let dest = self.root.join(&rel);
            // Same name, same bytes: an object already there is this one.
            if dest.head().is_err() {
                upload(file, &dest).map_err(|e| self.err(&rel, e))?;
            }
            return Ok(rel);
        };
        let staging = root.join("tmp");
        std::fs::create_dir_all(&staging).map_err(|e| self.err("tmp", e))?;
        let tmp = staging.join(format!("{}{ext}", curate_core::io::scratch_id()));
        let copied = copy_read_only(file, &tmp, false);
        if let Err(e) = copied {
            let _ = std::fs::remove_file(&tmp);
            return Err(self.err(&rel, e));
        }
        self.install(&tmp, &rel)?;
        Ok(rel)
    }

    /// Moves `file`, which the caller wrote, synced and hashed, into the store as object
    /// `objects/…/{hash}{ext}` (a rename when it is on the store's file system, else a copy
    /// or an upload, after which the file is removed); returns the object path.
    pub fn adopt(&self, file: &Path, hash: &str, ext: &str) -> Result<String, IoError> {
        let rel = object_name(hash, ext);
        // A file inside the store (its `tmp/`) is on the store's file system: renamed in.
        if self.local_root().is_some_and(|root| file.starts_with(root)) {
            let mut perms = std::fs::metadata(file).map_err(|e| self.err(&rel, e))?.permissions();
            perms.set_readonly(true);
            std::fs::set_permissions(file, perms).map_err(|e| self.err(&rel, e))?;
            self.install(file, &rel)?;
            return Ok(rel);
        }
        let rel = self.put(file, hash, ext)?;
        std::fs::remove_file(file).map_err(|e| self.err(&rel, e))?;
        Ok(rel)
    }

    /// Adds a copy of `file`, hashing the copy as it is made (for files nobody hashed
    /// while writing); returns the object path, the hash and the size.
    pub fn put_hashing(&self, file: &Path) -> Result<(String, String, u64), IoError> {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let ext = extension(name);
        let scratch = match self.local_root() {
            Some(root) => root.join("tmp"),
            None => std::env::temp_dir(),
        };
        std::fs::create_dir_all(&scratch).map_err(|e| self.err("tmp", e))?;
        let tmp = scratch.join(format!("curate-put-{}{ext}", curate_core::io::scratch_id()));
        let (hash, bytes) = match copy_read_only(file, &tmp, true) {
            Ok((h, b)) => (h.unwrap_or_default(), b),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(self.err(&file.display().to_string(), e));
            }
        };
        let rel = object_name(&hash, ext);
        if self.local_root().is_some() {
            self.install(&tmp, &rel)?;
        } else {
            let result = self.put(&tmp, &hash, ext);
            let _ = std::fs::remove_file(&tmp);
            result?;
        }
        Ok((rel, hash, bytes))
    }

    /// Renames a durable staged copy to its object name and makes the name durable.
    fn install(&self, tmp: &Path, rel: &str) -> Result<(), IoError> {
        let Some(dest) = self.local_path(rel) else { return Ok(()) };
        let dir = dest.parent().map(Path::to_path_buf).unwrap_or_default();
        if !dir.exists() {
            std::fs::create_dir_all(&dir).map_err(|e| self.err(rel, e))?;
            if let Some(objects) = dir.parent() {
                sync_dir(objects).map_err(|e| self.err(rel, e))?;
            }
        }
        // Replacing an existing object with this fresh copy is always right (same hash,
        // same bytes) and heals an object that was damaged or hard-linked.
        std::fs::rename(tmp, &dest).map_err(|e| self.err(rel, e))?;
        sync_dir(&dir).map_err(|e| self.err(rel, e))
    }

    /// Reads a whole object.
    pub fn read(&self, rel: &str) -> Result<Bytes, IoError> {
        if let Some(p) = self.local_path(rel) {
            return std::fs::read(&p).map(Bytes::from).map_err(|e| self.err(rel, e));
        }
        let loc = self.root.join(rel);
        block_on(async { loc.store.get(&loc.path).await?.bytes().await }).map_err(|e| self.err(rel, e))
    }

    /// An object's size.
    pub fn size(&self, rel: &str) -> Result<u64, IoError> {
        if let Some(p) = self.local_path(rel) {
            return std::fs::metadata(&p).map(|m| m.len()).map_err(|e| self.err(rel, e));
        }
        Ok(self.root.join(rel).head()?.size)
    }

    /// Random access to an object, for id index lookups.
    pub fn reader(&self, rel: &str) -> Result<ObjectReader, IoError> {
        match self.local_path(rel) {
            Some(p) => Ok(ObjectReader::Local(File::open(&p).map_err(|e| self.err(rel, e))?)),
            None => Ok(ObjectReader::Remote(self.root.join(rel))),
        }
    }

    /// Deletes a local object (and its fan-out directory when left empty); false when it
    /// was already gone. Remote objects are left to the bucket's lifecycle rules.
    pub fn remove(&self, rel: &str) -> Result<bool, IoError> {
        let Some(path) = self.local_path(rel) else {
            let loc = self.root.join(rel);
            return match block_on(loc.store.delete(&loc.path)) {
                Ok(()) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(self.err(rel, e)),
            };
        };
        match std::fs::remove_file(&path) {
            Ok(()) => {
                if let Some(dir) = path.parent() {
                    // Only succeeds when the fan-out directory is now empty.
                    let _ = std::fs::remove_dir(dir);
                }
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.err(rel, e)),
        }
    }
}

/// Random access to one stored object.
pub enum ObjectReader {
    /// A local file.
    Local(File),
    /// An object fetched by byte ranges.
    Remote(Location),
}

impl curate_lineage::ReadAt for ObjectReader {
    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        match self {
            ObjectReader::Local(f) => curate_lineage::ReadAt::read_at(f, offset, len),
            ObjectReader::Remote(loc) => {
                let bytes = loc.read_range(offset, offset + len as u64).map_err(std::io::Error::other)?;
                if bytes.len() != len {
                    return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "short read of a stored object"));
                }
                Ok(bytes.to_vec())
            }
        }
    }
}

/// Copies `src` to the new file `dest` (a reflink when the file system can), makes it
/// read-only and durable; with `hash`, returns the blake3 hash of the bytes written.
fn copy_read_only(src: &Path, dest: &Path, hash: bool) -> std::io::Result<(Option<String>, u64)> {
    use std::io::{Read, Write};
    let mut from = File::open(src)?;
    let mut to = std::fs::OpenOptions::new().write(true).create_new(true).open(dest)?;
    let mut hasher = hash.then(blake3::Hasher::new);
    if reflink(&from, &to) {
        if let Some(h) = hasher.as_mut() {
            std::io::copy(&mut File::open(dest)?, h)?;
        }
    } else if let Some(h) = hasher.as_mut() {
        // Hash what is written, in the same pass, so the object's name is the hash of
        // its own bytes even if the source changes underneath.
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = from.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            to.write_all(&buf[..n])?;
        }
    } else {
        // In-kernel copy (copy_file_range): the bytes do not pass through this process.
        std::io::copy(&mut from, &mut to)?;
    }
    let bytes = to.metadata()?.len();
    let mut perms = to.metadata()?.permissions();
    perms.set_readonly(true);
    to.set_permissions(perms)?;
    to.sync_all()?;
    Ok((hasher.map(|h| h.finalize().to_hex().to_string()), bytes))
}

/// Makes `to` share `from`'s extents (`ioctl FICLONE`); false where the file system
/// cannot (ext4, across file systems, other platforms), so the caller copies.
#[cfg(target_os = "linux")]
fn reflink(from: &File, to: &File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: both descriptors are open for the duration of the call, and FICLONE takes
    // the source descriptor as its argument and writes no memory.
    unsafe { libc::ioctl(to.as_raw_fd(), libc::FICLONE, from.as_raw_fd()) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn reflink(_: &File, _: &File) -> bool {
    false
}

/// Makes a directory's entries (a rename into it, a new subdirectory) durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}
