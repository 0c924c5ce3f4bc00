//! Public data types passed to and returned by [`crate::Registry`].

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Identifier of a pipeline run.
pub type RunId = i64;
/// Identifier of a forget audit entry.
pub type AuditId = i64;

/// What the engine knows when a run starts.
#[derive(Debug, Clone, Default)]
pub struct NewRun<'a> {
    /// Pipeline name from the spec.
    pub pipeline: &'a str,
    /// Full spec text, stored verbatim for reproduction.
    pub spec: &'a str,
    /// Hash of the canonical spec, as the engine computes it for task keys.
    pub spec_hash: &'a str,
    /// Version of the engine/operators code (e.g. git describe).
    pub code_version: &'a str,
    /// The process executing the run, so a run whose process died can be told apart
    /// from one still going.
    pub owner: Option<RunOwner>,
    /// Where the run writes its output (a local directory or URL), so `--resume` and
    /// `forget --purge` can find it.
    pub output: Option<&'a str>,
}

/// The process executing a run: enough to tell, on the same host, whether it is still
/// alive (a pid alone may be reused by a later process; its start time may not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOwner {
    /// Host name of the machine.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// Process start time as the OS reports it (Linux: clock ticks since boot).
    pub start: String,
}

/// Lifecycle state of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Started and not yet finished (or crashed without finishing).
    Running,
    /// Finished successfully.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Its process died without finishing it (killed, crashed, machine lost); a
    /// `--resume` of the same plan into the same output continues it.
    Abandoned,
}

impl RunStatus {
    /// The stored (and displayed) name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Abandoned => "abandoned",
        }
    }
    pub(crate) fn parse(s: &str) -> Result<Self> {
        match s {
            "running" => Ok(RunStatus::Running),
            "succeeded" => Ok(RunStatus::Succeeded),
            "failed" => Ok(RunStatus::Failed),
            "abandoned" => Ok(RunStatus::Abandoned),
            other => Err(Error::Corrupt(format!("unknown run status {other:?}"))),
        }
    }
}

/// Per-step record counters of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepCounters {
    /// Records that entered the step.
    pub input: u64,
    /// Records that left it.
    pub kept: u64,
    /// Records dropped, by drop reason.
    pub dropped: BTreeMap<String, u64>,
    /// Records whose processing raised an error.
    pub errors: u64,
}

/// Whether a task's output came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskDecision {
    /// Output taken from the task cache.
    Reused,
    /// Output computed afresh.
    Recomputed,
}

impl TaskDecision {
    /// The stored (and displayed) name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskDecision::Reused => "reused",
            TaskDecision::Recomputed => "recomputed",
        }
    }
    pub(crate) fn parse(s: &str) -> Result<Self> {
        match s {
            "reused" => Ok(TaskDecision::Reused),
            "recomputed" => Ok(TaskDecision::Recomputed),
            other => Err(Error::Corrupt(format!("unknown task decision {other:?}"))),
        }
    }
}

/// One task of a run and why it was reused or recomputed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskOutcome {
    /// Content-addressed task key (hex).
    pub task_key: String,
    /// Step the task belongs to.
    pub step: String,
    /// Reused or recomputed.
    pub decision: TaskDecision,
    /// Human-readable cause, e.g. "cache hit" or "params changed".
    pub reason: String,
}

/// A stored run with its counters and task outcomes.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Run id.
    pub id: RunId,
    /// Pipeline name.
    pub pipeline: String,
    /// Spec text.
    pub spec: String,
    /// Spec hash.
    pub spec_hash: String,
    /// Code version.
    pub code_version: String,
    /// Start time, ms since the Unix epoch.
    pub started_at_ms: i64,
    /// End time, when finished.
    pub ended_at_ms: Option<i64>,
    /// Current status.
    pub status: RunStatus,
    /// The process that executes (or executed) it, when recorded.
    pub owner: Option<RunOwner>,
    /// Its output location, when recorded.
    pub output: Option<String>,
    /// Counters per step name.
    pub steps: BTreeMap<String, StepCounters>,
    /// Task outcomes in task-key order.
    pub tasks: Vec<TaskOutcome>,
}

