//! datatrove 0.10.1 `GopherRepetitionFilter` (Gopher, Rae et al. 2021, table A1).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use schemars::JsonSchema;
use serde::Deserialize;

use crate::chars::{py_strip, split_newline_runs};
use crate::decision::{active, drop, find_duplicates, ratio, Decision, Reason};
use crate::doc::Doc;
use crate::hash::FxBuild;

const FILTER: &str = "gopher_repetition";

/// An n-gram size and the largest character fraction it may cover.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NGramThreshold {
    /// The n-gram size in words.
    pub n: usize,
    /// Drop when the measured character fraction exceeds this.
    pub max_frac: f64,
}

/// Thresholds of the Gopher repetition filter; `null` or `0` disables a rule.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Max fraction of lines (`re.split("\n+")`) that repeat an earlier line.
    pub dup_line_frac: Option<f64>,
    /// Max fraction of paragraphs (`re.split("\n{2,}")`) that repeat an earlier one.
    pub dup_para_frac: Option<f64>,
    /// Max fraction of the text's characters in repeated lines.
    pub dup_line_char_frac: Option<f64>,
    /// Max fraction of the text's characters in repeated paragraphs.
    pub dup_para_char_frac: Option<f64>,
    /// For each n: max `len(top n-gram) * count / len(text)` (space-joined n-grams).
    pub top_n_grams: Vec<NGramThreshold>,
    /// For each n: max fraction of the text's characters in repeated n-grams.
    pub dup_n_grams: Vec<NGramThreshold>,
}

impl Default for Params {
    fn default() -> Self {
        let t = |n, max_frac| NGramThreshold { n, max_frac };
        Params {
            dup_line_frac: Some(0.3),
            dup_para_frac: Some(0.3),
            dup_line_char_frac: Some(0.2),
            dup_para_char_frac: Some(0.2),
            top_n_grams: vec![t(2, 0.2), t(3, 0.18), t(4, 0.16)],
            dup_n_grams: vec![t(5, 0.15), t(6, 0.14), t(7, 0.13), t(8, 0.12), t(9, 0.11), t(10, 0.10)],
        }
    }
}

/// Everything the Gopher repetition rules decide on.
#[derive(Debug, Clone, PartialEq)]
pub struct Signals {
    /// Repeated paragraphs / paragraphs.
    pub dup_para_frac: f64,
    /// Characters of repeated paragraphs / `len(text)`.
    pub dup_para_char_frac: f64,
    /// Repeated lines / lines.
    pub dup_line_frac: f64,
    /// Characters of repeated lines / `len(text)`.
    pub dup_line_char_frac: f64,
    /// Per entry of `Params::top_n_grams`: characters of the most frequent n-gram times its
    /// count / `len(text)`; `None` when the text has fewer than n words (rule skipped).
    pub top_n_gram_char_frac: Vec<Option<f64>>,
    /// Per entry of `Params::dup_n_grams`: characters in repeated n-grams / `len(text)`.
    pub dup_n_gram_char_frac: Vec<f64>,
}

/// Computes every signal of `doc` (no short-circuit).
pub fn signals(doc: &Doc<'_>, params: &Params) -> Signals {
    let text = doc.text();
    let text_len = doc.char_len();
    let paragraphs = split_newline_runs(py_strip(text), 2);
    let (para_dups, para_chars) = find_duplicates(paragraphs.iter().copied());
    let lines = split_newline_runs(text, 1);
    let (line_dups, line_chars) = find_duplicates(lines.iter().copied());

    let words = doc.words();
    let lens = doc.word_char_lens();
    // prefix[i] = code points of words[..i], so any window's length is one subtraction.
    let mut prefix = Vec::with_capacity(words.len() + 1);
    prefix.push(0u64);
    let mut acc = 0u64;
    for &l in lens {
        acc += u64::from(l);
        prefix.push(acc);
    }
    let ids = intern(words);
    let top = params
        .top_n_grams
        .iter()
        .map(|t| top_ngram_chars(&ids, &prefix, t.n).map(|c| ratio_u64(c, text_len)))
        .collect();
    let concat: String = words.concat();
    let mut offsets = Vec::with_capacity(words.len() + 1);
    offsets.push(0usize);
    let mut off = 0;
    for w in words {
        off += w.len();
        offsets.push(off);
    }
    let dup = params
        .dup_n_grams
        .iter()
        .map(|t| ratio_u64(all_duplicate_chars(&concat, &offsets, &prefix, t.n), text_len))
        .collect();
    Signals {
        dup_para_frac: ratio(para_dups, paragraphs.len()),
        dup_para_char_frac: ratio(para_chars, text_len),
        dup_line_frac: ratio(line_dups, lines.len()),
        dup_line_char_frac: ratio(line_chars, text_len),
        top_n_gram_char_frac: top,
        dup_n_gram_char_frac: dup,
    }
}

