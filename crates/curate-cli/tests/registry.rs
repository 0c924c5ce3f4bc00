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
        Store { dir: tempfile::tempdir().unwrap(), env: vec![("CURATE_REGISTRY".into(), common::fresh_postgres("cli_test"))] }
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
    explain_and_forget_agree_with_a_scan_of_the_outputs,
    legacy_store_is_upgraded_and_explains_as_before
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

/// SQL on a test's registry behind curate's back, to rebuild the shape an older curate
/// left a store in.
enum Raw {
    Sqlite(rusqlite::Connection),
    Postgres(Box<::postgres::Client>),
}

impl Raw {
    fn open(s: &Store) -> Self {
        match s.env.iter().find(|(k, _)| k == "CURATE_REGISTRY") {
            Some((_, url)) => Raw::Postgres(Box::new(::postgres::Client::connect(url, ::postgres::NoTls).unwrap())),
            None => Raw::Sqlite(rusqlite::Connection::open(s.path().join(".curate/registry.db")).unwrap()),
        }
    }

    /// Statements with migration 1's placeholders for the spellings that differ.
    fn batch(&mut self, sql: &str) {
        match self {
            Raw::Sqlite(c) => c.execute_batch(&sql.replace("{pk}", "INTEGER PRIMARY KEY").replace("{without_rowid}", "WITHOUT ROWID")).unwrap(),
            Raw::Postgres(c) => c.batch_execute(&sql.replace("{pk}", "BIGSERIAL PRIMARY KEY").replace("{without_rowid}", "")).unwrap(),
        }
    }

    /// Rows of a query whose columns are all text.
    fn texts(&mut self, sql: &str) -> Vec<Vec<String>> {
        match self {
            Raw::Sqlite(c) => {
                let mut stmt = c.prepare(sql).unwrap();
                let n = stmt.column_count();
                stmt.query_map([], |r| (0..n).map(|i| r.get::<_, String>(i)).collect()).unwrap().map(|r| r.unwrap()).collect()
            }
            Raw::Postgres(c) => c.query(sql, &[]).unwrap().iter().map(|r| (0..r.len()).map(|i| r.get::<_, String>(i)).collect()).collect(),
        }
    }

    /// Tables and indexes (with their SQL on SQLite) and applied migrations.
    fn schema(&mut self) -> Vec<Vec<String>> {
        let objects = match self {
            Raw::Sqlite(_) => "SELECT type || ' ' || name || ' ' || COALESCE(sql, '') FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY 1",
            Raw::Postgres(_) => {
                "SELECT 'table ' || table_name || ' ' || column_name || ' ' || data_type || ' ' || is_nullable FROM information_schema.columns \
                 WHERE table_schema = current_schema() UNION ALL SELECT 'index ' || indexname || ' ' || replace(indexdef, current_schema() || '.', '') FROM pg_indexes \
                 WHERE schemaname = current_schema() ORDER BY 1"
            }
        };
        let mut out = self.texts(objects);
        out.extend(self.texts("SELECT CAST(version AS TEXT) FROM schema_migrations ORDER BY version"));
        out
    }
}

/// The tables migrations 1-3 left for per-record lineage, as they were after migration 2;
/// `lineage_files` and migrations 4 and later gone.
const LEGACY_SCHEMA: &str = "DROP TABLE lineage_files; DROP TABLE lineage_blooms; DELETE FROM schema_migrations WHERE version >= 4; \
    DROP TABLE job_events; DROP TABLE job_tasks; DROP TABLE jobs; DROP TABLE pipelines; DROP TABLE workers; DROP TABLE tokens; \
    DROP TABLE audit_log; DROP TABLE service_counters; DROP TABLE watches; \
    CREATE TABLE op_chains (id {pk}, run_id BIGINT NOT NULL REFERENCES runs(id), step TEXT NOT NULL, ops TEXT NOT NULL); \
    CREATE INDEX op_chains_run_step ON op_chains (run_id, step); \
    CREATE TABLE source_files (id {pk}, path TEXT NOT NULL UNIQUE); \
    CREATE TABLE records (record_id TEXT NOT NULL, chain_id BIGINT NOT NULL, source_id TEXT NOT NULL, source_file_id BIGINT NOT NULL, \
    source_offset BIGINT NOT NULL, drop_step TEXT, drop_reason TEXT, PRIMARY KEY (record_id, chain_id)) {without_rowid}; \
    CREATE INDEX records_source ON records (source_id); \
    CREATE TABLE version_records (version_id BIGINT NOT NULL, record_id TEXT NOT NULL, file_id BIGINT NOT NULL, \
    PRIMARY KEY (version_id, record_id)) {without_rowid}; \
    CREATE INDEX version_records_record ON version_records (record_id);";

