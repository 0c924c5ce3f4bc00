//! Runs: what was executed, with which spec and code, and how each step and task went.

use std::collections::BTreeMap;

use crate::db::{first, lock_store, Cols, Row};
use crate::error::{Error, Result};
use crate::types::{NewRun, Run, RunId, RunOwner, RunStatus, RunSummary, StepCounters, TaskDecision, TaskOutcome};
use crate::{now_ms, Registry};

impl Registry {
    /// Records the start of a run and returns its id.
    pub fn start_run(&self, run: &NewRun<'_>) -> Result<RunId> {
        let owner = run.owner.as_ref();
        self.write(|db| {
            lock_store(db, false)?;
            let rows = db.query(
                "INSERT INTO runs (pipeline, spec, spec_hash, code_version, started_at, status, host, pid, pid_start, output) \
                 VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?) RETURNING id",
                &[
                    run.pipeline.into(),
                    run.spec.into(),
                    run.spec_hash.into(),
                    run.code_version.into(),
                    now_ms().into(),
                    owner.map(|o| o.host.as_str()).into(),
                    owner.map(|o| i64::from(o.pid)).into(),
                    owner.map(|o| o.start.as_str()).into(),
                    run.output.into(),
                ],
            )?;
            first(rows).ok_or_else(|| Error::Corrupt("INSERT RETURNING gave no row".into()))?.int()
        })
    }

    /// Stores (or replaces) the counters of one step of a run.
    pub fn record_step(&self, run: RunId, step: &str, counters: &StepCounters) -> Result<()> {
        let json = serde_json::to_string(counters)?;
        self.write(|db| {
            ensure_run(db, run)?;
            db.execute(
                "INSERT INTO run_steps (run_id, step, counters) VALUES (?, ?, ?) \
                 ON CONFLICT (run_id, step) DO UPDATE SET counters = excluded.counters",
                &[run.into(), step.into(), json.as_str().into()],
            )?;
            Ok(())
        })
    }

    /// Records task outcomes; a task key reported twice keeps the latest outcome.
    pub fn record_task_outcomes(&self, run: RunId, outcomes: &[TaskOutcome]) -> Result<()> {
        self.write(|db| {
            ensure_run(db, run)?;
            for t in outcomes {
                db.execute(
                    "INSERT INTO task_outcomes (run_id, task_key, step, decision, reason) VALUES (?, ?, ?, ?, ?) \
                     ON CONFLICT (run_id, task_key) DO UPDATE SET step = excluded.step, \
                     decision = excluded.decision, reason = excluded.reason",
                    &[
                        run.into(),
                        t.task_key.as_str().into(),
                        t.step.as_str().into(),
                        t.decision.as_str().into(),
                        t.reason.as_str().into(),
                    ],
                )?;
            }
            Ok(())
        })
    }

    /// Marks a run finished with `status` and stamps its end time.
    pub fn finish_run(&self, run: RunId, status: RunStatus) -> Result<()> {
        self.write(|db| {
            let n = db.execute(
                "UPDATE runs SET status = ?, ended_at = ? WHERE id = ?",
                &[status.as_str().into(), now_ms().into(), run.into()],
            )?;
            if n == 0 {
                return Err(Error::RunNotFound(run));
            }
            Ok(())
        })
    }

    /// The newest `limit` runs, newest first.
    pub fn runs(&self, limit: u32) -> Result<Vec<RunSummary>> {
        self.read(|db| {
            db.query(&format!("SELECT {SUMMARY} FROM runs ORDER BY id DESC LIMIT ?"), &[i64::from(limit).into()])?
                .into_iter()
                .map(summary)
                .collect()
        })
    }

    /// Runs recorded as running and not known to be abandoned, oldest first.
    pub fn running_runs(&self) -> Result<Vec<RunSummary>> {
        self.read(|db| {
            db.query(&format!("SELECT {SUMMARY} FROM runs WHERE {LIVE} ORDER BY id"), &[])?.into_iter().map(summary).collect()
        })
    }

    /// Marks a running run abandoned (its process is gone); false when it was not
    /// running any more, e.g. it finished in the meantime.
    pub fn mark_abandoned(&self, run: RunId) -> Result<bool> {
        let now = now_ms();
        self.write(|db| Ok(db.execute(&format!("UPDATE runs SET abandoned_at = ? WHERE id = ? AND {LIVE}"), &[now.into(), run.into()])? > 0))
    }

    /// The newest abandoned run of `pipeline` with this spec hash that wrote to
    /// `output`: the one a `--resume` into that output continues.
    pub fn abandoned_run(&self, pipeline: &str, spec_hash: &str, output: &str) -> Result<Option<RunId>> {
        self.read(|db| {
            first(db.query(
                "SELECT id FROM runs WHERE status = 'running' AND abandoned_at IS NOT NULL \
                 AND pipeline = ? AND spec_hash = ? AND output = ? ORDER BY id DESC LIMIT 1",
                &[pipeline.into(), spec_hash.into(), output.into()],
            )?)
            .map(|v| v.int())
            .transpose()
        })
    }

