//! Content-addressed step outputs (ARCHITECTURE.md §4).
//!
//! After each step of a streamed task, what the step changed is stored under a key chained
//! from the input content and every operator (name, version, parameters) up to that step:
//! its verdict on each row it received (kept, or dropped with a reason), the columns it
//! added, and of the columns it rewrote only the rows whose value changed, as one
//! zstd-compressed Arrow IPC stream. Records are not copied: reusing steps `0..k` reads the
//! task's input again and applies their entries in order, then computes from step `k`. A
//! later run reuses the longest prefix of steps whose keys it finds, so changing one step's
//! parameters recomputes that step and the ones after it, nothing upstream.
//!
//! The cache has a size budget with least-recently-used eviction. Last use is the
//! modification time of an entry's `entry.json`, touched on every reuse, so processes sharing
//! the cache agree on it without a registry. An entry appears by rename and leaves by rename
//! before it is deleted, and a reader opens both its files when it finds it: to every reader,
//! even while another process evicts, an entry is whole or absent (a miss).

use std::cmp::Ordering;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arrow_array::{new_null_array, Array, ArrayRef, BooleanArray, RecordBatch, Scalar, UInt32Array};
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{DataType, Field, Schema, SchemaRef, SortOptions};
use serde::{Deserialize, Serialize};

use crate::io::BoxError;
use crate::operator::Verdicts;
use crate::spec::ByteSize;

const META: &str = "entry.json";
const DELTA: &str = "delta.arrow.zst";
/// Delta column: per row 0 (kept) or one plus the index of its drop reason in the entry.
const VERDICT: &str = "_curate_verdict";
/// Prefix of the delta column marking the rows of a rewritten column that changed.
const CHANGED: &str = "_curate_changed:";
/// Staging directory of entries being written or evicted.
const STAGING: &str = "_tmp";
const ZSTD_LEVEL: i32 = 3;

/// Environment variable holding the cache's size budget (`2GB`); it overrides a spec's
/// `cache.max_size`.
pub const MAX_SIZE_ENV: &str = "CURATE_CACHE_MAX";
/// The size budget when neither the environment nor the spec sets one.
pub const DEFAULT_MAX_SIZE: u64 = 10_000_000_000;

/// Why the cache could not be inspected or pruned.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A file or directory of the cache could not be read or removed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// `CURATE_CACHE_MAX` is not a size.
    #[error("{MAX_SIZE_ENV}: {0}")]
    Budget(String),
}

fn io_err(path: &Path, source: std::io::Error) -> CacheError {
    CacheError::Io { path: path.to_path_buf(), source }
}

/// The cache's size budget: `CURATE_CACHE_MAX` when set, else the spec's `cache.max_size`,
/// else [`DEFAULT_MAX_SIZE`]. The environment wins because the cache belongs to the
/// machine's state directory, shared by every pipeline run there, and its disk is the
/// machine's to budget.
pub fn max_size(spec: Option<ByteSize>) -> Result<u64, CacheError> {
    match std::env::var(MAX_SIZE_ENV) {
        Ok(v) if !v.trim().is_empty() => ByteSize::parse(&v).map(|b| b.0).map_err(CacheError::Budget),
        _ => Ok(spec.map_or(DEFAULT_MAX_SIZE, |b| b.0)),
    }
}

/// What a task did with one step: reused its cached output or computed it, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepOutcome {
    /// Step index.
    pub step: usize,
    /// Operator name.
    pub op: String,
    /// Content key of the step's output for this task.
    pub key: String,
    /// Whether the output came from the cache.
    pub reused: bool,
    /// Why it was reused or recomputed.
    pub reason: String,
}

/// One committed step output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryInfo {
    /// Its key.
    pub key: String,
    /// Bytes its files take.
    pub bytes: u64,
    /// Last use (stored or reused), milliseconds since the Unix epoch.
    pub last_used_ms: u64,
}

/// What the cache holds, against its budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// Committed entries.
    pub entries: usize,
    /// Bytes they take.
    pub bytes: u64,
    /// The size budget.
    pub max_size: u64,
    /// Last use of the least recently used entry (ms since the Unix epoch).
    pub oldest_use_ms: Option<u64>,
    /// Last use of the most recently used entry.
    pub newest_use_ms: Option<u64>,
}

