//! The control plane's own tasks: planning a run (checking it, taking its output's lock,
//! queueing its map, reduce and commit tasks) and committing it (recording the run and
//! its version); and the reaper, which ends what outlived its lease.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use curate_engine::{DirSink, EngineError, Pipeline, Prepared, RunSettings};
use curate_registry::{Job, JobId, JobState, Lease, LeaseRequest, NewTask, Registry, RetryPolicy, TaskKind};
use serde_json::{json, Value};

use crate::{ServerError, Service};

/// How long the control plane's own tasks are leased: only it runs them, and at start
/// it takes back what an earlier instance held, so no other holder needs the lease to end.
const OWN_LEASE: Duration = Duration::from_secs(3600);

/// A running run whose output this server holds.
struct Held {
    prepared: Prepared,
    sink: DirSink,
}

/// Starts the orchestrator and the reaper threads.
pub(crate) fn start(service: Arc<Service>) -> Result<(), ServerError> {
    let reg = service.engine.home().registry()?;
    // Two control planes of one registry would plan and commit the same runs.
    let Some(role) = reg.lock_control_plane()? else {
        return Err(ServerError::AlreadyServed);
    };
    // What an earlier instance of the server held (its plans, commits and local
    // workers' tasks) died with it: back to the queue at once, not after the lease.
    let back = reg.requeue_held(&[TaskKind::Plan, TaskKind::Commit], &format!("server-{}-", curate_io::host_name()))?;
    if back > 0 {
        tracing::info!(tasks = back, "took back the tasks an earlier server held");
    }
    let reaper = service.clone();
    let reaper_reg = service.engine.home().registry()?;
    std::thread::Builder::new().name("reaper".into()).spawn(move || loop {
        match reaper_reg.reap(reaper.config.retry) {
            Ok(r) if !r.expired.is_empty() || !r.timed_out.is_empty() => {
                tracing::warn!(expired = r.expired.len(), timed_out = r.timed_out.len(), "reaped leases and runs");
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "reaping failed"),
        }
        std::thread::sleep(Duration::from_millis(500));
    })?;
    std::thread::Builder::new().name("orchestrator".into()).spawn(move || {
        let _role = role;
        orchestrate(&service, &reg)
    })?;
    Ok(())
}

