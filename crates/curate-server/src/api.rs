//! The `/v1` API: one table of operations from which both the router and the OpenAPI
//! document are built, so the document cannot drift from what is served.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use curate_datasets::views;
use curate_engine::Pipeline;
use curate_registry::{JobState, NewJob, Registry, Scope, TokenInfo};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::auth::authorize;
use crate::openapi::{Operation, Param};
use crate::problem::ApiError;
use crate::runs::{self, RunPage, RunView};
use crate::worker::{HeartbeatReply, LeasedTask};
use crate::{now_ms, Service};

type Shared = Arc<Service>;
type ApiResult<T> = Result<T, ApiError>;

/// Runs `f` on a blocking thread with a registry handle, after checking the request's
/// token for `scope`.
async fn call<T: Send + 'static>(
    s: &Shared,
    headers: &HeaderMap,
    scope: Scope,
    f: impl FnOnce(&Service, &Registry, TokenInfo) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    let s = s.clone();
    let headers = headers.clone();
    tokio::task::spawn_blocking(move || {
        let reg = s.pool.get();
        let who = authorize(reg, &headers, scope)?;
        f(&s, reg, who)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("request handler failed: {e}")))?
}

/// Records a mutating call in the audit log.
fn audit(reg: &Registry, who: &TokenInfo, action: &str, target: &str, detail: Option<&Value>) -> ApiResult<()> {
    reg.record_call(&who.name, action, target, detail.map(ToString::to_string).as_deref())?;
    Ok(())
}

fn body<T: DeserializeOwned>(bytes: &Bytes) -> ApiResult<T> {
    if bytes.is_empty() {
        return Err(ApiError::bad_request("this call takes a JSON body"));
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("request body: {e}")))
}

fn int_param(q: &HashMap<String, String>, name: &str, default: i64, max: i64) -> ApiResult<i64> {
    match q.get(name) {
        None => Ok(default),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_request(format!("{name} must be an integer from 1 to {max}, not {v:?}"))),
        },
    }
}

/// The `cursor` of a listing: a `next_cursor` this API gave.
fn cursor(q: &HashMap<String, String>) -> ApiResult<Option<i64>> {
    match q.get("cursor").filter(|v| !v.is_empty()) {
        Some(c) => match c.parse::<i64>() {
            Ok(n) if n >= 1 => Ok(Some(n)),
            _ => Err(ApiError::bad_request(format!("cursor {c:?} is not one this API gave"))),
        },
        None if q.contains_key("cursor") => Err(ApiError::bad_request("cursor is empty; leave it out for the first page")),
        None => Ok(None),
    }
}

fn run_id(id: &str) -> ApiResult<i64> {
    id.parse::<i64>().map_err(|_| ApiError::not_found(format!("no run {id:?}: run ids are integers")))
}

// ----- request and response bodies -------------------------------------------------

/// `POST /v1/pipelines`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PutPipeline {
    /// The pipeline spec (YAML).
    #[schemars(length(min = 1))]
    spec: String,
    /// Priority of its runs (higher first).
    priority: Option<i64>,
    /// Tasks of its runs held at once, at most.
    #[schemars(range(min = 1))]
    max_slots: Option<i64>,
}

/// A registered pipeline.
#[derive(Debug, Serialize, JsonSchema)]
struct PipelineView {
    name: String,
    spec: String,
    priority: i64,
    max_slots: Option<i64>,
    created_at: String,
    updated_at: String,
    /// `{"watch": {"interval_ms": N}}` for a continuous pipeline.
    trigger: Option<Value>,
}

