//! End-to-end runs of the `curate` binary: outputs, determinism, resume, formats.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::Array;
use common::*;

fn spec(input: &str, extra_input: &str, steps: &str, output: &str) -> String {
    format!("name: t\ninput:\n  path: {input}\n{extra_input}steps:\n{steps}output:\n{output}")
}

#[test]
fn bundled_example_gives_exact_counts_and_readable_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let ex = repo_root().join("examples/web-en");
    for f in ["pipeline.yaml", "data/part-0.jsonl", "data/part-1.jsonl.gz"] {
        write(&dir.path().join("examples/web-en").join(f), std::fs::read(ex.join(f)).unwrap());
    }
    let stdout = curate_ok(dir.path(), &["run", "examples/web-en/pipeline.yaml"]);
    assert!(stdout.contains("200 records in, 126 out, 74 rejected, 2 quarantined"), "{stdout}");
    let out = dir.path().join("out/web-en");
    let run = run_json(&out);
    assert_eq!(run["records_in"], 200);
    assert_eq!(run["records_out"], 126);
    assert_eq!(run["quarantined"], 2);
    assert_eq!(run["steps"][0]["op"], "length_filter");
    assert_eq!(run["steps"][0]["in"], 200);
    assert_eq!(run["steps"][0]["out"], 126);
    assert_eq!(run["steps"][0]["dropped"]["length_filter:min_chars"], 74);

    let data: Vec<_> = ["part-000000-000.parquet", "part-000001-000.parquet"]
        .iter()
        .flat_map(|f| read_parquet(&out.join("data").join(f)))
        .collect();
    let schema = data[0].schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["id", "text", "url", "meta", "lang_hint", "_source", "_extra"]);
    let rows: usize = data.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 126);
    let texts = data[0].column_by_name("text").unwrap().as_string::<i32>();
    assert!((0..texts.len()).all(|i| texts.value(i).chars().count() >= 200));
    let source = data[0].column_by_name("_source").unwrap().as_struct();
    assert_eq!(source.column(0).as_string::<i32>().value(0), "examples/web-en/data/part-0.jsonl");

    let rejects = read_parquet(&out.join("rejects/part-000000-000.parquet"));
    let r = &rejects[0];
    let names: Vec<String> = r.schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names[..4], ["id", "step", "step_index", "reason"]);
    assert_eq!(r.column_by_name("reason").unwrap().as_string::<i32>().value(0), "length_filter:min_chars");
    assert_eq!(r.column_by_name("step").unwrap().as_string::<i32>().value(0), "length_filter");
    assert!(r.column_by_name("text").unwrap().as_string::<i32>().value(0).chars().count() < 200);

    let q = std::fs::read_to_string(out.join("quarantine/part-000000.jsonl")).unwrap();
    let q: Vec<serde_json::Value> = q.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(q.len(), 2);
    assert_eq!((q[0]["line"].as_u64(), q[1]["line"].as_u64()), (Some(121), Some(122)));
    assert_eq!(q[1]["error"], "missing field `text` (input.text_field)");
    assert_eq!(q[1]["raw"], "{\"id\": \"doc-bad-2\", \"body\": \"no text field\"}");
}

fn big_input(dir: &Path, files: usize, lines: usize) {
    for f in 0..files {
        let mut s = String::new();
        for i in 0..lines {
            s.push_str(&corpus_line(f * lines + i));
            if i % 997 == 5 {
                s.push_str("{not json}\n");
            }
        }
        write(&dir.join(format!("in/f{f:03}.jsonl")), s);
    }
}

