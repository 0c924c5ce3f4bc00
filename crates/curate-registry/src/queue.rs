//! The service's durable run queue: queued runs ("jobs") split into tasks that workers
//! hold by leases, beside the registry so a task's completion and the records it
//! produces commit together.
//!
//! A job's tasks come in waves: its plan (run by the control plane), the map tasks of each
//! stage, the reduce after a global step, and the commit. A task is handed out only when
//! every task of the job's earlier waves is done, and only to one holder at a time: the
//! lease is a deadline the holder extends with heartbeats; the reaper gives expired
//! leases to the next worker. Leasing runs under one lock (PostgreSQL's advisory lock,
//! SQLite's write lock): the global and per-pipeline slot limits and fair sharing are
//! decided on counts of held tasks, which concurrent leasers would each see stale. On
//! PostgreSQL the candidate rows are also taken `FOR UPDATE SKIP LOCKED`, so a lease
//! never waits on a row another transaction is changing.

use std::collections::BTreeMap;

use crate::db::{first, Cols, Db, Dialect, Row};
use crate::error::{Error, Result};
use crate::{now_ms, Registry};

/// Id of a queued run.
pub type JobId = i64;

/// Where a queued run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobState {
    /// Waiting for its first task to be taken.
    Queued,
    /// Tasks are running or waiting for slots.
    Running,
    /// Cancel was asked; running tasks are being stopped.
    Cancelling,
    /// Committed its version.
    Succeeded,
    /// A task failed for good, or the run waited past its deadline.
    Failed,
    /// Cancelled.
    Cancelled,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 6] =
        [JobState::Queued, JobState::Running, JobState::Cancelling, JobState::Succeeded, JobState::Failed, JobState::Cancelled];

    /// The stored (and API) name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Cancelling => "cancelling",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Parses a stored or user-given name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether the run is over.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed | JobState::Cancelled)
    }
}

/// What a task does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskKind {
    /// Prepares the run and opens its output; the control plane runs it.
    Plan,
    /// One shard through one stage's steps.
    Map,
    /// A global step's reduce between two stages.
    Reduce,
    /// Records the run and commits its version; the control plane runs it.
    Commit,
}

impl TaskKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Plan => "plan",
            TaskKind::Map => "map",
            TaskKind::Reduce => "reduce",
            TaskKind::Commit => "commit",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "plan" => TaskKind::Plan,
            "map" => TaskKind::Map,
            "reduce" => TaskKind::Reduce,
            "commit" => TaskKind::Commit,
            other => return Err(Error::Corrupt(format!("unknown task kind {other:?}"))),
        })
    }
}

/// A queued run.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// Pipeline name.
    pub pipeline: String,
    /// The spec text it runs.
    pub spec: String,
    /// Where it writes (runs into one output run one at a time).
    pub output: String,
    /// The client's idempotency key, if it gave one.
    pub idempotency_key: Option<String>,
    /// Where it stands.
    pub state: JobState,
    /// Higher runs first.
    pub priority: i64,
    /// 1, plus one per retry.
    pub attempt: i64,
    /// Who submitted it (a token's name).
    pub actor: Option<String>,
    /// Submission time (ms since the epoch).
    pub created_at_ms: i64,
    /// When its first task was taken.
    pub started_at_ms: Option<i64>,
    /// When it ended.
    pub ended_at_ms: Option<i64>,
    /// A queued run still waiting then fails.
    pub deadline_ms: Option<i64>,
    /// The registry's run that executed it.
    pub run: Option<crate::RunId>,
    /// The version it committed (`name@N`).
    pub version: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// The run's report (counters), once committed.
    pub report: Option<serde_json::Value>,
    /// For an incremental run of a watched pipeline: the version it builds on and the
    /// input files it adds and removes.
    pub watch: Option<serde_json::Value>,
}

/// A run to queue.
#[derive(Debug, Clone, Default)]
pub struct NewJob<'a> {
    /// Pipeline name.
    pub pipeline: &'a str,
    /// Spec text.
    pub spec: &'a str,
    /// Output location, as resolved for locking.
    pub output: &'a str,
    /// Repeating a key returns the run it created.
    pub idempotency_key: Option<&'a str>,
    /// Higher runs first.
    pub priority: i64,
    /// Who submits it.
    pub actor: Option<&'a str>,
    /// A run still queued after this long fails (no worker took it).
    pub queue_timeout_ms: Option<i64>,
    /// An incremental run of a watched pipeline (see [`Job::watch`]).
    pub watch: Option<&'a serde_json::Value>,
}

/// A task of a queued run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobTask {
    /// Its id.
    pub id: i64,
    /// Its run.
    pub job: JobId,
    /// What it does.
    pub kind: TaskKind,
    /// Stage (map, reduce).
    pub stage: i64,
    /// Shard (map).
    pub shard: i64,
    /// Content key of its output (map).
    pub key: String,
    /// queued, leased, done, dead or cancelled.
    pub state: String,
    /// Times it was handed out and did not finish.
    pub attempts: i64,
    /// Who holds it.
    pub worker: Option<String>,
    /// When its lease ends.
    pub lease_expires_ms: Option<i64>,
    /// Its last failure.
    pub error: Option<String>,
    /// What it reported when done.
    pub result: Option<serde_json::Value>,
}

