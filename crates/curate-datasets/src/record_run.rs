//! Recording a run in the registry and committing its output as a dataset version.

use std::path::Path;

use curate_core::exec::Plan;
use curate_core::io::Source;
use curate_core::stats::RunReport;
use curate_registry::{
    LineageFile, LineageKind, NewRun, NewVersion, Registry, RunId, RunStatus, SourceFile, StepCounters, TaskDecision,
    TaskOutcome, VersionRef,
};

use crate::process::{current_owner, is_gone};
use crate::{Error, Home, Result};

/// How a step is named in run records and lineage: its position and operator, so two
/// steps with the same operator stay apart and listings sort in pipeline order.
pub fn step_label(index: usize, op: &str) -> String {
    format!("{index:02}-{op}")
}

/// The distinct input files of `source` with their content hashes, as a version's sources.
pub fn source_files(source: &dyn Source) -> Result<Vec<SourceFile>> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for shard in source.shards() {
        if seen.insert(shard.file.as_str()) {
            out.push(SourceFile { path: shard.file.clone(), content_hash: source.content_hash(shard).map_err(|e| Error::Input(e.to_string()))? });
        }
    }
    Ok(out)
}

/// Opens a run record before executing, owned by this process and writing to `output`.
pub fn start_run(reg: &Registry, plan: &Plan, spec_text: &str, output: &str) -> Result<RunId> {
    let output = output_location(output);
    Ok(reg.start_run(&NewRun {
        pipeline: &plan.name,
        spec: spec_text,
        spec_hash: &plan.fingerprint,
        code_version: env!("CARGO_PKG_VERSION"),
        owner: Some(current_owner()),
        output: Some(&output),
    })?)
}

/// The run record for a run about to execute into `output`: with `resume`, the
/// abandoned run this one continues (same pipeline, spec hash and output, and the
/// output's interrupted plan is this plan), taken over under its id; otherwise, or
/// when there is none, a new run. Runs whose process died are marked abandoned first.
pub fn resume_or_start_run(reg: &Registry, plan: &Plan, spec_text: &str, output: &str, resume: bool) -> Result<RunId> {
    reap_dead_runs(reg)?;
    let location = output_location(output);
    if resume && output_plan(&location).as_deref() == Some(plan.fingerprint.as_str()) {
        if let Some(run) = reg.abandoned_run(&plan.name, &plan.fingerprint, &location)? {
            if reg.resume_run(run, &current_owner())? {
                tracing::info!(run, "resuming abandoned run");
                return Ok(run);
            }
        }
    }
    start_run(reg, plan, spec_text, output)
}

/// Runs recorded as running whose process is gone (see [`is_gone`]), without
/// changing the registry: for commands that only read it.
pub fn dead_runs(reg: &Registry) -> Result<Vec<RunId>> {
    Ok(reg.running_runs()?.into_iter().filter(|r| r.owner.as_ref().is_some_and(is_gone)).map(|r| r.id).collect())
}

/// Marks runs whose process is gone abandoned; returns them.
pub fn reap_dead_runs(reg: &Registry) -> Result<Vec<RunId>> {
    let mut marked = Vec::new();
    for run in dead_runs(reg)? {
        if reg.mark_abandoned(run)? {
            tracing::warn!(run, "run {run} was left running by a process that is gone; marked abandoned");
            marked.push(run);
        }
    }
    Ok(marked)
}

/// How a run's output is recorded: URLs as given, local directories absolute, so the
/// same directory reached from another working directory matches.
pub fn output_location(output: &str) -> String {
    if output.contains("://") {
        return output.to_owned();
    }
    let p = Path::new(output);
    std::fs::canonicalize(p).or_else(|_| std::path::absolute(p)).map_or_else(|_| output.to_owned(), |p| p.to_string_lossy().into_owned())
}

