//! Workers: take a map or reduce task, run it with the engine while a heartbeat keeps
//! its lease, report it done or failed. The same loop runs as threads of the server
//! (talking to the registry) and as `curate worker` (talking to the server's API).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use curate_engine::{CancelToken, DirSink, Engine, Pipeline, Prepared, RunSettings, TaskRef};
use curate_registry::{Heartbeat, LeaseRequest, Registry, TaskKind};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::problem::ApiError;
use crate::Service;

/// A task handed to a worker, with what it needs to run it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct LeasedTask {
    /// Task id.
    pub id: i64,
    /// Its run.
    pub run: i64,
    /// `map` or `reduce`.
    pub kind: String,
    /// Stage.
    pub stage: i64,
    /// Shard (map).
    pub shard: i64,
    /// Content key of the task (map): the worker checks its plan agrees.
    pub key: String,
    /// The run's spec.
    pub spec: String,
    /// Renew the lease well within this many ms.
    pub lease_ms: i64,
}

/// What a heartbeat answers.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct HeartbeatReply {
    /// `continue`, `cancel` (the run is being cancelled) or `lost` (the lease is gone).
    pub action: String,
}

/// Leases the next map or reduce task for `worker`.
pub(crate) fn lease(s: &Service, reg: &Registry, worker: &str) -> Result<Option<LeasedTask>, ApiError> {
    let lease_ms = s.config.lease.as_millis() as i64;
    let got = reg.lease_task(&LeaseRequest { worker, kinds: &[TaskKind::Map, TaskKind::Reduce], lease_ms, max_slots: s.config.max_slots })?;
    Ok(got.map(|l| LeasedTask {
        id: l.task.id,
        run: l.job.id,
        kind: l.task.kind.as_str().into(),
        stage: l.task.stage,
        shard: l.task.shard,
        key: l.task.key,
        spec: l.job.spec,
        lease_ms,
    }))
}

/// Renews `worker`'s lease of `task`.
pub(crate) fn heartbeat(s: &Service, reg: &Registry, task: i64, worker: &str) -> Result<HeartbeatReply, ApiError> {
    let action = match reg.heartbeat(task, worker, s.config.lease.as_millis() as i64)? {
        Heartbeat::Continue => "continue",
        Heartbeat::Cancel => "cancel",
        Heartbeat::Lost => "lost",
    };
    Ok(HeartbeatReply { action: action.into() })
}

/// The queue as a worker sees it.
trait TaskQueue: Sync {
    fn lease(&self) -> Result<Option<LeasedTask>, String>;
    fn heartbeat(&self, task: i64) -> Result<String, String>;
    fn complete(&self, task: i64, result: &Value) -> Result<(), String>;
    fn fail(&self, task: i64, error: &str) -> Result<(), String>;
}

/// A worker thread inside the server.
struct LocalQueue<'a> {
    service: &'a Service,
    reg: Registry,
    worker: String,
}

impl TaskQueue for LocalQueue<'_> {
    fn lease(&self) -> Result<Option<LeasedTask>, String> {
        lease(self.service, &self.reg, &self.worker).map_err(|e| e.detail)
    }
    fn heartbeat(&self, task: i64) -> Result<String, String> {
        heartbeat(self.service, &self.reg, task, &self.worker).map(|r| r.action).map_err(|e| e.detail)
    }
    fn complete(&self, task: i64, result: &Value) -> Result<(), String> {
        self.reg.complete_task(task, result, &[]).map(drop).map_err(|e| e.to_string())
    }
    fn fail(&self, task: i64, error: &str) -> Result<(), String> {
        self.reg.fail_task(task, &self.worker, error, self.service.config.retry).map_err(|e| e.to_string())
    }
}

/// Runs worker `n` of the server until the process ends.
pub(crate) fn run_local(service: &Service, n: usize) {
    let reg = match service.engine.home().registry() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "worker {n} cannot open the registry");
            return;
        }
    };
    let worker = format!("{}-w{n}", service.id);
    let now = crate::now_ms();
    let info = curate_registry::WorkerInfo { id: worker.clone(), name: format!("local-{n}"), host: curate_io::host_name(), slots: 1, started_at_ms: now, last_seen_ms: now };
    if let Err(e) = reg.register_worker(&info) {
        tracing::error!(error = %e, "worker {n} cannot register");
        return;
    }
    let queue = LocalQueue { service, reg, worker };
    work(&service.engine, &queue, service.config.task_threads, &AtomicBool::new(false));
}

/// A `curate worker` process's view of the queue: the server's API.
struct RemoteQueue {
    client: crate::client::Client,
    worker: String,
}

impl TaskQueue for RemoteQueue {
    fn lease(&self) -> Result<Option<LeasedTask>, String> {
        self.client.lease(&self.worker)
    }
    fn heartbeat(&self, task: i64) -> Result<String, String> {
        self.client.heartbeat(task, &self.worker)
    }
    fn complete(&self, task: i64, result: &Value) -> Result<(), String> {
        self.client.complete(task, &self.worker, result)
    }
    fn fail(&self, task: i64, error: &str) -> Result<(), String> {
        self.client.fail(task, &self.worker, error)
    }
}