/// A task to add to a run (by its plan).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTask {
    /// What it does.
    pub kind: TaskKind,
    /// Order: handed out once every task of lower waves is done.
    pub wave: i64,
    /// Stage.
    pub stage: i64,
    /// Shard.
    pub shard: i64,
    /// Content key.
    pub key: String,
}

/// What a worker asks for.
#[derive(Debug, Clone)]
pub struct LeaseRequest<'a> {
    /// The worker's id.
    pub worker: &'a str,
    /// Task kinds it runs.
    pub kinds: &'a [TaskKind],
    /// How long the lease lasts without a heartbeat.
    pub lease_ms: i64,
    /// Map and reduce tasks leased at once across all runs, at most.
    pub max_slots: Option<i64>,
}

/// A leased task with its run.
#[derive(Debug, Clone)]
pub struct Lease {
    /// The task.
    pub task: JobTask,
    /// Its run.
    pub job: Job,
}

/// What a heartbeat learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// Go on; the lease is extended.
    Continue,
    /// The run is being cancelled: stop.
    Cancel,
    /// The lease is gone (expired and taken by another, or the task ended).
    Lost,
}

/// How failures are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts before a task is dead-lettered and its run fails.
    pub max_attempts: i64,
    /// First backoff; doubled per attempt.
    pub backoff_ms: i64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_attempts: 3, backoff_ms: 1000 }
    }
}

/// One event of a run, for its event stream.
#[derive(Debug, Clone, PartialEq)]
pub struct JobEvent {
    /// Increasing over all runs; a stream resumes after it.
    pub id: i64,
    /// Its run.
    pub job: JobId,
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// `state`, `progress` or `task`.
    pub kind: String,
    /// What happened.
    pub data: serde_json::Value,
}

/// A registered worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerInfo {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Where it runs.
    pub host: String,
    /// Tasks it runs at once.
    pub slots: i64,
    /// When it registered.
    pub started_at_ms: i64,
    /// Its last lease or heartbeat.
    pub last_seen_ms: i64,
}

/// A registered pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineEntry {
    /// Its name (the spec's).
    pub name: String,
    /// Spec text.
    pub spec: String,
    /// Priority of its runs.
    pub priority: i64,
    /// Tasks of its runs held at once, at most.
    pub max_slots: Option<i64>,
    /// Registration time.
    pub created_at_ms: i64,
    /// Last update.
    pub updated_at_ms: i64,
}

/// What the reaper ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reaped {
    /// Tasks whose lease expired, given back to the queue (or dead-lettered).
    pub expired: Vec<i64>,
    /// Runs failed for waiting past their deadline.
    pub timed_out: Vec<JobId>,
}

const JOB_COLS: &str = "id, pipeline, spec, output, idempotency_key, state, priority, attempt, actor, created_at, \
                        started_at, ended_at, deadline, run_id, version, error, report, watch";
const TASK_COLS: &str = "id, job_id, kind, stage, shard, task_key, state, attempts, worker, lease_expires, error, result";

/// Advisory lock key that serialises leasing on PostgreSQL.
const LEASE_LOCK: i64 = 7_418_202_613;

fn job_row(row: Row) -> Result<Job> {
    let mut c = Cols::new(row);
    Ok(Job {
        id: c.int()?,
        pipeline: c.text()?,
        spec: c.text()?,
        output: c.text()?,
        idempotency_key: c.opt_text()?,
        state: {
            let s = c.text()?;
            JobState::parse(&s).ok_or_else(|| Error::Corrupt(format!("unknown job state {s:?}")))?
        },
        priority: c.int()?,
        attempt: c.int()?,
        actor: c.opt_text()?,
        created_at_ms: c.int()?,
        started_at_ms: c.opt_int()?,
        ended_at_ms: c.opt_int()?,
        deadline_ms: c.opt_int()?,
        run: c.opt_int()?,
        version: c.opt_text()?,
        error: c.opt_text()?,
        report: c.opt_text()?.map(|t| serde_json::from_str(&t)).transpose()?,
        watch: c.opt_text()?.map(|t| serde_json::from_str(&t)).transpose()?,
    })
}

fn task_row(row: Row) -> Result<JobTask> {
    let mut c = Cols::new(row);
    Ok(JobTask {
        id: c.int()?,
        job: c.int()?,
        kind: TaskKind::parse(&c.text()?)?,
        stage: c.int()?,
        shard: c.int()?,
        key: c.text()?,
        state: c.text()?,
        attempts: c.int()?,
        worker: c.opt_text()?,
        lease_expires_ms: c.opt_int()?,
        error: c.opt_text()?,
        result: c.opt_text()?.map(|t| serde_json::from_str(&t)).transpose()?,
    })
}

fn load_job(db: &mut dyn Db, id: JobId) -> Result<Job> {
    let rows = db.query(&format!("SELECT {JOB_COLS} FROM jobs WHERE id = ?"), &[id.into()])?;
    rows.into_iter().next().map(job_row).transpose()?.ok_or(Error::JobNotFound(id))
}

fn load_task(db: &mut dyn Db, id: i64) -> Result<JobTask> {
    let rows = db.query(&format!("SELECT {TASK_COLS} FROM job_tasks WHERE id = ?"), &[id.into()])?;
    rows.into_iter().next().map(task_row).transpose()?.ok_or(Error::TaskNotFound(id))
}

