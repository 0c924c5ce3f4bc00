//! Global steps (dedup, later mixing and statistics): the planner cuts the pipeline into
//! stages at each global step, and a global step runs as map -> reduce -> apply.
//!
//! * **map**: each task of the stage before the step runs its map steps, writes the surviving
//!   records to an Arrow IPC file and, per record, a small payload chosen by the operator
//!   (a key, a signature, the text) to a map file, both under the run's work directory;
//! * **reduce**: once every task of the stage committed, the operator reads all map files and
//!   decides each record's fate, in memory bounded by the run's memory limit (operators spill);
//!   decisions are written per task;
//! * **apply**: the next stage's task `t` reads task `t`'s IPC file, drops the records the
//!   reduce rejected (to rejects, with reason, duplicate id and similarity), annotates the kept
//!   ones with cluster id and size, then runs the following steps.
//!
//! Stage `s` task `t` publishes its files as sink task `s * tasks + t`, so names stay stable
//! for any thread count. `--resume` keeps committed tasks of every stage and committed reduces.
//! A pipeline without global steps is the one-stage case: its tasks read, run every step
//! and write, and no reduce runs.
//!
//! [`TaskContext`] carries what a task needs and [`run_task`] runs one [`TaskRef`], so the
//! same task description runs on the local thread pool or on a remote worker.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, UInt32Array, UInt64Array};
use arrow_schema::{DataType, SchemaRef};
use arrow_select::filter::filter_record_batch;
use serde::{Deserialize, Serialize};

use crate::exec::{
    apply_steps, check_outcome, collect_results, feed_task, in_pool, load_state, op_pool, run_pool, state_err, task_state_name, write_summary, ExecError, Plan, Progress,
    RunOptions,
};
use crate::io::{BoxError, Shard, Sink, Source, TaskWriter};
use crate::key::KeyHasher;
use crate::operator::OpError;
use crate::record::{self, conform};
use crate::stats::{RunReport, StepStats, TaskReport};

/// Memory budget of a reduce when neither `--memory-limit` nor the spec sets one.
pub const DEFAULT_MEMORY_LIMIT: u64 = 1 << 30;

/// A record's place in a stage's input: its task, and its row in that task's record stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecordRef {
    /// Task index within the stage (the input shard).
    pub task: u32,
    /// Row within the task's stream of records entering the global step.
    pub row: u64,
}

/// What a reduce decided for one record. Records without a decision are kept as singletons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// `operator:rule` when the record is dropped; `None` keeps it.
    pub drop_reason: Option<String>,
    /// Id of the record its cluster keeps (for a dropped record: the id it duplicates); `None`
    /// when the survivor is known only to exist (e.g. a Bloom filter hit).
    pub cluster_id: Option<String>,
    /// Records in the cluster, including ones from a persistent index.
    pub cluster_size: u64,
    /// Similarity to the cluster's survivor (e.g. Jaccard), for dropped records when measured.
    pub similarity: Option<f64>,
}

/// Names of the columns the engine fills from decisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionColumns {
    /// Kept and dropped records: id of the cluster's survivor (Utf8).
    pub cluster_id: String,
    /// Kept and dropped records: cluster size (UInt64).
    pub cluster_size: String,
    /// Rejects only: id of the record the dropped one duplicates (Utf8).
    pub duplicate_of: String,
    /// Rejects only: similarity to the survivor (Float64), when the operator measures one.
    pub similarity: Option<String>,
}

impl DecisionColumns {
    /// Columns added to kept records; operators list these in their `Columns::writes`.
    pub fn kept_writes(&self) -> Vec<(String, DataType)> {
        vec![(self.cluster_id.clone(), DataType::Utf8), (self.cluster_size.clone(), DataType::UInt64)]
    }

    /// Columns that only rejects carry.
    pub fn reject_writes(&self) -> Vec<(String, DataType)> {
        let mut w = vec![(self.duplicate_of.clone(), DataType::Utf8)];
        w.extend(self.similarity.iter().map(|s| (s.clone(), DataType::Float64)));
        w
    }
}

