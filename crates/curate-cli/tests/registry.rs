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

    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        serde_json::from_str(&self.run(&args)).unwrap()
    }

    /// Ids in the data files of a version.
    fn version_ids(&self, version: &str) -> Vec<String> {
        let v = &self.json(&["datasets", "show", version])[0];
        let mut ids: Vec<String> = v["files"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|f| strings(&read_parquet(&self.path().join(".curate/store").join(f["path"].as_str().unwrap())), "id"))
            .collect();
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

on_both_backends!(run_commits_versions_explain_and_diff, parameter_change_recomputes_downstream_only, added_file_is_the_only_one_read, forget_reaches_specialised_dataset, gc_keeps_last_versions, concurrent_runs_get_distinct_versions, dedup_pipeline_reuses_map_steps);

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
    assert_eq!(e["occurrences"].as_array().unwrap().len(), 2, "the audit trail of runs stays");
}

fn gc_keeps_last_versions(s: Store) {
    corpus(s.path(), "in/a.jsonl", 0..20);
    spec(s.path(), "web.yaml", WEB);
    for min in [30, 40, 50] {
        spec(s.path(), "web.yaml", &WEB.replace("min_chars: 30", &format!("min_chars: {min}")));
        s.run(&["run", "web.yaml"]);
    }
    s.run(&["datasets", "tag", "web@1", "keep-me"]);
    let out = s.run(&["gc", "--keep-last", "1", "--grace-hours", "0"]);
    assert!(out.starts_with("removed 1 version(s) (web@2)"), "{out}");
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
