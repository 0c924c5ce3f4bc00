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

fn curate_s3(s3: &S3, dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_curate"))
        .args(args)
        .current_dir(dir)
        .env("AWS_ENDPOINT", &s3.endpoint)
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "curate")
        .env("AWS_SECRET_ACCESS_KEY", "curate-secret")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
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
