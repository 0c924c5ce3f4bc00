//! The run as a library: a pipeline from text, prepared, run with progress events and a
//! cancel token, recorded and committed; a cancelled run resumes to the same output.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use curate_core::exec::{ExecError, Progress};
use curate_datasets::Home;
use curate_engine::{CancelToken, Engine, EngineError, Pipeline, RunSettings};

fn corpus(dir: &Path, files: usize, lines: usize) {
    std::fs::create_dir_all(dir.join("in")).unwrap();
    for f in 0..files {
        let text: String = (0..lines)
            .map(|i| format!("{{\"id\":\"f{f}-{i}\",\"text\":\"{}\"}}\n", "word ".repeat(1 + (i * 7 + f) % 60)))
            .collect();
        std::fs::write(dir.join(format!("in/{f}.jsonl")), text).unwrap();
    }
}

fn yaml(dir: &Path, out: &str) -> String {
    format!(
        "name: lib\ninput:\n  path: {}/in/*.jsonl\n  id_field: id\nsteps:\n  - op: length_filter\n    min_chars: 40\noutput:\n  path: {}/{out}\n",
        dir.display(),
        dir.display()
    )
}

/// Counts progress events and cancels the run after `after` chunks.
struct CancelAfter {
    token: CancelToken,
    after: u64,
    chunks: AtomicU64,
}

impl Progress for CancelAfter {
    fn start(&self, _: usize, _: u64, _: u64) {}
    fn advance(&self, _: u64, _: u64) {
        if self.chunks.fetch_add(1, Ordering::Relaxed) + 1 >= self.after {
            self.token.cancel();
        }
    }
    fn finish(&self) {}
}

fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files.into_iter().map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(p).unwrap())).collect()
}

#[test]
fn a_pipeline_from_text_runs_commits_and_resumes_after_a_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    corpus(d, 6, 400);
    let engine = Engine::new(Home::new(d.join("home")), curate_ops::registry());

    // Uninterrupted: counters, the registry's run and the committed version.
    let p = engine.prepare(Pipeline::from_text(&yaml(d, "whole"), "lib.yaml").unwrap()).unwrap();
    assert_eq!(p.shards(), 6);
    let whole = engine.run(&p, &RunSettings { threads: Some(2), ..Default::default() }, &curate_core::exec::NoProgress).unwrap();
    assert_eq!(whole.report.records_in, 2400);
    let committed = whole.committed.expect("a Parquet output is committed");
    assert_eq!(committed.version.to_string(), "lib@1");
    assert!(whole.run.is_some());

    // Cancelled after the first chunk: an error saying so, committed tasks kept.
    let settings = RunSettings { threads: Some(1), no_registry: true, ..Default::default() };
    let progress = CancelAfter { token: settings.cancel.clone(), after: 1, chunks: AtomicU64::new(0) };
    let p = engine.prepare(Pipeline::from_text(&yaml(d, "cut"), "lib.yaml").unwrap()).unwrap();
    match engine.run(&p, &settings, &progress) {
        Err(EngineError::Run { source: ExecError::Cancelled { done, total }, .. }) => {
            assert!(done < total, "{done} of {total}");
        }
        other => panic!("expected a cancelled run, got {other:?}"),
    }
    // Resumed with a fresh token, it finishes what was left, byte-identical to the whole run.
    let fresh = RunSettings { resume: true, cancel: CancelToken::default(), ..settings.clone() };
    let resumed = engine.run(&p, &fresh, &curate_core::exec::NoProgress);
    let resumed = match resumed {
        Ok(r) => r,
        Err(e) => panic!("resume failed: {e}"),
    };
    assert!(resumed.report.tasks_resumed >= 1);
    assert_eq!(resumed.report.records_in, 2400);
    assert_eq!(tree(&d.join("cut/data")), tree(&d.join("whole/data")));

    // Spec errors come back located, as `curate validate` prints them.
    let bad = yaml(d, "x").replace("min_chars", "min_char");
    let err = engine.prepare(Pipeline::from_text(&bad, "bad.yaml").unwrap()).err().expect("a typo is refused");
    assert!(err.to_string().starts_with("bad.yaml:7:5: steps[0] (length_filter): unknown parameter `min_char`"), "{err}");
    assert!(err.to_string().contains("did you mean `min_chars`"), "{err}");
}

