//! `curate._native`: the Python package's bindings to the engine. A thin shell over
//! `curate-engine` (ARCHITECTURE.md §8): pipelines run, plan and split into tasks here,
//! Python operators join the operator registry at run time, and results cross as JSON
//! (reports, lineage) or Arrow (batches). The Python package (python/curate) holds the API.

mod pyop;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_pyarrow::FromPyArrow;
use curate_core::exec::{NoProgress, Progress};
use curate_datasets::Home;
use curate_engine::{CancelToken, DirSink, Engine, EngineError, Pipeline, Prepared, RunOutcome, RunSettings, TaskRef};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde_json::{json, Value};

use pyop::PyOpDef;

create_exception!(curate, CurateError, PyException, "Base class of curate's errors.");
create_exception!(curate, SpecError, CurateError, "A pipeline that does not check: the message names the spec, the step or field, and what is wrong.");
create_exception!(curate, RunError, CurateError, "A run that failed; tasks it committed are kept for `resume=True`.");
create_exception!(curate, RegistryError, CurateError, "The registry or the store of versions refused or failed.");

fn engine_err(e: EngineError) -> PyErr {
    match e {
        EngineError::Config(m) => SpecError::new_err(m),
        EngineError::Run { .. } => RunError::new_err(e.to_string()),
        EngineError::Datasets(_) | EngineError::Record { .. } => RegistryError::new_err(e.to_string()),
    }
}

fn registry_err(e: impl std::fmt::Display) -> PyErr {
    RegistryError::new_err(e.to_string())
}

fn home(dir: Option<PathBuf>) -> Home {
    match dir {
        Some(d) => Home::new(d),
        None => Home::from_env(),
    }
}

fn to_json(v: &impl serde::Serialize) -> PyResult<String> {
    serde_json::to_string(v).map_err(|e| CurateError::new_err(e.to_string()))
}

/// A pipeline checked against its input, output and operators (built-in and Python), in
/// this process: runs it whole, or task by task for an executor such as Ray.
#[pyclass(module = "curate._native")]
struct Run {
    engine: Engine,
    prepared: Prepared,
    /// The output, held (driver) or joined (worker) once a task-level call needs it.
    sink: Option<DirSink>,
}

#[pymethods]
impl Run {
    /// Parses and checks `spec` (JSON text) with the Python operators `ops`; `join` prepares
    /// a worker's copy of a run whose output another process holds.
    #[new]
    #[pyo3(signature = (spec, origin, ops, home_dir=None, join=false))]
    fn new(py: Python<'_>, spec: &str, origin: &str, ops: Vec<Bound<'_, PyAny>>, home_dir: Option<PathBuf>, join: bool) -> PyResult<Self> {
        let mut registry = curate_ops::registry();
        for op in &ops {
            registry.register(PyOpDef::extract(op)?.descriptor());
        }
        let engine = Engine::new(home(home_dir), registry);
        let pipeline = Pipeline::from_text(spec, origin).map_err(engine_err)?;
        let prepared = py
            .detach(|| if join { engine.prepare_to_join(pipeline) } else { engine.prepare(pipeline) })
            .map_err(engine_err)?;
        Ok(Run { engine, prepared, sink: None })
    }

    /// The plan as JSON: name, shards, stages, steps (operator, version, kind, parameters),
    /// output, and the schema of kept records.
    fn summary(&self) -> PyResult<String> {
        let plan = self.prepared.plan();
        let steps: Vec<Value> = plan
            .steps
            .iter()
            .map(|s| json!({"op": &*s.descriptor.name, "version": &*s.descriptor.version, "kind": s.descriptor.kind, "params": s.params}))
            .collect();
        let schema: Vec<Value> = plan.kept_schema.fields().iter().map(|f| json!({"name": f.name(), "type": f.data_type().to_string()})).collect();
        to_json(&json!({
            "name": plan.name,
            "shards": self.prepared.shards(),
            "stages": plan.globals.len() + 1,
            "steps": steps,
            "output": self.prepared.spec().output.path,
            "schema": schema,
            "fingerprint": plan.fingerprint,
        }))
    }

