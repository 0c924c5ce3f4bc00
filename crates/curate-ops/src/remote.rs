//! `remote`: an operator served by an HTTP microservice. The service describes itself
//! (`GET /manifest`: name, version, input columns, output schema, batch size, concurrency)
//! and scores batches (`POST /batch`, JSON or Arrow IPC). The client sends sub-batches
//! concurrently under an additive-increase / multiplicative-decrease limit, retries only
//! what may pass on retry (429, 5xx, timeouts) with jittered backoff and `Retry-After`,
//! pauses behind an open circuit after repeated failures, sends an idempotency key per
//! batch, and quarantines the records of a batch that finally fails, with the service's
//! error. The manifest's name, version and output schema are part of the step's cache key.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use arrow_array::{Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use curate_core::operator::{BuiltinOp, Columns, OpError, OpKind, OpOutput, Operator, Verdicts};
use curate_core::record::ID;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::util::with_columns;

/// How batches travel to the service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WireFormat {
    /// `{"columns": {"id": [...], "text": [...]}}` both ways.
    #[default]
    Json,
    /// An Arrow IPC stream both ways (`application/vnd.apache.arrow.stream`).
    Arrow,
}

/// Parameters of `remote`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoteParams {
    /// Base URL of the service (`http://127.0.0.1:8000`); it answers `GET URL/manifest` and
    /// `POST URL/batch`.
    pub url: String,
    /// Body format of `POST /batch`: `json` or `arrow`.
    #[serde(default)]
    pub format: WireFormat,
    /// Seconds a request may take before it is abandoned and retried.
    #[serde(default = "default_timeout")]
    pub timeout: f64,
    /// Attempts per batch before its records are quarantined with the service's last error.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Records per request (at most the manifest's `max_batch_size`).
    pub batch_size: Option<usize>,
    /// Requests in flight at most (at most the manifest's `max_concurrency`).
    pub max_concurrency: Option<usize>,
}

fn default_timeout() -> f64 {
    30.0
}

fn default_attempts() -> u32 {
    6
}

/// What the service says of itself.
#[derive(Debug, Clone, Deserialize)]
struct Manifest {
    name: String,
    version: String,
    input_columns: Vec<String>,
    output_schema: Vec<OutputColumn>,
    max_batch_size: usize,
    max_concurrency: usize,
}

#[derive(Debug, Clone, Deserialize)]
struct OutputColumn {
    name: String,
    #[serde(rename = "type")]
    ty: String,
}

fn data_type(ty: &str) -> Option<DataType> {
    Some(match ty {
        "float64" | "double" => DataType::Float64,
        "int64" => DataType::Int64,
        "utf8" | "string" => DataType::Utf8,
        "bool" | "boolean" => DataType::Boolean,
        _ => return None,
    })
}

/// Scores records with an external service (see the module documentation).
pub struct Remote {
    params: RemoteParams,
    manifest: Manifest,
    outputs: Vec<(String, DataType)>,
    client: reqwest::blocking::Client,
    limit: Limiter,
    circuit: Circuit,
}

impl BuiltinOp for Remote {
    const NAME: &'static str = "remote";
    const VERSION: &'static str = "1";
    const KIND: OpKind = OpKind::Annotate;
    const SUMMARY: &'static str = "Add the columns an HTTP model service computes (GET /manifest, POST /batch), with adaptive concurrency, retries and quarantine";
    type Params = RemoteParams;

    fn new(params: Self::Params) -> Result<Self, String> {
        if !(params.timeout > 0.0) {
            return Err("timeout must be a positive number of seconds".into());
        }
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs_f64(params.timeout))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let base = params.url.trim_end_matches('/');
        let manifest: Manifest = client
            .get(format!("{base}/manifest"))
            .send()
            .and_then(|r| r.error_for_status())
            .and_then(|r| r.json())
            .map_err(|e| format!("url: cannot read the service's manifest at {base}/manifest: {e}"))?;
        let outputs = manifest
            .output_schema
            .iter()
            .map(|c| data_type(&c.ty).map(|t| (c.name.clone(), t)).ok_or_else(|| format!("the service's output column `{}` has type `{}`; supported: float64, int64, utf8, bool", c.name, c.ty)))
            .collect::<Result<Vec<_>, _>>()?;
        if manifest.max_batch_size == 0 || manifest.max_concurrency == 0 {
            return Err("the service's manifest gives a max_batch_size or max_concurrency of 0".into());
        }
        let most = params.max_concurrency.unwrap_or(usize::MAX).min(manifest.max_concurrency).max(1);
        Ok(Remote { limit: Limiter::new(most), circuit: Circuit::default(), outputs, manifest, client, params })
    }
}

