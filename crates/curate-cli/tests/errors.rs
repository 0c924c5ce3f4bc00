//! Configuration errors: one clear message naming the spec line and the fix, exit status 1.

mod common;

use common::*;

fn check(spec: &str, expected: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("in/a.jsonl"), "{\"text\": \"hello\"}\n");
    write(&dir.path().join("blocker"), "a file, not a directory");
    write(&dir.path().join("p.yaml"), spec);
    for cmd in ["validate", "run"] {
        let out = curate(dir.path(), &[cmd, "p.yaml"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{cmd}: expected failure, got {stderr}");
        for e in expected {
            assert!(stderr.contains(e), "{cmd}: expected `{e}` in:\n{stderr}");
        }
        assert!(!dir.path().join("out/data").exists(), "{cmd} must not write output on a bad spec");
    }
}

const HEAD: &str = "name: t\ninput:\n  path: in/*.jsonl\n";
const TAIL: &str = "output:\n  path: out\n";

#[test]
fn unknown_operator_names_line_and_suggests() {
    check(
        &format!("{HEAD}steps:\n  - op: length_filtr\n    min_chars: 3\n{TAIL}"),
        &["p.yaml:5:5: steps[0]: unknown operator `length_filtr`. Did you mean `length_filter`?", "curate ops"],
    );
}

#[test]
fn unknown_parameter_names_line_and_suggests() {
    check(
        &format!("{HEAD}steps:\n  - op: length_filter\n    min_char: 3\n{TAIL}"),
        &["p.yaml:6:5: steps[0] (length_filter): unknown parameter `min_char`, did you mean `min_chars`?", "parameters are: column, max_chars, min_chars"],
    );
}

#[test]
fn mistyped_parameter_names_line_and_type() {
    check(
        &format!("{HEAD}steps:\n  - op: length_filter\n    min_chars: lots\n{TAIL}"),
        &["p.yaml:6:5: steps[0] (length_filter): parameter `min_chars`: invalid type: string \"lots\", expected usize"],
    );
}

#[test]
fn inconsistent_parameters_are_refused() {
    check(
        &format!("{HEAD}steps:\n  - op: length_filter\n    min_chars: 9\n    max_chars: 3\n{TAIL}"),
        &["p.yaml:5:5: steps[0] (length_filter): min_chars (9) is greater than max_chars (3)"],
    );
}

#[test]
fn missing_input_is_named() {
    check(
        &format!("name: t\ninput:\n  path: nowhere/*.jsonl\nsteps: []\n{TAIL}"),
        &["p.yaml:3:3: input.path: no input file matches `nowhere/*.jsonl`"],
    );
    check(&format!("name: t\ninput:\n  path: in/missing.jsonl\n{TAIL}"), &["p.yaml:3:3: input.path: no input file matches `in/missing.jsonl`"]);
}

#[test]
fn bad_glob_is_named() {
    check(&format!("name: t\ninput:\n  path: \"in/[a.jsonl\"\n{TAIL}"), &["p.yaml:3:3: input.path: invalid glob `in/[a.jsonl`: unclosed character class"]);
}

#[test]
fn unwritable_output_is_named() {
    check(
        &format!("{HEAD}output:\n  path: blocker/out\n"),
        &["p.yaml:5:3: output.path: blocker/out:", "is a file, so the output directory cannot be created there"],
    );
}

#[test]
fn unknown_keys_and_bad_yaml_are_located() {
    check(&format!("{HEAD}  formt: jsonl\n{TAIL}"), &["p.yaml:4:3: `input.formt`: unknown key `formt`, expected one of"]);
    check(&format!("{HEAD}{TAIL}  shard_size: 12 parsecs\n"), &["p.yaml:6:3: `output.shard_size`: unknown size unit `parsecs`"]);
    check("name: t\ninput: [unclosed\n", &["p.yaml:3:1: invalid YAML"]);
    check(&format!("{HEAD}steps:\n  - min_chars: 3\n{TAIL}"), &["p.yaml:5:5: steps[0]: every step needs `op: <operator name>`"]);
}

#[test]
fn all_errors_are_reported_at_once() {
    check(
        &format!("{HEAD}steps:\n  - op: nope\n  - op: length_filter\n    max: 1\n{TAIL}"),
        &["p.yaml:5:5: steps[0]: unknown operator `nope`", "p.yaml:7:5: steps[1] (length_filter): unknown parameter `max`"],
    );
}

#[test]
fn validate_accepts_a_good_spec_and_ops_lists_parameters() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("in/a.jsonl"), "{\"text\": \"hello\"}\n");
    write(&dir.path().join("p.yaml"), format!("{HEAD}steps:\n  - op: length_filter\n    min_chars: 3\n{TAIL}"));
    let out = curate_ok(dir.path(), &["validate", "p.yaml"]);
    assert_eq!(out, "p.yaml: ok — 1 input shard(s), 1 step(s), output out\n");
    assert!(!dir.path().join("out").exists(), "validate must not create the output");

    let ops = curate_ok(dir.path(), &["ops"]);
    assert!(ops.contains("length_filter (v1, Map): Drop records whose text has"), "{ops}");
    assert!(ops.contains("    min_chars: integer\n        Drop records with fewer Unicode characters than this."), "{ops}");
    assert!(ops.contains("    column: string = \"text\""), "{ops}");
    let json: serde_json::Value = serde_json::from_str(&curate_ok(dir.path(), &["ops", "--json"])).unwrap();
    assert_eq!(json[0]["name"], "length_filter");
    assert_eq!(json[0]["kind"], "map");
}
