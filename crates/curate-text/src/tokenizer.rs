//! A port of spaCy 3.8's tokenizer with the blank English rules, which is what
//! datatrove 0.10.1's `load_word_tokenizer("en")` runs (`spacy.blank("en")`).
//!
//! The algorithm follows `spacy/tokenizer.pyx` step for step: whitespace split, special
//! cases, the prefix/suffix loop, URL match, infixes. The regexes of
//! `spacy/lang/punctuation.py` and `spacy/lang/en/punctuation.py` are hand-compiled
//! into char-class tests, because they are alternations of single chars, dot runs and
//! fixed strings with one-char lookarounds; this avoids a regex engine in the hot loop.
//!
//! The post-pass that re-applies special cases over affix-split tokens
//! (`_apply_special_cases`, e.g. `)` `:` -> `):`) is ported too, including its quirk
//! that matches across a space still win the overlap resolution without being applied.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;

use crate::chars::{
    flags, is, is_space, PREFIX1, PY_WORD, SENT_PUNCT, SP_ALPHA, SP_ICON, SP_LOWER, SP_QUOTE,
    SP_UPPER, SUFFIX1, SUF_DOT_LB, UNI_PUNCT,
};
use crate::hash::{load_le, FxBuild};
use crate::tables::{CURRENCY, SPECIALS, SPECIAL_PATTERNS, UNITS};

/// A set of strings behind a bitset over (first byte, last byte, byte length): most
/// words share that triple with no member, which skips hashing them.
struct StrTable<V> {
    map: HashMap<&'static str, V, FxBuild>,
    /// The one-byte members by byte, looked up without hashing (punctuation tokens, which
    /// begin many special-case patterns).
    single: Box<[Option<V>; 256]>,
    shape: Box<[u64; 1024]>,
    /// Byte length of the longest member.
    max_len: usize,
}

/// Bit index of a string's (first byte, last byte, length) triple in a 2^16-bit set.
#[inline]
fn shape_bit(b: &[u8]) -> Option<usize> {
    Some(shape_bit_of(*b.first()?, *b.last()?, b.len()))
}

/// [`shape_bit`] from the triple itself.
#[inline]
fn shape_bit_of(first: u8, last: u8, len: usize) -> usize {
    ((usize::from(first) << 8 | usize::from(last)) ^ (len.min(255) << 5).wrapping_mul(0x9E5))
        & 0xFFFF
}

impl<V: Copy> StrTable<V> {
    fn new(items: impl Iterator<Item = (&'static str, V)>) -> Self {
        let mut shape = Box::new([0u64; 1024]);
        let map: HashMap<_, _, FxBuild> = items.collect();
        for bit in map.keys().filter_map(|k| shape_bit(k.as_bytes())) {
            shape[bit >> 6] |= 1 << (bit & 63);
        }
        let max_len = map.keys().map(|k| k.len()).max().unwrap_or(0);
        let mut single = Box::new([None; 256]);
        for (k, &v) in &map {
            if let &[b] = k.as_bytes() {
                single[usize::from(b)] = Some(v);
            }
        }
        StrTable {
            map,
            single,
            shape,
            max_len,
        }
    }

    #[inline]
    fn get(&self, s: &str) -> Option<V> {
        if let &[b] = s.as_bytes() {
            return self.single[usize::from(b)];
        }
        let bit = shape_bit(s.as_bytes())?;
        if !self.has_shape(bit) {
            return None;
        }
        self.map.get(s).copied()
    }

    /// Whether some member has this [`shape_bit`]; when not, no string with it is one.
    #[inline]
    fn has_shape(&self, bit: usize) -> bool {
        self.shape[bit >> 6] & (1 << (bit & 63)) != 0
    }
}

/// Currencies and units that split off a preceding number.
fn units() -> &'static StrTable<()> {
    static MAP: OnceLock<StrTable<()>> = OnceLock::new();
    MAP.get_or_init(|| StrTable::new(CURRENCY.iter().chain(UNITS.iter()).map(|u| (*u, ()))))
}

/// The special-case table keyed by exact string.
fn specials() -> &'static StrTable<&'static [u8]> {
    static MAP: OnceLock<StrTable<&'static [u8]>> = OnceLock::new();
    MAP.get_or_init(|| StrTable::new(SPECIALS.iter().copied()))
}

/// Specials of the post-pass: every token-boundary prefix of their rule-less splits,
/// mapped to the split's token lengths when the prefix is a whole special. A window
/// of tokens can only grow into a match while its text stays such a prefix.
struct Patterns {
    prefixes: StrTable<Option<&'static [u8]>>,
    max_tokens: usize,
}

fn special_patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        let mut prefixes: HashMap<&'static str, Option<&'static [u8]>, FxBuild> =
            HashMap::default();
        for &(s, lens) in SPECIAL_PATTERNS.iter() {
            let mut end = 0;
            for &l in lens {
                end += usize::from(l);
                prefixes.entry(&s[..end]).or_insert(None);
            }
            prefixes.insert(s, Some(lens));
        }
        Patterns {
            prefixes: StrTable::new(prefixes.into_iter()),
            max_tokens: SPECIAL_PATTERNS
                .iter()
                .map(|(_, p)| p.len())
                .max()
                .unwrap_or(0),
        }
    })
}