fn orchestrate(s: &Service, reg: &Registry) {
    let mut held: HashMap<JobId, Held> = HashMap::new();
    let mut unheld: HashSet<JobId> = HashSet::new();
    loop {
        if let Err(e) = tend_locks(s, reg, &mut held, &mut unheld) {
            tracing::error!(error = %e, "checking held outputs failed");
        }
        let lease = reg.lease_task(&LeaseRequest { worker: &s.id, kinds: &[TaskKind::Plan, TaskKind::Commit], lease_ms: OWN_LEASE.as_millis() as i64, max_slots: None });
        match lease {
            Ok(Some(lease)) => {
                let outcome = match lease.task.kind {
                    TaskKind::Plan => plan(s, reg, &lease, &mut held),
                    _ => commit(s, reg, &lease, &mut held),
                };
                if let Err((e, permanent)) = outcome {
                    tracing::warn!(run = lease.job.id, task = lease.task.id, error = %e, "control plane task failed");
                    held.remove(&lease.job.id);
                    let policy = if permanent { RetryPolicy { max_attempts: 1, ..s.config.retry } } else { s.config.retry };
                    if let Err(e) = reg.fail_task(lease.task.id, &s.id, &e, policy) {
                        tracing::error!(error = %e, "cannot record the failure");
                    }
                }
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => {
                tracing::error!(error = %e, "cannot lease control plane tasks");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

/// Releases the outputs of runs that ended; takes again those of running runs this
/// server does not hold (after a restart), so no other run writes there meanwhile.
fn tend_locks(s: &Service, reg: &Registry, held: &mut HashMap<JobId, Held>, unheld: &mut HashSet<JobId>) -> Result<(), curate_registry::Error> {
    let ids: Vec<JobId> = held.keys().copied().collect();
    for id in ids {
        if reg.job(id)?.state.is_terminal() {
            held.remove(&id);
        }
    }
    for state in [JobState::Running, JobState::Cancelling] {
        for job in reg.jobs(Some(state), None, None, 1000)? {
            if held.contains_key(&job.id) || unheld.contains(&job.id) {
                continue;
            }
            let planned = reg.job_tasks(job.id)?.iter().any(|t| t.kind == TaskKind::Plan && t.state == "done");
            if !planned {
                continue;
            }
            match hold(s, &job) {
                Ok(h) => {
                    held.insert(job.id, h);
                }
                Err((e, _)) => {
                    tracing::warn!(run = job.id, error = %e, "cannot take the output of a running run back");
                    unheld.insert(job.id);
                }
            }
        }
    }
    Ok(())
}

type Failure = (String, bool);

fn engine_failure(e: EngineError) -> Failure {
    // A spec that does not check fails the run at once; anything else may pass on retry.
    let permanent = matches!(e, EngineError::Config(_)) && !e.to_string().contains("is in use by");
    (e.to_string(), permanent)
}

/// Prepares a run and takes its output.
fn hold(s: &Service, job: &Job) -> Result<Held, Failure> {
    let pipeline = Pipeline::from_text(&job.spec, format!("run {} of {}", job.id, job.pipeline)).map_err(engine_failure)?;
    let prepared = s.engine.prepare(pipeline).map_err(engine_failure)?;
    let sink = s.engine.sink(&prepared, &format!("run {} of {} (curate serve)", job.id, job.pipeline), true).map_err(engine_failure)?;
    Ok(Held { prepared, sink })
}

fn plan(s: &Service, reg: &Registry, lease: &Lease, held: &mut HashMap<JobId, Held>) -> Result<(), Failure> {
    let job = &lease.job;
    let h = match held.remove(&job.id) {
        Some(h) => h,
        None => hold(s, job)?,
    };
    // A retry (of the run or of this step) keeps what earlier attempts committed.
    let resume = job.attempt > 1 || lease.task.attempts > 0;
    s.engine.begin(&h.prepared, &h.sink, resume).map_err(engine_failure)?;
    let tasks = s.engine.tasks(&h.prepared);
    let stages = tasks.iter().map(|t| t.stage).max().map_or(1, |m| m + 1) as i64;
    let mut follow: Vec<NewTask> = tasks
        .iter()
        .map(|t| NewTask { kind: TaskKind::Map, wave: 2 * t.stage as i64 + 1, stage: t.stage as i64, shard: t.shard as i64, key: t.key.clone() })
        .collect();
    for stage in 0..stages - 1 {
        follow.push(NewTask { kind: TaskKind::Reduce, wave: 2 * stage + 2, stage, shard: 0, key: String::new() });
    }
    follow.push(NewTask { kind: TaskKind::Commit, wave: 2 * stages, stage: stages - 1, shard: 0, key: String::new() });
    reg.complete_task(lease.task.id, &json!({ "tasks": tasks.len(), "stages": stages }), &follow).map_err(|e| (e.to_string(), false))?;
    held.insert(job.id, h);
    Ok(())
}

fn commit(s: &Service, reg: &Registry, lease: &Lease, held: &mut HashMap<JobId, Held>) -> Result<(), Failure> {
    let job = &lease.job;
    let h = match held.remove(&job.id) {
        Some(h) => h,
        None => hold(s, job)?,
    };
    let result = if let Some(version) = &job.version {
        // Committed before a crash: the version and this run's mark were one transaction.
        json!({ "version": version })
    } else {
        let compose = match &job.watch {
            Some(increment) => Some(crate::watch::compose(reg, &job.pipeline, increment).map_err(|e| (e, false))?),
            None => None,
        };
        let settings = RunSettings { resume: true, threads: Some(s.config.task_threads.max(1)), job: Some(job.id), compose, ..Default::default() };
        let outcome = s.engine.run_into(&h.prepared, &h.sink, &settings, &curate_core::exec::NoProgress).map_err(engine_failure)?;
        let mut report = serde_json::to_value(&outcome.report).unwrap_or(Value::Null);
        if let Some(m) = report.as_object_mut() {
            // Per-file and per-task details stay in the output's run.json.
            m.remove("files");
            m.remove("task_cache");
        }
        json!({ "version": outcome.committed.map(|c| c.version.to_string()), "run": outcome.run, "report": report })
    };
    reg.complete_task(lease.task.id, &result, &[]).map_err(|e| (e.to_string(), false))?;
    drop(h);
    Ok(())
}
