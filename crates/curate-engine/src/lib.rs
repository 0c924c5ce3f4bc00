//! The run as a library (ARCHITECTURE.md §3): a pipeline from YAML or JSON text, checked
//! against its inputs, outputs and operators, executed with a cancel token and progress
//! events, recorded in the registry and committed as the next version of its dataset.
//!
//! The CLI, the coming server and the Python package are shells over [`Engine`]; none of
//! them holds run logic.

#![warn(missing_docs)]

use std::path::{Path, PathBuf};

use curate_core::exec::{execute, in_pool, op_pool, ExecError, Plan, Progress, RunOptions};
use curate_core::global::{begin_run, commit_task, reduce};
use curate_core::io::Source;
use curate_core::operator::Registry as Operators;
use curate_core::spec::{InputFormat, Paths, PipelineSpec, SpecErrors};
use curate_core::stats::RunReport;
use curate_datasets::{Committed, Home, RunRecord};
use curate_io::{FileSource, IoError};
use curate_registry::{RunId, RunStatus};

pub use curate_core::exec::CancelToken;
pub use curate_core::global::{plan_tasks, run_task, TaskContext, TaskRef};
pub use curate_core::stats::TaskReport;
pub use curate_io::DirSink;

/// Why a pipeline could not be prepared or run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The spec, its inputs or its output are not usable; the message names the spec's file,
    /// line and column and what is wrong.
    #[error("{0}")]
    Config(String),
    /// Executing the plan failed (tasks, state, cancellation); committed tasks are kept for
    /// a resume.
    #[error("run of {spec} failed: {source}")]
    Run {
        /// The spec's file (or the name it was given).
        spec: String,
        /// What failed.
        source: ExecError,
    },
    /// The registry or the store refused or failed.
    #[error(transparent)]
    Datasets(#[from] curate_datasets::Error),
    /// The run executed, but recording it in the registry failed; its outputs are written.
    #[error("recording the run in the registry: {source}")]
    Record {
        /// What the run did.
        report: Box<RunReport>,
        /// What failed.
        source: curate_datasets::Error,
    },
}

/// A pipeline spec with the text it came from.
#[derive(Debug, Clone)]
pub struct Pipeline {
    spec: PipelineSpec,
    text: String,
    origin: PathBuf,
}

impl Pipeline {
    /// Parses YAML (or JSON, which is YAML too); `origin` names it in error messages.
    pub fn from_text(text: &str, origin: impl Into<PathBuf>) -> Result<Self, EngineError> {
        let origin = origin.into();
        let spec = PipelineSpec::parse(text, &origin).map_err(spec_errors)?;
        Ok(Pipeline { spec, text: text.to_string(), origin })
    }

    /// Reads and parses a spec file.
    pub fn load(path: &Path) -> Result<Self, EngineError> {
        let text = std::fs::read_to_string(path).map_err(|e| EngineError::Config(format!("{}: cannot read spec: {e}", path.display())))?;
        Self::from_text(&text, path)
    }

    /// The parsed spec.
    pub fn spec(&self) -> &PipelineSpec {
        &self.spec
    }

    /// Where the spec came from (its file, or the name it was given).
    pub fn origin(&self) -> &Path {
        &self.origin
    }
}

/// A pipeline checked against its inputs, output and operators, ready to run.
pub struct Prepared {
    /// The spec's text, recorded with the run.
    text: String,
    /// Where the spec came from.
    origin: PathBuf,
    /// The spec with a dataset input resolved to the version's files.
    spec: PipelineSpec,
    source: FileSource,
    plan: Plan,
    /// The dataset version read as input, resolved (`name@N`).
    parent: Option<String>,
    /// The step cache's size budget.
    cache_max_size: u64,
    /// Every task, computed once: a worker checks each task it runs against them.
    tasks: std::sync::OnceLock<Vec<TaskRef>>,
}

impl Prepared {
    /// The spec as it will run (a dataset input resolved to files).
    pub fn spec(&self) -> &PipelineSpec {
        &self.spec
    }

    /// The plan: steps, schemas, fingerprint.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Input shards, one task each.
    pub fn shards(&self) -> usize {
        self.source.shards().len()
    }

    /// The input, for running tasks one by one ([`run_task`]).
    pub fn source(&self) -> &dyn Source {
        &self.source
    }
}

