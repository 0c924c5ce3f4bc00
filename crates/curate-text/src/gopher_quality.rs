//! datatrove 0.10.1 `GopherQualityFilter` (Gopher, Rae et al. 2021, table A1).

use schemars::JsonSchema;
use serde::Deserialize;

use crate::chars::{flags, py_lstrip, py_rstrip, DT_PUNCT, PY_ALPHA};
use crate::decision::{active, drop, ratio, Decision};
use crate::doc::{per_distinct, Doc};
use crate::hash::load_le;
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
    let mut stop = match &params.stop_words {
        None => StopWords::new(DEFAULT_STOP_WORDS.iter().copied()),
        Some(list) => StopWords::new(list.iter().map(String::as_str)),
    };
    // Every per-word test depends on the word alone: made once per distinct word, then
    // summed per occurrence.
    let classes = per_distinct(words, doc.word_ids(), |w| {
        stop.see(w);
        WordClass::of(w)
    });
    let (mut n_non_symbol, mut non_symbol_chars, mut n_alpha) = (0usize, 0u64, 0usize);
    for (c, &len) in classes.zip(lens) {
        n_non_symbol += usize::from(c.non_symbol);
        non_symbol_chars += u64::from(len) * u64::from(c.non_symbol);
        n_alpha += usize::from(c.alpha);
    }
    let avg_word_length = if n_non_symbol == 0 {
        f64::NAN
    } else {
        non_symbol_chars as f64 / n_non_symbol as f64
    };
    let (hashes, ellipses) = count_hashes_and_ellipses(text.as_bytes());
    let lines = doc.lines();
    let (mut bullets, mut end_ellipsis) = (0, 0);
    for l in lines {
        let start = py_lstrip(l);
        bullets += usize::from(start.starts_with('•') || start.starts_with('-'));
        let end = py_rstrip(l);
        end_ellipsis += usize::from(end.ends_with("...") || end.ends_with('…'));
    }
    Signals {
        n_words,
        n_non_symbol_words: n_non_symbol,
        avg_word_length,
        hash_ratio: ratio(hashes, n_words),
        ellipsis_ratio: ratio(ellipses, n_words),
        bullet_lines_ratio: ratio(bullets, lines.len()),
        end_ellipsis_lines_ratio: ratio(end_ellipsis, lines.len()),
        alpha_words_ratio: ratio(n_alpha, n_words),
        stop_words: stop.found(),
    }
}

/// What gopher's per-word rules see in one word.
#[derive(Clone, Copy)]
struct WordClass {
    /// Some char is not datatrove punctuation (the word counts for the mean length).
    non_symbol: bool,
    /// Some char is alphabetic.
    alpha: bool,
}

impl WordClass {
    fn of(w: &str) -> Self {
        // OR of the inverted punctuation flag and of the alpha flag over the word.
        let any = if w.is_ascii() {
            w.bytes().fold(0u16, |any, b| any | (ASCII[usize::from(b)] ^ DT_PUNCT))
        } else {
            w.chars().fold(0u16, |any, c| any | (flags(c) ^ DT_PUNCT))
        };
        WordClass {
            non_symbol: any & DT_PUNCT != 0,
            alpha: any & PY_ALPHA != 0,
        }
    }
}

/// `text.count("#")` and `text.count("...") + text.count("…")`; `str.count` counts
/// non-overlapping matches left to right, as `memmem`'s iterator reports them.
fn count_hashes_and_ellipses(b: &[u8]) -> (usize, usize) {
    let hashes = b.iter().filter(|&&c| c == b'#').count();
    let dots = memchr::memmem::find_iter(b, b"...").count();
    let ellipses = memchr::memmem::find_iter(b, "…".as_bytes()).count();
    (hashes, dots + ellipses)
}

/// A word of at most 7 bytes as one non-zero integer (bytes, zero padding, length in
/// the top byte, so "a" and "a\0" differ), letting short words compare in one
/// instruction.
#[inline]
fn pack8(w: &str) -> Option<u64> {
    let b = w.as_bytes();
    // The top bit marks the key as present: even the empty word's key is not 0.
    (b.len() <= 7).then(|| load_le(b) | (b.len() as u64) << 56 | 1 << 63)
}