#[inline]
fn special(s: &str) -> Option<&'static [u8]> {
    specials().get(s)
}

#[inline]
fn first_char(s: &str) -> Option<char> {
    s.chars().next()
}

#[inline]
fn last_char(s: &str) -> Option<char> {
    s.chars().next_back()
}

#[inline]
fn is_ascii_digit(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_ascii_digit())
}

#[inline]
fn has(c: Option<char>, mask: u16) -> bool {
    c.is_some_and(|c| is(c, mask))
}

/// Byte length of the prefix that spaCy's prefix regex matches at the start of `s`.
fn find_prefix(s: &str) -> usize {
    let Some(c) = first_char(s) else { return 0 };
    if is(c, PREFIX1) {
        return c.len_utf8();
    }
    let b = s.as_bytes();
    match c {
        // `\.\.+`
        '.' => {
            let run = b.iter().take_while(|&&x| x == b'.').count();
            if run >= 2 {
                run
            } else {
                0
            }
        }
        // `\+(?![0-9])`
        '+' => {
            if b.get(1).is_some_and(u8::is_ascii_digit) {
                0
            } else {
                1
            }
        }
        'U' if s.starts_with("US$") => 3,
        'C' if s.starts_with("C$") => 2,
        'A' if s.starts_with("A$") => 2,
        _ => 0,
    }
}

/// Byte length of the suffix spaCy's suffix regex finds: `re.search` with every
/// alternative anchored at `$` returns the leftmost start, i.e. the longest suffix.
fn find_suffix(s: &str) -> usize {
    let Some(c) = last_char(s) else { return 0 };
    let before = &s[..s.len() - c.len_utf8()];
    let prev = last_char(before);
    let mut best = 0usize; // in chars; every candidate ends at the end of `s`
    let mut best_bytes = 0usize;
    let mut consider = |chars: usize, bytes: usize| {
        if chars > best {
            best = chars;
            best_bytes = bytes;
        }
    };
    if is(c, SUFFIX1) {
        consider(1, c.len_utf8());
    }
    // LIST_PUNCT's only multi-char entry; as a prefix "…" wins first, as a suffix the
    // leftmost match does.
    if s.ends_with("……") {
        consider(2, "……".len());
    }
    match c {
        '.' => {
            let run = s
                .as_bytes()
                .iter()
                .rev()
                .take_while(|&&x| x == b'.')
                .count();
            if run >= 2 {
                consider(run, run);
            } else if has(prev, SUF_DOT_LB) {
                // `(?<=[0-9{al}%²\-\+{p}(?:{q})])\.`
                consider(1, 1);
            } else {
                let mut it = before.chars().rev();
                let (p1, p2) = (it.next(), it.next());
                // `(?<=°[FfCcKk])\.` and `(?<=[{au}][{au}])\.`
                let degree =
                    matches!(p1, Some('F' | 'f' | 'C' | 'c' | 'K' | 'k')) && p2 == Some('°');
                if degree || (has(p1, SP_UPPER) && has(p2, SP_UPPER)) {
                    consider(1, 1);
                }
            }
        }
        's' | 'S' if matches!(prev, Some('\'' | '’')) => {
            consider(2, 1 + prev.map_or(0, char::len_utf8));
        }
        // `(?<=[0-9])\+`
        '+' if is_ascii_digit(prev) => consider(1, 1),
        _ => {}
    }
    // `(?<=[0-9])(?:CURRENCY)` and `(?<=[0-9])(?:UNITS)`: no unit contains an ASCII
    // digit, so the only candidate is everything after the last digit. A digit further
    // back than the longest unit leaves too long a tail, so only the end is searched.
    let units = units();
    let from = s.len().saturating_sub(units.max_len + 1);
    if let Some(d) = s.as_bytes()[from..].iter().rposition(u8::is_ascii_digit) {
        let tail = &s[from + d + 1..];
        if units.get(tail).is_some() {
            consider(tail.chars().count(), tail.len());
        }
    }
    best_bytes
}