/// How an entry's step output is put together from its input and its stored columns.
#[derive(Serialize, Deserialize)]
struct EntryMeta {
    /// Key of the step's input: the previous step's entry, or the task's parsed input.
    upstream: String,
    /// Rows the step received.
    rows: u64,
    /// The step's output schema; `None` when it received no rows.
    schema: Option<Schema>,
    /// Columns stored whole: added by the step (or replaced by one of another type).
    added: Vec<String>,
    /// Columns stored as their changed rows: rewritten by the step.
    rewritten: Vec<String>,
    /// Drop reasons, by verdict code minus one.
    reasons: Vec<String>,
}

/// A directory of step outputs, one subdirectory per key.
#[derive(Debug, Clone)]
pub struct StepCache {
    root: PathBuf,
}

impl StepCache {
    /// A cache below `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StepCache { root: root.into() }
    }

    /// Where the entry of `key` lives.
    pub fn entry_dir(&self, key: &str) -> PathBuf {
        self.root.join(&key[..2.min(key.len())]).join(key)
    }

    fn input_marker(&self, input_key: &str) -> PathBuf {
        self.root.join("inputs").join(input_key)
    }

    /// Whether an input with this key was processed before (by any step chain).
    pub(crate) fn seen_input(&self, input_key: &str) -> bool {
        self.input_marker(input_key).exists()
    }

    pub(crate) fn mark_input(&self, input_key: &str) -> std::io::Result<()> {
        let p = self.input_marker(input_key);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(p, b"")
    }

    /// The committed entry of `key`, computed from the input keyed `upstream`, with its
    /// files open and stamped as used now; `None` when it is absent (or being evicted),
    /// unreadable, or from another input.
    pub(crate) fn open(&self, key: &str, upstream: &str) -> Option<Entry> {
        let dir = self.entry_dir(key);
        let meta_path = dir.join(META);
        let bytes = std::fs::read(&meta_path).ok()?;
        let opened = serde_json::from_slice(&bytes)
            .map_err(BoxError::from)
            .and_then(|meta: EntryMeta| {
                if meta.upstream != upstream {
                    return Err(format!("computed from input {}, not {upstream}", meta.upstream).into());
                }
                let delta = match meta.rows {
                    0 => None,
                    _ => Some(File::open(dir.join(DELTA))?),
                };
                Entry::new(&dir, meta, delta)
            });
        match opened {
            Ok(entry) => {
                touch(&meta_path);
                Some(entry)
            }
            Err(e) => {
                // Evicted between its two files, or damaged: either way computed again.
                tracing::warn!(key, error = %e, "ignoring unusable cache entry");
                None
            }
        }
    }

    /// Starts writing the entry of `key`, computed from the input keyed `upstream` by a step
    /// that declares writing `declared` columns; nothing is visible until
    /// [`EntryWriter::commit`].
    pub(crate) fn writer(&self, key: &str, upstream: &str, declared: Vec<String>) -> Result<EntryWriter, BoxError> {
        let dir = self.entry_dir(key);
        let tmp = self.root.join(STAGING).join(format!("{key}.{}", crate::io::scratch_id()));
        std::fs::create_dir_all(&tmp)?;
        Ok(EntryWriter {
            tmp,
            dir,
            upstream: upstream.to_string(),
            declared,
            layout: None,
            stream: None,
            reasons: Vec::new(),
            rows: 0,
        })
    }

    /// Every committed entry with its size and last use, least recently used first.
    pub fn entries(&self) -> Result<Vec<EntryInfo>, CacheError> {
        let mut out = Vec::new();
        for shard in subdirs(&self.root)? {
            // Entries sit in directories named by their key's first two characters; the
            // others (`inputs`, staging) are not entries.
            if shard.file_name().is_none_or(|n| n.len() != 2) {
                continue;
            }
            for dir in subdirs(&shard)? {
                // No metadata: removed since the listing began.
                let Ok(meta) = std::fs::metadata(dir.join(META)) else { continue };
                let key = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                out.push(EntryInfo { key, bytes: dir_bytes(&dir), last_used_ms: millis(meta.modified().ok()) });
            }
        }
        out.sort_by(|a, b| (a.last_used_ms, &a.key).cmp(&(b.last_used_ms, &b.key)));
        Ok(out)
    }

    /// Totals of the cache against the budget `max_size`.
    pub fn stats(&self, max_size: u64) -> Result<CacheStats, CacheError> {
        let entries = self.entries()?;
        Ok(CacheStats {
            entries: entries.len(),
            bytes: entries.iter().map(|e| e.bytes).sum(),
            max_size,
            oldest_use_ms: entries.first().map(|e| e.last_used_ms),
            newest_use_ms: entries.last().map(|e| e.last_used_ms),
        })
    }

    /// Evicts least recently used entries until the cache holds at most `max_size` bytes;
    /// returns what went, oldest first. Staging left by killed processes goes too.
    pub fn prune(&self, max_size: u64) -> Result<Vec<EntryInfo>, CacheError> {
        self.sweep_staging()?;
        let entries = self.entries()?;
        let mut total: u64 = entries.iter().map(|e| e.bytes).sum();
        let mut removed = Vec::new();
        for e in entries {
            if total <= max_size {
                break;
            }
            // Gone already means another process evicted it: it no longer counts either way.
            total = total.saturating_sub(e.bytes);
            if self.remove(&e.key)? {
                removed.push(e);
            }
        }
        Ok(removed)
    }

    /// Removes the entry of `key`, moving it out of place first so that no reader sees part
    /// of it; false when there is none.
    pub fn remove(&self, key: &str) -> Result<bool, CacheError> {
        let dir = self.entry_dir(key);
        let staging = self.root.join(STAGING);
        std::fs::create_dir_all(&staging).map_err(|e| io_err(&staging, e))?;
        let doomed = staging.join(format!("evicted-{key}.{}", crate::io::scratch_id()));
        match std::fs::rename(&dir, &doomed) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err(&dir, e)),
        }
        std::fs::remove_dir_all(&doomed).map_err(|e| io_err(&doomed, e))?;
        Ok(true)
    }

    /// Removes staging directories untouched for a day: an entry is written within its
    /// task unless its process died, and an evicted one is deleted at once.
    fn sweep_staging(&self) -> Result<(), CacheError> {
        let day_ago = SystemTime::now() - Duration::from_secs(24 * 3600);
        for dir in subdirs(&self.root.join(STAGING))? {
            let stale = std::fs::metadata(&dir).and_then(|m| m.modified()).is_ok_and(|t| t < day_ago);
            if stale {
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    tracing::warn!(path = %dir.display(), error = %e, "could not remove a cache staging directory");
                }
            }
        }
        Ok(())
    }
}