/// Per-row payloads produced by a map over one batch.
#[derive(Debug, Default)]
pub struct MapRows {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl MapRows {
    /// Appends the payload of the next row.
    pub fn push(&mut self, payload: &[u8]) {
        self.bytes.extend_from_slice(payload);
        self.ends.push(self.bytes.len());
    }

    /// Rows pushed so far.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether no row was pushed.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    fn write_to(&self, w: &mut impl Write) -> std::io::Result<()> {
        let mut start = 0;
        for &end in &self.ends {
            w.write_all(&((end - start) as u32).to_le_bytes())?;
            w.write_all(&self.bytes[start..end])?;
            start = end;
        }
        Ok(())
    }
}

/// Every map file of a stage, read in task order by a reduce.
pub struct MapFiles {
    files: Vec<PathBuf>,
}

impl MapFiles {
    /// Number of tasks.
    pub fn tasks(&self) -> usize {
        self.files.len()
    }

    /// Total bytes of payload files, to size partitions.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum()
    }

    /// Calls `f` with every record's reference and payload, task by task, row by row.
    pub fn for_each(&self, mut f: impl FnMut(RecordRef, &[u8]) -> Result<(), OpError>) -> Result<(), OpError> {
        let mut buf = Vec::new();
        for (task, path) in self.files.iter().enumerate() {
            let io = |e: std::io::Error| OpError(format!("map file {}: {e}", path.display()));
            let mut r = BufReader::with_capacity(1 << 20, File::open(path).map_err(io)?);
            let mut row = 0u64;
            loop {
                let mut len = [0u8; 4];
                match r.read_exact(&mut len) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(io(e)),
                }
                buf.resize(u32::from_le_bytes(len) as usize, 0);
                r.read_exact(&mut buf).map_err(io)?;
                f(RecordRef { task: task as u32, row }, &buf)?;
                row += 1;
            }
        }
        Ok(())
    }
}

/// What a reduce may use besides the map files.
pub struct ReduceContext {
    /// A private scratch directory (spill files), removed after the reduce.
    pub scratch: PathBuf,
    /// Bytes the reduce should stay under; operators spill to honour it.
    pub memory_limit: u64,
}

/// Collects a reduce's decisions.
#[derive(Debug, Default)]
pub struct Decisions {
    items: Vec<(RecordRef, Decision)>,
}

impl Decisions {
    /// Records the fate of one record (at most once per record).
    pub fn push(&mut self, at: RecordRef, decision: Decision) {
        self.items.push((at, decision));
    }
}

/// The map and reduce of a global operator; its `Operator::process` is never called.
pub trait GlobalOperator: Send + Sync {
    /// Map side: pushes exactly one payload per row of `batch` into `out`.
    fn map(&self, batch: &RecordBatch, out: &mut MapRows) -> Result<(), OpError>;
    /// Reduce side: decides the records that are not kept as singletons. Must not depend on
    /// the order of tasks, so that shuffled input files give the same result.
    fn reduce(&self, input: &MapFiles, ctx: &ReduceContext, out: &mut Decisions) -> Result<(), OpError>;
    /// The columns the engine fills from decisions.
    fn decision_columns(&self) -> DecisionColumns;
}

/// A global step of a plan and the schema of the records entering it.
pub struct GlobalStep {
    /// Index of the step in the pipeline.
    pub step: usize,
    /// Schema of the records entering the step (what the IPC files hold).
    pub input_schema: SchemaRef,
}

#[derive(Serialize, Deserialize)]
struct ReduceState {
    key: String,
    decisions: usize,
}

/// Where the stage files of a run live: `<scratch>/stage-S/`.
#[derive(Debug, Clone)]
struct Work {
    root: PathBuf,
}

impl Work {
    fn stage_dir(&self, stage: usize) -> PathBuf {
        self.root.join(format!("stage-{stage}"))
    }
    fn ipc(&self, stage: usize, task: usize) -> PathBuf {
        self.stage_dir(stage).join(format!("task-{task:06}.arrow"))
    }
    fn map(&self, stage: usize, task: usize) -> PathBuf {
        self.stage_dir(stage).join(format!("task-{task:06}.map"))
    }
    fn decisions(&self, stage: usize, task: usize) -> PathBuf {
        self.stage_dir(stage).join(format!("task-{task:06}.decisions.json"))
    }
}

