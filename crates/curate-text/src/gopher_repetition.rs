//! datatrove 0.10.1 `GopherRepetitionFilter` (Gopher, Rae et al. 2021, table A1).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::Hasher;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::chars::{py_strip, split_newline_runs};
use crate::decision::{active, drop, find_duplicates, ratio, Decision, Reason};
use crate::doc::Doc;
use crate::hash::{FxBuild, FxHasher};
use crate::table::{Table, TagSet};

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
            dup_n_grams: vec![
                t(5, 0.15),
                t(6, 0.14),
                t(7, 0.13),
                t(8, 0.12),
                t(9, 0.11),
                t(10, 0.10),
            ],
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
    compute(doc, params, false)
}

/// Computes signals in rule order; with `stop_early`, stops at the first failing rule
/// (as datatrove does) and leaves the rest NaN / absent.
fn compute(doc: &Doc<'_>, params: &Params, stop_early: bool) -> Signals {
    let text = doc.text();
    let text_len = doc.char_len();
    let mut s = Signals {
        dup_para_frac: f64::NAN,
        dup_para_char_frac: f64::NAN,
        dup_line_frac: f64::NAN,
        dup_line_char_frac: f64::NAN,
        top_n_gram_char_frac: Vec::with_capacity(params.top_n_grams.len()),
        dup_n_gram_char_frac: Vec::with_capacity(params.dup_n_grams.len()),
    };
    // `decide` on partial signals: NaN and missing entries never fail a rule.
    let failed = |s: &Signals| stop_early && !decide(s, params).is_keep();

    let paragraphs = split_newline_runs(py_strip(text), 2);
    let (para_dups, para_chars) = find_duplicates(paragraphs.iter().copied());
    s.dup_para_frac = ratio(para_dups, paragraphs.len());
    s.dup_para_char_frac = ratio(para_chars, text_len);
    if failed(&s) {
        return s;
    }
    let lines = split_newline_runs(text, 1);
    let (line_dups, line_chars) = find_duplicates(lines.iter().copied());
    s.dup_line_frac = ratio(line_dups, lines.len());
    s.dup_line_char_frac = ratio(line_chars, text_len);
    if failed(&s) {
        return s;
    }

    let words = doc.words();
    // prefix[i] = code points of words[..i], so any window's length is one subtraction.
    let mut prefix = Vec::with_capacity(words.len() + 1);
    prefix.push(0u64);
    let mut acc = 0u64;
    for &l in doc.word_char_lens() {
        acc += u64::from(l);
        prefix.push(acc);
    }
    let mut table = Table::new();
    let ids = intern(words, &mut table);
    let mut table = Table::new();
    for t in &params.top_n_grams {
        s.top_n_gram_char_frac
            .push(top_ngram_chars(&ids, &prefix, t.n, &mut table).map(|c| ratio_u64(c, text_len)));
        if failed(&s) {
            return s;
        }
    }
    let hashes = WindowHashes::new(words);
    let mut seen = TagSet::new();
    for t in &params.dup_n_grams {
        let chars = all_duplicate_chars(words, &ids, &hashes, &prefix, t.n, &mut seen);
        s.dup_n_gram_char_frac.push(ratio_u64(chars, text_len));
        if failed(&s) {
            return s;
        }
    }
    s
}

