//! Continuous pipelines (the data monitors): a registered pipeline with
//! `trigger: {watch: {interval: 5s}}` has its input listed at that interval while the
//! server runs. New or changed files start an incremental run over those files only, whose
//! commit makes the next version from the last one (its files for unchanged inputs, plus
//! the run's); removed files leave the next version, audited like `forget`. The cursor (the
//! input files a version consumed, with the objects made from each) is committed in the
//! transaction that commits the version, so a crash neither loses nor repeats records.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use curate_datasets::Compose;
use curate_engine::Pipeline;
use curate_registry::{NewJob, NewVersion, PipelineEntry, Registry, WatchCommit};
use serde_json::{json, Map, Value};

use crate::{now_ms, ServerError, Service};

/// Starts the watcher thread.
pub(crate) fn start(service: Arc<Service>) -> Result<(), ServerError> {
    let reg = service.engine.home().registry()?;
    std::thread::Builder::new().name("watcher".into()).spawn(move || {
        let mut next: HashMap<String, Instant> = HashMap::new();
        loop {
            match reg.pipelines() {
                Ok(pipelines) => {
                    for p in pipelines {
                        tend(&service, &reg, &p, &mut next);
                    }
                }
                Err(e) => tracing::error!(error = %e, "watcher cannot list pipelines"),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })?;
    Ok(())
}

/// Looks at one pipeline's input when its interval has passed.
fn tend(s: &Service, reg: &Registry, p: &PipelineEntry, next: &mut HashMap<String, Instant>) {
    let Ok(pipeline) = Pipeline::from_text(&p.spec, format!("pipeline {}", p.name)) else { return };
    let Some(watch) = &pipeline.spec().trigger.watch else { return };
    let now = Instant::now();
    if next.get(&p.name).is_some_and(|t| *t > now) {
        return;
    }
    next.insert(p.name.clone(), now + watch.interval.0);
    if let Err(e) = look(s, reg, p, &pipeline, watch.interval.0) {
        tracing::warn!(pipeline = %p.name, error = %e, "watch failed");
        let _ = reg.note_watch(&p.name, 0, 0, Some(&e));
    }
}

/// Lists the input, compares it with the cursor, and starts what the difference needs.
fn look(s: &Service, reg: &Registry, p: &PipelineEntry, pipeline: &Pipeline, interval: Duration) -> Result<(), String> {
    // One incremental run at a time per pipeline: the next one starts from its version.
    // Asked before the cursor is read: a run that ends after this check has committed its
    // version and cursor before it ended, so the cursor read below already has them.
    let busy = reg.unfinished_job(&p.name).map_err(|e| e.to_string())?.is_some();
    let state = reg.watch(&p.name).map_err(|e| e.to_string())?;
    if state.as_ref().is_some_and(|w| w.paused) {
        return Ok(());
    }
    let cursor: Map<String, Value> = state.as_ref().and_then(|w| w.cursor.get("files")).and_then(Value::as_object).cloned().unwrap_or_default();
    let listed = curate_io::list_files(&pipeline.spec().input).map_err(|e| e.to_string())?;
    let changed: Vec<&curate_io::ListedFile> = listed.iter().filter(|f| cursor.get(&f.file).and_then(|e| e.get("version")).and_then(Value::as_str) != Some(&f.version)).collect();
    let present: BTreeSet<&str> = listed.iter().map(|f| f.file.as_str()).collect();
    let removed: Vec<String> = cursor.keys().filter(|k| !present.contains(k.as_str())).cloned().collect();
    let lag = changed.iter().map(|f| f.modified_ms).min().map_or(0, |m| (now_ms() - m).max(0));
    reg.note_watch(&p.name, lag, (changed.len() + removed.len()) as i64, None).map_err(|e| e.to_string())?;
    if changed.is_empty() && removed.is_empty() {
        return Ok(());
    }
    if busy {
        return Ok(());
    }
    // After a failed increment, wait before the next try rather than failing every interval.
    if let Some(last) = reg.jobs(None, Some(&p.name), None, 1).map_err(|e| e.to_string())?.into_iter().next() {
        let pause = (interval * 10).clamp(Duration::from_secs(5), Duration::from_secs(300)).as_millis() as i64;
        let since = now_ms() - last.ended_at_ms.unwrap_or(0);
        if last.state == curate_registry::JobState::Failed && since < pause {
            let error = format!("run {} failed ({}); retrying in {} s", last.id, last.error.unwrap_or_default(), (pause - since) / 1000 + 1);
            reg.note_watch(&p.name, lag, (changed.len() + removed.len()) as i64, Some(&error)).map_err(|e| e.to_string())?;
            return Ok(());
        }
    }
    let base = state.and_then(|w| w.last_version);
    let add: BTreeMap<String, String> = changed.iter().map(|f| (f.file.clone(), f.version.clone())).collect();
    let increment = json!({ "base": base, "add": add, "remove": removed });
    if add.is_empty() {
        // Only removals: no run is needed; the next version is the last one without them.
        let c = compose(reg, &p.name, &increment)?;
        let base = c.base.clone().ok_or("a watch without a version has nothing to remove")?;
        let last = reg.version(&base).map_err(|e| e.to_string())?;
        let v = reg
            .commit_version(&NewVersion {
                dataset: pipeline.spec().dataset_name().to_string(),
                files: c.keep,
                schema: last.schema.clone(),
                parents: vec![base],
                sources: c.keep_sources,
                spec_hash: last.spec_hash.clone(),
                run: last.run,
                cache_keys: last.cache_keys.clone(),
                forget_audit: c.forget_audit,
                job: None,
                watch: Some(WatchCommit { pipeline: p.name.clone(), cursor: json!({ "files": c.cursor }) }),
            })
            .map_err(|e| e.to_string())?;
        tracing::info!(pipeline = %p.name, version = %v, removed = removed.len(), "committed a version without removed input files");
        return Ok(());
    }
    let number = base.as_deref().and_then(|b| b.rsplit_once('@')).and_then(|(_, n)| n.parse::<i64>().ok()).unwrap_or(0) + 1;
    let mut spec = pipeline.spec().as_json().clone();
    spec["input"]["path"] = json!(add.keys().collect::<Vec<_>>());
    let output = format!("{}/v{number:06}", pipeline.spec().output.path.trim_end_matches('/'));
    spec["output"]["path"] = output.clone().into();
    if let Some(m) = spec.as_object_mut() {
        m.remove("trigger");
    }
    if spec["output"].get("dataset").is_none() {
        // The increments commit versions of the pipeline's dataset, not of "v000003".
        spec["output"]["dataset"] = pipeline.spec().dataset_name().into();
    }
    let text = serde_json::to_string_pretty(&spec).map_err(|e| e.to_string())?;
    let (job, _) = reg
        .submit_job(&NewJob {
            pipeline: &p.name,
            spec: &text,
            output: &curate_datasets::output_location(&output),
            idempotency_key: None,
            priority: p.priority,
            actor: Some(&format!("watch:{}", p.name)),
            queue_timeout_ms: s.config.queue_timeout.map(|d| d.as_millis() as i64),
            watch: Some(&increment),
        })
        .map_err(|e| e.to_string())?;
    tracing::info!(pipeline = %p.name, run = job.id, files = add.len(), removed = increment["remove"].as_array().map_or(0, Vec::len), "started an incremental run");
    Ok(())
}

/// How an increment's version follows its base: the base's files and sources of input
/// files neither removed nor changed, the cursor entries kept, this increment's input
/// stamps, and (when files were removed) the audit entry recording their removal.
pub(crate) fn compose(reg: &Registry, pipeline: &str, increment: &Value) -> Result<Compose, String> {
    let add: BTreeMap<String, String> = serde_json::from_value(increment.get("add").cloned().unwrap_or(Value::Null)).unwrap_or_default();
    let remove: Vec<String> = serde_json::from_value(increment.get("remove").cloned().unwrap_or(Value::Null)).unwrap_or_default();
    // Composed on the watch's version and cursor as they are now, not as they were when the
    // increment was made: should another commit have come between, its files stay and its
    // removals stay removed (an increment re-adding a file it holds replaces it with itself).
    let watch = reg.watch(pipeline).map_err(|e| e.to_string())?;
    let base = watch.as_ref().and_then(|w| w.last_version.clone());
    let cursor: Map<String, Value> = watch.and_then(|w| w.cursor.get("files").and_then(Value::as_object).cloned()).unwrap_or_default();
    let remove: Vec<String> = remove.into_iter().filter(|f| cursor.contains_key(f)).collect();
    let (kept, dropped): (Map<String, Value>, Map<String, Value>) = cursor.into_iter().partition(|(file, _)| !add.contains_key(file) && !remove.contains(file));
    let objects = |m: &Map<String, Value>| -> BTreeSet<String> {
        m.values().flat_map(|e| e.get("objects").and_then(Value::as_array).cloned().unwrap_or_default()).filter_map(|o| o.as_str().map(str::to_owned)).collect()
    };
    let (kept_objects, dropped_objects) = (objects(&kept), objects(&dropped));
    let (keep, keep_sources) = match &base {
        Some(b) => {
            let v = reg.version(b).map_err(|e| e.to_string())?;
            // An object made from a kept input stays even if a dropped input made the same bytes.
            let files = v.files.into_iter().filter(|f| kept_objects.contains(&f.path) || !dropped_objects.contains(&f.path)).collect();
            let sources = v.sources.into_iter().filter(|s| !add.contains_key(&s.path) && !remove.contains(&s.path)).collect();
            (files, sources)
        }
        None => (Vec::new(), Vec::new()),
    };
    let forget_audit = if remove.is_empty() {
        None
    } else {
        Some(reg.record_forget(&remove, "input file removed from the watched input", &format!("watch:{pipeline}"), &[]).map_err(|e| e.to_string())?)
    };
    Ok(Compose { pipeline: pipeline.to_string(), base, keep, keep_sources, cursor: kept, stamps: add, forget_audit })
}

#[cfg(test)]
mod tests {
    use super::*;
    use curate_registry::FileEntry;

    fn commit(reg: &Registry, files: &[&str], cursor: Value) -> String {
        let files = files.iter().map(|f| FileEntry { path: (*f).into(), content_hash: f.replace('/', ""), rows: 1, bytes: 1 }).collect();
        let v = reg.commit_version(&NewVersion { dataset: "d".into(), files, watch: Some(WatchCommit { pipeline: "d".into(), cursor }), ..Default::default() }).unwrap();
        v.to_string()
    }

    fn entry(object: &str) -> Value {
        json!({ "version": "1:1", "objects": [object] })
    }

    #[test]
    fn an_increment_made_before_the_last_commit_composes_on_that_commit() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(dir.path().join("r.db").to_str().unwrap()).unwrap();
        let v1 = commit(&reg, &["objects/a", "objects/b"], json!({ "files": { "a.jsonl": entry("objects/a"), "b.jsonl": entry("objects/b") } }));
        // Made against v1: adds c.jsonl and removes a.jsonl...
        let stale = json!({ "base": v1, "add": { "c.jsonl": "2:2" }, "remove": ["a.jsonl"] });
        // ...but an increment removing a.jsonl committed v2 first.
        let v2 = commit(&reg, &["objects/b"], json!({ "files": { "b.jsonl": entry("objects/b") } }));
        let c = compose(&reg, "d", &stale).unwrap();
        assert_eq!(c.base.as_deref(), Some(v2.as_str()));
        assert_eq!(c.keep.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), ["objects/b"]);
        assert_eq!(c.cursor.keys().collect::<Vec<_>>(), ["b.jsonl"]);
        assert_eq!(c.stamps.keys().collect::<Vec<_>>(), ["c.jsonl"]);
        assert!(c.forget_audit.is_none(), "a.jsonl's removal was audited by the commit that removed it");
        // An increment changing b.jsonl replaces its object.
        let change = json!({ "base": v2, "add": { "b.jsonl": "3:3" }, "remove": [] });
        let c = compose(&reg, "d", &change).unwrap();
        assert!(c.keep.is_empty() && c.cursor.is_empty());
    }
}
