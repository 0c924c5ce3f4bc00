//! Integrity under a demanding user's hands (issue 11): two runs into one output, inputs
//! edited under a running job, resume after an input changed, repeated input ids, what
//! `validate` promises, and durability of what a commit refers to. Real processes, real files.

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn curate_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_curate"));
    c.args(args).current_dir(dir).env("CURATE_LOG", "warn");
    c
}

/// Records whose texts have lengths spread over 0..3000 chars.
fn varied_input(n: usize) -> String {
    (0..n)
        .map(|i| {
            let len = (i * 7919) % 3000;
            let text: String = (0..len).map(|j| if j % 6 == 5 { ' ' } else { (b'a' + ((i + j) % 26) as u8) as char }).collect();
            format!("{{\"id\":\"d{i}\",\"text\":\"{text}\"}}\n")
        })
        .collect()
}

fn min_chars_spec(min: usize, output: &str) -> String {
    format!("name: p\ninput:\n  path: in.jsonl\n  id_field: id\nsteps:\n  - op: length_filter\n    min_chars: {min}\noutput:\n  path: {output}\n")
}

fn data_texts(out: &Path) -> Vec<String> {
    let mut texts = Vec::new();
    let Ok(entries) = std::fs::read_dir(out.join("data")) else { return texts };
    let mut paths: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
    paths.sort();
    for p in paths {
        texts.extend(strings(&read_parquet(&p), "text"));
    }
    texts
}

