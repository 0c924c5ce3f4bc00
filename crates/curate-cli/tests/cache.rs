//! The step cache through the CLI: outputs byte-identical with and without it, a changed
//! select threshold reusing the annotation, what an entry costs on disk, the size budget
//! (spec and environment) with least-recently-used eviction, and `curate cache stats/prune`.

mod common;

use std::path::Path;
use std::process::Command;

use common::{corpus_line, run_json, tree, write};
use serde_json::Value;

/// Runs `curate` in `dir` with `env` (and no cache budget from the caller's environment);
/// asserts success and returns stdout.
fn curate(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_curate"))
        .args(args)
        .current_dir(dir)
        .env("CURATE_LOG", "warn")
        .env_remove("CURATE_CACHE_MAX")
        .envs(env.iter().copied())
        .output()
        .expect("the curate binary runs");
    assert!(out.status.success(), "curate {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Value {
    serde_json::from_str(&curate(dir, env, &[args, &["--json"]].concat())).unwrap()
}

/// Three input files: generated records, some with text `normalize` rewrites, a duplicate id
/// and an unparseable line, so every kind of output has rows.
fn inputs(dir: &Path) {
    for f in 0..3 {
        let mut body = String::new();
        for i in f * 400..(f + 1) * 400 {
            let line = corpus_line(i);
            // NFKC rewrites the ligature and the full-width letters of every 7th record.
            body.push_str(&if i % 7 == 0 { line.replace("\"text\":\"", "\"text\":\"ﬁne ｆｕｌｌ ") } else { line });
            if i == 401 {
                body.push_str(&corpus_line(400));
            }
        }
        if f == 1 {
            body.push_str("{\"id\": \"broken\", \"text\": \n");
        }
        write(&dir.join(format!("in/{f}.jsonl")), body);
    }
}

fn spec(dir: &Path, select: &str, extra: &str) {
    let body = format!(
        "name: q\ninput:\n  path: in/*.jsonl\n  id_field: id\n  on_duplicate_id: quarantine\n  split_size: 20KB\nsteps:\n  - op: length_filter\n    min_chars: 60\n  - op: normalize\n    form: nfkc\n  - op: gopher_quality\n    annotate_only: true\n  - op: select\n    expr: {select}\noutput:\n  path: out\n{extra}"
    );
    write(&dir.join("q.yaml"), body);
}

const OUTPUTS: [&str; 3] = ["out/data", "out/rejects", "out/quarantine"];

/// `run.json` without what differs between equal runs (time, threads, cache use).
fn counters(dir: &Path) -> Value {
    let mut r = run_json(&dir.join("out"));
    for k in ["elapsed_s", "threads", "task_cache"] {
        r.as_object_mut().unwrap().remove(k);
    }
    r
}

/// Per task step of run `run`: (step, reused) in the order the run lists them.
fn decisions(dir: &Path, run: &str) -> Vec<(String, bool, String)> {
    json(dir, &[], &["runs", "show", run])["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["step"].as_str().unwrap().to_string(), t["decision"] == "reused", t["reason"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn outputs_are_byte_identical_with_and_without_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    inputs(d);
    spec(d, "gopher_quality_n_words >= 20", "");
    curate(d, &[], &["run", "q.yaml", "--no-cache", "--threads", "1"]);
    let (fresh, fresh_counters) = (tree(d, &OUTPUTS), counters(d));
    assert!(fresh_counters["rejected"].as_u64().unwrap() > 0 && fresh_counters["quarantined"].as_u64().unwrap() == 2, "{fresh_counters}");

    // First cached run computes and stores every step; the second replays all of them.
    for (run, threads) in [("2", "3"), ("3", "1"), ("4", "2")] {
        curate(d, &[], &["run", "q.yaml", "--threads", threads]);
        assert_eq!(tree(d, &OUTPUTS), fresh, "run {run} with {threads} threads");
        assert_eq!(counters(d), fresh_counters, "run {run}");
        let steps = decisions(d, run);
        assert_eq!(steps.iter().filter(|s| s.1).count(), if run == "2" { 0 } else { steps.len() }, "run {run}: {steps:?}");
    }

    // The length filter changed: everything after it is recomputed from its new output.
    spec(d, "gopher_quality_n_words >= 20", "");
    write(&d.join("q.yaml"), std::fs::read_to_string(d.join("q.yaml")).unwrap().replace("min_chars: 60", "min_chars: 100"));
    curate(d, &[], &["run", "q.yaml"]);
    assert!(decisions(d, "5").iter().all(|s| !s.1));
    let cached = tree(d, &OUTPUTS);
    curate(d, &[], &["run", "q.yaml", "--no-cache"]);
    assert_eq!(tree(d, &OUTPUTS), cached);
}

#[test]
fn a_changed_threshold_recomputes_the_select_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    inputs(d);
    spec(d, "gopher_quality_n_words >= 20", "");
    curate(d, &[], &["run", "q.yaml"]);
    spec(d, "gopher_quality_n_words >= 40", "");
    curate(d, &[], &["run", "q.yaml"]);
    let steps = decisions(d, "2");
    assert!(!steps.is_empty());
    for (step, reused, reason) in &steps {
        assert_eq!(*reused, !step.ends_with("select"), "{step}: {reason}");
        if !reused {
            assert!(reason.contains("parameters changed"), "{reason}");
        }
    }
    let cached = (tree(d, &OUTPUTS), counters(d));
    curate(d, &[], &["run", "q.yaml", "--no-cache"]);
    assert_eq!((tree(d, &OUTPUTS), counters(d)), cached);
}

#[test]
fn entries_of_a_filter_and_a_quiet_normalize_are_small() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let body: String = (0..20_000).map(corpus_line).collect();
    write(&d.join("in/a.jsonl"), &body);
    write(&d.join("w.yaml"), "name: w\ninput: {path: in/*.jsonl, id_field: id}\nsteps:\n  - {op: length_filter, min_chars: 200}\n  - {op: normalize}\noutput: {path: out}\n");
    curate(d, &[], &["run", "w.yaml"]);
    let stats = json(d, &[], &["cache", "stats"]);
    assert_eq!(stats["entries"], 2);
    let bytes = stats["bytes"].as_u64().unwrap();
    assert!(bytes * 50 < body.len() as u64, "{bytes} cache bytes for {} input bytes", body.len());
}

