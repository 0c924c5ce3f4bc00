//! The `remote` operator against a real HTTP service process (tests/services/model_service.py)
//! with injected faults: 503s, timeouts, 429s over capacity, replies lost after processing,
//! a slow phase, and records the service never scores.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::{curate, curate_ok, read_parquet, run_json, strings, write};
use serde_json::Value;

/// A running model service, killed when dropped.
struct Service {
    child: Child,
    url: String,
}

impl Service {
    fn start(args: &[&str]) -> Service {
        let script = common::repo_root().join("tests/services/model_service.py");
        // The test environment's Python has pyarrow, which the Arrow IPC format needs
        // (scripts/test.sh creates it before the Rust suites run).
        let venv = common::repo_root().join(".venv-test/bin/python");
        let python = if venv.exists() { venv.into_os_string() } else { "python3".into() };
        let mut child = Command::new(python).arg(script).args(args).stdout(Stdio::piped()).spawn().expect("python3 runs the service");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().strip_prefix("listening on ").expect("the service prints its address").to_string();
        Service { child, url }
    }

    fn stats(&self) -> Value {
        let out = Command::new("python3")
            .args(["-c", &format!("import urllib.request;print(urllib.request.urlopen('{}/stats').read().decode())", self.url)])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The service's model, to check every record got its own score.
fn toy_score(text: &str) -> f64 {
    (text.chars().map(|c| c as u64).sum::<u64>() % 1000) as f64 / 1000.0
}

fn corpus(dir: &Path, n: usize) -> Vec<(String, String)> {
    let records: Vec<(String, String)> = (0..n).map(|i| (format!("r{i:05}"), format!("record {i} {}", "word ".repeat(i % 97)))).collect();
    let line = |(id, text): &(String, String)| format!("{{\"id\":\"{id}\",\"text\":\"{text}\"}}\n");
    let (a, b) = records.split_at(n / 2);
    write(&dir.join("in/a.jsonl"), a.iter().map(line).collect::<String>());
    write(&dir.join("in/b.jsonl"), b.iter().map(line).collect::<String>());
    records
}

fn spec(dir: &Path, url: &str, extra: &str) -> std::path::PathBuf {
    let path = dir.join("p.yaml");
    write(
        &path,
        format!("name: scored\ninput: {{path: in/*.jsonl, id_field: id}}\nsteps:\n  - op: remote\n    url: {url}\n{extra}output: {{path: out}}\n"),
    );
    path
}

fn scores(dir: &Path) -> Vec<(String, f64)> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("out/data")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let batches = read_parquet(&f);
        let ids = strings(&batches, "id");
        let s: Vec<f64> = batches
            .iter()
            .flat_map(|b| {
                let c = b.column_by_name("toy_score").unwrap().as_any().downcast_ref::<arrow_array::Float64Array>().unwrap().clone();
                c.iter().map(|v| v.unwrap()).collect::<Vec<_>>()
            })
            .collect();
        out.extend(ids.into_iter().zip(s));
    }
    out
}

#[test]
fn every_record_is_scored_once_through_faults_and_a_rerun_calls_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let records = corpus(d, 2000);
    let svc = Service::start(&[
        "--capacity", "3", "--latency", "0.01", "--fail-rate", "0.1", "--timeout-rate", "0.03", "--hang", "3",
        "--duplicate-rate", "0.05", "--slow-phase", "1:2:0.2", "--seed", "7",
    ]);
    let spec = spec(d, &svc.url, "    timeout: 0.5\n    max_attempts: 20\n    batch_size: 50\n");
    curate_ok(d, &["run", spec.to_str().unwrap()]);
    let run = run_json(&d.join("out"));
    assert_eq!((run["records_in"].as_u64(), run["records_out"].as_u64(), run["quarantined"].as_u64()), (Some(2000), Some(2000), Some(0)));
    // Exactly one output per record, each with the score of its own text.
    let got = scores(d);
    assert_eq!(got.len(), records.len());
    for ((id, score), (want_id, text)) in got.iter().zip(&records) {
        assert_eq!((id, *score), (want_id, toy_score(text)));
    }
    let stats = svc.stats();
    let codes = &stats["status_counts"];
    assert!(codes["503"].as_u64().unwrap_or(0) > 0 && codes["200"].as_u64().unwrap() >= 40, "{stats}");
    assert!(stats["max_in_flight"].as_u64().unwrap() <= 3, "never above the manifest's concurrency: {stats}");
    let batch_calls = stats["requests"].as_u64().unwrap();

    // Nothing changed: the step comes from the cache and the service gets no batch.
    curate_ok(d, &["run", spec.to_str().unwrap()]);
    assert_eq!(svc.stats()["requests"].as_u64().unwrap(), batch_calls);
    assert_eq!(scores(d), got);
}

#[test]
fn records_of_a_batch_the_service_refuses_are_quarantined_with_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    corpus(d, 300);
    let svc = Service::start(&["--always-fail-ids", "r00123"]);
    let spec = spec(d, &svc.url, "    format: arrow\n    max_attempts: 3\n    batch_size: 20\n");
    let out = curate(d, &["run", spec.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let run = run_json(&d.join("out"));
    assert_eq!((run["records_out"].as_u64(), run["quarantined"].as_u64()), (Some(280), Some(20)));
    let q: Vec<Value> = std::fs::read_dir(d.join("out/quarantine"))
        .unwrap()
        .flat_map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect::<Vec<Value>>())
        .collect();
    assert_eq!(q.len(), 20);
    let e = q[0]["error"].as_str().unwrap();
    assert!(e.contains("remote service toy-scorer v1: HTTP 500") && e.contains("cannot score record r00123") && e.contains("after 3 attempts"), "{e}");
    // The others were scored over Arrow IPC, exactly.
    assert_eq!(scores(d).len(), 280);
}

#[test]
fn a_new_model_version_recomputes_and_a_select_after_it_calls_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    corpus(d, 200);
    let v1 = Service::start(&["--version", "1"]);
    let with_select = |url: &str, threshold: &str| spec(d, url, &format!("  - op: select\n    expr: \"toy_score >= {threshold}\"\n"));
    curate_ok(d, &["run", with_select(&v1.url, "0.5").to_str().unwrap()]);
    let calls = v1.stats()["requests"].as_u64().unwrap();
    assert!(calls > 0);
    curate_ok(d, &["run", with_select(&v1.url, "0.2").to_str().unwrap()]);
    assert_eq!(v1.stats()["requests"].as_u64().unwrap(), calls, "a threshold change reuses the scores");
    let v2 = Service::start(&["--version", "2"]);
    curate_ok(d, &["run", with_select(&v2.url, "0.2").to_str().unwrap()]);
    assert!(v2.stats()["requests"].as_u64().unwrap() > 0, "new model version, new scores");
}