/// An output row's id, source file, offset, and for rejects step index and reason.
type Origin = (String, String, u64, Option<(u32, String)>);

/// The origins of an output file's rows, in order.
fn origins(path: &Path) -> Vec<Origin> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{UInt32Type, UInt64Type};
    use arrow_array::Array;
    let mut out = Vec::new();
    for b in read_parquet(path) {
        let ids = b.column_by_name("id").unwrap().as_string::<i32>();
        let src = b.column_by_name("_source").unwrap().as_struct();
        let (files, offsets, rows) =
            (src.column(0).as_string::<i32>(), src.column(1).as_primitive::<UInt64Type>(), src.column(2).as_primitive::<UInt64Type>());
        let steps = b.column_by_name("step_index").map(|c| c.as_primitive::<UInt32Type>().clone());
        let reasons = b.column_by_name("reason").map(|c| c.as_string::<i32>().clone());
        for i in 0..b.num_rows() {
            let offset = if offsets.is_valid(i) { offsets.value(i) } else { rows.value(i) };
            let dropped = steps.as_ref().zip(reasons.as_ref()).map(|(s, r)| (s.value(i), r.value(i).to_string()));
            out.push((ids.value(i).to_string(), files.value(i).to_string(), offset, dropped));
        }
    }
    out
}

/// One explained occurrence: run, source file, offset, drop step label and reason.
type Occ = (i64, String, u64, Option<(String, String)>);

