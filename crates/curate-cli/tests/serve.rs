//! `curate serve` as a user meets it: a real server process on a loopback port, driven
//! over HTTP; real `curate worker` processes; kill -9 of workers and of the server. The
//! contract tests run on SQLite (the embedded default) and on the local PostgreSQL.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{curate_env, tree, write};
use serde_json::{json, Value};

/// A registry and working directory for one test.
struct Home {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Home {
    fn sqlite() -> Self {
        Home { dir: tempfile::tempdir().unwrap(), env: Vec::new() }
    }

    fn postgres() -> Self {
        Home { dir: tempfile::tempdir().unwrap(), env: vec![("CURATE_REGISTRY".into(), common::fresh_postgres("serve_test"))] }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn curate(&self, args: &[&str]) -> String {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        curate_env(self.path(), &env, args)
    }

    /// A new token with `scope`: the last word of `curate tokens create`.
    fn token(&self, scope: &str, name: &str) -> String {
        let out = self.curate(&["tokens", "create", "--scope", scope, "--name", name]);
        out.split_whitespace().last().unwrap().to_string()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_curate"));
        c.args(args).current_dir(self.path()).env("CURATE_LOG", "warn").envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        c
    }

    /// Starts `curate serve` on a free loopback port with `args`.
    fn serve(&self, args: &[&str]) -> Server {
        let mut all = vec!["serve", "--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let mut child = self.command(&all).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().strip_prefix("listening on http://").unwrap_or_else(|| panic!("curate serve said {line:?}")).to_string();
        Server { child, addr }
    }

    /// Starts `curate worker` against `server`.
    fn worker(&self, server: &Server, token: &str, slots: usize) -> Child {
        let url = format!("http://{}", server.addr);
        self.command(&["worker", "--server", &url, "--slots", &slots.to_string()]).env("CURATE_TOKEN", token).spawn().unwrap()
    }
}

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// One HTTP/1.1 exchange: status, headers (lowercased names) and body.
fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&Value>) -> (u16, Vec<(String, String)>, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())).collect();
    let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    (status, headers, if chunked { dechunk(rest) } else { rest.to_string() })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// A JSON call with a bearer token.
fn api(addr: &str, token: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let (status, _, text) = http(addr, method, path, &[("Authorization", &auth)], body);
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Polls a run until it ends; panics after `limit`.
fn wait_run(addr: &str, token: &str, id: i64, limit: Duration) -> Value {
    let start = Instant::now();
    loop {
        let (status, run) = api(addr, token, "GET", &format!("/v1/runs/{id}"), None);
        assert_eq!(status, 200, "{run}");
        if ["succeeded", "failed", "cancelled"].contains(&run["state"].as_str().unwrap()) {
            return run;
        }
        assert!(start.elapsed() < limit, "run {id} did not end within {limit:?}: {run}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn text(i: usize) -> String {
    if i % 4 == 0 {
        format!("short {i}")
    } else {
        format!("record number {i} has enough words to pass the length filter easily")
    }
}

fn corpus(dir: &Path, file: &str, ids: std::ops::Range<usize>) {
    write(&dir.join(file), ids.map(|i| format!("{{\"id\":\"r{i}\",\"text\":\"{}\"}}\n", text(i))).collect::<String>());
}

const WEB: &str = "name: web\ninput:\n  path: in/*.jsonl\n  id_field: id\nsteps:\n  - op: length_filter\n    min_chars: 30\n  - op: normalize\n    form: nfc\noutput:\n  path: out\n";

macro_rules! on_both_backends {
    ($($name:ident),*) => {
        mod sqlite { $( #[test] fn $name() { super::$name(super::Home::sqlite()) } )* }
        mod postgres { $( #[test] fn $name() { super::$name(super::Home::postgres()) } )* }
    };
}

on_both_backends!(
    the_api_contract_works_with_tokens_scopes_and_audit,
    a_killed_worker_or_server_loses_and_duplicates_nothing,
    failing_tasks_are_retried_then_dead_lettered,
    a_watched_pipeline_turns_arriving_and_removed_files_into_versions
);

fn the_api_contract_works_with_tokens_scopes_and_audit(h: Home) {
    corpus(h.path(), "in/a.jsonl", 0..40);
    corpus(h.path(), "in/b.jsonl", 40..80);
    let (read, run, admin) = (h.token("read", "reader"), h.token("run", "ci"), h.token("admin", "ops"));
    let s = h.serve(&["--workers", "2"]);
    let a = s.addr.as_str();

    // One control plane per registry: a second server refuses to start.
    let second = h.command(&["serve", "--listen", "127.0.0.1:0"]).output().unwrap();
    assert!(!second.status.success() && String::from_utf8_lossy(&second.stderr).contains("another `curate serve`"), "{second:?}");

    // Health, the OpenAPI document and metrics need no token.
    assert_eq!(http(a, "GET", "/healthz", &[], None).0, 200);
    let (status, _, doc) = http(a, "GET", "/openapi.json", &[], None);
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for p in ["/v1/runs", "/v1/runs/{id}", "/v1/runs/{id}/events", "/v1/pipelines", "/v1/datasets/{name}", "/v1/records/{id}", "/v1/forget", "/v1/queue"] {
        assert!(doc["paths"][p].is_object(), "{p} missing from the OpenAPI document");
    }

    // No token, a wrong one, a missing scope: 401/403 as problem+json, and nothing happens.
    let spec = json!({ "spec": WEB });
    let (status, headers, body) = http(a, "POST", "/v1/pipelines", &[], Some(&spec));
    assert_eq!(status, 401, "{body}");
    assert!(headers.iter().any(|(k, v)| k == "content-type" && v == "application/problem+json"));
    assert_eq!(api(a, "cur_wrong", "POST", "/v1/pipelines", Some(&spec)).0, 401);
    let (status, problem) = api(a, &read, "POST", "/v1/pipelines", Some(&spec));
    assert_eq!(status, 403, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("needs run"), "{problem}");
    assert_eq!(api(a, &read, "GET", "/v1/pipelines", None).1["pipelines"], json!([]));

    // A spec that does not validate: 422 with located errors, as `curate validate` gives.
    let (status, problem) = api(a, &run, "POST", "/v1/pipelines", Some(&json!({ "spec": WEB.replace("min_chars", "min_charz") })));
    assert_eq!(status, 422, "{problem}");
    assert!(problem["errors"].as_array().unwrap().iter().any(|e| e.as_str().unwrap().contains("min_charz")), "{problem}");
    let (status, p) = api(a, &run, "POST", "/v1/pipelines", Some(&spec));
    assert_eq!(status, 201, "{p}");
    assert_eq!(api(a, &read, "GET", "/v1/pipelines/web", None).1["name"], "web");

    // Submitting twice with one idempotency key gives one run.
    let auth = format!("Bearer {run}");
    let submit = |key: &str| {
        let (status, _, body) = http(a, "POST", "/v1/runs", &[("Authorization", &auth), ("Idempotency-Key", key)], Some(&json!({ "pipeline": "web" })));
        (status, serde_json::from_str::<Value>(&body).unwrap())
    };
    let (first, created) = submit("k-1");
    assert_eq!(first, 201, "{created}");
    let (again, same) = submit("k-1");
    assert_eq!(again, 200);
    assert_eq!(same["id"], created["id"]);
    let id = created["id"].as_i64().unwrap();
    let done = wait_run(a, &read, id, Duration::from_secs(120));
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["version"], "web@1");
    assert_eq!(done["records_in"], 80);
    assert_eq!(done["records_out"], 60);
    assert_eq!(done["steps"][0]["dropped"]["length_filter:min_chars"], 20, "{done}");
    assert_eq!((done["steps"][0]["input"].as_u64(), done["steps"][0]["kept"].as_u64()), (Some(80), Some(60)), "{done}");
    assert_eq!((done["steps"][1]["input"].as_u64(), done["steps"][1]["kept"].as_u64()), (Some(60), Some(60)), "{done}");
    assert_eq!(done["progress"]["tasks_done"], done["progress"]["tasks_total"]);

    // The same spec run by the CLI into another output gives the same records.
    write(&h.path().join("cli.yaml"), WEB.replace("name: web", "name: web-cli").replace("path: out", "path: out-cli"));
    h.curate(&["run", "cli.yaml"]);
    let data = |d: &str| tree(h.path(), &[d]).into_iter().map(|(p, b)| (p.strip_prefix(d).unwrap().to_path_buf(), b)).collect::<std::collections::BTreeMap<_, _>>();
    assert_eq!(data("out/data"), data("out-cli/data"), "the service's output differs from the CLI's");

    // Datasets, records, explain.
    let (_, ds) = api(a, &read, "GET", "/v1/datasets/web", None);
    assert_eq!(ds["name"], "web");
    assert_eq!(ds["versions"][0]["version"], "web@1");
    assert_eq!(ds["versions"][0]["rows"], 60);
    let (_, records) = api(a, &read, "GET", "/v1/datasets/web@1/records?limit=3", None);
    assert_eq!(records["records"].as_array().unwrap().len(), 3, "{records}");
    let (status, e) = api(a, &read, "GET", "/v1/records/r5", None);
    assert_eq!(status, 200, "{e}");
    assert_eq!(e["occurrences"][0]["source_file"], "in/a.jsonl");
    assert_eq!(api(a, &read, "GET", "/v1/records/nope", None).0, 404);

    // Events: the whole history, then only what follows a Last-Event-ID.
    let (status, headers, events) = http(a, "GET", &format!("/v1/runs/{id}/events"), &[("Authorization", &auth)], None);
    assert_eq!(status, 200);
    assert!(headers.iter().any(|(k, v)| k == "content-type" && v.starts_with("text/event-stream")));
    let ids: Vec<i64> = events.lines().filter_map(|l| l.strip_prefix("id: ")).map(|v| v.parse().unwrap()).collect();
    assert!(events.contains("event: state") && events.contains("\"succeeded\""), "{events}");
    let mid = ids[ids.len() / 2];
    let (_, _, later) = http(a, "GET", &format!("/v1/runs/{id}/events"), &[("Authorization", &auth), ("Last-Event-ID", &mid.to_string())], None);
    let later_ids: Vec<i64> = later.lines().filter_map(|l| l.strip_prefix("id: ")).map(|v| v.parse().unwrap()).collect();
    assert_eq!(later_ids, ids.iter().copied().filter(|i| *i > mid).collect::<Vec<_>>());

    // The worker protocol answers 404 for tasks and workers it does not know.
    assert_eq!(api(a, &run, "POST", "/v1/tasks/0/complete", Some(&json!({ "worker": "w" }))).0, 404);
    assert_eq!(api(a, &run, "POST", "/v1/tasks/999999/heartbeat", Some(&json!({ "worker": "w" }))).0, 404);
    assert_eq!(api(a, &run, "POST", "/v1/workers/nobody/lease", None).0, 404);

    // Lists, retry of a succeeded run refused, queue, workers, ops, metrics, audit.
    let (_, page) = api(a, &read, "GET", "/v1/runs?state=succeeded&pipeline=web", None);
    assert_eq!(page["runs"].as_array().unwrap().len(), 1);
    assert_eq!(api(a, &run, "POST", &format!("/v1/runs/{id}/retry"), None).0, 409);
    assert_eq!(api(a, &read, "GET", "/v1/runs?state=bogus", None).0, 400);
    assert!(api(a, &read, "GET", "/v1/workers", None).1["workers"].as_array().unwrap().len() >= 2);
    assert!(api(a, &read, "GET", "/v1/queue", None).1["held"].is_array());
    assert!(!api(a, &read, "GET", "/v1/ops", None).1["ops"].as_array().unwrap().is_empty());
    let (_, _, metrics) = http(a, "GET", "/metrics", &[], None);
    assert!(metrics.contains("curate_runs{state=\"succeeded\"} 1"), "{metrics}");
    assert_eq!(api(a, &run, "GET", "/v1/audit", None).0, 403);
    let (_, audit) = api(a, &admin, "GET", "/v1/audit", None);
    let actions: Vec<(&str, &str)> = audit["calls"].as_array().unwrap().iter().map(|c| (c["actor"].as_str().unwrap(), c["action"].as_str().unwrap())).collect();
    assert!(actions.contains(&("ci", "runs.create")) && actions.contains(&("ci", "pipelines.create")), "{audit}");
    assert_eq!(actions.iter().filter(|(_, a)| *a == "runs.create").count(), 1, "a repeated key is not a second creation");

    // A revoked token stops working.
    h.curate(&["tokens", "revoke", "reader"]);
    assert_eq!(api(a, &read, "GET", "/v1/runs", None).0, 401);

    // The CLI talks to the server with --server.
    let url = format!("http://{a}");
    let env = [("CURATE_TOKEN", run.as_str())];
    let out = curate_env(h.path(), &env, &["--server", &url, "datasets", "show", "web"]);
    assert!(out.contains("web@1"), "{out}");
    let out = curate_env(h.path(), &env, &["--server", &url, "explain", "r5"]);
    assert!(out.contains("in/a.jsonl"), "{out}");
    write(&h.path().join("web2.yaml"), WEB.replace("min_chars: 30", "min_chars: 66"));
    let out = curate_env(h.path(), &env, &["--server", &url, "run", "web2.yaml"]);
    assert!(out.contains("web@2"), "{out}");
}

/// Eight shards of work, so a run has tasks in flight to interrupt.
fn big_corpus(dir: &Path) {
    for f in 0..8 {
        corpus(dir, &format!("in/part-{f}.jsonl"), f * 20_000..(f + 1) * 20_000);
    }
}

fn a_killed_worker_or_server_loses_and_duplicates_nothing(h: Home) {
    big_corpus(h.path());
    write(&h.path().join("ref.yaml"), WEB.replace("name: web", "name: reference").replace("path: out", "path: ref"));
    h.curate(&["run", "ref.yaml"]);
    let run = h.token("run", "ci");
    let mut s = h.serve(&["--workers", "0", "--lease-secs", "2"]);
    let mut w1 = h.worker(&s, &run, 1);
    let (status, created) = api(&s.addr, &run, "POST", "/v1/runs", Some(&json!({ "spec": WEB })));
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();

    // Kill the worker while it holds a task; a second worker takes it after the lease.
    let held = |addr: &str| api(addr, &run, "GET", "/v1/queue", None).1["held"].as_array().cloned().unwrap_or_default();
    let start = Instant::now();
    let dying: Vec<Value> = loop {
        let tasks: Vec<Value> = held(&s.addr).into_iter().filter(|t| t["kind"] == "map").collect();
        if !tasks.is_empty() {
            break tasks.iter().map(|t| t["task"].clone()).collect();
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no map task was ever held");
        std::thread::sleep(Duration::from_millis(20));
    };
    w1.kill().unwrap();
    w1.wait().unwrap();
    let killed_at = Instant::now();
    let mut w2 = h.worker(&s, &run, 2);
    let first_worker = api(&s.addr, &run, "GET", "/v1/queue", None).1["held"].as_array().cloned().unwrap_or_default();
    let old_holder: Vec<Value> = first_worker.iter().filter(|t| dying.contains(&t["task"])).map(|t| t["worker"].clone()).collect();
    let retaken = loop {
        if held(&s.addr).iter().any(|t| dying.contains(&t["task"]) && !old_holder.contains(&t["worker"])) {
            break killed_at.elapsed();
        }
        assert!(killed_at.elapsed() < Duration::from_secs(60), "the dead worker's task was never taken again");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(retaken < Duration::from_secs(12), "taken again after {retaken:?}, more than lease + 10 s");

    // Kill the server mid-run and start it again: the run still ends with the reference output.
    std::thread::sleep(Duration::from_millis(300));
    s.kill();
    let s = h.serve(&["--workers", "0", "--lease-secs", "2"]);
    w2.kill().unwrap();
    w2.wait().unwrap();
    let mut w3 = h.worker(&s, &run, 2);
    let done = wait_run(&s.addr, &run, id, Duration::from_secs(300));
    w3.kill().unwrap();
    w3.wait().unwrap();
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["version"], "web@1");
    let data = |d: &str| tree(h.path(), &[d]).into_iter().map(|(p, b)| (p.strip_prefix(d).unwrap().to_path_buf(), b)).collect::<std::collections::BTreeMap<_, _>>();
    assert_eq!(data("out/data"), data("ref/data"), "output differs from an uninterrupted run");
    assert_eq!(done["records_out"], 120_000);
}

fn failing_tasks_are_retried_then_dead_lettered(h: Home) {
    corpus(h.path(), "in/a.jsonl", 0..10);
    let run = h.token("run", "ci");
    // Workers cannot read the input (it is a directory by then): every attempt fails.
    let s = h.serve(&["--workers", "0", "--max-attempts", "3", "--backoff-secs", "0.1"]);
    let (_, created) = api(&s.addr, &run, "POST", "/v1/runs", Some(&json!({ "spec": WEB })));
    let id = created["id"].as_i64().unwrap();
    let start = Instant::now();
    while api(&s.addr, &run, "GET", &format!("/v1/runs/{id}"), None).1["progress"]["tasks_total"].as_i64().unwrap_or(0) < 2 {
        assert!(start.elapsed() < Duration::from_secs(30), "the run was never planned");
        std::thread::sleep(Duration::from_millis(50));
    }
    let queued = api(&s.addr, &run, "GET", &format!("/v1/runs/{id}"), None).1;
    assert!(queued["waiting_for"].as_str().unwrap_or_default().contains("no worker"), "{queued}");
    std::fs::remove_file(h.path().join("in/a.jsonl")).unwrap();
    std::fs::create_dir(h.path().join("in/a.jsonl")).unwrap();
    let mut w = h.worker(&s, &run, 1);
    let done = wait_run(&s.addr, &run, id, Duration::from_secs(60));
    w.kill().unwrap();
    w.wait().unwrap();
    assert_eq!(done["state"], "failed", "{done}");
    assert!(done["error"].as_str().unwrap().contains("failed 3 times"), "{done}");
    let (_, queue) = api(&s.addr, &run, "GET", "/v1/queue", None);
    assert_eq!(queue["dead"][0]["run"], id, "{queue}");
    assert_eq!(queue["dead"][0]["attempts"], 3, "{queue}");
    let (_, metrics) = (0, http(&s.addr, "GET", "/metrics", &[], None).2);
    assert!(metrics.contains("curate_tasks{state=\"dead\"} 1"), "{metrics}");
}

#[test]
fn a_thousand_concurrent_submissions_with_a_hundred_keys_make_a_hundred_runs() {
    let h = Home::sqlite();
    corpus(h.path(), "in/a.jsonl", 0..10);
    let run = h.token("run", "ci");
    // No workers: the runs stay queued, which is all this test looks at.
    let s = h.serve(&["--workers", "0"]);
    let auth = format!("Bearer {run}");
    let ids = std::sync::Mutex::new(std::collections::BTreeMap::<String, i64>::new());
    std::thread::scope(|scope| {
        for t in 0..50 {
            let (a, auth, ids) = (&s.addr, &auth, &ids);
            scope.spawn(move || {
                for i in 0..20 {
                    let key = format!("key-{}", (t * 20 + i) % 100);
                    let (status, _, body) = http(a, "POST", "/v1/runs", &[("Authorization", auth), ("Idempotency-Key", &key)], Some(&json!({ "spec": WEB })));
                    assert!(status == 201 || status == 200, "{status}: {body}");
                    let id = serde_json::from_str::<Value>(&body).unwrap()["id"].as_i64().unwrap();
                    let mut ids = ids.lock().unwrap();
                    let seen = *ids.entry(key.clone()).or_insert(id);
                    assert_eq!(seen, id, "key {key} gave two runs");
                }
            });
        }
    });
    let (_, page) = api(&s.addr, &run, "GET", "/v1/runs?limit=500", None);
    assert_eq!(page["runs"].as_array().unwrap().len(), 100);
}

/// The web UI in Debian's chromium, driven by playwright (`tests/browser/ui.mjs`, set up
/// by `scripts/browser-env.sh`) against a real server holding two versions.
#[test]
fn the_web_ui_works_in_a_real_browser() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = root.join("tests/browser/ui.mjs");
    assert!(
        root.join("tests/browser/node_modules/playwright-core").is_dir() && Path::new("/usr/bin/chromium").exists(),
        "the browser test needs chromium and playwright-core: run scripts/browser-env.sh"
    );
    let h = Home::sqlite();
    corpus(h.path(), "in/a.jsonl", 0..40);
    let (run, admin) = (h.token("run", "ui"), h.token("admin", "ops"));
    let s = h.serve(&["--workers", "2"]);
    assert_eq!(api(&s.addr, &run, "POST", "/v1/pipelines", Some(&json!({ "spec": WEB }))).0, 201);
    let (_, first) = api(&s.addr, &run, "POST", "/v1/runs", Some(&json!({ "pipeline": "web" })));
    let id = first["id"].as_i64().unwrap();
    assert_eq!(wait_run(&s.addr, &run, id, Duration::from_secs(60))["state"], "succeeded");
    let (_, second) = api(&s.addr, &run, "POST", "/v1/runs", Some(&json!({ "spec": WEB.replace("min_chars: 30", "min_chars: 66") })));
    assert_eq!(wait_run(&s.addr, &run, second["id"].as_i64().unwrap(), Duration::from_secs(60))["state"], "succeeded");
    let url = format!("http://{}", s.addr);
    let out = Command::new("node")
        .arg(&script)
        .args(["--url", &url, "--token", &admin, "--run", &id.to_string(), "--dataset", "web", "--record", "r5", "--start", "web", "--timeout", "120"])
        .output()
        .expect("node runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser test failed:\n{text}");
}

/// Writes a JSONL file atomically (as a producer should: a rename into the watched directory).
fn drop_file(dir: &Path, name: &str, ids: std::ops::Range<usize>) {
    let tmp = dir.join(format!(".{name}.tmp"));
    write(&tmp, ids.map(|i| format!("{{\"id\":\"r{i}\",\"text\":\"{}\"}}\n", text(i))).collect::<String>());
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// The record ids of a version, sorted.
fn version_ids(addr: &str, token: &str, version: &str) -> Vec<String> {
    let (status, r) = api(addr, token, "GET", &format!("/v1/datasets/{version}/records?limit=1000"), None);
    assert_eq!(status, 200, "{r}");
    let mut ids: Vec<String> = r["records"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    ids
}

/// Kept ids of records `range` (the length filter drops every fourth).
fn kept(ranges: &[std::ops::Range<usize>]) -> Vec<String> {
    let mut ids: Vec<String> = ranges.iter().flat_map(|r| r.clone()).filter(|i| i % 4 != 0).map(|i| format!("r{i}")).collect();
    ids.sort();
    ids
}

/// Waits until the watch of `pipeline` committed `version`.
fn wait_version(addr: &str, token: &str, pipeline: &str, version: &str) -> Value {
    let start = Instant::now();
    loop {
        let (_, w) = api(addr, token, "GET", "/v1/watches", None);
        let watch = w["watches"].as_array().unwrap().iter().find(|x| x["pipeline"] == pipeline).cloned().unwrap_or(Value::Null);
        if watch["last_version"] == version && watch["pending"] == 0 {
            return watch;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{version} never came: {watch}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

const FEED: &str = "name: feed\ninput:\n  path: feed/*.jsonl\n  id_field: id\nsteps:\n  - op: length_filter\n    min_chars: 30\noutput:\n  path: out/feed\ntrigger:\n  watch:\n    interval: 200ms\n";

fn a_watched_pipeline_turns_arriving_and_removed_files_into_versions(h: Home) {
    std::fs::create_dir_all(h.path().join("feed")).unwrap();
    let run = h.token("run", "ci");
    let mut s = h.serve(&["--workers", "2"]);
    let (status, p) = api(&s.addr, &run, "POST", "/v1/pipelines", Some(&json!({ "spec": FEED })));
    assert_eq!(status, 201, "{p}");
    assert_eq!(p["trigger"]["watch"]["interval_ms"], 200);
    let feed = h.path().join("feed");

    drop_file(&feed, "a.jsonl", 0..20);
    wait_version(&s.addr, &run, "feed", "feed@1");
    assert_eq!(version_ids(&s.addr, &run, "feed@1"), kept(&[0..20]));
    drop_file(&feed, "b.jsonl", 20..40);
    let w = wait_version(&s.addr, &run, "feed", "feed@2");
    assert_eq!(w["files"], 2);
    assert_eq!(version_ids(&s.addr, &run, "feed@2"), kept(&[0..40]));

    // A removed file leaves the next version, audited like forget.
    std::fs::remove_file(feed.join("a.jsonl")).unwrap();
    wait_version(&s.addr, &run, "feed", "feed@3");
    assert_eq!(version_ids(&s.addr, &run, "feed@3"), kept(&[20..40]));
    let (_, ds) = api(&s.addr, &run, "GET", "/v1/datasets/feed@3", None);
    assert!(ds["versions"][0]["forget_audit"].is_i64(), "{ds}");

    // A changed file replaces its records; the server killed right after a file arrives
    // commits it once when it is back.
    drop_file(&feed, "b.jsonl", 20..30);
    drop_file(&feed, "c.jsonl", 40..60);
    std::thread::sleep(Duration::from_millis(250));
    s.kill();
    let s = h.serve(&["--workers", "2"]);
    let start = Instant::now();
    let last = loop {
        let (_, w) = api(&s.addr, &run, "GET", "/v1/watches", None);
        let w = w["watches"][0].clone();
        if w["pending"] == 0 && w["checked_at"].is_string() && w["last_version"] != "feed@3" {
            break w["last_version"].as_str().unwrap().to_string();
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the arrivals were never committed: {w}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(version_ids(&s.addr, &run, &last), kept(&[20..30, 40..60]), "{last}");

    // Paused, nothing is taken; resumed, it is.
    assert_eq!(api(&s.addr, &run, "POST", "/v1/watches/feed/pause", None).1["state"], "paused");
    drop_file(&feed, "d.jsonl", 60..70);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(api(&s.addr, &run, "GET", "/v1/watches", None).1["watches"][0]["last_version"], last.as_str());
    api(&s.addr, &run, "POST", "/v1/watches/feed/resume", None);
    let n: i64 = last.rsplit_once('@').unwrap().1.parse().unwrap();
    let next = format!("feed@{}", n + 1);
    wait_version(&s.addr, &run, "feed", &next);
    assert_eq!(version_ids(&s.addr, &run, &next), kept(&[20..30, 40..70]));
}

#[test]
fn cancelling_a_running_run_stops_its_tasks_and_a_retry_finishes_it() {
    let h = Home::sqlite();
    big_corpus(h.path());
    let run = h.token("run", "ci");
    let s = h.serve(&["--workers", "1"]);
    let (_, created) = api(&s.addr, &run, "POST", "/v1/runs", Some(&json!({ "spec": WEB })));
    let id = created["id"].as_i64().unwrap();
    let start = Instant::now();
    while api(&s.addr, &run, "GET", &format!("/v1/runs/{id}"), None).1["progress"]["tasks_done"].as_i64().unwrap_or(0) < 2 {
        assert!(start.elapsed() < Duration::from_secs(60), "the run never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, cancelling) = api(&s.addr, &run, "POST", &format!("/v1/runs/{id}/cancel"), None);
    assert_eq!(status, 200);
    assert!(["cancelling", "cancelled"].contains(&cancelling["state"].as_str().unwrap()), "{cancelling}");
    let done = wait_run(&s.addr, &run, id, Duration::from_secs(60));
    assert_eq!(done["state"], "cancelled", "{done}");
    assert!(done["version"].is_null());
    // Retried, it keeps what it committed and finishes.
    let (status, again) = api(&s.addr, &run, "POST", &format!("/v1/runs/{id}/retry"), None);
    assert_eq!((status, again["attempt"].as_i64()), (200, Some(2)), "{again}");
    let done = wait_run(&s.addr, &run, id, Duration::from_secs(120));
    assert_eq!((done["state"].as_str(), done["version"].as_str()), (Some("succeeded"), Some("web@1")), "{done}");
    assert_eq!(done["records_out"], 120_000);
}
