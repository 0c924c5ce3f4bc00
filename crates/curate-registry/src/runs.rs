//! Runs: what was executed, with which spec and code, and how each step and task went.

use std::collections::BTreeMap;

use crate::db::{first, Cols};
use crate::error::{Error, Result};
use crate::types::{NewRun, Run, RunId, RunStatus, RunSummary, StepCounters, TaskDecision, TaskOutcome};
use crate::{now_ms, Registry};

impl Registry {
    /// Records the start of a run and returns its id.
    pub fn start_run(&self, run: &NewRun<'_>) -> Result<RunId> {
        self.write(|db| {
            let rows = db.query(
                "INSERT INTO runs (pipeline, spec, spec_hash, code_version, started_at, status) \
                 VALUES (?, ?, ?, ?, ?, 'running') RETURNING id",
                &[run.pipeline.into(), run.spec.into(), run.spec_hash.into(), run.code_version.into(), now_ms().into()],
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
            db.query(
                "SELECT id, pipeline, spec_hash, started_at, ended_at, status FROM runs ORDER BY id DESC LIMIT ?",
                &[i64::from(limit).into()],
            )?
            .into_iter()
            .map(|row| {
                let mut c = Cols::new(row);
                Ok(RunSummary {
                    id: c.int()?,
                    pipeline: c.text()?,
                    spec_hash: c.text()?,
                    started_at_ms: c.int()?,
                    ended_at_ms: c.opt_int()?,
                    status: RunStatus::parse(&c.text()?)?,
                })
            })
            .collect()
        })
    }

    /// Loads a run with its step counters and task outcomes.
    pub fn run(&self, id: RunId) -> Result<Run> {
        self.read(|db| {
            let row = db
                .query(
                    "SELECT pipeline, spec, spec_hash, code_version, started_at, ended_at, status \
                     FROM runs WHERE id = ?",
                    &[id.into()],
                )?
                .into_iter()
                .next()
                .ok_or(Error::RunNotFound(id))?;
            let mut c = Cols::new(row);
            let (pipeline, spec, spec_hash, code_version) = (c.text()?, c.text()?, c.text()?, c.text()?);
            let (started_at_ms, ended_at_ms) = (c.int()?, c.opt_int()?);
            let status = RunStatus::parse(&c.text()?)?;
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
            Ok(Run { id, pipeline, spec, spec_hash, code_version, started_at_ms, ended_at_ms, status, steps, tasks })
        })
    }
}

/// Fails with `RunNotFound` rather than a bare foreign-key error.
pub(crate) fn ensure_run(db: &mut dyn crate::db::Db, run: RunId) -> Result<()> {
    if db.query("SELECT 1 FROM runs WHERE id = ?", &[run.into()])?.is_empty() {
        return Err(Error::RunNotFound(run));
    }
    Ok(())
}
