//! Dedup steps inside pipelines: exact survivors per operator, determinism across threads,
//! shard counts and input order, persistent indexes, spilling, resume and bad parameters.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use serde_json::Value;

/// A 100-word text, distinct per `seed`, over a 1000-word vocabulary.
fn words(seed: u64) -> Vec<String> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..100)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("w{}", x % 1000)
        })
        .collect()
}

/// The text of `seed` with its last word replaced: 95 of 97 distinct 5-shingles shared.
fn near(seed: u64) -> String {
    let mut w = words(seed);
    w[99] = "changed".into();
    w.join(" ")
}

fn text(seed: u64) -> String {
    words(seed).join(" ")
}

fn line(id: &str, text: &str, url: Option<&str>) -> String {
    let mut v = serde_json::json!({ "id": id, "text": text });
    if let Some(u) = url {
        v["url"] = u.into();
    }
    format!("{v}\n")
}

fn jsonl_rows(out: &Path, sub: &str) -> Vec<Value> {
    let mut rows = Vec::new();
    for (_, bytes) in tree(out, &[sub]) {
        for l in String::from_utf8(bytes).unwrap().lines() {
            rows.push(serde_json::from_str(l).unwrap());
        }
    }
    rows
}

/// Kept ids with (cluster id, cluster size), and rejected ids with (reason, duplicate_of).
type Outcome = (BTreeMap<String, (Value, Value)>, BTreeMap<String, (Value, Value)>);

fn outcome(out: &Path, prefix: &str) -> Outcome {
    let kept = jsonl_rows(out, "data")
        .into_iter()
        .map(|r| {
            let id = r["id"].as_str().unwrap().to_string();
            (id, (r[format!("{prefix}_cluster_id")].clone(), r[format!("{prefix}_cluster_size")].clone()))
        })
        .collect();
    let rejected = jsonl_rows(out, "rejects")
        .into_iter()
        .map(|r| (r["id"].as_str().unwrap().to_string(), (r["reason"].clone(), r["duplicate_of"].clone())))
        .collect();
    (kept, rejected)
}

fn pipeline(input: &str, extra_input: &str, steps: &str, out: &str) -> String {
    format!("name: d\ninput:\n  path: {input}\n  id_field: id\n{extra_input}steps:\n{steps}output:\n  path: {out}\n  format: jsonl\n")
}

fn kept(pairs: &[(&str, &str, u64)]) -> BTreeMap<String, (Value, Value)> {
    pairs.iter().map(|(id, c, n)| (id.to_string(), (Value::from(*c), Value::from(*n)))).collect()
}

fn dropped(pairs: &[(&str, &str, Option<&str>)]) -> BTreeMap<String, (Value, Value)> {
    pairs.iter().map(|(id, r, d)| (id.to_string(), (Value::from(*r), d.map_or(Value::Null, Value::from)))).collect()
}

fn exact_fixture(dir: &Path) {
    write(
        &dir.join("in/a.jsonl"),
        [line("a1", "Hello  world.", None), line("a2", "goodbye", None), line("a3", "HELLO, WORLD!!", None)].concat(),
    );
    write(&dir.join("in/b.jsonl"), [line("b1", "hello world", None), line("b2", "Goodbye", None)].concat());
}

#[test]
fn exact_dedup_survivors_per_normalisation_and_keep() {
    let dir = tempfile::tempdir().unwrap();
    exact_fixture(dir.path());
    let run = |name: &str, params: &str| -> Outcome {
        let steps = format!("  - op: exact_dedup\n{params}");
        write(&dir.path().join(format!("{name}.yaml")), pipeline("in/*.jsonl", "", &steps, &format!("out-{name}")));
        curate_ok(dir.path(), &["run", &format!("{name}.yaml"), "--threads", "2"]);
        outcome(&dir.path().join(format!("out-{name}")), "exact")
    };
    let dup = "exact_dedup:duplicate";
    assert_eq!(
        run("default", ""),
        (
            kept(&[("a1", "a1", 3), ("a2", "a2", 2)]),
            dropped(&[("a3", dup, Some("a1")), ("b1", dup, Some("a1")), ("b2", dup, Some("a2"))])
        )
    );
    assert_eq!(
        run("ws", "    normalization: whitespace\n"),
        (kept(&[("a1", "a1", 1), ("a2", "a2", 1), ("a3", "a3", 1), ("b1", "b1", 1), ("b2", "b2", 1)]), dropped(&[]))
    );
    // "HELLO, WORLD!!" is the longest of its group; "goodbye" and "Goodbye" tie and the
    // smaller id wins.
    assert_eq!(
        run("longest", "    keep: longest\n"),
        (
            kept(&[("a3", "a3", 3), ("a2", "a2", 2)]),
            dropped(&[("a1", dup, Some("a3")), ("b1", dup, Some("a3")), ("b2", dup, Some("a2"))])
        )
    );
    let run_json = run_json(&dir.path().join("out-default"));
    assert_eq!(run_json["records_in"], 5);
    assert_eq!(run_json["records_out"], 2);
    assert_eq!(run_json["rejected"], 3);
    assert_eq!(run_json["steps"][0]["dropped"][dup], 3);
}

