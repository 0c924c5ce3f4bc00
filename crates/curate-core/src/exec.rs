//! The local executor: one task per shard on a pool of worker threads.
//!
//! Each worker pulls a whole task (read, every step, write) so memory is bounded by one
//! chunk per worker regardless of input size. Output files are named by task, so the result
//! does not depend on which thread ran which task or in what order tasks finished.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow_array::{ArrayRef, BooleanArray, RecordBatch, StringArray, UInt32Array};
use arrow_schema::SchemaRef;
use arrow_select::filter::filter_record_batch;

use crate::cache::{StepCache, StepOutcome, Tap};
use crate::global::GlobalStep;
use crate::io::{BoxError, Shard, Sink, Source};
use crate::key::KeyHasher;
use crate::record::{self, conform};
use crate::spec::BuiltStep;
use crate::stats::{RunReport, StepStats, TaskReport};

/// A validated pipeline ready to run.
pub struct Plan {
    /// Pipeline name.
    pub name: String,
    /// Steps in order.
    pub steps: Vec<BuiltStep>,
    /// Schema of kept records.
    pub kept_schema: SchemaRef,
    /// Schema of rejects.
    pub rejects_schema: SchemaRef,
    /// Hash of everything but the shards that determines task outputs (steps, parameters,
    /// input interpretation, output format).
    pub fingerprint: String,
    /// Global steps, in order; the pipeline runs as one stage more than there are of them.
    pub globals: Vec<GlobalStep>,
    /// Hash of what turns input bytes into records (input settings, inferred schema, engine).
    pub input_fingerprint: String,
    /// How ids read from the input that repeat are handled; `None` when ids are derived
    /// from file and position, so cannot repeat.
    pub duplicate_ids: Option<crate::spec::OnDuplicateId>,
}

impl Plan {
    /// Builds a plan from validated steps; `settings` covers input and output options that
    /// change task outputs.
    pub fn new(name: &str, source_schema: SchemaRef, steps: Vec<BuiltStep>, settings: &serde_json::Value) -> Self {
        let mut schema = source_schema.clone();
        let mut key = KeyHasher::new("curate.plan.v1");
        key.str("engine", env!("CARGO_PKG_VERSION")).json("settings", settings);
        key.str("source_schema", &format!("{source_schema:?}"));
        let input_fingerprint = KeyHasher::new("curate.input-settings.v1")
            .str("engine", env!("CARGO_PKG_VERSION"))
            .json("input", settings.get("input").unwrap_or(&serde_json::Value::Null))
            .str("source_schema", &format!("{source_schema:?}"))
            .finish();
        let mut globals = Vec::new();
        let mut reject_only = Vec::new();
        for s in &steps {
            if let Some(g) = s.operator.as_global() {
                globals.push(GlobalStep { step: s.index, input_schema: schema.clone() });
                reject_only.extend(g.decision_columns().reject_writes());
            }
            schema = record::with_writes(&schema, &s.operator.columns().writes);
            step_identity(&mut key, s);
        }
        let rejects_schema = record::rejects_schema(&record::with_writes(&schema, &reject_only));
        Plan {
            name: name.into(),
            steps,
            kept_schema: schema,
            rejects_schema,
            fingerprint: key.finish(),
            globals,
            input_fingerprint,
            duplicate_ids: None,
        }
    }

    /// Cache keys of one shard: the key of its parsed input, then one per step, each
    /// chained from the previous, so a step's key changes with anything upstream of it.
    pub fn step_keys(&self, shard: &Shard, content_hash: &str) -> (String, Vec<String>) {
        let part = serde_json::to_value(&shard.part).unwrap_or_default();
        let input = KeyHasher::new("curate.input.v1")
            .str("settings", &self.input_fingerprint)
            .str("file", &shard.file)
            .json("part", &part)
            .str("content", content_hash)
            .finish();
        let mut prev = input.clone();
        let keys = self
            .steps
            .iter()
            .map(|s| {
                // v2: entries hold what a step changed, not its records; v1 entries are never
                // read again and leave by eviction.
                prev = step_identity(KeyHasher::new("curate.step.v2").str("upstream", &prev), s).finish();
                prev.clone()
            })
            .collect();
        (input, keys)
    }