fn ratio_u64(a: u64, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Maps each distinct word to a small id so n-grams compare as integers. Words are
/// keyed by a 64-bit hash and confirmed byte-wise; a genuine collision falls back to a
/// string-keyed map.
fn intern(words: &[&str], table: &mut Table<u64>) -> Vec<u32> {
    table.reset(words.len());
    let mut ids = Vec::with_capacity(words.len());
    let mut next = 0u32;
    for (i, w) in words.iter().enumerate() {
        let mut h = FxHasher::default();
        h.write(w.as_bytes());
        let (slot, new) = table.upsert(h.finish(), next, u32::try_from(i).unwrap_or(u32::MAX - 1));
        if new {
            next += 1;
        } else if words[slot.2 as usize] != *w {
            return intern_exact(words);
        }
        ids.push(slot.1);
    }
    ids
}

/// [`intern`] keyed by the strings themselves.
fn intern_exact(words: &[&str]) -> Vec<u32> {
    let mut map: HashMap<&str, u32, FxBuild> =
        HashMap::with_capacity_and_hasher(words.len(), FxBuild::default());
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
fn top_ngram_chars(ids: &[u32], prefix: &[u64], n: usize, table: &mut Table<u128>) -> Option<u64> {
    if n == 0 || ids.len() < n {
        return None;
    }
    // Space-joined n-grams are equal exactly when their word sequences are, and up to
    // four 32-bit ids pack losslessly into one u128 key.
    let (count, first) = if n <= 4 {
        table.reset(ids.len());
        let (mut best_count, mut best_first) = (0u32, 0usize);
        for (i, w) in ids.windows(n).enumerate() {
            let key = w.iter().fold(0u128, |k, &id| (k << 32) | u128::from(id));
            let (slot, _) = table.upsert(key, 0, u32::try_from(i).unwrap_or(u32::MAX - 1));
            slot.1 += 1;
            let (c, f) = (slot.1, slot.2 as usize);
            if c > best_count || (c == best_count && f < best_first) {
                best_count = c;
                best_first = f;
            }
        }
        (best_count, best_first)
    } else {
        most_common(ids.windows(n), ids.len())
    };
    let len = prefix[first + n] - prefix[first] + (n as u64 - 1);
    Some(len * u64::from(count))
}

/// Count and first index of the most frequent key, the earliest-seen one among ties.
fn most_common<K: std::hash::Hash + Eq>(keys: impl Iterator<Item = K>, cap: usize) -> (u32, usize) {
    let mut counts: HashMap<K, (u32, u32), FxBuild> =
        HashMap::with_capacity_and_hasher(cap, FxBuild::default());
    let (mut best_count, mut best_first) = (0u32, 0usize);
    for (i, k) in keys.enumerate() {
        let e = counts
            .entry(k)
            .or_insert((0, u32::try_from(i).unwrap_or(u32::MAX)));
        e.0 += 1;
        let first = e.1 as usize;
        if e.0 > best_count || (e.0 == best_count && first < best_first) {
            best_count = e.0;
            best_first = first;
        }
    }
    (best_count, best_first)
}

/// Polynomial hash of the words' concatenated bytes (datatrove's `"".join`), kept only
/// at word boundaries so any window's hash costs O(1). Arithmetic is mod 2^64 with an
/// odd base, which is invertible; equal hashes are confirmed before they count.
struct WindowHashes {
    /// `prefix[i]` = hash of the bytes of `words[..i]`.
    prefix: Vec<u64>,
    /// `BASE^bytes(words[..i])`.
    pow: Vec<u64>,
    /// `BASE^-bytes(words[..i])`.
    inv_pow: Vec<u64>,
}

/// Odd multiplier of the rolling hash.
const BASE: u64 = 0x9E37_79B9_7F4A_7C15;

/// `BASE^-1 mod 2^64` by Newton's iteration (each step doubles the correct low bits).
const INV_BASE: u64 = {
    let mut x = BASE;
    let mut i = 0;
    while i < 6 {
        x = x.wrapping_mul(2u64.wrapping_sub(BASE.wrapping_mul(x)));
        i += 1;
    }
    x
};

impl WindowHashes {
    fn new(words: &[&str]) -> Self {
        let mut prefix = Vec::with_capacity(words.len() + 1);
        let mut pow = Vec::with_capacity(words.len() + 1);
        let mut inv_pow = Vec::with_capacity(words.len() + 1);
        let (mut h, mut p, mut ip) = (0u64, 1u64, 1u64);
        prefix.push(h);
        pow.push(p);
        inv_pow.push(ip);
        for w in words {
            for &b in w.as_bytes() {
                h = h.wrapping_mul(BASE).wrapping_add(u64::from(b) + 1);
                p = p.wrapping_mul(BASE);
                ip = ip.wrapping_mul(INV_BASE);
            }
            prefix.push(h);
            pow.push(p);
            inv_pow.push(ip);
        }
        WindowHashes {
            prefix,
            pow,
            inv_pow,
        }
    }

    /// Hash of the concatenation of words `i..j`.
    #[inline]
    fn hash(&self, i: usize, j: usize) -> u64 {
        let shift = self.pow[j].wrapping_mul(self.inv_pow[i]);
        self.prefix[j].wrapping_sub(self.prefix[i].wrapping_mul(shift))
    }
}

/// Whether words `a..a + n` and `b..b + n` concatenate to the same string.
fn same_concat(words: &[&str], ids: &[u32], a: usize, b: usize, n: usize) -> bool {
    ids[a..a + n] == ids[b..b + n]
        || words[a..a + n]
            .iter()
            .flat_map(|w| w.bytes())
            .eq(words[b..b + n].iter().flat_map(|w| w.bytes()))
}

/// datatrove's `find_all_duplicate`: scan `"".join`-ed n-grams left to right, skipping a
/// whole n-gram after each repeat, and sum the repeated characters.
fn all_duplicate_chars(
    words: &[&str],
    ids: &[u32],
    hashes: &WindowHashes,
    prefix: &[u64],
    n: usize,
    seen: &mut TagSet,
) -> u64 {
    let n_words = words.len();
    // n = 0 would never advance (datatrove loops forever on it).
    if n == 0 || n_words < n {
        return 0;
    }
    if u32::try_from(n_words).is_err() {
        return all_duplicate_chars_exact(words, prefix, n);
    }
    // Keyed by hash, holding the first window with it; a genuine collision (different
    // text, same hash) falls back to exact string keys.
    seen.reset(n_words);
    let (mut repeated, mut idx) = (0u64, 0usize);
    while idx + n <= n_words {
        let hash_of = |j: u32| hashes.hash(j as usize, j as usize + n);
        match seen.find_or_insert(hashes.hash(idx, idx + n), idx as u32, hash_of) {
            None => idx += 1,
            Some(first) => {
                if !same_concat(words, ids, first as usize, idx, n) {
                    return all_duplicate_chars_exact(words, prefix, n);
                }
                repeated += prefix[idx + n] - prefix[idx];
                idx += n;
            }
        }
    }
    repeated
}

/// [`all_duplicate_chars`] keyed by the concatenated n-gram strings themselves.
fn all_duplicate_chars_exact(words: &[&str], prefix: &[u64], n: usize) -> u64 {
    let mut seen: HashSet<String, FxBuild> = HashSet::with_hasher(FxBuild::default());
    let (mut repeated, mut idx) = (0u64, 0usize);
    while idx + n <= words.len() {
        if seen.insert(words[idx..idx + n].concat()) {
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
    Decision::Drop(Reason {
        filter: FILTER,
        rule: Cow::Owned(rule),
    })
}

/// Signals and decision for `doc`; an empty text is dropped as `empty`, as in datatrove.
pub fn evaluate(doc: &Doc<'_>, params: &Params) -> (Signals, Decision) {
    let s = signals(doc, params);
    let d = if doc.text().is_empty() {
        drop(FILTER, "empty")
    } else {
        decide(&s, params)
    };
    (s, d)
}

/// The decision alone, computing only the signals up to the first failing rule.
pub fn check(doc: &Doc<'_>, params: &Params) -> Decision {
    if doc.text().is_empty() {
        return drop(FILTER, "empty");
    }
    decide(&compute(doc, params, true), params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_and_exact_duplicate_scans_agree() {
        // "ab c" and "a bc" concatenate equally, as datatrove's "".join compares them.
        let words = ["ab", "c", "x", "a", "bc", "x", "ab", "c", "x", "y"];
        let mut table = Table::new();
        let ids = intern(&words, &mut table);
        let mut table = TagSet::new();
        assert_eq!(ids, intern_exact(&words));
        let hashes = WindowHashes::new(&words);
        let mut prefix = vec![0u64];
        for w in words {
            prefix.push(prefix[prefix.len() - 1] + w.len() as u64);
        }
        for n in 1..=4 {
            let fast = all_duplicate_chars(&words, &ids, &hashes, &prefix, n, &mut table);
            assert_eq!(fast, all_duplicate_chars_exact(&words, &prefix, n));
        }
        // n=2: "abc" seen at 0, "cx" at 1, "xa" at 2, "abc" repeats at 3 (+3), skip to 5:
        // "xab" new, "abc" repeats at 6 (+3), skip to 8: "xy" new.
        assert_eq!(
            all_duplicate_chars(&words, &ids, &hashes, &prefix, 2, &mut table),
            6
        );
        assert_eq!(BASE.wrapping_mul(INV_BASE), 1);
    }

    #[test]
    fn top_ngram_ties_go_to_the_first_seen() {
        // "b c" and "a b" both occur twice; "a b" was seen first.
        let ids = [0, 1, 2, 0, 1, 2, 1];
        let prefix: Vec<u64> = (0..=7).map(|i| i * 3).collect();
        // 3-char words: "a b" is 7 chars, times 2.
        let t = &mut Table::new();
        assert_eq!(top_ngram_chars(&ids, &prefix, 2, t), Some(14));
        assert_eq!(top_ngram_chars(&ids, &prefix, 8, t), None);
        // The slice-keyed path for n > 4 agrees with a direct count.
        assert_eq!(
            top_ngram_chars(&[5, 5, 5, 5, 5, 5], &[0, 1, 2, 3, 4, 5, 6], 5, t),
            Some(9 * 2)
        );
    }
}
