//! The contracts between the executor and storage: sources produce batches per shard, sinks
//! take a task's outputs and publish them atomically. `curate-io` implements both.

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use serde::{Deserialize, Serialize};

/// `PID-N`: a name part no other call gets, in this process or another, so scratch files of
/// concurrent runs (threads of one process included) never collide.
pub fn scratch_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed))
}

/// Boxed error crossing the storage boundary.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Which part of a file a shard covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ShardPart {
    /// The whole file.
    Whole,
    /// Records that start in `[start, end)` bytes (uncompressed JSONL).
    Bytes {
        /// First byte.
        start: u64,
        /// One past the last byte.
        end: u64,
    },
    /// Parquet row groups `[start, end)`.
    RowGroups {
        /// First row group.
        start: usize,
        /// One past the last row group.
        end: usize,
    },
}

/// One unit of input work: a file or part of one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// Location as the user wrote it (path or URL).
    pub file: String,
    /// The part of the file.
    pub part: ShardPart,
    /// Bytes of input this shard covers (for progress and ETA).
    pub bytes: u64,
    /// Identity of the file's content (size plus modification time or ETag).
    pub version: String,
}

/// An input record that could not be parsed, kept with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantined {
    /// The input file.
    pub file: String,
    /// 1-based line (JSONL).
    pub line: Option<u64>,
    /// Byte offset of the record (JSONL).
    pub byte_offset: Option<u64>,
    /// Row index (Parquet).
    pub row: Option<u64>,
    /// What is wrong.
    pub error: String,
    /// The raw bytes (may be truncated for huge records; `error` says so).
    #[serde(skip)]
    pub raw: Vec<u8>,
}

/// A batch of parsed records plus what could not be parsed in the same stretch of input.
pub struct Chunk {
    /// Parsed records in the source schema.
    pub batch: RecordBatch,
    /// Records that failed to parse.
    pub quarantined: Vec<Quarantined>,
    /// Input bytes consumed to produce this chunk.
    pub bytes: u64,
}

/// Where records come from.
pub trait Source: Send + Sync {
    /// Schema of every batch this source produces.
    fn schema(&self) -> SchemaRef;
    /// The shards, in a deterministic order.
    fn shards(&self) -> &[Shard];
    /// Hash of the bytes of the file `shard` belongs to, so cached outputs follow the
    /// content rather than names or timestamps.
    fn content_hash(&self, shard: &Shard) -> Result<String, BoxError>;
    /// Streams one shard's records.
    fn read<'a>(&'a self, shard: &'a Shard) -> Result<Box<dyn Iterator<Item = Result<Chunk, BoxError>> + Send + 'a>, BoxError>;
}

/// A file a task published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputFile {
    /// Path relative to the output root (`data/part-00000-000.parquet`).
    pub path: String,
    /// Rows in the file.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// blake3 of the bytes, computed while writing (data and lineage files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
    /// The file's content-addressed object in the version store, when the run keeps one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
}

/// Takes one task's outputs. Nothing is visible until `commit`.
pub trait TaskWriter: Send {
    /// Appends kept records.
    fn kept(&mut self, batch: &RecordBatch) -> Result<(), BoxError>;
    /// Appends dropped records (rejects schema).
    fn rejected(&mut self, batch: &RecordBatch) -> Result<(), BoxError>;
    /// Appends unparseable input records.
    fn quarantined(&mut self, records: &[Quarantined]) -> Result<(), BoxError>;
    /// Publishes every file atomically and returns them.
    fn commit(self: Box<Self>) -> Result<Vec<OutputFile>, BoxError>;
}

/// Where results go: data, rejects, quarantine, per-task state and the run summary.
pub trait Sink: Send + Sync {
    /// Removes the outputs and state of any earlier run at this location.
    fn reset(&self) -> Result<(), BoxError>;
    /// Removes leftovers of interrupted tasks, keeping committed work.
    fn clean_partial(&self) -> Result<(), BoxError>;
    /// Removes the published files and commit records of every task that `keep` refuses,
    /// so a task that runs again starts from nothing.
    fn retain_tasks(&self, keep: &dyn Fn(usize) -> bool) -> Result<(), BoxError>;
    /// A writer for task `task`.
    fn task_writer<'a>(&'a self, task: usize, kept: SchemaRef, rejects: SchemaRef) -> Result<Box<dyn TaskWriter + 'a>, BoxError>;
    /// Reads a small state file (`_state/...`), if present.
    fn read_state(&self, name: &str) -> Result<Option<Vec<u8>>, BoxError>;
    /// Writes a small state file atomically.
    fn write_state(&self, name: &str, bytes: &[u8]) -> Result<(), BoxError>;
    /// Writes `run.json` atomically.
    fn write_summary(&self, bytes: &[u8]) -> Result<(), BoxError>;
    /// A local directory for the intermediate files of global steps; kept by `--resume`,
    /// cleared by a fresh run.
    fn scratch_dir(&self) -> Result<std::path::PathBuf, BoxError>;
}