/// The subdirectories of `dir`; none when it does not exist (yet, or any more).
fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, CacheError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir, e)),
    };
    let mut out = Vec::new();
    for e in entries {
        let e = e.map_err(|e| io_err(dir, e))?;
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.push(e.path());
        }
    }
    Ok(out)
}

/// Bytes of the files directly in `dir` (an entry has no subdirectories).
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|it| it.flatten().filter_map(|e| e.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

fn millis(t: Option<SystemTime>) -> u64 {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_millis() as u64)
}

/// Marks an entry used now. A cache this process may not write keeps the older time, which
/// at worst evicts the entry sooner.
fn touch(meta: &Path) {
    let _ = File::options().write(true).open(meta).and_then(|f| f.set_modified(SystemTime::now()));
}

/// What the cache does for one step of a task.
pub(crate) enum Tap {
    /// Replays the step from its entry instead of running the operator.
    Replay(Box<Entry>),
    /// Runs the operator and stores what it did.
    Record(Box<EntryWriter>),
    /// Runs the operator only (no cache, or its entry could not be written).
    Off,
}

impl Tap {
    /// Stores what the step did to one batch; a failure abandons the entry, not the run.
    pub(crate) fn record(&mut self, input: &RecordBatch, output: &RecordBatch, verdicts: Option<&Verdicts>) {
        if let Tap::Record(w) = self {
            if let Err(e) = w.record(input, output, verdicts) {
                tracing::warn!(error = %e, "could not write a step output to the cache; going on without it");
                *self = Tap::Off;
            }
        }
    }
}

