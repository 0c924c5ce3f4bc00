//! datatrove 0.10.1 `GopherQualityFilter` (Gopher, Rae et al. 2021, table A1).

use schemars::JsonSchema;
use serde::Deserialize;

use crate::chars::{flags, py_lstrip, py_rstrip, DT_PUNCT, PY_ALPHA};
use crate::decision::{active, drop, ratio, Decision};
use crate::doc::Doc;
use crate::tables::ASCII;

const FILTER: &str = "gopher_quality";

/// datatrove's default `STOP_WORDS` of the Gopher quality filter.
const DEFAULT_STOP_WORDS: [&str; 8] = ["the", "be", "to", "of", "and", "that", "have", "with"];

/// Thresholds of the Gopher quality filter; `null` or `0` disables a rule, as in datatrove.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Drop documents with fewer non-symbol words than this.
    pub min_doc_words: Option<usize>,
    /// Drop documents with more non-symbol words than this.
    pub max_doc_words: Option<usize>,
    /// Drop documents whose mean non-symbol word length (code points) is below this.
    pub min_avg_word_length: Option<f64>,
    /// Drop documents whose mean non-symbol word length (code points) is above this.
    pub max_avg_word_length: Option<f64>,
    /// Drop documents with more `#`, or more `...`/`…`, per word than this.
    pub max_symbol_word_ratio: Option<f64>,
    /// Drop documents where more than this fraction of lines start with `•` or `-`.
    pub max_bullet_lines_ratio: Option<f64>,
    /// Drop documents where more than this fraction of lines end with `...` or `…`.
    pub max_ellipsis_lines_ratio: Option<f64>,
    /// Drop documents where fewer than this fraction of words contain a letter
    /// (datatrove's misnamed `max_non_alpha_words_ratio`).
    pub max_non_alpha_words_ratio: Option<f64>,
    /// Drop documents containing fewer distinct stop words than this.
    pub min_stop_words: Option<usize>,
    /// Stop words, matched case-sensitively against whole tokens; `null` = datatrove's list.
    pub stop_words: Option<Vec<String>>,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            min_doc_words: Some(50),
            max_doc_words: Some(100_000),
            min_avg_word_length: Some(3.0),
            max_avg_word_length: Some(10.0),
            max_symbol_word_ratio: Some(0.1),
            max_bullet_lines_ratio: Some(0.9),
            max_ellipsis_lines_ratio: Some(0.3),
            max_non_alpha_words_ratio: Some(0.8),
            min_stop_words: Some(2),
            stop_words: None,
        }
    }
}

/// Everything the Gopher quality rules decide on.
#[derive(Debug, Clone, PartialEq)]
pub struct Signals {
    /// Number of tokens (`len(split_into_words(text))`).
    pub n_words: usize,
    /// Tokens with at least one char outside datatrove's punctuation set.
    pub n_non_symbol_words: usize,
    /// Mean code-point length of non-symbol words; NaN when there are none (numpy's mean).
    pub avg_word_length: f64,
    /// `text.count("#") / n_words`.
    pub hash_ratio: f64,
    /// `(text.count("...") + text.count("…")) / n_words`.
    pub ellipsis_ratio: f64,
    /// Fraction of lines whose left-stripped text starts with `•` or `-`.
    pub bullet_lines_ratio: f64,
    /// Fraction of lines whose right-stripped text ends with `...` or `…`.
    pub end_ellipsis_lines_ratio: f64,
    /// Fraction of tokens with at least one alphabetic char (`str.isalpha`).
    pub alpha_words_ratio: f64,
    /// Number of distinct stop words among the tokens.
    pub stop_words: usize,
}

/// Computes every signal of `doc` (no short-circuit).
pub fn signals(doc: &Doc<'_>, params: &Params) -> Signals {
    let text = doc.text();
    let words = doc.words();
    let lens = doc.word_char_lens();
    let n_words = words.len();
    let (mut n_non_symbol, mut non_symbol_chars, mut n_alpha) = (0usize, 0u64, 0usize);
    for (w, &len) in words.iter().zip(lens) {
        // OR of the inverted punctuation flag and of the alpha flag over the word.
        let mut any = 0u16;
        if w.is_ascii() {
            for b in w.bytes() {
                any |= ASCII[usize::from(b)] ^ DT_PUNCT;
            }
        } else {
            for c in w.chars() {
                any |= flags(c) ^ DT_PUNCT;
            }
        }
        let (non_symbol, alpha) = (any & DT_PUNCT != 0, any & PY_ALPHA != 0);
        if non_symbol {
            n_non_symbol += 1;
            non_symbol_chars += u64::from(len);
        }
        n_alpha += usize::from(alpha);
    }
    let avg_word_length = if n_non_symbol == 0 {
        f64::NAN
    } else {
        non_symbol_chars as f64 / n_non_symbol as f64
    };
    let (hashes, ellipses) = count_hashes_and_ellipses(text.as_bytes());
    let lines = doc.lines();
    let bullets = lines
        .iter()
        .filter(|l| {
            let l = py_lstrip(l);
            l.starts_with('•') || l.starts_with('-')
        })
        .count();
    let end_ellipsis = lines
        .iter()
        .filter(|l| {
            let l = py_rstrip(l);
            l.ends_with("...") || l.ends_with('…')
        })
        .count();
    let stop_words = match &params.stop_words {
        None => count_stop_words(words, DEFAULT_STOP_WORDS.iter().copied()),
        Some(list) => count_stop_words(words, list.iter().map(String::as_str)),
    };
    Signals {
        n_words,
        n_non_symbol_words: n_non_symbol,
        avg_word_length,
        hash_ratio: ratio(hashes, n_words),
        ellipsis_ratio: ratio(ellipses, n_words),
        bullet_lines_ratio: ratio(bullets, lines.len()),
        end_ellipsis_lines_ratio: ratio(end_ellipsis, lines.len()),
        alpha_words_ratio: ratio(n_alpha, n_words),
        stop_words,
    }
}