/// An operator defined at run time, as a Python function or a remote service would be.
struct DropContaining(String);

impl curate_core::operator::Operator for DropContaining {
    fn columns(&self) -> curate_core::operator::Columns {
        curate_core::operator::Columns { reads: vec!["text".into()], writes: Vec::new() }
    }

    fn process(&self, batch: arrow_array::RecordBatch) -> Result<curate_core::operator::OpOutput, curate_core::operator::OpError> {
        use arrow_array::cast::AsArray;
        let texts = batch.column_by_name("text").ok_or_else(|| curate_core::operator::OpError("no text".into()))?.as_string::<i32>();
        let mut verdicts = curate_core::operator::Verdicts::keep_all(batch.num_rows());
        for (i, t) in texts.iter().enumerate() {
            if t.is_some_and(|t| t.contains(&self.0)) {
                verdicts.drop_row(i, "drop_containing:match");
            }
        }
        Ok(curate_core::operator::OpOutput { batch, verdicts: Some(verdicts) })
    }
}

#[test]
fn operators_registered_at_run_time_run_like_built_ins() {
    use curate_core::operator::{OpDescriptor, OpKind, ParamError};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("in")).unwrap();
    std::fs::write(d.join("in/a.jsonl"), "{\"id\":\"a\",\"text\":\"keep me\"}\n{\"id\":\"b\",\"text\":\"drop me please\"}\n").unwrap();
    let mut ops = curate_ops::registry();
    let schema: schemars::Schema = serde_json::from_value(serde_json::json!({
        "type": "object",
        "properties": {"needle": {"type": "string", "description": "Records whose text holds it are dropped."}}
    }))
    .unwrap();
    let build: curate_core::operator::BuildFn = std::sync::Arc::new(|params: serde_json::Value, ctx: &curate_core::operator::BuildContext| {
        let needle = params.get("needle").and_then(|v| v.as_str()).ok_or_else(|| ParamError::Rejected("needle: a string is required".into()))?;
        // The build context names the pipeline and the step being built.
        if (ctx.pipeline.as_str(), ctx.step) != ("rt", 0) {
            return Err(ParamError::Rejected(format!("unexpected build context {ctx:?}")));
        }
        Ok(Box::new(DropContaining(needle.to_string())) as Box<dyn curate_core::operator::Operator>)
    });
    ops.register(OpDescriptor::new("drop_containing", "1", OpKind::Map, "Drops records containing a string.", schema, build));
    let engine = Engine::new(Home::new(d.join("home")), ops);
    let spec = format!(
        "name: rt\ninput:\n  path: {0}/in/a.jsonl\n  id_field: id\nsteps:\n  - op: drop_containing\n    needle: drop\noutput:\n  path: {0}/out\n",
        d.display()
    );
    let p = engine.prepare(Pipeline::from_text(&spec, "rt.yaml").unwrap()).unwrap();
    let out = engine.run(&p, &RunSettings::default(), &curate_core::exec::NoProgress).unwrap();
    assert_eq!((out.report.records_in, out.report.records_out), (2, 1));
    assert_eq!(out.report.steps[0].dropped.get("drop_containing:match"), Some(&1));
    // Its parameters are checked like a built-in's.
    let typo = spec.replace("needle:", "needel:");
    let err = engine.prepare(Pipeline::from_text(&typo, "rt.yaml").unwrap()).err().expect("unknown parameter refused");
    assert!(err.to_string().contains("unknown parameter `needel`, did you mean `needle`?"), "{err}");
}