    /// Takes over an abandoned run for `owner`: it is running again, under the same id,
    /// so its counters, lineage and version land on the run the user started. False
    /// when the run is not abandoned (another process took it over first).
    pub fn resume_run(&self, run: RunId, owner: &RunOwner) -> Result<bool> {
        self.write(|db| {
            lock_store(db, false)?;
            let n = db.execute(
                "UPDATE runs SET abandoned_at = NULL, ended_at = NULL, host = ?, pid = ?, pid_start = ? \
                 WHERE id = ? AND status = 'running' AND abandoned_at IS NOT NULL",
                &[owner.host.as_str().into(), i64::from(owner.pid).into(), owner.start.as_str().into(), run.into()],
            )?;
            Ok(n > 0)
        })
    }

    /// Loads a run with its step counters and task outcomes.
    pub fn run(&self, id: RunId) -> Result<Run> {
        self.read(|db| {
            let row = db
                .query(
                    &format!(
                        "SELECT pipeline, spec, spec_hash, code_version, started_at, ended_at, {STATUS}, host, pid, pid_start, output \
                         FROM runs WHERE id = ?"
                    ),
                    &[id.into()],
                )?
                .into_iter()
                .next()
                .ok_or(Error::RunNotFound(id))?;
            let mut c = Cols::new(row);
            let (pipeline, spec, spec_hash, code_version) = (c.text()?, c.text()?, c.text()?, c.text()?);
            let (started_at_ms, ended_at_ms) = (c.int()?, c.opt_int()?);
            let status = RunStatus::parse(&c.text()?)?;
            let (owner, output) = (owner(&mut c)?, c.opt_text()?);
            let mut steps = BTreeMap::new();
            for row in db.query("SELECT step, counters FROM run_steps WHERE run_id = ?", &[id.into()])? {
                let mut c = Cols::new(row);
                let step = c.text()?;
                steps.insert(step, serde_json::from_str(&c.text()?)?);
            }
            let mut tasks = Vec::new();
            for row in db.query(
                "SELECT task_key, step, decision, reason FROM task_outcomes WHERE run_id = ? ORDER BY task_key",
                &[id.into()],
            )? {
                let mut c = Cols::new(row);
                tasks.push(TaskOutcome {
                    task_key: c.text()?,
                    step: c.text()?,
                    decision: TaskDecision::parse(&c.text()?)?,
                    reason: c.text()?,
                });
            }
            Ok(Run { id, pipeline, spec, spec_hash, code_version, started_at_ms, ended_at_ms, status, owner, output, steps, tasks })
        })
    }
}

/// The stored status as users see it: a running run whose process is known to be gone
/// is abandoned (see migration 3 for why that is a column of its own).
macro_rules! status_sql {
    () => {
        "CASE WHEN status = 'running' AND abandoned_at IS NOT NULL THEN 'abandoned' ELSE status END"
    };
}
const STATUS: &str = status_sql!();

/// Runs that are running and not abandoned.
pub(crate) const LIVE: &str = "status = 'running' AND abandoned_at IS NULL";

/// The columns [`summary`] reads.
const SUMMARY: &str = concat!("id, pipeline, spec_hash, started_at, ended_at, ", status_sql!(), ", host, pid, pid_start, output");

fn summary(row: Row) -> Result<RunSummary> {
    let mut c = Cols::new(row);
    Ok(RunSummary {
        id: c.int()?,
        pipeline: c.text()?,
        spec_hash: c.text()?,
        started_at_ms: c.int()?,
        ended_at_ms: c.opt_int()?,
        status: RunStatus::parse(&c.text()?)?,
        owner: owner(&mut c)?,
        output: c.opt_text()?,
    })
}

/// The owner columns (host, pid, pid_start); absent for runs recorded before them.
fn owner(c: &mut Cols) -> Result<Option<RunOwner>> {
    let (host, pid, start) = (c.opt_text()?, c.opt_int()?, c.opt_text()?);
    Ok(match (host, pid.and_then(|p| u32::try_from(p).ok()), start) {
        (Some(host), Some(pid), Some(start)) => Some(RunOwner { host, pid, start }),
        _ => None,
    })
}

/// Fails with `RunNotFound` rather than a bare foreign-key error.
pub(crate) fn ensure_run(db: &mut dyn crate::db::Db, run: RunId) -> Result<()> {
    if db.query("SELECT 1 FROM runs WHERE id = ?", &[run.into()])?.is_empty() {
        return Err(Error::RunNotFound(run));
    }
    Ok(())
}