    /// Runs the whole pipeline here and commits its version; the GIL is released while the
    /// engine works and Ctrl-C cancels the run (committed tasks stay for `resume`).
    /// `progress`, when given, is called about every `interval` seconds (and once at the
    /// end) with a dict of tasks, records and input bytes done.
    #[pyo3(signature = (threads=None, resume=false, no_cache=false, no_registry=false, memory_limit=None, progress=None, interval=0.5))]
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        py: Python<'_>,
        threads: Option<usize>,
        resume: bool,
        no_cache: bool,
        no_registry: bool,
        memory_limit: Option<u64>,
        progress: Option<Bound<'_, PyAny>>,
        interval: f64,
    ) -> PyResult<String> {
        let settings = RunSettings { threads: threads.map(|t| t.max(1)), resume, no_cache, no_registry, memory_limit, ..Default::default() };
        let counters = Counters::default();
        let every = Duration::from_secs_f64(interval.max(0.05));
        let mut last = std::time::Instant::now();
        let mut report = |final_call: bool| -> PyResult<()> {
            match &progress {
                Some(f) if final_call || last.elapsed() >= every => {
                    last = std::time::Instant::now();
                    f.call1((counters.snapshot(py)?,)).map(drop)
                }
                _ => Ok(()),
            }
        };
        let outcome = interruptible(py, &settings.cancel, &mut report, || self.engine.run(&self.prepared, &settings, &counters))?;
        report(true)?;
        to_json(&outcome_json(&outcome))
    }

    /// Every task as `(stage, shard, key)`, stage by stage.
    fn tasks(&self) -> Vec<(usize, usize, String)> {
        self.engine.tasks(&self.prepared).iter().map(|t| (t.stage, t.shard, t.key.clone())).collect()
    }

    /// Takes the output for a distributed run (refusing one another run holds) and opens it:
    /// with `resume`, what an earlier attempt committed is kept.
    fn hold(&mut self, py: Python<'_>, holder: &str, resume: bool) -> PyResult<()> {
        let sink = self.engine.sink(&self.prepared, holder, true).map_err(engine_err)?;
        py.detach(|| self.engine.begin(&self.prepared, &sink, resume)).map_err(engine_err)?;
        self.sink = Some(sink);
        Ok(())
    }

    /// Runs one task (of [`Run::tasks`]) and commits it, unless it committed already;
    /// returns its report as JSON. A worker joins the held output on its first task.
    #[pyo3(signature = (stage, shard, key, threads=1, no_cache=false))]
    fn run_task(&mut self, py: Python<'_>, stage: usize, shard: usize, key: String, threads: usize, no_cache: bool) -> PyResult<String> {
        let (engine, prepared, sink) = self.joined()?;
        let task = TaskRef { stage, shard, key };
        let settings = RunSettings { threads: Some(threads.max(1)), no_cache, ..Default::default() };
        let report = interruptible(py, &settings.cancel, &mut |_| Ok(()), || engine.run_one(prepared, sink, &task, &settings, &NoProgress))?;
        to_json(&report)
    }

    /// Runs the reduce of the global step that ends `stage`, once its tasks committed,
    /// within `memory_limit` bytes (else the spec's, else the engine's default).
    #[pyo3(signature = (stage, memory_limit=None))]
    fn reduce(&mut self, py: Python<'_>, stage: usize, memory_limit: Option<u64>) -> PyResult<()> {
        let (engine, prepared, sink) = self.joined()?;
        let settings = RunSettings { memory_limit, ..Default::default() };
        interruptible(py, &settings.cancel, &mut |_| Ok(()), || engine.reduce(prepared, sink, stage, &settings))
    }

    /// Records the held run and commits its version, every task being committed.
    #[pyo3(signature = (threads=None))]
    fn commit(&self, py: Python<'_>, threads: Option<usize>) -> PyResult<String> {
        let sink = self.sink.as_ref().ok_or_else(|| RunError::new_err("commit needs the output held (`hold`) by this process"))?;
        let settings = RunSettings { resume: true, threads, ..Default::default() };
        let outcome = interruptible(py, &settings.cancel, &mut |_| Ok(()), || self.engine.run_into(&self.prepared, sink, &settings, &NoProgress))?;
        to_json(&outcome_json(&outcome))
    }

    /// Lets the output go without committing (a failed distributed run).
    fn release(&mut self) {
        self.sink = None;
    }
}