impl Operator for Remote {
    fn columns(&self) -> Columns {
        Columns { reads: self.manifest.input_columns.clone(), writes: self.outputs.clone() }
    }

    fn process(&self, batch: RecordBatch) -> Result<OpOutput, OpError> {
        let n = batch.num_rows();
        let size = self.params.batch_size.unwrap_or(usize::MAX).min(self.manifest.max_batch_size).max(1);
        let chunks: Vec<(usize, usize)> = (0..n).step_by(size).map(|s| (s, (s + size).min(n))).collect();
        let results: Vec<Mutex<Option<Result<Vec<ArrayRef>, String>>>> = chunks.iter().map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(0);
        // Workers pull chunks in order; the limiter decides how many requests are in flight.
        std::thread::scope(|scope| {
            for _ in 0..self.limit.most.min(chunks.len()) {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(start, end)) = chunks.get(i) else { break };
                    let r = self.send(&batch.slice(start, end - start));
                    *results[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
                });
            }
        });
        let mut verdicts = Verdicts::keep_all(n);
        let mut columns: Vec<Vec<ArrayRef>> = vec![Vec::new(); self.outputs.len()];
        for ((start, end), r) in chunks.iter().zip(results) {
            match r.into_inner().unwrap_or_else(|p| p.into_inner()) {
                Some(Ok(cols)) => cols.into_iter().zip(columns.iter_mut()).for_each(|(c, all)| all.push(c)),
                failed => {
                    let error = match failed {
                        Some(Err(e)) => e,
                        _ => "the request was never sent".into(),
                    };
                    verdicts.fail_rows(*start..*end, &format!("remote service {} v{}: {error}", self.manifest.name, self.manifest.version));
                    for ((_, ty), all) in self.outputs.iter().zip(columns.iter_mut()) {
                        all.push(arrow_array::new_null_array(ty, end - start));
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(self.outputs.len());
        for ((name, ty), parts) in self.outputs.iter().zip(columns) {
            let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
            let column = if refs.is_empty() { arrow_array::new_null_array(ty, 0) } else { arrow_select::concat::concat(&refs).map_err(|e| OpError(e.to_string()))? };
            out.push((name.as_str(), column));
        }
        let batch = with_columns(&batch, out)?;
        let failed = !verdicts.failures().is_empty();
        Ok(OpOutput { batch, verdicts: failed.then_some(verdicts) })
    }

    fn content_key(&self) -> Option<String> {
        // A new model version (or output schema) behind the same URL recomputes the step;
        // moving the service elsewhere does not.
        let outputs: Vec<String> = self.outputs.iter().map(|(n, t)| format!("{n}:{t}")).collect();
        Some(format!("{}@{} -> {}", self.manifest.name, self.manifest.version, outputs.join(",")))
    }
}

impl Remote {
    /// Sends one sub-batch until it succeeds, fails for good, or runs out of attempts.
    fn send(&self, rows: &RecordBatch) -> Result<Vec<ArrayRef>, String> {
        let (body, content_type) = self.encode(rows)?;
        let key = self.idempotency_key(rows);
        let mut last = String::new();
        for attempt in 0..self.params.max_attempts.max(1) {
            self.circuit.wait();
            let slot = self.limit.acquire();
            let sent = self
                .client
                .post(format!("{}/batch", self.params.url.trim_end_matches('/')))
                .header("Content-Type", content_type)
                .header("Idempotency-Key", &key)
                .body(body.clone())
                .send();
            let wait = match sent {
                Ok(r) if r.status().is_success() => {
                    let bytes = r.bytes().map_err(|e| e.to_string());
                    match bytes.and_then(|b| self.decode(&b, rows.num_rows())) {
                        Ok(cols) => {
                            self.limit.succeeded();
                            self.circuit.succeeded();
                            return Ok(cols);
                        }
                        // A reply that does not parse will not parse next time either.
                        Err(e) => return Err(format!("unreadable reply: {e}")),
                    }
                }
                Ok(r) => {
                    let status = r.status();
                    let retry_after = r.headers().get("Retry-After").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<f64>().ok());
                    last = format!("HTTP {}: {}", status.as_u16(), r.text().unwrap_or_default().trim());
                    if status.as_u16() == 429 {
                        self.limit.overloaded(true);
                        retry_after.map(Duration::from_secs_f64)
                    } else if status.is_server_error() {
                        self.circuit.failed();
                        retry_after.map(Duration::from_secs_f64)
                    } else {
                        return Err(last);
                    }
                }
                Err(e) => {
                    last = if e.is_timeout() { format!("no reply within {} s", self.params.timeout) } else { e.to_string() };
                    self.limit.overloaded(false);
                    self.circuit.failed();
                    None
                }
            };
            drop(slot);
            if attempt + 1 < self.params.max_attempts {
                std::thread::sleep(wait.unwrap_or_else(|| backoff(attempt)));
            }
        }
        Err(format!("{last} (after {} attempts)", self.params.max_attempts.max(1)))
    }

    /// The same records always carry the same key, so a service can recognise a retry,
    /// within a run or across runs.
    fn idempotency_key(&self, rows: &RecordBatch) -> String {
        let mut h = blake3::Hasher::new();
        h.update(self.content_key().unwrap_or_default().as_bytes());
        if let Some(ids) = rows.column_by_name(ID).and_then(|c| c.as_any().downcast_ref::<StringArray>()) {
            for id in ids.iter() {
                h.update(id.unwrap_or_default().as_bytes());
                h.update(&[0]);
            }
        }
        h.finalize().to_hex().to_string()
    }

    fn encode(&self, rows: &RecordBatch) -> Result<(Vec<u8>, &'static str), String> {
        let mut names = vec![ID.to_string()];
        names.extend(self.manifest.input_columns.iter().filter(|c| c.as_str() != ID).cloned());
        let columns = names
            .iter()
            .map(|n| rows.column_by_name(n).cloned().ok_or_else(|| format!("the batch has no column `{n}` the service reads")))
            .collect::<Result<Vec<_>, _>>()?;
        match self.params.format {
            WireFormat::Json => {
                let mut map = serde_json::Map::new();
                for (n, c) in names.iter().zip(&columns) {
                    let strings = c.as_any().downcast_ref::<StringArray>().ok_or_else(|| format!("column `{n}` is {}, the JSON format sends text columns", c.data_type()))?;
                    map.insert(n.clone(), Value::from(strings.iter().map(|s| s.map(Value::from).unwrap_or(Value::Null)).collect::<Vec<_>>()));
                }
                Ok((serde_json::to_vec(&json!({ "columns": map })).map_err(|e| e.to_string())?, "application/json"))
            }
            WireFormat::Arrow => {
                let fields: Vec<Field> = names.iter().zip(&columns).map(|(n, c)| Field::new(n, c.data_type().clone(), true)).collect();
                let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| e.to_string())?;
                let mut out = Vec::new();
                let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut out, &batch.schema()).map_err(|e| e.to_string())?;
                w.write(&batch).and_then(|()| w.finish()).map_err(|e| e.to_string())?;
                drop(w);
                Ok((out, "application/vnd.apache.arrow.stream"))
            }
        }
    }

    fn decode(&self, body: &[u8], rows: usize) -> Result<Vec<ArrayRef>, String> {
        let columns: Vec<ArrayRef> = match self.params.format {
            WireFormat::Json => {
                let v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
                self.outputs
                    .iter()
                    .map(|(name, ty)| {
                        let values = v["columns"][name].as_array().ok_or_else(|| format!("no column `{name}` in the reply"))?;
                        json_array(values, ty).ok_or_else(|| format!("column `{name}` does not hold {ty} values"))
                    })
                    .collect::<Result<_, String>>()?
            }
            WireFormat::Arrow => {
                let reader = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(body), None).map_err(|e| e.to_string())?;
                let batches = reader.collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())?;
                let schema = batches.first().map(|b| b.schema()).ok_or("an empty Arrow stream")?;
                let batch = arrow_select::concat::concat_batches(&schema, &batches).map_err(|e| e.to_string())?;
                self.outputs
                    .iter()
                    .map(|(name, ty)| {
                        let c = batch.column_by_name(name).ok_or_else(|| format!("no column `{name}` in the reply"))?;
                        if c.data_type() != ty {
                            return Err(format!("column `{name}` is {}, the manifest says {ty}", c.data_type()));
                        }
                        Ok(c.clone())
                    })
                    .collect::<Result<_, String>>()?
            }
        };
        match columns.iter().find(|c| c.len() != rows) {
            Some(c) => Err(format!("{} values for {rows} records", c.len())),
            None => Ok(columns),
        }
    }
}