/// Keys of the step outputs run `run` stored or reused.
fn keys(dir: &Path, run: &str) -> Vec<String> {
    let mut k: Vec<String> =
        json(dir, &[], &["runs", "show", run])["tasks"].as_array().unwrap().iter().map(|t| t["key"].as_str().unwrap().to_string()).collect();
    k.sort();
    k
}

fn cached_keys(dir: &Path) -> Vec<String> {
    let mut k = Vec::new();
    let cache = dir.join(".curate/cache");
    for shard in std::fs::read_dir(&cache).unwrap().flatten().filter(|e| e.file_name().len() == 2) {
        k.extend(std::fs::read_dir(shard.path()).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()));
    }
    k.sort();
    k
}

#[test]
fn the_budget_evicts_least_recently_used_and_cache_commands_report_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    inputs(d);
    spec(d, "gopher_quality_n_words >= 20", "");
    std::fs::rename(d.join("q.yaml"), d.join("a.yaml")).unwrap();
    spec(d, "gopher_quality_n_words >= 20", "");
    write(&d.join("b.yaml"), std::fs::read_to_string(d.join("q.yaml")).unwrap().replace("min_chars: 60", "min_chars: 61"));
    curate(d, &[], &["run", "a.yaml"]);
    let a = keys(d, "1");
    let after_a = json(d, &[], &["cache", "stats"]);
    assert_eq!(after_a["entries"].as_u64().unwrap() as usize, a.len());
    assert_eq!(after_a["max_size"], 10_000_000_000u64, "the default budget");
    std::thread::sleep(std::time::Duration::from_millis(20));
    curate(d, &[], &["run", "b.yaml"]);
    let b = keys(d, "2");
    assert_eq!(cached_keys(d), [a.clone(), b.clone()].concat().into_iter().collect::<std::collections::BTreeSet<_>>().into_iter().collect::<Vec<_>>());

    // Re-running a reuses (and so touches) its entries: b's are now the least recently used.
    std::thread::sleep(std::time::Duration::from_millis(20));
    curate(d, &[], &["run", "a.yaml"]);
    let stats = json(d, &[], &["cache", "stats"]);
    let total = stats["bytes"].as_u64().unwrap();
    assert!(stats["oldest_use_ms"].as_u64() < stats["newest_use_ms"].as_u64(), "{stats}");
    let pruned = json(d, &[], &["cache", "prune", "--max-size", &(total - 1).to_string()]);
    let removed: Vec<&str> = pruned["removed"].as_array().unwrap().iter().map(|e| e["key"].as_str().unwrap()).collect();
    assert!(!removed.is_empty() && removed.iter().all(|k| b.contains(&k.to_string())), "{pruned}");
    assert!(pruned["bytes"].as_u64().unwrap() < total);
    assert_eq!(pruned["entries"].as_u64().unwrap() as usize, a.len() + b.len() - removed.len());

    // A spec's budget applies after its run; the environment overrides it.
    let tiny = std::fs::read_to_string(d.join("a.yaml")).unwrap() + "cache:\n  max_size: 1\n";
    write(&d.join("a.yaml"), &tiny);
    curate(d, &[("CURATE_CACHE_MAX", "1TB")], &["run", "a.yaml"]);
    assert!(!cached_keys(d).is_empty());
    curate(d, &[], &["run", "a.yaml"]);
    assert!(cached_keys(d).is_empty(), "a 1-byte budget keeps nothing");
    let text = curate(d, &[("CURATE_CACHE_MAX", "2GB")], &["cache", "stats"]);
    assert_eq!(text, "0 step output(s), 0 B of a 2.0 GB budget\n");

    // prune lists what it removed.
    curate(d, &[], &["run", "b.yaml"]);
    let text = curate(d, &[], &["cache", "prune", "--max-size", "1"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), b.len() + 1, "{text}");
    assert!(lines[..b.len()].iter().all(|l| l.starts_with("removed ") && b.iter().any(|k| l.contains(k.as_str()))), "{text}");
    assert!(lines[b.len()].starts_with(&format!("removed {} step output(s)", b.len())), "{text}");
    let err = Command::new(env!("CARGO_BIN_EXE_curate")).args(["cache", "stats"]).current_dir(d).env("CURATE_CACHE_MAX", "lots").output().unwrap();
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("CURATE_CACHE_MAX: `lots` is not a size"));
}
