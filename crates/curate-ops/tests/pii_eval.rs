//! Precision and recall of the `pii_redact` detector, per kind, on a hand-labelled sample
//! (`fixtures/pii_labelled.jsonl`: realistic texts with the values a person marked as personal
//! data, and hard negatives such as versions, dates, ISBNs, hashes, order numbers, invalid
//! checksums and out-of-range addresses).
//!
//! Labelling rules, fixed before the detector was run on the sample: a value is labelled when
//! it is a literal e-mail address; a valid IPv4/IPv6 address (private and loopback included)
//! that is not a version or section number; a phone number as written, with its `+` and
//! parentheses; a Luhn-valid card number; a checksum-valid IBAN; an SSN that meets the SSA's
//! area/group/serial rules. A detected value counts as correct only when kind and exact text
//! both match a label. Run with `--nocapture` to see the table.

use std::collections::BTreeMap;

use curate_ops::pii::{Kind, PiiDetector, Span};
use serde::Deserialize;

/// Per-kind floors on this sample; the measured figures are above them (see the printed table).
const PRECISION_FLOOR: f64 = 0.9;
const RECALL_FLOOR: f64 = 0.95;

#[derive(Deserialize)]
struct Case {
    text: String,
    pii: Vec<Label>,
}

#[derive(Deserialize)]
struct Label {
    kind: Kind,
    value: String,
}

#[derive(Default)]
struct Tally {
    tp: usize,
    fp: usize,
    fn_: usize,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}

#[test]
fn precision_and_recall_per_kind() {
    let data = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pii_labelled.jsonl")).unwrap();
    let cases: Vec<Case> = data.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(cases.len() >= 200, "the sample has {} cases", cases.len());
    let detector = PiiDetector::new(&Kind::ALL);
    let mut tallies: BTreeMap<Kind, Tally> = Kind::ALL.iter().map(|k| (*k, Tally::default())).collect();
    let mut errors = Vec::new();
    let mut spans: Vec<Span> = Vec::new();
    for case in &cases {
        detector.detect(&case.text, &mut spans);
        let mut expected: Vec<(Kind, &str)> = case.pii.iter().map(|l| (l.kind, l.value.as_str())).collect();
        for s in &spans {
            let found = (s.kind, &case.text[s.start..s.end]);
            match expected.iter().position(|e| *e == found) {
                Some(i) => {
                    expected.swap_remove(i);
                    tallies.entry(s.kind).or_default().tp += 1;
                }
                None => {
                    tallies.entry(s.kind).or_default().fp += 1;
                    errors.push(format!("FP {:?} {:?} in {:?}", found.0, found.1, case.text));
                }
            }
        }
        for (kind, value) in expected {
            tallies.entry(kind).or_default().fn_ += 1;
            errors.push(format!("FN {kind:?} {value:?} in {:?}", case.text));
        }
    }
    println!("{:<12} {:>4} {:>4} {:>4} {:>9} {:>7}", "kind", "tp", "fp", "fn", "precision", "recall");
    let mut all = Tally::default();
    for (kind, t) in &tallies {
        println!(
            "{:<12} {:>4} {:>4} {:>4} {:>9.3} {:>7.3}",
            kind.name(),
            t.tp,
            t.fp,
            t.fn_,
            ratio(t.tp, t.tp + t.fp),
            ratio(t.tp, t.tp + t.fn_)
        );
        all.tp += t.tp;
        all.fp += t.fp;
        all.fn_ += t.fn_;
    }
    println!(
        "{:<12} {:>4} {:>4} {:>4} {:>9.3} {:>7.3}",
        "all",
        all.tp,
        all.fp,
        all.fn_,
        ratio(all.tp, all.tp + all.fp),
        ratio(all.tp, all.tp + all.fn_)
    );
    for e in &errors {
        println!("{e}");
    }
    for (kind, t) in &tallies {
        let (p, r) = (ratio(t.tp, t.tp + t.fp), ratio(t.tp, t.tp + t.fn_));
        assert!(p >= PRECISION_FLOOR && r >= RECALL_FLOOR, "{}: precision {p:.3}, recall {r:.3}", kind.name());
    }
}