/// How to run a prepared pipeline.
#[derive(Debug, Clone, Default)]
pub struct RunSettings {
    /// Worker threads; `None` uses every core.
    pub threads: Option<usize>,
    /// Keep the tasks an interrupted run of the same plan committed.
    pub resume: bool,
    /// Memory budget of global steps; `None` takes the spec's, else the engine default.
    pub memory_limit: Option<u64>,
    /// Compute every step, neither reusing nor storing step outputs.
    pub no_cache: bool,
    /// Neither record the run nor commit a version (implies `no_cache`).
    pub no_registry: bool,
    /// Stops the run between chunks when cancelled.
    pub cancel: CancelToken,
    /// The queued run (of a control plane) this run is, marked with its version in the
    /// transaction that commits it.
    pub job: Option<i64>,
    /// An incremental run of a watched pipeline: its version follows the last one.
    pub compose: Option<curate_datasets::Compose>,
}

/// What a run did.
#[derive(Debug)]
pub struct RunOutcome {
    /// Counters, per-step figures, files.
    pub report: RunReport,
    /// The registry's run, unless `no_registry`.
    pub run: Option<RunId>,
    /// The version holding the output (none without the registry, or for outputs that are
    /// not versioned yet).
    pub committed: Option<Committed>,
}

/// Runs pipelines against one project state directory and one set of operators.
pub struct Engine {
    home: Home,
    ops: Operators,
}

impl Engine {
    /// An engine over `home` with the operators of `ops`.
    pub fn new(home: Home, ops: Operators) -> Self {
        Engine { home, ops }
    }

    /// `$CURATE_HOME` (or `.curate`) with the built-in operators.
    pub fn from_env() -> Self {
        Engine::new(Home::from_env(), curate_ops::registry())
    }

    /// The project state directory.
    pub fn home(&self) -> &Home {
        &self.home
    }

    /// The operators pipelines may use.
    pub fn ops(&self) -> &Operators {
        &self.ops
    }

    /// Checks a pipeline fully (dataset input, input files, output location, operators,
    /// parameters, columns) and plans it; nothing is written.
    pub fn prepare(&self, pipeline: Pipeline) -> Result<Prepared, EngineError> {
        self.prepare_with(pipeline, true)
    }

    /// [`Engine::prepare`] for a worker joining a run whose output another process holds
    /// and checked: the output is not checked again (it is busy, by design).
    pub fn prepare_to_join(&self, pipeline: Pipeline) -> Result<Prepared, EngineError> {
        self.prepare_with(pipeline, false)
    }

    fn prepare_with(&self, pipeline: Pipeline, check_output: bool) -> Result<Prepared, EngineError> {
        let Pipeline { mut spec, text, origin } = pipeline;
        let cache_max_size = curate_core::cache::max_size(spec.cache.max_size).map_err(|e| EngineError::Config(e.to_string()))?;
        let mut parent = None;
        if let Some(reference) = spec.input.dataset.clone() {
            let at_dataset = |e: &dyn std::fmt::Display| EngineError::Config(spec.error_at("input.dataset", format!("input.dataset: {e}")).to_string());
            let version = self.home.registry_read_only().and_then(|reg| Ok(reg.version(&reference)?)).map_err(|e| at_dataset(&e))?;
            if version.files.is_empty() {
                return Err(at_dataset(&format!("{} holds no records", version.reference)));
            }
            // Every file is checked against the version's manifest before anything reads it.
            let files = self.home.verified_files(&version).map_err(|e| at_dataset(&e))?;
            // A version's files are all of one format, which their names carry.
            let parquet = files.iter().all(|f| f.ends_with(".parquet"));
            spec.input.path = Paths::Many(files);
            spec.input.format = parquet.then_some(InputFormat::Parquet);
            spec.input.id_field = Some(curate_core::record::ID.into());
            parent = Some(version.reference.to_string());
        }
        let source = FileSource::open(&spec.input).map_err(|e| {
            let at = if matches!(e, IoError::Format { .. }) { "input" } else { "input.path" };
            located(&spec, at, e)
        })?;
        if check_output {
            DirSink::check(&spec.output).map_err(|e| located(&spec, "output.path", e))?;
        }
        let steps = spec.build_steps(&self.ops, &source.column_names()).map_err(spec_errors)?;
        let settings = serde_json::json!({ "input": without_path(&spec.input), "output": without_path(&spec.output) });
        let mut plan = Plan::new(&spec.name, source.schema(), steps, &settings);
        plan.duplicate_ids = spec.input.id_field.is_some().then_some(spec.input.on_duplicate_id);
        Ok(Prepared { text, origin, spec, source, plan, parent, cache_max_size, tasks: std::sync::OnceLock::new() })
    }

