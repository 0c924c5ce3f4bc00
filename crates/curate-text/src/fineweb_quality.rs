//! datatrove 0.10.1 `FineWebQualityFilter` (FineWeb, Penedo et al. 2024).

use schemars::JsonSchema;
use serde::Deserialize;

use crate::chars::{char_len, is, py_strip, DT_TERMINAL};
use crate::decision::{drop, find_duplicates, ratio, Decision};
use crate::doc::Doc;

const FILTER: &str = "fineweb_quality";

/// Thresholds of the FineWeb quality filter.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Drop when fewer than this fraction of non-blank lines end in a stop char.
    pub line_punct_thr: f64,
    /// Do not apply `line_punct_thr` when no line at all ends in a stop char.
    pub line_punct_exclude_zero: bool,
    /// Line endings counted as punctuated; `null` = datatrove's `TERMINAL_PUNCTUATION`.
    pub stop_chars: Option<Vec<String>>,
    /// Drop when more than this fraction of non-blank lines are short.
    pub short_line_thr: f64,
    /// A line of at most this many code points is short.
    pub short_line_length: usize,
    /// Drop when repeated non-blank lines hold more than this fraction of the
    /// non-newline characters.
    pub char_duplicates_ratio: f64,
    /// Drop when newlines per word exceed this.
    pub new_line_ratio: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            line_punct_thr: 0.12,
            line_punct_exclude_zero: false,
            stop_chars: None,
            short_line_thr: 0.67,
            short_line_length: 30,
            char_duplicates_ratio: 0.01,
            new_line_ratio: 0.3,
        }
    }
}

/// Everything the FineWeb quality rules decide on.
#[derive(Debug, Clone, PartialEq)]
pub struct Signals {
    /// Non-blank lines of `text.split("\n")`.
    pub n_lines: usize,
    /// Fraction of non-blank lines ending in a stop char.
    pub line_punct_ratio: f64,
    /// Fraction of non-blank lines of at most `short_line_length` code points.
    pub short_line_ratio: f64,
    /// Characters of repeated non-blank lines / non-newline characters of the text.
    pub char_dup_ratio: f64,
    /// Newlines / words.
    pub list_ratio: f64,
}

/// Computes every signal of `doc` (no short-circuit).
pub fn signals(doc: &Doc<'_>, params: &Params) -> Signals {
    let text = doc.text();
    let lines: Vec<&str> = text
        .split('\n')
        .filter(|l| !py_strip(l).is_empty())
        .collect();
    let punct = lines
        .iter()
        .filter(|l| match &params.stop_chars {
            None => l.chars().next_back().is_some_and(|c| is(c, DT_TERMINAL)),
            Some(stops) => stops.iter().any(|s| l.ends_with(s.as_str())),
        })
        .count();
    let short = lines
        .iter()
        .filter(|l| char_len(l) <= params.short_line_length)
        .count();
    let (_, dup_chars) = find_duplicates(lines.iter().copied());
    let newlines = text.bytes().filter(|&b| b == b'\n').count();
    Signals {
        n_lines: lines.len(),
        line_punct_ratio: ratio(punct, lines.len()),
        short_line_ratio: ratio(short, lines.len()),
        char_dup_ratio: ratio(dup_chars, doc.char_len() - newlines),
        list_ratio: ratio(newlines, doc.words().len()),
    }
}

/// datatrove's decision on precomputed signals, in its rule order.
pub fn decide(s: &Signals, p: &Params) -> Decision {
    if s.n_lines == 0 {
        return drop(FILTER, "empty");
    }
    let r = s.line_punct_ratio;
    if r < p.line_punct_thr && !(r == 0.0 && p.line_punct_exclude_zero) {
        return drop(FILTER, "line_punct_ratio");
    }
    if s.short_line_ratio > p.short_line_thr {
        return drop(FILTER, "short_line_ratio");
    }
    if s.char_dup_ratio > p.char_duplicates_ratio {
        return drop(FILTER, "char_dup_ratio");
    }
    if s.list_ratio > p.new_line_ratio {
        return drop(FILTER, "list_ratio");
    }
    Decision::Keep
}

/// Signals and decision for `doc`.
pub fn evaluate(doc: &Doc<'_>, params: &Params) -> (Signals, Decision) {
    let s = signals(doc, params);
    let d = decide(&s, params);
    (s, d)
}
