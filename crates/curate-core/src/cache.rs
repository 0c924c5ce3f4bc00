//! Content-addressed step outputs (ARCHITECTURE.md §4): after each step of a streamed task
//! the rows it kept and the rows it dropped are stored under a key chained from the input
//! content and every operator (name, version, parameters) up to that step. A later run
//! reuses the longest prefix of steps whose keys it finds, so changing one step's
//! parameters recomputes that step and the ones after it, nothing upstream, and an added
//! input file is the only one read.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow_ipc::reader::FileReader;
use arrow_ipc::writer::FileWriter;
use arrow_schema::{DataType, Field, Schema};
use serde::{Deserialize, Serialize};

use crate::io::{BoxError, Quarantined};
use crate::stats::StepStats;

/// Column carrying the drop reason in a cached `dropped` file.
const REASON: &str = "_curate_drop_reason";
const META: &str = "entry.json";
const KEPT: &str = "kept.arrow";
const DROPPED: &str = "dropped.arrow";

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

/// What reading the input produced, kept with the first step's entry so a task whose
/// steps are all reused need not read its input at all.
#[derive(Serialize, Deserialize, Default)]
pub(crate) struct InputMeta {
    pub(crate) records_in: u64,
    pub(crate) bytes_in: u64,
    /// Input ids seen before in the task, kept (quarantined ones are in `quarantined`).
    #[serde(default)]
    pub(crate) duplicate_ids: u64,
    /// Unparseable records with their raw bytes (which their own serialisation leaves out).
    pub(crate) quarantined: Vec<(Quarantined, Vec<u8>)>,
}

impl InputMeta {
    pub(crate) fn add_quarantined(&mut self, q: &[Quarantined]) {
        self.quarantined.extend(q.iter().map(|q| (q.clone(), q.raw.clone())));
    }

    pub(crate) fn quarantined(&self) -> Vec<Quarantined> {
        self.quarantined.iter().map(|(q, raw)| Quarantined { raw: raw.clone(), ..q.clone() }).collect()
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct EntryMeta {
    pub(crate) stats: StepStats,
    pub(crate) input: Option<InputMeta>,
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

    /// The committed entry of `key`, if present and readable.
    pub(crate) fn open(&self, key: &str) -> Option<Entry> {
        let dir = self.entry_dir(key);
        let bytes = std::fs::read(dir.join(META)).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(meta) => Some(Entry { dir, meta }),
            Err(e) => {
                tracing::warn!(key, error = %e, "ignoring unreadable cache entry");
                None
            }
        }
    }

    /// Starts writing the entry of `key`; nothing is visible until [`EntryWriter::commit`].
    pub(crate) fn writer(&self, key: &str) -> Result<EntryWriter, BoxError> {
        let dir = self.entry_dir(key);
        let tmp = self.root.join("_tmp").join(format!("{key}.{}.{}", std::process::id(), unique()));
        std::fs::create_dir_all(&tmp)?;
        Ok(EntryWriter { tmp, dir, kept: None, dropped: None })
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// A committed step output.
pub(crate) struct Entry {
    dir: PathBuf,
    pub(crate) meta: EntryMeta,
}

impl Entry {
    /// Streams one stored file batch by batch, so replaying a task's cached output holds one
    /// batch at a time like computing it does.
    fn batches(&self, name: &str) -> Result<Batches, BoxError> {
        let path = self.dir.join(name);
        if !path.exists() {
            return Ok(Box::new(std::iter::empty()));
        }
        let reader = FileReader::try_new(BufReader::new(File::open(&path)?), None)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Box::new(reader.map(move |b| b.map_err(|e| format!("{}: {e}", path.display()).into()))))
    }

    /// Rows the step kept, in their original batches.
    pub(crate) fn kept(&self) -> Result<Batches, BoxError> {
        self.batches(KEPT)
    }

    /// Rows the step dropped, batch by batch, each with its reasons.
    pub(crate) fn dropped(&self) -> Result<impl Iterator<Item = Result<(RecordBatch, ArrayRef), BoxError>>, BoxError> {
        Ok(self.batches(DROPPED)?.map(|b| {
            let mut b = b?;
            let reasons = b.remove_column(b.schema().index_of(REASON)?);
            Ok((b, reasons))
        }))
    }
}

/// Stored batches, read lazily.
pub(crate) type Batches = Box<dyn Iterator<Item = Result<RecordBatch, BoxError>>>;

/// Writes one entry into a private directory, then renames it into place.
pub(crate) struct EntryWriter {
    tmp: PathBuf,
    dir: PathBuf,
    kept: Option<FileWriter<BufWriter<File>>>,
    dropped: Option<FileWriter<BufWriter<File>>>,
}

fn append(slot: &mut Option<FileWriter<BufWriter<File>>>, path: PathBuf, batch: &RecordBatch) -> Result<(), BoxError> {
    let w = match slot {
        Some(w) => w,
        None => slot.insert(FileWriter::try_new(BufWriter::new(File::create(path)?), &batch.schema())?),
    };
    w.write(batch)?;
    Ok(())
}

impl EntryWriter {
    /// Appends rows the step kept.
    pub(crate) fn kept(&mut self, batch: &RecordBatch) -> Result<(), BoxError> {
        append(&mut self.kept, self.tmp.join(KEPT), batch)
    }

    /// Appends rows the step dropped with their reasons.
    pub(crate) fn dropped(&mut self, batch: &RecordBatch, reasons: &StringArray) -> Result<(), BoxError> {
        let mut fields: Vec<Arc<Field>> = batch.schema().fields().iter().cloned().collect();
        fields.push(Arc::new(Field::new(REASON, DataType::Utf8, false)));
        let mut columns = batch.columns().to_vec();
        columns.push(Arc::new(reasons.clone()) as ArrayRef);
        debug_assert_eq!(reasons.len(), batch.num_rows());
        let b = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
        append(&mut self.dropped, self.tmp.join(DROPPED), &b)
    }

    /// Publishes the entry; a concurrent writer of the same key may win, which is fine as
    /// both wrote the same content.
    pub(crate) fn commit(mut self, meta: &EntryMeta) -> Result<(), BoxError> {
        // Durable before the entry's name appears: after a power loss a reused entry must
        // be whole, or absent.
        for w in [self.kept.take(), self.dropped.take()].into_iter().flatten() {
            w.into_inner()?.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        let mut m = File::create(self.tmp.join(META))?;
        m.write_all(&serde_json::to_vec(meta)?)?;
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