/// One task of a run: its stage, the shard it covers and its key (which changes with the
/// plan, its shard's content and, after a global step, every shard).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRef {
    /// Stage (0 for the first; one more per global step before it).
    pub stage: usize,
    /// Index of the input shard.
    pub shard: usize,
    /// Content key of the task's outputs.
    pub key: String,
}

/// Every task of `plan` over `shards`, stage by stage. Stage `s` can start once every
/// task of stage `s - 1` committed and its reduce ran.
pub fn plan_tasks(plan: &Plan, shards: &[Shard]) -> Vec<TaskRef> {
    let stages = plan.globals.len() + 1;
    let task_keys: Vec<String> = shards.iter().map(|sh| plan.task_key(sh)).collect();
    if stages == 1 {
        return task_keys.into_iter().enumerate().map(|(shard, key)| TaskRef { stage: 0, shard, key }).collect();
    }
    // A later stage's task depends on every record through the reduce before it, so its key
    // covers every shard: a changed input recomputes its own first-stage task and all later ones.
    let everything = KeyHasher::new("curate.stage-inputs.v1").json("tasks", &serde_json::json!(&task_keys)).finish();
    (0..stages)
        .flat_map(|stage| {
            let everything = &everything;
            task_keys.iter().enumerate().map(move |(shard, k)| {
                let mut key = KeyHasher::new("curate.stage-task.v1");
                key.str("task", k).str("stage", &stage.to_string());
                if stage > 0 {
                    key.str("inputs", everything);
                }
                TaskRef { stage, shard, key: key.finish() }
            })
        })
        .collect()
}

/// What a task needs to run: the plan, where records come from and go, how to run, and
/// where stages hand records to the next.
pub struct TaskContext<'a> {
    /// The plan.
    pub plan: &'a Plan,
    /// Where records come from.
    pub source: &'a dyn Source,
    /// Where outputs go.
    pub sink: &'a dyn Sink,
    /// Cache, cancellation, threads.
    pub opts: &'a RunOptions,
    /// Progress events.
    pub progress: &'a dyn Progress,
    work: Work,
}

impl<'a> TaskContext<'a> {
    /// A context whose stage files live in the sink's scratch directory.
    pub fn new(plan: &'a Plan, source: &'a dyn Source, sink: &'a dyn Sink, opts: &'a RunOptions, progress: &'a dyn Progress) -> Result<Self, ExecError> {
        let work = Work { root: sink.scratch_dir().map_err(ExecError::State)? };
        Ok(TaskContext { plan, source, sink, opts, progress, work })
    }
}

/// Runs `plan` over every shard of `source` into `sink`: every stage's tasks on the thread
/// pool, a reduce between stages; a streamed pipeline is the one-stage case.
pub fn execute(
    plan: &Plan,
    source: &dyn Source,
    sink: &dyn Sink,
    opts: &RunOptions,
    progress: &dyn Progress,
) -> Result<RunReport, ExecError> {
    let started = Instant::now();
    let shards = source.shards();
    let n = shards.len();
    let stages = plan.globals.len() + 1;
    let tasks = plan_tasks(plan, shards);
    let keys: Vec<String> = tasks.iter().map(|t| t.key.clone()).collect();
    let ctx = TaskContext::new(plan, source, sink, opts, progress)?;
    let mut reports = begin_run(&ctx, &keys, opts.resume)?;
    let resumed = reports.iter().filter(|r| r.is_some()).count();
    let total_bytes = shards.iter().map(|s| s.bytes).sum();
    let done_bytes = shards.iter().zip(&reports).filter(|(_, r)| r.is_some()).map(|(s, _)| s.bytes).sum();
    progress.start(keys.len(), total_bytes, done_bytes);
    let threads = opts.threads.max(1);
    let pool = op_pool(threads);

    let mut all = Vec::with_capacity(keys.len());
    for stage in 0..stages {
        let base = stage * n;
        let stage_reports = &mut reports[base..base + n];
        let pending: Vec<usize> = (0..n).filter(|&t| stage_reports[t].is_none()).collect();
        let results = run_pool(threads, pool.as_ref(), &pending, |t| {
            opts.cancel.check()?;
            commit_task(&ctx, &tasks[base + t])
        });
        let what = |t: usize| if stages == 1 { format!("task {t} ({})", shards[t].file) } else { format!("stage {stage} task {t} ({})", shards[t].file) };
        let failures = collect_results(&pending, results, stage_reports, what);
        if let Err(e) = check_outcome(opts, failures, stage_reports, keys.len()) {
            progress.finish();
            return Err(e);
        }
        all.extend(stage_reports.iter_mut().filter_map(Option::take));
        if stage + 1 < stages {
            in_pool(pool.as_ref(), || reduce(&ctx, &tasks, stage))?;
        }
    }
    progress.finish();

    let mut report = write_summary(plan, sink, &all, threads.min(n.max(1)), resumed, started)?;
    // The summary counts plan tasks (every stage's), which the task reports alone do not tell.
    report.tasks = keys.len();
    Ok(report)
}