fn event(db: &mut dyn Db, job: JobId, kind: &str, data: &serde_json::Value) -> Result<()> {
    db.execute(
        "INSERT INTO job_events (job_id, at, kind, data) VALUES (?, ?, ?, ?)",
        &[job.into(), now_ms().into(), kind.into(), data.to_string().into()],
    )?;
    Ok(())
}

/// Moves a run to `state` (stamping its end when terminal) and records the event.
fn set_state(db: &mut dyn Db, job: JobId, state: JobState, error: Option<&str>) -> Result<()> {
    let ended = state.is_terminal().then(now_ms);
    db.execute(
        "UPDATE jobs SET state = ?, ended_at = COALESCE(?, ended_at), error = COALESCE(?, error) WHERE id = ?",
        &[state.as_str().into(), ended.into(), error.into(), job.into()],
    )?;
    if state.is_terminal() {
        db.execute(
            "UPDATE job_tasks SET state = 'cancelled', worker = NULL, lease_expires = NULL WHERE job_id = ? AND state IN ('queued', 'leased')",
            &[job.into()],
        )?;
    }
    let mut data = serde_json::json!({ "state": state.as_str() });
    if let Some(e) = error {
        data["error"] = e.into();
    }
    event(db, job, "state", &data)
}

fn bump(db: &mut dyn Db, counter: &str, by: i64) -> Result<()> {
    db.execute(
        "INSERT INTO service_counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = service_counters.value + excluded.value",
        &[counter.into(), by.into()],
    )?;
    Ok(())
}

/// A cancelling run whose tasks all stopped is cancelled.
fn settle_cancel(db: &mut dyn Db, job: JobId) -> Result<()> {
    let st = load_job(db, job)?.state;
    if st == JobState::Cancelling {
        let held = first(db.query("SELECT COUNT(*) FROM job_tasks WHERE job_id = ? AND state = 'leased'", &[job.into()])?);
        if held.map_or(Ok(0), |v| v.int())? == 0 {
            set_state(db, job, JobState::Cancelled, None)?;
        }
    }
    Ok(())
}

/// Counts a failed attempt of `task`: back to the queue after a backoff, or dead and its
/// run failed once it has used its attempts.
fn fail_attempt(db: &mut dyn Db, task: &JobTask, error: &str, policy: RetryPolicy) -> Result<()> {
    let attempts = task.attempts + 1;
    if attempts >= policy.max_attempts {
        db.execute(
            "UPDATE job_tasks SET state = 'dead', attempts = ?, error = ?, worker = NULL, lease_expires = NULL WHERE id = ?",
            &[attempts.into(), error.into(), task.id.into()],
        )?;
        let what = match task.kind {
            TaskKind::Map => format!("stage {} task {}", task.stage, task.shard),
            TaskKind::Reduce => format!("the reduce after stage {}", task.stage),
            k => format!("its {} step", k.as_str()),
        };
        let message = format!("{what} failed {attempts} times; last error: {error}");
        event(db, task.job, "task", &serde_json::json!({ "task": task.id, "state": "dead", "error": error }))?;
        let job = load_job(db, task.job)?;
        if !job.state.is_terminal() {
            let state = if job.state == JobState::Cancelling { JobState::Cancelled } else { JobState::Failed };
            set_state(db, task.job, state, Some(&message))?;
        }
        return Ok(());
    }
    // Doubling backoff: 1 s, 2 s, 4 s, ... by default.
    let delay = policy.backoff_ms.saturating_mul(1 << (attempts - 1).clamp(0, 20));
    db.execute(
        "UPDATE job_tasks SET state = 'queued', attempts = ?, error = ?, worker = NULL, lease_expires = NULL, not_before = ? WHERE id = ?",
        &[attempts.into(), error.into(), (now_ms() + delay).into(), task.id.into()],
    )?;
    event(db, task.job, "task", &serde_json::json!({ "task": task.id, "state": "queued", "attempts": attempts, "error": error }))?;
    settle_cancel(db, task.job)
}

impl Registry {
    /// Queues a run, or returns the run an earlier call with the same idempotency key
    /// created (`false`).
    pub fn submit_job(&self, j: &NewJob<'_>) -> Result<(Job, bool)> {
        self.write(|db| {
            let now = now_ms();
            let rows = db.query(
                "INSERT INTO jobs (pipeline, spec, output, idempotency_key, state, priority, actor, created_at, deadline, watch) \
                 VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
                &[
                    j.pipeline.into(),
                    j.spec.into(),
                    j.output.into(),
                    j.idempotency_key.into(),
                    j.priority.into(),
                    j.actor.into(),
                    now.into(),
                    j.queue_timeout_ms.map(|t| now + t).into(),
                    j.watch.map(ToString::to_string).into(),
                ],
            )?;
            let Some(id) = first(rows) else {
                let rows = db.query(&format!("SELECT {JOB_COLS} FROM jobs WHERE idempotency_key = ?"), &[j.idempotency_key.into()])?;
                let job = rows.into_iter().next().map(job_row).transpose()?;
                return job.map(|j| (j, false)).ok_or_else(|| Error::Corrupt("idempotency key conflict without a run".into()));
            };
            let id = id.int()?;
            insert_tasks(db, id, &[NewTask { kind: TaskKind::Plan, wave: 0, stage: 0, shard: 0, key: String::new() }])?;
            event(db, id, "state", &serde_json::json!({ "state": "queued" }))?;
            Ok((load_job(db, id)?, true))
        })
    }