    /// The key of the task that processes `shard`.
    pub fn task_key(&self, shard: &Shard) -> String {
        let shard_json = serde_json::to_value(shard).unwrap_or_default();
        KeyHasher::new("curate.task.v1").str("plan", &self.fingerprint).json("shard", &shard_json).finish()
    }
}

/// Adds what makes a step's output differ for the same input: operator, version,
/// canonical parameters and the content the operator reads beyond them.
fn step_identity<'k>(key: &'k mut KeyHasher, s: &BuiltStep) -> &'k mut KeyHasher {
    key.str("op", &*s.descriptor.name)
        .str("version", &*s.descriptor.version)
        .json("params", &s.params)
        .str("content", &s.operator.content_key().unwrap_or_default())
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Worker threads (at least 1).
    pub threads: usize,
    /// Keep tasks committed by an interrupted run with the same plan.
    pub resume: bool,
    /// Memory budget of global steps' reduces (they spill to stay under it); default 1 GiB.
    pub memory_limit: Option<u64>,
    /// Step output cache of streamed pipelines; `None` computes every step.
    pub cache: Option<StepCache>,
    /// Stops the run between chunks when cancelled; committed tasks stay for `--resume`.
    pub cancel: CancelToken,
}

/// Asks a running run to stop; clones share the request.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// Requests the stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether a stop was requested.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn check(&self) -> Result<(), BoxError> {
        if self.is_cancelled() {
            return Err(CANCELLED.into());
        }
        Ok(())
    }
}

/// The failure of a task stopped by its run's [`CancelToken`].
const CANCELLED: &str = "cancelled";

/// Receives progress; called from worker threads.
pub trait Progress: Sync {
    /// The run starts with this many tasks and input bytes; `done_bytes` are resumed.
    fn start(&self, tasks: usize, total_bytes: u64, done_bytes: u64);
    /// A chunk of `records` records from `bytes` input bytes was processed.
    fn advance(&self, records: u64, bytes: u64);
    /// The run ended.
    fn finish(&self);
}

/// Progress that reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: usize, _: u64, _: u64) {}
    fn advance(&self, _: u64, _: u64) {}
    fn finish(&self) {}
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// `--resume` found state of a run with different steps, parameters or inputs.
    #[error("cannot resume: the output holds an interrupted run of a different plan (steps, parameters or inputs changed); run without --resume to start over")]
    PlanChanged,
    /// Reading or writing state failed.
    #[error("output state: {0}")]
    State(BoxError),
    /// The run was cancelled; committed tasks are kept for `--resume`.
    #[error("cancelled after {done} of {total} tasks; run with --resume to continue")]
    Cancelled {
        /// Tasks committed.
        done: usize,
        /// Tasks in the plan.
        total: usize,
    },
    /// Some tasks failed; committed tasks are kept for `--resume`.
    #[error("{} of {total} tasks failed; rerun with --resume to retry only those:\n{}", .failures.len(), .failures.join("\n"))]
    Tasks {
        /// One line per failed task.
        failures: Vec<String>,
        /// Tasks in the plan.
        total: usize,
    },
}

#[derive(serde::Serialize, serde::Deserialize, PartialEq)]
pub(crate) struct PlanState {
    pub(crate) fingerprint: String,
    pub(crate) tasks: Vec<String>,
}

pub(crate) fn task_state_name(task: usize) -> String {
    format!("tasks/{task:06}.json")
}

pub use crate::global::execute;

/// The run's error when tasks failed: a cancellation, or the failures.
pub(crate) fn check_outcome(opts: &RunOptions, failures: Vec<String>, reports: &[Option<TaskReport>], total: usize) -> Result<(), ExecError> {
    if opts.cancel.is_cancelled() {
        return Err(ExecError::Cancelled { done: reports.iter().filter(|r| r.is_some()).count(), total });
    }
    if !failures.is_empty() {
        return Err(ExecError::Tasks { failures, total });
    }
    Ok(())
}

pub(crate) fn state_err(e: impl Into<BoxError>) -> ExecError {
    ExecError::State(e.into())
}

