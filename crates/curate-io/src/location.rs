//! Locations: local paths and `s3://` URLs resolved to an object store, glob expansion,
//! and blocking access from worker threads.

use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
#[cfg(feature = "s3")]
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjPath;
use object_store::{GetOptions, GetRange, GetResultPayload, ObjectMeta, ObjectStore};

use crate::IoError;

/// The async runtime that drives object store calls; workers block on it.
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("curate-io")
            .enable_all()
            .build()
            .expect("the I/O runtime must start; without it no file can be read")
    })
}

/// Runs a future to completion from a synchronous caller.
pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    runtime().block_on(f)
}

/// A store plus the root path within it that a location names.
#[derive(Clone, Debug)]
pub struct Location {
    /// The store (local file system or an S3 bucket).
    pub store: Arc<dyn ObjectStore>,
    /// Path inside the store.
    pub path: ObjPath,
    /// How the user wrote it, for messages and ids.
    pub display: String,
    /// Local file system path, when the store is local.
    pub local: Option<PathBuf>,
}

/// The S3 bucket `bucket`, configured from the usual `AWS_*` variables.
#[cfg(feature = "s3")]
fn s3_store(bucket: &str) -> Result<Arc<dyn ObjectStore>, String> {
    let store = AmazonS3Builder::from_env().with_bucket_name(bucket).build().map_err(|e| e.to_string())?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "s3"))]
fn s3_store(_bucket: &str) -> Result<Arc<dyn ObjectStore>, String> {
    Err("built without s3:// support (curate-io feature `s3`)".into())
}

impl Location {
    /// Resolves `s3://bucket/key` (credentials and endpoint from the usual `AWS_*` variables)
    /// or a local path (relative to the working directory).
    pub fn parse(s: &str) -> Result<Self, IoError> {
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(IoError::Location { location: s.into(), message: "missing bucket name".into() });
            }
            let store = s3_store(bucket).map_err(|message| IoError::Location { location: s.into(), message })?;
            return Ok(Location {
                store,
                path: ObjPath::from(key.trim_end_matches('/')),
                display: s.trim_end_matches('/').into(),
                local: None,
            });
        }
        if let Some(scheme) = s.split_once("://").map(|(a, _)| a) {
            if scheme != "file" {
                return Err(IoError::Location {
                    location: s.into(),
                    message: format!("unsupported scheme `{scheme}://`; use a local path, file:// or s3://"),
                });
            }
        }
        let raw = s.strip_prefix("file://").unwrap_or(s);
        let abs = std::path::absolute(raw).map_err(|e| IoError::Location { location: s.into(), message: e.to_string() })?;
        let path = ObjPath::from_absolute_path(&abs)
            .map_err(|e| IoError::Location { location: s.into(), message: e.to_string() })?;
        Ok(Location {
            store: Arc::new(LocalFileSystem::new()),
            path,
            display: raw.trim_end_matches('/').to_string(),
            local: Some(abs),
        })
    }

    /// The location of `rel` below this one.
    pub fn join(&self, rel: &str) -> Location {
        let mut path = self.path.clone();
        for part in rel.split('/').filter(|p| !p.is_empty()) {
            path = path.join(part);
        }
        Location {
            store: self.store.clone(),
            path,
            display: format!("{}/{rel}", self.display),
            local: self.local.as_ref().map(|l| l.join(rel)),
        }
    }

    /// Size and version of the object.
    pub fn head(&self) -> Result<ObjectMeta, IoError> {
        block_on(object_store::ObjectStoreExt::head(self.store.as_ref(), &self.path)).map_err(|e| self.err(e))
    }

    /// A reader over bytes `[start, end)` (`end = None` reads to the end of the object).
    pub fn open_range(&self, start: u64, end: Option<u64>) -> Result<Box<dyn Read + Send>, IoError> {
        if let Some(local) = &self.local {
            // Plain file reads avoid a round trip through the async runtime per buffer.
            use std::io::{Seek, SeekFrom};
            let mut f = std::fs::File::open(local).map_err(|e| IoError::Read { file: self.display.clone(), source: e })?;
            f.seek(SeekFrom::Start(start)).map_err(|e| IoError::Read { file: self.display.clone(), source: e })?;
            return Ok(match end {
                Some(end) => Box::new(f.take(end.saturating_sub(start))),
                None => Box::new(f),
            });
        }
        let range = match end {
            Some(end) => GetRange::Bounded(start..end),
            None => GetRange::Offset(start),
        };
        let opts = GetOptions { range: Some(range), ..Default::default() };
        let result = block_on(self.store.get_opts(&self.path, opts)).map_err(|e| self.err(e))?;
        match result.payload {
            GetResultPayload::File(f, _) => Ok(Box::new(f)),
            GetResultPayload::Stream(stream) => {
                Ok(Box::new(StreamReader { stream, current: Bytes::new(), file: self.display.clone() }))
            }
        }
    }

    /// Bytes `[start, end)` in one request.
    pub fn read_range(&self, start: u64, end: u64) -> Result<Bytes, IoError> {
        block_on(object_store::ObjectStoreExt::get_range(self.store.as_ref(), &self.path, start..end)).map_err(|e| self.err(e))
    }

    fn err(&self, e: object_store::Error) -> IoError {
        IoError::Store { location: self.display.clone(), message: e.to_string() }
    }
}

