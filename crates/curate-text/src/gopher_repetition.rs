//! datatrove 0.10.1 `GopherRepetitionFilter` (Gopher, Rae et al. 2021, table A1).

use std::borrow::Cow;
use std::collections::HashSet;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::chars::{py_strip, split_newline_runs};
use crate::decision::{active, drop, find_duplicates, ratio, Decision, Reason};
use crate::doc::{per_distinct, Doc};
use crate::hash::{load_le, FxBuild};
use crate::table::{CountTable, Table, TagSet};

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
    /// count / `len(text)`; `None` when the text has fewer than n words (rule skipped) or,
    /// when only deciding, when the counts of shorter n-grams prove the rule passes.
    pub top_n_gram_char_frac: Vec<Option<f64>>,
    /// Per entry of `Params::dup_n_grams`: characters in repeated n-grams / `len(text)`.
    pub dup_n_gram_char_frac: Vec<f64>,
}

/// Computes every signal of `doc` (no short-circuit).
pub fn signals(doc: &Doc<'_>, params: &Params) -> Signals {
    compute(doc, params, false)
}

/// Computes signals in rule order; with `stop_early`, stops at the first failing rule
/// (as datatrove does) and leaves the rest NaN / absent, and skips top n-gram rules
/// that a bound shows cannot fail.
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
    let ids = doc.word_ids();
    let mut grams = GramLevels::new(ids, &prefix);
    for t in &params.top_n_grams {
        // Deciding only: a rule that the counts of shorter n-grams show cannot fire is
        // left uncomputed (`None`), which `decide` passes.
        let passes = |bound: u64| ratio_u64(bound, text_len) <= t.max_frac;
        let top = if stop_early && grams.proves(t.n, passes) {
            None
        } else {
            grams.most_common(t.n).map(|(count, first)| {
                // `" ".join` of the n-gram: its words' code points plus n - 1 spaces.
                let len = prefix[first + t.n] - prefix[first] + (t.n as u64 - 1);
                ratio_u64(len * u64::from(count), text_len)
            })
        };
        s.top_n_gram_char_frac.push(top);
        if failed(&s) {
            return s;
        }
    }
    let hashes = WindowHashes::new(words, ids);
    let unique = UniqueFrom::new(words);
    let mut seen = TagSet::new();
    // Windows only get longer with n, so a window from a start that is unique at the
    // smallest n is unique at every n: the starts left open there are the only ones any
    // scan visits, and their count bounds its insertions and sizes the set.
    let min_n = params
        .dup_n_grams
        .iter()
        .map(|t| t.n)
        .min()
        .unwrap_or(0)
        .max(1);
    let open: Vec<u32> = match u32::try_from(words.len()) {
        Ok(_) => (0..(words.len() + 1).saturating_sub(min_n))
            .filter(|&i| !unique.unique(i, i + min_n))
            .map(|i| i as u32)
            .collect(),
        // The scans fall back to exact strings then and visit every start themselves.
        Err(_) => Vec::new(),
    };
    for t in &params.dup_n_grams {
        let chars = all_duplicate_chars(
            words, ids, &hashes, &unique, &prefix, t.n, &open, &mut seen,
        );
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

/// Marks a position whose n-gram is known to occur only once.
const SINGLE: u32 = u32::MAX;

/// Exact ids of the word n-grams, built level by level (n-gram = (n-1)-gram + word), for
/// datatrove's `find_top_duplicate`. An n-gram can repeat only where both (n-1)-grams it
/// contains repeat, so only those positions are looked up; the others are marked
/// [`SINGLE`]. Ids are given in order of first occurrence, so among equally frequent
/// n-grams the smallest id is the first seen, as `Counter.most_common(1)` picks it.
struct GramLevels<'a> {
    words: &'a [u32],
    /// `prefix[i]`: code points of the first i words.
    chars: &'a [u64],
    /// `weights[k - 1]`, once level k has been built: an upper bound on
    /// `count * (len(" ".join(g)) + 1)` over its k-grams g (see [`GramLevels::proves`]).
    weights: Vec<u64>,
    /// Code points of the longest word.
    longest_word: u64,
    /// The level (n) that `ids`, `counts` and `firsts` describe; 0 before the first.
    n: usize,
    /// Per position, the id of its n-gram or [`SINGLE`].
    ids: Vec<u32>,
    /// Per id, its number of occurrences.
    counts: Vec<u32>,
    /// Per id, its first position.
    firsts: Vec<u32>,
    next_ids: Vec<u32>,
    table: Table<u64>,
}