    /// One queued run.
    pub fn job(&self, id: JobId) -> Result<Job> {
        self.read(|db| load_job(db, id))
    }

    /// Queued runs, newest first: those in `state` and of `pipeline` when given, with ids
    /// below `before` (a cursor), at most `limit`.
    pub fn jobs(&self, state: Option<JobState>, pipeline: Option<&str>, before: Option<JobId>, limit: i64) -> Result<Vec<Job>> {
        self.read(|db| {
            let mut sql = format!("SELECT {JOB_COLS} FROM jobs WHERE 1 = 1");
            let mut params = Vec::new();
            if let Some(s) = state {
                sql.push_str(" AND state = ?");
                params.push(s.as_str().into());
            }
            if let Some(p) = pipeline {
                sql.push_str(" AND pipeline = ?");
                params.push(p.into());
            }
            if let Some(b) = before {
                sql.push_str(" AND id < ?");
                params.push(b.into());
            }
            sql.push_str(" ORDER BY id DESC LIMIT ?");
            params.push(limit.into());
            db.query(&sql, &params)?.into_iter().map(job_row).collect()
        })
    }

    /// Queued runs per state.
    pub fn job_counts(&self) -> Result<BTreeMap<JobState, i64>> {
        self.read(|db| {
            let mut out = BTreeMap::new();
            for row in db.query("SELECT state, COUNT(*) FROM jobs GROUP BY state", &[])? {
                let mut c = Cols::new(row);
                let s = c.text()?;
                out.insert(JobState::parse(&s).ok_or_else(|| Error::Corrupt(format!("unknown job state {s:?}")))?, c.int()?);
            }
            Ok(out)
        })
    }

    /// The tasks of a run, in order.
    pub fn job_tasks(&self, job: JobId) -> Result<Vec<JobTask>> {
        self.read(|db| db.query(&format!("SELECT {TASK_COLS} FROM job_tasks WHERE job_id = ? ORDER BY wave, id"), &[job.into()])?.into_iter().map(task_row).collect())
    }

    /// Per run of `jobs`: tasks done and tasks in all (cancelled ones left out).
    pub fn job_progress_counts(&self, jobs: &[JobId]) -> Result<BTreeMap<JobId, (i64, i64)>> {
        if jobs.is_empty() {
            return Ok(BTreeMap::new());
        }
        self.read(|db| {
            let sql = format!(
                "SELECT job_id, SUM(CASE WHEN state = 'done' THEN 1 ELSE 0 END), COUNT(*) FROM job_tasks \
                 WHERE state <> 'cancelled' AND job_id IN ({}) GROUP BY job_id",
                crate::db::placeholders(jobs.len())
            );
            let params: Vec<crate::db::Value> = jobs.iter().map(|j| (*j).into()).collect();
            db.query(&sql, &params)?
                .into_iter()
                .map(|row| {
                    let mut c = Cols::new(row);
                    Ok((c.int()?, (c.int()?, c.int()?)))
                })
                .collect()
        })
    }

    /// Task counts per state over all runs.
    pub fn task_counts(&self) -> Result<BTreeMap<String, i64>> {
        self.read(|db| named_ints(db.query("SELECT state, COUNT(*) FROM job_tasks GROUP BY state", &[])?))
    }

    /// Events of a run after event `after`, oldest first, at most `limit`.
    pub fn job_events(&self, job: JobId, after: i64, limit: i64) -> Result<Vec<JobEvent>> {
        self.read(|db| {
            db.query("SELECT id, job_id, at, kind, data FROM job_events WHERE job_id = ? AND id > ? ORDER BY id LIMIT ?", &[job.into(), after.into(), limit.into()])?
                .into_iter()
                .map(|row| {
                    let mut c = Cols::new(row);
                    Ok(JobEvent { id: c.int()?, job: c.int()?, at_ms: c.int()?, kind: c.text()?, data: serde_json::from_str(&c.text()?)? })
                })
                .collect()
        })
    }

    /// Records a progress event of a run.
    pub fn job_progress(&self, job: JobId, data: &serde_json::Value) -> Result<()> {
        self.write(|db| event(db, job, "progress", data))
    }