/// A blocking `Read` over an object store byte stream.
struct StreamReader {
    stream: BoxStream<'static, object_store::Result<Bytes>>,
    current: Bytes,
    file: String,
}

impl Read for StreamReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match block_on(self.stream.next()) {
                Some(Ok(b)) => self.current = b,
                // Not `Other`: decoders report corrupt data as `Other`, and a network failure is no data error.
                Some(Err(e)) => {
                    return Err(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, format!("{}: {e}", self.file)))
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

/// Expands a path or glob into matching files, sorted by path. A plain path must exist.
pub fn expand(pattern: &str) -> Result<Vec<(Location, ObjectMeta)>, IoError> {
    if !is_glob(pattern) {
        let loc = Location::parse(pattern)?;
        if loc.local.as_ref().is_some_and(|p| p.is_dir()) {
            return Err(IoError::Location {
                location: pattern.into(),
                message: "is a directory; name files or a glob such as `dir/*.jsonl`".into(),
            });
        }
        let meta = loc.head().map_err(|_| IoError::NotFound { pattern: pattern.into() })?;
        return Ok(vec![(loc, meta)]);
    }
    let meta_pos = pattern.find(['*', '?', '[', '{']).unwrap_or(pattern.len());
    let base = match pattern[..meta_pos].rfind('/') {
        Some(i) => &pattern[..i],
        None => ".",
    };
    let rel_pattern = if base == "." && !pattern.starts_with("./") { pattern } else { &pattern[base.len() + 1..] };
    let matcher = globset::GlobBuilder::new(rel_pattern)
        .literal_separator(true)
        .build()
        .map_err(|e| IoError::Glob { pattern: pattern.into(), message: e.kind().to_string() })?
        .compile_matcher();
    let root = Location::parse(base)?;
    if root.local.as_ref().is_some_and(|p| !p.is_dir()) {
        return Err(IoError::NotFound { pattern: pattern.into() });
    }
    let prefix = root.path.clone();
    let listed: Vec<ObjectMeta> = block_on(async {
        let prefix = if prefix.as_ref().is_empty() { None } else { Some(&prefix) };
        root.store.list(prefix).collect::<Vec<_>>().await
    })
    .into_iter()
    .collect::<Result<_, _>>()
    .map_err(|e| IoError::Store { location: base.into(), message: e.to_string() })?;
    let mut out = Vec::new();
    for meta in listed {
        let Some(rel) = meta.location.prefix_match(&root.path).map(|parts| {
            parts.map(|p| p.as_ref().to_string()).collect::<Vec<_>>().join("/")
        }) else {
            continue;
        };
        if matcher.is_match(&rel) {
            let display = if base == "." && !pattern.starts_with("./") { rel.clone() } else { format!("{base}/{rel}") };
            let mut loc = root.join(&rel);
            loc.display = display;
            out.push((loc, meta));
        }
    }
    out.sort_by(|a, b| a.0.display.cmp(&b.0.display));
    if out.is_empty() {
        return Err(IoError::NotFound { pattern: pattern.into() });
    }
    Ok(out)
}

/// Uploads a local file to `dest` in parts, so large files need not fit in memory.
pub(crate) fn upload(file: &std::path::Path, dest: &Location) -> Result<(), object_store::Error> {
    use object_store::{ObjectStoreExt, WriteMultipart};
    let mut file = std::fs::File::open(file).map_err(|e| object_store::Error::Generic { store: "staging", source: Box::new(e) })?;
    block_on(async {
        let upload = dest.store.put_multipart(&dest.path).await?;
        let mut w = WriteMultipart::new(upload);
        let mut buf = vec![0u8; 8 << 20];
        loop {
            let n = file.read(&mut buf).map_err(|e| object_store::Error::Generic { store: "staging", source: Box::new(e) })?;
            if n == 0 {
                break;
            }
            w.wait_for_capacity(4).await?;
            w.write(&buf[..n]);
        }
        w.finish().await
    })?;
    Ok(())
}
