//! Per-code-point classes shared by the tokenizer and the filters.
//!
//! Every class is derived from the Python side (see `tools/gen_tables.py`) so that
//! `str.isspace`, `str.isalpha`, spaCy's regex classes and datatrove's punctuation sets
//! agree with the reference for every code point, not just ASCII.

use crate::hash::load_le;
use crate::tables::{self, ASCII, RANGES};

pub(crate) use crate::tables::{
    DT_PUNCT, DT_TERMINAL, PREFIX1, PY_ALPHA, PY_DIGIT, PY_WORD, SENT_PUNCT, SP_ALPHA, SP_ICON,
    SP_LOWER, SP_QUOTE, SP_UPPER, SUFFIX1, SUF_DOT_LB, UNI_PUNCT,
};

/// All class flags of `c`.
#[inline]
pub(crate) fn flags(c: char) -> u16 {
    let cp = c as u32;
    if cp < 128 {
        return ASCII[cp as usize];
    }
    match RANGES.binary_search_by(|&(lo, hi, _)| {
        if hi < cp {
            std::cmp::Ordering::Less
        } else if lo > cp {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    }) {
        Ok(i) => RANGES[i].2,
        Err(_) => 0,
    }
}

/// Whether `c` has any of the flags in `mask`.
#[inline]
pub(crate) fn is(c: char, mask: u16) -> bool {
    flags(c) & mask != 0
}

/// Python's `str.isspace` for one char.
#[inline]
pub(crate) fn is_space(c: char) -> bool {
    is(c, tables::SPACE)
}

/// Python's `str.strip()` (no argument).
pub(crate) fn py_strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// Python's `str.lstrip()` (no argument).
pub(crate) fn py_lstrip(s: &str) -> &str {
    s.trim_start_matches(is_space)
}

/// Python's `str.rstrip()` (no argument).
pub(crate) fn py_rstrip(s: &str) -> &str {
    s.trim_end_matches(is_space)
}

/// Python's `len(s)`: the number of code points.
#[inline]
pub(crate) fn char_len(s: &str) -> usize {
    let b = s.as_bytes();
    // Most words: count in one register; the library's `is_ascii` and `chars().count()`
    // are built for long strings and loop byte by byte on short ones.
    if b.len() <= 8 {
        return b.len() - continuation_bytes(load_le(b));
    }
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().count()
    }
}

/// UTF-8 continuation bytes (`0b10xx_xxxx`) among the 8 bytes of `x`; zero bytes are none.
#[inline]
pub(crate) fn continuation_bytes(x: u64) -> usize {
    // Bit 7 set and bit 6 clear; shifting by one moves each byte's bit 6 onto its bit 7.
    (x & !(x << 1) & 0x8080_8080_8080_8080).count_ones() as usize
}

/// Bytes that may begin a line break of [`py_splitlines`].
const BREAK_LEAD: [bool; 256] = {
    let mut t = [false; 256];
    let leads = [b'\n', b'\r', 0x0b, 0x0c, 0x1c, 0x1d, 0x1e, 0xC2, 0xE2];
    let mut i = 0;
    while i < leads.len() {
        t[leads[i] as usize] = true;
        i += 1;
    }
    t
};