/// The next infix match at or after byte `from`, as `re.finditer` over spaCy's infix
/// alternation would return it.
fn next_infix(s: &str, from: usize) -> Option<(usize, usize)> {
    let mut prev: Option<char> = last_char(&s[..from]);
    for (off, c) in s[from..].char_indices() {
        // No other ASCII char takes part in an infix (and none is an icon).
        if c.is_ascii() && !INFIX_ASCII[c as usize] {
            prev = Some(c);
            continue;
        }
        let i = from + off;
        let after = &s[i + c.len_utf8()..];
        let next = first_char(after);
        let single = Some((i, i + c.len_utf8()));
        match c {
            '.' if next == Some('.') => {
                let run = s.as_bytes()[i..].iter().take_while(|&&x| x == b'.').count();
                return Some((i, i + run));
            }
            '…' => return single,
            _ if is(c, SP_ICON) => return single,
            _ => {}
        }
        let prev_digit = is_ascii_digit(prev);
        // `(?<=[0-9])[+\-\*^](?=[0-9-])`
        if matches!(c, '+' | '-' | '*' | '^')
            && prev_digit
            && (is_ascii_digit(next) || next == Some('-'))
        {
            return single;
        }
        // `(?<=[{al}{q}])\.(?=[{au}{q}])`
        if c == '.' && has(prev, SP_LOWER | SP_QUOTE) && has(next, SP_UPPER | SP_QUOTE) {
            return single;
        }
        let prev_alpha = has(prev, SP_ALPHA);
        // `(?<=[{a}]),(?=[{a}])`
        if c == ',' && prev_alpha && has(next, SP_ALPHA) {
            return single;
        }
        if prev_alpha || prev_digit {
            // `(?<=[{a}0-9])(?:-|–|—|--|---|——|~)(?=[{a}])`, alternatives in regex order
            let hyphens: &[&str] = match c {
                '-' => &["-", "--", "---"],
                '–' => &["–"],
                '—' => &["—", "——"],
                '~' => &["~"],
                _ => &[],
            };
            for h in hyphens {
                if s[i..].starts_with(h) && has(first_char(&s[i + h.len()..]), SP_ALPHA) {
                    return Some((i, i + h.len()));
                }
            }
            // `(?<=[{a}0-9])[:<>=/](?=[{a}])`
            if matches!(c, ':' | '<' | '>' | '=' | '/') && has(next, SP_ALPHA) {
                return single;
            }
        }
        prev = Some(c);
    }
    None
}

/// spaCy's `URL_MATCH` (`spacy/lang/tokenizer_exceptions.py`) on a whitespace-free string.
///
/// The regex is deterministic once split at its fixed separators, so it is matched by
/// trying each optional scheme / userinfo split. The private-network exclusions of the
/// IP branch are not ported: they only change how `10.x.x.x/path`-like tokens split.
fn url_match(s: &str) -> bool {
    let after_scheme = s.find("://").and_then(|p| {
        let scheme = &s[..p];
        // `[\w\+\-\.]{2,}` with Python's `\w` (not Rust's alphanumeric: combining marks differ)
        let ok = scheme.chars().count() >= 2
            && scheme
                .chars()
                .all(|c| is(c, PY_WORD) || matches!(c, '+' | '-' | '.'));
        ok.then(|| &s[p + 3..])
    });
    [Some(s), after_scheme].into_iter().flatten().any(|rest| {
        // `(?:\S+(?::\S*)?@)?`: any non-empty prefix ending in '@'
        host_port_path(rest)
            || rest
                .match_indices('@')
                .any(|(i, _)| i > 0 && host_port_path(&rest[i + 1..]))
    })
}

#[inline]
fn url_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || ('\u{a1}'..='\u{ffff}').contains(&c)
}

fn host_port_path(s: &str) -> bool {
    let host_end = s
        .char_indices()
        .find(|&(_, c)| !(url_label_char(c) || matches!(c, '_' | '-' | '.')))
        .map_or(s.len(), |(i, _)| i);
    let (host, mut rest) = s.split_at(host_end);
    if !(domain(host) || ipv4(host)) {
        return false;
    }
    // `(?::\d{2,5})?`; the host run cannot contain ':' so the port must follow here.
    if let Some(r) = rest.strip_prefix(':') {
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        if !(2..=5).contains(&digits) {
            return false;
        }
        rest = &r[digits..];
    }
    rest.is_empty() || rest.starts_with(['/', '?', '#'])
}

fn domain(host: &str) -> bool {
    let Some((labels, tld)) = host.rsplit_once('.') else {
        return false;
    };
    let tld_len = tld.chars().count();
    if !(2..=63).contains(&tld_len) || !tld.chars().all(|c| is(c, SP_LOWER)) {
        return false;
    }
    labels.split('.').all(|label| {
        let n = label.chars().count();
        (1..=64).contains(&n)
            && first_char(label).is_some_and(url_label_char)
            && last_char(label).is_some_and(url_label_char)
    })
}

fn ipv4(host: &str) -> bool {
    host.split('.').count() == 4
        && host.split('.').enumerate().all(|(i, p)| {
            let Ok(v) = p.parse::<u16>() else {
                return false;
            };
            let canonical = !p.starts_with('0') || (i != 0 && i != 3 && p.len() <= 3);
            let in_range = match i {
                0 => (1..=223).contains(&v),
                3 => (1..=254).contains(&v),
                _ => v <= 255,
            };
            p.bytes().all(|b| b.is_ascii_digit()) && canonical && in_range
        })
}

/// [`ASCII_CLASS`] of an ASCII letter.
const LETTER: u8 = 0;
/// [`ASCII_CLASS`] of any other non-space ASCII byte.
const OTHER: u8 = 1;
/// [`ASCII_CLASS`] of an ASCII space byte or of any non-ASCII byte (decoded separately).
const SPACE_OR_WIDE: u8 = 2;

/// Per-byte class for the tokenizer's inner scan.
const ASCII_CLASS: [u8; 256] = {
    let mut t = [SPACE_OR_WIDE; 256];
    let mut i = 0;
    while i < 128 {
        t[i] = if ASCII_SPACE[i] {
            SPACE_OR_WIDE
        } else if (i as u8).is_ascii_alphabetic() {
            LETTER
        } else {
            OTHER
        };
        i += 1;
    }
    t
};