/// `text.count("#")` and `text.count("...") + text.count("…")` in one pass: a run of
/// r dots holds r / 3 non-overlapping "...".
fn count_hashes_and_ellipses(b: &[u8]) -> (usize, usize) {
    let (mut hashes, mut ellipses, mut dots) = (0, 0, 0);
    for (i, &c) in b.iter().enumerate() {
        if c == b'.' {
            dots += 1;
            continue;
        }
        ellipses += dots / 3;
        dots = 0;
        match c {
            b'#' => hashes += 1,
            // '…' is E2 80 A6 in UTF-8
            0xE2 if b.get(i + 1) == Some(&0x80) && b.get(i + 2) == Some(&0xA6) => ellipses += 1,
            _ => {}
        }
    }
    (hashes, ellipses + dots / 3)
}

/// A word of at most 7 bytes as one integer (bytes, zero padding, length in the top
/// byte, so "a" and "a\0" differ), letting short words compare in one instruction.
#[inline]
fn pack8(w: &str) -> Option<u64> {
    let b = w.as_bytes();
    if b.len() > 7 {
        return None;
    }
    // A byte loop rather than a variable-length copy, which would be a memcpy call.
    let packed = b.iter().rev().fold(0u64, |k, &c| (k << 8) | u64::from(c));
    Some(packed | (b.len() as u64) << 56)
}

/// `len(set(stop_words) & set(words))`.
fn count_stop_words<'s>(words: &[&str], stop: impl Iterator<Item = &'s str>) -> usize {
    let mut stop: Vec<&str> = stop.collect();
    stop.sort_unstable();
    stop.dedup();
    let mut found = vec![false; stop.len()];
    let packed: Option<Vec<u64>> = stop.iter().map(|s| pack8(s)).collect();
    match packed {
        // Every stop word is short: compare packed integers.
        Some(packed) => {
            for w in words {
                if let Some(k) = pack8(w) {
                    if let Some(i) = packed.iter().position(|&p| p == k) {
                        found[i] = true;
                    }
                }
            }
        }
        None => {
            let max_len = stop.iter().map(|s| s.len()).max().unwrap_or(0);
            for w in words.iter().filter(|w| w.len() <= max_len) {
                if let Ok(i) = stop.binary_search(w) {
                    found[i] = true;
                }
            }
        }
    }
    found.iter().filter(|&&f| f).count()
}

/// datatrove's decision on precomputed signals, in its rule order.
pub fn decide(s: &Signals, p: &Params) -> Decision {
    let r = |rule| drop(FILTER, rule);
    if active(p.min_doc_words).is_some_and(|m| s.n_non_symbol_words < m) {
        return r("gopher_short_doc");
    }
    if active(p.max_doc_words).is_some_and(|m| s.n_non_symbol_words > m) {
        return r("gopher_long_doc");
    }
    // NaN compares false, as numpy's mean of an empty list does in datatrove.
    if active(p.min_avg_word_length).is_some_and(|m| s.avg_word_length < m) {
        return r("gopher_below_avg_threshold");
    }
    if active(p.max_avg_word_length).is_some_and(|m| s.avg_word_length > m) {
        return r("gopher_above_avg_threshold");
    }
    if let Some(m) = active(p.max_symbol_word_ratio) {
        if s.hash_ratio > m {
            return r("gopher_too_many_hashes");
        }
        if s.ellipsis_ratio > m {
            return r("gopher_too_many_ellipsis");
        }
    }
    if active(p.max_bullet_lines_ratio).is_some_and(|m| s.bullet_lines_ratio > m) {
        return r("gopher_too_many_bullets");
    }
    if active(p.max_ellipsis_lines_ratio).is_some_and(|m| s.end_ellipsis_lines_ratio > m) {
        return r("gopher_too_many_end_ellipsis");
    }
    if active(p.max_non_alpha_words_ratio).is_some_and(|m| s.alpha_words_ratio < m) {
        return r("gopher_below_alpha_threshold");
    }
    if active(p.min_stop_words).is_some_and(|m| s.stop_words < m) {
        return r("gopher_enough_stop_words");
    }
    Decision::Keep
}

/// Signals and decision for `doc`.
pub fn evaluate(doc: &Doc<'_>, params: &Params) -> (Signals, Decision) {
    let s = signals(doc, params);
    let d = decide(&s, params);
    (s, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_and_ellipses_count_like_python() {
        assert_eq!(
            count_hashes_and_ellipses("a.......b # … ##...".as_bytes()),
            (3, 4)
        );
        assert_eq!(count_hashes_and_ellipses(b"..."), (0, 1));
        assert_eq!(count_hashes_and_ellipses(b""), (0, 0));
    }

    #[test]
    fn stop_words_match_whole_tokens() {
        let words = ["the", "them", "of", "The", "and", "and"];
        assert_eq!(
            count_stop_words(&words, DEFAULT_STOP_WORDS.iter().copied()),
            3
        );
        let long = ["international", "x"];
        assert_eq!(
            count_stop_words(&long, ["international", "y"].into_iter()),
            1
        );
        assert_eq!(count_stop_words(&["a\0"], ["a"].into_iter()), 0);
    }
}