    /// Hands the next task a worker may run to it, or `None`: the highest priority
    /// run first, then the run holding the fewest slots (fair sharing), oldest first;
    /// skipping runs whose output an earlier run still holds, runs of pipelines at their
    /// slot limit, and (for map and reduce tasks) everything once `max_slots` are held.
    pub fn lease_task(&self, req: &LeaseRequest<'_>) -> Result<Option<Lease>> {
        if req.kinds.is_empty() {
            return Ok(None);
        }
        self.write(|db| {
            if db.dialect() == Dialect::Postgres {
                db.execute(&format!("SELECT pg_advisory_xact_lock({LEASE_LOCK})"), &[])?;
            }
            let now = now_ms();
            let kinds = req.kinds.iter().map(|k| format!("'{}'", k.as_str())).collect::<Vec<_>>().join(", ");
            // Rows another transaction is changing (a cancel) are passed over, not waited for.
            let skip_locked = if db.dialect() == Dialect::Postgres { " FOR UPDATE OF t SKIP LOCKED" } else { "" };
            let candidates = db.query(
                &format!(
                    "SELECT t.id, j.pipeline, t.kind, \
                       (SELECT COUNT(*) FROM job_tasks l WHERE l.job_id = t.job_id AND l.state = 'leased') AS held \
                     FROM job_tasks t JOIN jobs j ON j.id = t.job_id \
                     WHERE t.state = 'queued' AND t.not_before <= ? AND t.kind IN ({kinds}) AND j.state IN ('queued', 'running') \
                       AND NOT EXISTS (SELECT 1 FROM job_tasks p WHERE p.job_id = t.job_id AND p.wave < t.wave AND p.state <> 'done') \
                       AND NOT EXISTS (SELECT 1 FROM jobs o WHERE o.output = j.output AND o.id < j.id \
                                       AND o.state IN ('queued', 'running', 'cancelling')) \
                     ORDER BY j.priority DESC, held ASC, t.job_id ASC, t.id ASC LIMIT 64{skip_locked}"
                ),
                &[now.into()],
            )?;
            if candidates.is_empty() {
                return Ok(None);
            }
            let held = pipeline_slots(db)?;
            let total: i64 = held.values().sum();
            let limits = named_ints(db.query("SELECT name, max_slots FROM pipelines WHERE max_slots IS NOT NULL", &[])?)?;
            for row in candidates {
                let mut c = Cols::new(row);
                let (task, pipeline, kind) = (c.int()?, c.text()?, TaskKind::parse(&c.text()?)?);
                let slot = matches!(kind, TaskKind::Map | TaskKind::Reduce);
                if slot {
                    if req.max_slots.is_some_and(|m| total >= m) {
                        continue;
                    }
                    if limits.get(&pipeline).is_some_and(|m| held.get(&pipeline).copied().unwrap_or(0) >= *m) {
                        continue;
                    }
                }
                db.execute(
                    "UPDATE job_tasks SET state = 'leased', worker = ?, lease_expires = ? WHERE id = ?",
                    &[req.worker.into(), (now + req.lease_ms).into(), task.into()],
                )?;
                let task = load_task(db, task)?;
                let job = load_job(db, task.job)?;
                if job.state == JobState::Queued {
                    db.execute("UPDATE jobs SET state = 'running', started_at = ? WHERE id = ?", &[now.into(), job.id.into()])?;
                    event(db, job.id, "state", &serde_json::json!({ "state": "running" }))?;
                }
                event(db, job.id, "task", &serde_json::json!({ "task": task.id, "kind": kind.as_str(), "stage": task.stage, "shard": task.shard, "state": "leased", "worker": req.worker }))?;
                db.execute("UPDATE workers SET last_seen = ? WHERE id = ?", &[now.into(), req.worker.into()])?;
                let job = load_job(db, task.job)?;
                return Ok(Some(Lease { task, job }));
            }
            Ok(None)
        })
    }

    /// Extends a task's lease by `lease_ms`, or says the holder should stop.
    pub fn heartbeat(&self, task: i64, worker: &str, lease_ms: i64) -> Result<Heartbeat> {
        self.write(|db| {
            let now = now_ms();
            db.execute("UPDATE workers SET last_seen = ? WHERE id = ?", &[now.into(), worker.into()])?;
            let t = load_task(db, task)?;
            if t.state != "leased" || t.worker.as_deref() != Some(worker) {
                return Ok(Heartbeat::Lost);
            }
            let job = load_job(db, t.job)?;
            if job.state == JobState::Cancelling {
                return Ok(Heartbeat::Cancel);
            }
            db.execute("UPDATE job_tasks SET lease_expires = ? WHERE id = ?", &[(now + lease_ms).into(), task.into()])?;
            Ok(Heartbeat::Continue)
        })
    }

    /// Marks a task done with what it reported, adding the tasks it planned. A late
    /// completion (the lease expired and the task went back to the queue) still counts:
    /// tasks commit their outputs idempotently, so the first completion wins and later
    /// ones change nothing. Returns whether this call completed it.
    pub fn complete_task(&self, task: i64, result: &serde_json::Value, follow: &[NewTask]) -> Result<bool> {
        self.write(|db| {
            let t = load_task(db, task)?;
            let job = load_job(db, t.job)?;
            if !matches!(t.state.as_str(), "queued" | "leased") || job.state.is_terminal() {
                return Ok(false);
            }
            db.execute(
                "UPDATE job_tasks SET state = 'done', worker = NULL, lease_expires = NULL, result = ? WHERE id = ?",
                &[result.to_string().into(), task.into()],
            )?;
            insert_tasks(db, t.job, follow)?;
            event(db, t.job, "task", &serde_json::json!({ "task": task, "kind": t.kind.as_str(), "stage": t.stage, "shard": t.shard, "state": "done" }))?;
            let counts = first_row_ints(db.query(
                "SELECT SUM(CASE WHEN state = 'done' THEN 1 ELSE 0 END), COUNT(*) FROM job_tasks WHERE job_id = ? AND state <> 'cancelled'",
                &[t.job.into()],
            )?)?;
            event(db, t.job, "progress", &serde_json::json!({ "tasks_done": counts.0, "tasks_total": counts.1 }))?;
            if job.state == JobState::Cancelling {
                settle_cancel(db, t.job)?;
            } else if t.kind == TaskKind::Commit {
                db.execute("UPDATE jobs SET report = ?, run_id = ? WHERE id = ?", &[
                    result.get("report").map(ToString::to_string).into(),
                    result.get("run").and_then(serde_json::Value::as_i64).into(),
                    t.job.into(),
                ])?;
                for counter in ["records_in", "records_out"] {
                    if let Some(n) = result.get("report").and_then(|r| r.get(counter)).and_then(serde_json::Value::as_i64) {
                        bump(db, counter, n)?;
                    }
                }
                if let Some(v) = result.get("version").and_then(serde_json::Value::as_str) {
                    db.execute("UPDATE jobs SET version = ? WHERE id = ?", &[v.into(), t.job.into()])?;
                }
                set_state(db, t.job, JobState::Succeeded, None)?;
            }
            Ok(true)
        })
    }

