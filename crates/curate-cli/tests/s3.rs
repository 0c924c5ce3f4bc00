//! Inputs and outputs on a real S3-protocol server on loopback (s3s-fs, started by
//! `scripts/s3-server.sh`, which `scripts/test.sh` runs).

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

struct S3 {
    endpoint: String,
    bucket: String,
}

fn s3() -> S3 {
    let endpoint = std::env::var("CURATE_TEST_S3_ENDPOINT").unwrap_or_else(|_| {
        panic!("CURATE_TEST_S3_ENDPOINT is not set: run the tests through scripts/test.sh, or `scripts/s3-server.sh start && eval $(scripts/s3-server.sh env)`")
    });
    let bucket = std::env::var("CURATE_TEST_S3_BUCKET").unwrap_or_else(|_| "curate-test".into());
    S3 { endpoint, bucket }
}

/// `curate` in `dir` with the loopback server's credentials.
fn s3_command(s3: &S3, dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_curate"));
    c.args(args)
        .current_dir(dir)
        .env("AWS_ENDPOINT", &s3.endpoint)
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "curate")
        .env("AWS_SECRET_ACCESS_KEY", "curate-secret")
        .env("AWS_REGION", "us-east-1");
    c
}

fn curate_s3(s3: &S3, dir: &Path, args: &[&str]) -> String {
    let out = s3_command(s3, dir, args).output().unwrap();
    assert!(out.status.success(), "curate {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn pipelines_read_and_write_s3_like_local_files() {
    let s3 = s3();
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("s3://{}/run-{}-{}", s3.bucket, std::process::id(), dir.path().file_name().unwrap().to_string_lossy());
    let mut input = String::new();
    for i in 0..3000 {
        input.push_str(&corpus_line(i));
    }
    write(&dir.path().join("in.jsonl"), &input);
    let step = "steps:\n  - op: length_filter\n    min_chars: 150\n";

    // Local reference run.
    write(&dir.path().join("local.yaml"), format!("name: l\ninput:\n  path: in.jsonl\n  id_field: id\n{step}output:\n  path: local\n  format: jsonl\n"));
    let expected = curate_ok(dir.path(), &["run", "local.yaml"]);

    // Local JSONL in, S3 plain JSONL out; then S3 JSONL in, split into byte ranges (ranged GETs), S3 Parquet out.
    write(&dir.path().join("a.yaml"), format!("name: a\ninput:\n  path: in.jsonl\n  id_field: id\noutput:\n  path: {prefix}/a\n  format: jsonl\n"));
    curate_s3(&s3, dir.path(), &["run", "a.yaml"]);
    write(
        &dir.path().join("b.yaml"),
        format!("name: b\ninput:\n  path: {prefix}/a/data/*.jsonl\n  id_field: id\n  split_size: 20KB\n{step}output:\n  path: {prefix}/b\n"),
    );
    let out_b = curate_s3(&s3, dir.path(), &["run", "b.yaml"]);
    assert!(out_b.contains("3000 records in"), "{out_b}");
    // Running again into the same S3 output replaces it rather than mixing old and new files.
    curate_s3(&s3, dir.path(), &["run", "b.yaml", "--threads", "1"]);

    // S3 Parquet in (footer and column chunks by range requests), local JSONL out.
    write(&dir.path().join("c.yaml"), format!("name: c\ninput:\n  path: {prefix}/b/data/*.parquet\n  id_field: id\noutput:\n  path: froms3\n  format: jsonl\n"));
    let out_c = curate_s3(&s3, dir.path(), &["run", "c.yaml"]);
    let kept = expected.split(" records in, ").nth(1).unwrap().split(' ').next().unwrap();
    assert!(out_c.contains(&format!("{kept} records in, {kept} out")), "{out_c} vs {expected}");

    let read_jsonl = |root: &str| -> Vec<(String, String)> {
        let mut v = Vec::new();
        for (file, bytes) in tree(&dir.path().join(root), &["data"]) {
            for line in String::from_utf8(bytes).unwrap().lines() {
                let j: serde_json::Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("{}: {e}: {line}", file.display()));
                v.push((j["id"].as_str().unwrap().to_string(), j["text"].as_str().unwrap().to_string()));
            }
        }
        v
    };
    let a = read_jsonl("local");
    assert_eq!(a.len().to_string(), kept);
    assert_eq!(a, read_jsonl("froms3"));
}