/// Where a column of a step's output comes from on replay.
enum Col {
    /// The input's column of that name, unchanged.
    Input(String),
    /// Delta column `i`, whole.
    Added(usize),
    /// The input's column of that name with the changed rows of delta columns `i` (mask)
    /// and `i + 1` (values).
    Rewritten(String, usize),
}

/// A committed step output, open for replay: holds its file, so eviction cannot take it away
/// mid-task.
pub(crate) struct Entry {
    dir: PathBuf,
    rows: u64,
    schema: Option<SchemaRef>,
    columns: Vec<Col>,
    reasons: Vec<Arc<str>>,
    stream: Option<StreamReader<zstd::Decoder<'static, BufReader<File>>>>,
    /// Stored rows read but not yet applied.
    pending: Option<RecordBatch>,
    applied: u64,
}

impl Entry {
    fn new(dir: &Path, meta: EntryMeta, delta: Option<File>) -> Result<Self, BoxError> {
        let mut columns = Vec::new();
        if let Some(schema) = &meta.schema {
            for f in schema.fields() {
                let name = f.name();
                columns.push(if let Some(i) = meta.added.iter().position(|c| c == name) {
                    Col::Added(1 + i)
                } else if let Some(i) = meta.rewritten.iter().position(|c| c == name) {
                    Col::Rewritten(name.clone(), 1 + meta.added.len() + 2 * i)
                } else {
                    Col::Input(name.clone())
                });
            }
        }
        let stream = match delta {
            Some(f) => Some(StreamReader::try_new(zstd::Decoder::new(f)?, None)?),
            None => None,
        };
        let stored = 1 + meta.added.len() + 2 * meta.rewritten.len();
        if let Some(found) = stream.as_ref().map(|s| s.schema().fields().len()).filter(|&n| n != stored) {
            return Err(format!("stores {found} columns where its metadata names {stored}").into());
        }
        Ok(Entry {
            dir: dir.to_path_buf(),
            rows: meta.rows,
            schema: meta.schema.map(Arc::new),
            columns,
            reasons: meta.reasons.into_iter().map(Arc::from).collect(),
            stream,
            pending: None,
            applied: 0,
        })
    }

    /// The step's output for `input`, and its verdicts, as the step produced them when it
    /// was computed (`input` being the same rows it received then).
    pub(crate) fn apply(&mut self, input: RecordBatch) -> Result<(RecordBatch, Option<Verdicts>), BoxError> {
        let delta = self.take(input.num_rows())?;
        let schema = self.schema.clone().ok_or_else(|| self.damaged("no output schema"))?;
        let codes = delta
            .column(0)
            .as_any()
            .downcast_ref::<UInt32Array>()
            .ok_or_else(|| self.damaged("verdict column of the wrong type"))?;
        let verdicts = match codes.values().iter().any(|&c| c != 0) {
            true => Some(
                Verdicts::from_codes(self.reasons.clone(), codes.values().to_vec())
                    .ok_or_else(|| self.damaged("a verdict names no stored reason"))?,
            ),
            false => None,
        };
        let input_col = |name: &str| input.column_by_name(name).cloned().ok_or_else(|| self.damaged(&format!("input lacks column `{name}`")));
        let mut columns = Vec::with_capacity(self.columns.len());
        for c in &self.columns {
            columns.push(match c {
                Col::Input(name) => input_col(name)?,
                Col::Added(i) => delta.column(*i).clone(),
                Col::Rewritten(name, i) => {
                    let changed = delta
                        .column(*i)
                        .as_any()
                        .downcast_ref::<BooleanArray>()
                        .ok_or_else(|| self.damaged("change mask of the wrong type"))?;
                    arrow_select::zip::zip(changed, delta.column(i + 1), &input_col(name)?)?
                }
            });
        }
        Ok((RecordBatch::try_new(schema, columns)?, verdicts))
    }

