//! Input files must not change under a run: the content hash that names an input in cache
//! keys and version derivations has to cover exactly the bytes the run read.
//!
//! A task hashes what it read: a whole JSONL file (compressed or not) as it streams, a JSONL
//! byte range the bytes of its own range as it reads them, a Parquet shard its row groups'
//! span after decoding. One sequential pass hashes a whole file and, in the same pass, each
//! shard's span; it runs before reading when the step cache needs the file's hash for its
//! keys (the tasks must then match it), else after the run for the registry (it must then
//! match what the tasks read). The file's size and modification time (or ETag) are compared
//! at the start and end of every task as well. A mismatch fails the task, or the recording of
//! the run, before anything is committed or cached.

use std::io::Read;
use std::sync::{Arc, Mutex};

use curate_core::io::{BoxError, Chunk};

use crate::location::Location;

/// Byte span `[start, end)` of a file.
pub(crate) type Span = (u64, u64);

/// Hashes of one file's content: the whole file, and each shard span.
#[derive(Debug, Clone)]
pub(crate) struct Digest {
    pub(crate) file: String,
    /// Hash of each requested span, in the order requested.
    pub(crate) spans: Vec<(Span, String)>,
}

impl Digest {
    pub(crate) fn span(&self, span: Span) -> Option<&str> {
        self.spans.iter().find(|(s, _)| *s == span).map(|(_, h)| h.as_str())
    }
}

/// Reads `loc` once, hashing the whole file and every span of `spans`.
pub(crate) fn digest(loc: &Location, spans: &[Span]) -> Result<Digest, BoxError> {
    let mut sorted: Vec<Span> = spans.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut hashers: Vec<blake3::Hasher> = sorted.iter().map(|_| blake3::Hasher::new()).collect();
    let mut file = blake3::Hasher::new();
    let mut r = loc.open_range(0, None)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0u64;
    loop {
        let n = read_some(&mut r, &mut buf).map_err(|e| format!("{}: {e}", loc.display))?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        file.update(chunk);
        feed_spans(&sorted, &mut hashers, pos, chunk);
        pos += n as u64;
    }
    Ok(Digest {
        file: file.finalize().to_hex().to_string(),
        spans: sorted.into_iter().zip(hashers).map(|(s, h)| (s, h.finalize().to_hex().to_string())).collect(),
    })
}

fn read_some(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Feeds the part of `chunk` (at file offset `pos`) inside each span to that span's hasher.
fn feed_spans(spans: &[Span], hashers: &mut [blake3::Hasher], pos: u64, chunk: &[u8]) {
    let end = pos + chunk.len() as u64;
    for ((s, e), h) in spans.iter().zip(hashers.iter_mut()) {
        let (a, b) = ((*s).max(pos), (*e).min(end));
        if a < b {
            h.update(&chunk[(a - pos) as usize..(b - pos) as usize]);
        }
    }
}

/// What a reader has hashed so far: the bytes of `window` it passed on, up to `pos`.
#[derive(Debug)]
pub(crate) struct Hashed {
    hasher: blake3::Hasher,
    window: Span,
    pos: u64,
}

/// Passes reads through, hashing the bytes that fall inside a window of the file.
pub(crate) struct HashingReader<R> {
    inner: R,
    state: Arc<Mutex<Hashed>>,
}

impl<R: Read> HashingReader<R> {
    /// `inner` starts at file offset `pos`; bytes in `window` are hashed.
    pub(crate) fn new(inner: R, pos: u64, window: Span) -> (Self, Arc<Mutex<Hashed>>) {
        let state = Arc::new(Mutex::new(Hashed { pos, ..Hashed::window(window) }));
        (HashingReader { inner, state: state.clone() }, state)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            let mut s = self.state.lock().map_err(|_| std::io::Error::other("input hash state poisoned"))?;
            let s = &mut *s;
            let window = [s.window];
            feed_spans(&window, std::slice::from_mut(&mut s.hasher), s.pos, &buf[..n]);
            s.pos += n as u64;
        }
        Ok(n)
    }
}

impl Hashed {
    /// Nothing hashed yet of `window`; [`Hashed::finish`] reads it all.
    pub(crate) fn window(window: Span) -> Self {
        Hashed { hasher: blake3::Hasher::new(), window, pos: 0 }
    }

    /// The window's hash, reading what the consumer left unread of it from `loc`.
    pub(crate) fn finish(&mut self, loc: &Location) -> Result<String, BoxError> {
        let (start, mut end) = self.window;
        let from = self.pos.max(start);
        if end == u64::MAX && loc.local.is_none() {
            // An object store refuses a range that starts at the end of the object (416),
            // which is where a consumer that read everything leaves `from`.
            end = loc.head()?.size;
        }
        if from < end {
            let mut rest = loc.open_range(from, (end != u64::MAX).then_some(end))?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = read_some(&mut rest, &mut buf).map_err(|e| format!("{}: {e}", loc.display))?;
                if n == 0 {
                    break;
                }
                self.hasher.update(&buf[..n]);
            }
        }
        Ok(self.hasher.finalize().to_hex().to_string())
    }
}

/// Yields a shard's chunks, then runs `check`; an error there ends the stream with it, so a
/// task that read changed bytes fails instead of committing them.
pub(crate) struct Verified<'a> {
    pub(crate) inner: Box<dyn Iterator<Item = Result<Chunk, BoxError>> + Send + 'a>,
    pub(crate) check: Option<Box<dyn FnOnce() -> Result<(), BoxError> + Send + 'a>>,
}

impl Iterator for Verified<'_> {
    type Item = Result<Chunk, BoxError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.inner.next() {
            Some(item) => Some(item),
            None => {
                let check = self.check.take()?;
                check().err().map(Err)
            }
        }
    }
}

/// The error of a shard whose bytes changed while the run read them.
pub(crate) fn changed(file: &str, what: &str) -> BoxError {
    format!(
        "{file}: the file changed while this run read it ({what}); nothing read from it was committed or cached — \
         rerun (with --resume) once the file no longer changes"
    )
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_hash_as_their_bytes_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.jsonl");
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let loc = Location::parse(path.to_str().unwrap()).unwrap();
        let spans = [(0, 1_500_000), (1_500_000, 3_000_000), (10, 2_000_017)];
        let d = digest(&loc, &spans).unwrap();
        assert_eq!(d.file, blake3::hash(&bytes).to_hex().to_string());
        for s in spans {
            assert_eq!(d.span(s).unwrap(), blake3::hash(&bytes[s.0 as usize..s.1 as usize]).to_hex().as_str());
        }
    }

    #[test]
    fn a_partial_reader_hashes_its_window_and_the_unread_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 7) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let loc = Location::parse(path.to_str().unwrap()).unwrap();
        let (mut r, state) = HashingReader::new(loc.open_range(99, None).unwrap(), 99, (100, 60_000));
        let mut buf = vec![0u8; 4096];
        r.read_exact(&mut buf).unwrap();
        let got = state.lock().unwrap().finish(&loc).unwrap();
        assert_eq!(got, blake3::hash(&bytes[100..60_000]).to_hex().to_string());
    }
}