/// Opens a run of `tasks` (their keys, in [`plan_tasks`] order) on the context's sink:
/// with `resume`, the reports of tasks an earlier run of the same plan committed (the
/// others' files are removed); otherwise the output and scratch files are cleared. A
/// queue calls this once per run before handing its tasks to workers.
pub fn begin_run(ctx: &TaskContext<'_>, keys: &[String], resume: bool) -> Result<Vec<Option<TaskReport>>, ExecError> {
    let reports = load_state(ctx.plan, ctx.sink, keys, resume)?;
    if !resume {
        remove_dir(&ctx.work.root).map_err(state_err)?;
    }
    for stage in 0..ctx.plan.globals.len() {
        std::fs::create_dir_all(ctx.work.stage_dir(stage)).map_err(state_err)?;
    }
    Ok(reports)
}

/// Runs a task and commits it (its files, then its report in the sink's state), unless
/// it already committed with the same key: a task handed out twice (a worker presumed
/// dead, a retried lease) is committed exactly once.
pub fn commit_task(ctx: &TaskContext<'_>, task: &TaskRef) -> Result<TaskReport, BoxError> {
    let n = ctx.source.shards().len();
    let name = task_state_name(task.stage * n + task.shard);
    if let Some(bytes) = ctx.sink.read_state(&name)? {
        if let Ok(done) = serde_json::from_slice::<TaskReport>(&bytes) {
            if done.key == task.key {
                return Ok(done);
            }
        }
    }
    let report = run_task(ctx, task)?;
    ctx.sink.write_state(&name, &serde_json::to_vec(&report)?)?;
    Ok(report)
}

/// Runs the reduce of the global step ending `stage` over the map files of that stage's
/// `tasks` (all of the run's tasks, in [`plan_tasks`] order), reusing a committed reduce
/// of the same inputs. Every task of `stage` must have committed.
pub fn reduce(ctx: &TaskContext<'_>, tasks: &[TaskRef], stage: usize) -> Result<(), ExecError> {
    let n = ctx.source.shards().len();
    let keys: Vec<&str> = tasks.iter().filter(|t| t.stage == stage).map(|t| t.key.as_str()).collect();
    let reduce_key = KeyHasher::new("curate.reduce.v1")
        .str("plan", &ctx.plan.fingerprint)
        .str("stage", &stage.to_string())
        .json("tasks", &serde_json::json!(&keys))
        .finish();
    let memory_limit = ctx.opts.memory_limit.unwrap_or(DEFAULT_MEMORY_LIMIT);
    reduce_stage(ctx.plan, ctx.sink, &ctx.work, stage, n, &reduce_key, memory_limit)
}