    /// The next `n` stored rows.
    fn take(&mut self, n: usize) -> Result<RecordBatch, BoxError> {
        let mut parts = Vec::new();
        let mut need = n;
        while need > 0 {
            let batch = match self.pending.take() {
                Some(b) => b,
                None => match self.stream.as_mut().and_then(Iterator::next) {
                    Some(b) => b?,
                    None => return Err(self.damaged("holds fewer rows than the step receives")),
                },
            };
            if batch.num_rows() > need {
                self.pending = Some(batch.slice(need, batch.num_rows() - need));
                parts.push(batch.slice(0, need));
                need = 0;
            } else {
                need -= batch.num_rows();
                parts.push(batch);
            }
        }
        self.applied += n as u64;
        match (parts.len(), self.stream.as_ref()) {
            (1, _) => parts.pop().ok_or_else(|| self.damaged("lost a batch")),
            (_, Some(s)) => Ok(arrow_select::concat::concat_batches(&s.schema(), &parts)?),
            (_, None) => Err(self.damaged("holds no rows")),
        }
    }

    /// Checks that the task applied exactly the rows the entry holds.
    pub(crate) fn check_complete(&self) -> Result<(), BoxError> {
        if self.applied != self.rows || self.pending.is_some() {
            return Err(self.damaged(&format!("holds {} rows, the step received {}", self.rows, self.applied)));
        }
        Ok(())
    }

    fn damaged(&self, what: &str) -> BoxError {
        format!("cache entry {}: {what} (run with --no-cache, or `curate cache prune`)", self.dir.display()).into()
    }
}

/// How a step's output relates to its input; fixed by the first batch.
struct Layout {
    /// The step's output schema.
    schema: SchemaRef,
    added: Vec<String>,
    rewritten: Vec<String>,
    /// Schema of the stored rows: verdict, added columns, then (mask, values) per rewritten one.
    delta: SchemaRef,
}

impl Layout {
    /// Sorts the output's columns: those the input lacks (or had with another type) are
    /// added; those it has are rewritten when the step declares writing them or returned
    /// another array; the rest pass through and are not stored.
    fn of(input: &RecordBatch, output: &RecordBatch, declared: &[String]) -> Layout {
        let schema = output.schema();
        let (mut added, mut rewritten) = (Vec::new(), Vec::new());
        let mut delta = vec![Field::new(VERDICT, DataType::UInt32, false)];
        let mut rewritten_fields = Vec::new();
        for (f, out) in schema.fields().iter().zip(output.columns()) {
            let name = f.name();
            match input.column_by_name(name) {
                Some(old) if old.data_type() == out.data_type() => {
                    if declared.contains(name) || !same_array(old, out) {
                        rewritten.push(name.clone());
                        rewritten_fields.push(Field::new(format!("{CHANGED}{name}"), DataType::Boolean, false));
                        rewritten_fields.push(f.as_ref().clone().with_nullable(true));
                    }
                }
                _ => {
                    added.push(name.clone());
                    delta.push(f.as_ref().clone());
                }
            }
        }
        delta.extend(rewritten_fields);
        Layout { schema, added, rewritten, delta: Arc::new(Schema::new(delta)) }
    }
}

/// Whether two columns are the same array, not merely equal.
fn same_array(a: &ArrayRef, b: &ArrayRef) -> bool {
    Arc::ptr_eq(a, b) || a.to_data().ptr_eq(&b.to_data())
}

/// Rows of a rewritten column whose value differs from the input's; every row where the
/// type cannot be compared.
fn changed_rows(old: &ArrayRef, new: &ArrayRef) -> BooleanArray {
    if same_array(old, new) {
        return BooleanArray::from(vec![false; old.len()]);
    }
    match arrow_cmp::make_comparator(old.as_ref(), new.as_ref(), SortOptions::default()) {
        Ok(cmp) => (0..old.len()).map(|i| Some(cmp(i, i) != Ordering::Equal)).collect(),
        Err(_) => BooleanArray::from(vec![true; old.len()]),
    }
}

/// `new` where `changed`, null elsewhere: unchanged rows cost a null bit each.
fn changed_values(changed: &BooleanArray, new: &ArrayRef) -> Result<ArrayRef, BoxError> {
    Ok(match changed.true_count() {
        0 => new_null_array(new.data_type(), new.len()),
        n if n == new.len() => new.clone(),
        _ => arrow_select::zip::zip(changed, new, &Scalar::new(new_null_array(new.data_type(), 1)))?,
    })
}

