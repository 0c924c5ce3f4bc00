//! The run queue: idempotent submission, waves, leases, slot limits, fair sharing,
//! priorities, retries with dead-lettering, cancellation, and concurrent leasing that
//! hands every task out once. Every test runs against SQLite and PostgreSQL.

mod common;

use std::collections::BTreeSet;

use common::Backend;
use curate_registry::*;

backend_tests!(
    idempotency_keys_give_one_run,
    tasks_wait_for_earlier_waves_and_outputs_for_earlier_runs,
    slot_limits_priorities_and_fair_sharing,
    failed_tasks_back_off_then_dead_letter_the_run,
    expired_leases_are_reaped_and_late_completions_count_once,
    cancel_stops_queued_and_running_runs,
    concurrent_leasing_hands_each_task_out_once,
    tokens_are_scoped_revocable_and_calls_audited,
);

fn job<'a>(pipeline: &'a str, output: &'a str, key: Option<&'a str>, priority: i64) -> NewJob<'a> {
    NewJob { pipeline, spec: "name: x", output, idempotency_key: key, priority, actor: Some("t"), queue_timeout_ms: None, watch: None }
}

fn map(stage: i64, shard: i64) -> NewTask {
    NewTask { kind: TaskKind::Map, wave: 2 * stage + 1, stage, shard, key: format!("k{stage}-{shard}") }
}

fn commit(wave: i64) -> NewTask {
    NewTask { kind: TaskKind::Commit, wave, stage: 0, shard: 0, key: String::new() }
}

fn lease(reg: &Registry, worker: &str, kinds: &[TaskKind], max_slots: Option<i64>) -> Option<Lease> {
    reg.lease_task(&LeaseRequest { worker, kinds, lease_ms: 60_000, max_slots }).unwrap()
}

const PLAN: &[TaskKind] = &[TaskKind::Plan, TaskKind::Commit];
const WORK: &[TaskKind] = &[TaskKind::Map, TaskKind::Reduce];

/// Submits a run and completes its plan with `shards` map tasks and a commit.
fn planned(reg: &Registry, pipeline: &str, output: &str, shards: i64, priority: i64) -> JobId {
    let (j, _) = reg.submit_job(&job(pipeline, output, None, priority)).unwrap();
    let plan = lease(reg, "cp", PLAN, None).expect("the plan is leased");
    assert_eq!(plan.job.id, j.id);
    let mut follow: Vec<NewTask> = (0..shards).map(|s| map(0, s)).collect();
    follow.push(commit(2));
    assert!(reg.complete_task(plan.task.id, &serde_json::json!({}), &follow).unwrap());
    j.id
}

fn idempotency_keys_give_one_run(b: &mut Backend) {
    let reg = b.open();
    let (a, created) = reg.submit_job(&job("p", "/o", Some("k"), 0)).unwrap();
    assert!(created);
    let (again, created) = reg.submit_job(&job("p", "/o", Some("k"), 0)).unwrap();
    assert!(!created);
    assert_eq!(a.id, again.id);
    let (other, created) = reg.submit_job(&job("p", "/o", None, 0)).unwrap();
    assert!(created && other.id != a.id);
    assert_eq!(reg.jobs(None, None, None, 10).unwrap().len(), 2);
    assert_eq!(a.state, JobState::Queued);
}

fn tasks_wait_for_earlier_waves_and_outputs_for_earlier_runs(b: &mut Backend) {
    let reg = b.open();
    let first = planned(&reg, "p", "/out", 2, 0);
    // A second run into the same output waits for the first to end, and says so.
    let (second, _) = reg.submit_job(&job("p", "/out", None, 0)).unwrap();
    assert!(lease(&reg, "cp", PLAN, None).is_none(), "the second run's plan waits for the first run");
    assert!(reg.job_waits_for(&second, None).unwrap().unwrap().contains(&format!("run {first} writes the same output")));
    // The commit (wave 2) waits for both map tasks (wave 1).
    let m1 = lease(&reg, "w", WORK, None).unwrap();
    let m2 = lease(&reg, "w", WORK, None).unwrap();
    assert!(lease(&reg, "w", WORK, None).is_none());
    reg.complete_task(m1.task.id, &serde_json::json!({}), &[]).unwrap();
    assert!(lease(&reg, "cp", PLAN, None).is_none(), "a map task is still running");
    reg.complete_task(m2.task.id, &serde_json::json!({}), &[]).unwrap();
    let c = lease(&reg, "cp", PLAN, None).unwrap();
    assert_eq!(c.task.kind, TaskKind::Commit);
    reg.complete_task(c.task.id, &serde_json::json!({ "version": "p@1", "report": { "records_in": 5, "records_out": 4 } }), &[]).unwrap();
    let done = reg.job(first).unwrap();
    assert_eq!((done.state, done.version.as_deref()), (JobState::Succeeded, Some("p@1")));
    assert_eq!(reg.service_counter("records_out").unwrap(), 4);
    // Now the second run's plan goes.
    assert_eq!(lease(&reg, "cp", PLAN, None).unwrap().job.id, second.id);
}