/// One data file of a version manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Location of the file, relative to the dataset store root.
    pub path: String,
    /// Content hash (hex).
    pub content_hash: String,
    /// Number of records.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
}

/// A raw input file a version was derived from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Location of the input.
    pub path: String,
    /// Content hash (hex).
    pub content_hash: String,
}

/// A manifest to commit as the next version of a dataset.
#[derive(Debug, Clone, Default)]
pub struct NewVersion {
    /// Dataset name; created on first commit.
    pub dataset: String,
    /// Data files.
    pub files: Vec<FileEntry>,
    /// Record schema (e.g. the Arrow schema rendered as JSON).
    pub schema: serde_json::Value,
    /// Parent versions (`name@N`, `name@tag`, `name@latest`). A parent in another
    /// dataset makes this dataset a specialisation of that one.
    pub parents: Vec<String>,
    /// Raw source files with their hashes.
    pub sources: Vec<SourceFile>,
    /// Spec hash of the producing pipeline.
    pub spec_hash: Option<String>,
    /// Producing run.
    pub run: Option<RunId>,
    /// Task cache entries this version's files come from; keeps them from gc.
    pub cache_keys: Vec<String>,
    /// The forget request this version executes, if any.
    pub forget_audit: Option<AuditId>,
    /// The queued run (see [`crate::Job`]) that commits this version: its `version` is
    /// set in the same transaction, so the commit and the run's record of it agree.
    pub job: Option<i64>,
    /// A watched pipeline's cursor, stored in the same transaction: the input files this
    /// version consumed, so a crash neither loses nor repeats any.
    pub watch: Option<crate::WatchCommit>,
}

/// A resolved `dataset@version`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VersionRef {
    /// Dataset name.
    pub dataset: String,
    /// Version number, 1-based.
    pub version: i64,
}

impl fmt::Display for VersionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.dataset, self.version)
    }
}

/// A committed version with its full manifest and derivation.
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    /// Which version this is.
    pub reference: VersionRef,
    /// Commit time, ms since the Unix epoch.
    pub created_at_ms: i64,
    /// Data files, by path.
    pub files: Vec<FileEntry>,
    /// Record schema.
    pub schema: serde_json::Value,
    /// Parent versions.
    pub parents: Vec<VersionRef>,
    /// Raw source files, by path.
    pub sources: Vec<SourceFile>,
    /// Spec hash of the producing pipeline.
    pub spec_hash: Option<String>,
    /// Producing run.
    pub run: Option<RunId>,
    /// Tags pointing at this version.
    pub tags: Vec<String>,
    /// Cache keys referenced.
    pub cache_keys: Vec<String>,
    /// Forget request this version executes.
    pub forget_audit: Option<AuditId>,
}

/// A dataset and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetInfo {
    /// Name.
    pub name: String,
    /// The global dataset this one specialises, if any.
    pub derived_from: Option<String>,
    /// Highest version number committed (0 before the first commit).
    pub latest: i64,
}

/// File-level difference between two versions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionDiff {
    /// Paths only in the newer side.
    pub added: Vec<FileEntry>,
    /// Paths only in the older side.
    pub removed: Vec<FileEntry>,
    /// Same path, different content: (old, new).
    pub changed: Vec<(FileEntry, FileEntry)>,
}

/// A task cache entry: where a step output lives and what it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheEntry {
    /// Content-addressed key (hex).
    pub key: String,
    /// Output location.
    pub location: String,
    /// Free-form statistics (rows, bytes, timings).
    pub stats: serde_json::Value,
    /// Insertion time, ms since the Unix epoch.
    pub created_at_ms: i64,
    /// Last lookup hit or insert, ms since the Unix epoch.
    pub last_used_ms: i64,
}

/// What `gc` may delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcPolicy {
    /// Versions kept per dataset regardless of tags (the newest N).
    pub keep_last: u32,
    /// Cache entries used within this many ms survive even when unreferenced, so a
    /// pipeline still running (not yet committed) keeps its outputs.
    pub cache_grace_ms: i64,
}

/// What `gc` removed from the registry; the caller deletes the files.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GcReport {
    /// Removed versions with the files their manifests listed.
    pub versions: Vec<(VersionRef, Vec<FileEntry>)>,
    /// Removed cache entries.
    pub cache_entries: Vec<CacheEntry>,
    /// Runs still running, which kept gc from removing step outputs and store files
    /// (a running run reads step outputs and writes store files before the registry
    /// knows about them).
    pub running: Vec<RunId>,
}