impl Run {
    /// The engine, the pipeline and its output, joined (without its lock) if not held.
    fn joined(&mut self) -> PyResult<(&Engine, &Prepared, &DirSink)> {
        if self.sink.is_none() {
            self.sink = Some(self.engine.join(&self.prepared).map_err(engine_err)?);
        }
        match &self.sink {
            Some(sink) => Ok((&self.engine, &self.prepared, sink)),
            None => Err(RunError::new_err("the output could not be joined")),
        }
    }
}

/// Progress counted from the engine's threads, read by the thread that holds the GIL.
#[derive(Default)]
struct Counters {
    tasks: AtomicU64,
    total_bytes: AtomicU64,
    records: AtomicU64,
    bytes: AtomicU64,
}

impl Progress for Counters {
    fn start(&self, tasks: usize, total_bytes: u64, done_bytes: u64) {
        self.tasks.store(tasks as u64, Ordering::Relaxed);
        self.total_bytes.store(total_bytes, Ordering::Relaxed);
        self.bytes.store(done_bytes, Ordering::Relaxed);
    }
    fn advance(&self, records: u64, bytes: u64) {
        self.records.fetch_add(records, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    fn finish(&self) {}
}

impl Counters {
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("tasks", self.tasks.load(Ordering::Relaxed))?;
        d.set_item("records", self.records.load(Ordering::Relaxed))?;
        d.set_item("bytes", self.bytes.load(Ordering::Relaxed))?;
        d.set_item("total_bytes", self.total_bytes.load(Ordering::Relaxed))?;
        Ok(d)
    }
}

/// Runs `work` on another thread with the GIL released, checking for Ctrl-C (and other
/// signals) and calling `tick` every 100 ms: an interrupt, or `tick` raising, cancels the
/// work, waits for it to stop, and raises.
fn interruptible<T: Send>(
    py: Python<'_>,
    cancel: &CancelToken,
    tick: &mut dyn FnMut(bool) -> PyResult<()>,
    work: impl FnOnce() -> Result<T, EngineError> + Send,
) -> PyResult<T> {
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel();
        scope.spawn(move || {
            let _ = tx.send(work());
        });
        let mut rx = rx;
        loop {
            // The receiver moves into the GIL-free closure and back (it may not be shared).
            let (got, back) = py.detach(move || (rx.recv_timeout(Duration::from_millis(100)), rx));
            rx = back;
            match got {
                Ok(result) => return result.map_err(engine_err),
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(RunError::new_err("the run's thread ended without a result")),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Err(interrupt) = py.check_signals().and_then(|()| tick(false)) {
                        cancel.cancel();
                        let _ = py.detach(move || rx.recv());
                        return Err(interrupt);
                    }
                }
            }
        }
    })
}

fn outcome_json(o: &RunOutcome) -> Value {
    json!({
        "report": o.report,
        "run": o.run,
        "version": o.committed.as_ref().map(|c| c.version.to_string()),
        "new_version": o.committed.as_ref().map(|c| c.new),
    })
}

/// Parses a YAML or JSON spec and returns it as JSON; errors name the line and column.
#[pyfunction]
fn parse_spec(text: &str, origin: &str) -> PyResult<String> {
    let p = Pipeline::from_text(text, origin).map_err(engine_err)?;
    to_json(p.spec().as_json())
}

