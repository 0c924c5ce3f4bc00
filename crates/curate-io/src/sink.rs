//! The directory sink: `data/`, `rejects/`, `quarantine/`, `_state/` and `run.json` under an
//! output location. Files are staged, then published by rename (local) or a single
//! upload (object stores), so readers never see a partial file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use base64::Engine;
use curate_core::io::{BoxError, OutputFile, Quarantined, Sink, TaskWriter};
use curate_core::spec::{Compression, OutputFormat, OutputSpec};
use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression as PqCompression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use curate_core::record;

use curate_core::json_rows;
use crate::location::{block_on, upload, Location};
use crate::store::VersionStore;
use crate::tally::{tallied, tallied_bytes, Seen, Tally};
use curate_lineage::SidecarWriter;
use crate::lock::{OutputLock, LOCK_FILE};
use crate::IoError;

/// Parquet row groups close at this estimated encoded size, bounding writer memory.
const ROW_GROUP_BYTES: usize = 32 << 20;
/// Subdirectories a run owns; `reset` removes exactly these.
const OWNED: [&str; 6] = ["data", "rejects", "quarantine", "_lineage", "_state", "_tmp"];
/// Where each data and rejects file's lineage sidecar and id index go.
pub const LINEAGE_DIR: &str = "_lineage";

/// Tells the staging directories of one process's joined sinks apart.
static SINK_SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Writes a run's outputs below one location.
pub struct DirSink {
    root: Location,
    format: OutputFormat,
    compression: Compression,
    shard_size: u64,
    staging: PathBuf,
    /// The output's lock; `None` for a worker's sink joined to a run another process holds.
    lock: Option<OutputLock>,
    /// The run's operators as JSON, recorded in every lineage sidecar.
    operators: Arc<str>,
    /// Where data files and lineage go as content-addressed objects, when versions are kept.
    store: Option<VersionStore>,
}