/// Records the plan's task keys in the sink's state and returns, per task, the report an
/// interrupted run of the same plan committed (with `resume`; otherwise the sink is reset
/// and every task is pending).
pub(crate) fn load_state(plan: &Plan, sink: &dyn Sink, keys: &[String], resume: bool) -> Result<Vec<Option<TaskReport>>, ExecError> {
    let state = PlanState { fingerprint: plan.fingerprint.clone(), tasks: keys.to_vec() };
    let mut reports: Vec<Option<TaskReport>> = vec![None; keys.len()];
    if resume {
        if let Some(prev) = sink.read_state("plan.json").map_err(ExecError::State)? {
            let prev: PlanState = serde_json::from_slice(&prev).map_err(state_err)?;
            // Same steps and settings: tasks whose input is unchanged keep their outputs, the
            // others (a fixed or edited file, a new one) are recomputed.
            if prev.fingerprint != state.fingerprint {
                return Err(ExecError::PlanChanged);
            }
        }
        sink.clean_partial().map_err(ExecError::State)?;
        let mut stale = 0;
        for (i, key) in keys.iter().enumerate() {
            if let Some(bytes) = sink.read_state(&task_state_name(i)).map_err(ExecError::State)? {
                match serde_json::from_slice::<TaskReport>(&bytes) {
                    Ok(r) if &r.key == key => reports[i] = Some(r),
                    _ => stale += 1,
                }
            }
        }
        if stale > 0 {
            tracing::info!(tasks = stale, "resuming: recomputing tasks whose input changed since the interrupted run");
        }
        // Outputs of tasks not kept go, so a recomputed task (or one the plan no longer has)
        // leaves none of its earlier files behind.
        sink.retain_tasks(&|t| reports.get(t).is_some_and(Option::is_some)).map_err(ExecError::State)?;
    } else {
        sink.reset().map_err(ExecError::State)?;
    }
    sink.write_state("plan.json", &serde_json::to_vec(&state).map_err(state_err)?).map_err(ExecError::State)?;
    let resumed = reports.iter().filter(|r| r.is_some()).count();
    if resumed > 0 {
        tracing::info!(resumed, total = keys.len(), "resuming: reusing committed tasks");
    }
    Ok(reports)
}

/// The rayon pool of a run of `threads` workers. Operators that parallelise inside a task
/// (model inference, k-means, fastText) use rayon; run in this pool they stay within the
/// run's threads instead of taking every core of the machine. `None` when the system
/// refuses the threads (rayon's global pool then serves).
pub fn op_pool(threads: usize) -> Option<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new().num_threads(threads.max(1)).thread_name(|i| format!("curate-op-{i}")).build().ok()
}

/// `f` inside `pool` when there is one.
pub fn in_pool<T: Send>(pool: Option<&rayon::ThreadPool>, f: impl FnOnce() -> T + Send) -> T {
    match pool {
        Some(p) => p.install(f),
        None => f(),
    }
}

/// Runs `f` for every item of `pending` on `threads` workers, each call inside `pool`;
/// results in `pending` order, `None` for items not started because an earlier one failed.
pub(crate) fn run_pool<T: Send>(
    threads: usize,
    pool: Option<&rayon::ThreadPool>,
    pending: &[usize],
    f: impl Fn(usize) -> Result<T, BoxError> + Sync,
) -> Vec<Option<Result<T, BoxError>>> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let slots: Mutex<Vec<Option<Result<T, BoxError>>>> = Mutex::new((0..pending.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads.min(pending.len()).max(1) {
            scope.spawn(|| loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&item) = pending.get(i) else { break };
                let r = in_pool(pool, || f(item));
                if r.is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
                if let Ok(mut s) = slots.lock() {
                    s[i] = Some(r);
                }
            });
        }
    });
    slots.into_inner().unwrap_or_default()
}

/// Files the pool's reports into `reports` (indexed by task) and returns one line per
/// failed task, described by `describe`.
pub(crate) fn collect_results(
    pending: &[usize],
    results: Vec<Option<Result<TaskReport, BoxError>>>,
    reports: &mut [Option<TaskReport>],
    describe: impl Fn(usize) -> String,
) -> Vec<String> {
    let mut failures = Vec::new();
    for (&t, r) in pending.iter().zip(results) {
        match r {
            None => {}
            Some(Ok(report)) => reports[t] = Some(report),
            Some(Err(e)) => {
                let what = describe(t);
                tracing::error!(task = %what, error = %e, "task failed");
                failures.push(format!("  {what}: {e}"));
            }
        }
    }
    failures
}