/// A store committed by two runs is put back into the shape curate 0.1 left it in (per-
/// record lineage rows built from the runs' real outputs, no lineage files): commands
/// refuse it, `registry upgrade` converts it (resuming after an interruption), and
/// afterwards explain says exactly what the legacy rows said, diff and forget work, and
/// the schema is that of a fresh store.
fn legacy_store_is_upgraded_and_explains_as_before(s: Store) {
    corpus(s.path(), "in/a.jsonl", 0..20);
    corpus(s.path(), "in/b.jsonl", 20..36);
    spec(s.path(), "web.yaml", WEB);
    // The second run filters after normalising, so its drops are at step 1.
    let web2 = WEB.replace("  - op: length_filter\n    min_chars: 30\n", "").replace("    form: nfc\n", "    form: nfc\n  - op: length_filter\n    min_chars: 66\n");
    spec(s.path(), "web2.yaml", &web2.replace("path: out\n", "path: out2\n"));
    assert!(s.run(&["run", "web.yaml"]).contains("committed web@1"));
    assert!(s.run(&["run", "web2.yaml"]).contains("committed web@2"));
    let versions = s.json(&["datasets", "show", "web"]);
    let versions = versions.as_array().unwrap();
    let runs: Vec<i64> = versions.iter().map(|v| v["run"].as_i64().unwrap()).collect();
    // Each run's operators with their parameters, as curate recorded them in its chains.
    let ops_of = |run: i64| -> Vec<Value> {
        let e = s.json(&["explain", "r13"]);
        let occ = e["occurrences"].as_array().unwrap().iter().find(|o| o["run"] == run).unwrap().clone();
        occ["operators"].as_array().unwrap().clone()
    };
    let ops: Vec<Vec<Value>> = runs.iter().map(|&r| ops_of(r)).collect();
    assert_eq!(ops[0].len(), 2);

    // What the legacy rows will say: kept records from the versions' files, dropped ones
    // from each run's rejects.
    let store = s.path().join(".curate/store");
    let mut expected: std::collections::BTreeMap<String, (std::collections::BTreeSet<Occ>, std::collections::BTreeSet<String>)> = Default::default();
    let mut kept_rows = Vec::new();
    let mut drop_rows = Vec::new();
    let mut data_files = std::collections::BTreeSet::new();
    for (v, &run) in versions.iter().zip(&runs) {
        for f in v["files"].as_array().unwrap() {
            let path = f["path"].as_str().unwrap().to_owned();
            for (id, file, offset, _) in origins(&store.join(&path)) {
                let e = expected.entry(id.clone()).or_default();
                e.0.insert((run, file.clone(), offset, None));
                e.1.insert(v["version"].as_str().unwrap().to_owned());
                kept_rows.push((id, run, file, offset, path.clone()));
            }
            data_files.insert(path);
        }
    }
    for ((out, &run), run_ops) in ["out", "out2"].iter().zip(&runs).zip(&ops) {
        for f in parquet_files(&s.path().join(out).join("rejects")) {
            for (id, file, offset, dropped) in origins(&f) {
                let (step, reason) = dropped.unwrap();
                let label = format!("{step:02}-{}", run_ops[step as usize]["name"].as_str().unwrap());
                expected.entry(id.clone()).or_default().0.insert((run, file.clone(), offset, Some((label.clone(), reason.clone()))));
                drop_rows.push((id, run, file, offset, step, label, reason));
            }
        }
    }
    assert!(drop_rows.len() > 9 && kept_rows.len() > 20, "both runs keep and drop records");

    // An old curate's store: no lineage files (only data objects), no sidecars beside
    // the outputs, rejects files gone too so only the registry rows can tell of them.
    for p in tree(&store, &["objects"]).into_keys() {
        if !data_files.contains(p.to_str().unwrap()) {
            std::fs::remove_file(store.join(p)).unwrap();
        }
    }
    for out in ["out", "out2"] {
        for sub in ["_lineage", "rejects"] {
            std::fs::remove_dir_all(s.path().join(out).join(sub)).unwrap();
        }
    }
    let mut raw = Raw::open(&s);
    let q = |v: &str| format!("'{}'", v.replace('\'', "''"));
    let mut sql = String::from(LEGACY_SCHEMA);
    // One chain per step (a record dropped at step i went through steps 0..=i).
    let mut chains = Vec::new();
    for (run, run_ops) in runs.iter().zip(&ops) {
        let mut run_chains = Vec::new();
        for i in 0..run_ops.len() {
            let chain: Vec<Value> = run_ops[..=i]
                .iter()
                .map(|o| serde_json::json!({"name": o["name"], "version": o["version"], "params_hash": "0ld", "params": o["params"]}))
                .collect();
            let id = 10 * run + i as i64;
            let label = format!("{i:02}-{}", run_ops[i]["name"].as_str().unwrap());
            sql.push_str(&format!("INSERT INTO op_chains (id, run_id, step, ops) VALUES ({id}, {run}, {}, {});", q(&label), q(&Value::from(chain).to_string())));
            run_chains.push(id);
        }
        chains.push(run_chains);
    }
    let mut source_ids = std::collections::BTreeMap::new();
    for file in kept_rows.iter().map(|r| &r.2).chain(drop_rows.iter().map(|r| &r.2)) {
        let n = source_ids.len() + 1;
        source_ids.entry(file.clone()).or_insert(n);
    }
    for (file, id) in &source_ids {
        sql.push_str(&format!("INSERT INTO source_files (id, path) VALUES ({id}, {});", q(file)));
    }
    let at = |run: i64| runs.iter().position(|&r| r == run).unwrap();
    let mut rows = std::collections::BTreeSet::new();
    for (id, run, file, offset, _) in &kept_rows {
        let kept_chain = *chains[at(*run)].last().unwrap();
        rows.insert(format!("({}, {kept_chain}, {}, {}, {offset}, NULL, NULL)", q(id), q(id), source_ids[file]));
    }
    for (id, run, file, offset, step, label, reason) in &drop_rows {
        rows.insert(format!("({}, {}, {}, {}, {offset}, {}, {})", q(id), chains[at(*run)][*step as usize], q(id), source_ids[file], q(label), q(reason)));
    }
    let rows: Vec<String> = rows.into_iter().collect();
    sql.push_str(&format!("INSERT INTO records VALUES {};", rows.join(", ")));
    // Each kept record in each version listing its file.
    for f in raw.texts("SELECT CAST(id AS TEXT), CAST(version_id AS TEXT), path FROM version_files") {
        let ids: std::collections::BTreeSet<&String> = kept_rows.iter().filter(|r| r.4 == f[2]).map(|r| &r.0).collect();
        for id in ids {
            sql.push_str(&format!("INSERT INTO version_records (version_id, record_id, file_id) VALUES ({}, {}, {});", f[1], q(id), f[0]));
        }
    }
    raw.batch(&sql);

    // Every command refuses the store until it is converted.
    for args in [&["explain", "r5"][..], &["datasets", "list"], &["forget", "r5", "--reason", "x"]] {
        let (_, err) = s.fail(args);
        assert!(err.contains(&format!("per-record lineage ({} rows)", rows.len())) && err.contains("curate registry upgrade"), "{args:?}: {err}");
    }

    // An upgrade interrupted by a missing data object converts what precedes it, changes
    // nothing else, and is completed by running it again.
    let last = data_files.iter().next_back().unwrap();
    let away = s.path().join("away");
    std::fs::rename(store.join(last), &away).unwrap();
    let (_, err) = s.fail(&["registry", "upgrade"]);
    assert!(err.contains(last.as_str()), "{err}");
    assert!(s.fail(&["explain", "r5"]).1.contains("curate registry upgrade"));
    std::fs::rename(&away, store.join(last)).unwrap();
    let out = s.run(&["registry", "upgrade"]);
    assert!(out.contains(&format!("with {} dropped record(s)", drop_rows.len())), "{out}");
    assert!(out.contains("converted by an earlier, interrupted upgrade"), "{out}");
    assert!(out.contains(&format!("dropped {} per-record lineage row(s); the registry is at schema 5", rows.len())), "{out}");
    assert!(s.run(&["registry", "upgrade"]).contains("nothing to upgrade"));

    // The schema is a fresh store's: the legacy tables and the upgrade's own are gone.
    let fresh = if s.env.is_empty() { Store::sqlite() } else { Store::postgres() };
    fresh.run(&["datasets", "list"]);
    assert_eq!(raw.schema(), Raw::open(&fresh).schema());
    // A data file two versions share has its lineage under each one's run.
    let file_runs: std::collections::BTreeSet<(&String, i64)> = kept_rows.iter().map(|r| (&r.4, r.1)).collect();
    assert!(file_runs.len() > data_files.len(), "the runs share a data file");
    assert_eq!(raw.texts("SELECT kind FROM lineage_files WHERE kind = 'kept'").len(), file_runs.len());

    // Explain says what the legacy rows said, for every record.
    for (id, (occs, in_versions)) in &expected {
        let e = s.json(&["explain", id]);
        let got: std::collections::BTreeSet<Occ> = e["occurrences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                let dropped = o["dropped"].as_object().map(|d| (d["step"].as_str().unwrap().to_owned(), d["reason"].as_str().unwrap().to_owned()));
                let run = o["run"].as_i64().unwrap();
                let n = match &dropped {
                    Some((label, _)) => label[..2].parse::<usize>().unwrap() + 1,
                    None => ops[at(run)].len(),
                };
                assert_eq!(o["operators"].as_array().unwrap()[..], ops[at(run)][..n], "{id}: {o}");
                (run, o["source_file"].as_str().unwrap().to_owned(), o["source_offset"].as_u64().unwrap(), dropped)
            })
            .collect();
        assert_eq!(&got, occs, "{id}");
        let got: std::collections::BTreeSet<String> = e["versions"].as_array().unwrap().iter().map(|v| v["version"].as_str().unwrap().to_owned()).collect();
        assert_eq!(&got, in_versions, "{id}");
    }
    let text_out = s.run(&["explain", "r4"]);
    assert!(text_out.contains("dropped at 00-length_filter: length_filter:min_chars"), "{text_out}");
    assert!(text_out.contains("dropped at 01-length_filter: length_filter:min_chars"), "{text_out}");

    // Diff reads the new sidecars; forget finds records through the new indexes.
    let diff = s.json(&["datasets", "diff", "web@1", "web@2"]);
    assert!(diff["removed"].as_array().unwrap().iter().any(|v| v == "r5"), "{diff}");
    let out = s.run(&["forget", "r13", "--reason", "erasure request"]);
    assert!(out.contains("committed web@3 without 1 record(s)"), "{out}");
    assert!(!s.version_ids("web@3").contains(&"r13".to_owned()));
    assert_eq!(s.json(&["explain", "r13"])["forgotten"].as_array().unwrap().len(), 1);
}