#[test]
fn url_dedup_canonicalises_and_keeps_records_without_url() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("in/a.jsonl"),
        [
            line("u1", "one", Some("https://www.Ex.org/a/?y=2&x=1")),
            line("u2", "two", Some("https://ex.org/a?x=1&y=2#top")),
            line("u3", "three", Some("https://ex.org/b")),
            line("u4", "four", None),
            line("u5", "five", Some("not a url")),
            line("u6", "six six", Some("HTTPS://ex.org:443/b/")),
        ]
        .concat(),
    );
    let steps = "  - op: url_dedup\n    keep: longest\n";
    write(&dir.path().join("p.yaml"), pipeline("in/a.jsonl", "", steps, "out"));
    curate_ok(dir.path(), &["run", "p.yaml"]);
    let dup = "url_dedup:duplicate";
    assert_eq!(
        outcome(&dir.path().join("out"), "url"),
        (
            kept(&[("u1", "u1", 2), ("u4", "u4", 1), ("u5", "u5", 1), ("u6", "u6", 2)]),
            dropped(&[("u2", dup, Some("u1")), ("u3", dup, Some("u6"))])
        )
    );
}

fn minhash_fixture(dir: &Path) {
    write(
        &dir.join("in/a.jsonl"),
        [line("m1", &text(1), None), line("m2", &text(2), None), line("m3", &near(1), None)].concat(),
    );
    write(
        &dir.join("in/b.jsonl"),
        [line("m4", &text(3), None), line("m5", &text(1).to_uppercase(), None), line("m6", &near(2), None)].concat(),
    );
}

#[test]
fn minhash_dedup_exact_survivors_with_verified_jaccard() {
    let dir = tempfile::tempdir().unwrap();
    minhash_fixture(dir.path());
    write(&dir.path().join("p.yaml"), pipeline("in/*.jsonl", "", "  - op: minhash_dedup\n", "out"));
    curate_ok(dir.path(), &["run", "p.yaml"]);
    let out = dir.path().join("out");
    let near_dup = "minhash_dedup:near_duplicate";
    assert_eq!(
        outcome(&out, "minhash"),
        (
            kept(&[("m1", "m1", 3), ("m2", "m2", 2), ("m4", "m4", 1)]),
            dropped(&[("m3", near_dup, Some("m1")), ("m5", near_dup, Some("m1")), ("m6", near_dup, Some("m2"))])
        )
    );
    let jaccard: BTreeMap<String, f64> = jsonl_rows(&out, "rejects")
        .into_iter()
        .map(|r| (r["id"].as_str().unwrap().to_string(), r["jaccard"].as_f64().unwrap()))
        .collect();
    let j = 95.0 / 97.0;
    assert_eq!(jaccard.len(), 3);
    for (id, want) in [("m3", j), ("m5", 1.0), ("m6", j)] {
        assert!((jaccard[id] - want).abs() < 1e-12, "{id}: {} vs {want}", jaccard[id]);
    }

    // Without verification the clusters are the same here; similarities become estimates:
    // shares of the 14 x 8 = 112 MinHash values that agree.
    write(&dir.path().join("q.yaml"), pipeline("in/*.jsonl", "", "  - op: minhash_dedup\n    verify: false\n", "out-q"));
    curate_ok(dir.path(), &["run", "q.yaml"]);
    let out_q = dir.path().join("out-q");
    assert_eq!(outcome(&out_q, "minhash"), outcome(&out, "minhash"));
    for r in jsonl_rows(&out_q, "rejects") {
        let est = r["jaccard"].as_f64().unwrap();
        let agreeing = est * 112.0;
        assert!((agreeing - agreeing.round()).abs() < 1e-9 && est > 0.8, "{r}");
        if r["id"] == "m5" {
            assert_eq!(est, 1.0);
        }
    }
}