/// Runs `slots` worker threads taking tasks from the server at `client` until `stop`.
pub fn run_remote(engine: &Engine, client: crate::client::Client, name: &str, slots: usize, task_threads: usize, stop: &AtomicBool) -> Result<(), crate::ServerError> {
    let registered = client.register_worker(name, slots as i64).map_err(crate::ServerError::Client)?;
    tracing::info!(worker = %registered.id, slots, "registered with the server");
    let queue = RemoteQueue { client, worker: registered.id };
    std::thread::scope(|scope| {
        for _ in 0..slots.max(1) {
            scope.spawn(|| work(engine, &queue, task_threads, stop));
        }
    });
    Ok(())
}

/// A run's prepared pipeline and joined sink, kept while the worker runs its tasks.
struct Joined {
    prepared: Prepared,
    sink: DirSink,
}

/// The worker loop: lease, run with heartbeats, report; idle waits grow to 1 s.
fn work(engine: &Engine, queue: &dyn TaskQueue, task_threads: usize, stop: &AtomicBool) {
    let mut joined: HashMap<i64, Arc<Joined>> = HashMap::new();
    let mut idle = Duration::from_millis(50);
    while !stop.load(Ordering::Relaxed) {
        let task = match queue.lease() {
            Ok(Some(t)) => t,
            Ok(None) => {
                std::thread::sleep(idle);
                idle = (idle * 2).min(Duration::from_secs(1));
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot lease a task; retrying");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        idle = Duration::from_millis(50);
        // A run's prepared pipeline is reused by its next tasks; older runs' are dropped.
        if !joined.contains_key(&task.run) {
            joined.retain(|run, _| *run > task.run - 16);
        }
        let outcome = run_with_heartbeat(engine, queue, &task, task_threads, &mut joined);
        let reported = match outcome {
            Ok(result) => queue.complete(task.id, &result),
            Err(e) => {
                tracing::warn!(task = task.id, run = task.run, error = %e, "task failed");
                joined.remove(&task.run);
                queue.fail(task.id, &e)
            }
        };
        if let Err(e) = reported {
            // The lease ends on its own and the task is handed out again; its output, if
            // committed, is reused then.
            tracing::warn!(task = task.id, error = %e, "cannot report the task's outcome");
        }
    }
}

fn run_with_heartbeat(engine: &Engine, queue: &dyn TaskQueue, task: &LeasedTask, task_threads: usize, joined: &mut HashMap<i64, Arc<Joined>>) -> Result<Value, String> {
    let cancel = CancelToken::default();
    let done = Mutex::new(false);
    let wake = std::sync::Condvar::new();
    let every = Duration::from_millis((task.lease_ms / 3).max(100) as u64);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut finished = done.lock().unwrap_or_else(|p| p.into_inner());
            while !*finished {
                let (guard, timeout) = wake.wait_timeout(finished, every).unwrap_or_else(|p| p.into_inner());
                finished = guard;
                if *finished || !timeout.timed_out() {
                    continue;
                }
                match queue.heartbeat(task.id) {
                    Ok(a) if a == "continue" => {}
                    Ok(a) => {
                        tracing::info!(task = task.id, action = %a, "stopping the task");
                        cancel.cancel();
                    }
                    Err(e) => tracing::warn!(task = task.id, error = %e, "heartbeat failed"),
                }
            }
        });
        let result = run_task(engine, task, task_threads, &cancel, joined);
        *done.lock().unwrap_or_else(|p| p.into_inner()) = true;
        wake.notify_all();
        result
    })
}

fn run_task(engine: &Engine, task: &LeasedTask, task_threads: usize, cancel: &CancelToken, joined: &mut HashMap<i64, Arc<Joined>>) -> Result<Value, String> {
    let j = match joined.get(&task.run) {
        Some(j) => j.clone(),
        None => {
            let pipeline = Pipeline::from_text(&task.spec, format!("run {}", task.run)).map_err(|e| e.to_string())?;
            let prepared = engine.prepare_to_join(pipeline).map_err(|e| e.to_string())?;
            let sink = engine.join(&prepared).map_err(|e| e.to_string())?;
            let j = Arc::new(Joined { prepared, sink });
            joined.insert(task.run, j.clone());
            j
        }
    };
    let settings = RunSettings { threads: Some(task_threads.max(1)), cancel: cancel.clone(), ..Default::default() };
    let index = |v: i64| usize::try_from(v).map_err(|_| format!("task {} has a negative stage or shard", task.id));
    match task.kind.as_str() {
        "map" => {
            let t = TaskRef { stage: index(task.stage)?, shard: index(task.shard)?, key: task.key.clone() };
            let r = engine.run_one(&j.prepared, &j.sink, &t, &settings, &curate_core::exec::NoProgress).map_err(|e| e.to_string())?;
            Ok(json!({ "records_in": r.records_in, "records_out": r.records_out, "quarantined": r.quarantined, "steps": r.steps, "files": r.files.len() }))
        }
        "reduce" => {
            engine.reduce(&j.prepared, &j.sink, index(task.stage)?, &settings).map_err(|e| e.to_string())?;
            Ok(json!({}))
        }
        other => Err(format!("workers do not run {other} tasks")),
    }
}