#[test]
fn two_runs_into_one_output_never_mix_the_committed_version() {
    let input = varied_input(6_000);
    let counts: Vec<(usize, usize)> = [100usize, 1500]
        .iter()
        .map(|&min| {
            let n = input
                .lines()
                .filter(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    v["text"].as_str().unwrap().chars().count() >= min
                })
                .count();
            (min, n)
        })
        .collect();
    let mut refused = 0;
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("in.jsonl"), &input);
        // Odd rounds run the same spec twice, which used to fail with a bare "No such file".
        let mins = if round % 2 == 0 { [100, 1500] } else { [1500, 1500] };
        for (i, min) in mins.iter().enumerate() {
            write(&dir.path().join(format!("p{i}.yaml")), min_chars_spec(*min, "out/base"));
        }
        let children: Vec<_> = (0..2)
            .map(|i| {
                curate_cmd(dir.path(), &["run", &format!("p{i}.yaml"), "--threads", "1"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outs: Vec<_> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
        let mut committed = 0;
        for o in &outs {
            let stderr = String::from_utf8_lossy(&o.stderr);
            if o.status.success() {
                committed += 1;
            } else {
                // Named by its registry run once it has one, by pipeline, spec and process before.
                let named = stderr.contains("out/base is in use by run ") || stderr.contains("out/base is in use by a run of p");
                assert!(
                    named && stderr.contains("of p (spec p") && stderr.contains("(pid "),
                    "round {round}: the refused run must name the holder: {stderr}"
                );
                refused += 1;
            }
        }
        assert!(committed >= 1, "round {round}: one run at least commits");
        // Whatever committed last, the output and the latest version hold exactly one spec's records.
        let texts = data_texts(&dir.path().join("out/base"));
        let shortest = texts.iter().map(|t| t.chars().count()).min().unwrap();
        let spec_min = if shortest >= 1500 { 1500 } else { 100 };
        let want = counts.iter().find(|(m, _)| *m == spec_min).unwrap().1;
        assert_eq!(texts.len(), want, "round {round}: output holds records of both specs");
        let shown: serde_json::Value =
            serde_json::from_str(&curate_ok(dir.path(), &["datasets", "show", "p@latest", "--json"])).unwrap();
        assert_eq!(shown[0]["rows"].as_u64().unwrap() as usize, want, "round {round}: version rows {shown}");
    }
    assert!(refused > 0, "the runs never overlapped: the test proved nothing");
}

/// Rewrites `path` in place with same-size content, as an editor saving over it would.
fn rewrite_same_size(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    for b in bytes.iter_mut() {
        if b.is_ascii_lowercase() {
            *b = if *b == b'z' { b'a' } else { *b + 1 };
        }
    }
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.write_all(&bytes).unwrap();
}

fn split_spec(output: &str) -> String {
    format!(
        "name: e\ninput:\n  path: in.jsonl\n  id_field: id\n  split_size: 400KB\nsteps:\n  - op: length_filter\n    min_chars: 100\noutput:\n  path: {output}\n"
    )
}

/// Starts a run and rewrites the input once its first task has committed.
fn run_with_edit_mid_run(dir: &Path, spec: &str, input: &Path) -> std::process::Output {
    let child = curate_cmd(dir, &["run", spec, "--threads", "1"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let first_task = dir.join("out/e/_state/tasks/000000.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !first_task.exists() {
        assert!(Instant::now() < deadline, "the run never committed a task");
        std::thread::sleep(Duration::from_micros(200));
    }
    rewrite_same_size(input);
    child.wait_with_output().unwrap()
}

/// Runs the split-input pipeline in `d` on `original`, rewriting the input mid-run.
fn split_run_edited_mid_run(d: &Path, original: &str) -> std::process::Output {
    write(&d.join("in.jsonl"), original);
    write(&d.join("e.yaml"), split_spec("out/e"));
    run_with_edit_mid_run(d, "e.yaml", &d.join("in.jsonl"))
}

/// The outputs in `d` equal those of the split-input pipeline run once on a clean copy.
fn assert_same_as_clean_run(d: &Path, original: &str, args: &[&str]) {
    let clean = tempfile::tempdir().unwrap();
    write(&clean.path().join("in.jsonl"), original);
    write(&clean.path().join("e.yaml"), split_spec("out/e"));
    curate_ok(clean.path(), &[&["run", "e.yaml"], args].concat());
    assert_eq!(tree(d, &["out/e/data", "out/e/rejects"]), tree(clean.path(), &["out/e/data", "out/e/rejects"]));
}

#[test]
fn an_input_edited_during_a_run_fails_it_and_poisons_neither_version_nor_cache() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let original = varied_input(12_000);
    let out = split_run_edited_mid_run(d, &original);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a run that read an edited input must fail");
    assert!(stderr.contains("in.jsonl: the file changed while this run read it"), "{stderr}");
    let listed = curate_ok(d, &["datasets", "list", "--json"]);
    assert!(!listed.contains("\"e\""), "nothing committed: {listed}");

    // The original comes back: the re-run must equal a run on a clean copy, not reuse
    // anything computed from the edited bytes.
    write(&d.join("in.jsonl"), &original);
    let rerun = curate_ok(d, &["run", "e.yaml"]);
    assert!(rerun.contains("committed e@1"), "{rerun}");
    assert_same_as_clean_run(d, &original, &[]);
}

#[test]
fn resume_after_an_input_changed_recomputes_only_its_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let original = varied_input(12_000);
    let out = split_run_edited_mid_run(d, &original);
    assert!(!out.status.success());
    // The file is fixed (here: its original content back); --resume continues the run.
    write(&d.join("in.jsonl"), &original);
    // Every task of the (rewritten) file is recomputed: its size and modification time changed.
    let resumed = curate_ok(d, &["run", "e.yaml", "--resume", "--no-registry"]);
    assert!(resumed.contains("(0 resumed)"), "{resumed}");
    assert_same_as_clean_run(d, &original, &["--no-registry"]);

    // A finished run whose input was then edited: --resume keeps the other tasks, recomputes
    // the edited file's, and leaves none of its old files behind (here it now keeps nothing).
    let many = tempfile::tempdir().unwrap();
    let m = many.path();
    let short = "{\"id\":\"s\",\"text\":\"short\"}\n";
    for i in 0..3 {
        write(&m.join(format!("in/{i}.jsonl")), varied_input(600 + i));
    }
    let spec = "name: m\ninput:\n  path: in/*.jsonl\n  id_field: id\nsteps:\n  - op: length_filter\n    min_chars: 10\noutput:\n  path: out/m\n";
    write(&m.join("m.yaml"), spec);
    curate_ok(m, &["run", "m.yaml", "--no-registry"]);
    assert!(m.join("out/m/data/part-000001-000.parquet").exists());
    write(&m.join("in/1.jsonl"), short);
    curate_ok(m, &["run", "m.yaml", "--resume", "--no-registry"]);
    assert_eq!(run_json(&m.join("out/m"))["tasks_resumed"], 2);
    let fresh = tempfile::tempdir().unwrap();
    for i in [0, 2] {
        write(&fresh.path().join(format!("in/{i}.jsonl")), varied_input(600 + i));
    }
    write(&fresh.path().join("in/1.jsonl"), short);
    write(&fresh.path().join("m.yaml"), spec);
    curate_ok(fresh.path(), &["run", "m.yaml", "--no-registry"]);
    let after = tree(m, &["out/m/data", "out/m/rejects"]);
    assert!(!after.keys().any(|k| k.to_string_lossy().contains("data/part-000001-")), "{:?}", after.keys());
    assert_eq!(after, tree(fresh.path(), &["out/m/data", "out/m/rejects"]));
}

fn dup_input() -> &'static str {
    "{\"id\":\"a\",\"text\":\"first a\"}\n{\"id\":\"b\",\"text\":\"only b\"}\n{\"id\":\"a\",\"text\":\"second a\",\"n\":2}\n{\"id\":\"c\",\"text\":\"c\"}\n{\"id\":\"a\",\"text\":\"third a\"}\n"
}

fn dup_spec(policy: Option<&str>) -> String {
    let policy = policy.map(|p| format!("  on_duplicate_id: {p}\n")).unwrap_or_default();
    format!("name: dup\ninput:\n  path: in.jsonl\n  id_field: id\n{policy}steps:\n  - op: length_filter\n    min_chars: 0\noutput:\n  path: out/dup\n")
}

#[test]
fn repeated_input_ids_are_counted_quarantined_or_fail_as_the_spec_says() {
    // Default: kept, counted in the summary and run.json, with a warning.
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("in.jsonl"), dup_input());
    write(&dir.path().join("p.yaml"), dup_spec(None));
    let stdout = curate_ok(dir.path(), &["run", "p.yaml"]);
    assert!(stdout.contains("5 records in, 5 out"), "{stdout}");
    assert!(stdout.contains("warning: 2 record(s) repeat an id"), "{stdout}");
    assert_eq!(run_json(&dir.path().join("out/dup"))["duplicate_ids"], 2);
    // A cached re-run reports the same.
    let again = curate_ok(dir.path(), &["run", "p.yaml"]);
    assert!(again.contains("warning: 2 record(s) repeat an id"), "{again}");

    // quarantine: the later records leave the data with their content.
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("in.jsonl"), dup_input());
    write(&dir.path().join("p.yaml"), dup_spec(Some("quarantine")));
    let stdout = curate_ok(dir.path(), &["run", "p.yaml"]);
    assert!(stdout.contains("3 records in, 3 out, 0 rejected, 2 quarantined"), "{stdout}");
    assert_eq!(strings(&read_parquet(&dir.path().join("out/dup/data/part-000000-000.parquet")), "text"), ["first a", "only b", "c"]);
    let q = std::fs::read_to_string(dir.path().join("out/dup/quarantine/part-000000.jsonl")).unwrap();
    let q: Vec<serde_json::Value> = q.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(q.len(), 2);
    assert_eq!(q[0]["file"], "in.jsonl");
    assert_eq!(q[0]["byte_offset"], 55);
    assert!(q[0]["error"].as_str().unwrap().contains("duplicate id `a`"), "{:?}", q[0]);
    let raw: serde_json::Value = serde_json::from_str(q[0]["raw"].as_str().unwrap()).unwrap();
    assert_eq!(raw, serde_json::json!({"id": "a", "text": "second a", "n": 2}));

    // fail: the run stops, naming the id, the file and where.
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("in.jsonl"), dup_input());
    write(&dir.path().join("p.yaml"), dup_spec(Some("fail")));
    let out = curate(dir.path(), &["run", "p.yaml"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("in.jsonl: record id `a` (byte offset 55) occurs more than once"), "{stderr}");

    // A typo in the policy is a located spec error.
    write(&dir.path().join("p.yaml"), dup_spec(Some("drop")));
    let out = curate(dir.path(), &["validate", "p.yaml"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("on_duplicate_id"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn validate_refuses_what_run_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(&d.join("in.jsonl"), dup_input());
    // An output directory holding someone else's files.
    write(&d.join("theirs/notes.txt"), "mine");
    write(&d.join("p.yaml"), min_chars_spec(1, "theirs"));
    let v = curate(d, &["validate", "p.yaml"]);
    assert!(!v.status.success(), "validate must refuse a directory run refuses");
    assert!(String::from_utf8_lossy(&v.stderr).contains("already holds files that are not a curate output"));
    let r = curate(d, &["run", "p.yaml"]);
    assert!(!r.status.success());
    // An output below a directory the user cannot write (checked as an unprivileged user).
    write(&d.join("ro/.keep"), "");
    let mut perms = std::fs::metadata(d.join("ro")).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o555);
    std::fs::set_permissions(d.join("ro"), perms).unwrap();
    write(&d.join("q.yaml"), min_chars_spec(1, "ro/out"));
    let mut world = std::fs::metadata(d).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut world, 0o777);
    std::fs::set_permissions(d, world).unwrap();
    for f in ["in.jsonl", "q.yaml"] {
        let mut p = std::fs::metadata(d.join(f)).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut p, 0o644);
        std::fs::set_permissions(d.join(f), p).unwrap();
    }
    let as_user = |args: &[&str]| {
        let mut c = if unsafe_is_root() {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(curate_for_anyone());
            c
        } else {
            Command::new(curate_for_anyone())
        };
        c.args(args).current_dir(d).env("CURATE_LOG", "warn").env("CURATE_HOME", d.join("home")).output().unwrap()
    };
    std::fs::create_dir_all(d.join("home")).unwrap();
    let mut home = std::fs::metadata(d.join("home")).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut home, 0o777);
    std::fs::set_permissions(d.join("home"), home).unwrap();
    let v = as_user(&["validate", "q.yaml"]);
    let stderr = String::from_utf8_lossy(&v.stderr);
    assert!(!v.status.success(), "validate must refuse an unwritable output: {stderr}");
    assert!(stderr.contains("output is not writable"), "{stderr}");
    let r = as_user(&["run", "q.yaml"]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("not writable"), "{}", String::from_utf8_lossy(&r.stderr));

    // --threads 0 is refused, not silently run on one thread.
    write(&d.join("ok.yaml"), min_chars_spec(1, "out/ok"));
    let t = curate(d, &["run", "ok.yaml", "--threads", "0"]);
    assert!(!t.status.success());
    assert!(String::from_utf8_lossy(&t.stderr).contains("must be at least 1"), "{}", String::from_utf8_lossy(&t.stderr));
}

