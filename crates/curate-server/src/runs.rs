//! Runs as the API shows them: a queued run with its counters (summed from the reports
//! of its finished tasks while it runs) and what it waits for.

use std::collections::BTreeMap;

use curate_registry::{Job, JobTask, Registry, TaskKind};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A run of the service.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct RunView {
    /// Run id.
    pub id: i64,
    /// Pipeline name.
    pub pipeline: String,
    /// `queued`, `running`, `cancelling`, `succeeded`, `failed` or `cancelled`.
    pub state: String,
    /// Higher runs first.
    pub priority: i64,
    /// 1, plus one per retry.
    pub attempt: i64,
    /// Who submitted it.
    pub actor: Option<String>,
    /// The client's idempotency key.
    pub idempotency_key: Option<String>,
    /// Submission time (RFC 3339).
    pub created_at: String,
    /// When its first task started.
    pub started_at: Option<String>,
    /// When it ended.
    pub ended_at: Option<String>,
    /// Input records read so far.
    pub records_in: u64,
    /// Records kept so far.
    pub records_out: u64,
    /// Records dropped or quarantined so far.
    pub records_rejected: u64,
    /// Per-step counters.
    pub steps: Vec<StepView>,
    /// Tasks done of all.
    pub progress: ProgressView,
    /// The version it committed (`name@N`).
    pub version: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// While queued or stalled: what it waits for.
    pub waiting_for: Option<String>,
    /// The registry run that executed it (`curate runs show`).
    pub engine_run: Option<i64>,
}

/// One step's counters.
#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct StepView {
    /// `NN-operator`.
    pub step: String,
    /// Records in.
    pub input: u64,
    /// Records kept.
    pub kept: u64,
    /// Records that failed in the step.
    pub errors: u64,
    /// Records dropped, by reason.
    pub dropped: BTreeMap<String, u64>,
}

/// Tasks done of all.
#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct ProgressView {
    /// Tasks done.
    pub tasks_done: i64,
    /// Tasks planned (0 until the run is planned).
    pub tasks_total: i64,
    /// `tasks_done / tasks_total`.
    pub fraction: f64,
}

/// A page of runs.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct RunPage {
    /// Newest first.
    pub runs: Vec<RunView>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// RFC 3339 of ms since the epoch.
pub(crate) fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(|| format!("{ms} ms"), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// The view of a run from its row and, for live counters, its tasks.
pub(crate) fn view(job: &Job, tasks: Option<&[JobTask]>, progress: (i64, i64), waiting_for: Option<String>) -> RunView {
    let mut v = RunView {
        id: job.id,
        pipeline: job.pipeline.clone(),
        state: job.state.as_str().into(),
        priority: job.priority,
        attempt: job.attempt,
        actor: job.actor.clone(),
        idempotency_key: job.idempotency_key.clone(),
        created_at: rfc3339(job.created_at_ms),
        started_at: job.started_at_ms.map(rfc3339),
        ended_at: job.ended_at_ms.map(rfc3339),
        records_in: 0,
        records_out: 0,
        records_rejected: 0,
        steps: Vec::new(),
        progress: ProgressView {
            tasks_done: progress.0,
            tasks_total: progress.1,
            fraction: if progress.1 > 0 { progress.0 as f64 / progress.1 as f64 } else { 0.0 },
        },
        version: job.version.clone(),
        error: job.error.clone(),
        waiting_for,
        engine_run: job.run,
    };
    if let Some(report) = &job.report {
        add_report(&mut v, report, true, true);
    } else if let Some(tasks) = tasks {
        let last = tasks.iter().filter(|t| t.kind == TaskKind::Map).map(|t| t.stage).max().unwrap_or(0);
        for t in tasks.iter().filter(|t| t.kind == TaskKind::Map && t.state == "done") {
            if let Some(r) = &t.result {
                add_report(&mut v, r, t.stage == 0, t.stage == last);
            }
        }
    }
    v
}

/// Adds a run's or a task's report (`records_in`, `records_out`, `quarantined`, `steps`).
fn add_report(v: &mut RunView, r: &serde_json::Value, first: bool, last: bool) {
    let n = |k: &str| r.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
    if first {
        v.records_in += n("records_in");
        v.records_rejected += n("quarantined");
    }
    if last {
        v.records_out += n("records_out");
    }
    let Some(steps) = r.get("steps").and_then(serde_json::Value::as_array) else { return };
    for (i, s) in steps.iter().enumerate() {
        if v.steps.len() <= i {
            let op = s.get("op").and_then(serde_json::Value::as_str).unwrap_or("step");
            v.steps.push(StepView { step: curate_datasets::step_label(i, op), ..Default::default() });
        }
        let step = &mut v.steps[i];
        let m = |k: &str| s.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        // Step figures are named as in run.json.
        step.input += m("in");
        step.kept += m("out");
        step.errors += m("errors");
        if let Some(d) = s.get("dropped").and_then(serde_json::Value::as_object) {
            for (reason, count) in d {
                let c = count.as_u64().unwrap_or(0);
                *step.dropped.entry(reason.clone()).or_default() += c;
                v.records_rejected += c;
            }
        }
    }
}

/// The full view of one run: live counters, progress and what it waits for.
pub(crate) fn detail(reg: &Registry, job: &Job, max_slots: Option<i64>) -> curate_registry::Result<RunView> {
    let tasks = reg.job_tasks(job.id)?;
    let live: Vec<&JobTask> = tasks.iter().filter(|t| t.state != "cancelled").collect();
    let progress = (live.iter().filter(|t| t.state == "done").count() as i64, live.len() as i64);
    let waiting = reg.job_waits_for(job, max_slots)?;
    Ok(view(job, Some(&tasks), progress, waiting))
}
