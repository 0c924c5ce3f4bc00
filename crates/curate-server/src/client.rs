//! A blocking client of the API, for `curate worker` and the CLI's `--server`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::api::WorkerRegistered;
use crate::worker::LeasedTask;

/// Environment variable holding the token the CLI and workers send.
pub const TOKEN_ENV: &str = "CURATE_TOKEN";

/// A connection to a `curate serve`.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::blocking::Client,
}

impl Client {
    /// A client of the server at `url` (`http://host:port`) sending `token`.
    pub fn new(url: &str, token: Option<String>) -> Result<Self, String> {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| format!("cannot create an HTTP client: {e}"))?;
        Ok(Client { base: url.trim_end_matches('/').to_string(), token, http })
    }

    /// A client of `url` with the token from `$CURATE_TOKEN`.
    pub fn from_env(url: &str) -> Result<Self, String> {
        Self::new(url, std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty()))
    }

    fn send(&self, method: reqwest::Method, path: &str, body: Option<&Value>, headers: &[(&str, &str)]) -> Result<(u16, Value), String> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        let resp = req.send().map_err(|e| format!("{method} {url}: {e} (is `curate serve` running there?)"))?;
        let status = resp.status().as_u16();
        let text = resp.text().map_err(|e| format!("{method} {url}: reading the answer: {e}"))?;
        let value = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        if status >= 400 {
            let detail = value.get("detail").and_then(Value::as_str).map_or_else(|| value.to_string(), str::to_owned);
            let mut message = format!("{method} {path}: {status}: {detail}");
            if let Some(errors) = value.get("errors").and_then(Value::as_array) {
                for e in errors.iter().filter_map(Value::as_str) {
                    message.push_str(&format!("\n  {e}"));
                }
            }
            return Err(message);
        }
        Ok((status, value))
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Result<Value, String> {
        self.send(reqwest::Method::GET, path, None, &[]).map(|(_, v)| v)
    }

    /// `POST path` with a JSON body and extra headers; the status and the answer.
    pub fn post(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Result<(u16, Value), String> {
        self.send(reqwest::Method::POST, path, Some(body), headers)
    }

    /// Registers this process as a worker with `slots`.
    pub(crate) fn register_worker(&self, name: &str, slots: i64) -> Result<WorkerRegistered, String> {
        let (_, v) = self.post("/v1/workers", &json!({ "name": name, "slots": slots, "host": curate_io::host_name() }), &[])?;
        serde_json::from_value(v).map_err(|e| format!("the server's worker registration: {e}"))
    }

    pub(crate) fn lease(&self, worker: &str) -> Result<Option<LeasedTask>, String> {
        let (status, v) = self.post(&format!("/v1/workers/{worker}/lease"), &json!({}), &[])?;
        if status == 204 {
            return Ok(None);
        }
        serde_json::from_value(v).map(Some).map_err(|e| format!("the server's lease: {e}"))
    }

    pub(crate) fn heartbeat(&self, task: i64, worker: &str) -> Result<String, String> {
        let (_, v) = self.post(&format!("/v1/tasks/{task}/heartbeat"), &json!({ "worker": worker }), &[])?;
        Ok(v.get("action").and_then(Value::as_str).unwrap_or("continue").to_string())
    }

    pub(crate) fn complete(&self, task: i64, worker: &str, result: &Value) -> Result<(), String> {
        self.post(&format!("/v1/tasks/{task}/complete"), &json!({ "worker": worker, "result": result }), &[]).map(drop)
    }

    pub(crate) fn fail(&self, task: i64, worker: &str, error: &str) -> Result<(), String> {
        self.post(&format!("/v1/tasks/{task}/fail"), &json!({ "worker": worker, "error": error }), &[]).map(drop)
    }
}