/// Aggregates task reports (in task order) into the run summary and writes `run.json`.
pub(crate) fn write_summary(
    plan: &Plan,
    sink: &dyn Sink,
    reports: &[TaskReport],
    threads: usize,
    resumed: usize,
    started: Instant,
) -> Result<RunReport, ExecError> {
    let names: Vec<&str> = plan.steps.iter().map(|s| &*s.descriptor.name).collect();
    let mut report = RunReport::from_tasks(&plan.name, &names, reports);
    report.threads = threads;
    report.tasks_resumed = resumed;
    report.elapsed_s = started.elapsed().as_secs_f64();
    let summary = serde_json::to_vec_pretty(&report).map_err(state_err)?;
    sink.write_summary(&summary).map_err(ExecError::State)?;
    Ok(report)
}

/// Feeds a task's records, read from its input, to `process` (batch, first step to run,
/// cache taps of the steps from there, report, writer). With a cache, the taps replay the
/// longest cached prefix of the first `upto` steps and store what the others compute.
/// Returns the task's cache, to finish once the task has committed.
#[allow(clippy::too_many_arguments)]
pub(crate) fn feed_task<'c>(
    plan: &Plan,
    source: &dyn Source,
    shard: &Shard,
    progress: &dyn Progress,
    opts: &'c RunOptions,
    upto: usize,
    report: &mut TaskReport,
    writer: &mut dyn crate::io::TaskWriter,
    mut process: impl FnMut(RecordBatch, usize, &mut [Tap], &mut TaskReport, &mut dyn crate::io::TaskWriter) -> Result<(), BoxError>,
) -> Result<Option<TaskCache<'c>>, BoxError> {
    let mut tc = TaskCache::start(opts.cache.as_ref(), plan, source, shard, upto, report)?;
    let mut ids = plan.duplicate_ids.map(crate::duplicate_ids::IdCheck::new);
    for chunk in source.read(shard)? {
        opts.cancel.check()?;
        let mut chunk = chunk?;
        if let Some(ids) = ids.as_mut() {
            ids.apply(&mut chunk, &shard.file)?;
            report.duplicate_ids = ids.found;
        }
        let rows = chunk.batch.num_rows() as u64;
        read_chunk(report, &chunk, writer)?;
        let taps = tc.as_mut().map_or(&mut [][..], |tc| &mut tc.taps[..]);
        process(chunk.batch, 0, taps, report, writer)?;
        progress.advance(rows, chunk.bytes);
    }
    if let Some(tc) = &tc {
        tc.check_replayed()?;
    }
    Ok(tc)
}

/// Counts a chunk read from the input and quarantines what it could not parse.
fn read_chunk(report: &mut TaskReport, chunk: &crate::io::Chunk, writer: &mut dyn crate::io::TaskWriter) -> Result<(), BoxError> {
    report.bytes_in += chunk.bytes;
    report.records_in += chunk.batch.num_rows() as u64;
    report.quarantined += chunk.quarantined.len() as u64;
    if !chunk.quarantined.is_empty() {
        writer.quarantined(&chunk.quarantined)?;
    }
    Ok(())
}

/// The step cache at work on one task: entries of the steps it reuses, writers of the
/// steps it computes, aligned with the task's first steps.
pub(crate) struct TaskCache<'c> {
    cache: &'c StepCache,
    input_key: String,
    taps: Vec<Tap>,
}

