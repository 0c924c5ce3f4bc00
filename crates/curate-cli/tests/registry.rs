//! The registry seen through the CLI: versions committed by runs, incremental re-runs
//! proven by task counters, explain, dataset inputs, forget (with purge) reaching a
//! specialised dataset, gc, concurrent commits. Every test runs on SQLite (the default
//! embedded store) and on the local PostgreSQL server.

mod common;

use std::path::Path;

use common::{curate_env, read_parquet, strings, tree, write};
use serde_json::Value;

/// A registry for one test: the embedded default, or a fresh schema on PostgreSQL.
struct Store {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Store {
    fn sqlite() -> Self {
        Store { dir: tempfile::tempdir().unwrap(), env: Vec::new() }
    }

    fn postgres() -> Self {
        let base = std::env::var("CURATE_TEST_POSTGRES").unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".into());
        let mut admin = ::postgres::Client::connect(&base, ::postgres::NoTls)
            .unwrap_or_else(|e| panic!("PostgreSQL unreachable at {base} (scripts/postgres.sh starts it): {e}"));
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let schema = format!("cli_test_{}_{nanos}", std::process::id());
        admin.batch_execute(&format!("CREATE SCHEMA {schema}")).unwrap();
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
        Store { dir: tempfile::tempdir().unwrap(), env: vec![("CURATE_REGISTRY".into(), url)] }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self, args: &[&str]) -> String {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        curate_env(self.path(), &env, args)
    }

    /// Runs `curate` expecting failure; returns (stdout, stderr).
    fn fail(&self, args: &[&str]) -> (String, String) {
        let out = self.command(args).output().unwrap();
        assert!(!out.status.success(), "curate {args:?} should have failed:\n{}", String::from_utf8_lossy(&out.stdout));
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// The `curate` command in this store's directory with its environment.
    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new(common::curate_for_anyone());
        c.args(args).current_dir(self.path()).env("CURATE_LOG", "warn").envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        c
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        serde_json::from_str(&self.run(&args)).unwrap()
    }