/// Python's `str.splitlines()` (without `keepends`): `"\r\n"` is one break and a
/// trailing break does not open an empty last line.
pub(crate) fn py_splitlines(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let (mut start, mut i) = (0, 0);
    while i < b.len() {
        // Most bytes can start no break: skip 8 at a time while none is a control byte
        // or non-ASCII (the only ones that can), then one table load each.
        while let Some(chunk) = b.get(i..i + 8) {
            let x = load_le(chunk);
            const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
            // Per byte, (b & 0x7F) + 0x60 sets the top bit exactly when b & 0x7F >= 0x20,
            // without carrying into the next byte.
            let candidates = (x | !((x & LOW7) + 0x6060_6060_6060_6060)) & !LOW7;
            if candidates != 0 {
                i += (candidates.trailing_zeros() / 8) as usize;
                break;
            }
            i += 8;
        }
        if i >= b.len() {
            break;
        }
        if !BREAK_LEAD[usize::from(b[i])] {
            i += 1;
            continue;
        }
        // Byte-level scan: ASCII breaks directly, the non-ASCII ones (U+0085 = C2 85,
        // U+2028/U+2029 = E2 80 A8/A9) by their lead byte.
        let len = match b[i] {
            b'\r' if b.get(i + 1) == Some(&b'\n') => 2,
            b'\n' | b'\r' | 0x0b | 0x0c | 0x1c..=0x1e => 1,
            0xC2 if b.get(i + 1) == Some(&0x85) => 2,
            0xE2 if b.get(i + 1) == Some(&0x80) && matches!(b.get(i + 2), Some(0xA8 | 0xA9)) => 3,
            _ => {
                i += 1;
                continue;
            }
        };
        out.push(&text[start..i]);
        i += len;
        start = i;
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// Python's `re.split("\n{min,}", text)` for `min` >= 1: empty leading/trailing pieces kept.
pub(crate) fn split_newline_runs(text: &str, min: usize) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let (mut start, mut from) = (0, 0);
    // The `memchr` crate's search is vectorised, std's is not.
    while let Some(off) = memchr::memchr(b'\n', &bytes[from..]) {
        let run_start = from + off;
        let run_end = run_start
            + bytes[run_start..]
                .iter()
                .take_while(|&&b| b == b'\n')
                .count();
        if run_end - run_start >= min {
            out.push(&text[start..run_start]);
            start = run_end;
        }
        from = run_end;
    }
    out.push(&text[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_whitespace_and_alpha() {
        assert!(is_space('\u{a0}') && is_space('\u{1c}') && is_space('\u{3000}'));
        assert!(!is_space('\u{200b}'));
        assert!(is('é', PY_ALPHA) && !is('1', PY_ALPHA) && !is('\u{301}', PY_ALPHA));
        assert!(is('٣', PY_DIGIT) && !is('a', PY_DIGIT));
    }

    #[test]
    fn splitlines_agrees_with_a_char_by_char_reference() {
        fn reference(text: &str) -> Vec<&str> {
            let mut out = Vec::new();
            let (mut start, mut it) = (0, text.char_indices().peekable());
            while let Some((i, c)) = it.next() {
                let breaks = matches!(c, '\n' | '\r' | '\x0b' | '\x0c' | '\x1c'..='\x1e' | '\u{85}' | '\u{2028}' | '\u{2029}');
                if breaks {
                    out.push(&text[start..i]);
                    start = i + c.len_utf8();
                    if c == '\r' && it.peek().map(|&(_, n)| n) == Some('\n') {
                        it.next();
                        start += 1;
                    }
                }
            }
            if start < text.len() {
                out.push(&text[start..]);
            }
            out
        }
        // Breaks, near-breaks (C2 and E2 80 lead bytes of other chars, tab) and plain
        // runs of every length around the 8-byte steps.
        let pieces = ["\n", "\r", "\r\n", "\x0b", "\x1e", "\u{85}", "\u{2028}", "\u{2029}", "\u{a0}", "\u{2026}", "\t", "é", "abcdefghijk"];
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..3000 {
            let mut text = String::new();
            for _ in 0..(x % 12) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let p = pieces[(x % pieces.len() as u64) as usize];
                text.extend(p.chars().take(1 + (x >> 8) as usize % 11));
            }
            x = x.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1;
            assert_eq!(py_splitlines(&text), reference(&text), "{text:?}");
        }
    }

    #[test]
    fn splitlines_matches_python() {
        assert_eq!(
            py_splitlines("a\r\nb\rc\n\nd\u{2028}e\n"),
            vec!["a", "b", "c", "", "d", "e"]
        );
        assert!(py_splitlines("").is_empty());
        assert_eq!(py_splitlines("\n"), vec![""]);
        assert_eq!(
            py_splitlines("a\u{85}b\u{2029}c\u{1e}\u{c}d\r"),
            vec!["a", "b", "c", "", "d"]
        );
        assert_eq!(py_splitlines("é\u{2027}x"), vec!["é\u{2027}x"]);
    }

    #[test]
    fn newline_runs_match_re_split() {
        assert_eq!(
            split_newline_runs("\na\n\n\nb\n", 1),
            vec!["", "a", "b", ""]
        );
        assert_eq!(split_newline_runs("a\nb\n\nc", 2), vec!["a\nb", "c"]);
    }

    #[test]
    fn char_len_counts_code_points() {
        assert_eq!(char_len("héllo"), 5);
        assert_eq!(char_len("abc"), 3);
        for s in [
            "",
            "é",
            "日本語のテキスト",
            "a€b𝄞c",
            &"ß".repeat(20),
            &"x".repeat(40),
        ] {
            assert_eq!(char_len(s), s.chars().count(), "{s:?}");
        }
    }
}