/// A watched pipeline.
#[derive(Debug, Serialize, JsonSchema)]
struct WatchView {
    pipeline: String,
    /// `active` or `paused`.
    state: String,
    interval_ms: Option<u64>,
    /// The latest version the watch committed.
    last_version: Option<String>,
    /// Input files the latest version consumed.
    files: usize,
    /// Input files changed since (new, changed or removed).
    pending: i64,
    /// Age of the oldest change no version holds yet.
    lag_seconds: f64,
    checked_at: Option<String>,
    last_error: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
struct WatchList {
    watches: Vec<WatchView>,
}

#[derive(Debug, Serialize, JsonSchema)]
struct PipelineList {
    pipelines: Vec<PipelineView>,
}

/// `POST /v1/runs`: a registered pipeline's name, or a spec.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SubmitRun {
    /// A registered pipeline.
    pipeline: Option<String>,
    /// A spec (YAML) to run as given.
    spec: Option<String>,
    /// Overrides the pipeline's priority.
    priority: Option<i64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct TagBody {
    /// The tag to set.
    #[schemars(length(min = 1))]
    tag: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ForgetBody {
    /// Record or source ids.
    #[schemars(length(min = 1))]
    ids: Vec<String>,
    /// Why (kept in the audit trail).
    #[schemars(pattern(r"\S"))]
    reason: String,
    /// Also rewrite older versions and run outputs.
    #[serde(default)]
    purge: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RegisterWorker {
    /// A name shown in `GET /v1/workers`.
    #[schemars(length(min = 1, max = 200))]
    name: String,
    /// Tasks it runs at once.
    #[schemars(range(min = 1, max = 1024))]
    slots: i64,
    /// Where it runs.
    host: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct WorkerRegistered {
    pub(crate) id: String,
    pub(crate) lease_ms: i64,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TaskReportBody {
    /// The worker holding the task.
    pub(crate) worker: String,
    /// Its result (for `complete`).
    #[serde(default)]
    pub(crate) result: Option<Value>,
    /// Its error (for `fail`).
    #[serde(default)]
    pub(crate) error: Option<String>,
}

/// Any JSON object (datasets, versions, explanations keep the CLI's `--json` shapes).
#[derive(Debug, Serialize, JsonSchema)]
struct Object(serde_json::Map<String, Value>);

fn object(v: Value) -> Json<Object> {
    Json(Object(match v {
        Value::Object(m) => m,
        other => [("value".to_string(), other)].into_iter().collect(),
    }))
}

// ----- handlers ------------------------------------------------------------------

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn openapi_json(State(s): State<Shared>) -> Response {
    let _ = s;
    ([(header::CONTENT_TYPE, "application/json")], crate::openapi::document(&operations()).to_string()).into_response()
}

async fn ui() -> Html<&'static str> {
    Html(include_str!("../ui/index.html"))
}

async fn metrics(State(s): State<Shared>) -> ApiResult<Response> {
    let text = tokio::task::spawn_blocking(move || crate::metrics::render(s.pool.get()))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

fn interval_ms(spec: &str) -> Option<u64> {
    let p = Pipeline::from_text(spec, "spec").ok()?;
    p.spec().trigger.watch.as_ref().map(|w| w.interval.0.as_millis() as u64)
}

fn pipeline_view(p: curate_registry::PipelineEntry) -> PipelineView {
    PipelineView {
        trigger: interval_ms(&p.spec).map(|ms| json!({ "watch": { "interval_ms": ms } })),
        name: p.name,
        spec: p.spec,
        priority: p.priority,
        max_slots: p.max_slots,
        created_at: runs::rfc3339(p.created_at_ms),
        updated_at: runs::rfc3339(p.updated_at_ms),
    }
}

/// Parses and fully checks a spec as `curate validate` does: 422 with located errors.
fn validate(s: &Service, spec: &str) -> ApiResult<Pipeline> {
    let pipeline = Pipeline::from_text(spec, "spec").map_err(|e| ApiError::invalid(e.to_string()))?;
    if pipeline.spec().trigger.watch.is_some() {
        let at = |m: &str| ApiError::invalid(pipeline.spec().error_at("trigger.watch", format!("trigger.watch: {m}")).to_string());
        if pipeline.spec().input.dataset.is_some() {
            return Err(at("a watched pipeline reads files (input.path), not a dataset"));
        }
        // Nothing to check yet is fine for a watch: its files arrive later.
        let listed = curate_io::list_files(&pipeline.spec().input).map_err(|e| ApiError::invalid(e.to_string()))?;
        if listed.is_empty() {
            return Ok(pipeline);
        }
        let prepared = s.engine.prepare(pipeline.clone()).map_err(|e| ApiError::invalid(e.to_string()))?;
        if !prepared.plan().globals.is_empty() {
            return Err(at("incremental runs take streamed steps only; a global step (dedup) needs every record of the dataset, which an increment does not read"));
        }
        return Ok(pipeline);
    }
    s.engine.prepare(pipeline.clone()).map_err(|e| ApiError::invalid(e.to_string()))?;
    Ok(pipeline)
}

fn watch_view(w: curate_registry::WatchState, interval: Option<u64>) -> WatchView {
    WatchView {
        state: if w.paused { "paused" } else { "active" }.into(),
        interval_ms: interval,
        last_version: w.last_version,
        files: w.cursor.get("files").and_then(Value::as_object).map_or(0, |m| m.len()),
        pending: w.pending,
        lag_seconds: w.lag_ms as f64 / 1000.0,
        checked_at: w.checked_at_ms.map(runs::rfc3339),
        last_error: w.last_error,
        pipeline: w.pipeline,
    }
}

async fn list_watches(State(s): State<Shared>, headers: HeaderMap) -> ApiResult<Json<WatchList>> {
    call(&s, &headers, Scope::Read, |_, reg, _| {
        let states: HashMap<String, curate_registry::WatchState> = reg.watches()?.into_iter().map(|w| (w.pipeline.clone(), w)).collect();
        let mut watches = Vec::new();
        for p in reg.pipelines()? {
            let Some(interval) = interval_ms(&p.spec) else { continue };
            let state = states.get(&p.name).cloned().unwrap_or(curate_registry::WatchState {
                pipeline: p.name.clone(),
                paused: false,
                cursor: json!({}),
                last_version: None,
                checked_at_ms: None,
                lag_ms: 0,
                pending: 0,
                last_error: None,
            });
            watches.push(watch_view(state, Some(interval)));
        }
        Ok(Json(WatchList { watches }))
    })
    .await
}

async fn set_watch(s: Shared, headers: HeaderMap, name: String, paused: bool) -> ApiResult<Json<WatchView>> {
    call(&s, &headers, Scope::Run, move |_, reg, who| {
        let p = reg.pipeline(&name)?.ok_or_else(|| ApiError::not_found(format!("no pipeline {name:?}")))?;
        let Some(interval) = interval_ms(&p.spec) else {
            return Err(ApiError::new(StatusCode::CONFLICT, format!("pipeline {name} has no `trigger: {{watch: ...}}`")));
        };
        reg.set_watch_paused(&name, paused)?;
        audit(reg, &who, if paused { "watches.pause" } else { "watches.resume" }, &format!("pipeline {name}"), None)?;
        let w = reg.watch(&name)?.ok_or_else(|| ApiError::not_found(format!("no watch of {name:?}")))?;
        Ok(Json(watch_view(w, Some(interval))))
    })
    .await
}

async fn pause_watch(State(s): State<Shared>, headers: HeaderMap, Path(name): Path<String>) -> ApiResult<Json<WatchView>> {
    set_watch(s, headers, name, true).await
}

async fn resume_watch(State(s): State<Shared>, headers: HeaderMap, Path(name): Path<String>) -> ApiResult<Json<WatchView>> {
    set_watch(s, headers, name, false).await
}

async fn put_pipeline(State(s): State<Shared>, headers: HeaderMap, bytes: Bytes) -> ApiResult<(StatusCode, Json<PipelineView>)> {
    call(&s, &headers, Scope::Run, move |s, reg, who| {
        let req: PutPipeline = body(&bytes)?;
        if req.max_slots.is_some_and(|m| m < 1) {
            return Err(ApiError::invalid("max_slots must be at least 1"));
        }
        let pipeline = validate(s, &req.spec)?;
        let name = pipeline.spec().name.clone();
        let existed = reg.pipeline(&name)?.is_some();
        let entry = reg.put_pipeline(&name, &req.spec, req.priority, req.max_slots.map(Some))?;
        audit(reg, &who, if existed { "pipelines.update" } else { "pipelines.create" }, &format!("pipeline {name}"), None)?;
        Ok((if existed { StatusCode::OK } else { StatusCode::CREATED }, Json(pipeline_view(entry))))
    })
    .await
}

async fn list_pipelines(State(s): State<Shared>, headers: HeaderMap) -> ApiResult<Json<PipelineList>> {
    call(&s, &headers, Scope::Read, |_, reg, _| Ok(Json(PipelineList { pipelines: reg.pipelines()?.into_iter().map(pipeline_view).collect() }))).await
}

async fn get_pipeline(State(s): State<Shared>, headers: HeaderMap, Path(name): Path<String>) -> ApiResult<Json<PipelineView>> {
    call(&s, &headers, Scope::Read, move |_, reg, _| {
        let p = reg.pipeline(&name)?.ok_or_else(|| ApiError::not_found(format!("no pipeline {name:?}; `GET /v1/pipelines` lists them")))?;
        Ok(Json(pipeline_view(p)))
    })
    .await
}

async fn submit_run(State(s): State<Shared>, headers: HeaderMap, bytes: Bytes) -> ApiResult<(StatusCode, Json<RunView>)> {
    let key_header = headers.get("idempotency-key").cloned();
    call(&s, &headers, Scope::Run, move |s, reg, who| {
        let key = match key_header {
            Some(v) => Some(v.to_str().map_err(|_| ApiError::bad_request("Idempotency-Key must be visible ASCII"))?.to_string()),
            None => None,
        };
        if key.as_ref().is_some_and(|k| k.is_empty() || k.len() > 255) {
            return Err(ApiError::bad_request("Idempotency-Key must have 1 to 255 characters"));
        }
        let req: SubmitRun = body(&bytes)?;
        let (spec, priority) = match (&req.pipeline, &req.spec) {
            (Some(name), None) => {
                let p = reg.pipeline(name)?.ok_or_else(|| ApiError::not_found(format!("no pipeline {name:?}; register it with `POST /v1/pipelines` first")))?;
                (p.spec, p.priority)
            }
            (None, Some(spec)) => (spec.clone(), 0),
            _ => return Err(ApiError::invalid("give exactly one of `pipeline` (a registered pipeline's name) and `spec` (YAML text)")),
        };
        // Inputs and outputs are checked when the run is planned: a run may queue behind
        // another run that holds its output now.
        let pipeline = Pipeline::from_text(&spec, "spec").map_err(|e| ApiError::invalid(e.to_string()))?;
        let output = curate_datasets::output_location(&pipeline.spec().output.path);
        let (job, created) = reg.submit_job(&NewJob {
            pipeline: &pipeline.spec().name,
            spec: &spec,
            output: &output,
            idempotency_key: key.as_deref(),
            priority: req.priority.unwrap_or(priority),
            actor: Some(&who.name),
            queue_timeout_ms: s.config.queue_timeout.map(|d| d.as_millis() as i64),
            watch: None,
        })?;
        if created {
            audit(reg, &who, "runs.create", &format!("run {}", job.id), Some(&json!({ "pipeline": job.pipeline, "idempotency_key": key })))?;
        }
        let view = runs::detail(reg, &job, s.config.max_slots)?;
        Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(view)))
    })
    .await
}

async fn list_runs(State(s): State<Shared>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> ApiResult<Json<RunPage>> {
    call(&s, &headers, Scope::Read, move |_, reg, _| {
        let state = match q.get("state") {
            Some(v) => Some(JobState::parse(v).ok_or_else(|| ApiError::bad_request(format!("state must be one of queued, running, cancelling, succeeded, failed, cancelled, not {v:?}")))?),
            None => None,
        };
        if q.get("pipeline").is_some_and(String::is_empty) {
            return Err(ApiError::bad_request("pipeline is empty; leave it out for every pipeline"));
        }
        let before = cursor(&q)?;
        let limit = int_param(&q, "limit", 50, 500)?;
        let jobs = reg.jobs(state, q.get("pipeline").map(String::as_str).filter(|p| !p.is_empty()), before, limit)?;
        let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
        let progress = reg.job_progress_counts(&ids)?;
        let next_cursor = (jobs.len() as i64 == limit).then(|| jobs.last().map(|j| j.id.to_string())).flatten();
        let runs = jobs.iter().map(|j| runs::view(j, None, progress.get(&j.id).copied().unwrap_or((0, 0)), None)).collect();
        Ok(Json(RunPage { runs, next_cursor }))
    })
    .await
}

async fn get_run(State(s): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Json<RunView>> {
    call(&s, &headers, Scope::Read, move |s, reg, _| {
        let job = reg.job(run_id(&id)?)?;
        Ok(Json(runs::detail(reg, &job, s.config.max_slots)?))
    })
    .await
}

async fn cancel_run(State(s): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Json<RunView>> {
    call(&s, &headers, Scope::Run, move |s, reg, who| {
        let job = reg.cancel_job(run_id(&id)?)?;
        audit(reg, &who, "runs.cancel", &format!("run {}", job.id), None)?;
        Ok(Json(runs::detail(reg, &job, s.config.max_slots)?))
    })
    .await
}

async fn retry_run(State(s): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Json<RunView>> {
    call(&s, &headers, Scope::Run, move |s, reg, who| {
        let id = run_id(&id)?;
        let before = reg.job(id)?;
        if !matches!(before.state, JobState::Failed | JobState::Cancelled) {
            return Err(ApiError::new(StatusCode::CONFLICT, format!("run {id} is {}; only failed or cancelled runs are retried", before.state.as_str())));
        }
        let job = reg.retry_job(id)?;
        audit(reg, &who, "runs.retry", &format!("run {id}"), None)?;
        Ok(Json(runs::detail(reg, &job, s.config.max_slots)?))
    })
    .await
}

async fn run_events(State(s): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>>> {
    let after = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    let job = call(&s, &headers, Scope::Read, move |_, reg, _| Ok(reg.job(run_id(&id)?)?.id)).await?;
    let stream = futures_util::stream::unfold((s, after, false), move |(s, after, done)| async move {
        if done {
            return None;
        }
        loop {
            let s2 = s.clone();
            let fetched = tokio::task::spawn_blocking(move || {
                let reg = s2.pool.get();
                let events = reg.job_events(job, after, 100)?;
                let terminal = reg.job(job)?.state.is_terminal();
                Ok::<_, curate_registry::Error>((events, terminal))
            })
            .await;
            match fetched {
                Ok(Ok((events, terminal))) => {
                    if !events.is_empty() {
                        let last = events.last().map_or(after, |e| e.id);
                        let batch: Vec<Event> = events
                            .iter()
                            .map(|e| {
                                let mut data = e.data.clone();
                                data["at"] = runs::rfc3339(e.at_ms).into();
                                Event::default().id(e.id.to_string()).event(e.kind.clone()).data(data.to_string())
                            })
                            .collect();
                        let more = events.len() == 100;
                        let finished = terminal && !more;
                        return Some((futures_util::stream::iter(batch.into_iter().map(Ok)), (s, last, finished)));
                    }
                    if terminal {
                        return None;
                    }
                }
                _ => return None,
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    use futures_util::StreamExt;
    Ok(Sse::new(stream.flatten()).keep_alive(KeepAlive::default()))
}

async fn list_datasets(State(s): State<Shared>, headers: HeaderMap) -> ApiResult<Json<Object>> {
    call(&s, &headers, Scope::Read, |_, reg, _| {
        let all = reg.datasets()?;
        Ok(object(json!({ "datasets": all.iter().map(|d| json!({"name": d.name, "latest": d.latest, "derived_from": d.derived_from})).collect::<Vec<_>>() })))
    })
    .await
}

async fn get_dataset(State(s): State<Shared>, headers: HeaderMap, Path(name): Path<String>) -> ApiResult<Json<Object>> {
    call(&s, &headers, Scope::Read, move |_, reg, _| {
        let versions = if name.contains('@') { vec![reg.version(&name)?] } else { reg.versions(&name)? };
        let dataset = versions.first().map_or(name.clone(), |v| v.reference.dataset.clone());
        Ok(object(json!({ "name": dataset, "versions": versions.iter().map(views::version_json).collect::<Vec<_>>() })))
    })
    .await
}

async fn dataset_records(State(s): State<Shared>, headers: HeaderMap, Path(reference): Path<String>, Query(q): Query<HashMap<String, String>>) -> ApiResult<Json<Object>> {
    call(&s, &headers, Scope::Read, move |s, reg, _| {
        let limit = int_param(&q, "limit", 20, 1000)?;
        let version = reg.version(&reference)?;
        let records = views::records_json(s.engine.home(), &version, limit as usize)?;
        Ok(object(json!({ "version": version.reference.to_string(), "records": records })))
    })
    .await
}

async fn tag_version(State(s): State<Shared>, headers: HeaderMap, Path(reference): Path<String>, bytes: Bytes) -> ApiResult<Json<Object>> {
    call(&s, &headers, Scope::Run, move |_, reg, who| {
        let req: TagBody = body(&bytes)?;
        let v = reg.tag(&reference, &req.tag)?;
        audit(reg, &who, "datasets.tag", &v.to_string(), Some(&json!({ "tag": req.tag })))?;
        Ok(object(json!({ "version": v.to_string(), "tag": req.tag })))
    })
    .await
}

async fn diff(State(s): State<Shared>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> ApiResult<Json<Object>> {
    call(&s, &headers, Scope::Read, move |s, reg, _| {
        let (Some(from), Some(to)) = (q.get("from"), q.get("to")) else {
            return Err(ApiError::bad_request("diff needs `from` and `to` (name@N)"));
        };
        let limit = int_param(&q, "limit", 100, 100_000)? as usize;
        let (a, b) = (reg.version(from)?, reg.version(to)?);
        let records = curate_datasets::diff_records(s.engine.home(), reg, from, to)?;
        let mut v = views::diff_json(reg, &a, &b, &records)?;
        v["added_count"] = records.added.len().into();
        v["removed_count"] = records.removed.len().into();
        for k in ["added", "removed"] {
            if let Some(ids) = v.get_mut(k).and_then(Value::as_array_mut) {
                ids.truncate(limit);
            }
        }
        Ok(object(v))
    })
    .await
}

async fn explain(State(s): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Json<Object>> {
    call(&s, &headers, Scope::Read, move |s, reg, _| {
        let e = curate_datasets::explain(s.engine.home(), reg, &id)?
            .ok_or_else(|| ApiError::not_found(format!("no record {id:?} in any recorded run's lineage; ids are the input's id_field values")))?;
        Ok(object(views::explain_json(&e)))
    })
    .await
}

async fn forget(State(s): State<Shared>, headers: HeaderMap, bytes: Bytes) -> ApiResult<Json<Object>> {
    call(&s, &headers, Scope::Admin, move |s, reg, who| {
        let req: ForgetBody = body(&bytes)?;
        if req.ids.is_empty() || req.reason.trim().is_empty() {
            return Err(ApiError::invalid("forget needs at least one id and a reason"));
        }
        let r = curate_datasets::forget(s.engine.home(), reg, &req.ids, &req.reason, &who.name, req.purge)?;
        audit(reg, &who, "records.forget", &format!("forget #{}", r.audit), Some(&json!({ "ids": req.ids, "purge": req.purge })))?;
        Ok(object(json!({
            "audit": r.audit,
            "unknown": r.unknown,
            "versions": r.versions.iter().map(|(v, n)| json!({"version": v.to_string(), "removed": n})).collect::<Vec<_>>(),
            "purged": r.purged.iter().map(|(v, n)| json!({"version": v.to_string(), "removed": n})).collect::<Vec<_>>(),
        })))
    })
    .await
}

async fn list_ops(State(s): State<Shared>, headers: HeaderMap) -> ApiResult<Json<Object>> {
    call(&s, &headers, Scope::Read, |s, _, _| {
        let ops: Vec<Value> = s
            .engine
            .ops()
            .all()
            .iter()
            .map(|d| json!({ "name": d.name, "version": d.version, "kind": d.kind, "summary": d.summary, "params": d.params() }))
            .collect();
        Ok(object(json!({ "ops": ops })))
    })
    .await
}

async fn list_workers(State(s): State<Shared>, headers: HeaderMap) -> ApiResult<Json<Object>> {
    call(&s, &headers, Scope::Read, |s, reg, _| {
        let held = reg.held_tasks()?;
        let alive_ms = s.config.lease.as_millis() as i64 * 2;
        let now = now_ms();
        let workers: Vec<Value> = reg
            .workers(24 * 3600 * 1000)?
            .into_iter()
            .map(|w| {
                let tasks = held.iter().filter(|(t, _)| t.worker.as_deref() == Some(w.id.as_str())).count();
                json!({ "id": w.id, "name": w.name, "host": w.host, "slots": w.slots, "started_at": runs::rfc3339(w.started_at_ms),
                        "last_seen": runs::rfc3339(w.last_seen_ms), "tasks": tasks, "alive": now - w.last_seen_ms < alive_ms })
            })
            .collect();
        Ok(object(json!({ "workers": workers })))
    })
    .await
}

async fn queue(State(s): State<Shared>, headers: HeaderMap) -> ApiResult<Json<Object>> {
    call(&s, &headers, Scope::Read, |s, reg, _| {
        let held = reg.held_tasks()?;
        let used = held.iter().filter(|(t, _)| matches!(t.kind, curate_registry::TaskKind::Map | curate_registry::TaskKind::Reduce)).count();
        let mut waiting = Vec::new();
        for state in [JobState::Queued, JobState::Running] {
            let jobs = reg.jobs(Some(state), None, None, 200)?;
            for (job, why) in jobs.iter().zip(reg.jobs_wait_for(&jobs, s.config.max_slots)?) {
                if state == JobState::Queued || why.is_some() {
                    waiting.push(json!({ "run": job.id, "pipeline": job.pipeline, "state": job.state.as_str(), "priority": job.priority, "waiting_for": why }));
                }
            }
        }
        let total = s.config.max_slots.map(Value::from).unwrap_or_else(|| {
            let live = reg.workers(s.config.lease.as_millis() as i64 * 2).map(|w| w.iter().map(|w| w.slots).sum::<i64>()).unwrap_or(0);
            live.into()
        });
        Ok(object(json!({
            "slots": { "total": total, "used": used },
            "held": held.iter().map(|(t, pipeline)| json!({
                "task": t.id, "run": t.job, "pipeline": pipeline, "kind": t.kind.as_str(), "stage": t.stage, "shard": t.shard,
                "worker": t.worker, "lease_expires": t.lease_expires_ms.map(runs::rfc3339),
            })).collect::<Vec<_>>(),
            "queued": waiting,
            "dead": reg.dead_tasks(50)?.iter().map(|(t, pipeline)| json!({
                "task": t.id, "run": t.job, "pipeline": pipeline, "kind": t.kind.as_str(), "stage": t.stage, "shard": t.shard,
                "attempts": t.attempts, "error": t.error,
            })).collect::<Vec<_>>(),
        })))
    })
    .await
}

async fn audit_log(State(s): State<Shared>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> ApiResult<Json<Object>> {
    call(&s, &headers, Scope::Admin, move |_, reg, _| {
        let before = cursor(&q)?;
        let limit = int_param(&q, "limit", 100, 1000)?;
        let calls = reg.api_calls(before, limit)?;
        let next = (calls.len() as i64 == limit).then(|| calls.last().map(|c| c.id.to_string())).flatten();
        Ok(object(json!({
            "calls": calls.iter().map(|c| json!({"id": c.id, "at": runs::rfc3339(c.at_ms), "actor": c.actor, "action": c.action, "target": c.target,
                "detail": c.detail.as_deref().and_then(|d| serde_json::from_str::<Value>(d).ok())})).collect::<Vec<_>>(),
            "next_cursor": next,
        })))
    })
    .await
}

async fn register_worker(State(s): State<Shared>, headers: HeaderMap, bytes: Bytes) -> ApiResult<(StatusCode, Json<WorkerRegistered>)> {
    call(&s, &headers, Scope::Run, move |s, reg, who| {
        let req: RegisterWorker = body(&bytes)?;
        if !(1..=1024).contains(&req.slots) {
            return Err(ApiError::invalid("slots must be from 1 to 1024"));
        }
        if req.name.is_empty() || req.name.chars().count() > 200 {
            return Err(ApiError::invalid("name must have 1 to 200 characters"));
        }
        let host = req.host.unwrap_or_else(|| "unknown".into());
        let id = format!("{}-{}-{}", req.name, host, now_ms());
        reg.register_worker(&curate_registry::WorkerInfo { id: id.clone(), name: req.name, host, slots: req.slots, started_at_ms: now_ms(), last_seen_ms: now_ms() })?;
        audit(reg, &who, "workers.register", &format!("worker {id}"), None)?;
        Ok((StatusCode::CREATED, Json(WorkerRegistered { id, lease_ms: s.config.lease.as_millis() as i64 })))
    })
    .await
}

async fn lease(State(s): State<Shared>, headers: HeaderMap, Path(worker): Path<String>) -> ApiResult<Response> {
    call(&s, &headers, Scope::Run, move |s, reg, _| {
        if reg.worker(&worker)?.is_none() {
            return Err(ApiError::not_found(format!("no worker {worker:?}: register with POST /v1/workers first")));
        }
        Ok(match crate::worker::lease(s, reg, &worker)? {
            Some(task) => Json(task).into_response(),
            None => StatusCode::NO_CONTENT.into_response(),
        })
    })
    .await
}

async fn heartbeat(State(s): State<Shared>, headers: HeaderMap, Path(task): Path<String>, bytes: Bytes) -> ApiResult<Json<HeartbeatReply>> {
    call(&s, &headers, Scope::Run, move |s, reg, _| {
        let req: TaskReportBody = body(&bytes)?;
        let task = task.parse::<i64>().map_err(|_| ApiError::not_found("task ids are integers"))?;
        Ok(Json(crate::worker::heartbeat(s, reg, task, &req.worker)?))
    })
    .await
}

async fn complete(State(s): State<Shared>, headers: HeaderMap, Path(task): Path<String>, bytes: Bytes) -> ApiResult<StatusCode> {
    call(&s, &headers, Scope::Run, move |_, reg, _| {
        let req: TaskReportBody = body(&bytes)?;
        let task = task.parse::<i64>().map_err(|_| ApiError::not_found("task ids are integers"))?;
        reg.complete_task(task, &req.result.unwrap_or(Value::Null), &[])?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

async fn fail(State(s): State<Shared>, headers: HeaderMap, Path(task): Path<String>, bytes: Bytes) -> ApiResult<StatusCode> {
    call(&s, &headers, Scope::Run, move |s, reg, _| {
        let req: TaskReportBody = body(&bytes)?;
        let task = task.parse::<i64>().map_err(|_| ApiError::not_found("task ids are integers"))?;
        reg.fail_task(task, &req.worker, req.error.as_deref().unwrap_or("the worker gave no error"), s.config.retry)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

// ----- the table -----------------------------------------------------------------

const ID: Param = Param::path("id", "Run id.");
const NAME: Param = Param::path("name", "Pipeline or dataset name.");
const REFERENCE: Param = Param::path("reference", "A version: name@N or name@tag.");

/// Every operation of the API, with what the OpenAPI document says of it.
pub(crate) fn operations() -> Vec<Operation<Shared>> {
    use crate::openapi::{schema as b, schema as r};
    vec![
        Operation::new("get", "/healthz", "health", "Liveness.", None, get(healthz)).ok(200, r::<Value>),
        Operation::new("get", "/metrics", "metrics", "Prometheus metrics: runs by state, tasks, records, queue depth, lease expiries.", None, get(metrics)).text(),
        Operation::new("post", "/v1/pipelines", "putPipeline", "Registers a pipeline or updates its spec, after validating it as `curate validate` does.", Some(Scope::Run), post(put_pipeline))
            .body(b::<PutPipeline>)
            .ok(201, r::<PipelineView>)
            .ok(200, r::<PipelineView>)
            .errors(&[400, 422]),
        Operation::new("get", "/v1/pipelines", "listPipelines", "Registered pipelines.", Some(Scope::Read), get(list_pipelines)).ok(200, r::<PipelineList>),
        Operation::new("get", "/v1/pipelines/{name}", "getPipeline", "One registered pipeline.", Some(Scope::Read), get(get_pipeline)).param(NAME).ok(200, r::<PipelineView>).errors(&[404]),
        Operation::new("post", "/v1/runs", "submitRun", "Queues a run of a registered pipeline or of a spec; a repeated Idempotency-Key returns the run it created.", Some(Scope::Run), post(submit_run))
            .param(Param::header("Idempotency-Key", "Makes retries of this call safe: the same key returns the same run (1-255 characters)."))
            .body(b::<SubmitRun>)
            .ok(201, r::<RunView>)
            .ok(200, r::<RunView>)
            .errors(&[400, 404, 422]),
        Operation::new("get", "/v1/runs", "listRuns", "Runs, newest first.", Some(Scope::Read), get(list_runs))
            .param(Param::query_enum("state", "Only runs in this state.", &["queued", "running", "cancelling", "succeeded", "failed", "cancelled"]))
            .param(Param::query("pipeline", "Only runs of this pipeline."))
            .param(Param::query_int("cursor", "The next_cursor of the previous page.", i64::MAX))
            .param(Param::query_int("limit", "Runs per page (1-500, default 50).", 500))
            .ok(200, r::<RunPage>)
            .errors(&[400]),
        Operation::new("get", "/v1/runs/{id}", "getRun", "One run: state, counters, progress, version, and while queued what it waits for.", Some(Scope::Read), get(get_run)).param(ID).ok(200, r::<RunView>).errors(&[404]),
        Operation::new("post", "/v1/runs/{id}/cancel", "cancelRun", "Cancels a run: at once when queued, when its running tasks stop otherwise.", Some(Scope::Run), post(cancel_run)).param(ID).ok(200, r::<RunView>).errors(&[404]),
        Operation::new("post", "/v1/runs/{id}/retry", "retryRun", "Queues a failed or cancelled run again; what it committed is kept.", Some(Scope::Run), post(retry_run)).param(ID).ok(200, r::<RunView>).errors(&[404, 409]),
        Operation::new("get", "/v1/runs/{id}/events", "runEvents", "The run's events as server-sent events (state, progress, task); resumable with Last-Event-ID.", Some(Scope::Read), get(run_events))
            .param(ID)
            .param(Param::header("Last-Event-ID", "Resume after this event."))
            .event_stream()
            .errors(&[404]),
        Operation::new("get", "/v1/datasets", "listDatasets", "Datasets with their latest version.", Some(Scope::Read), get(list_datasets)).ok(200, r::<Object>),
        Operation::new("get", "/v1/datasets/{name}", "getDataset", "A dataset's versions (or one, for name@N), as `curate datasets show --json`.", Some(Scope::Read), get(get_dataset)).param(NAME).ok(200, r::<Object>).errors(&[404, 422]),
        Operation::new("get", "/v1/datasets/{reference}/records", "datasetRecords", "The first records of a version.", Some(Scope::Read), get(dataset_records))
            .param(REFERENCE)
            .param(Param::query_int("limit", "Records (1-1000, default 20).", 1000))
            .ok(200, r::<Object>)
            .errors(&[400, 404, 422]),
        Operation::new("post", "/v1/datasets/{reference}/tags", "tagVersion", "Tags a version.", Some(Scope::Run), post(tag_version)).param(REFERENCE).body(b::<TagBody>).ok(200, r::<Object>).errors(&[400, 404, 422]),
        Operation::new("get", "/v1/diff", "diffVersions", "Records added and removed between two versions, and why.", Some(Scope::Read), get(diff))
            .param(Param::query_required("from", "The older version (name@N)."))
            .param(Param::query_required("to", "The newer version (name@N)."))
            .param(Param::query_int("limit", "Ids listed per side (1-100000, default 100).", 100_000))
            .ok(200, r::<Object>)
            .errors(&[400, 404, 422]),
        Operation::new("get", "/v1/records/{id}", "explainRecord", "Where a record came from, what touched it, which versions hold it (explain).", Some(Scope::Read), get(explain))
            .param(Param::path("id", "Record id."))
            .ok(200, r::<Object>)
            .errors(&[404]),
        Operation::new("post", "/v1/forget", "forgetRecords", "Removes records (and all derived from them) from every dataset holding them, audited.", Some(Scope::Admin), post(forget)).body(b::<ForgetBody>).ok(200, r::<Object>).errors(&[400, 404, 422]),
        Operation::new("get", "/v1/ops", "listOps", "Operators with their documented parameters.", Some(Scope::Read), get(list_ops)).ok(200, r::<Object>),
        Operation::new("get", "/v1/workers", "listWorkers", "Workers seen in the last day.", Some(Scope::Read), get(list_workers)).ok(200, r::<Object>),
        Operation::new("post", "/v1/workers", "registerWorker", "Registers a worker (`curate worker`).", Some(Scope::Run), post(register_worker)).body(b::<RegisterWorker>).ok(201, r::<WorkerRegistered>).errors(&[400, 422]),
        Operation::new("post", "/v1/workers/{worker}/lease", "leaseTask", "Hands the worker its next task (204: none now).", Some(Scope::Run), post(lease))
            .param(Param::path("worker", "Worker id."))
            .ok(200, r::<LeasedTask>)
            .no_content()
            .errors(&[404]),
        Operation::new("post", "/v1/tasks/{task}/heartbeat", "heartbeatTask", "Extends a task's lease; says whether to go on.", Some(Scope::Run), post(heartbeat))
            .param(Param::path_int("task", "Task id."))
            .body(b::<TaskReportBody>)
            .ok(200, r::<HeartbeatReply>)
            .errors(&[400, 404]),
        Operation::new("post", "/v1/tasks/{task}/complete", "completeTask", "Reports a task done with its result.", Some(Scope::Run), post(complete)).param(Param::path_int("task", "Task id.")).body(b::<TaskReportBody>).no_content().errors(&[400, 404]),
        Operation::new("post", "/v1/tasks/{task}/fail", "failTask", "Reports a failed attempt of a task.", Some(Scope::Run), post(fail)).param(Param::path_int("task", "Task id.")).body(b::<TaskReportBody>).no_content().errors(&[400, 404]),
        Operation::new("get", "/v1/watches", "listWatches", "Watched (continuous) pipelines: cursor, lag, pending files, state.", Some(Scope::Read), get(list_watches)).ok(200, r::<WatchList>),
        Operation::new("post", "/v1/watches/{name}/pause", "pauseWatch", "Stops starting incremental runs of a watched pipeline.", Some(Scope::Run), post(pause_watch)).param(NAME).ok(200, r::<WatchView>).errors(&[404, 409]),
        Operation::new("post", "/v1/watches/{name}/resume", "resumeWatch", "Starts watching again.", Some(Scope::Run), post(resume_watch)).param(NAME).ok(200, r::<WatchView>).errors(&[404, 409]),
        Operation::new("get", "/v1/queue", "queue", "Who holds which slot, the runs waiting with what they wait for, and dead-lettered tasks with their errors.", Some(Scope::Read), get(queue)).ok(200, r::<Object>),
        Operation::new("get", "/v1/audit", "auditLog", "Mutating calls: token name, action, target, time; newest first.", Some(Scope::Admin), get(audit_log))
            .param(Param::query_int("cursor", "The next_cursor of the previous page.", i64::MAX))
            .param(Param::query_int("limit", "Entries (1-1000, default 100).", 1000))
            .ok(200, r::<Object>)
            .errors(&[400]),
    ]
}

/// The service's router: the operations, the OpenAPI document and the web UI.
pub(crate) fn router(service: Shared) -> Router {
    let mut router: Router<Shared> = Router::new().route("/", get(ui)).route("/openapi.json", get(openapi_json));
    for op in operations() {
        router = router.route(op.path, op.route);
    }
    router.fallback(|| async { ApiError::not_found("no such endpoint; GET /openapi.json lists them") }).with_state(service)
}