type DeltaWriter = StreamWriter<zstd::Encoder<'static, BufWriter<File>>>;

/// Writes one entry into a private directory, then renames it into place.
pub(crate) struct EntryWriter {
    tmp: PathBuf,
    dir: PathBuf,
    upstream: String,
    declared: Vec<String>,
    layout: Option<Layout>,
    stream: Option<DeltaWriter>,
    /// Drop reasons in order of first use: the entry's verdict codes.
    reasons: Vec<Arc<str>>,
    rows: u64,
}

impl EntryWriter {
    /// Stores what the step did to one batch: `input` went in, `output` (the same rows) came
    /// out with `verdicts`.
    fn record(&mut self, input: &RecordBatch, output: &RecordBatch, verdicts: Option<&Verdicts>) -> Result<(), BoxError> {
        let layout = match &self.layout {
            Some(l) if l.schema != output.schema() => return Err("the step's output schema changed between batches".into()),
            Some(l) => l,
            None => self.layout.insert(Layout::of(input, output, &self.declared)),
        };
        let mut columns: Vec<ArrayRef> = vec![Arc::new(verdict_codes(&mut self.reasons, verdicts, output.num_rows()))];
        for (f, out) in layout.schema.fields().iter().zip(output.columns()) {
            let name = f.name();
            if layout.added.contains(name) || layout.rewritten.contains(name) {
                continue;
            }
            // Replay takes this column from the input: it must be the input's.
            if !input.column_by_name(name).is_some_and(|old| same_array(old, out)) {
                return Err(format!("the step changed column `{name}` without declaring it").into());
            }
        }
        for name in &layout.added {
            columns.push(output.column_by_name(name).cloned().ok_or("an added column went missing")?);
        }
        for name in &layout.rewritten {
            let (Some(old), Some(new)) = (input.column_by_name(name), output.column_by_name(name)) else {
                return Err(format!("rewritten column `{name}` went missing").into());
            };
            let changed = changed_rows(old, new);
            let values = changed_values(&changed, new)?;
            columns.push(Arc::new(changed));
            columns.push(values);
        }
        let batch = RecordBatch::try_new(layout.delta.clone(), columns)?;
        let stream = match &mut self.stream {
            Some(s) => s,
            None => {
                let mut z = zstd::Encoder::new(BufWriter::new(File::create(self.tmp.join(DELTA))?), ZSTD_LEVEL)?;
                // A damaged entry must fail its replay, not feed wrong values downstream.
                z.include_checksum(true)?;
                self.stream.insert(StreamWriter::try_new(z, &layout.delta)?)
            }
        };
        stream.write(&batch)?;
        self.rows += output.num_rows() as u64;
        Ok(())
    }