/// A [`StopWords::Packed`] table of distinct `keys` in which each has a slot of its own
/// under [`StopWords::slot`] (0 marking a free one). Small tables for small lists; `None`
/// when no size and multiplier tried gives one (not the case for datatrove's list).
fn one_slot_each<'s>(keys: &[u64]) -> Option<StopWords<'s>> {
    let min_cap = (2 * keys.len()).next_power_of_two().max(16);
    for cap in (0..4).map(|k| min_cap << k) {
        let shift = 64 - cap.trailing_zeros();
        for attempt in 0..16u64 {
            let mul = 0x9E37_79B9_7F4A_7C15 ^ attempt.wrapping_mul(0x5851_F42D_4C95_7F2E) | 1;
            let mut slots = vec![(0u64, false); cap];
            let mut ok = true;
            for &k in keys {
                let slot = &mut slots[StopWords::slot(k, mul, shift)];
                ok &= slot.0 == 0;
                slot.0 = k;
            }
            if ok {
                return Some(StopWords::Packed { slots, mul, shift });
            }
        }
    }
    None
}

/// `len(set(stop_words) & set(words))`, fed one word at a time.
enum StopWords<'s> {
    /// Every stop word is at most 7 bytes: their [`pack8`] keys in a table where each has
    /// a slot of its own ([`one_slot_each`]), so a lookup is one probe with no branch.
    /// Each slot has a found flag.
    Packed {
        slots: Vec<(u64, bool)>,
        mul: u64,
        shift: u32,
    },
    /// Otherwise: sorted, deduplicated, with a found flag each.
    Sorted {
        stop: Vec<&'s str>,
        found: Vec<bool>,
        max_len: usize,
    },
}

impl<'s> StopWords<'s> {
    fn new(stop: impl Iterator<Item = &'s str>) -> Self {
        let mut stop: Vec<&str> = stop.collect();
        stop.sort_unstable();
        stop.dedup();
        let packed: Option<Vec<u64>> = stop.iter().map(|s| pack8(s)).collect();
        if let Some(table) = packed.as_deref().and_then(one_slot_each) {
            return table;
        }
        let max_len = stop.iter().map(|s| s.len()).max().unwrap_or(0);
        let found = vec![false; stop.len()];
        StopWords::Sorted {
            stop,
            found,
            max_len,
        }
    }

    #[inline]
    fn slot(key: u64, mul: u64, shift: u32) -> usize {
        (key.wrapping_mul(mul) >> shift) as usize
    }

    /// Marks `w` found if it is a stop word.
    #[inline]
    fn see(&mut self, w: &str) {
        match self {
            StopWords::Packed { slots, mul, shift } => {
                let Some(k) = pack8(w) else { return };
                let slot = &mut slots[Self::slot(k, *mul, *shift)];
                slot.1 |= slot.0 == k;
            }
            StopWords::Sorted {
                stop,
                found,
                max_len,
            } => {
                if w.len() <= *max_len {
                    if let Ok(i) = stop.binary_search(&w) {
                        found[i] = true;
                    }
                }
            }
        }
    }

    /// How many distinct stop words were seen.
    fn found(&self) -> usize {
        match self {
            StopWords::Packed { slots, .. } => slots.iter().filter(|s| s.1).count(),
            StopWords::Sorted { found, .. } => found.iter().filter(|&&f| f).count(),
        }
    }
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

    /// `len(set(stop_words) & set(words))` through [`StopWords`].
    fn count_stop_words(words: &[&str], stop: &[&str]) -> usize {
        let mut s = StopWords::new(stop.iter().copied());
        words.iter().for_each(|w| s.see(w));
        s.found()
    }

    #[test]
    fn word_classes_agree_with_the_byte_loop() {
        let text = "a ... #x 12 -- é Ünï ### b@c \u{7f} \u{1} (x) long-word-of-many-bytes!! end";
        let doc = Doc::new(text);
        let s = signals(&doc, &Params::default());
        let words = doc.words();
        let non_symbol: Vec<&&str> = words
            .iter()
            .filter(|w| w.chars().any(|c| flags(c) & DT_PUNCT == 0))
            .collect();
        let alpha = words
            .iter()
            .filter(|w| w.chars().any(|c| flags(c) & PY_ALPHA != 0));
        assert_eq!(s.n_non_symbol_words, non_symbol.len());
        assert_eq!(s.alpha_words_ratio, ratio(alpha.count(), words.len()));
    }

    #[test]
    fn stop_words_match_whole_tokens() {
        let words = ["the", "them", "of", "The", "and", "and"];
        assert_eq!(count_stop_words(&words, &DEFAULT_STOP_WORDS), 3);
        let long = ["international", "x"];
        assert_eq!(count_stop_words(&long, &["international", "y"]), 1);
        assert_eq!(count_stop_words(&["a\0"], &["a"]), 0);
        assert_eq!(count_stop_words(&["a", "", "b"], &["a", "", "a"]), 2);
        let many: Vec<String> = (0..100).map(|i| format!("w{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(count_stop_words(&["w7", "w99", "w7", "w100"], &many), 2);
    }
}