impl Drop for DirSink {
    fn drop(&mut self) {
        // A joined sink's staging is its own; the lock holder's is cleared by the next run.
        if self.lock.is_none() {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

impl DirSink {
    /// Prepares the output location, failing early if it cannot be written or another run
    /// holds it; `holder` names this run to such another run.
    pub fn create(spec: &OutputSpec, holder: &str) -> Result<Self, IoError> {
        Self::open(spec, Some(holder))
    }

    /// A sink on an output whose lock another process holds for the run (a control
    /// plane, whose workers run the run's tasks): it takes no lock and stages its files
    /// apart from every other process's, so a task run twice at once (a worker presumed
    /// dead) cannot disturb the other copy.
    pub fn join(spec: &OutputSpec) -> Result<Self, IoError> {
        Self::open(spec, None)
    }

    fn open(spec: &OutputSpec, holder: Option<&str>) -> Result<Self, IoError> {
        let root = Location::parse(&spec.path)?;
        let compression = spec.compression();
        let ok = match spec.format {
            OutputFormat::Parquet => matches!(compression, Compression::None | Compression::Zstd | Compression::Snappy),
            OutputFormat::Jsonl => matches!(compression, Compression::None | Compression::Zstd | Compression::Gzip),
        };
        if !ok {
            return Err(IoError::Location {
                location: spec.path.clone(),
                message: format!("compression {compression:?} does not apply to {:?} output", spec.format),
            });
        }
        let (staging, lock_path) = match &root.local {
            Some(p) => (p.join("_tmp"), p.join(LOCK_FILE)),
            None => {
                // A remote location is locked on this machine only: runs on other machines
                // sharing one bucket prefix need the registry's lease (the service's queue).
                let base = std::env::temp_dir().join(format!("curate-{}", blake3::hash(root.display.as_bytes()).to_hex()));
                (base.clone(), base.with_extension("lock"))
            }
        };
        let unwritable = |e: std::io::Error| IoError::Location {
            location: spec.path.clone(),
            message: format!("output is not writable ({e}); choose another output.path or fix its permissions"),
        };
        if let Some(p) = &root.local {
            std::fs::create_dir_all(p).map_err(unwritable)?;
        }
        // Locked before anything below the root is touched, so a refused run changes nothing.
        let lock = match holder {
            Some(holder) => Some(OutputLock::acquire(&lock_path, &spec.path, holder)?),
            None => None,
        };
        let staging = match lock {
            Some(_) => staging,
            None => staging.join(format!("worker-{}-{}", std::process::id(), SINK_SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed))),
        };
        std::fs::create_dir_all(&staging).map_err(unwritable)?;
        let probe = staging.join(".probe");
        std::fs::write(&probe, b"").map_err(unwritable)?;
        let _ = std::fs::remove_file(probe);
        Ok(DirSink {
            root,
            format: spec.format,
            compression,
            shard_size: spec.shard_size.0,
            staging,
            lock,
            operators: Arc::from("[]"),
            store: None,
        })
    }

    /// Records these operators (JSON of `curate_lineage::OperatorInfo`s) in the lineage
    /// sidecars, so each sidecar says what touched its records.
    pub fn with_operators(mut self, operators: String) -> Self {
        self.operators = Arc::from(operators);
        self
    }

    /// Also adds every data file, lineage sidecar and id index to `store` as each task
    /// commits, so committing a version only names objects already there.
    pub fn with_store(mut self, store: VersionStore) -> Self {
        self.store = Some(store);
        self
    }

    /// Says who holds the output (shown to a run that finds it busy), e.g. the registry's run.
    pub fn describe_holder(&self, holder: &str) -> Result<(), IoError> {
        let Some(lock) = &self.lock else { return Ok(()) };
        lock.describe(holder).map_err(|e| IoError::Location {
            location: self.root.display.clone(),
            message: format!("cannot write the lock file {}: {e}", lock.path().display()),
        })
    }

    /// Checks, leaving nothing behind, that a run could write the output location: the
    /// nearest existing directory takes a file, and an existing output directory holds
    /// nothing but an earlier curate run.
    pub fn check(spec: &OutputSpec) -> Result<(), IoError> {
        let root = Location::parse(&spec.path)?;
        let Some(local) = root.local.as_deref() else { return Ok(()) };
        // A run at work there is the first thing to tell: its half-written state looks foreign.
        let lock = local.join(LOCK_FILE);
        OutputLock::check_free(&lock, &spec.path)?;
        if local.is_dir() && foreign_entries(local).map_err(|e| IoError::Location { location: spec.path.clone(), message: e.to_string() })? {
            // A run may have taken the directory since the first look.
            OutputLock::check_free(&lock, &spec.path)?;
            return Err(IoError::Location { location: spec.path.clone(), message: not_ours_message() });
        }
        let mut p = local;
        loop {
            match std::fs::metadata(p) {
                Ok(m) if m.is_dir() => {
                    let probe = p.join(format!(".curate-probe-{}", std::process::id()));
                    return match std::fs::write(&probe, b"") {
                        Ok(()) => {
                            let _ = std::fs::remove_file(&probe);
                            Ok(())
                        }
                        Err(e) => Err(IoError::Location {
                            location: spec.path.clone(),
                            message: format!(
                                "output is not writable (cannot create files in `{}`: {e}); choose another output.path or fix its permissions",
                                p.display()
                            ),
                        }),
                    };
                }
                Ok(_) => {
                    return Err(IoError::Location {
                        location: spec.path.clone(),
                        message: format!("`{}` is a file, so the output directory cannot be created there", p.display()),
                    })
                }
                Err(_) => match p.parent() {
                    Some(parent) => p = parent,
                    None => return Ok(()),
                },
            }
        }
    }

    /// Whether the root is empty (but for staging) or holds a curate run's state.
    fn is_empty_or_owned(&self) -> Result<bool, BoxError> {
        if self.read_small("_state/plan.json")?.is_some() {
            return Ok(true);
        }
        if let Some(root) = self.local() {
            return Ok(!foreign_entries(root)?);
        }
        let listed = block_on(self.root.store.list_with_delimiter(Some(&self.root.path)))?;
        Ok(listed.objects.is_empty() && listed.common_prefixes.is_empty())
    }

    fn local(&self) -> Option<&Path> {
        self.root.local.as_deref()
    }

    /// Publishes a staged file at `rel` below the root. A local file is on disk before its
    /// name appears; the caller syncs the directories ([`Self::sync_dirs`]) before anything
    /// refers to the published names.
    fn publish(&self, staged: &Path, rel: &str) -> Result<(), BoxError> {
        if let Some(root) = self.local() {
            let dest = root.join(rel);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)?;
            }
            File::open(staged)?.sync_all()?;
            std::fs::rename(staged, &dest)?;
            return Ok(());
        }
        upload(staged, &self.root.join(rel))?;
        std::fs::remove_file(staged)?;
        Ok(())
    }