/// The store of versions on S3 (`CURATE_STORE`), with an S3 JSONL output: the run commits
/// a version whose files are objects there, a second dataset reads that version as its
/// input, and explain, verify and forget work against it — as several machines sharing
/// one registry and one bucket would use it.
#[test]
fn versions_live_in_an_s3_store_and_feed_a_second_dataset() {
    let s3 = s3();
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("s3://{}/store-{}-{}", s3.bucket, std::process::id(), dir.path().file_name().unwrap().to_string_lossy());
    let input: String = (0..2000).map(corpus_line).collect();
    write(&dir.path().join("in.jsonl"), &input);
    write(
        &dir.path().join("a.yaml"),
        format!("name: a\ninput:\n  path: in.jsonl\n  id_field: id\nsteps:\n  - op: length_filter\n    min_chars: 150\noutput:\n  path: {prefix}/out-a\n  format: jsonl\n  compression: zstd\n"),
    );
    write(&dir.path().join("b.yaml"), "name: b\ninput:\n  dataset: a@latest\nsteps:\n  - op: length_filter\n    min_chars: 300\noutput:\n  path: out-b\n");
    let run = |args: &[&str]| {
        let out = s3_command(&s3, dir.path(), args).env("CURATE_STORE", format!("{prefix}/store")).env("CURATE_LOG", "warn").output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let ok = |args: &[&str]| {
        let (success, out, err) = run(args);
        assert!(success, "curate {args:?}: {err}");
        out
    };
    assert!(ok(&["run", "a.yaml"]).contains("committed a@1"));
    let b = ok(&["run", "b.yaml"]);
    assert!(b.contains("committed b@1"), "{b}");
    // Nothing of the versions is kept on this machine.
    assert!(!dir.path().join(".curate/store").exists());
    let shown: serde_json::Value = serde_json::from_str(&ok(&["datasets", "show", "a@1", "--json"])).unwrap();
    assert!(shown[0]["files"][0]["path"].as_str().unwrap().ends_with(".jsonl.zst"), "{shown}");
    assert!(ok(&["datasets", "verify", "a@1"]).contains("ok"));

    // The local output of b holds what b kept; explain finds each id through the S3 store.
    let kept_b: Vec<String> = read_parquet_dir(&dir.path().join("out-b/data"));
    let in_a: Vec<String> = (0..2000).map(|i| format!("r{i}")).filter(|id| !kept_b.contains(id)).collect();
    let both = &kept_b[0];
    let e: serde_json::Value = serde_json::from_str(&ok(&["explain", both, "--json"])).unwrap();
    let versions: Vec<&str> = e["versions"].as_array().unwrap().iter().map(|v| v["version"].as_str().unwrap()).collect();
    assert_eq!(versions, ["a@1", "b@1"], "{e}");
    let dropped = in_a.iter().find(|id| {
        let e: serde_json::Value = serde_json::from_str(&ok(&["explain", id.as_str(), "--json"])).unwrap();
        e["occurrences"][0]["dropped"]["step"] == "00-length_filter"
    });
    assert!(dropped.is_some(), "some record is dropped by a's filter");

    let out = ok(&["forget", both, "--reason", "erasure"]);
    assert!(out.contains("committed a@2 without 1 record(s)") && out.contains("committed b@2 without 1 record(s)"), "{out}");
    let e: serde_json::Value = serde_json::from_str(&ok(&["explain", both, "--json"])).unwrap();
    let versions: Vec<&str> = e["versions"].as_array().unwrap().iter().map(|v| v["version"].as_str().unwrap()).collect();
    assert_eq!(versions, ["a@1", "b@1"], "the new versions leave it out: {e}");
}

/// Ids of every Parquet file in a local directory.
fn read_parquet_dir(dir: &Path) -> Vec<String> {
    let mut ids = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        ids.extend(strings(&read_parquet(&e.unwrap().path()), "id"));
    }
    ids.sort();
    ids
}
