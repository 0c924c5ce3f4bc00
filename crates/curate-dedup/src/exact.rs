//! Content normalisation and the 128-bit content hash used for exact deduplication.
//!
//! Exact dedup as a global operator: map each record to `content_hash(text, norm)` as the
//! partition key, then in the reduce pick one survivor per key with [`crate::keep::pick`].

use std::borrow::Cow;
use std::str::FromStr;

use crate::error::{DedupError, Result};

/// How text is canonicalised before hashing or shingling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TextNorm {
    /// Bytes are hashed as given.
    None,
    /// Runs of Unicode whitespace become one ASCII space; leading/trailing whitespace is dropped.
    Whitespace,
    /// Lowercase, drop every character that is neither alphanumeric nor whitespace, then
    /// collapse whitespace as in [`TextNorm::Whitespace`].
    #[default]
    LowercasePunct,
}

impl TextNorm {
    /// The spelling accepted by [`FromStr`], used in index headers and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            TextNorm::None => "none",
            TextNorm::Whitespace => "whitespace",
            TextNorm::LowercasePunct => "lowercase_punct",
        }
    }

    pub(crate) fn to_byte(self) -> u8 {
        match self {
            TextNorm::None => 0,
            TextNorm::Whitespace => 1,
            TextNorm::LowercasePunct => 2,
        }
    }

    pub(crate) fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(TextNorm::None),
            1 => Some(TextNorm::Whitespace),
            2 => Some(TextNorm::LowercasePunct),
            _ => None,
        }
    }
}

impl FromStr for TextNorm {
    type Err = DedupError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(TextNorm::None),
            "whitespace" => Ok(TextNorm::Whitespace),
            "lowercase_punct" => Ok(TextNorm::LowercasePunct),
            other => Err(DedupError::param(
                "normalization",
                format!("{other:?} is not one of none, whitespace, lowercase_punct"),
            )),
        }
    }
}

/// Returns `text` canonicalised according to `norm` (borrowed when nothing changes).
pub fn normalize(text: &str, norm: TextNorm) -> Cow<'_, str> {
    if norm == TextNorm::None {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    normalize_into(text, norm, &mut out);
    Cow::Owned(out)
}

/// Writes the canonical form of `text` into `out` (cleared first) so hot loops can reuse a buffer.
pub fn normalize_into(text: &str, norm: TextNorm, out: &mut String) {
    out.clear();
    if norm == TextNorm::None {
        out.push_str(text);
        return;
    }
    let lower_punct = norm == TextNorm::LowercasePunct;
    let mut pending_space = false;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // Fast path: copy a whole run of bytes that pass through unchanged in one go; this
        // loop dominates shingling time.
        let run = bytes[i..]
            .iter()
            .take_while(|&&b| {
                if lower_punct {
                    b.is_ascii_lowercase() || b.is_ascii_digit()
                } else {
                    b.is_ascii_graphic()
                }
            })
            .count();
        if run > 0 {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.push_str(&text[i..i + run]);
            i += run;
            continue;
        }
        let c = text[i..]
            .chars()
            .next()
            .unwrap_or(char::REPLACEMENT_CHARACTER);
        i += c.len_utf8();
        if c.is_whitespace() {
            pending_space = true;
            continue;
        }
        if lower_punct && !c.is_alphanumeric() {
            // Dropped rather than turned into a space so that "don't" and "dont" agree.
            continue;
        }
        if pending_space && !out.is_empty() {
            out.push(' ');
        }
        pending_space = false;
        if !lower_punct {
            out.push(c);
        } else if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else {
            out.extend(c.to_lowercase());
        }
    }
}

/// xxh3-128 of the normalised text; the key for exact dedup.
pub fn content_hash(text: &str, norm: TextNorm) -> u128 {
    xxhash_rust::xxh3::xxh3_128(normalize(text, norm).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_fixtures() {
        let s = "  Hello,\tWORLD!\n\nIt's  a   test. ";
        assert_eq!(normalize(s, TextNorm::None), s);
        assert_eq!(
            normalize(s, TextNorm::Whitespace),
            "Hello, WORLD! It's a test."
        );
        assert_eq!(
            normalize(s, TextNorm::LowercasePunct),
            "hello world its a test"
        );
        assert_eq!(
            normalize("Ünïcode — ÉTÉ", TextNorm::LowercasePunct),
            "ünïcode été"
        );
        assert_eq!(normalize(" ... ", TextNorm::LowercasePunct), "");
    }

    const PINNED_HELLO_WORLD: u128 = 0xdf8d09e93f874900a99b8775cc15b6c7;

    #[test]
    fn hash_respects_normalisation() {
        let a = "The quick brown fox.";
        let b = "the   QUICK brown, fox";
        assert_ne!(
            content_hash(a, TextNorm::None),
            content_hash(b, TextNorm::None)
        );
        assert_ne!(
            content_hash(a, TextNorm::Whitespace),
            content_hash(b, TextNorm::Whitespace)
        );
        assert_eq!(
            content_hash(a, TextNorm::LowercasePunct),
            content_hash(b, TextNorm::LowercasePunct)
        );
        // Pinned value: the hash is persisted by callers, so it must not drift between releases.
        assert_eq!(
            content_hash("Hello,  World", TextNorm::LowercasePunct),
            PINNED_HELLO_WORLD
        );
    }

    #[test]
    fn parse_norm() {
        assert_eq!(
            "whitespace".parse::<TextNorm>().unwrap(),
            TextNorm::Whitespace
        );
        let err = "lower".parse::<TextNorm>().unwrap_err().to_string();
        assert!(
            err.contains("normalization") && err.contains("lowercase_punct"),
            "{err}"
        );
        for n in [
            TextNorm::None,
            TextNorm::Whitespace,
            TextNorm::LowercasePunct,
        ] {
            assert_eq!(TextNorm::from_byte(n.to_byte()), Some(n));
            assert_eq!(n.as_str().parse::<TextNorm>().unwrap(), n);
        }
    }
}
