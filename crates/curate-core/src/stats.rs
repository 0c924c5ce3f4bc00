//! Counters of a task and of a run, as written to `run.json`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::io::OutputFile;

/// Counters of one step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepStats {
    /// Operator name.
    pub op: String,
    /// Records that entered the step.
    #[serde(rename = "in")]
    pub records_in: u64,
    /// Records that left the step.
    #[serde(rename = "out")]
    pub records_out: u64,
    /// Dropped records by reason.
    pub dropped: BTreeMap<String, u64>,
    /// Records quarantined because the operator failed on their batch.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl StepStats {
    /// Adds another task's counters for the same step.
    pub fn merge(&mut self, other: &StepStats) {
        self.records_in += other.records_in;
        self.records_out += other.records_out;
        self.failed += other.failed;
        for (reason, n) in &other.dropped {
            *self.dropped.entry(reason.clone()).or_default() += n;
        }
    }
}

/// What one task did; persisted so an interrupted run can resume.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskReport {
    /// Task index.
    pub task: usize,
    /// Content key of the task (inputs, steps, parameters, output settings).
    pub key: String,
    /// Input file of the task's shard.
    pub file: String,
    /// Records parsed from the input.
    pub records_in: u64,
    /// Records kept.
    pub records_out: u64,
    /// Input records that could not be parsed.
    pub quarantined: u64,
    /// Input bytes read.
    pub bytes_in: u64,
    /// Records whose input id an earlier record of the task had.
    #[serde(default)]
    pub duplicate_ids: u64,
    /// Per-step counters.
    pub steps: Vec<StepStats>,
    /// Files the task published.
    pub files: Vec<OutputFile>,
    /// Per step: reused from the step cache or computed, and why (empty without a cache).
    #[serde(default)]
    pub cache: Vec<crate::cache::StepOutcome>,
}

/// Summary of a run, written as `run.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunReport {
    /// Pipeline name.
    pub pipeline: String,
    /// Records parsed from the input.
    pub records_in: u64,
    /// Records written to `data/`.
    pub records_out: u64,
    /// Input records written to `quarantine/`.
    pub quarantined: u64,
    /// Records written to `rejects/`.
    pub rejected: u64,
    /// Records whose input id an earlier record of the same input shard had (kept,
    /// quarantined or failing the run by `input.on_duplicate_id`).
    #[serde(default)]
    pub duplicate_ids: u64,
    /// Per-step counters, in pipeline order.
    pub steps: Vec<StepStats>,
    /// Wall-clock seconds of this invocation.
    pub elapsed_s: f64,
    /// Input bytes read (all tasks, including resumed ones).
    pub bytes_in: u64,
    /// Worker threads used.
    pub threads: usize,
    /// Tasks in the plan.
    pub tasks: usize,
    /// Tasks whose committed output was reused by `--resume`.
    pub tasks_resumed: usize,
    /// Every published file, in task order.
    pub files: Vec<OutputFile>,
    /// Per task, what the step cache did (in task order; empty without a cache).
    pub task_cache: Vec<Vec<crate::cache::StepOutcome>>,
    /// Engine version.
    pub curate_version: String,
}

impl RunReport {
    /// Aggregates task reports (in task order).
    pub fn from_tasks(pipeline: &str, step_names: &[&str], tasks: &[TaskReport]) -> Self {
        let mut steps: Vec<StepStats> =
            step_names.iter().map(|n| StepStats { op: n.to_string(), ..Default::default() }).collect();
        let mut r = RunReport {
            pipeline: pipeline.to_string(),
            tasks: tasks.len(),
            curate_version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        };
        for t in tasks {
            r.records_in += t.records_in;
            r.records_out += t.records_out;
            r.quarantined += t.quarantined;
            r.duplicate_ids += t.duplicate_ids;
            r.bytes_in += t.bytes_in;
            for (agg, s) in steps.iter_mut().zip(&t.steps) {
                agg.merge(s);
            }
            r.files.extend(t.files.iter().cloned());
            r.task_cache.push(t.cache.clone());
        }
        r.rejected = steps.iter().map(|s| s.dropped.values().sum::<u64>()).sum();
        r.steps = steps;
        r
    }

    /// Task steps whose output came from the step cache, and task steps computed.
    pub fn cache_counts(&self) -> (usize, usize) {
        let reused = self.task_cache.iter().flatten().filter(|o| o.reused).count();
        (reused, self.task_cache.iter().map(Vec::len).sum::<usize>() - reused)
    }
}