    /// Puts back in the queue, without counting an attempt, the tasks of `kinds` held
    /// by anyone and the tasks held by workers whose id starts with `worker_prefix`:
    /// what a control plane that died held, taken back when it starts again.
    pub fn requeue_held(&self, kinds: &[TaskKind], worker_prefix: &str) -> Result<u64> {
        self.write(|db| {
            let kinds = kinds.iter().map(|k| format!("'{}'", k.as_str())).collect::<Vec<_>>().join(", ");
            let kinds = if kinds.is_empty() { "''".to_string() } else { kinds };
            let pattern = format!("{}%", worker_prefix.replace('%', "\\%").replace('_', "\\_"));
            db.execute(
                &format!("UPDATE job_tasks SET state = 'queued', worker = NULL, lease_expires = NULL WHERE state = 'leased' AND (kind IN ({kinds}) OR worker LIKE ? ESCAPE '\\')"),
                &[pattern.into()],
            )
        })
    }

    /// Records a failed attempt of a task held by `worker`: retried after a backoff, or
    /// dead-lettered after `policy.max_attempts`, failing its run with the error.
    pub fn fail_task(&self, task: i64, worker: &str, error: &str, policy: RetryPolicy) -> Result<()> {
        self.write(|db| {
            let t = load_task(db, task)?;
            if t.state != "leased" || t.worker.as_deref() != Some(worker) {
                return Ok(());
            }
            if load_job(db, t.job)?.state == JobState::Cancelling {
                db.execute("UPDATE job_tasks SET state = 'cancelled', worker = NULL, lease_expires = NULL WHERE id = ?", &[task.into()])?;
                return settle_cancel(db, t.job);
            }
            fail_attempt(db, &t, error, policy)
        })
    }

    /// Ends what outlived its lease: tasks whose holder stopped heartbeating go back to
    /// the queue (an attempt each), runs queued past their deadline fail, and
    /// cancelling runs whose tasks all stopped become cancelled.
    pub fn reap(&self, policy: RetryPolicy) -> Result<Reaped> {
        self.write(|db| {
            let now = now_ms();
            let mut out = Reaped::default();
            let expired: Vec<JobTask> = db
                .query(&format!("SELECT {TASK_COLS} FROM job_tasks WHERE state = 'leased' AND lease_expires < ?"), &[now.into()])?
                .into_iter()
                .map(task_row)
                .collect::<Result<_>>()?;
            for t in &expired {
                let holder = t.worker.clone().unwrap_or_default();
                if load_job(db, t.job)?.state == JobState::Cancelling {
                    db.execute("UPDATE job_tasks SET state = 'cancelled', worker = NULL, lease_expires = NULL WHERE id = ?", &[t.id.into()])?;
                } else {
                    fail_attempt(db, t, &format!("worker {holder} stopped renewing its lease"), policy)?;
                }
                out.expired.push(t.id);
            }
            if !expired.is_empty() {
                bump(db, "lease_expiries", expired.len() as i64)?;
            }
            let late: Vec<JobId> = db
                .query("SELECT id FROM jobs WHERE state = 'queued' AND deadline IS NOT NULL AND deadline < ?", &[now.into()])?
                .into_iter()
                .map(|r| Cols::new(r).int())
                .collect::<Result<_>>()?;
            for id in &late {
                set_state(db, *id, JobState::Failed, Some("no worker took the run before its queue timeout; start workers (`curate worker`) or raise --queue-timeout"))?;
            }
            out.timed_out = late;
            let cancelling: Vec<JobId> = db.query("SELECT id FROM jobs WHERE state = 'cancelling'", &[])?.into_iter().map(|r| Cols::new(r).int()).collect::<Result<_>>()?;
            for id in cancelling {
                settle_cancel(db, id)?;
            }
            Ok(out)
        })
    }

    /// Asks a run to stop: a queued run is cancelled at once, a running one once its
    /// held tasks stop (their next heartbeat tells them). Ended runs stay as they are.
    pub fn cancel_job(&self, id: JobId) -> Result<Job> {
        self.write(|db| {
            let job = load_job(db, id)?;
            match job.state {
                JobState::Queued => set_state(db, id, JobState::Cancelled, None)?,
                JobState::Running => {
                    db.execute("UPDATE job_tasks SET state = 'cancelled' WHERE job_id = ? AND state = 'queued'", &[id.into()])?;
                    set_state(db, id, JobState::Cancelling, None)?;
                    settle_cancel(db, id)?;
                }
                _ => {}
            }
            load_job(db, id)
        })
    }