/// A corpus with exact and near duplicates spread over files, plus filler records.
fn mixed_corpus(dir: &Path, files: &[&str]) {
    for (f, name) in files.iter().enumerate() {
        let mut s = String::new();
        for i in 0..150u64 {
            let n = f as u64 * 150 + i;
            let t = match n % 5 {
                0 => text(n / 5 % 40),
                1 => near(n / 5 % 40),
                _ => text(1000 + n),
            };
            s.push_str(&line(&format!("r{n}"), &t, Some(&format!("https://ex.org/{}", n % 97))));
        }
        write(&dir.join("in").join(name), s);
    }
}

const ALL_STEPS: &str = "  - op: length_filter\n    min_chars: 10\n  - op: exact_dedup\n    keep: longest\n  - op: minhash_dedup\n  - op: url_dedup\n    keep: highest:minhash_cluster_size\n";

#[test]
fn dedup_pipeline_is_byte_identical_for_one_and_two_threads() {
    let dir = tempfile::tempdir().unwrap();
    mixed_corpus(dir.path(), &["a.jsonl", "b.jsonl", "c.jsonl"]);
    for t in ["1", "2"] {
        write(
            &dir.path().join(format!("p{t}.yaml")),
            pipeline("in/*.jsonl", "  split_size: 20KB\n", ALL_STEPS, &format!("out{t}")),
        );
        curate_ok(dir.path(), &["run", &format!("p{t}.yaml"), "--threads", t]);
    }
    let a = tree(&dir.path().join("out1"), &["data", "rejects", "quarantine"]);
    let b = tree(&dir.path().join("out2"), &["data", "rejects", "quarantine"]);
    assert!(a.len() > 4, "expected several tasks, got {:?}", a.keys());
    assert_eq!(a, b);
    let run = run_json(&dir.path().join("out2"));
    assert_eq!(run["records_in"], 450);
    let dropped: u64 = (1..4).map(|s| run["steps"][s]["dropped"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum::<u64>()).sum();
    assert_eq!(run["records_out"].as_u64().unwrap() + dropped, 450);
    assert!(run["steps"][1]["dropped"]["exact_dedup:duplicate"].as_u64().unwrap() > 0, "{run}");
    assert!(run["steps"][2]["dropped"]["minhash_dedup:near_duplicate"].as_u64().unwrap() > 0, "{run}");
    assert!(run["steps"][3]["dropped"]["url_dedup:duplicate"].as_u64().unwrap() > 0, "{run}");
}

/// `text` without terminal colour codes (`ESC [ ... m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}

fn sorted_outcome(out: &Path) -> (Vec<String>, Vec<(String, String, String)>) {
    let mut kept: Vec<String> = jsonl_rows(out, "data").iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    kept.sort();
    let mut rejected: Vec<(String, String, String)> = jsonl_rows(out, "rejects")
        .iter()
        .map(|r| (r["id"].as_str().unwrap().into(), r["reason"].as_str().unwrap().into(), r["duplicate_of"].to_string()))
        .collect();
    rejected.sort();
    (kept, rejected)
}

#[test]
fn survivors_do_not_depend_on_input_order_shard_count_or_file_names() {
    let dir = tempfile::tempdir().unwrap();
    mixed_corpus(dir.path(), &["a.jsonl", "b.jsonl", "c.jsonl"]);
    // The same records under names that sort the other way round.
    for (from, to) in [("a", "z"), ("b", "y"), ("c", "x")] {
        write(&dir.path().join(format!("renamed/{to}.jsonl")), std::fs::read(dir.path().join(format!("in/{from}.jsonl"))).unwrap());
    }
    // keep: first follows file names by definition, so renaming is checked with id-based ties.
    let keep = |k: &str| {
        format!("  - op: exact_dedup\n    keep: {k}\n  - op: minhash_dedup\n    keep: {k}\n  - op: url_dedup\n    keep: {k}\n")
    };
    let steps = keep("longest");
    let variants = [
        ("ordered", "[in/a.jsonl, in/b.jsonl, in/c.jsonl]", ""),
        ("shuffled", "[in/c.jsonl, in/a.jsonl, in/b.jsonl]", "  split_size: 15KB\n"),
        ("renamed", "renamed/*.jsonl", "  split_size: 30KB\n"),
    ];
    let mut results = Vec::new();
    for (name, input, extra) in variants {
        write(&dir.path().join(format!("{name}.yaml")), pipeline(input, extra, &steps, &format!("out-{name}")));
        curate_ok(dir.path(), &["run", &format!("{name}.yaml")]);
        results.push(sorted_outcome(&dir.path().join(format!("out-{name}"))));
    }
    assert!(!results[0].1.is_empty());
    assert_eq!(results[0], results[1]);
    assert_eq!(results[0], results[2]);

    // keep: first is source order, which the input list order does not change.
    let first = keep("first");
    let mut firsts = Vec::new();
    for (name, input) in [("f1", "[in/a.jsonl, in/b.jsonl, in/c.jsonl]"), ("f2", "[in/b.jsonl, in/c.jsonl, in/a.jsonl]")] {
        write(&dir.path().join(format!("{name}.yaml")), pipeline(input, "  split_size: 20KB\n", &first, &format!("out-{name}")));
        curate_ok(dir.path(), &["run", &format!("{name}.yaml")]);
        firsts.push(sorted_outcome(&dir.path().join(format!("out-{name}"))));
    }
    assert_eq!(firsts[0], firsts[1]);
}

#[test]
fn tiny_memory_limit_spills_and_gives_the_same_output() {
    let dir = tempfile::tempdir().unwrap();
    mixed_corpus(dir.path(), &["a.jsonl", "b.jsonl"]);
    write(&dir.path().join("big.yaml"), pipeline("in/*.jsonl", "", ALL_STEPS, "out-big"));
    write(&dir.path().join("small.yaml"), pipeline("in/*.jsonl", "", ALL_STEPS, "out-small"));
    curate_ok(dir.path(), &["run", "big.yaml"]);
    let out = curate(dir.path(), &["run", "small.yaml", "--memory-limit", "64KiB"]);
    assert!(out.status.success());
    let stderr = strip_ansi(&String::from_utf8_lossy(&out.stderr));
    let most = stderr
        .split("partitions=")
        .skip(1)
        .filter_map(|s| s.split(|c: char| !c.is_ascii_digit()).next()?.parse::<u64>().ok())
        .max();
    assert!(most.is_some_and(|p| p > 1), "a 64 KiB budget must spill to several partitions: {stderr}");
    let a = tree(&dir.path().join("out-big"), &["data", "rejects"]);
    let b = tree(&dir.path().join("out-small"), &["data", "rejects"]);
    assert_eq!(a, b);
}

#[test]
fn index_round_trip_drops_records_seen_by_an_earlier_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(&d.join("old/a.jsonl"), [line("o1", &text(1), Some("https://ex.org/1")), line("o2", &text(2), Some("https://ex.org/2"))].concat());
    write(
        &d.join("new/a.jsonl"),
        [
            line("n1", &text(1), Some("https://ex.org/9")),
            line("n2", &near(2), Some("https://ex.org/8")),
            line("n3", &text(3), Some("https://www.ex.org/1/")),
            line("n4", &text(4), Some("https://ex.org/4")),
            line("n5", &near(4), Some("https://ex.org/5")),
        ]
        .concat(),
    );
    let steps = |mode: &str| {
        format!(
            "  - op: exact_dedup\n    index: {{path: ix/exact, mode: {mode}}}\n  - op: minhash_dedup\n    index: {{path: ix/minhash, mode: {mode}}}\n  - op: url_dedup\n    index: {{path: ix/url, mode: {mode}}}\n    expected_items: 1000\n"
        )
    };
    write(&d.join("old.yaml"), pipeline("old/*.jsonl", "", &steps("write"), "out-old"));
    write(&d.join("new.yaml"), pipeline("new/*.jsonl", "", &steps("update"), "out-new"));
    write(&d.join("again.yaml"), pipeline("new/*.jsonl", "", &steps("read"), "out-again"));
    curate_ok(d, &["run", "old.yaml"]);
    assert_eq!(sorted_outcome(&d.join("out-old")).0, ["o1", "o2"]);
    let stdout = curate_ok(d, &["run", "new.yaml"]);
    let (kept, rejected) = sorted_outcome(&d.join("out-new"));
    assert_eq!(kept, ["n4"], "{stdout}");
    let q = |s: &str| format!("\"{s}\"");
    assert_eq!(
        rejected,
        [
            ("n1".into(), "exact_dedup:in_index".into(), q("o1")),
            ("n2".into(), "minhash_dedup:near_duplicate".into(), q("o2")),
            ("n3".into(), "url_dedup:in_index".into(), "null".into()),
            ("n5".into(), "minhash_dedup:near_duplicate".into(), q("n4")),
        ]
    );
    // The update added n4, so the same records now all duplicate the index.
    curate_ok(d, &["run", "again.yaml"]);
    let (kept, rejected) = sorted_outcome(&d.join("out-again"));
    assert!(kept.is_empty(), "{kept:?}");
    assert_eq!(rejected.len(), 5);
    assert!(rejected.iter().any(|r| r == &("n4".to_string(), "exact_dedup:in_index".to_string(), q("n4"))), "{rejected:?}");
}