/// An operator that fails on any batch holding a needle, as a raising Python function does.
struct FailOn(&'static str);

impl curate_core::operator::Operator for FailOn {
    fn columns(&self) -> curate_core::operator::Columns {
        curate_core::operator::Columns::default()
    }

    fn process(&self, batch: arrow_array::RecordBatch) -> Result<curate_core::operator::OpOutput, curate_core::operator::OpError> {
        use arrow_array::cast::AsArray;
        let texts = batch.column_by_name("text").map(|c| c.as_string::<i32>().clone());
        let verdicts = texts
            .filter(|t| t.iter().flatten().any(|t| t.contains(self.0)))
            .map(|_| curate_core::operator::Verdicts::fail_all(batch.num_rows(), "ValueError: no needles"));
        Ok(curate_core::operator::OpOutput { batch, verdicts })
    }
}

#[test]
fn a_batch_an_operator_fails_on_is_quarantined_and_the_run_goes_on() {
    use curate_core::operator::{OpDescriptor, OpKind};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("in")).unwrap();
    std::fs::write(d.join("in/a.jsonl"), "{\"id\":\"a\",\"text\":\"fine\"}\n").unwrap();
    std::fs::write(d.join("in/b.jsonl"), "{\"id\":\"b\",\"text\":\"a needle\"}\n{\"id\":\"c\",\"text\":\"hay\"}\n").unwrap();
    let mut ops = curate_ops::registry();
    let schema: schemars::Schema = serde_json::from_value(serde_json::json!({"type": "object", "properties": {}})).unwrap();
    let build: curate_core::operator::BuildFn = std::sync::Arc::new(|_: serde_json::Value, _: &curate_core::operator::BuildContext| {
        Ok(Box::new(FailOn("needle")) as Box<dyn curate_core::operator::Operator>)
    });
    ops.register(OpDescriptor::new("fail_on", "1", OpKind::Map, "Fails batches holding a needle.", schema, build));
    let engine = Engine::new(Home::new(d.join("home")), ops);
    let spec = format!("name: q\ninput:\n  path: {0}/in/*.jsonl\n  id_field: id\nsteps:\n  - op: fail_on\noutput:\n  path: {0}/out\n", d.display());
    let p = engine.prepare(Pipeline::from_text(&spec, "q.yaml").unwrap()).unwrap();
    let out = engine.run(&p, &RunSettings::default(), &curate_core::exec::NoProgress).unwrap();
    let r = &out.report;
    assert_eq!((r.records_in, r.records_out, r.quarantined, r.steps[0].failed), (3, 1, 2, 2));
    assert!(out.committed.is_some());
    let q = std::fs::read_to_string(d.join("out/quarantine/part-000001.jsonl")).unwrap();
    let entries: Vec<serde_json::Value> = q.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(entries.len(), 2);
    for (e, id) in entries.iter().zip(["b", "c"]) {
        assert!(e["file"].as_str().unwrap().ends_with("in/b.jsonl"), "{e}");
        assert_eq!(e["error"], format!("step 0 (fail_on) failed on the batch of record `{id}` (2 records): ValueError: no needles"));
        assert_eq!(serde_json::from_str::<serde_json::Value>(e["raw"].as_str().unwrap()).unwrap()["id"], id);
    }
}

/// The per-task entry point, as a remote worker would use it: each task of a prepared
/// pipeline run on its own (in reverse order, into a fresh output) publishes the same
/// files a whole run writes, byte for byte.
#[test]
fn tasks_run_one_by_one_write_what_a_whole_run_writes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    corpus(d, 3, 300);
    let engine = Engine::new(Home::new(d.join("home")), curate_ops::registry());
    let whole = engine.prepare(Pipeline::from_text(&yaml(d, "whole"), "lib.yaml").unwrap()).unwrap();
    engine.run(&whole, &RunSettings { no_registry: true, ..Default::default() }, &curate_core::exec::NoProgress).unwrap();

    let p = engine.prepare(Pipeline::from_text(&yaml(d, "tasks"), "lib.yaml").unwrap()).unwrap();
    let sink = engine.sink(&p, "a worker", false).unwrap();
    let opts = curate_core::exec::RunOptions {
        threads: 1,
        resume: false,
        memory_limit: None,
        cache: None,
        cancel: CancelToken::default(),
    };
    let ctx = curate_engine::TaskContext::new(p.plan(), p.source(), &sink, &opts, &curate_core::exec::NoProgress).unwrap();
    let tasks = curate_engine::plan_tasks(p.plan(), p.source().shards());
    assert_eq!(tasks.len(), 3);
    for task in tasks.iter().rev() {
        let report = curate_engine::run_task(&ctx, task).unwrap();
        assert_eq!((report.task, report.key.as_str()), (task.shard, task.key.as_str()));
    }
    let digest = |dir: &Path| tree(dir).into_iter().map(|(name, bytes)| (name, fingerprint(&bytes))).collect::<Vec<_>>();
    for sub in ["data", "rejects", "_lineage"] {
        assert_eq!(digest(&d.join("tasks").join(sub)), digest(&d.join("whole").join(sub)), "{sub}");
    }
}