    /// Queues a failed or cancelled run again under its id (its committed tasks are kept
    /// by the engine's resume); other runs are returned unchanged.
    pub fn retry_job(&self, id: JobId) -> Result<Job> {
        self.write(|db| {
            let job = load_job(db, id)?;
            if !matches!(job.state, JobState::Failed | JobState::Cancelled) {
                return Ok(job);
            }
            db.execute("DELETE FROM job_tasks WHERE job_id = ?", &[id.into()])?;
            db.execute(
                "UPDATE jobs SET state = 'queued', attempt = attempt + 1, error = NULL, ended_at = NULL, started_at = NULL, deadline = NULL WHERE id = ?",
                &[id.into()],
            )?;
            insert_tasks(db, id, &[NewTask { kind: TaskKind::Plan, wave: 0, stage: 0, shard: 0, key: String::new() }])?;
            event(db, id, "state", &serde_json::json!({ "state": "queued", "retry": true }))?;
            load_job(db, id)
        })
    }

    /// What keeps a queued or running run from getting a slot now, if anything does:
    /// an earlier run holding its output, its pipeline's slot limit, all slots in use.
    pub fn job_waits_for(&self, job: &Job, max_slots: Option<i64>) -> Result<Option<String>> {
        Ok(self.jobs_wait_for(std::slice::from_ref(job), max_slots)?.pop().flatten())
    }

    /// [`Registry::job_waits_for`] of several runs, on one snapshot: what every run shares
    /// (slots held, limits, live workers) is read once.
    pub fn jobs_wait_for(&self, jobs: &[Job], max_slots: Option<i64>) -> Result<Vec<Option<String>>> {
        self.read(|db| {
            let now = now_ms();
            let held = pipeline_slots(db)?;
            let total: i64 = held.values().sum();
            let limits = named_ints(db.query("SELECT name, max_slots FROM pipelines WHERE max_slots IS NOT NULL", &[])?)?;
            let live = first(db.query("SELECT COUNT(*) FROM workers WHERE last_seen > ?", &[(now - 60_000).into()])?).map_or(Ok(0), |v| v.int())?;
            jobs.iter()
                .map(|job| {
                    if job.state.is_terminal() {
                        return Ok(None);
                    }
                    if let Some(other) = first(db.query(
                        "SELECT id FROM jobs WHERE output = ? AND id < ? AND state IN ('queued', 'running', 'cancelling') ORDER BY id LIMIT 1",
                        &[job.output.as_str().into(), job.id.into()],
                    )?) {
                        return Ok(Some(format!("run {} writes the same output ({}); runs into one output run one at a time", other.int()?, job.output)));
                    }
                    let mine = held.get(&job.pipeline).copied().unwrap_or(0);
                    if let Some(limit) = limits.get(&job.pipeline).filter(|limit| mine >= **limit) {
                        return Ok(Some(format!("pipeline {} holds its limit of {limit} slots", job.pipeline)));
                    }
                    if let Some(m) = max_slots.filter(|m| total >= *m) {
                        return Ok(Some(format!("all {m} worker slots are in use")));
                    }
                    let row = db.query(
                        "SELECT COUNT(*), MIN(CASE WHEN not_before > ? THEN not_before END) FROM job_tasks WHERE job_id = ? AND state = 'queued'",
                        &[now.into(), job.id.into()],
                    )?;
                    let mut c = Cols::new(row.into_iter().next().ok_or_else(|| Error::Corrupt("aggregate gave no row".into()))?);
                    let (ready, backoff) = (c.int()?, c.opt_int()?);
                    if let Some(at) = backoff {
                        return Ok(Some(format!("a failed task is retried in {} ms", at - now)));
                    }
                    if ready > 0 && live == 0 {
                        return Ok(Some("no worker is connected; start one with `curate worker --server URL`".into()));
                    }
                    Ok(None)
                })
                .collect()
        })
    }

    /// Tasks held now, with their runs' pipelines: who holds which slot.
    pub fn held_tasks(&self) -> Result<Vec<(JobTask, String)>> {
        self.tasks_with_pipelines("t.state = 'leased' ORDER BY t.lease_expires", i64::MAX)
    }

    /// Dead-lettered tasks (failed too often), newest first, with their runs' pipelines.
    pub fn dead_tasks(&self, limit: i64) -> Result<Vec<(JobTask, String)>> {
        self.tasks_with_pipelines("t.state = 'dead' ORDER BY t.id DESC", limit)
    }

    /// Tasks matching `condition` (on `t`, with its ORDER BY), with their runs' pipelines.
    fn tasks_with_pipelines(&self, condition: &str, limit: i64) -> Result<Vec<(JobTask, String)>> {
        let cols = TASK_COLS.split(", ").map(|c| format!("t.{c}")).collect::<Vec<_>>().join(", ");
        self.read(|db| {
            db.query(&format!("SELECT {cols}, j.pipeline FROM job_tasks t JOIN jobs j ON j.id = t.job_id WHERE {condition} LIMIT ?"), &[limit.into()])?
            .into_iter()
            .map(|mut row| {
                let pipeline = row.pop().ok_or_else(|| Error::Corrupt("short row".into()))?.text()?;
                Ok((task_row(row)?, pipeline))
            })
            .collect()
        })
    }

    /// Adds or refreshes a worker.
    pub fn register_worker(&self, w: &WorkerInfo) -> Result<()> {
        self.write(|db| {
            db.execute(
                "INSERT INTO workers (id, name, host, slots, started_at, last_seen) VALUES (?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, host = excluded.host, slots = excluded.slots, last_seen = excluded.last_seen",
                &[w.id.as_str().into(), w.name.as_str().into(), w.host.as_str().into(), w.slots.into(), w.started_at_ms.into(), now_ms().into()],
            )?;
            Ok(())
        })
    }