fn remove_dir(p: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Runs one task and commits its outputs: read (the input, or for a later stage the
/// previous stage's records with the reduce's decisions applied), run the stage's map
/// steps, then hand records to the next global step or to the output. A task of stage
/// `s > 0` needs every task of stage `s - 1` committed and its reduce done.
pub fn run_task(ctx: &TaskContext<'_>, task: &TaskRef) -> Result<TaskReport, BoxError> {
    let TaskContext { plan, source, sink, opts, progress, work } = ctx;
    let (stage, t) = (task.stage, task.shard);
    let shard = source.shards().get(t).ok_or_else(|| format!("no shard {t}: the source has {}", source.shards().len()))?;
    let n = source.shards().len();
    let stages = plan.globals.len() + 1;
    let last = stage + 1 == stages;
    let first_step = if stage == 0 { 0 } else { plan.globals[stage - 1].step + 1 };
    let end_step = if last { plan.steps.len() } else { plan.globals[stage].step };
    let mut writer = sink.task_writer(stage * n + t, plan.kept_schema.clone(), plan.rejects_schema.clone())?;
    let mut report = TaskReport {
        task: stage * n + t,
        key: task.key.clone(),
        file: shard.file.clone(),
        steps: plan.steps.iter().map(|s| StepStats { op: s.descriptor.name.to_string(), ..Default::default() }).collect(),
        ..Default::default()
    };

    let mut out = if last {
        None
    } else {
        let g = &plan.globals[stage];
        Some(StageOut::create(work, stage, t, g.input_schema.clone())?)
    };
    // Steps `from..end_step` run here; in stage 0 `taps` replay the ones the step cache has
    // and store what the others compute.
    let mut process = |batch: RecordBatch,
                       from: usize,
                       taps: &mut [crate::cache::Tap],
                       report: &mut TaskReport,
                       writer: &mut dyn TaskWriter|
     -> Result<(), BoxError> {
        let kept = apply_steps(
            &plan.steps[from..end_step],
            &plan.rejects_schema,
            batch,
            &mut report.steps[from..end_step],
            &mut report.quarantined,
            writer,
            taps,
        )?;
        match out.as_mut() {
            Some(o) => o.write(plan, stage, &kept)?,
            None => {
                report.records_out += kept.num_rows() as u64;
                if kept.num_rows() > 0 {
                    writer.kept(&conform(&kept, &plan.kept_schema, &[])?)?;
                }
            }
        }
        Ok(())
    };

    let mut tc = None;
    if stage == 0 {
        tc = feed_task(plan, *source, shard, *progress, opts, end_step, &mut report, writer.as_mut(), &mut process)?;
    } else {
        let g = &plan.globals[stage - 1];
        let step = &plan.steps[g.step];
        let op = step.operator.as_global().ok_or("global step lost its global operator")?;
        let cols = op.decision_columns();
        let decisions: Vec<(u64, Decision)> =
            serde_json::from_slice(&std::fs::read(work.decisions(stage - 1, t))?)?;
        let mut cursor = Applier { decisions: &decisions, next: 0, row: 0 };
        let reader = arrow_ipc::reader::FileReader::try_new(BufReader::new(File::open(work.ipc(stage - 1, t))?), None)?;
        let kept_schema = record::with_writes(&g.input_schema, &cols.kept_writes());
        for batch in reader {
            opts.cancel.check()?;
            let batch = batch?;
            let rows = batch.num_rows() as u64;
            let stats = &mut report.steps[g.step];
            let kept = cursor.apply(&batch, step.index, &*step.descriptor.name, &cols, &kept_schema, plan, stats, writer.as_mut())?;
            process(kept, first_step, &mut [], &mut report, writer.as_mut())?;
            progress.advance(rows, 0);
        }
    }
    if let Some(o) = out {
        o.finish()?;
    }
    report.files = writer.commit()?;
    if let Some(tc) = tc {
        tc.finish(&report);
    }
    Ok(report)
}

/// The IPC and map files a task hands to the next global step; published by rename.
struct StageOut {
    ipc: arrow_ipc::writer::FileWriter<BufWriter<File>>,
    map: BufWriter<File>,
    rows: MapRows,
    paths: [(PathBuf, PathBuf); 2],
    schema: SchemaRef,
}

impl StageOut {
    fn create(work: &Work, stage: usize, t: usize, schema: SchemaRef) -> Result<Self, BoxError> {
        let ipc_path = work.ipc(stage, t);
        let map_path = work.map(stage, t);
        let tmp = |p: &Path| p.with_extension("tmp".to_string() + &p.extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default());
        let (ipc_tmp, map_tmp) = (tmp(&ipc_path), tmp(&map_path));
        let ipc = arrow_ipc::writer::FileWriter::try_new(BufWriter::new(File::create(&ipc_tmp)?), &schema)?;
        let map = BufWriter::with_capacity(1 << 20, File::create(&map_tmp)?);
        Ok(StageOut { ipc, map, rows: MapRows::default(), paths: [(ipc_tmp, ipc_path), (map_tmp, map_path)], schema })
    }

    fn write(&mut self, plan: &Plan, stage: usize, batch: &RecordBatch) -> Result<(), BoxError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let g = &plan.globals[stage];
        let step = &plan.steps[g.step];
        let op = step.operator.as_global().ok_or("global step lost its global operator")?;
        let batch = conform(batch, &self.schema, &[])?;
        self.rows.clear();
        op.map(&batch, &mut self.rows).map_err(|e| format!("step {} ({}): {e}", step.index, step.descriptor.name))?;
        if self.rows.len() != batch.num_rows() {
            return Err(format!(
                "step {} ({}) mapped {} rows for {}",
                step.index,
                step.descriptor.name,
                self.rows.len(),
                batch.num_rows()
            )
            .into());
        }
        self.rows.write_to(&mut self.map)?;
        self.ipc.write(&batch)?;
        Ok(())
    }

    fn finish(mut self) -> Result<(), BoxError> {
        self.ipc.into_inner()?.flush()?;
        self.map.flush()?;
        drop(self.map);
        for (tmp, dest) in &self.paths {
            std::fs::rename(tmp, dest)?;
        }
        Ok(())
    }
}

/// Walks one task's decisions (sorted by row) alongside its record batches.
struct Applier<'a> {
    decisions: &'a [(u64, Decision)],
    next: usize,
    row: u64,
}