    /// Makes the names published below these directories (relative to the root) durable,
    /// and the directories' own entries in the root.
    fn sync_dirs<'r>(&self, rels: impl IntoIterator<Item = &'r str>) -> Result<(), BoxError> {
        let Some(root) = self.local() else { return Ok(()) };
        let mut dirs: Vec<PathBuf> = rels.into_iter().filter_map(|r| root.join(r).parent().map(Path::to_path_buf)).collect();
        dirs.sort();
        dirs.dedup();
        for d in dirs.iter().chain([&root.to_path_buf()]) {
            File::open(d)?.sync_all()?;
        }
        Ok(())
    }

    fn write_small(&self, rel: &str, bytes: &[u8]) -> Result<(), BoxError> {
        if self.local().is_some() {
            // A joined sink's staging may have been cleared by the holder's resume.
            std::fs::create_dir_all(&self.staging)?;
            let tmp = self.staging.join(format!(".{}.tmp", rel.replace('/', "_")));
            std::fs::write(&tmp, bytes)?;
            self.publish(&tmp, rel)?;
            return self.sync_dirs([rel]);
        }
        let dest = self.root.join(rel);
        block_on(dest.store.put(&dest.path, PutPayload::from(bytes.to_vec())))?;
        Ok(())
    }

    fn read_small(&self, rel: &str) -> Result<Option<Vec<u8>>, BoxError> {
        if let Some(root) = self.local() {
            return match std::fs::read(root.join(rel)) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            };
        }
        let loc = self.root.join(rel);
        match block_on(async { loc.store.get(&loc.path).await?.bytes().await }) {
            Ok(b) => Ok(Some(b.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// The task that wrote an output file or commit record (`part-000012-001.parquet`,
/// `part-000012.jsonl`, `000012.json`).
fn task_of(name: &str) -> Option<usize> {
    // `part-`, or `data-` / `rejects-` for lineage files.
    let digits = name.trim_start_matches(|c: char| c.is_ascii_alphabetic()).trim_start_matches('-');
    let end = digits.find(|c: char| !c.is_ascii_digit())?;
    digits[..end].parse().ok()
}

/// Whether a local output directory holds anything but curate's staging and lock, and
/// no earlier run's state (which makes the rest curate's own). A run stopped between
/// taking the lock and writing its plan leaves only names curate writes beside its lock
/// file: those are curate's too (without the lock file, a `data/` may be the user's).
fn foreign_entries(root: &Path) -> std::io::Result<bool> {
    if root.join("_state/plan.json").is_file() {
        return Ok(false);
    }
    let locked = root.join(LOCK_FILE).is_file();
    for e in std::fs::read_dir(root)? {
        let name = e?.file_name();
        let ours = name == "_tmp" || name == LOCK_FILE || (locked && (OWNED.iter().any(|o| name == *o) || name == "run.json"));
        if !ours {
            return Ok(true);
        }
    }
    Ok(false)
}

fn not_ours_message() -> String {
    "already holds files that are not a curate output; choose a new or empty output.path".into()
}

fn remove_local_dir(p: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl Sink for DirSink {
    fn reset(&self) -> Result<(), BoxError> {
        // Clearing is only safe in a directory a curate run owns: never delete a user's files.
        if !self.is_empty_or_owned()? {
            return Err(format!("{} {}", self.root.display, not_ours_message()).into());
        }
        match self.local() {
            Some(root) => {
                for d in OWNED {
                    remove_local_dir(&root.join(d))?;
                }
                match std::fs::remove_file(root.join("run.json")) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                    _ => {}
                }
            }
            None => {
                for d in OWNED.iter().copied().chain(["run.json"]) {
                    let loc = self.root.join(d);
                    let store: &dyn ObjectStore = loc.store.as_ref();
                    let listed: Vec<_> = block_on(store.list(Some(&loc.path)).collect::<Vec<_>>());
                    for meta in listed {
                        block_on(store.delete(&meta?.location))?;
                    }
                    // `run.json` is a file, not a prefix.
                    let _ = block_on(store.delete(&loc.path));
                }
                remove_local_dir(&self.staging)?;
            }
        }
        std::fs::create_dir_all(&self.staging)?;
        Ok(())
    }

    fn clean_partial(&self) -> Result<(), BoxError> {
        remove_local_dir(&self.staging)?;
        std::fs::create_dir_all(&self.staging)?;
        Ok(())
    }

    fn retain_tasks(&self, keep: &dyn Fn(usize) -> bool) -> Result<(), BoxError> {
        for dir in ["data", "rejects", "quarantine", LINEAGE_DIR, "_state/tasks"] {
            let doomed = |name: &str| task_of(name).is_some_and(|t| !keep(t));
            match self.local() {
                Some(root) => {
                    let entries = match std::fs::read_dir(root.join(dir)) {
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        other => other?,
                    };
                    for e in entries {
                        let e = e?;
                        if e.file_name().to_str().is_some_and(doomed) {
                            std::fs::remove_file(e.path())?;
                        }
                    }
                }
                None => {
                    let loc = self.root.join(dir);
                    let store: &dyn ObjectStore = loc.store.as_ref();
                    for meta in block_on(store.list(Some(&loc.path)).collect::<Vec<_>>()) {
                        let meta = meta?;
                        if meta.location.filename().is_some_and(doomed) {
                            block_on(store.delete(&meta.location))?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn task_writer<'a>(&'a self, task: usize, kept: SchemaRef, rejects: SchemaRef) -> Result<Box<dyn TaskWriter + 'a>, BoxError> {
        if self.format == OutputFormat::Jsonl {
            json_rows::check_schema(&kept)?;
        }
        let dir = self.staging.join(format!("task-{task:06}"));
        remove_local_dir(&dir)?;
        std::fs::create_dir_all(&dir)?;
        let table = |name: &'static str, schema: SchemaRef| Table {
            name,
            schema,
            task,
            dir: dir.clone(),
            format: self.format,
            compression: self.compression,
            shard_size: self.shard_size,
            operators: self.operators.clone(),
            current: None,
            done: Vec::new(),
        };
        Ok(Box::new(DirTaskWriter {
            sink: self,
            kept: table("data", kept),
            rejects: table("rejects", rejects),
            quarantine: None,
            dir,
            task,
        }))
    }

    fn read_state(&self, name: &str) -> Result<Option<Vec<u8>>, BoxError> {
        self.read_small(&format!("_state/{name}"))
    }

    fn write_state(&self, name: &str, bytes: &[u8]) -> Result<(), BoxError> {
        self.write_small(&format!("_state/{name}"), bytes)
    }

    fn write_summary(&self, bytes: &[u8]) -> Result<(), BoxError> {
        self.write_small("run.json", bytes)
    }

    fn scratch_dir(&self) -> Result<PathBuf, BoxError> {
        // Remote outputs stage through local disk already; the work files sit beside staging.
        Ok(match self.local() {
            Some(root) => root.join("_state/work"),
            None => self.staging.with_extension("work"),
        })
    }
}

enum OpenFile {
    Parquet(Box<ArrowWriter<Tally<File>>>),
    Jsonl { w: Box<dyn Write + Send>, line_buf: Vec<u8> },
}

/// A data or rejects file being written, with its lineage sidecar.
struct OpenPart {
    file: OpenFile,
    seen: Seen,
    staged: Staged,
    lineage: SidecarWriter<Tally<BufWriter<File>>>,
    lineage_seen: Seen,
    lineage_staged: Staged,
}

struct Staged {
    path: PathBuf,
    rel: String,
    rows: u64,
    /// blake3 of the file's bytes, for files that become store objects.
    hash: Option<String>,
}

impl Staged {
    fn new(path: PathBuf, rel: String) -> Self {
        Staged { path, rel, rows: 0, hash: None }
    }
}

/// One output table of a task (`data` or `rejects`), rolled into files of `shard_size`.
struct Table {
    name: &'static str,
    schema: SchemaRef,
    task: usize,
    dir: PathBuf,
    format: OutputFormat,
    compression: Compression,
    shard_size: u64,
    operators: Arc<str>,
    current: Option<OpenPart>,
    done: Vec<Staged>,
}

impl Table {
    fn open(&mut self) -> Result<(), BoxError> {
        let seq = self.done.len();
        let ext = match (self.format, self.compression) {
            (OutputFormat::Parquet, _) => "parquet",
            (OutputFormat::Jsonl, Compression::Gzip) => "jsonl.gz",
            (OutputFormat::Jsonl, Compression::Zstd) => "jsonl.zst",
            (OutputFormat::Jsonl, _) => "jsonl",
        };
        let rel = format!("{}/part-{:06}-{seq:03}.{ext}", self.name, self.task);
        let path = self.dir.join(format!("{}-{seq:03}.{ext}", self.name));
        let (file, seen) = Tally::new(File::create(&path)?);
        let open = match self.format {
            OutputFormat::Parquet => {
                let compression = match self.compression {
                    Compression::Zstd => PqCompression::ZSTD(ZstdLevel::default()),
                    Compression::Snappy => PqCompression::SNAPPY,
                    _ => PqCompression::UNCOMPRESSED,
                };
                OpenFile::Parquet(Box::new(ArrowWriter::try_new(file, self.schema.clone(), Some(parquet_properties(compression)))?))
            }
            OutputFormat::Jsonl => {
                let base = BufWriter::with_capacity(1 << 20, file);
                let w: Box<dyn Write + Send> = match self.compression {
                    Compression::Gzip => Box::new(flate2::write::GzEncoder::new(base, flate2::Compression::default())),
                    Compression::Zstd => Box::new(zstd::stream::write::Encoder::new(base, 3)?.auto_finish()),
                    _ => Box::new(base),
                };
                OpenFile::Jsonl { w, line_buf: Vec::new() }
            }
        };
        let lineage_rel = format!("{LINEAGE_DIR}/{}-{:06}-{seq:03}.parquet", self.name, self.task);
        let lineage_path = self.dir.join(format!("{}-{seq:03}.lineage.parquet", self.name));
        let (lineage_file, lineage_seen) = Tally::new(BufWriter::with_capacity(1 << 20, File::create(&lineage_path)?));
        let lineage = SidecarWriter::new(lineage_file, &self.operators)?;
        self.current = Some(OpenPart {
            file: open,
            seen,
            staged: Staged::new(path, rel),
            lineage,
            lineage_seen,
            lineage_staged: Staged::new(lineage_path, lineage_rel),
        });
        Ok(())
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), BoxError> {
        if self.current.is_none() {
            self.open()?;
        }
        let Some(part) = self.current.as_mut() else { return Ok(()) };
        part.staged.rows += batch.num_rows() as u64;
        part.lineage.write(batch)?;
        let size = match &mut part.file {
            OpenFile::Parquet(w) => {
                w.write(batch)?;
                (w.bytes_written() + w.in_progress_size()) as u64
            }
            OpenFile::Jsonl { w, line_buf } => {
                line_buf.clear();
                json_rows::write_rows(batch, line_buf);
                w.write_all(line_buf)?;
                tallied_bytes(&part.seen)
            }
        };
        if size >= self.shard_size {
            self.close()?;
        }
        Ok(())
    }

    /// Finishes the open file, its lineage sidecar and its id index, each hashed as written.
    fn close(&mut self) -> Result<(), BoxError> {
        let Some(mut part) = self.current.take() else { return Ok(()) };
        match part.file {
            OpenFile::Parquet(w) => {
                w.into_inner()?.flush()?;
            }
            OpenFile::Jsonl { mut w, .. } => {
                w.flush()?;
                drop(w);
            }
        }
        part.staged.hash = Some(tallied(&part.seen).1);
        let (mut lineage_file, index) = part.lineage.finish()?;
        lineage_file.flush()?;
        drop(lineage_file);
        part.lineage_staged.rows = part.staged.rows;
        part.lineage_staged.hash = Some(tallied(&part.lineage_seen).1);
        let index_rel = part.lineage_staged.rel.replace(".parquet", ".idx");
        let index_path = part.lineage_staged.path.with_extension("idx");
        let (mut index_file, index_seen) = Tally::new(BufWriter::new(File::create(&index_path)?));
        index.write_to(&mut index_file)?;
        index_file.flush()?;
        drop(index_file);
        let mut index_staged = Staged::new(index_path, index_rel);
        index_staged.rows = part.staged.rows;
        index_staged.hash = Some(tallied(&index_seen).1);
        self.done.extend([part.staged, part.lineage_staged, index_staged]);
        Ok(())
    }
}


struct DirTaskWriter<'a> {
    sink: &'a DirSink,
    kept: Table,
    rejects: Table,
    quarantine: Option<(BufWriter<File>, Staged)>,
    dir: PathBuf,
    task: usize,
}

impl TaskWriter for DirTaskWriter<'_> {
    fn kept(&mut self, batch: &RecordBatch) -> Result<(), BoxError> {
        self.kept.write(batch)
    }

    fn rejected(&mut self, batch: &RecordBatch) -> Result<(), BoxError> {
        self.rejects.write(batch)
    }

    fn quarantined(&mut self, records: &[Quarantined]) -> Result<(), BoxError> {
        if self.quarantine.is_none() {
            let path = self.dir.join("quarantine.jsonl");
            let rel = format!("quarantine/part-{:06}.jsonl", self.task);
            self.quarantine = Some((BufWriter::new(File::create(&path)?), Staged::new(path, rel)));
        }
        let Some((w, staged)) = self.quarantine.as_mut() else { return Ok(()) };
        for q in records {
            let mut obj = serde_json::to_value(q)?;
            if let Some(map) = obj.as_object_mut() {
                match std::str::from_utf8(&q.raw) {
                    Ok(s) => map.insert("raw".into(), s.into()),
                    Err(_) => map.insert("raw_base64".into(), base64::engine::general_purpose::STANDARD.encode(&q.raw).into()),
                };
            }
            serde_json::to_writer(&mut *w, &obj)?;
            w.write_all(b"\n")?;
            staged.rows += 1;
        }
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<Vec<OutputFile>, BoxError> {
        self.kept.close()?;
        self.rejects.close()?;
        let mut staged: Vec<Staged> = std::mem::take(&mut self.kept.done);
        staged.append(&mut self.rejects.done);
        if let Some((mut w, s)) = self.quarantine.take() {
            w.flush()?;
            staged.push(s);
        }
        let mut files = Vec::new();
        for s in staged {
            let bytes = std::fs::metadata(&s.path)?.len();
            // Rejects stay in the output only: their lineage sidecar is what explain reads.
            let object = match (&self.sink.store, &s.hash) {
                (Some(store), Some(hash)) if !s.rel.starts_with("rejects/") => {
                    Some(store.put(&s.path, hash, crate::store::extension(s.rel.rsplit('/').next().unwrap_or_default()))?)
                }
                _ => None,
            };
            self.sink.publish(&s.path, &s.rel)?;
            files.push(OutputFile { path: s.rel, rows: s.rows, bytes, content_hash: s.hash, object });
        }
        self.sink.sync_dirs(files.iter().map(|f| f.path.as_str()))?;
        remove_local_dir(&self.dir)?;
        Ok(files)
    }
}

/// Writer settings of every Parquet file curate writes (run outputs and their rewrites).
pub fn parquet_properties(compression: PqCompression) -> WriterProperties {
    // Text payloads are near-unique: a dictionary and min/max statistics on them
    // cost time and buy nothing, so both are off for that column only.
    let text = ColumnPath::from(record::TEXT);
    WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
        .set_column_dictionary_enabled(text.clone(), false)
        .set_column_statistics_enabled(text, EnabledStatistics::None)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_stopped_before_its_plan_leaves_a_directory_curate_owns() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("_state/work")).unwrap();
        std::fs::create_dir_all(root.join("_tmp")).unwrap();
        // Without the lock file, `_state/` might be anybody's.
        assert!(foreign_entries(root).unwrap());
        std::fs::write(root.join(LOCK_FILE), b"run 3 of feed").unwrap();
        assert!(!foreign_entries(root).unwrap());
        std::fs::create_dir_all(root.join("data")).unwrap();
        assert!(!foreign_entries(root).unwrap());
        // Anything curate never writes there is the user's, lock or not.
        std::fs::write(root.join("notes.txt"), b"mine").unwrap();
        assert!(foreign_entries(root).unwrap());
    }
}