impl<'c> TaskCache<'c> {
    /// Opens the entries of the longest cached prefix of the task's first `upto` steps and
    /// writers for the rest, and records in `report` what each step will do; `None` without
    /// a cache.
    fn start(
        cache: Option<&'c StepCache>,
        plan: &Plan,
        source: &dyn Source,
        shard: &Shard,
        upto: usize,
        report: &mut TaskReport,
    ) -> Result<Option<Self>, BoxError> {
        let Some(cache) = cache.filter(|_| upto > 0) else { return Ok(None) };
        let (input_key, mut keys) = plan.step_keys(shard, &source.content_hash(shard)?);
        keys.truncate(upto);
        // Each step's input: the previous step's entry, or the task's parsed input.
        let upstream: Vec<&str> = std::iter::once(input_key.as_str()).chain(keys.iter().map(String::as_str)).collect();
        let mut taps: Vec<Tap> = keys.iter().zip(&upstream).map_while(|(k, up)| cache.open(k, up)).map(|e| Tap::Replay(Box::new(e))).collect();
        let from = taps.len();
        report.cache = outcomes(plan, &keys, from, from == 0 && !cache.seen_input(&input_key));
        for ((k, up), step) in keys.iter().zip(&upstream).zip(&plan.steps).skip(from) {
            let declared = step.operator.columns().writes.into_iter().map(|(name, _)| name).collect();
            taps.push(match cache.writer(k, up, declared) {
                Ok(w) => Tap::Record(Box::new(w)),
                Err(e) => {
                    tracing::warn!(key = %k, error = %e, "step cache not writable; computing without it");
                    Tap::Off
                }
            });
        }
        Ok(Some(TaskCache { cache, input_key, taps }))
    }

    /// Checks that every replayed entry covered exactly the rows its step received.
    fn check_replayed(&self) -> Result<(), BoxError> {
        self.taps.iter().try_for_each(|t| match t {
            Tap::Replay(e) => e.check_complete(),
            _ => Ok(()),
        })
    }

    /// Publishes the computed steps' outputs once the task committed.
    pub(crate) fn finish(self, report: &TaskReport) {
        for tap in self.taps {
            if let Tap::Record(w) = tap {
                if let Err(e) = w.commit() {
                    tracing::warn!(task = report.task, error = %e, "could not store a step output in the cache");
                }
            }
        }
        if let Err(e) = self.cache.mark_input(&self.input_key) {
            tracing::warn!(task = report.task, error = %e, "could not record the input in the cache");
        }
    }
}

/// What each of a task's cached steps does: steps before `from` are reused, the others
/// computed; `new_input` says the task's input was never processed before.
fn outcomes(plan: &Plan, keys: &[String], from: usize, new_input: bool) -> Vec<StepOutcome> {
    plan.steps
        .iter()
        .zip(keys)
        .enumerate()
        .map(|(i, (s, k))| {
            let reason = if i < from {
                "cache hit".to_string()
            } else if i > from {
                format!("follows recomputed step {from} ({})", plan.steps[from].descriptor.name)
            } else if new_input {
                "input not seen before (new or changed file)".to_string()
            } else {
                "operator, version or parameters changed (no cached output for this key)".to_string()
            };
            StepOutcome { step: s.index, op: s.descriptor.name.to_string(), key: k.clone(), reused: i < from, reason }
        })
        .collect()
}

/// Shapes rows dropped by `step` into the rejects schema.
fn reject_rows(step: &BuiltStep, rejects_schema: &SchemaRef, dropped: &RecordBatch, reasons: ArrayRef) -> Result<RecordBatch, BoxError> {
    let n = dropped.num_rows();
    let step_name: ArrayRef = Arc::new(StringArray::from(vec![&*step.descriptor.name; n]));
    let step_index: ArrayRef = Arc::new(UInt32Array::from(vec![step.index as u32; n]));
    Ok(conform(
        dropped,
        rejects_schema,
        &[(record::REJECT_STEP, step_name), (record::REJECT_STEP_INDEX, step_index), (record::REJECT_REASON, reasons)],
    )?)
}