/// The top bit of each byte of `x` (8 text bytes, little-endian) that may end a run of
/// plain ASCII: below `0x21` (the ASCII spaces and other controls) or not ASCII. The
/// others are printable ASCII or DEL, [`OTHER`] or [`LETTER`] in [`ASCII_CLASS`].
#[inline]
fn stop_bytes(x: u64) -> u64 {
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    // Per byte, (b & 0x7F) + 0x5F reaches the top bit exactly when b & 0x7F >= 0x21,
    // and never carries into the next byte.
    (x | !((x & LOW7) + 0x5F5F_5F5F_5F5F_5F5F)) & !LOW7
}

/// The top bit of each byte of `x` that is not an ASCII letter, for the bytes that are
/// ASCII (the others are flagged by [`stop_bytes`] and looked at one by one).
#[inline]
fn non_letter_bytes(x: u64) -> u64 {
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    // Letters are 0x61..=0x7A once 0x20 is set; neither sum carries between bytes.
    let y = (x | 0x2020_2020_2020_2020) & LOW7;
    let at_least_a = y + 0x1F1F_1F1F_1F1F_1F1F;
    let above_z = y + 0x0505_0505_0505_0505;
    !(at_least_a & !above_z) & !LOW7
}

/// `str.isspace` of each ASCII byte.
const ASCII_SPACE: [bool; 128] = {
    let mut t = [false; 128];
    let mut i = 0;
    while i < 128 {
        t[i] = crate::tables::ASCII[i] & crate::tables::SPACE != 0;
        i += 1;
    }
    t
};

/// Reusable buffers of [`tokenize`], so tokenising allocates nothing per token.
#[derive(Debug, Default)]
pub struct Scratch {
    suffixes: Vec<usize>,
    toks: Vec<(usize, usize, bool)>,
    matches: Vec<(usize, usize)>,
    seen: Vec<bool>,
    key: String,
}

/// Token lengths of recently split whitespace-free spans, keyed by the span's bytes.
///
/// spaCy keeps the same cache: how a span splits depends on its bytes alone, and text
/// repeats its punctuated words (`word,`, `(see`, `f(x)`) far more often than it
/// invents new ones, so the prefix/suffix/infix loop mostly runs once per distinct span.
/// Direct-mapped and small enough to stay in the core's cache: a span of up to
/// [`SpanCache::MAX_LEN`] bytes splitting into at most [`SpanCache::MAX_TOKENS`] tokens
/// has one slot, keyed by its bytes as three integers (so a hit needs no byte
/// comparison), and replaces whatever was there.
struct SpanCache {
    slots: Box<[SpanSlot; SpanCache::SLOTS]>,
}

/// One [`SpanCache`] entry; `meta` 0 marks an empty slot.
#[derive(Clone, Copy, Default)]
struct SpanSlot {
    key: [u64; 3],
    /// Byte 0: the span's length; byte 1: its token count; bytes 2..8: token lengths.
    meta: u64,
}

impl SpanCache {
    /// Longest span cached, in bytes.
    const MAX_LEN: usize = 24;
    /// Most tokens a cached span splits into.
    const MAX_TOKENS: usize = 6;
    /// Slots (a power of two): 128 KiB.
    const SLOTS: usize = 1 << 12;

    fn new() -> Self {
        SpanCache { slots: Box::new([SpanSlot::default(); Self::SLOTS]) }
    }