    /// The registered worker with this id.
    pub fn worker(&self, id: &str) -> Result<Option<WorkerInfo>> {
        self.read(|db| {
            db.query("SELECT id, name, host, slots, started_at, last_seen FROM workers WHERE id = ?", &[id.into()])?
                .into_iter()
                .next()
                .map(worker_row)
                .transpose()
        })
    }

    /// Workers seen within `since_ms` of now, most recent first.
    pub fn workers(&self, since_ms: i64) -> Result<Vec<WorkerInfo>> {
        self.read(|db| {
            db.query("SELECT id, name, host, slots, started_at, last_seen FROM workers WHERE last_seen > ? ORDER BY last_seen DESC", &[(now_ms() - since_ms).into()])?
                .into_iter()
                .map(worker_row)
                .collect()
        })
    }

    /// A service counter: `lease_expiries`, and `records_in` / `records_out` of succeeded runs.
    pub fn service_counter(&self, name: &str) -> Result<i64> {
        self.read(|db| first(db.query("SELECT value FROM service_counters WHERE name = ?", &[name.into()])?).map_or(Ok(0), |v| v.int()))
    }

    /// Registers a pipeline or replaces its spec; keeps its priority and limits unless given.
    pub fn put_pipeline(&self, name: &str, spec: &str, priority: Option<i64>, max_slots: Option<Option<i64>>) -> Result<PipelineEntry> {
        self.write(|db| {
            let now = now_ms();
            db.execute(
                "INSERT INTO pipelines (name, spec, priority, max_slots, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at",
                &[name.into(), spec.into(), priority.unwrap_or(0).into(), max_slots.flatten().into(), now.into(), now.into()],
            )?;
            if let Some(p) = priority {
                db.execute("UPDATE pipelines SET priority = ? WHERE name = ?", &[p.into(), name.into()])?;
            }
            if let Some(m) = max_slots {
                db.execute("UPDATE pipelines SET max_slots = ? WHERE name = ?", &[m.into(), name.into()])?;
            }
            load_pipeline(db, name)?.ok_or_else(|| Error::Corrupt("pipeline vanished".into()))
        })
    }

    /// One registered pipeline.
    pub fn pipeline(&self, name: &str) -> Result<Option<PipelineEntry>> {
        self.read(|db| load_pipeline(db, name))
    }

    /// Registered pipelines by name.
    pub fn pipelines(&self) -> Result<Vec<PipelineEntry>> {
        self.read(|db| {
            db.query(&format!("SELECT {PIPELINE_COLS} FROM pipelines ORDER BY name"), &[])?.into_iter().map(pipeline_row).collect()
        })
    }
}

const PIPELINE_COLS: &str = "name, spec, priority, max_slots, created_at, updated_at";

fn pipeline_row(row: Row) -> Result<PipelineEntry> {
    let mut c = Cols::new(row);
    Ok(PipelineEntry { name: c.text()?, spec: c.text()?, priority: c.int()?, max_slots: c.opt_int()?, created_at_ms: c.int()?, updated_at_ms: c.int()? })
}

fn load_pipeline(db: &mut dyn Db, name: &str) -> Result<Option<PipelineEntry>> {
    db.query(&format!("SELECT {PIPELINE_COLS} FROM pipelines WHERE name = ?"), &[name.into()])?.into_iter().next().map(pipeline_row).transpose()
}

/// Map and reduce tasks held now, per pipeline.
fn pipeline_slots(db: &mut dyn Db) -> Result<BTreeMap<String, i64>> {
    named_ints(db.query(
        "SELECT j.pipeline, COUNT(*) FROM job_tasks t JOIN jobs j ON j.id = t.job_id \
         WHERE t.state = 'leased' AND t.kind IN ('map', 'reduce') GROUP BY j.pipeline",
        &[],
    )?)
}

fn worker_row(row: Row) -> Result<WorkerInfo> {
    let mut c = Cols::new(row);
    Ok(WorkerInfo { id: c.text()?, name: c.text()?, host: c.text()?, slots: c.int()?, started_at_ms: c.int()?, last_seen_ms: c.int()? })
}

/// Rows of (name, integer), such as counts by state, as a map.
fn named_ints(rows: Vec<Row>) -> Result<BTreeMap<String, i64>> {
    rows.into_iter()
        .map(|row| {
            let mut c = Cols::new(row);
            Ok((c.text()?, c.int()?))
        })
        .collect()
}

/// The first two integer columns of the first row.
fn first_row_ints(rows: Vec<Row>) -> Result<(i64, i64)> {
    let row = rows.into_iter().next().ok_or_else(|| Error::Corrupt("aggregate gave no row".into()))?;
    let mut c = Cols::new(row);
    Ok((c.opt_int()?.unwrap_or(0), c.opt_int()?.unwrap_or(0)))
}

fn insert_tasks(db: &mut dyn Db, job: JobId, tasks: &[NewTask]) -> Result<()> {
    for t in tasks {
        db.execute(
            "INSERT INTO job_tasks (job_id, wave, kind, stage, shard, task_key, state) VALUES (?, ?, ?, ?, ?, ?, 'queued')",
            &[job.into(), t.wave.into(), t.kind.as_str().into(), t.stage.into(), t.shard.into(), t.key.as_str().into()],
        )?;
    }
    Ok(())
}