    /// Publishes the entry; a concurrent writer of the same key may win, which is fine as
    /// both wrote the same content.
    pub(crate) fn commit(mut self) -> Result<(), BoxError> {
        // Durable before the entry's name appears: after a power loss a reused entry must
        // be whole, or absent.
        if let Some(stream) = self.stream.take() {
            stream.into_inner()?.finish()?.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        let layout = self.layout.take();
        let meta = EntryMeta {
            upstream: std::mem::take(&mut self.upstream),
            rows: self.rows,
            schema: layout.as_ref().map(|l| l.schema.as_ref().clone()),
            added: layout.as_ref().map(|l| l.added.clone()).unwrap_or_default(),
            rewritten: layout.map(|l| l.rewritten).unwrap_or_default(),
            reasons: self.reasons.iter().map(|r| r.to_string()).collect(),
        };
        let mut m = File::create(self.tmp.join(META))?;
        m.write_all(&serde_json::to_vec(&meta)?)?;
        m.sync_all()?;
        File::open(&self.tmp)?.sync_all()?;
        if let Some(parent) = self.dir.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if self.dir.exists() || std::fs::rename(&self.tmp, &self.dir).is_err() {
            remove_dir(&self.tmp);
        } else if let Some(parent) = self.dir.parent() {
            File::open(parent)?.sync_all()?;
        }
        Ok(())
    }
}

/// Per row 0 (kept) or one plus the index of its reason in `reasons`, which grows with
/// reasons not seen before in the task.
fn verdict_codes(reasons: &mut Vec<Arc<str>>, verdicts: Option<&Verdicts>, rows: usize) -> UInt32Array {
    let Some(v) = verdicts else { return UInt32Array::from(vec![0; rows]) };
    let (local, codes) = v.codes();
    let map: Vec<u32> = local
        .iter()
        .map(|r| match reasons.iter().position(|x| x == r) {
            Some(i) => i as u32 + 1,
            None => {
                reasons.push(r.clone());
                reasons.len() as u32
            }
        })
        .collect();
    codes.iter().map(|&c| if c == 0 { 0 } else { map[c as usize - 1] }).collect::<Vec<u32>>().into()
}

fn remove_dir(p: &Path) {
    if let Err(e) = std::fs::remove_dir_all(p) {
        tracing::warn!(path = %p.display(), error = %e, "could not remove a cache staging directory");
    }
}

impl Drop for EntryWriter {
    fn drop(&mut self) {
        if self.tmp.exists() {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};

    fn input(texts: &[&str]) -> RecordBatch {
        let ids: Vec<String> = (0..texts.len()).map(|i| format!("r{i}")).collect();
        RecordBatch::try_from_iter([
            ("id", Arc::new(StringArray::from(ids)) as ArrayRef),
            ("text", Arc::new(StringArray::from(texts.to_vec())) as ArrayRef),
        ])
        .unwrap()
    }

    /// A step that upper-cases texts starting with `x`, adds their length, and drops the
    /// empty ones: every kind of change at once.
    fn step(batch: &RecordBatch) -> (RecordBatch, Verdicts) {
        let text = batch.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        let new: StringArray = text.iter().map(|t| t.map(|t| if t.starts_with('x') { t.to_uppercase() } else { t.to_string() })).collect();
        let len: Int64Array = text.iter().map(|t| t.map(|t| t.len() as i64)).collect();
        let mut v = Verdicts::keep_all(batch.num_rows());
        for (i, t) in text.iter().enumerate() {
            if t == Some("") {
                v.drop_row(i, "step:empty");
            }
        }
        let out = RecordBatch::try_from_iter([
            ("id", batch.column(0).clone()),
            ("text", Arc::new(new) as ArrayRef),
            ("len", Arc::new(len) as ArrayRef),
        ])
        .unwrap();
        (out, v)
    }

    fn store(cache: &StepCache, key: &str, batches: &[RecordBatch]) {
        let mut w = cache.writer(key, "in", vec!["text".into(), "len".into()]).unwrap();
        for b in batches {
            let (out, v) = step(b);
            w.record(b, &out, Some(&v)).unwrap();
        }
        w.commit().unwrap();
    }

    #[test]
    fn replay_reproduces_the_step() {
        let dir = tempfile::tempdir().unwrap();
        let cache = StepCache::new(dir.path());
        let batches = [input(&["a", "xb", "", "c"]), input(&["xd", "", "e"])];
        store(&cache, "k1", &batches);
        let mut entry = cache.open("k1", "in").unwrap();
        for b in &batches {
            let (expected, ev) = step(b);
            let (got, gv) = entry.apply(b.clone()).unwrap();
            assert_eq!(got, expected);
            let reasons = |v: &Verdicts| (0..v.len()).map(|i| v.reason(i).map(|r| r.to_string())).collect::<Vec<_>>();
            assert_eq!(reasons(&gv.unwrap()), reasons(&ev));
        }
        entry.check_complete().unwrap();

        // Batches cut differently replay the same rows.
        let mut entry = cache.open("k1", "in").unwrap();
        let (first, _) = entry.apply(input(&["a", "xb"])).unwrap();
        assert_eq!(first.column(1).as_any().downcast_ref::<StringArray>().unwrap().value(1), "XB");
        assert!(entry.check_complete().is_err(), "rows left over are damage, not success");
    }

    #[test]
    fn unchanged_rewrites_store_almost_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cache = StepCache::new(dir.path());
        let long = "clean text that a normalizer leaves alone ".repeat(20);
        let texts: Vec<&str> = (0..5000).map(|_| long.as_str()).collect();
        let batch = input(&texts);
        let mut w = cache.writer("k", "in", vec!["text".into()]).unwrap();
        // Declared rewrite returning another array with the same values.
        let out = RecordBatch::try_from_iter([("id", batch.column(0).clone()), ("text", Arc::new(StringArray::from(texts.clone())) as ArrayRef)]).unwrap();
        w.record(&batch, &out, None).unwrap();
        w.commit().unwrap();
        let bytes = dir_bytes(&cache.entry_dir("k"));
        assert!(bytes < 2_000, "{bytes} bytes for {} bytes of text", long.len() * texts.len());
        let (got, v) = cache.open("k", "in").unwrap().apply(batch.clone()).unwrap();
        assert_eq!(got, out);
        assert!(v.is_none());
    }