/// Runs `steps` over one batch (`stats` and `taps` line up with `steps`); dropped rows go to
/// the writer's rejects, rows of a batch an operator failed on to its quarantine (counted
/// in `quarantined`).
pub(crate) fn apply_steps(
    steps: &[BuiltStep],
    rejects_schema: &SchemaRef,
    mut batch: RecordBatch,
    stats: &mut [StepStats],
    quarantined: &mut u64,
    writer: &mut dyn crate::io::TaskWriter,
    taps: &mut [Tap],
) -> Result<RecordBatch, BoxError> {
    for (i, (step, st)) in steps.iter().zip(stats.iter_mut()).enumerate() {
        if batch.num_rows() == 0 {
            break;
        }
        let rows = batch.num_rows();
        st.records_in += rows as u64;
        let (out, verdicts) = run_step(step, batch, taps.get_mut(i))?;
        let (out, verdicts) = match verdicts {
            Some(v) if !v.failures().is_empty() => {
                let failed = quarantine_failed(step, &out, &v, writer)?;
                st.failed += failed as u64;
                *quarantined += failed as u64;
                let ok: BooleanArray = (0..rows).map(|r| Some(!v.failures().iter().any(|(range, _)| range.contains(&r)))).collect();
                (filter_record_batch(&out, &ok)?, Some(v.without_failures()))
            }
            other => (out, other),
        };
        let rows = out.num_rows();
        batch = match verdicts {
            Some(v) if v.any_dropped() => {
                let keep: BooleanArray = (0..rows).map(|i| Some(v.reason(i).is_none())).collect();
                let dropped_mask: BooleanArray = (0..rows).map(|i| Some(v.reason(i).is_some())).collect();
                let reasons: StringArray = (0..rows).filter_map(|i| v.reason(i).map(|r| Some(r.to_string()))).collect();
                for r in reasons.iter().flatten() {
                    *st.dropped.entry(r.to_string()).or_default() += 1;
                }
                let dropped = filter_record_batch(&out, &dropped_mask)?;
                writer.rejected(&reject_rows(step, rejects_schema, &dropped, Arc::new(reasons))?)?;
                filter_record_batch(&out, &keep)?
            }
            _ => out,
        };
        st.records_out += batch.num_rows() as u64;
    }
    Ok(batch)
}

/// Writes the rows `step` failed on to quarantine, each with the error, its id and its
/// batch; returns how many.
fn quarantine_failed(step: &BuiltStep, out: &RecordBatch, v: &crate::operator::Verdicts, writer: &mut dyn crate::io::TaskWriter) -> Result<usize, BoxError> {
    let ids = out.column_by_name(record::ID).and_then(|c| c.as_any().downcast_ref::<StringArray>());
    let id = |r: usize| ids.map_or("", |ids| ids.value(r));
    let mut entries = Vec::new();
    for (range, error) in v.failures() {
        let n = range.len();
        let shown: Vec<&str> = range.clone().take(10).map(id).collect();
        tracing::warn!(step = step.index, op = %step.descriptor.name, records = n, ids = ?shown, error = %error, "operator failed on records; they are quarantined");
        for r in range.clone() {
            let message = format!("step {} ({}) failed on the batch of record `{}` ({n} records): {error}", step.index, step.descriptor.name, id(r));
            entries.push(crate::quarantine::entry(out, r, None, message));
        }
    }
    writer.quarantined(&entries)?;
    Ok(entries.len())
}

/// One step over one batch: the step's output (same rows) and verdicts, replayed from its
/// cache entry or computed by its operator (and stored when the cache records it).
fn run_step(step: &BuiltStep, batch: RecordBatch, tap: Option<&mut Tap>) -> Result<(RecordBatch, Option<crate::operator::Verdicts>), BoxError> {
    let at = || format!("step {} ({})", step.index, step.descriptor.name);
    if let Some(Tap::Replay(entry)) = tap {
        return entry.apply(batch).map_err(|e| format!("{}: {e}", at()).into());
    }
    let rows = batch.num_rows();
    let input = matches!(tap, Some(Tap::Record(_))).then(|| batch.clone());
    let out = step.operator.process(batch).map_err(|e| format!("{}: {e}", at()))?;
    if out.batch.num_rows() != rows {
        return Err(format!(
            "{} returned {} rows for {rows}; operators must keep row count and drop through verdicts",
            at(),
            out.batch.num_rows()
        )
        .into());
    }
    let failed = out.verdicts.as_ref().is_some_and(|v| !v.failures().is_empty());
    match (tap, input) {
        // A failed batch is not an output to reuse: the step is computed again next time.
        (Some(tap), _) if failed => *tap = Tap::Off,
        (Some(tap), Some(input)) => tap.record(&input, &out.batch, out.verdicts.as_ref()),
        _ => {}
    }
    Ok((out.batch, out.verdicts))
}