#[test]
fn output_is_byte_identical_for_one_and_two_threads() {
    let dir = tempfile::tempdir().unwrap();
    big_input(dir.path(), 3, 3000);
    let steps = "  - op: length_filter\n    min_chars: 120\n";
    for (name, fmt) in [("pq", "parquet"), ("js", "jsonl\n  compression: zstd")] {
        let body = |out: &str| spec("in/*.jsonl", "  id_field: id\n  split_size: 100KB\n", steps, &format!("  path: {out}\n  format: {fmt}\n  shard_size: 50KB\n"));
        write(&dir.path().join(format!("{name}1.yaml")), body(&format!("out1-{name}")));
        write(&dir.path().join(format!("{name}2.yaml")), body(&format!("out2-{name}")));
        curate_ok(dir.path(), &["run", &format!("{name}1.yaml"), "--threads", "1"]);
        curate_ok(dir.path(), &["run", &format!("{name}2.yaml"), "--threads", "2"]);
        let a = tree(&dir.path().join(format!("out1-{name}")), &["data", "rejects", "quarantine"]);
        let b = tree(&dir.path().join(format!("out2-{name}")), &["data", "rejects", "quarantine"]);
        assert!(a.len() > 6, "expected several shards and rolled files, got {:?}", a.keys());
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
        for (k, v) in &a {
            assert!(v == &b[k], "{} differs between --threads 1 and 2", k.display());
        }
        assert_eq!(run_json(&dir.path().join(format!("out2-{name}")))["threads"], 2);
    }
}

