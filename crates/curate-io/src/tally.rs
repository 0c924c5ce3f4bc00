//! A writer that counts and hashes the bytes reaching the file beneath it (beneath any
//! compressor), so a file's size and content hash are known when it closes without reading
//! it back.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// The count and hash a [`Tally`] keeps, shared with its handle.
pub type Seen = Arc<Mutex<(u64, blake3::Hasher)>>;

/// Counts and hashes what passes through to `inner`; the count and hash stay readable
/// through the handle [`Tally::new`] returns while something else owns the writer.
pub struct Tally<W> {
    inner: W,
    seen: Seen,
}

impl<W> Tally<W> {
    /// A tally over `inner`, with the handle to read it.
    pub fn new(inner: W) -> (Self, Seen) {
        let seen = Arc::new(Mutex::new((0, blake3::Hasher::new())));
        (Tally { inner, seen: seen.clone() }, seen)
    }

    /// The bytes written, their blake3 hash, and the writer.
    pub fn finish(self) -> (u64, String, W) {
        let (n, hash) = tallied(&self.seen);
        (n, hash, self.inner)
    }
}

/// Bytes written and the blake3 hash of them.
pub fn tallied(seen: &Mutex<(u64, blake3::Hasher)>) -> (u64, String) {
    let s = seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    (s.0, s.1.finalize().to_hex().to_string())
}

/// Bytes written so far.
pub(crate) fn tallied_bytes(seen: &Mutex<(u64, blake3::Hasher)>) -> u64 {
    seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).0
}

impl<W: Write> Write for Tally<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        let mut s = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        s.0 += n as u64;
        s.1.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