    #[test]
    fn undeclared_change_abandons_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        let cache = StepCache::new(dir.path());
        let first = input(&["a"]);
        let mut w = cache.writer("k", "in", vec![]).unwrap();
        w.record(&first, &first, None).unwrap();
        let second = input(&["b"]);
        let changed = RecordBatch::try_from_iter([("id", second.column(0).clone()), ("text", Arc::new(StringArray::from(vec!["c"])) as ArrayRef)]).unwrap();
        assert!(w.record(&second, &changed, None).unwrap_err().to_string().contains("without declaring"));
    }

    #[test]
    fn a_missing_file_or_another_input_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = StepCache::new(dir.path());
        store(&cache, "k1", &[input(&["a"])]);
        assert!(cache.open("k1", "other input").is_none());
        std::fs::remove_file(cache.entry_dir("k1").join(DELTA)).unwrap();
        assert!(cache.open("k1", "in").is_none());
    }

    fn age(cache: &StepCache, key: &str, secs_ago: u64) {
        let f = File::options().write(true).open(cache.entry_dir(key).join(META)).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(secs_ago)).unwrap();
    }

    #[test]
    fn prune_evicts_least_recently_used_down_to_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let cache = StepCache::new(dir.path());
        for (key, ago) in [("aa1", 400), ("bb2", 300), ("cc3", 200), ("dd4", 100)] {
            store(&cache, key, &[input(&["a", "xb", ""])]);
            age(&cache, key, ago);
        }
        // Reusing the oldest makes it the newest.
        assert!(cache.open("aa1", "in").is_some());
        let keys = |v: &[EntryInfo]| v.iter().map(|e| e.key.clone()).collect::<Vec<_>>();
        let all = cache.entries().unwrap();
        assert_eq!(keys(&all), ["bb2", "cc3", "dd4", "aa1"]);
        let one = all[0].bytes;
        let stats = cache.stats(10).unwrap();
        assert_eq!((stats.entries, stats.bytes), (4, all.iter().map(|e| e.bytes).sum()));
        assert_eq!(stats.oldest_use_ms, Some(all[0].last_used_ms));

        let budget = 2 * one + one / 2;
        let gone = cache.prune(budget).unwrap();
        assert_eq!(keys(&gone), ["bb2", "cc3"]);
        assert_eq!(keys(&cache.entries().unwrap()), ["dd4", "aa1"]);
        assert!(cache.stats(budget).unwrap().bytes <= budget);
        assert!(cache.open("bb2", "in").is_none());
        assert!(cache.prune(budget).unwrap().is_empty(), "already under the budget");
        assert!(!cache.remove("bb2").unwrap());
    }

    #[test]
    fn an_open_entry_survives_its_eviction() {
        let dir = tempfile::tempdir().unwrap();
        let cache = StepCache::new(dir.path());
        let b = input(&["a", "xb", ""]);
        store(&cache, "k1", std::slice::from_ref(&b));
        let mut entry = cache.open("k1", "in").unwrap();
        assert_eq!(cache.prune(1).unwrap().len(), 1);
        assert_eq!(entry.apply(b.clone()).unwrap().0, step(&b).0);
    }
}