#[test]
fn resume_after_sigkill_finishes_only_missing_tasks_with_identical_output() {
    let dir = tempfile::tempdir().unwrap();
    big_input(dir.path(), 48, 1500);
    let body = |out: &str| {
        spec("in/*.jsonl", "  id_field: id\n", "  - op: length_filter\n    min_chars: 100\n", &format!("  path: {out}\n"))
    };
    write(&dir.path().join("a.yaml"), body("out-a"));
    write(&dir.path().join("b.yaml"), body("out-b"));
    curate_ok(dir.path(), &["run", "b.yaml", "--threads", "1"]);

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_curate"))
        .args(["run", "a.yaml", "--threads", "1"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let tasks = dir.path().join("out-a/_state/tasks");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = std::fs::read_dir(&tasks).map(|d| d.count()).unwrap_or(0);
        if done >= 3 {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "run finished before it could be killed; make the input larger");
        assert!(Instant::now() < deadline, "run made no progress");
        std::thread::sleep(Duration::from_millis(2));
    }
    // SIGKILL: no chance to clean up, exactly like a crash or an OOM kill.
    child.kill().unwrap();
    child.wait().unwrap();
    let committed = std::fs::read_dir(&tasks).unwrap().count();
    assert!(committed < 48, "the run completed before the kill");
    assert!(!dir.path().join("out-a/run.json").exists());

    let stdout = curate_ok(dir.path(), &["run", "a.yaml", "--threads", "2", "--resume"]);
    let run = run_json(&dir.path().join("out-a"));
    assert_eq!(run["tasks"], 48);
    assert!(run["tasks_resumed"].as_u64().unwrap() >= committed as u64, "{stdout}");
    assert_eq!(run["records_in"], run_json(&dir.path().join("out-b"))["records_in"]);
    let a = tree(&dir.path().join("out-a"), &["data", "rejects", "quarantine"]);
    let b = tree(&dir.path().join("out-b"), &["data", "rejects", "quarantine"]);
    assert_eq!(a, b, "resumed output differs from an uninterrupted run");
    assert!(tree(&dir.path().join("out-a"), &["_tmp"]).is_empty());

    // A changed plan cannot be resumed into the same output.
    write(&dir.path().join("a.yaml"), body("out-a").replace("min_chars: 100", "min_chars: 101"));
    let out = curate(dir.path(), &["run", "a.yaml", "--resume"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot resume"));
}

#[test]
fn jsonl_output_round_trips_records_and_parquet_output_reads_back_as_input() {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        r#"{"id":"a","text":"first document here","meta":{"k":[1,2]},"score":0.5}"#,
        r#"{"id":"b","text":"second document","score":1,"odd":"only here"}"#,
    ];
    write(&dir.path().join("in.jsonl"), format!("{}\n{}\n", lines[0], lines[1]));
    let mut s = spec("in.jsonl", "  id_field: id\n  sample_records: 1\n", "", "  path: o1\n  format: jsonl\n  compression: gzip\n");
    s = s.replace("steps:\n", "");
    write(&dir.path().join("p1.yaml"), s);
    curate_ok(dir.path(), &["run", "p1.yaml"]);
    let gz = std::fs::read(dir.path().join("o1/data/part-000000-000.jsonl.gz")).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut text).unwrap();
    let got: Vec<&str> = text.lines().collect();
    assert_eq!(
        got,
        [
            r#"{"id":"a","text":"first document here","meta":{"k":[1,2]},"score":0.5,"_source":{"file":"in.jsonl","byte_offset":0,"row":null}}"#,
            r#"{"id":"b","text":"second document","score":1.0,"_source":{"file":"in.jsonl","byte_offset":71,"row":null},"odd":"only here"}"#,
        ]
    );

    write(&dir.path().join("p2.yaml"), spec("in.jsonl", "  id_field: id\n", "  - op: length_filter\n    min_chars: 1\n", "  path: o2\n"));
    curate_ok(dir.path(), &["run", "p2.yaml"]);
    let p3 = "name: again\ninput:\n  path: o2/data/*.parquet\n  id_field: id\nsteps:\n  - op: length_filter\n    min_chars: 18\noutput:\n  path: o3\n  format: jsonl\n";
    write(&dir.path().join("p3.yaml"), p3);
    let stdout = curate_ok(dir.path(), &["run", "p3.yaml"]);
    assert!(stdout.contains("2 records in, 1 out, 1 rejected"), "{stdout}");
    let out = std::fs::read_to_string(dir.path().join("o3/data/part-000000-000.jsonl")).unwrap();
    assert!(out.starts_with(r#"{"id":"a","text":"first document here","meta":{"k":[1,2]},"score":0.5"#), "{out}");
    assert!(out.contains(r#""_source":{"file":"o2/data/part-000000-000.parquet","byte_offset":null,"row":0}"#), "{out}");
}

#[test]
fn progress_is_logged_when_not_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    big_input(dir.path(), 4, 20000);
    write(&dir.path().join("p.yaml"), spec("in/*.jsonl", "", "  - op: length_filter\n    min_chars: 100\n", "  path: o\n"));
    let out = curate(dir.path(), &["run", "p.yaml", "--threads", "1", "--progress-interval", "0.05"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr.lines().find(|l| l.contains("progress:")).unwrap_or_else(|| panic!("no progress line in {stderr}"));
    assert!(line.contains("records (") && line.contains("MB/s") && line.contains("ETA"), "{line}");
}

#[test]
fn progress_bar_is_drawn_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    big_input(dir.path(), 2, 20000);
    write(&dir.path().join("p.yaml"), spec("in/*.jsonl", "", "", "  path: o\n").replace("steps:\n", ""));
    // `script` (util-linux) gives the run a pseudo-terminal, as an interactive shell would.
    let cmd = format!("{} run p.yaml --threads 1", env!("CARGO_BIN_EXE_curate"));
    let out = std::process::Command::new("script").args(["-qec", &cmd, "/dev/null"]).current_dir(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(screen.contains("rec/s") && screen.contains("ETA") && screen.contains("MiB"), "{screen}");
    assert!(!screen.contains("progress:"), "log lines are for non-terminals only");
}

#[test]
fn a_fresh_run_never_clears_a_directory_it_does_not_own() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("in.jsonl"), "{\"text\":\"hello\"}\n");
    write(&dir.path().join("mine/notes.txt"), "precious");
    write(&dir.path().join("mine/data/keep.parquet"), "precious too");
    write(&dir.path().join("p.yaml"), spec("in.jsonl", "", "", "  path: mine\n").replace("steps:\n", ""));
    let out = curate(dir.path(), &["run", "p.yaml"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds files that are not a curate output"));
    assert_eq!(std::fs::read(dir.path().join("mine/data/keep.parquet")).unwrap(), b"precious too");
    // A curate output, on the other hand, is replaced by the next run.
    write(&dir.path().join("q.yaml"), spec("in.jsonl", "", "", "  path: fresh\n").replace("steps:\n", ""));
    curate_ok(dir.path(), &["run", "q.yaml"]);
    curate_ok(dir.path(), &["run", "q.yaml"]);
    assert_eq!(run_json(&dir.path().join("fresh"))["records_out"], 1);
}