fn ratio_u64(a: u64, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Maps each distinct word to a small id so n-grams compare as integer slices.
fn intern(words: &[&str]) -> Vec<u32> {
    let mut map: HashMap<&str, u32, FxBuild> = HashMap::with_capacity_and_hasher(words.len() / 2 + 1, FxBuild::default());
    words
        .iter()
        .map(|w| {
            let next = u32::try_from(map.len()).unwrap_or(u32::MAX);
            *map.entry(w).or_insert(next)
        })
        .collect()
}

/// datatrove's `find_top_duplicate` over `" ".join`-ed n-grams: length times count of the
/// most common n-gram, ties going to the one seen first (`Counter.most_common(1)`).
/// `None` when there is no n-gram.
fn top_ngram_chars(ids: &[u32], prefix: &[u64], n: usize) -> Option<u64> {
    if n == 0 || ids.len() < n {
        return None;
    }
    // Space-joined n-grams are equal exactly when their word sequences are.
    let mut counts: HashMap<&[u32], (u32, u32), FxBuild> =
        HashMap::with_capacity_and_hasher(ids.len(), FxBuild::default());
    let (mut best_count, mut best_first) = (0u32, 0usize);
    for (i, w) in ids.windows(n).enumerate() {
        let e = counts.entry(w).or_insert((0, u32::try_from(i).unwrap_or(u32::MAX)));
        e.0 += 1;
        let first = e.1 as usize;
        if e.0 > best_count || (e.0 == best_count && first < best_first) {
            best_count = e.0;
            best_first = first;
        }
    }
    let len = prefix[best_first + n] - prefix[best_first] + (n as u64 - 1);
    Some(len * u64::from(best_count))
}

/// datatrove's `find_all_duplicate`: scan `"".join`-ed n-grams left to right, skipping a
/// whole n-gram after each repeat, and sum the repeated characters.
fn all_duplicate_chars(concat: &str, offsets: &[usize], prefix: &[u64], n: usize) -> u64 {
    let n_words = offsets.len() - 1;
    if n == 0 || n_words < n {
        return 0;
    }
    let mut seen: HashSet<&str, FxBuild> = HashSet::with_capacity_and_hasher(n_words, FxBuild::default());
    let (mut repeated, mut idx) = (0u64, 0usize);
    while idx + n <= n_words {
        let gram = &concat[offsets[idx]..offsets[idx + n]];
        if seen.insert(gram) {
            idx += 1;
        } else {
            repeated += prefix[idx + n] - prefix[idx];
            idx += n;
        }
    }
    repeated
}

/// datatrove's decision on precomputed signals, in its rule order.
pub fn decide(s: &Signals, p: &Params) -> Decision {
    let r = |rule| drop(FILTER, rule);
    if active(p.dup_para_frac).is_some_and(|m| s.dup_para_frac > m) {
        return r("dup_para_frac");
    }
    if active(p.dup_para_char_frac).is_some_and(|m| s.dup_para_char_frac > m) {
        return r("dup_para_char_frac");
    }
    if active(p.dup_line_frac).is_some_and(|m| s.dup_line_frac > m) {
        return r("dup_line_frac");
    }
    if active(p.dup_line_char_frac).is_some_and(|m| s.dup_line_char_frac > m) {
        return r("dup_line_char_frac");
    }
    for (t, v) in p.top_n_grams.iter().zip(&s.top_n_gram_char_frac) {
        if v.is_some_and(|v| v > t.max_frac) {
            return ngram_drop(format!("top_{}_gram", t.n));
        }
    }
    for (t, &v) in p.dup_n_grams.iter().zip(&s.dup_n_gram_char_frac) {
        if v > t.max_frac {
            return ngram_drop(format!("duplicated_{}_n_grams", t.n));
        }
    }
    Decision::Keep
}

fn ngram_drop(rule: String) -> Decision {
    Decision::Drop(Reason { filter: FILTER, rule: Cow::Owned(rule) })
}

/// Signals and decision for `doc`; an empty text is dropped as `empty`, as in datatrove.
pub fn evaluate(doc: &Doc<'_>, params: &Params) -> (Signals, Decision) {
    let s = signals(doc, params);
    let d = if doc.text().is_empty() { drop(FILTER, "empty") } else { decide(&s, params) };
    (s, d)
}