    /// The span's bytes as three integers, zero past its end, and its slot.
    #[inline]
    fn key(span: &[u8]) -> ([u64; 3], usize) {
        let mut key = [0u64; 3];
        for (k, chunk) in key.iter_mut().zip(span.chunks(8)) {
            *k = load_le(chunk);
        }
        let h = (key[0] ^ key[1].rotate_left(21) ^ key[2].rotate_left(42) ^ span.len() as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (key, (h >> (64 - Self::SLOTS.trailing_zeros())) as usize)
    }

    /// Calls `push` with the cached tokens of `span` (at most [`SpanCache::MAX_LEN`]
    /// bytes) starting at `lo`; false when it is not cached.
    #[inline]
    fn replay(&self, span: &[u8], lo: usize, push: &mut impl FnMut(usize, usize)) -> bool {
        let (key, i) = Self::key(span);
        let s = &self.slots[i];
        if s.key != key || s.meta & 0xFF != span.len() as u64 {
            return false;
        }
        let mut at = lo;
        for k in 0..(s.meta >> 8 & 0xFF) {
            let len = (s.meta >> (16 + 8 * k) & 0xFF) as usize;
            push(at, at + len);
            at += len;
        }
        true
    }

    /// Caches the split of `span` into `toks`, which tile it.
    fn insert(&mut self, span: &[u8], toks: &[(usize, usize, bool)]) {
        if toks.is_empty() || toks.len() > Self::MAX_TOKENS {
            return;
        }
        let (key, i) = Self::key(span);
        let mut meta = span.len() as u64 | (toks.len() as u64) << 8;
        for (k, t) in toks.iter().enumerate() {
            // Spans are at most 24 bytes, so each length fits a byte.
            meta |= ((t.1 - t.0) as u64) << (16 + 8 * k);
        }
        self.slots[i] = SpanSlot { key, meta };
    }
}

impl Scratch {
    /// Makes room for `tokens` tokens, to avoid regrowing on long texts.
    pub fn reserve(&mut self, tokens: usize) {
        self.toks.reserve(tokens);
    }
}

thread_local! {
    /// Each thread's [`SpanCache`], shared by all the texts it tokenises.
    static SPANS: RefCell<SpanCache> = RefCell::new(SpanCache::new());
}

/// Calls `emit(start, end, is_whitespace)` with the byte range of every spaCy token of
/// `text`, in order. Whitespace tokens (runs other than a single separating `' '`) are
/// reported too because the sentencizer sees them; datatrove's word lists drop them.
pub fn tokenize(text: &str, scratch: &mut Scratch, emit: impl FnMut(usize, usize, bool)) {
    SPANS.with(|cache| match cache.try_borrow_mut() {
        Ok(mut cache) => tokenize_with(text, scratch, Some(&mut cache), emit),
        // Only a tokenize called from inside another's callback finds it in use.
        Err(_) => tokenize_with(text, scratch, None, emit),
    });
}

/// [`tokenize`] with this thread's span cache, when it is free.
fn tokenize_with(
    text: &str,
    scratch: &mut Scratch,
    mut cache: Option<&mut SpanCache>,
    mut emit: impl FnMut(usize, usize, bool),
) {
    scratch.toks.clear();
    let Some(first) = first_char(text) else {
        return;
    };
    let mut in_ws = is_space(first);
    let mut start = 0usize;
    let bytes = text.as_bytes();
    // Whether the current span is only ASCII letters: such a span has no prefix, suffix
    // or infix, so it is one token unless it is a special case.
    let mut letters = true;
    let mut i = 0;
    while i < bytes.len() {
        // Inside a word, run over plain ASCII bytes without the transition logic, 8 at a
        // time while 8 remain, then byte by byte.
        if !in_ws {
            while let Some(chunk) = bytes.get(i..i + 8) {
                let x = load_le(chunk);
                let (stop, non_letters) = (stop_bytes(x), non_letter_bytes(x));
                if stop == 0 {
                    letters &= non_letters == 0;
                    i += 8;
                    continue;
                }
                // The bytes before the first possible stop are plain ASCII.
                let before = (1u64 << stop.trailing_zeros()) - 1;
                letters &= non_letters & before == 0;
                i += (stop.trailing_zeros() / 8) as usize;
                break;
            }
            while let Some(&b) = bytes.get(i) {
                match ASCII_CLASS[usize::from(b)] {
                    LETTER => {}
                    OTHER => letters = false,
                    _ => break,
                }
                i += 1;
            }
            if i == bytes.len() {
                break;
            }
            // One space before plain ASCII, the usual word boundary: crossed without
            // entering and leaving whitespace (the same spans and state as that does).
            if bytes[i] == b' '
                && bytes
                    .get(i + 1)
                    .is_some_and(|&next| ASCII_CLASS[usize::from(next)] != SPACE_OR_WIDE)
            {
                if start < i {
                    span(text, start, i, false, letters, scratch, cache.as_deref_mut());
                }
                start = i + 1;
                letters = true;
                i += 1;
                continue;
            }
        }
        // Byte loop with an ASCII fast path; only non-ASCII chars are decoded.
        let b = bytes[i];
        let (space, len) = if b < 128 {
            (ASCII_SPACE[usize::from(b)], 1)
        } else {
            let c = first_char(&text[i..]).unwrap_or(' ');
            (is_space(c), c.len_utf8())
        };
        if space != in_ws {
            if start < i {
                span(text, start, i, in_ws, letters, scratch, cache.as_deref_mut());
            }
            start = if b == b' ' { i + 1 } else { i };
            in_ws = !in_ws;
            letters = true;
        }
        letters &= b.is_ascii_alphabetic();
        i += len;
    }
    if start < text.len() {
        span(text, start, text.len(), in_ws, letters, scratch, cache);
    }
    apply_special_cases(text, scratch, &mut emit);
}

/// Tokenises one whitespace-delimited span (`Tokenizer._tokenize`) into `sc.toks`.
///
/// Inlined into the scanning loop for the common spans (whitespace, special cases,
/// plain letters); the others go through the span cache out of line.
#[inline(always)]
fn span(
    text: &str,
    lo: usize,
    hi: usize,
    ws: bool,
    letters: bool,
    sc: &mut Scratch,
    cache: Option<&mut SpanCache>,
) {
    let toks = &mut sc.toks;
    if ws {
        // No affix rule matches whitespace, so a whitespace span is always one token.
        toks.push((lo, hi, true));
        return;
    }
    let mut push = |a: usize, b: usize| toks.push((a, b, false));
    if let Some(pieces) = special(&text[lo..hi]) {
        pieces_at(lo, pieces, &mut push);
        return;
    }
    if letters {
        push(lo, hi);
        return;
    }
    punctuated_span(text, lo, hi, sc, cache);
}

/// [`span`] for a span that is neither a special case nor plain letters: replayed from
/// the span cache, or split by the affix loop and cached.
#[inline(never)]
fn punctuated_span(text: &str, lo: usize, hi: usize, sc: &mut Scratch, cache: Option<&mut SpanCache>) {
    let mut push = |a: usize, b: usize| sc.toks.push((a, b, false));
    let bytes = &text.as_bytes()[lo..hi];
    match cache {
        Some(cache) if bytes.len() <= SpanCache::MAX_LEN => {
            if !cache.replay(bytes, lo, &mut push) {
                let first = sc.toks.len();
                split_span(text, lo, hi, sc);
                cache.insert(bytes, &sc.toks[first..]);
            }
        }
        _ => split_span(text, lo, hi, sc),
    }
}

/// [`span`]'s affix loop for a span that is neither a special case nor plain letters.
fn split_span(text: &str, lo: usize, hi: usize, sc: &mut Scratch) {
    let toks = &mut sc.toks;
    let mut push = |a: usize, b: usize| toks.push((a, b, false));
    sc.suffixes.clear();
    // `_split_affixes`: prefixes are pushed as found, suffix starts are stacked.
    let (mut a, mut b) = (lo, hi);
    let mut last_size = usize::MAX;
    let mut inner_special = None;
    while a < b && b - a != last_size {
        let s = &text[a..b];
        // The whole span was looked up above.
        if last_size != usize::MAX {
            if let Some(p) = special(s) {
                inner_special = Some(p);
                break;
            }
        }
        last_size = b - a;
        let pre = find_prefix(s);
        if pre != 0 && a + pre < b {
            if let Some(p) = special(&s[pre..]) {
                push(a, a + pre);
                a += pre;
                inner_special = Some(p);
                break;
            }
        }
        let suf = find_suffix(&s[pre..]);
        if suf != 0 && b - suf > a {
            if let Some(p) = special(&s[..s.len() - suf]) {
                sc.suffixes.push(b - suf);
                b -= suf;
                inner_special = Some(p);
                break;
            }
        }
        if pre != 0 {
            push(a, a + pre);
            a += pre;
        }
        if suf != 0 {
            sc.suffixes.push(b - suf);
            b -= suf;
        }
    }
    // `_attach_tokens`
    if a < b {
        match inner_special {
            Some(p) => pieces_at(a, p, &mut push),
            None => attach_infixes(text, a, b, &mut push),
        }
    }
    // Suffix k was cut after suffixes 0..k, so they are pushed in reverse order.
    for k in (0..sc.suffixes.len()).rev() {
        let end = if k == 0 { hi } else { sc.suffixes[k - 1] };
        push(sc.suffixes[k], end);
    }
}

/// `_apply_special_cases`, then emits the tokens. spaCy's PhraseMatcher finds runs of
/// tokens that spell a special's rule-less split (ignoring the spaces between them);
/// overlaps are resolved longest-first, then leftmost; a surviving run is replaced by the
/// special's pieces only when its text, spaces included, is the special itself.
fn apply_special_cases(text: &str, sc: &mut Scratch, emit: &mut impl FnMut(usize, usize, bool)) {
    let pats = special_patterns();
    let toks = &sc.toks;
    sc.matches.clear();
    for i in 0..toks.len() {
        // Most tokens begin no pattern: look the first one up without copying it.
        let (start, first_end, ws) = toks[i];
        let Some(mut found) = (!ws)
            .then(|| pats.prefixes.get(&text[start..first_end]))
            .flatten()
        else {
            continue;
        };
        // While the window's tokens touch in the text, its key is a slice of the text;
        // only a window across a space (which the matcher ignores) is copied, and only
        // once its shape says it may be a prefix.
        let (mut end, mut key_len) = (first_end, first_end - start);
        let mut copied = false;
        let max_len = pats.max_tokens.min(toks.len() - i);
        for len in 1..=max_len {
            if let Some(lens) = found {
                let window = &toks[i..i + len];
                if lens.len() == len
                    && window
                        .iter()
                        .zip(lens.iter())
                        .all(|(t, &l)| t.1 - t.0 == usize::from(l))
                {
                    sc.matches.push((i, i + len));
                }
            }
            if len == max_len {
                break;
            }
            // Grow the window by the next token.
            let (a, b, ws) = toks[i + len];
            if ws {
                break;
            }
            key_len += b - a;
            let bytes = text.as_bytes();
            if !pats
                .prefixes
                .has_shape(shape_bit_of(bytes[start], bytes[b - 1], key_len))
            {
                break;
            }
            if !copied && a != end {
                sc.key.clear();
                sc.key.push_str(&text[start..end]);
                copied = true;
            }
            let key = if copied {
                sc.key.push_str(&text[a..b]);
                sc.key.as_str()
            } else {
                end = b;
                &text[start..b]
            };
            match pats.prefixes.get(key) {
                None => break,
                Some(f) => found = f,
            }
        }
    }
    if sc.matches.is_empty() {
        for &(a, b, ws) in toks {
            emit(a, b, ws);
        }
        return;
    }
    // `_filter_special_spans`: a run is kept unless its first or last token is already
    // covered, and covers its tokens either way.
    sc.matches
        .sort_unstable_by(|x, y| (y.1 - y.0).cmp(&(x.1 - x.0)).then(x.0.cmp(&y.0)));
    sc.seen.clear();
    sc.seen.resize(toks.len(), false);
    let mut kept = Vec::new();
    for &(st, en) in &sc.matches {
        if !sc.seen[st] && !sc.seen[en - 1] {
            kept.push((st, en));
        }
        sc.seen[st..en].iter_mut().for_each(|x| *x = true);
    }
    kept.sort_unstable();
    let mut i = 0;
    let mut next = kept.into_iter().peekable();
    while i < toks.len() {
        match next.peek() {
            Some(&(st, en)) if st == i => {
                let (a, b) = (toks[st].0, toks[en - 1].1);
                match special(&text[a..b]) {
                    Some(p) => pieces_at(a, p, &mut |x, y| emit(x, y, false)),
                    None => (st..en).for_each(|k| emit(toks[k].0, toks[k].1, false)),
                }
                next.next();
                i = en;
            }
            _ => {
                emit(toks[i].0, toks[i].1, toks[i].2);
                i += 1;
            }
        }
    }
}

fn pieces_at(mut at: usize, pieces: &[u8], emit: &mut impl FnMut(usize, usize)) {
    for &len in pieces {
        let len = usize::from(len);
        emit(at, at + len);
        at += len;
    }
}

/// ASCII bytes that can take part in an infix match (no ASCII char is an icon).
const INFIX_ASCII: [bool; 128] = {
    let mut t = [false; 128];
    let chars = b".+-*^,~:<>=/";
    let mut i = 0;
    while i < chars.len() {
        t[chars[i] as usize] = true;
        i += 1;
    }
    t
};

fn attach_infixes(text: &str, a: usize, b: usize, emit: &mut impl FnMut(usize, usize)) {
    let s = &text[a..b];
    // Plain ASCII words cannot contain an infix; skip the char-by-char scan.
    if s.bytes().all(|x| x < 128 && !INFIX_ASCII[usize::from(x)]) {
        emit(a, b);
        return;
    }
    let Some(first) = next_infix(s, 0) else {
        emit(a, b);
        return;
    };
    if url_match(s) {
        emit(a, b);
        return;
    }
    let mut start = 0usize;
    let mut m = Some(first);
    while let Some((ist, ien)) = m {
        // spaCy skips an infix at the very start of the string.
        if ist != 0 {
            if ist != start {
                emit(a + start, a + ist);
            }
            emit(a + ist, a + ien);
            start = ien;
        }
        m = next_infix(s, ien);
    }
    if start < s.len() {
        emit(a + start, b);
    }
}

/// The state machine of spaCy's `Sentencizer.predict` with its default punctuation.
#[derive(Default)]
pub(crate) struct Sentencizer {
    seen_period: bool,
    started: bool,
}

impl Sentencizer {
    /// Feeds the next token; returns whether it starts a new sentence.
    #[inline]
    pub(crate) fn push(&mut self, tok: &str, ws: bool) -> bool {
        if !self.started {
            self.started = true;
            self.seen_period = is_sent_punct(tok);
            return true;
        }
        let in_punct_chars = is_sent_punct(tok);
        // `token.is_punct`: every char is in a Unicode P* category.
        let is_punct = !ws && tok.chars().all(|c| is(c, UNI_PUNCT));
        if self.seen_period && !is_punct && !in_punct_chars {
            self.seen_period = false;
            true
        } else {
            if in_punct_chars {
                self.seen_period = true;
            }
            false
        }
    }
}

/// Whether the token is exactly one of the sentencizer's punctuation chars.
#[inline]
fn is_sent_punct(tok: &str) -> bool {
    let mut it = tok.chars();
    matches!((it.next(), it.next()), (Some(c), None) if flags(c) & SENT_PUNCT != 0)
}

/// Number of sentences spaCy's sentencizer finds in `text` (`len(doc.sents)`).
pub(crate) fn count_sentences(text: &str, scratch: &mut Scratch) -> usize {
    let mut sz = Sentencizer::default();
    let mut n = 0;
    tokenize(text, scratch, |a, b, ws| {
        if sz.push(&text[a..b], ws) {
            n += 1;
        }
    });
    n
}

/// datatrove's `split_into_sentences`: `text` cut after each spaCy sentence's last
/// token, the last piece running to the end of the text.
pub(crate) fn split_sentences<'a>(text: &'a str, scratch: &mut Scratch) -> Vec<&'a str> {
    let mut ends = Vec::new();
    let mut sz = Sentencizer::default();
    let mut prev_end = 0usize;
    tokenize(text, scratch, |a, b, ws| {
        if sz.push(&text[a..b], ws) && a > 0 {
            ends.push(prev_end);
        }
        prev_end = b;
    });
    let mut out = Vec::with_capacity(ends.len() + 1);
    let mut start = 0;
    for e in ends {
        out.push(&text[start..e]);
        start = e;
    }
    out.push(&text[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<&str> {
        let mut v = Vec::new();
        tokenize(text, &mut Scratch::default(), |a, b, ws| {
            if !ws {
                v.push(&text[a..b]);
            }
        });
        v
    }

    // Expected outputs were produced with spacy 3.8.18 `spacy.blank("en")`.
    #[test]
    fn affixes_and_specials() {
        assert_eq!(toks("Hello, world!"), ["Hello", ",", "world", "!"]);
        assert_eq!(toks("(don't)"), ["(", "do", "n't", ")"]);
        assert_eq!(
            toks("U.S. e.g. Mr. Smith's"),
            ["U.S.", "e.g.", "Mr.", "Smith", "'s"]
        );
        assert_eq!(
            toks("$5.00 10km 3+4 well-known"),
            ["$", "5.00", "10", "km", "3", "+", "4", "well", "-", "known"]
        );
        assert_eq!(
            toks("end.Start a,b x...y"),
            ["end", ".", "Start", "a", ",", "b", "x", "...", "y"]
        );
        assert_eq!(toks("\"quoted\"..."), ["\"", "quoted", "\"", "..."]);
        // Re-applied specials: `)` `:` and `m` `.` merge back after affix splitting.
        assert_eq!(
            toks("(default): cortex-m.**"),
            ["(", "default", "):", "cortex", "-", "m.", "*", "*"]
        );
        // `: ((` spells the special `:((` across a space: it is not applied but still
        // beats the overlapping `):`.
        assert_eq!(toks("X): (("), ["X", ")", ":", "(", "("]);
        assert_eq!(toks("X): ("), ["X", "):", "("]);
    }

    #[test]
    fn cached_spans_split_as_fresh_ones() {
        // Each span split on an empty cache, then replayed from it among the others
        // (repeats, equal-length rivals for a slot, spans too long or too split to cache).
        let spans = [
            "word,", "(see", "f(x)", "U.S.", "e.g.", "x.y", "well-known", "(a)(b)(c)(d)",
            "\"quoted\"", "3.14,", "$5", "a/b/c/d/e/f/g", "http://a.io/x.", "abcdefghijklmnopqrstuvw,",
            "abcdefghijklmnopqrstuvwx,", "é,", "don't.", "...", "word;",
        ];
        let fresh: Vec<Vec<String>> = spans
            .iter()
            .map(|sp| {
                SPANS.set(SpanCache::new());
                toks(sp).into_iter().map(String::from).collect()
            })
            .collect();
        let text = [spans.join(" "), spans.join(" ")].join(" ");
        let want: Vec<String> = fresh.iter().chain(&fresh).flatten().cloned().collect();
        assert_eq!(toks(&text), want);
        // Once more, every split now coming from the cache.
        assert_eq!(toks(&text), want);
    }

    #[test]
    fn urls_stay_whole() {
        assert_eq!(
            toks("see https://example.com/a-b/c."),
            ["see", "https://example.com/a-b/c", "."]
        );
        // "……" is a suffix of its own but "…" wins as a prefix.
        assert_eq!(toks("x…… ……x"), ["x", "……", "…", "…", "x"]);
        // A combining mark is not `\w`, so it breaks the URL scheme.
        assert_eq!(
            toks("\u{a71}https://example.com/a?b=1"),
            ["\u{a71}https://example.com", "/", "a?b=1"]
        );
        assert_eq!(
            toks("Xhttps://example.com/a?b=1"),
            ["Xhttps://example.com/a?b=1"]
        );
        assert_eq!(
            toks("this/that 10-20 a--b and/or"),
            ["this", "/", "that", "10", "-", "20", "a", "--", "b", "and/or"]
        );
    }

    #[test]
    fn no_unit_contains_an_ascii_digit() {
        assert!(CURRENCY
            .iter()
            .chain(UNITS.iter())
            .all(|u| !u.bytes().any(|b| b.is_ascii_digit())));
    }

    #[test]
    fn byte_masks_match_the_class_table() {
        for b in 0..=255u8 {
            // Every lane of the word, and each lane alone among letters.
            for x in [
                u64::from_le_bytes([b; 8]),
                u64::from(b) << 24 | 0x6161_6161_0061_6161,
            ] {
                let lane = (x >> 24) as u8;
                let top = 0x80u64 << 24;
                let class = ASCII_CLASS[usize::from(lane)];
                let stop = !(0x21..0x80).contains(&lane);
                assert_eq!(stop_bytes(x) & top != 0, stop, "{lane:#x}");
                assert_eq!(
                    stop,
                    class == SPACE_OR_WIDE || (lane < 0x21 && class == OTHER)
                );
                if !stop {
                    assert_eq!(non_letter_bytes(x) & top != 0, class == OTHER, "{lane:#x}");
                }
            }
        }
    }

    #[test]
    fn no_ascii_char_is_an_icon() {
        assert!((0u8..128).all(|b| !is(char::from(b), SP_ICON)));
    }

    #[test]
    fn whitespace_tokens_are_reported() {
        let mut v = Vec::new();
        let t = " a  b\n";
        tokenize(t, &mut Scratch::default(), |a, b, ws| {
            v.push((&t[a..b], ws))
        });
        assert_eq!(
            v,
            [
                (" ", true),
                ("a", false),
                (" ", true),
                ("b", false),
                ("\n", true)
            ]
        );
    }

    #[test]
    fn sentencizer() {
        let s = &mut Scratch::default();
        assert_eq!(count_sentences("One. Two! Three? four", s), 4);
        assert_eq!(count_sentences("Wait... what", s), 1);
        assert_eq!(count_sentences("No end", s), 1);
        // "b." is a special case, so no "." token ends the first sentence.
        assert_eq!(count_sentences("A b. C d", s), 1);
        assert_eq!(count_sentences("Hi.  \t! x", s), 3);
        assert_eq!(
            split_sentences("One two. Three four", s),
            ["One two.", " Three four"]
        );
    }
}
