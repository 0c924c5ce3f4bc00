//! The datatrove-compatible quality filters inside pipelines: drop reasons, signal columns,
//! the C4 rewrite, and annotate-then-select.

mod common;

use common::*;

const GOOD: &str = "The committee met on Tuesday to discuss the new budget for the public library. \
Members agreed that the reading rooms need better lighting and more comfortable chairs.\n\
They also noted that the children's section is used by many families every weekend. \
A local teacher said that the library is one of the few quiet places left in the town.\n\
The mayor promised to review the plan before the end of the month. \
Most residents who attended the meeting were happy with the proposal and thanked the staff for their work.";

fn input(dir: &std::path::Path) {
    let repeated = vec!["Buy cheap watches online today at the best price."; 10].join("\n");
    let docs = [
        ("good", GOOD.to_string()),
        ("short", "Hello world.".to_string()),
        ("repeated", repeated),
        ("nav", format!("{GOOD}\nRead more\nShare this")),
    ];
    let lines: Vec<String> = docs.iter().map(|(id, t)| serde_json::json!({"id": id, "text": t}).to_string()).collect();
    write(&dir.join("in.jsonl"), lines.join("\n") + "\n");
}

fn jsonl(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn chain_drops_with_rule_reasons_and_c4_rewrites_kept_text() {
    let dir = tempfile::tempdir().unwrap();
    input(dir.path());
    let spec = "name: q\ninput:\n  path: in.jsonl\n  id_field: id\nsteps:\n  - op: gopher_repetition\n  - op: gopher_quality\n  - op: c4_quality\n  - op: fineweb_quality\noutput:\n  path: out\n  format: jsonl\n";
    write(&dir.path().join("p.yaml"), spec);
    curate_ok(dir.path(), &["run", "p.yaml"]);
    let data = jsonl(&dir.path().join("out/data/part-000000-000.jsonl"));
    let ids: Vec<&str> = data.iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["good", "nav"]);
    // C4 removed the two navigation lines, which lack terminal punctuation.
    assert_eq!(data[1]["text"], GOOD);
    assert_eq!(data[1]["c4_quality_lines_no_terminal_punct"], 2.0);
    assert_eq!(data[0]["c4_quality_lines_kept"], 3.0);
    for col in ["gopher_repetition_dup_line_frac", "gopher_quality_mean_word_length", "fineweb_quality_line_punct_ratio"] {
        assert!(data[0][col].is_f64(), "{col} missing in {}", data[0]);
    }
    let rejects = jsonl(&dir.path().join("out/rejects/part-000000-000.jsonl"));
    let reasons: Vec<(&str, &str)> =
        rejects.iter().map(|r| (r["id"].as_str().unwrap(), r["reason"].as_str().unwrap())).collect();
    assert_eq!(reasons, [("short", "gopher_repetition:top_2_gram"), ("repeated", "gopher_repetition:dup_line_frac")]);
    assert_eq!(rejects[1]["gopher_repetition_dup_line_frac"], 0.9);
}

#[test]
fn annotate_only_then_select_changes_thresholds_without_recomputing() {
    let dir = tempfile::tempdir().unwrap();
    input(dir.path());
    let spec = "name: q\ninput:\n  path: in.jsonl\n  id_field: id\nsteps:\n  - op: gopher_quality\n    annotate_only: true\n  - op: select\n    expr: gopher_quality_n_words >= 50 and gopher_quality_mean_word_length < 9\noutput:\n  path: out\n  format: jsonl\n";
    write(&dir.path().join("p.yaml"), spec);
    let out = curate_ok(dir.path(), &["run", "p.yaml"]);
    assert!(out.contains("4 records in, 3 out, 1 rejected"), "{out}");
    let rejects = jsonl(&dir.path().join("out/rejects/part-000000-000.jsonl"));
    assert_eq!(rejects[0]["id"], "short");
    assert_eq!(rejects[0]["reason"], "select:gopher_quality_n_words >= 50 and gopher_quality_mean_word_length < 9");
    assert_eq!(rejects[0]["gopher_quality_n_words"], 3.0);

    // A select over a signal no earlier step computes is refused before the run.
    write(&dir.path().join("bad.yaml"), spec.replace("gopher_quality_n_words >= 50", "gopher_qualty_n_words >= 50"));
    let out = curate(dir.path(), &["validate", "bad.yaml"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("reads column `gopher_qualty_n_words`, which neither the input nor an earlier step provides"));
}

#[test]
fn filter_thresholds_are_parameters_with_checked_names() {
    let dir = tempfile::tempdir().unwrap();
    input(dir.path());
    let spec = "name: q\ninput:\n  path: in.jsonl\n  id_field: id\nsteps:\n  - op: gopher_quality\n    min_doc_words: 2\n  - op: fineweb_quality\n    line_punct_thresh: 0.5\noutput:\n  path: out\n  format: jsonl\n";
    write(&dir.path().join("p.yaml"), spec);
    let out = curate(dir.path(), &["validate", "p.yaml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("p.yaml:9:5: steps[1] (fineweb_quality): unknown parameter `line_punct_thresh`, did you mean `line_punct_thr`?"), "{err}");
}