fn json_array(values: &[Value], ty: &DataType) -> Option<ArrayRef> {
    Some(match ty {
        DataType::Float64 => Arc::new(values.iter().map(|v| if v.is_null() { Some(None) } else { v.as_f64().map(Some) }).collect::<Option<Float64Array>>()?),
        DataType::Int64 => Arc::new(values.iter().map(|v| if v.is_null() { Some(None) } else { v.as_i64().map(Some) }).collect::<Option<Int64Array>>()?),
        DataType::Boolean => Arc::new(values.iter().map(|v| if v.is_null() { Some(None) } else { v.as_bool().map(Some) }).collect::<Option<BooleanArray>>()?),
        DataType::Utf8 => Arc::new(values.iter().map(|v| if v.is_null() { Some(None) } else { v.as_str().map(Some) }).collect::<Option<StringArray>>()?),
        _ => return None,
    })
}

/// Exponential backoff with jitter: 50 ms doubling, capped at 5 s, times 0.5 to 1.5.
fn backoff(attempt: u32) -> Duration {
    let base = (0.05 * f64::from(1u32 << attempt.min(7))).min(5.0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let jitter = 0.5 + f64::from(nanos % 1000) / 1000.0;
    Duration::from_secs_f64(base * jitter)
}

/// Requests in flight under an additive-increase / multiplicative-decrease limit: about one
/// more per round trip's worth of successes, half after an overload (a 429 or a timeout).
/// The concurrency an overload happened at becomes a ceiling the limit then approaches
/// again slowly, so a service whose manifest overstates its capacity sees few 429s.
struct Limiter {
    most: usize,
    state: Mutex<LimitState>,
    freed: Condvar,
}

struct LimitState {
    limit: f64,
    in_flight: usize,
    /// Requests in flight below the last overload; probed past slowly.
    ceiling: f64,
}

/// How much slower the limit grows past the ceiling than below it.
const PROBE_SLOWDOWN: f64 = 16.0;

/// A slot in flight; given back when dropped.
struct Slot<'a>(&'a Limiter);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut s = self.0.state.lock().unwrap_or_else(|p| p.into_inner());
        s.in_flight -= 1;
        self.0.freed.notify_all();
    }
}