impl Applier<'_> {
    /// Splits `batch` into kept records (returned, with cluster columns) and dropped ones
    /// (written to rejects).
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &mut self,
        batch: &RecordBatch,
        step_index: usize,
        step_name: &str,
        cols: &DecisionColumns,
        kept_schema: &SchemaRef,
        plan: &Plan,
        stats: &mut StepStats,
        writer: &mut dyn TaskWriter,
    ) -> Result<RecordBatch, BoxError> {
        let rows = batch.num_rows();
        let ids = batch
            .column_by_name(record::ID)
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            .ok_or("records entering a global step lack a string `id` column")?;
        let mut cluster_id = Vec::with_capacity(rows);
        let mut cluster_size = Vec::with_capacity(rows);
        let mut keep = Vec::with_capacity(rows);
        let mut reasons = Vec::new();
        let mut dup_of = Vec::new();
        let mut similarity = Vec::new();
        for i in 0..rows {
            let row = self.row + i as u64;
            while self.decisions.get(self.next).is_some_and(|(r, _)| *r < row) {
                self.next += 1;
            }
            let d = self.decisions.get(self.next).filter(|(r, _)| *r == row).map(|(_, d)| d);
            let own = ids.value(i);
            match d {
                Some(d) => {
                    cluster_id.push(Some(d.cluster_id.clone().unwrap_or_else(|| own.to_string())));
                    cluster_size.push(d.cluster_size);
                    match &d.drop_reason {
                        Some(reason) => {
                            keep.push(false);
                            reasons.push(reason.clone());
                            dup_of.push(d.cluster_id.clone());
                            similarity.push(d.similarity);
                            *stats.dropped.entry(reason.clone()).or_default() += 1;
                        }
                        None => keep.push(true),
                    }
                }
                None => {
                    cluster_id.push(Some(own.to_string()));
                    cluster_size.push(1);
                    keep.push(true);
                }
            }
        }
        self.row += rows as u64;
        stats.records_in += rows as u64;
        let cid: ArrayRef = Arc::new(StringArray::from(cluster_id));
        let csize: ArrayRef = Arc::new(UInt64Array::from(cluster_size));
        let annotated = conform(batch, kept_schema, &[(cols.cluster_id.as_str(), cid), (cols.cluster_size.as_str(), csize)])?;
        let dropped_n = reasons.len();
        let kept = if dropped_n == 0 {
            annotated
        } else {
            let mask: BooleanArray = keep.iter().map(|&k| Some(!k)).collect();
            let dropped = filter_record_batch(&annotated, &mask)?;
            let step_col: ArrayRef = Arc::new(StringArray::from(vec![step_name; dropped_n]));
            let index_col: ArrayRef = Arc::new(UInt32Array::from(vec![step_index as u32; dropped_n]));
            let reason_col: ArrayRef = Arc::new(StringArray::from(reasons));
            let dup_col: ArrayRef = Arc::new(StringArray::from(dup_of));
            let sim_col: ArrayRef = Arc::new(Float64Array::from(similarity));
            let mut extra: Vec<(&str, ArrayRef)> = vec![
                (record::REJECT_STEP, step_col),
                (record::REJECT_STEP_INDEX, index_col),
                (record::REJECT_REASON, reason_col),
                (cols.duplicate_of.as_str(), dup_col),
            ];
            if let Some(s) = &cols.similarity {
                extra.push((s.as_str(), sim_col));
            }
            writer.rejected(&conform(&dropped, &plan.rejects_schema, &extra)?)?;
            let mask: BooleanArray = keep.iter().map(|&k| Some(k)).collect();
            filter_record_batch(&annotated, &mask)?
        };
        stats.records_out += kept.num_rows() as u64;
        Ok(kept)
    }
}