#[test]
fn resume_reuses_committed_stage_tasks_and_reduces() {
    let dir = tempfile::tempdir().unwrap();
    mixed_corpus(dir.path(), &["a.jsonl", "b.jsonl"]);
    write(&dir.path().join("p.yaml"), pipeline("in/*.jsonl", "", ALL_STEPS, "out"));
    curate_ok(dir.path(), &["run", "p.yaml"]);
    let before = tree(&dir.path().join("out"), &["data", "rejects"]);
    // Forget the last stage's second task, as if the run had died before committing it.
    let tasks = dir.path().join("out/_state/tasks");
    let mut states: Vec<_> = std::fs::read_dir(&tasks).unwrap().map(|e| e.unwrap().path()).collect();
    states.sort();
    assert_eq!(states.len(), 8, "2 shards x 4 stages");
    std::fs::remove_file(states.last().unwrap()).unwrap();
    let stdout = curate_ok(dir.path(), &["run", "p.yaml", "--resume"]);
    assert!(stdout.contains("8 tasks (7 resumed)"), "{stdout}");
    assert_eq!(before, tree(&dir.path().join("out"), &["data", "rejects"]));
}

#[test]
fn bad_dedup_parameters_are_located() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("in/a.jsonl"), line("a", "x", None));
    let cases = [
        ("  - op: exact_dedup\n    normalization: lower\n", "p.yaml:7:5: steps[0] (exact_dedup): parameter `normalization`: unknown variant `lower`"),
        ("  - op: exact_dedup\n    keep: \"highest:\"\n", "steps[0] (exact_dedup): parameter `keep`: `highest:` is not one of `first`, `longest`, `highest:<column>`"),
        ("  - op: minhash_dedup\n    bands: 0\n", "p.yaml:6:5: steps[0] (minhash_dedup): invalid parameter `bands`: must be at least 1"),
        ("  - op: minhash_dedup\n    threshold: 1.5\n", "invalid parameter `threshold`: 1.5 is not in (0, 1]"),
        ("  - op: url_dedup\n    fp_rate: 1.0\n", "invalid parameter `fp_rate`: 1 is not in the open interval (0, 1)"),
        ("  - op: exact_dedup\n    keep: highest:score\n", "reads column `score`, which neither the input nor an earlier step provides"),
        ("  - op: minhash_dedup\n    index: {path: nowhere, mode: read}\n", "`index.path`: nowhere holds no index (missing minhash.lsh)"),
        ("  - op: exact_dedup\n    index: {path: ix, mode: sometimes}\n", "parameter `index.mode`: unknown variant `sometimes`"),
    ];
    for (steps, want) in cases {
        write(&dir.path().join("p.yaml"), pipeline("in/a.jsonl", "", steps, "out"));
        let out = curate(dir.path(), &["validate", "p.yaml"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{steps}: {stderr}");
        assert!(stderr.contains(want), "{steps}: expected `{want}` in:\n{stderr}");
    }
}

#[test]
fn ops_lists_the_dedup_operators_as_global() {
    let dir = tempfile::tempdir().unwrap();
    let out = curate_ok(dir.path(), &["ops"]);
    for op in ["exact_dedup (v1, Global)", "url_dedup (v1, Global)", "minhash_dedup (v1, Global)"] {
        assert!(out.contains(op), "{op} missing from:\n{out}");
    }
    assert!(out.contains("keep: string = \"first\""), "{out}");
}
