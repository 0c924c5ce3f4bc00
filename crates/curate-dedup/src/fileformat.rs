//! Framing shared by persisted files: `magic (8 bytes) | version u32 | body | xxh3-64 of all
//! previous bytes`, all integers little-endian. Files are written to a temporary sibling and
//! renamed so that a crash never leaves a half-written index where a valid one was.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::Xxh3;

use crate::error::{DedupError, Result};

/// Streams a body into a temporary file while checksumming it.
pub(crate) struct FramedWriter {
    out: BufWriter<File>,
    hasher: Xxh3,
    tmp: PathBuf,
    dest: PathBuf,
}

impl FramedWriter {
    /// Starts `dest` with the given magic and version.
    pub(crate) fn create(dest: &Path, magic: &[u8; 8], version: u32) -> Result<Self> {
        let mut tmp = dest.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let file = File::create(&tmp).map_err(|e| DedupError::io(&tmp, e))?;
        let mut w = FramedWriter {
            out: BufWriter::new(file),
            hasher: Xxh3::new(),
            tmp,
            dest: dest.to_owned(),
        };
        w.bytes(magic)?;
        w.u32(version)?;
        Ok(w)
    }

    /// Appends raw bytes.
    pub(crate) fn bytes(&mut self, b: &[u8]) -> Result<()> {
        self.hasher.update(b);
        self.out
            .write_all(b)
            .map_err(|e| DedupError::io(&self.tmp, e))
    }

    /// Appends a little-endian u32.
    pub(crate) fn u32(&mut self, v: u32) -> Result<()> {
        self.bytes(&v.to_le_bytes())
    }

    /// Appends a little-endian u64.
    pub(crate) fn u64(&mut self, v: u64) -> Result<()> {
        self.bytes(&v.to_le_bytes())
    }

    /// Writes the checksum, syncs and atomically moves the file into place.
    pub(crate) fn finish(mut self) -> Result<()> {
        let sum = self.hasher.digest();
        self.out
            .write_all(&sum.to_le_bytes())
            .map_err(|e| DedupError::io(&self.tmp, e))?;
        let file = self
            .out
            .into_inner()
            .map_err(|e| DedupError::io(&self.tmp, e.into_error()))?;
        file.sync_all().map_err(|e| DedupError::io(&self.tmp, e))?;
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| DedupError::io(&self.dest, e))
    }
}

/// Reads a framed file, verifying magic, version and (in [`FramedReader::finish`]) checksum.
pub(crate) struct FramedReader {
    inp: BufReader<File>,
    hasher: Xxh3,
    path: PathBuf,
}

impl FramedReader {
    /// Opens `path` and checks its magic and version.
    pub(crate) fn open(path: &Path, magic: &[u8; 8], version: u32) -> Result<Self> {
        let file = File::open(path).map_err(|e| DedupError::io(path, e))?;
        let mut r = FramedReader {
            inp: BufReader::new(file),
            hasher: Xxh3::new(),
            path: path.to_owned(),
        };
        let mut m = [0u8; 8];
        r.fill(&mut m)?;
        if &m != magic {
            return Err(r.corrupt(format!(
                "expected magic {:?}, found {:?}",
                String::from_utf8_lossy(magic),
                String::from_utf8_lossy(&m)
            )));
        }
        let found = r.u32()?;
        if found != version {
            return Err(DedupError::VersionMismatch {
                path: r.path,
                expected: version,
                found,
            });
        }
        Ok(r)
    }

    /// The file being read, for error messages.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// A [`DedupError::Corrupt`] for this file.
    pub(crate) fn corrupt(&self, reason: impl Into<String>) -> DedupError {
        DedupError::Corrupt {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    /// Reads exactly `buf.len()` bytes.
    pub(crate) fn fill(&mut self, buf: &mut [u8]) -> Result<()> {
        self.inp.read_exact(buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => self.corrupt("file is truncated"),
            _ => DedupError::io(&self.path, e),
        })?;
        self.hasher.update(buf);
        Ok(())
    }

    /// Reads a little-endian u32.
    pub(crate) fn u32(&mut self) -> Result<u32> {
        let mut b = [0u8; 4];
        self.fill(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Reads a little-endian u64.
    pub(crate) fn u64(&mut self) -> Result<u64> {
        let mut b = [0u8; 8];
        self.fill(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Reads a count that sizes an allocation, refusing values larger than the file could hold
    /// so that a corrupt header cannot trigger a huge allocation.
    pub(crate) fn len(&mut self, item_bytes: u64) -> Result<usize> {
        let n = self.u64()?;
        let file_len = self
            .inp
            .get_ref()
            .metadata()
            .map_err(|e| DedupError::io(&self.path, e))?
            .len();
        if n.saturating_mul(item_bytes.max(1)) > file_len {
            return Err(self.corrupt(format!("count {n} exceeds what the file can contain")));
        }
        usize::try_from(n).map_err(|_| self.corrupt(format!("count {n} does not fit in memory")))
    }

    /// Verifies the trailing checksum and that nothing follows it.
    pub(crate) fn finish(mut self) -> Result<()> {
        let expected = self.hasher.digest();
        let mut b = [0u8; 8];
        self.inp.read_exact(&mut b).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => self.corrupt("file is truncated (no checksum)"),
            _ => DedupError::io(&self.path, e),
        })?;
        if u64::from_le_bytes(b) != expected {
            return Err(self.corrupt("checksum mismatch"));
        }
        let mut extra = [0u8; 1];
        match self.inp.read(&mut extra) {
            Ok(0) => Ok(()),
            Ok(_) => Err(self.corrupt("trailing bytes after checksum")),
            Err(e) => Err(DedupError::io(&self.path, e)),
        }
    }
}