impl<'a> GramLevels<'a> {
    /// Levels over the word ids of [`Doc::word_ids`] and their code-point prefix sums.
    fn new(words: &'a [u32], chars: &'a [u64]) -> Self {
        GramLevels {
            words,
            chars,
            weights: Vec::new(),
            longest_word: 0,
            n: 0,
            ids: Vec::new(),
            counts: Vec::new(),
            firsts: Vec::new(),
            next_ids: Vec::new(),
            table: Table::new(),
        }
    }

    /// Count and first position of the most common n-gram, the first seen among ties;
    /// `None` when there are fewer than n words.
    fn most_common(&mut self, n: usize) -> Option<(u32, usize)> {
        if n == 0 || self.words.len() < n {
            return None;
        }
        if n < self.n || self.n == 0 {
            self.start();
        }
        while self.n < n {
            self.extend();
        }
        // Ids are in first-seen order: the first maximum is the answer.
        let mut best = (0u32, 0usize);
        for (id, &c) in self.counts.iter().enumerate() {
            if c > best.0 {
                best = (c, id);
            }
        }
        Some(match best {
            (c, id) if c >= 2 => (c, self.firsts[id] as usize),
            // Every n-gram is unique: the first one wins.
            _ => (1, 0),
        })
    }

    /// Whether `ok` holds for an upper bound on `count * len(" ".join(g))` over the
    /// n-grams g, building levels below n one at a time until it does; false when it
    /// does not by level n, or when there are fewer than n words.
    ///
    /// `len(" ".join(g)) + 1` is the sum of `len(" ".join(p)) + 1` over any cut of g into
    /// consecutive pieces p, and g occurs at most as often as each piece, so cutting g
    /// into pieces of the longest level built (k words) and one shorter rest bounds its
    /// weight by `(n / k) * weights[k] + weights[n % k]`.
    fn proves(&mut self, n: usize, ok: impl Fn(u64) -> bool) -> bool {
        if n == 0 || self.words.len() < n {
            return false;
        }
        if self.weights.is_empty() {
            self.start();
        }
        loop {
            let k = self.weights.len().min(n);
            let (whole, rest) = ((n / k) as u64, n % k);
            let bound = whole * self.weights[k - 1] + if rest == 0 { 0 } else { self.weights[rest - 1] };
            if ok(bound) {
                return true;
            }
            if k == n || self.n != self.weights.len() {
                return false;
            }
            self.extend();
        }
    }

    /// Records `weights` for the level just built.
    fn weigh(&mut self) {
        let n = self.n;
        if self.weights.len() != n - 1 {
            return;
        }
        let chars = self.chars;
        let counted = self.counts.iter().zip(&self.firsts).map(|(&c, &f)| {
            let f = f as usize;
            u64::from(c) * (chars[f + n] - chars[f] + n as u64)
        });
        let mut w = counted.max().unwrap_or(0);
        if n == 1 {
            let lens = self.firsts.iter().map(|&f| chars[f as usize + 1] - chars[f as usize]);
            self.longest_word = lens.max().unwrap_or(0);
        }
        // Positions marked SINGLE hold n-grams seen once, not in `counts`: at most n
        // words of at most `longest + 1` each.
        w = w.max(n as u64 * (self.longest_word + 1));
        self.weights.push(w);
    }

    /// Level 1: the words themselves.
    fn start(&mut self) {
        self.n = 1;
        self.ids.clear();
        self.ids.extend_from_slice(self.words);
        self.counts.clear();
        self.firsts.clear();
        for (i, &w) in self.words.iter().enumerate() {
            let w = w as usize;
            if w == self.counts.len() {
                self.counts.push(0);
                self.firsts.push(i as u32);
            }
            self.counts[w] += 1;
        }
        self.weigh();
    }