/// The plan fingerprint an output directory's interrupted run was executing
/// (`_state/plan.json`, written by the executor); `None` for remote or fresh outputs.
fn output_plan(location: &str) -> Option<String> {
    if location.contains("://") {
        return None;
    }
    let bytes = std::fs::read(Path::new(location).join("_state/plan.json")).ok()?;
    let state: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    state.get("fingerprint")?.as_str().map(str::to_owned)
}

/// A finished run to record.
pub struct RunRecord<'a> {
    /// The run id from [`start_run`].
    pub run: RunId,
    /// Dataset to commit a version of.
    pub dataset: &'a str,
    /// The executed plan.
    pub plan: &'a Plan,
    /// Its report.
    pub report: &'a RunReport,
    /// The local output directory (holding `data/` and `rejects/`).
    pub output_dir: &'a Path,
    /// Dataset versions read as input.
    pub parents: Vec<String>,
    /// Raw input files with their content hashes.
    pub sources: Vec<SourceFile>,
    /// The control plane's queued run this is, marked with the version when it commits.
    pub job: Option<i64>,
    /// The input file of each task (stage 0), to tell which input each output came from.
    pub shard_files: Vec<String>,
    /// For an incremental run of a watched pipeline: how its version follows the last.
    pub compose: Option<&'a Compose>,
}

/// How an incremental run's version is made from the version before it: the files of
/// input files neither removed nor changed are kept, this run's are added, and the watch's
/// cursor moves in the same transaction.
#[derive(Debug, Clone, Default)]
pub struct Compose {
    /// The watched pipeline.
    pub pipeline: String,
    /// The version this one follows.
    pub base: Option<String>,
    /// Data files of the base version kept.
    pub keep: Vec<curate_registry::FileEntry>,
    /// Sources of the base version kept.
    pub keep_sources: Vec<SourceFile>,
    /// The cursor entries kept (input file -> `{"version", "objects"}`).
    pub cursor: serde_json::Map<String, serde_json::Value>,
    /// Identity (size and mtime or ETag) of each input file this run reads.
    pub stamps: std::collections::BTreeMap<String, String>,
    /// The audit entry of input files removed since the base, if any.
    pub forget_audit: Option<curate_registry::AuditId>,
}

/// The task index in an output file's name (`data/part-000012-000.parquet` -> 12).
fn task_of(path: &str) -> Option<usize> {
    let name = path.rsplit('/').next()?;
    name.strip_prefix("part-")?.split(['-', '.']).next()?.parse().ok()
}

/// Records counters, task outcomes, cache entries and lineage, commits the output as the
/// next version of the dataset and closes the run. Returns the version holding the
/// output (none for JSONL outputs).
pub fn record_run(home: &Home, reg: &Registry, r: &RunRecord<'_>) -> Result<Option<Committed>> {
    let result = record(home, reg, r);
    reg.finish_run(r.run, if result.is_ok() { RunStatus::Succeeded } else { RunStatus::Failed })?;
    result
}