    /// Ids in the data files of a version (Parquet or JSONL, plain or zstd).
    fn version_ids(&self, version: &str) -> Vec<String> {
        let v = &self.json(&["datasets", "show", version])[0];
        let mut ids: Vec<String> =
            v["files"].as_array().unwrap().iter().flat_map(|f| file_ids(&self.path().join(".curate/store").join(f["path"].as_str().unwrap()))).collect();
        ids.sort();
        ids
    }
}

macro_rules! on_both_backends {
    ($($name:ident),*) => {
        mod sqlite { $( #[test] fn $name() { super::$name(super::Store::sqlite()) } )* }
        mod postgres { $( #[test] fn $name() { super::$name(super::Store::postgres()) } )* }
    };
}

on_both_backends!(
    run_commits_versions_explain_and_diff,
    parameter_change_recomputes_downstream_only,
    added_file_is_the_only_one_read,
    forget_reaches_specialised_dataset,
    gc_keeps_last_versions,
    concurrent_runs_get_distinct_versions,
    dedup_pipeline_reuses_map_steps,
    editing_the_output_leaves_versions_intact_and_corrupt_objects_are_refused,
    gc_in_a_loop_never_breaks_a_run,
    killed_run_is_abandoned_then_resumed_under_its_id,
    forget_names_unknown_ids_counts_rows_explains_and_purges_outputs,
    explain_and_forget_agree_with_a_scan_of_the_outputs
);

/// The ids of an output file: Parquet, or JSONL (plain or zstd), in file order.
fn file_ids(path: &Path) -> Vec<String> {
    let name = path.to_string_lossy();
    if name.ends_with(".parquet") {
        return strings(&read_parquet(path), "id");
    }
    let bytes = std::fs::read(path).unwrap();
    let text = if name.ends_with(".zst") { zstd::decode_all(bytes.as_slice()).unwrap() } else { bytes };
    String::from_utf8(text).unwrap().lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].as_str().unwrap().to_owned()).collect()
}

/// Every output file's ids below `dir/sub`.
fn dir_ids(dir: &Path, sub: &str) -> std::collections::BTreeSet<String> {
    tree(dir, &[sub]).keys().flat_map(|p| file_ids(&dir.join(p))).collect()
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random corpora through a global dataset (JSONL + zstd output, many files) and a
/// specialised one reading it: `explain` of random ids and `forget` of random sources
/// must agree exactly with a brute-force scan of the output files.
fn explain_and_forget_agree_with_a_scan_of_the_outputs(s: Store) {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let words = ["data", "model", "the", "of", "web", "text", "quality", "a", "token", "page", "source", "record"];
    // (id, input file, byte offset) of every record.
    let mut records: Vec<(String, String, u64)> = Vec::new();
    for f in 0..3 {
        let file = format!("in/part-{f}.jsonl");
        let mut body = String::new();
        for _ in 0..700 {
            let id = format!("x{:012x}", rng.next() >> 16);
            let n = 1 + rng.below(25) as usize;
            let text: Vec<&str> = (0..n).map(|_| words[rng.below(words.len() as u64) as usize]).collect();
            records.push((id.clone(), file.clone(), body.len() as u64));
            body.push_str(&format!("{{\"id\":\"{id}\",\"text\":\"{}\"}}\n", text.join(" ")));
        }
        write(&s.path().join(&file), body);
    }
    spec(
        s.path(),
        "g.yaml",
        "name: g\ninput:\n  path: in/*.jsonl\n  id_field: id\n  split_size: 8KB\nsteps:\n  - op: length_filter\n    min_chars: 40\noutput:\n  path: out-g\n  format: jsonl\n  compression: zstd\n  shard_size: 4KB\n",
    );
    spec(s.path(), "c.yaml", "name: c\ninput:\n  dataset: g@latest\nsteps:\n  - op: length_filter\n    min_chars: 90\noutput:\n  path: out-c\n");
    assert!(s.run(&["run", "g.yaml"]).contains("committed g@1"));
    assert!(s.run(&["run", "c.yaml"]).contains("committed c@1"));
    let (g_kept, g_dropped) = (dir_ids(&s.path().join("out-g"), "data"), dir_ids(&s.path().join("out-g"), "rejects"));
    let (c_kept, c_dropped) = (dir_ids(&s.path().join("out-c"), "data"), dir_ids(&s.path().join("out-c"), "rejects"));
    assert_eq!(g_kept.len() + g_dropped.len(), records.len());
    assert_eq!(s.version_ids("g@1"), g_kept.iter().cloned().collect::<Vec<_>>());
    assert!(!c_kept.is_empty() && !c_dropped.is_empty() && !g_dropped.is_empty());

    for _ in 0..30 {
        let (id, file, offset) = records[rng.below(records.len() as u64) as usize].clone();
        let e = s.json(&["explain", &id]);
        let occ = e["occurrences"].as_array().unwrap();
        let first = &occ[0];
        assert_eq!((first["run"].as_i64(), first["source_file"].as_str(), first["source_offset"].as_u64()), (Some(1), Some(file.as_str()), Some(offset)), "{e}");
        assert_eq!(first["dropped"].is_null(), g_kept.contains(&id), "{e}");
        let mut want_versions = Vec::new();
        if g_kept.contains(&id) {
            want_versions.push("g@1");
            // The specialised run read it from g@1's stored files.
            assert_eq!(occ.len(), 2, "{e}");
            assert_eq!(occ[1]["dropped"].is_null(), c_kept.contains(&id), "{e}");
            if c_kept.contains(&id) {
                want_versions.push("c@1");
            }
        } else {
            assert_eq!(occ.len(), 1, "{e}");
            assert_eq!(first["dropped"]["step"], "00-length_filter", "{e}");
        }
        let mut got: Vec<&str> = e["versions"].as_array().unwrap().iter().map(|v| v["version"].as_str().unwrap()).collect();
        got.sort_unstable();
        want_versions.sort_unstable();
        assert_eq!(got, want_versions, "{e}");
    }
    assert!(!s.command(&["explain", "x-not-an-id"]).output().unwrap().status.success());

    let victims: Vec<String> = (0..40).map(|_| records[rng.below(records.len() as u64) as usize].0.clone()).collect();
    let mut args: Vec<&str> = vec!["forget"];
    args.extend(victims.iter().map(String::as_str));
    args.extend(["--reason", "random erasure"]);
    let out = s.run(&args);
    let gone: std::collections::BTreeSet<&String> = victims.iter().collect();
    let in_g = g_kept.iter().filter(|id| gone.contains(id)).count();
    let in_c = c_kept.iter().filter(|id| gone.contains(id)).count();
    assert!(out.contains(&format!("committed g@2 without {in_g} record(s)")), "{out}");
    if in_c > 0 {
        assert!(out.contains(&format!("committed c@2 without {in_c} record(s)")), "{out}");
    }
    let want: Vec<String> = g_kept.iter().filter(|id| !gone.contains(id)).cloned().collect();
    assert_eq!(s.version_ids("g@latest"), want);
    let want: Vec<String> = c_kept.iter().filter(|id| !gone.contains(id)).cloned().collect();
    assert_eq!(s.version_ids("c@latest"), want);
    assert_eq!(s.version_ids("g@1"), g_kept.iter().cloned().collect::<Vec<_>>(), "without --purge, g@1 is untouched");
    // The record-level diff of the forget is exactly the forgotten records.
    let diff = s.json(&["datasets", "diff", "g@1", "g@2"]);
    let removed: Vec<&str> = diff["removed"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let want: Vec<&str> = g_kept.iter().filter(|id| gone.contains(id)).map(String::as_str).collect();
    assert_eq!(removed, want);
    assert!(diff["added"].as_array().unwrap().is_empty());
}

/// Record `i` of a corpus: every 4th is short and dropped by `length_filter`.
fn text(i: usize) -> String {
    if i % 4 == 0 {
        format!("short {i}")
    } else {
        format!("record number {i} has enough words to pass the length filter easily")
    }
}

fn line(i: usize) -> String {
    format!("{{\"id\":\"r{i}\",\"text\":\"{}\"}}\n", text(i))
}

fn corpus(dir: &Path, file: &str, ids: std::ops::Range<usize>) {
    write(&dir.join(file), ids.map(line).collect::<String>());
}

fn spec(dir: &Path, file: &str, body: &str) {
    write(&dir.join(file), body);
}

const WEB: &str = "name: web\ninput:\n  path: in/*.jsonl\n  id_field: id\nsteps:\n  - op: length_filter\n    min_chars: 30\n  - op: normalize\n    form: nfc\noutput:\n  path: out\n";

fn tasks(run: &Value) -> (u64, u64) {
    (run["reused"].as_u64().unwrap(), run["recomputed"].as_u64().unwrap())
}

fn run_commits_versions_explain_and_diff(s: Store) {
    corpus(s.path(), "in/a.jsonl", 0..20);
    spec(s.path(), "web.yaml", WEB);
    assert!(s.run(&["run", "web.yaml"]).contains("committed web@1"));
    let list = s.json(&["datasets", "list"]);
    assert_eq!(list[0]["name"], "web");
    assert_eq!(list[0]["latest"], 1);
    let expected: Vec<String> = {
        let mut v: Vec<String> = (0..20).filter(|i| i % 4 != 0).map(|i| format!("r{i}")).collect();
        v.sort();
        v
    };
    assert_eq!(s.version_ids("web@1"), expected);

    let kept = s.json(&["explain", "r5"]);
    let occ = &kept["occurrences"][0];
    assert_eq!(occ["source_file"], "in/a.jsonl");
    assert_eq!(occ["source_id"], "r5");
    let ops: Vec<&str> = occ["operators"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert_eq!(ops, ["length_filter", "normalize"]);
    assert_eq!(occ["operators"][0]["params"]["min_chars"], 30);
    assert!(occ["dropped"].is_null());
    assert_eq!(kept["versions"][0]["version"], "web@1");

    let dropped = s.json(&["explain", "r4"]);
    assert_eq!(dropped["occurrences"][0]["dropped"]["reason"], "length_filter:min_chars");
    assert_eq!(dropped["occurrences"][0]["operators"].as_array().unwrap().len(), 1, "only the dropping step touched it");
    assert!(dropped["versions"].as_array().unwrap().is_empty());

    // A re-run of the same spec on the same input reproduces web@1: no new version.
    assert!(s.run(&["run", "web.yaml"]).contains("output unchanged, still web@1"));

    // A stricter filter: a new version, and diff says what left and why.
    spec(s.path(), "web.yaml", &WEB.replace("min_chars: 30", "min_chars: 66"));
    assert!(s.run(&["run", "web.yaml"]).contains("committed web@2"));
    let diff = s.json(&["datasets", "diff", "web@1", "web@2"]);
    let removed: Vec<&str> = diff["removed"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let expect_removed: Vec<String> = {
        let mut v: Vec<String> = (0..20).filter(|i| i % 4 != 0 && text(*i).len() < 66).map(|i| format!("r{i}")).collect();
        v.sort();
        v
    };
    assert!(!removed.is_empty());
    assert_eq!(removed, expect_removed.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(diff["why"][0].as_str().unwrap().starts_with("spec changed"), "{diff}");

    s.run(&["datasets", "tag", "web@1", "release-1"]);
    let v = s.json(&["datasets", "show", "web@release-1"]);
    assert_eq!(v[0]["version"], "web@1");
    assert_eq!(v[0]["tags"][0], "release-1");
    let runs = s.json(&["runs", "list"]);
    assert_eq!(runs.as_array().unwrap().len(), 3);
    assert!(runs.as_array().unwrap().iter().all(|r| r["status"] == "succeeded"));
}

fn parameter_change_recomputes_downstream_only(s: Store) {
    for (f, r) in [("in/a.jsonl", 0..30), ("in/b.jsonl", 30..60), ("in/c.jsonl", 60..90)] {
        corpus(s.path(), f, r);
    }
    spec(s.path(), "web.yaml", WEB);
    s.run(&["run", "web.yaml"]);
    assert_eq!(tasks(&s.json(&["runs", "show", "1"])), (0, 6), "3 files x 2 steps, all computed");

    // Change the second step only: the first step's outputs are reused for every file.
    spec(s.path(), "web.yaml", &WEB.replace("form: nfc", "form: nfkc"));
    s.run(&["run", "web.yaml"]);
    let run = s.json(&["runs", "show", "2"]);
    assert_eq!(tasks(&run), (3, 3));
    for t in run["tasks"].as_array().unwrap() {
        let reused = t["decision"] == "reused";
        assert_eq!(reused, t["step"] == "00-length_filter", "{t}");
        if !reused {
            assert!(t["reason"].as_str().unwrap().contains("parameters changed"), "{t}");
        }
    }
    let cached = tree(s.path(), &["out/data", "out/rejects"]);

    // The same spec computed from scratch writes byte-identical files.
    s.run(&["run", "web.yaml", "--no-cache"]);
    assert_eq!(tree(s.path(), &["out/data", "out/rejects"]), cached);

    // Changing the first step recomputes both steps.
    spec(s.path(), "web.yaml", &WEB.replace("form: nfc", "form: nfkc").replace("min_chars: 30", "min_chars: 31"));
    s.run(&["run", "web.yaml"]);
    let run = s.json(&["runs", "show", "4"]);
    assert_eq!(tasks(&run), (0, 6));
    assert!(run["tasks"].as_array().unwrap().iter().any(|t| t["reason"].as_str().unwrap().starts_with("follows recomputed step 0")));
}

fn added_file_is_the_only_one_read(s: Store) {
    corpus(s.path(), "in/a.jsonl", 0..30);
    corpus(s.path(), "in/b.jsonl", 30..60);
    spec(s.path(), "web.yaml", WEB);
    s.run(&["run", "web.yaml"]);
    corpus(s.path(), "in/c.jsonl", 60..90);
    assert!(s.run(&["run", "web.yaml"]).contains("committed web@2"));
    let run = s.json(&["runs", "show", "2"]);
    assert_eq!(tasks(&run), (4, 2), "a and b reused at both steps, c computed");
    let fresh: Vec<&Value> = run["tasks"].as_array().unwrap().iter().filter(|t| t["decision"] == "recomputed").collect();
    assert!(fresh.iter().any(|t| t["reason"].as_str().unwrap().contains("input not seen before")));
    let diff = s.json(&["datasets", "diff", "web@1", "web@2"]);
    assert_eq!(diff["added"].as_array().unwrap().len(), (60..90).filter(|i| i % 4 != 0).count());
    assert!(diff["removed"].as_array().unwrap().is_empty());
    assert!(diff["why"].as_array().unwrap().iter().any(|w| w == "input file added: in/c.jsonl"), "{diff}");

    // Editing a file in place changes its content hash: that file alone is recomputed.
    corpus(s.path(), "in/a.jsonl", 100..130);
    s.run(&["run", "web.yaml"]);
    assert_eq!(tasks(&s.json(&["runs", "show", "3"])), (4, 2));
}

const CODE: &str = "name: web-code\ninput:\n  dataset: web@latest\nsteps:\n  - op: length_filter\n    min_chars: 66\noutput:\n  path: out-code\n";

fn forget_reaches_specialised_dataset(s: Store) {
    corpus(s.path(), "in/a.jsonl", 0..40);
    spec(s.path(), "web.yaml", WEB);
    spec(s.path(), "code.yaml", CODE);
    s.run(&["run", "web.yaml"]);
    assert!(s.run(&["run", "code.yaml"]).contains("committed web-code@1"));
    let code = s.json(&["datasets", "show", "web-code@1"]);
    assert_eq!(code[0]["parents"][0], "web@1");
    let code_ids = s.version_ids("web-code@1");
    let victim = code_ids[0].clone();
    let only_global = s.version_ids("web@1").into_iter().find(|id| !code_ids.contains(id)).unwrap();

    let out = s.run(&["forget", &victim, &only_global, "--reason", "erasure request", "--actor", "dpo"]);
    assert!(out.contains("committed web@2 without 2 record(s)"), "{out}");
    assert!(out.contains("committed web-code@2 without 1 record(s)"), "{out}");
    for v in ["web@2", "web-code@2"] {
        let ids = s.version_ids(v);
        assert!(!ids.contains(&victim) && !ids.contains(&only_global), "{v} still holds a forgotten record");
    }
    assert_eq!(s.version_ids("web-code@2").len(), code_ids.len() - 1);
    // Without --purge, older versions are untouched (and say so in explain).
    assert!(s.version_ids("web@1").contains(&victim));
    let diff = s.json(&["datasets", "diff", "web-code@1", "web-code@2"]);
    assert_eq!(diff["removed"], serde_json::json!([victim]));
    assert!(diff["why"].as_array().unwrap().iter().any(|w| w.as_str().unwrap().contains("forget #1 by dpo: erasure request")), "{diff}");

    // --purge rewrites every older version's files too.
    s.run(&["forget", &victim, "--reason", "erasure request", "--purge"]);
    for v in ["web@1", "web@2", "web-code@1", "web-code@2"] {
        assert!(!s.version_ids(v).contains(&victim), "{v} still holds {victim} after --purge");
    }
    let e = s.json(&["explain", &victim]);
    assert!(e["versions"].as_array().unwrap().is_empty(), "{e}");
    // A purge erases the record's lineage with its data; the audit trail of the requests stays.
    assert!(e["occurrences"].as_array().unwrap().is_empty(), "{e}");
    assert_eq!(e["forgotten"].as_array().unwrap().len(), 2, "{e}");
}

fn gc_keeps_last_versions(s: Store) {
    spec(s.path(), "web.yaml", WEB);
    for start in [0, 20, 40] {
        corpus(s.path(), "in/a.jsonl", start..start + 20);
        s.run(&["run", "web.yaml"]);
    }
    s.run(&["datasets", "tag", "web@1", "keep-me"]);
    // Store files written within the grace period stay; without one, web@2's file goes.
    let out = s.run(&["gc", "--keep-last", "1"]);
    assert_eq!(out, "removed 1 version(s) (web@2), 0 data file(s), 0 step output(s)\n");
    let out = s.run(&["gc", "--keep-last", "1", "--grace-hours", "0"]);
    assert!(out.starts_with("removed 0 version(s), 1 data file(s)"), "{out}");
    let versions: Vec<String> = s.json(&["datasets", "show", "web"]).as_array().unwrap().iter().map(|v| v["version"].as_str().unwrap().to_string()).collect();
    assert_eq!(versions, ["web@1", "web@3"]);
    // What is left is intact and readable.
    assert!(!s.version_ids("web@1").is_empty());
    assert!(!s.version_ids("web@3").is_empty());
}

fn concurrent_runs_get_distinct_versions(s: Store) {
    corpus(s.path(), "in/a.jsonl", 0..200);
    for (i, min) in [(1, 30), (2, 60)] {
        let body = WEB.replace("min_chars: 30", &format!("min_chars: {min}")).replace("path: out\n", &format!("path: out{i}\n  dataset: web\n"));
        spec(s.path(), &format!("w{i}.yaml"), &body);
    }
    let children: Vec<_> = ["w1.yaml", "w2.yaml"]
        .iter()
        .map(|f| {
            std::process::Command::new(env!("CARGO_BIN_EXE_curate"))
                .args(["run", f])
                .current_dir(s.path())
                .envs(s.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .output()
        })
        .collect();
    for c in children {
        let c = c.unwrap();
        assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
    }
    let versions: Vec<String> = s.json(&["datasets", "show", "web"]).as_array().unwrap().iter().map(|v| v["version"].as_str().unwrap().to_string()).collect();
    assert_eq!(versions, ["web@1", "web@2"]);
}

fn dedup_pipeline_reuses_map_steps(s: Store) {
    // Records i and i + 1000 share a text, so exact_dedup has work across files.
    let dup = |range: std::ops::Range<usize>| range.map(|i| format!("{{\"id\":\"r{i}\",\"text\":\"{}\"}}\n", text(i % 1000))).collect::<String>();
    write(&s.path().join("in/a.jsonl"), dup(0..30));
    write(&s.path().join("in/b.jsonl"), dup(1000..1030));
    let body = WEB.replace("output:", "  - op: exact_dedup\noutput:");
    spec(s.path(), "web.yaml", &body);
    s.run(&["run", "web.yaml"]);
    write(&s.path().join("in/c.jsonl"), dup(2000..2030));
    s.run(&["run", "web.yaml"]);
    let run = s.json(&["runs", "show", "2"]);
    let count = |decision: &str, step: &str| {
        run["tasks"].as_array().unwrap().iter().filter(|t| t["decision"] == decision && t["step"].as_str().unwrap().starts_with(step)).count()
    };
    assert_eq!((count("reused", "00-"), count("reused", "01-")), (2, 2), "{run}");
    assert_eq!((count("recomputed", "00-"), count("recomputed", "01-")), (1, 1), "{run}");
    let cached = tree(s.path(), &["out/data", "out/rejects"]);
    s.run(&["run", "web.yaml", "--no-cache"]);
    assert_eq!(tree(s.path(), &["out/data", "out/rejects"]), cached);
    let ids = s.version_ids("web@2");
    assert_eq!(ids.len(), (0..30).filter(|i| i % 4 != 0).count(), "one survivor per text");
}

/// The Parquet files of a run output's `data/` (or another subdirectory), sorted.
fn parquet_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "parquet")).collect();
    files.sort();
    files
}

fn editing_the_output_leaves_versions_intact_and_corrupt_objects_are_refused(s: Store) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    corpus(s.path(), "in/a.jsonl", 0..40);
    spec(s.path(), "web.yaml", WEB);
    s.run(&["run", "web.yaml"]);
    let ids = s.version_ids("web@1");
    let v1 = s.json(&["datasets", "show", "web@1"]);
    let object = s.path().join(".curate/store").join(v1[0]["files"][0]["path"].as_str().unwrap());
    let meta = std::fs::metadata(&object).unwrap();
    assert_eq!(meta.permissions().mode() & 0o222, 0, "store objects are read-only");
    assert_eq!(meta.nlink(), 1, "a copy, not a hard link to the output file");

    // Copy another Parquet file over the run's output: the version does not change.
    corpus(s.path(), "other/b.jsonl", 100..103);
    spec(s.path(), "other.yaml", &WEB.replace("name: web", "name: other").replace("in/*.jsonl", "other/*.jsonl").replace("path: out\n", "path: out-other\n"));
    s.run(&["run", "other.yaml"]);
    let output = parquet_files(&s.path().join("out/data"));
    std::fs::copy(&parquet_files(&s.path().join("out-other/data"))[0], &output[0]).unwrap();
    assert_eq!(s.version_ids("web@1"), ids);
    assert_eq!(s.run(&["datasets", "verify", "web@1"]), "web@1: 1 file(s) ok\n");
    // ...and a dataset specialised from it reads the committed records, not the edit.
    spec(s.path(), "code.yaml", CODE);
    assert!(s.run(&["run", "code.yaml"]).contains("committed web-code@1"));
    let expected: Vec<String> = ids.iter().filter(|id| text(id[1..].parse().unwrap()).len() >= 66).cloned().collect();
    assert_eq!(s.version_ids("web-code@1"), expected);

    // A store object changed behind curate's back is caught before anything runs.
    let bytes = meta.len();
    let hash = v1[0]["files"][0]["content_hash"].as_str().unwrap().to_string();
    std::fs::set_permissions(&object, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::copy(&parquet_files(&s.path().join("out-other/data"))[0], &object).unwrap();
    let found = std::fs::metadata(&object).unwrap().len();
    spec(s.path(), "code2.yaml", &CODE.replace("name: web-code", "name: web-code2").replace("web@latest", "web@1").replace("out-code", "out-code2"));
    let runs_before = s.json(&["runs", "list"]).as_array().unwrap().len();
    let (_, err) = s.fail(&["run", "code2.yaml"]);
    let rel = v1[0]["files"][0]["path"].as_str().unwrap();
    assert!(
        err.contains(&format!("web@1: stored file {rel} does not match the version's manifest: expected {bytes} bytes with blake3 {hash}, found {found} bytes with blake3 ")),
        "{err}"
    );
    assert!(!s.path().join("out-code2").exists(), "nothing ran");
    assert_eq!(s.json(&["runs", "list"]).as_array().unwrap().len(), runs_before, "no run recorded");
    let (out, err) = s.fail(&["datasets", "verify", "web"]);
    assert!(out.contains("web@1: 1 of 1 file(s) do not match the manifest"), "{out}");
    assert!(out.contains(&format!("  {rel}: expected {bytes} bytes with blake3 {hash}, found {found} bytes with blake3 ")), "{out}");
    assert!(err.contains("1 stored file(s) of web do not match their manifest"), "{err}");
}

fn gc_in_a_loop_never_breaks_a_run(s: Store) {
    for (f, r) in [("in/a.jsonl", 0..200), ("in/b.jsonl", 200..400), ("in/c.jsonl", 400..600)] {
        corpus(s.path(), f, r);
    }
    /// Stops the gc loop however the runs end, so a failing run fails the test instead of hanging it.
    struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let _stop = StopOnDrop(&stop);
        let gc = scope.spawn(|| {
            let mut rounds = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let out = s.command(&["gc", "--keep-last", "1", "--grace-hours", "0"]).output().unwrap();
                assert!(out.status.success(), "gc failed: {}", String::from_utf8_lossy(&out.stderr));
                rounds += 1;
            }
            rounds
        });
        // Every run stores a file no version holds yet (c.jsonl changes each time) while gc sweeps.
        spec(s.path(), "web.yaml", WEB);
        for i in 0..20 {
            corpus(s.path(), "in/c.jsonl", 400 + i..600 + i);
            let out = s.command(&["run", "web.yaml"]).output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "run {i} failed while gc ran:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
            assert!(stdout.contains(&format!("committed web@{}", i + 1)), "{stdout}");
        }
        drop(_stop);
        assert!(gc.join().unwrap() > 0);
    });
    // What gc left is whole.
    assert_eq!(s.run(&["datasets", "verify", "web@20"]), "web@20: 3 file(s) ok\n");
    let expected = (0..400).chain(419..619).filter(|&i| text(i).len() >= 30).count();
    assert_eq!(s.version_ids("web@20").len(), expected);
}

fn killed_run_is_abandoned_then_resumed_under_its_id(s: Store) {
    // Many small files: one task each, run one at a time, so the kill lands mid-run.
    for f in 0..40 {
        corpus(s.path(), &format!("in/{f:02}.jsonl"), f * 500..f * 500 + 500);
    }
    spec(s.path(), "web.yaml", WEB);
    let mut child = s.command(&["run", "web.yaml", "--threads", "1"]).spawn().unwrap();
    let tasks = s.path().join("out/_state/tasks");
    let started = std::time::Instant::now();
    while std::fs::read_dir(&tasks).map_or(0, |d| d.count()) == 0 {
        assert!(started.elapsed().as_secs() < 60, "no task committed within a minute");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let runs = s.json(&["runs", "list"]);
    assert_eq!(runs.as_array().unwrap().len(), 1);
    assert_eq!(runs[0]["status"], "abandoned", "{runs}");
    assert_eq!(s.json(&["runs", "show", "1"])["status"], "abandoned");

    let out = s.run(&["run", "web.yaml", "--threads", "1", "--resume"]);
    assert!(out.contains("run 1: committed web@1"), "{out}");
    let resumed: u64 = out.split(" tasks (").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).unwrap();
    assert!(resumed >= 1, "{out}");
    let runs = s.json(&["runs", "list"]);
    assert_eq!(runs.as_array().unwrap().len(), 1, "the same run, not a new one: {runs}");
    assert_eq!(runs[0]["status"], "succeeded");
    let expected = (0..20_000).filter(|&i| text(i).len() >= 30).count();
    assert_eq!(s.version_ids("web@1").len(), expected);

    // Killed again, then started without --resume: the old run is abandoned, a new one runs.
    std::fs::remove_dir_all(s.path().join("out")).unwrap();
    let mut child = s.command(&["run", "web.yaml", "--threads", "1", "--no-cache"]).spawn().unwrap();
    while std::fs::read_dir(&tasks).map_or(0, |d| d.count()) == 0 {
        assert!(started.elapsed().as_secs() < 120, "no task committed");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    s.run(&["run", "web.yaml"]);
    let statuses: Vec<String> = s.json(&["runs", "list"]).as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap().to_string()).collect();
    assert_eq!(statuses, ["succeeded", "abandoned", "succeeded"]);
}

fn forget_names_unknown_ids_counts_rows_explains_and_purges_outputs(s: Store) {
    // r5 occurs twice in the input, both times long enough for either dataset.
    let long = "a record that is long enough to pass both length filters of this test easily";
    let mut input: String = (0..20).map(line).collect();
    input.push_str(&format!("{{\"id\":\"r5\",\"text\":\"{long}\"}}\n{{\"id\":\"r5\",\"text\":\"{long} again\"}}\n"));
    write(&s.path().join("in/a.jsonl"), input);
    spec(s.path(), "web.yaml", WEB);
    spec(s.path(), "code.yaml", CODE);
    s.run(&["run", "web.yaml"]);
    s.run(&["run", "code.yaml"]);

    // Only unknown ids: an error, and no audit entry.
    let (_, err) = s.fail(&["forget", "nope-1", "--reason", "typo"]);
    assert!(err.contains("no record or source with id nope-1"), "{err}");
    assert_eq!(s.json(&["datasets", "list"])[0]["latest"], 1);

    let out = s.command(&["forget", "r5", "nope-2", "--reason", "erasure request", "--actor", "dpo"]).output().unwrap();
    assert!(out.status.success());
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(stderr.contains("warning: unknown id(s), not part of forget #1: nope-2"), "{stderr}");
    assert!(stdout.starts_with("forget #1: 1 source(s)\n"), "audit #1: the failed request wrote none\n{stdout}");
    assert!(stdout.contains("committed web@2 without 3 record(s)"), "r5 three times (one from r5's line, two added)\n{stdout}");
    assert!(stdout.contains("committed web-code@2 without 2 record(s)"), "{stdout}");

    let e = s.json(&["explain", "r5"]);
    assert_eq!(e["forgotten"].as_array().unwrap().len(), 1, "{e}");
    let f = &e["forgotten"][0];
    assert_eq!((f["audit"].as_i64(), f["actor"].as_str(), f["reason"].as_str()), (Some(1), Some("dpo"), Some("erasure request")));
    assert_eq!(f["without"], serde_json::json!(["web@2", "web-code@2"]));
    let text_out = s.run(&["explain", "r5"]);
    assert!(text_out.contains("  forgotten by forget #1 on "), "{text_out}");
    assert!(text_out.contains(" by dpo: erasure request\n    committed without it: web@2, web-code@2\n"), "{text_out}");
    assert!(text_out.contains("the versions listed above still hold it"), "{text_out}");

    // --purge reaches the run output directories too, kept and rejected records alike.
    let ids_under = |dir: &str| -> Vec<String> {
        ["data", "rejects"].iter().flat_map(|sub| parquet_files(&s.path().join(dir).join(sub))).flat_map(|f| strings(&read_parquet(&f), "id")).collect()
    };
    assert_eq!(ids_under("out").iter().filter(|i| *i == "r5").count(), 3);
    let out = s.run(&["forget", "r5", "r4", "--reason", "erasure request", "--purge"]);
    for dir in ["out", "out-code"] {
        let ids = ids_under(dir);
        assert!(!ids.iter().any(|i| i == "r5" || i == "r4"), "{dir} still holds a forgotten record: {out}");
        assert!(ids.iter().any(|i| i == "r1"), "{dir} lost other records");
    }
    assert!(out.contains("purged 3 record(s) from web@1"), "{out}");
    assert!(out.contains(&format!("purged 3 record(s) from {}", s.path().join("out/data").canonicalize().unwrap().display())), "{out}");
    let purged_reject = format!("purged 1 record(s) from {}", s.path().join("out/rejects").canonicalize().unwrap().display());
    assert!(out.contains(&purged_reject), "r4 was dropped by the filter: its reject goes too\n{out}");
}

/// `curate` run by a user who may not write the registry: itself when not root (file
/// modes then suffice), else the unprivileged `nobody`, since root ignores file modes.
fn as_reader(mut c: std::process::Command) -> std::process::Output {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::process::CommandExt;
    if std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(1) == 0 {
        c.uid(65534).gid(65534);
    }
    c.output().unwrap()
}

#[test]
fn read_commands_work_on_a_read_only_registry() {
    use std::os::unix::fs::PermissionsExt;
    let s = Store::sqlite();
    corpus(s.path(), "in/a.jsonl", 0..20);
    spec(s.path(), "web.yaml", WEB);
    s.run(&["run", "web.yaml"]);
    spec(s.path(), "web.yaml", &WEB.replace("min_chars: 30", "min_chars: 66"));
    s.run(&["run", "web.yaml"]);
    let mode = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    mode(s.path(), 0o755);
    let home = s.path().join(".curate");
    let db = home.join("registry.db");
    let reads: [&[&str]; 9] = [
        &["datasets", "list"],
        &["datasets", "show", "web"],
        &["datasets", "show", "web@1", "--json"],
        &["datasets", "diff", "web@1", "web@2"],
        &["datasets", "verify", "web@1"],
        &["explain", "r5"],
        &["runs", "list"],
        &["runs", "show", "1"],
        &["datasets", "verify", "web"],
    ];
    // A read-only file in a writable directory, then a read-only directory.
    for (dir_mode, what) in [(0o777, "registry.db mode 444"), (0o555, "directory mode 555")] {
        for stray in ["registry.db-shm", "registry.db-wal"] {
            let _ = std::fs::remove_file(home.join(stray));
        }
        mode(&home, dir_mode);
        mode(&db, 0o444);
        for args in reads {
            let out = as_reader(s.command(args));
            assert!(out.status.success(), "{what}: curate {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let listed = String::from_utf8_lossy(&as_reader(s.command(&["datasets", "list"])).stdout).into_owned();
        assert!(listed.starts_with("web "), "{what}: {listed}");
        let out = as_reader(s.command(&["datasets", "tag", "web@1", "t"]));
        assert!(!out.status.success(), "{what}: a write must fail, not pretend");
    }
    mode(&home, 0o755);
    mode(&db, 0o644);
}

/// Several processes opening one fresh registry at once all succeed (one used to fail
/// with `database is locked`).
#[test]
fn concurrent_first_commands_on_a_fresh_registry() {
    for _ in 0..20 {
        let s = Store::sqlite();
        let commands: [&[&str]; 4] = [&["datasets", "list"], &["runs", "list"], &["gc", "--keep-last", "1"], &["explain", "r1"]];
        let children: Vec<_> = commands
            .iter()
            .cycle()
            .take(12)
            .map(|args| s.command(args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap())
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            // `explain` of an unknown id fails by design; anything else must not.
            assert!(out.status.success() || err.contains("no record `r1`"), "{err}");
        }
    }
}