fn slot_limits_priorities_and_fair_sharing(b: &mut Backend) {
    let reg = b.open();
    reg.put_pipeline("a", "name: a", None, Some(Some(1))).unwrap();
    let a = planned(&reg, "a", "/a", 3, 0);
    let b1 = planned(&reg, "b", "/b1", 3, 0);
    let b2 = planned(&reg, "b", "/b2", 3, 0);
    let urgent = planned(&reg, "c", "/c", 1, 10);
    // Priority first.
    assert_eq!(lease(&reg, "w", WORK, None).unwrap().job.id, urgent);
    // Then fair sharing: each run gets a slot before any gets a second.
    let next: BTreeSet<JobId> = (0..3).map(|_| lease(&reg, "w", WORK, None).unwrap().job.id).collect();
    assert_eq!(next, [a, b1, b2].into_iter().collect());
    // Pipeline a holds its limit of 1: the next slots go to b's runs only.
    for _ in 0..4 {
        assert_ne!(lease(&reg, "w", WORK, None).unwrap().job.id, a);
    }
    let a_job = reg.job(a).unwrap();
    assert!(reg.job_waits_for(&a_job, None).unwrap().unwrap().contains("limit of 1"));
    // A global limit: nothing more once max_slots tasks are held.
    let held = reg.held_tasks().unwrap().len() as i64;
    assert!(lease(&reg, "w", WORK, Some(held)).is_none());
    assert!(reg.job_waits_for(&a_job, Some(held)).unwrap().is_some());
}

fn failed_tasks_back_off_then_dead_letter_the_run(b: &mut Backend) {
    let reg = b.open();
    let id = planned(&reg, "p", "/o", 1, 0);
    let policy = RetryPolicy { max_attempts: 2, backoff_ms: 200 };
    let t = lease(&reg, "w", WORK, None).unwrap();
    reg.fail_task(t.task.id, "w", "boom", policy).unwrap();
    assert!(lease(&reg, "w", WORK, None).is_none(), "backing off");
    assert!(reg.job_waits_for(&reg.job(id).unwrap(), None).unwrap().unwrap().contains("retried in"));
    std::thread::sleep(std::time::Duration::from_millis(250));
    let t = lease(&reg, "w", WORK, None).unwrap();
    assert_eq!(t.task.attempts, 1);
    reg.fail_task(t.task.id, "w", "boom again", policy).unwrap();
    let j = reg.job(id).unwrap();
    assert_eq!(j.state, JobState::Failed);
    assert!(j.error.as_deref().unwrap().contains("failed 2 times; last error: boom again"), "{:?}", j.error);
    assert_eq!(reg.task_counts().unwrap().get("dead"), Some(&1));
    // Retry queues it again under its id.
    let again = reg.retry_job(id).unwrap();
    assert_eq!((again.state, again.attempt), (JobState::Queued, 2));
    assert!(lease(&reg, "cp", PLAN, None).is_some());
}