    /// From level n to n + 1.
    fn extend(&mut self) {
        let n = self.n;
        let positions = self.words.len() + 1 - (n + 1);
        // Positions that can be looked up: at most the occurrences of repeated n-grams.
        let bound: u32 = self.counts.iter().filter(|&&c| c >= 2).sum();
        self.table.reset(bound as usize);
        self.next_ids.clear();
        let (counts, firsts) = (&mut self.counts, &mut self.firsts);
        let repeats = |id: u32, counts: &[u32]| id != SINGLE && counts[id as usize] >= 2;
        let mut next_counts: Vec<u32> = Vec::new();
        let mut next_firsts: Vec<u32> = Vec::new();
        // The second (n-1)-gram of a position is the first of the next one.
        let mut first_repeats = repeats(self.ids[0], counts);
        for i in 0..positions {
            let a = self.ids[i];
            let second_repeats = repeats(self.ids[i + 1], counts);
            let both = first_repeats && second_repeats;
            first_repeats = second_repeats;
            if !both {
                self.next_ids.push(SINGLE);
                continue;
            }
            let key = (u64::from(a) << 32) | u64::from(self.words[i + n]);
            let id = next_counts.len() as u32;
            let (slot, new) = self.table.upsert(key, id, 0);
            if new {
                next_counts.push(1);
                next_firsts.push(i as u32);
            } else {
                next_counts[slot.1 as usize] += 1;
            }
            self.next_ids.push(slot.1);
        }
        *counts = next_counts;
        *firsts = next_firsts;
        std::mem::swap(&mut self.ids, &mut self.next_ids);
        self.n = n + 1;
        self.weigh();
    }
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

/// Entries of [`POW`] and [`INV_POW`].
const POW_STEPS: usize = 64;

/// `x^k` for k below [`POW_STEPS`].
const fn powers(x: u64) -> [u64; POW_STEPS] {
    let mut t = [1u64; POW_STEPS];
    let mut k = 1;
    while k < POW_STEPS {
        t[k] = t[k - 1].wrapping_mul(x);
        k += 1;
    }
    t
}

/// `BASE^k`.
const POW: [u64; POW_STEPS] = powers(BASE);
/// `BASE^-k`.
const INV_POW: [u64; POW_STEPS] = powers(INV_BASE);

impl WindowHashes {
    /// `ids` are the words' [`intern`] ids: equal words share their hash and powers,
    /// which are computed once per distinct word.
    fn new(words: &[&str], ids: &[u32]) -> Self {
        let mut prefix = Vec::with_capacity(words.len() + 1);
        let mut pow = Vec::with_capacity(words.len() + 1);
        let mut inv_pow = Vec::with_capacity(words.len() + 1);
        let (mut h, mut p, mut ip) = (0u64, 1u64, 1u64);
        prefix.push(h);
        pow.push(p);
        inv_pow.push(ip);
        // Per word: its own hash, `BASE^len` and `BASE^-len`.
        for (hw, pw, ipw) in per_distinct(words, ids, |w| word_hash(w.as_bytes())) {
            h = h.wrapping_mul(pw).wrapping_add(hw);
            p = p.wrapping_mul(pw);
            ip = ip.wrapping_mul(ipw);
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

/// The polynomial hash of one word's bytes, `BASE^len` and `BASE^-len`.
fn word_hash(b: &[u8]) -> (u64, u64, u64) {
    let h = b.iter().fold(0u64, |h, &c| {
        h.wrapping_mul(BASE).wrapping_add(u64::from(c) + 1)
    });
    let (mut p, mut ip) = (1u64, 1u64);
    for chunk in b.chunks(POW_STEPS - 1) {
        p = p.wrapping_mul(POW[chunk.len()]);
        ip = ip.wrapping_mul(INV_POW[chunk.len()]);
    }
    (h, p, ip)
}

/// Where the words' concatenation (datatrove's `"".join`) is unique: the word starts at
/// which no other word start begins with the same [`UNIQUE_LEN`] bytes. A window of at
/// least that many bytes from such a start equals no other window, so it can neither
/// repeat nor be repeated, and the duplicate scans step over it without hashing it.
///
/// One length, not a ladder of them: on the parity corpus a ladder of 8, 16 and 32
/// bytes saved fewer scan insertions than its extra counting passes cost.
struct UniqueFrom {
    /// Byte offset of each word in the concatenation, plus its total length.
    starts: Vec<u32>,
    /// Per word start, [`UNIQUE_LEN`] where it is unique, `u32::MAX` elsewhere.
    len: Vec<u32>,
}

/// The prefix length at which [`UniqueFrom`] tests word starts.
const UNIQUE_LEN: u32 = 16;

impl UniqueFrom {
    fn new(words: &[&str]) -> Self {
        let mut len = vec![u32::MAX; words.len()];
        let mut starts = Vec::with_capacity(words.len() + 1);
        let mut total = 0usize;
        starts.push(0);
        for w in words {
            total += w.len();
            match u32::try_from(total) {
                Ok(t) => starts.push(t),
                Err(_) => {
                    // Too long to index by u32: no pruning (the scans stay exact without it).
                    starts.clear();
                    starts.resize(words.len() + 1, 0);
                    return UniqueFrom { starts, len };
                }
            }
        }
        let keys = prefix_keys(words);
        let mut table = CountTable::new();
        table.reset(keys.len());
        let slots: Vec<u32> = keys.iter().map(|&k| table.add(k)).collect();
        for (l, &slot) in len.iter_mut().zip(&slots) {
            if table.count(slot) == 1 {
                *l = UNIQUE_LEN;
            }
        }
        UniqueFrom { starts, len }
    }

    /// Whether the window of words `i..j` is unique in the concatenation.
    #[inline]
    fn unique(&self, i: usize, j: usize) -> bool {
        self.starts[j] - self.starts[i] >= self.len[i]
    }
}

/// Per word start, a 64-bit digest of the first [`UNIQUE_LEN`] bytes of the words'
/// concatenation from there, zero-padded past its end. Equal bytes always give equal
/// keys, which is all [`UniqueFrom`] needs: a digest collision, or a padded key equal to
/// real bytes, only loses pruning, and a padded start is never claimed unique for a
/// window it cannot hold.
///
/// Built backwards, each start's bytes being its word's followed by the next start's, so
/// no copy of the concatenation is made.
fn prefix_keys(words: &[&str]) -> Vec<u64> {
    let mut keys = vec![0u64; words.len()];
    // The 16 bytes from the next start, little-endian.
    let mut next = 0u128;
    for (w, key) in words.iter().zip(keys.iter_mut()).rev() {
        let b = w.as_bytes();
        next = match b.len() {
            16.. => load_le16(&b[..16]),
            // Shifting by the whole width (an empty word) is not allowed; it changes nothing.
            0 => next,
            n => next << (8 * n) | load_le16(b),
        };
        let digest = (next as u64).rotate_left(23) ^ (next >> 64) as u64;
        *key = digest.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    keys
}

/// `b` (at most 16 bytes) as a little-endian integer, zero above.
#[inline]
fn load_le16(b: &[u8]) -> u128 {
    debug_assert!(b.len() <= 16);
    let (lo, hi) = b.split_at(b.len().min(8));
    u128::from(load_le(lo)) | u128::from(load_le(hi)) << 64
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
/// whole n-gram after each repeat, and sum the repeated characters. `open` lists, in
/// order, the starts from which an n-word window may not be unique: the scan steps over
/// every other start at once (datatrove's loop inserts those windows, but a unique
/// window never matches another, so that changes nothing).
#[allow(clippy::too_many_arguments)]
fn all_duplicate_chars(
    words: &[&str],
    ids: &[u32],
    hashes: &WindowHashes,
    unique: &UniqueFrom,
    prefix: &[u64],
    n: usize,
    open: &[u32],
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
    seen.reset(open.len());
    // `idx`: the first start the scan has not stepped over.
    let (mut repeated, mut idx) = (0u64, 0usize);
    for &start in open {
        let start = start as usize;
        if start + n > n_words {
            break;
        }
        if start < idx || unique.unique(start, start + n) {
            continue;
        }
        idx = start;
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

/// The decision and only the signals it needs: those up to the first failing rule, as
/// datatrove computes them (the later scalar signals are NaN, the later n-gram entries
/// absent), less the top n-gram values proven below their thresholds (`None`).
pub fn evaluate_to_drop(doc: &Doc<'_>, params: &Params) -> (Signals, Decision) {
    let s = compute(doc, params, !doc.text().is_empty());
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
        let ids = crate::doc::intern(&words);
        let mut table = TagSet::new();
        assert_eq!(ids, crate::doc::intern_exact(&words));
        let hashes = WindowHashes::new(&words, &ids);
        let unique = UniqueFrom::new(&words);
        let all: Vec<u32> = (0..words.len() as u32).collect();
        let mut prefix = vec![0u64];
        for w in words {
            prefix.push(prefix[prefix.len() - 1] + w.len() as u64);
        }
        for n in 1..=4 {
            let fast =
                all_duplicate_chars(&words, &ids, &hashes, &unique, &prefix, n, &all, &mut table);
            assert_eq!(fast, all_duplicate_chars_exact(&words, &prefix, n));
        }
        // n=2: "abc" seen at 0, "cx" at 1, "xa" at 2, "abc" repeats at 3 (+3), skip to 5:
        // "xab" new, "abc" repeats at 6 (+3), skip to 8: "xy" new.
        assert_eq!(
            all_duplicate_chars(&words, &ids, &hashes, &unique, &prefix, 2, &all, &mut table),
            6
        );
        assert_eq!(BASE.wrapping_mul(INV_BASE), 1);
    }

    #[test]
    fn prefix_keys_depend_on_the_concatenations_bytes_only() {
        let words = [
            "a",
            "bc",
            "def",
            "ghij",
            "klmnopq",
            "rstuvwxy",
            "z",
            "0123456789abcdefg",
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
            "é",
            "x",
        ];
        let concat: Vec<u8> = words.iter().flat_map(|w| w.bytes()).collect();
        let keys = prefix_keys(&words);
        let mut at = 0;
        for (w, key) in words.iter().zip(&keys) {
            // The same bytes from a start, given as other words: the same key.
            let rest = std::str::from_utf8(&concat[at..]).unwrap();
            let split: Vec<&str> = rest
                .char_indices()
                .map(|(i, c)| &rest[i..i + c.len_utf8()])
                .collect();
            assert_eq!(prefix_keys(&split)[0], *key, "{w:?}");
            at += w.len();
        }
        // Different first 16 bytes here: different keys.
        let mut distinct = keys.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), keys.len());
        for n in 0..=16 {
            let b: Vec<u8> = (1..=n as u8).collect();
            let mut want = [0u8; 16];
            want[..n].copy_from_slice(&b);
            assert_eq!(load_le16(&b), u128::from_le_bytes(want));
        }
    }

    #[test]
    fn top_ngram_ties_go_to_the_first_seen() {
        // "1 2" and "0 1" both occur twice; "0 1" was seen first (position 0).
        let ids = [0, 1, 2, 0, 1, 2, 1];
        let chars: Vec<u64> = (0..=ids.len() as u64).collect();
        let mut g = GramLevels::new(&ids, &chars);
        assert_eq!(g.most_common(2), Some((2, 0)));
        assert_eq!(g.most_common(3), Some((2, 0)));
        // Every 4-gram is unique: the first one.
        assert_eq!(g.most_common(4), Some((1, 0)));
        assert_eq!(g.most_common(8), None);
        // Going back down a level starts over.
        assert_eq!(g.most_common(1), Some((3, 1)));
        let ids = [0, 0, 0, 0, 0, 0];
        let chars: Vec<u64> = (0..=ids.len() as u64).collect();
        let mut g = GramLevels::new(&ids, &chars);
        assert_eq!(g.most_common(5), Some((2, 0)));
    }
}