/// What a store may delete, seen inside gc's transaction while no run can start.
#[derive(Debug)]
pub struct Sweep<'a> {
    /// Every data file path a remaining version lists.
    pub referenced_files: &'a std::collections::BTreeSet<String>,
    /// Cache entries just removed from the index, whose outputs go too.
    pub cache_entries: &'a [CacheEntry],
}

/// A forget request as it concerns one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgetNote {
    /// The audit entry.
    pub audit: AuditId,
    /// When, ms since the Unix epoch.
    pub at_ms: i64,
    /// Who asked.
    pub actor: String,
    /// Why.
    pub reason: String,
    /// The requested source id that reached this record.
    pub source_id: String,
    /// Versions the request committed, none of which holds the record.
    pub without: Vec<VersionRef>,
}

/// A run as listed, without its step counters and task outcomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    /// Run id.
    pub id: RunId,
    /// Pipeline name.
    pub pipeline: String,
    /// Spec hash.
    pub spec_hash: String,
    /// Start time, ms since the Unix epoch.
    pub started_at_ms: i64,
    /// End time, when finished.
    pub ended_at_ms: Option<i64>,
    /// Current status.
    pub status: RunStatus,
    /// The process that executes (or executed) it, when recorded.
    pub owner: Option<RunOwner>,
    /// Its output location, when recorded.
    pub output: Option<String>,
}

/// A file of an existing version rewritten in place by a purge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReplacement {
    /// Path of the file as the version lists it now.
    pub old_path: String,
    /// The rewritten file.
    pub new: FileEntry,
}

/// A record to leave out of a dataset's next version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exclusion {
    /// Record id.
    pub record_id: String,
    /// File of the latest version holding it.
    pub file: String,
}

/// What one dataset must do to honour a forget request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetForget {
    /// Dataset name.
    pub dataset: String,
    /// Latest version when the plan was made; the rewrite starts from it.
    pub latest: i64,
    /// Records of that latest version to drop (empty when only older versions hold them).
    pub exclude: Vec<Exclusion>,
    /// Every version number of this dataset that holds any of the records.
    pub affected_versions: Vec<i64>,
}

/// A recorded forget request and the versions that executed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Audit id.
    pub id: AuditId,
    /// Who asked.
    pub actor: String,
    /// When, ms since the Unix epoch.
    pub at_ms: i64,
    /// Why.
    pub reason: String,
    /// Source ids to forget.
    pub sources: Vec<String>,
    /// The plan as made at request time.
    pub plan: Vec<DatasetForget>,
    /// Versions committed with this audit id.
    pub resulting_versions: Vec<VersionRef>,
}

/// Whether a lineage file describes kept records (a data file) or dropped ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineageKind {
    /// Records of a data file.
    Kept,
    /// Records a step dropped.
    Rejected,
}

impl LineageKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            LineageKind::Kept => "kept",
            LineageKind::Rejected => "rejected",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self> {
        match s {
            "kept" => Ok(LineageKind::Kept),
            "rejected" => Ok(LineageKind::Rejected),
            other => Err(Error::Corrupt(format!("unknown lineage kind {other:?}"))),
        }
    }
}

/// The lineage of one output file: its sidecar and id index in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineageFile {
    /// Kept or rejected records.
    pub kind: LineageKind,
    /// The data file it describes (store path), for kept records.
    pub data: Option<String>,
    /// The sidecar (store path): one row per record, in the data file's order.
    pub lineage: String,
    /// The id index of the sidecar (store path).
    pub index: String,
    /// Records described.
    pub rows: u64,
}

/// A lineage file as recorded for a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedLineage {
    /// The run that wrote it.
    pub run: RunId,
    /// The file.
    pub file: LineageFile,
}

/// Where a lineage sidecar's bloom filter sits in a bloom pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BloomRef {
    /// The sidecar (store path) whose id index the filter belongs to.
    pub lineage: String,
    /// The pack (store path).
    pub pack: String,
    /// The filter's slot in the pack.
    pub slot: u64,
}