impl Limiter {
    fn new(most: usize) -> Self {
        Limiter { most, state: Mutex::new(LimitState { limit: 1.0, in_flight: 0, ceiling: most as f64 }), freed: Condvar::new() }
    }

    fn acquire(&self) -> Slot<'_> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while s.in_flight >= s.limit.floor().max(1.0) as usize {
            s = self.freed.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        s.in_flight += 1;
        Slot(self)
    }

    fn succeeded(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let step = if s.limit < s.ceiling { 1.0 / s.limit } else { 1.0 / (s.limit * PROBE_SLOWDOWN) };
        s.limit = (s.limit + step).min(self.most as f64);
        if s.limit > s.ceiling + 1.0 {
            s.ceiling = s.limit - 1.0;
        }
        self.freed.notify_all();
    }

    /// Halves the limit after a 429 (`refused`, which also sets the ceiling: this request
    /// was one of `in_flight`, one fewer went through) or a timeout (which says nothing of
    /// the concurrency the service takes: a hung request is not a full one).
    fn overloaded(&self, refused: bool) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if refused {
            s.ceiling = (s.in_flight as f64 - 1.0).max(1.0);
        }
        s.limit = (s.limit / 2.0).max(1.0);
    }
}

/// Opens after repeated failures: requests then wait out a cool-down before one more try,
/// instead of hammering a service that is down.
#[derive(Default)]
struct Circuit {
    state: Mutex<(u32, Option<Instant>)>,
}

const CIRCUIT_FAILURES: u32 = 5;
const CIRCUIT_COOLDOWN: Duration = Duration::from_millis(500);

impl Circuit {
    fn wait(&self) {
        let until = self.state.lock().unwrap_or_else(|p| p.into_inner()).1;
        if let Some(t) = until {
            std::thread::sleep(t.saturating_duration_since(Instant::now()));
        }
    }

    fn failed(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.0 += 1;
        if s.0 >= CIRCUIT_FAILURES {
            if s.1.is_none() {
                tracing::warn!(failures = s.0, "remote service failing; pausing requests");
            }
            s.1 = Some(Instant::now() + CIRCUIT_COOLDOWN);
        }
    }

    fn succeeded(&self) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = (0, None);
    }
}