fn unsafe_is_root() -> bool {
    // The tests run as root on CI machines, where permission bits do not stop writes.
    std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

#[test]
fn every_published_file_is_on_disk_before_anything_refers_to_it() {
    let Ok(probe) = Command::new("strace").arg("-V").output() else {
        panic!("strace is needed for this test (scripts/test.sh installs it)");
    };
    assert!(probe.status.success());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for i in 0..3 {
        write(&d.join(format!("in/{i}.jsonl")), varied_input(300));
    }
    write(&d.join("p.yaml"), "name: s\ninput:\n  path: in/*.jsonl\n  id_field: id\nsteps:\n  - op: length_filter\n    min_chars: 100\noutput:\n  path: out/s\n");
    let log = d.join("strace.log");
    let out = Command::new("strace")
        .args(["-f", "-y", "-qq", "-e", "trace=fsync,fdatasync,rename,renameat,renameat2", "-o"])
        .arg(&log)
        .arg(env!("CARGO_BIN_EXE_curate"))
        .args(["run", "p.yaml", "--threads", "2"])
        .current_dir(d)
        .env("CURATE_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let log = std::fs::read_to_string(&log).unwrap();
    // Per thread (strace's pid column): a file is fsynced before its rename, and the
    // directories renamed into are fsynced before that thread publishes a commit record.
    let mut synced: Vec<String> = Vec::new();
    let mut pending: std::collections::HashMap<String, Vec<String>> = Default::default();
    let mut checked = 0;
    let root = std::fs::canonicalize(d).unwrap();
    let abs = |p: &str| if p.starts_with('/') { std::path::PathBuf::from(p) } else { root.join(p) };
    for line in log.lines() {
        let pid = line.split_whitespace().next().unwrap_or_default().to_string();
        if let Some(i) = line.find("fsync(") {
            let path = line[i..].split('<').nth(1).and_then(|s| s.split('>').next()).unwrap_or_default().to_string();
            pending.entry(pid).or_default().retain(|p| *p != path);
            synced.push(path);
        } else if line.contains("rename") && line.contains("/out/s/") && !line.contains("= -1") {
            let quoted: Vec<&str> = line.split('"').collect();
            let (from, to) = (abs(quoted[1]), abs(quoted[3]));
            let to_s = to.to_string_lossy().into_owned();
            let mine = pending.entry(pid).or_default();
            if to_s.contains("/_state/tasks/") || to_s.ends_with("run.json") {
                assert!(mine.is_empty(), "{to_s} was published before the directories of its files were synced: {mine:?}");
            }
            assert!(
                synced.iter().any(|s| Path::new(s) == from),
                "{to_s} was renamed into place without an fsync of {}",
                from.display()
            );
            mine.push(to.parent().unwrap().to_string_lossy().into_owned());
            checked += 1;
        }
    }
    assert!(checked >= 6, "expected the run's data and state renames in the trace:\n{log}");
    assert!(pending.values().all(Vec::is_empty), "directories never synced: {pending:?}");
    let _ = std::fs::read_dir(d.join("out/s/data")).unwrap();
    let data = read_parquet(&d.join("out/s/data/part-000000-000.parquet"));
    assert!(data[0].num_rows() > 0);
}