fn fingerprint(bytes: &[u8]) -> String {
    use std::hash::{Hash, Hasher};
    // Equality of contents is all that matters here; the std hasher is enough to tell.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    format!("{:016x}-{}", h.finish(), bytes.len())
}

/// Records the most rayon threads an operator saw.
struct RayonProbe(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl curate_core::operator::Operator for RayonProbe {
    fn columns(&self) -> curate_core::operator::Columns {
        curate_core::operator::Columns::default()
    }

    fn process(&self, batch: arrow_array::RecordBatch) -> Result<curate_core::operator::OpOutput, curate_core::operator::OpError> {
        self.0.fetch_max(rayon::current_num_threads(), Ordering::Relaxed);
        Ok(curate_core::operator::OpOutput { batch, verdicts: None })
    }
}

#[test]
fn operators_parallelise_within_the_runs_threads() {
    use curate_core::operator::{OpDescriptor, OpKind};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    corpus(d, 3, 50);
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut ops = curate_ops::registry();
    let probe = seen.clone();
    let build: curate_core::operator::BuildFn = std::sync::Arc::new(move |_: serde_json::Value, _: &curate_core::operator::BuildContext| {
        Ok(Box::new(RayonProbe(probe.clone())) as Box<dyn curate_core::operator::Operator>)
    });
    let schema: schemars::Schema = serde_json::from_value(serde_json::json!({"type": "object"})).unwrap();
    ops.register(OpDescriptor::new("rayon_probe", "1", OpKind::Map, "Records rayon's thread count.", schema, build));
    let engine = Engine::new(Home::new(d.join("home")), ops);
    for threads in [1, 3] {
        seen.store(0, Ordering::Relaxed);
        let spec = format!(
            "name: probe\ninput:\n  path: {0}/in/*.jsonl\n  id_field: id\nsteps:\n  - op: rayon_probe\noutput:\n  path: {0}/out-{threads}\n",
            d.display()
        );
        let p = engine.prepare(Pipeline::from_text(&spec, "probe.yaml").unwrap()).unwrap();
        let settings = RunSettings { threads: Some(threads), no_registry: true, ..Default::default() };
        engine.run(&p, &settings, &curate_core::exec::NoProgress).unwrap();
        // `--threads 1` on a many-core machine must not let a model operator take every core.
        assert_eq!(seen.load(Ordering::Relaxed), threads, "rayon threads inside a run of {threads}");
        // Likewise a queued run's tasks, one at a time, as a worker runs them.
        seen.store(0, Ordering::Relaxed);
        let queued = engine.prepare(Pipeline::from_text(&spec.replace("/out-", "/queued-"), "probe.yaml").unwrap()).unwrap();
        let sink = engine.sink(&queued, "a worker", false).unwrap();
        engine.begin(&queued, &sink, false).unwrap();
        for task in engine.tasks(&queued) {
            engine.run_one(&queued, &sink, task, &settings, &curate_core::exec::NoProgress).unwrap();
        }
        assert_eq!(seen.load(Ordering::Relaxed), threads, "rayon threads inside a worker's task with {threads} threads");
    }
}