fn record(home: &Home, reg: &Registry, r: &RunRecord<'_>) -> Result<Option<Committed>> {
    let plan = r.plan;
    for (i, s) in r.report.steps.iter().enumerate() {
        let counters = StepCounters {
            input: s.records_in,
            kept: s.records_out,
            dropped: s.dropped.clone(),
            errors: 0,
        };
        reg.record_step(r.run, &step_label(i, &s.op), &counters)?;
    }
    let mut outcomes = Vec::new();
    let mut cache_keys = Vec::new();
    let (mut used, mut inserted) = (Vec::new(), Vec::new());
    let cache = home.step_cache();
    for (task, steps) in r.report.task_cache.iter().enumerate() {
        if steps.is_empty() {
            outcomes.push(TaskOutcome {
                task_key: format!("task-{task:06}"),
                step: "all".into(),
                decision: TaskDecision::Recomputed,
                reason: "not cached: step cache off, or a stage after a global step (its input depends on every record)".into(),
            });
            continue;
        }
        for o in steps {
            outcomes.push(TaskOutcome {
                task_key: o.key.clone(),
                step: step_label(o.step, &o.op),
                decision: if o.reused { TaskDecision::Reused } else { TaskDecision::Recomputed },
                reason: o.reason.clone(),
            });
            if o.reused {
                used.push(o.key.clone());
            } else {
                let dir = cache.entry_dir(&o.key);
                inserted.push((o.key.clone(), dir.to_string_lossy().into_owned(), serde_json::json!({ "task": task, "step": o.step })));
            }
            cache_keys.push(o.key.clone());
        }
    }
    reg.cache_record(&used, &inserted)?;
    reg.record_task_outcomes(r.run, &outcomes)?;

    // Every task wrote its files' lineage and added the data files and lineage to the
    // store as it committed: what is left is a row per file.
    let mut files: Vec<curate_registry::FileEntry> = Vec::new();
    // Each data file of the output with the store object holding it.
    let mut made: Vec<(String, String)> = Vec::new();
    let mut lineage = Vec::new();
    let by_path: std::collections::HashMap<&str, &curate_core::io::OutputFile> = r.report.files.iter().map(|f| (f.path.as_str(), f)).collect();
    for f in &r.report.files {
        let kind = if f.path.starts_with("data/") {
            LineageKind::Kept
        } else if f.path.starts_with("rejects/") {
            LineageKind::Rejected
        } else {
            continue;
        };
        let data = match kind {
            LineageKind::Kept => Some(stored(home, r.output_dir, f)?),
            LineageKind::Rejected => None,
        };
        let (sidecar, index) = lineage_names(&f.path);
        let (Some(sidecar), Some(index)) = (by_path.get(sidecar.as_str()), by_path.get(index.as_str())) else {
            return Err(Error::Invalid(format!("{}: the run wrote no lineage for {} (was it written by an older curate?)", r.output_dir.display(), f.path)));
        };
        let (sidecar, index) = (stored(home, r.output_dir, sidecar)?, stored(home, r.output_dir, index)?);
        lineage.push(LineageFile { kind, data: data.as_ref().map(|d| d.path.clone()), lineage: sidecar.path, index: index.path, rows: f.rows });
        if let Some(e) = data {
            made.push((f.path.clone(), e.path.clone()));
            if !files.iter().any(|x| x.path == e.path) {
                files.push(e);
            }
        }
    }
    reg.record_lineage_files(r.run, &lineage)?;
    // One bloom pack per kind: rejects files are much smaller than data files, and a
    // pack repeats a small filter up to the largest one's size.
    let store = home.store()?;
    for kind in [LineageKind::Kept, LineageKind::Rejected] {
        let files: Vec<LineageFile> = lineage.iter().filter(|f| f.kind == kind).cloned().collect();
        if !files.is_empty() {
            reg.record_blooms(&crate::lineage::write_bloom_pack(&store, &files)?)?;
        }
    }
    let (files, sources, parents, watch) = match r.compose {
        None => {
            if let Some(same) = unchanged(reg, r, &files)? {
                return Ok(Some(Committed { version: same, new: false }));
            }
            (files, r.sources.clone(), r.parents.clone(), None)
        }
        Some(c) => compose(c, r, files, &made),
    };
    let schema = serde_json::to_value(plan.kept_schema.as_ref()).unwrap_or_default();
    let version = NewVersion {
        dataset: r.dataset.to_string(),
        files,
        schema,
        parents,
        sources,
        spec_hash: Some(plan.fingerprint.clone()),
        run: Some(r.run),
        cache_keys,
        forget_audit: r.compose.and_then(|c| c.forget_audit),
        job: r.job,
        watch,
    };
    Ok(Some(Committed { version: reg.commit_version(&version)?, new: true }))
}

type Composed = (Vec<curate_registry::FileEntry>, Vec<SourceFile>, Vec<String>, Option<curate_registry::WatchCommit>);