    /// Runs a prepared pipeline: takes its output (refusing one another run holds), records
    /// the run, executes it, and commits the output as the next version of its dataset.
    pub fn run(&self, p: &Prepared, settings: &RunSettings, progress: &dyn Progress) -> Result<RunOutcome, EngineError> {
        let label = format!("a run of {} (spec {})", p.plan.name, p.origin.display());
        let sink = self.sink(p, &label, !settings.no_registry)?;
        self.run_into(p, &sink, settings, progress)
    }

    /// [`Engine::run`] into a sink that holds the output already: a queued run's last
    /// step, which (with `resume`) finds every task committed and only records and commits.
    pub fn run_into(&self, p: &Prepared, sink: &DirSink, settings: &RunSettings, progress: &dyn Progress) -> Result<RunOutcome, EngineError> {
        let spec_name = p.origin.display().to_string();
        let registry = if settings.no_registry { None } else { Some(self.home.registry()?) };
        let run = match &registry {
            Some(reg) => Some(curate_datasets::resume_or_start_run(reg, &p.plan, &p.text, &p.spec.output.path, settings.resume)?),
            None => None,
        };
        if let Some(run) = run {
            sink.describe_holder(&format!("run {run} of {} (spec {spec_name})", p.plan.name))
                .map_err(|e| located(&p.spec, "output.path", e))?;
        }
        let opts = self.run_options(p, settings);
        let result = execute(&p.plan, &p.source, sink, &opts, progress);
        if let Some(cache) = &opts.cache {
            // After every run that may have stored entries, failed ones included; eviction
            // failing costs disk space, not the run.
            match cache.prune(p.cache_max_size) {
                Ok(gone) if !gone.is_empty() => tracing::info!(
                    entries = gone.len(),
                    bytes = gone.iter().map(|e| e.bytes).sum::<u64>(),
                    max_size = p.cache_max_size,
                    "evicted least recently used step outputs"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not evict step outputs down to the cache budget"),
            }
        }
        let report = match result {
            Ok(r) => r,
            Err(source) => {
                if let (Some(reg), Some(run)) = (&registry, run) {
                    let _ = reg.finish_run(run, RunStatus::Failed);
                }
                return Err(EngineError::Run { spec: spec_name, source });
            }
        };
        let (Some(reg), Some(run)) = (&registry, run) else {
            return Ok(RunOutcome { report, run: None, committed: None });
        };
        let committed = self.record(reg, run, p, &report, settings);
        match committed {
            Ok(committed) => Ok(RunOutcome { report, run: Some(run), committed }),
            Err(source) => Err(EngineError::Record { report: Box::new(report), source }),
        }
    }

    /// The output of a prepared pipeline as its tasks write it: lineage sidecars naming the
    /// plan's operators and, with `store`, every data and lineage file added to the store
    /// of versions as its task commits. Takes the output's lock for `holder` (who is
    /// told to another run that finds it busy); a worker running single tasks
    /// ([`run_task`]) writes through the same sink.
    pub fn sink(&self, p: &Prepared, holder: &str, store: bool) -> Result<DirSink, EngineError> {
        let sink = DirSink::create(&p.spec.output, holder).map_err(|e| located(&p.spec, "output.path", e))?.with_operators(operators(&p.plan));
        Ok(if store { sink.with_store(self.home.store()?) } else { sink })
    }

    /// Every task of a prepared pipeline, stage by stage (see [`plan_tasks`]).
    pub fn tasks<'p>(&self, p: &'p Prepared) -> &'p [TaskRef] {
        p.tasks.get_or_init(|| plan_tasks(&p.plan, p.source.shards()))
    }

    /// A sink for a worker running tasks of a run whose output another process holds
    /// (see [`DirSink::join`]), adding its files to the store as they commit.
    pub fn join(&self, p: &Prepared) -> Result<DirSink, EngineError> {
        let sink = DirSink::join(&p.spec.output).map_err(|e| located(&p.spec, "output.path", e))?.with_operators(operators(&p.plan));
        Ok(sink.with_store(self.home.store()?))
    }

    /// Opens a queued run on its output before its tasks are handed out: with `resume`,
    /// what an earlier attempt committed is kept; otherwise the output is cleared.
    pub fn begin(&self, p: &Prepared, sink: &DirSink, resume: bool) -> Result<(), EngineError> {
        let opts = RunOptions { threads: 1, resume: true, memory_limit: None, cache: None, cancel: CancelToken::default() };
        let ctx = self.context(p, sink, &opts, &curate_core::exec::NoProgress)?;
        let keys: Vec<String> = self.tasks(p).iter().map(|t| t.key.clone()).collect();
        begin_run(&ctx, &keys, resume).map(drop).map_err(|source| EngineError::Run { spec: p.origin.display().to_string(), source })
    }

    /// Runs one task of a queued run and commits it, unless it committed already (a task
    /// handed out twice is committed once). `task` must be one of [`Engine::tasks`]: a
    /// different key means the input changed since the run was planned, which fails it.
    pub fn run_one(&self, p: &Prepared, sink: &DirSink, task: &TaskRef, settings: &RunSettings, progress: &dyn Progress) -> Result<TaskReport, EngineError> {
        let spec = p.origin.display().to_string();
        let failed = |e: String| EngineError::Run { spec: spec.clone(), source: ExecError::Tasks { failures: vec![e], total: 1 } };
        let n = p.source.shards().len();
        let planned = self.tasks(p).iter().find(|t| t.stage == task.stage && t.shard == task.shard);
        match planned {
            Some(t) if t.key == task.key => {}
            _ => return Err(failed(format!("stage {} task {}: the input changed since the run was planned ({n} shards now); retry the run", task.stage, task.shard))),
        }
        let opts = self.run_options(p, settings);
        let ctx = self.context(p, sink, &opts, progress)?;
        if settings.cancel.is_cancelled() {
            return Err(EngineError::Run { spec, source: ExecError::Cancelled { done: 0, total: 1 } });
        }
        let pool = op_pool(opts.threads);
        in_pool(pool.as_ref(), || commit_task(&ctx, task))
            .map_err(|e| failed(format!("stage {} task {} ({}): {e}", task.stage, task.shard, p.source.shards()[task.shard].file)))
    }

    /// Runs the reduce after `stage` of a queued run once every task of that stage committed.
    pub fn reduce(&self, p: &Prepared, sink: &DirSink, stage: usize, settings: &RunSettings) -> Result<(), EngineError> {
        let opts = self.run_options(p, settings);
        let ctx = self.context(p, sink, &opts, &curate_core::exec::NoProgress)?;
        let pool = op_pool(opts.threads);
        in_pool(pool.as_ref(), || reduce(&ctx, self.tasks(p), stage)).map_err(|source| EngineError::Run { spec: p.origin.display().to_string(), source })
    }

    fn context<'a>(&self, p: &'a Prepared, sink: &'a DirSink, opts: &'a RunOptions, progress: &'a dyn Progress) -> Result<TaskContext<'a>, EngineError> {
        TaskContext::new(&p.plan, &p.source, sink, opts, progress).map_err(|source| EngineError::Run { spec: p.origin.display().to_string(), source })
    }

    fn run_options(&self, p: &Prepared, settings: &RunSettings) -> RunOptions {
        RunOptions {
            threads: settings.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            resume: settings.resume,
            memory_limit: settings.memory_limit.or(p.spec.memory_limit.map(|b| b.0)),
            cache: (!settings.no_cache && !settings.no_registry).then(|| self.home.step_cache()),
            cancel: settings.cancel.clone(),
        }
    }

    fn record(&self, reg: &curate_registry::Registry, run: RunId, p: &Prepared, report: &RunReport, settings: &RunSettings) -> Result<Option<Committed>, curate_datasets::Error> {
        let sources = match p.parent {
            Some(_) => Vec::new(),
            None => curate_datasets::source_files(&p.source)?,
        };
        let record = RunRecord {
            run,
            dataset: p.spec.dataset_name(),
            plan: &p.plan,
            report,
            output_dir: Path::new(&p.spec.output.path),
            parents: p.parent.iter().cloned().collect(),
            sources,
            job: settings.job,
            shard_files: p.source.shards().iter().map(|s| s.file.clone()).collect(),
            compose: settings.compose.as_ref(),
        };
        curate_datasets::record_run(&self.home, reg, &record)
    }
}

/// The plan's operators as lineage sidecars record them.
fn operators(plan: &Plan) -> String {
    let ops: Vec<curate_lineage::OperatorInfo> = plan
        .steps
        .iter()
        .map(|s| curate_lineage::OperatorInfo { name: s.descriptor.name.to_string(), version: s.descriptor.version.to_string(), params: s.params.clone() })
        .collect();
    serde_json::to_string(&ops).unwrap_or_else(|_| "[]".into())
}

fn spec_errors(e: SpecErrors) -> EngineError {
    EngineError::Config(e.to_string())
}

fn located(spec: &PipelineSpec, path: &str, e: IoError) -> EngineError {
    EngineError::Config(spec.error_at(path, format!("{path}: {e}")).to_string())
}

/// The settings of an input or output without its location, which a plan's identity
/// leaves out (the content is identified by hashes, the output by where it is written).
fn without_path(v: &impl serde::Serialize) -> serde_json::Value {
    let mut v = serde_json::to_value(v).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        m.remove("path");
    }
    v
}
