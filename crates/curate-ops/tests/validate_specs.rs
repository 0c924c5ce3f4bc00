//! The new text operators as a spec author meets them: validation of their parameters,
//! including a missing word-list file, reported before anything runs.

use std::path::Path;

use curate_core::spec::PipelineSpec;

fn validate(steps: &str) -> Result<(), String> {
    let text = format!("name: t\ninput:\n  path: in.jsonl\nsteps:\n{steps}output:\n  path: out\n");
    let spec = PipelineSpec::parse(&text, Path::new("p.yaml")).map_err(|e| e.to_string())?;
    spec.build_steps(&curate_ops::registry(), &["id".into(), "text".into(), "lang".into()])
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn valid_steps_pass() {
    let steps = "  - op: normalize\n    form: nfkc\n  - op: pii_redact\n    mode: annotate\n    kinds: [email, iban]\n  - op: word_list_filter\n    words: [foo]\n    languages: {fr: {words: [bar]}}\n    language_column: lang\n    max_ratio: 0.1\n  - op: select\n    expr: pii_email == 0 and word_list_filter_count < 3\n";
    assert_eq!(validate(steps), Ok(()));
}

#[test]
fn missing_word_list_names_the_path_and_step() {
    let err = validate("  - op: word_list_filter\n    path: lists/missing.txt\n    max_count: 1\n").unwrap_err();
    assert_eq!(
        err,
        "p.yaml:5:5: steps[0] (word_list_filter): cannot read word list file `lists/missing.txt`: No such file or directory (os error 2)"
    );
}

#[test]
fn bad_values_are_reported() {
    let err = validate("  - op: normalize\n    form: nfd\n").unwrap_err();
    assert!(err.contains("steps[0] (normalize): parameter `form`") && err.contains("nfd"), "{err}");
    let err = validate("  - op: pii_redact\n    kinds: [passport]\n").unwrap_err();
    assert!(err.contains("parameter `kinds[0]`") && err.contains("passport"), "{err}");
}