/// Every operator a spec may name, with its parameters, as JSON.
#[pyfunction]
fn operators() -> PyResult<String> {
    let ops: Vec<Value> = curate_ops::registry()
        .all()
        .iter()
        .map(|d| json!({"name": d.name, "version": d.version, "kind": d.kind, "summary": d.summary, "params": d.params()}))
        .collect();
    to_json(&ops)
}

/// A dataset version as JSON (the CLI's `datasets show --json`), with `locations`: its
/// files, each checked against the version's manifest first.
#[pyfunction]
#[pyo3(signature = (reference, home_dir=None))]
fn dataset(py: Python<'_>, reference: &str, home_dir: Option<PathBuf>) -> PyResult<String> {
    let home = home(home_dir);
    py.detach(|| {
        let reg = home.registry_read_only().map_err(registry_err)?;
        let version = reg.version(reference).map_err(registry_err)?;
        let locations = home.verified_files(&version).map_err(registry_err)?;
        let mut v = curate_datasets::views::version_json(&version);
        v["locations"] = json!(locations);
        to_json(&v)
    })
}

/// Where a record came from and what became of it, as JSON; `None` for an unknown id.
#[pyfunction]
#[pyo3(signature = (id, home_dir=None))]
fn explain(py: Python<'_>, id: &str, home_dir: Option<PathBuf>) -> PyResult<Option<String>> {
    let home = home(home_dir);
    py.detach(|| {
        let reg = home.registry_read_only().map_err(registry_err)?;
        let e = curate_datasets::explain(&home, &reg, id).map_err(registry_err)?;
        e.map(|e| to_json(&curate_datasets::views::explain_json(&e))).transpose()
    })
}

/// Removes source records from every version derived from them, audited; returns what
/// it did as JSON.
#[pyfunction]
#[pyo3(signature = (ids, reason, actor, purge=false, home_dir=None))]
fn forget(py: Python<'_>, ids: Vec<String>, reason: &str, actor: &str, purge: bool, home_dir: Option<PathBuf>) -> PyResult<String> {
    let home = home(home_dir);
    py.detach(|| {
        let reg = home.registry().map_err(registry_err)?;
        let r = curate_datasets::forget(&home, &reg, &ids, reason, actor, purge).map_err(registry_err)?;
        let versions: Vec<Value> = r.versions.iter().map(|(v, n)| json!({"version": v.to_string(), "removed": n})).collect();
        let purged: Vec<Value> = r.purged.iter().map(|(v, n)| json!({"version": v.to_string(), "removed": n})).collect();
        to_json(&json!({"audit": r.audit, "unknown": r.unknown, "versions": versions, "purged": purged, "deleted_files": r.deleted_files}))
    })
}

/// The addresses of a batch's buffers as the engine sees them after import: equal to
/// pyarrow's when the batch crossed without a copy.
#[pyfunction]
fn buffer_addresses(batch: &Bound<'_, PyAny>) -> PyResult<Vec<usize>> {
    let batch = RecordBatch::from_pyarrow_bound(batch)?;
    let mut out = Vec::new();
    for column in batch.columns() {
        let data = column.to_data();
        out.extend(data.buffers().iter().map(|b| b.as_ptr() as usize));
    }
    Ok(out)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("CurateError", py.get_type::<CurateError>())?;
    m.add("SpecError", py.get_type::<SpecError>())?;
    m.add("RunError", py.get_type::<RunError>())?;
    m.add("RegistryError", py.get_type::<RegistryError>())?;
    m.add_class::<Run>()?;
    m.add_function(wrap_pyfunction!(parse_spec, m)?)?;
    m.add_function(wrap_pyfunction!(operators, m)?)?;
    m.add_function(wrap_pyfunction!(dataset, m)?)?;
    m.add_function(wrap_pyfunction!(explain, m)?)?;
    m.add_function(wrap_pyfunction!(forget, m)?)?;
    m.add_function(wrap_pyfunction!(buffer_addresses, m)?)?;
    Ok(())
}