/// An incremental run's version: the base's kept files and this run's, and the cursor
/// naming the objects made from each input file.
fn compose(c: &Compose, r: &RunRecord<'_>, new: Vec<curate_registry::FileEntry>, made: &[(String, String)]) -> Composed {
    let mut cursor = c.cursor.clone();
    for (file, stamp) in &c.stamps {
        cursor.insert(file.clone(), serde_json::json!({ "version": stamp, "objects": [] }));
    }
    // Output files are named by task; a task of a streamed pipeline reads one input file.
    for (output, object) in made {
        let Some(input) = task_of(output).and_then(|t| r.shard_files.get(t)) else { continue };
        if let Some(objects) = cursor.get_mut(input).and_then(|e| e.get_mut("objects")).and_then(serde_json::Value::as_array_mut) {
            objects.push(object.clone().into());
        }
    }
    let mut files = c.keep.clone();
    files.extend(new);
    let mut sources = c.keep_sources.clone();
    sources.extend(r.sources.iter().cloned());
    let watch = curate_registry::WatchCommit { pipeline: c.pipeline.clone(), cursor: serde_json::json!({ "files": cursor }) };
    (files, sources, c.base.iter().cloned().collect(), Some(watch))
}

/// The lineage sidecar and id index the sink wrote for an output file
/// (`data/part-000012-000.parquet` → `_lineage/data-000012-000.parquet`, `.idx`).
pub(crate) fn lineage_names(output: &str) -> (String, String) {
    let (table, name) = output.split_once('/').unwrap_or(("data", output));
    let stem = name.strip_prefix("part-").unwrap_or(name);
    let stem = stem.split('.').next().unwrap_or(stem);
    let base = format!("{}/{table}-{stem}", curate_io::LINEAGE_DIR);
    (format!("{base}.parquet"), format!("{base}.idx"))
}

/// The store entry of an output file: the object its task added, or (for outputs of
/// tasks that ran without a store) a copy added now.
fn stored(home: &Home, output_dir: &Path, f: &curate_core::io::OutputFile) -> Result<curate_registry::FileEntry> {
    match (&f.object, &f.content_hash) {
        (Some(object), Some(hash)) => Ok(curate_registry::FileEntry { path: object.clone(), content_hash: hash.clone(), rows: f.rows, bytes: f.bytes }),
        _ => home.put(&output_dir.join(&f.path), f.rows),
    }
}

/// The dataset's latest version when this run reproduced it exactly (same files, spec,
/// sources and parents), so a no-op re-run does not mint a new version.
fn unchanged(reg: &Registry, r: &RunRecord<'_>, files: &[curate_registry::FileEntry]) -> Result<Option<VersionRef>> {
    let Some(info) = reg.datasets()?.into_iter().find(|d| d.name == r.dataset && d.latest > 0) else {
        return Ok(None);
    };
    let latest = reg.version(&format!("{}@{}", info.name, info.latest))?;
    let hashes = |fs: &[curate_registry::FileEntry]| fs.iter().map(|f| f.content_hash.clone()).collect::<std::collections::BTreeSet<_>>();
    let mut parents = Vec::new();
    for p in &r.parents {
        parents.push(reg.resolve(p)?);
    }
    let same = hashes(&latest.files) == hashes(files)
        && latest.spec_hash.as_deref() == Some(r.plan.fingerprint.as_str())
        && sources(&latest.sources) == sources(&r.sources)
        && latest.parents == parents;
    Ok(same.then_some(latest.reference))
}

fn sources(s: &[SourceFile]) -> std::collections::BTreeSet<(&str, &str)> {
    s.iter().map(|f| (f.path.as_str(), f.content_hash.as_str())).collect()
}

/// The version a run's output is in.
#[derive(Debug)]
pub struct Committed {
    /// The version.
    pub version: VersionRef,
    /// False when the run reproduced the latest version, which was reused.
    pub new: bool,
}