/// Runs the reduce of the global step after `stage`, unless a committed one matches `key`.
fn reduce_stage(
    plan: &Plan,
    sink: &dyn Sink,
    work: &Work,
    stage: usize,
    n: usize,
    key: &str,
    memory_limit: u64,
) -> Result<(), ExecError> {
    let state_name = format!("reduce/{stage:03}.json");
    if let Some(bytes) = sink.read_state(&state_name).map_err(ExecError::State)? {
        if serde_json::from_slice::<ReduceState>(&bytes).is_ok_and(|s| s.key == key)
            && (0..n).all(|t| work.decisions(stage, t).exists())
        {
            tracing::info!(stage, "resuming: reusing the committed reduce");
            return Ok(());
        }
    }
    let g = &plan.globals[stage];
    let step = &plan.steps[g.step];
    let op = step.operator.as_global().ok_or_else(|| state_err("global step lost its global operator"))?;
    let started = Instant::now();
    let scratch = work.stage_dir(stage).join("reduce");
    remove_dir(&scratch).map_err(state_err)?;
    std::fs::create_dir_all(&scratch).map_err(state_err)?;
    let files = MapFiles { files: (0..n).map(|t| work.map(stage, t)).collect() };
    let mut decisions = Decisions::default();
    let ctx = ReduceContext { scratch: scratch.clone(), memory_limit };
    op.reduce(&files, &ctx, &mut decisions).map_err(|e| ExecError::Tasks {
        failures: vec![format!("  step {} ({}) reduce: {e}", step.index, step.descriptor.name)],
        total: 1,
    })?;
    remove_dir(&scratch).map_err(state_err)?;
    let mut items = decisions.items;
    items.sort_by_key(|(at, _)| *at);
    let total = items.len();
    let mut per_task: Vec<Vec<(u64, Decision)>> = (0..n).map(|_| Vec::new()).collect();
    for (at, d) in items {
        let slot = per_task.get_mut(at.task as usize).ok_or_else(|| state_err("reduce decided a record of an unknown task"))?;
        slot.push((at.row, d));
    }
    for (t, list) in per_task.iter().enumerate() {
        let path = work.decisions(stage, t);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(list).map_err(state_err)?).map_err(state_err)?;
        std::fs::rename(&tmp, &path).map_err(state_err)?;
    }
    let state = serde_json::to_vec(&ReduceState { key: key.to_string(), decisions: total }).map_err(state_err)?;
    sink.write_state(&state_name, &state).map_err(ExecError::State)?;
    tracing::info!(
        step = step.index,
        op = &*step.descriptor.name,
        decisions = total,
        elapsed_s = started.elapsed().as_secs_f64(),
        "reduce done"
    );
    Ok(())
}
