//! The README's first command: the bundled web pipeline on the bundled crawl, from a copy of
//! the files a fresh clone has. The counts per step and the two records `curate explain`
//! shows in the README are checked here, so the README stays true. Only stable facts are
//! asserted (exit status, ids, step names, reasons, "kept"), not whole outputs.

mod common;

use std::path::Path;
use std::process::Command;

use arrow_array::cast::AsArray;
use common::*;

/// The dropped record and the kept record the README explains.
const DROPPED: &str = "doc-00167";
const KEPT: &str = "doc-00126";

/// Per step: operator, records in, records out, drops by reason (as in the README's summary).
const STEPS: &[(&str, u64, u64, &[(&str, u64)])] = &[
    ("html_extract", 655, 643, &[("html_extract:empty", 12)]),
    ("language_id", 643, 591, &[("language_id:not_kept", 52)]),
    (
        "gopher_repetition",
        591,
        564,
        &[("gopher_repetition:top_2_gram", 17), ("gopher_repetition:top_3_gram", 4), ("gopher_repetition:top_4_gram", 6)],
    ),
    ("gopher_quality", 564, 487, &[("gopher_quality:gopher_below_alpha_threshold", 73), ("gopher_quality:gopher_short_doc", 4)]),
    ("c4_quality", 487, 466, &[("c4_quality:curly_bracket", 6), ("c4_quality:lorem_ipsum", 15)]),
    ("fineweb_quality", 466, 466, &[]),
    ("pii_redact", 466, 466, &[]),
    ("exact_dedup", 466, 445, &[("exact_dedup:duplicate", 21)]),
    ("minhash_dedup", 445, 418, &[("minhash_dedup:near_duplicate", 27)]),
];

/// A directory holding what a fresh clone has of the example: the spec and the crawl.
fn example_checkout() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let ex = repo_root().join("examples/web");
    write(&dir.path().join("examples/web/pipeline.yaml"), std::fs::read(ex.join("pipeline.yaml")).unwrap());
    let mut files = 0;
    for e in std::fs::read_dir(ex.join("data")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_owned();
        if name.ends_with(".jsonl.gz") {
            write(&dir.path().join("examples/web/data").join(&name), std::fs::read(&p).unwrap());
            files += 1;
        }
    }
    assert_eq!(files, 4, "the bundled crawl is four segment files");
    dir
}

/// `curate explain ID` in `dir`: asserts success, returns stdout.
fn explain(dir: &Path, id: &str) -> String {
    let out = curate(dir, &["explain", id]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "explain {id} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn readme_web_example_gives_its_counts_and_explains_its_two_records() {
    let dir = example_checkout();
    let stdout = curate_ok(dir.path(), &["validate", "examples/web/pipeline.yaml"]);
    assert!(stdout.contains("9 step(s)"), "{stdout}");

    let stdout = curate_ok(dir.path(), &["run", "examples/web/pipeline.yaml"]);
    assert!(stdout.contains("web: 655 records in, 418 out, 237 rejected, 0 quarantined"), "{stdout}");
    assert!(stdout.contains("committed web@1"), "{stdout}");
    let out = dir.path().join("out/web");
    let run = run_json(&out);
    assert_eq!((run["records_in"].as_u64(), run["records_out"].as_u64()), (Some(655), Some(418)));
    assert_eq!((run["rejected"].as_u64(), run["quarantined"].as_u64()), (Some(237), Some(0)));
    let steps = run["steps"].as_array().unwrap();
    assert_eq!(steps.len(), STEPS.len());
    for (step, (op, n_in, n_out, dropped)) in steps.iter().zip(STEPS) {
        assert_eq!(step["op"], *op, "{step}");
        assert_eq!((step["in"].as_u64(), step["out"].as_u64()), (Some(*n_in), Some(*n_out)), "{step}");
        let reasons = step["dropped"].as_object().map(|m| m.len()).unwrap_or(0);
        assert_eq!(reasons, dropped.len(), "{step}");
        for (reason, n) in dropped.iter() {
            assert_eq!(step["dropped"][*reason].as_u64(), Some(*n), "{op} {reason}: {step}");
        }
    }

    // The README's dropped record: a republished copy, dropped by MinHash as a near
    // duplicate of the kept record, whose personal data was redacted.
    let mut found = false;
    for e in std::fs::read_dir(out.join("rejects")).unwrap() {
        for b in read_parquet(&e.unwrap().path()) {
            let ids = b.column_by_name("id").unwrap().as_string::<i32>();
            for row in (0..b.num_rows()).filter(|&r| ids.value(r) == DROPPED) {
                found = true;
                assert_eq!(b.column_by_name("step").unwrap().as_string::<i32>().value(row), "minhash_dedup");
                assert_eq!(b.column_by_name("reason").unwrap().as_string::<i32>().value(row), "minhash_dedup:near_duplicate");
                assert_eq!(b.column_by_name("duplicate_of").unwrap().as_string::<i32>().value(row), KEPT);
            }
        }
    }
    assert!(found, "{DROPPED} is not in the rejects");
    let mut kept_text = None;
    for e in std::fs::read_dir(out.join("data")).unwrap() {
        for b in read_parquet(&e.unwrap().path()) {
            let ids = b.column_by_name("id").unwrap().as_string::<i32>();
            let text = b.column_by_name("text").unwrap().as_string::<i32>();
            let lang = b.column_by_name("lang").unwrap().as_string::<i32>();
            assert!((0..b.num_rows()).all(|r| ["en", "de", "fr", "es"].contains(&lang.value(r))));
            assert!((0..b.num_rows()).all(|r| !text.value(r).contains("<p>") && !text.value(r).contains("cookie")));
            if let Some(row) = (0..b.num_rows()).find(|&r| ids.value(r) == KEPT) {
                kept_text = Some(text.value(row).to_owned());
                assert!(b.column_by_name("pii_email").unwrap().as_primitive::<arrow_array::types::UInt32Type>().value(row) >= 1);
            }
        }
    }
    let kept_text = kept_text.unwrap_or_else(|| panic!("{KEPT} is not in the data"));
    assert!(kept_text.contains("<EMAIL>") && kept_text.contains("<PHONE>") && !kept_text.contains('@'), "{kept_text}");

    let dropped = explain(dir.path(), DROPPED);
    assert!(dropped.contains(&format!("record {DROPPED}")), "{dropped}");
    assert!(dropped.contains("minhash_dedup:near_duplicate"), "{dropped}");
    let drop_line = dropped.lines().find(|l| l.contains("dropped")).unwrap_or_else(|| panic!("no drop in:\n{dropped}"));
    assert!(drop_line.contains("minhash_dedup"), "{dropped}");
    assert!(!dropped.lines().any(|l| l.trim() == "kept"), "{dropped}");

    let kept = explain(dir.path(), KEPT);
    assert!(kept.contains(&format!("record {KEPT}")), "{kept}");
    assert!(kept.lines().any(|l| l.trim() == "kept"), "{kept}");
    assert!(!kept.lines().any(|l| l.trim_start().starts_with("dropped")), "{kept}");
    assert!(kept.contains("web@1"), "{kept}");
}

/// The bundled crawl is what its generator writes (compared decoded: gzip bytes may differ
/// between zlib versions).
#[test]
fn bundled_crawl_matches_its_generator() {
    let out = Command::new("python3")
        .arg(repo_root().join("examples/web/generate.py"))
        .arg("--check")
        .output()
        .expect("python3 runs (the README lists Python 3 as a prerequisite)");
    assert!(
        out.status.success(),
        "examples/web/generate.py --check failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