fn expired_leases_are_reaped_and_late_completions_count_once(b: &mut Backend) {
    let reg = b.open();
    let id = planned(&reg, "p", "/o", 1, 0);
    let t = reg.lease_task(&LeaseRequest { worker: "w1", kinds: WORK, lease_ms: 50, max_slots: None }).unwrap().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(80));
    let policy = RetryPolicy { max_attempts: 3, backoff_ms: 0 };
    assert_eq!(reg.reap(policy).unwrap().expired, vec![t.task.id]);
    assert_eq!(reg.service_counter("lease_expiries").unwrap(), 1);
    assert_eq!(reg.heartbeat(t.task.id, "w1", 1000).unwrap(), Heartbeat::Lost);
    let again = lease(&reg, "w2", WORK, None).unwrap();
    assert_eq!(again.task.id, t.task.id);
    // The first holder finishes late: its completion counts, the second's changes nothing.
    assert!(reg.complete_task(t.task.id, &serde_json::json!({ "by": "w1" }), &[]).unwrap());
    assert!(!reg.complete_task(t.task.id, &serde_json::json!({ "by": "w2" }), &[]).unwrap());
    let tasks = reg.job_tasks(id).unwrap();
    assert_eq!(tasks.iter().find(|x| x.id == t.task.id).unwrap().result, Some(serde_json::json!({ "by": "w1" })));
    // A queued run past its deadline fails.
    let (late, _) = reg.submit_job(&NewJob { queue_timeout_ms: Some(1), ..job("p", "/other", None, 0) }).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(10));
    assert_eq!(reg.reap(policy).unwrap().timed_out, vec![late.id]);
    assert_eq!(reg.job(late.id).unwrap().state, JobState::Failed);
}

fn cancel_stops_queued_and_running_runs(b: &mut Backend) {
    let reg = b.open();
    let (queued, _) = reg.submit_job(&job("p", "/q", None, 0)).unwrap();
    assert_eq!(reg.cancel_job(queued.id).unwrap().state, JobState::Cancelled);
    let running = planned(&reg, "p", "/r", 2, 0);
    let t = lease(&reg, "w", WORK, None).unwrap();
    assert_eq!(reg.cancel_job(running).unwrap().state, JobState::Cancelling);
    assert!(lease(&reg, "w", WORK, None).is_none(), "a cancelling run hands out nothing");
    assert_eq!(reg.heartbeat(t.task.id, "w", 1000).unwrap(), Heartbeat::Cancel);
    reg.fail_task(t.task.id, "w", "cancelled", RetryPolicy::default()).unwrap();
    assert_eq!(reg.job(running).unwrap().state, JobState::Cancelled);
    let events: Vec<String> = reg.job_events(running, 0, 100).unwrap().into_iter().filter(|e| e.kind == "state").map(|e| e.data["state"].as_str().unwrap().to_string()).collect();
    assert_eq!(events, ["queued", "running", "cancelling", "cancelled"]);
}

fn concurrent_leasing_hands_each_task_out_once(b: &mut Backend) {
    let reg = b.open();
    for i in 0..4 {
        planned(&reg, "p", &format!("/o{i}"), 10, 0);
    }
    let got = std::sync::Mutex::new(Vec::new());
    let location = b.location().to_string();
    std::thread::scope(|s| {
        for w in 0..4 {
            let (location, got) = (&location, &got);
            s.spawn(move || {
                let reg = Registry::open(location).unwrap();
                let worker = format!("w{w}");
                while let Some(l) = lease(&reg, &worker, WORK, None) {
                    got.lock().unwrap().push(l.task.id);
                    reg.complete_task(l.task.id, &serde_json::json!({}), &[]).unwrap();
                }
            });
        }
    });
    let mut got = got.into_inner().unwrap();
    assert_eq!(got.len(), 40);
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 40, "a task was handed out twice");
}

fn tokens_are_scoped_revocable_and_calls_audited(b: &mut Backend) {
    let reg = b.open();
    let t = reg.create_token("ci", Scope::Run, "hash-1").unwrap();
    assert_eq!(t.scope, Scope::Run);
    assert!(matches!(reg.create_token("ci", Scope::Read, "hash-2"), Err(Error::Conflict(_))));
    assert_eq!(reg.token_by_hash("hash-1").unwrap().unwrap().name, "ci");
    assert!(Scope::Admin > Scope::Run && Scope::Run > Scope::Read);
    assert!(reg.revoke_token("ci").unwrap());
    assert!(reg.token_by_hash("hash-1").unwrap().is_none());
    assert!(!reg.revoke_token("ci").unwrap());
    reg.create_token("ci", Scope::Admin, "hash-3").unwrap();
    reg.record_call("ci", "runs.create", "run 1", None).unwrap();
    reg.record_call("ci", "runs.cancel", "run 1", Some("{}")).unwrap();
    let calls = reg.api_calls(None, 10).unwrap();
    assert_eq!(calls.iter().map(|c| c.action.as_str()).collect::<Vec<_>>(), ["runs.cancel", "runs.create"]);
    assert_eq!(reg.api_calls(Some(calls[0].id), 10).unwrap().len(), 1);
}
