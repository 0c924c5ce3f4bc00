//! The shared, lazily computed split of one document that every filter reads.

use std::cell::{Cell, OnceCell, RefCell};

use crate::chars::{char_len, continuation_bytes, py_splitlines};
use crate::hash::load_le;
use crate::tokenizer::{tokenize, Scratch};

/// A word of at most 16 bytes as two little-endian integers (bytes 0..8 and 8..16), zero
/// past its end; with its byte length, it determines the word.
pub(crate) type PackedWord = [u64; 2];

/// The words of one text as byte ranges, without the text: what consecutive operators
/// over the same text share instead of each tokenising it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WordSplit {
    spans: Vec<(u32, u32)>,
}

thread_local! {
    /// The tokenizer buffers of the last `Doc` dropped on this thread,
    /// handed to the next one: documents are tokenised one after another on a worker.
    static SCRATCH: Cell<Option<Scratch>> = const { Cell::new(None) };
}

/// One document and its splits, each computed at most once and only when a rule asks.
///
/// All pieces borrow from the text; nothing is allocated per word.
pub struct Doc<'a> {
    text: &'a str,
    text_chars: OnceCell<usize>,
    words: OnceCell<Vec<&'a str>>,
    word_chars: OnceCell<Vec<u32>>,
    lines: OnceCell<Vec<&'a str>>,
    scratch: RefCell<Scratch>,
}

impl<'a> Doc<'a> {
    /// Wraps `text`; no split is computed until asked for.
    pub fn new(text: &'a str) -> Self {
        Doc {
            text,
            text_chars: OnceCell::new(),
            words: OnceCell::new(),
            word_chars: OnceCell::new(),
            lines: OnceCell::new(),
            scratch: RefCell::new(SCRATCH.take().unwrap_or_default()),
        }
    }

    /// The document text.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// `len(text)` in Python terms (code points).
    pub fn char_len(&self) -> usize {
        *self.text_chars.get_or_init(|| char_len(self.text))
    }

    /// datatrove's `split_into_words(text, "en")`: spaCy tokens minus whitespace tokens.
    pub fn words(&self) -> &[&'a str] {
        self.words.get_or_init(|| {
            let text = self.text;
            // English prose averages well over 4 bytes per token; avoids regrowth.
            let mut words = Vec::with_capacity(text.len() / 4 + 1);
            let scratch = &mut *self.scratch.borrow_mut();
            scratch.reserve(text.len() / 3 + 1);
            tokenize(text, scratch, |a, b, ws| {
                if !ws {
                    words.push(&text[a..b]);
                }
            });
            words
        })
    }

    /// Code-point length of each word, aligned with [`Doc::words`].
    pub fn word_char_lens(&self) -> &[u32] {
        self.word_chars.get_or_init(|| {
            self.packed_words()
                .map(|(w, packed)| {
                    let chars = match packed {
                        Some([lo, hi]) => w.len() - continuation_bytes(lo) - continuation_bytes(hi),
                        None => char_len(w),
                    };
                    u32::try_from(chars).unwrap_or(u32::MAX)
                })
                .collect()
        })
    }

    /// Each word with, when it has at most 16 bytes, those bytes as two little-endian
    /// integers, zero past its end ([`PackedWord`]).
    ///
    /// Words are slices of the text, so all but the last few are read as two 8-byte loads
    /// from the text masked to the word's length: the same instructions for every
    /// length, where a per-word copy or byte loop branches on it (and mispredicts).
    pub(crate) fn packed_words(&self) -> impl Iterator<Item = (&'a str, Option<PackedWord>)> + '_ {
        let text = self.text.as_bytes();
        let base = text.as_ptr() as usize;
        let load8 = move |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&text[at..at + 8]);
            u64::from_le_bytes(w)
        };
        // The low `k` (at most 8) bytes.
        let keep = |k: usize| ((1u128 << (8 * k)) - 1) as u64;
        self.words().iter().map(move |&w| {
            let n = w.len();
            if n > 16 {
                return (w, None);
            }
            let at = (w.as_ptr() as usize).wrapping_sub(base);
            let packed = if at.checked_add(16).is_some_and(|e| e <= text.len()) {
                [
                    load8(at) & keep(n.min(8)),
                    load8(at + 8) & keep(n.saturating_sub(8)),
                ]
            } else {
                let (lo, hi) = w.as_bytes().split_at(n.min(8));
                [load_le(lo), load_le(hi)]
            };
            (w, Some(packed))
        })
    }

    /// Python's `text.splitlines()`.
    pub fn lines(&self) -> &[&'a str] {
        self.lines.get_or_init(|| py_splitlines(self.text))
    }

    /// The word split as byte ranges, detached from the text so that it can be kept and
    /// handed to [`Doc::with_word_split`] for an equal text; `None` when the words have
    /// not been computed (nothing to share) or the text is 4 GiB or longer.
    pub fn word_split(&self) -> Option<WordSplit> {
        let words = self.words.get()?;
        let base = self.text.as_ptr() as usize;
        let spans = words
            .iter()
            .map(|w| {
                let a = u32::try_from(w.as_ptr() as usize - base).ok()?;
                let b = u32::try_from(w.as_ptr() as usize - base + w.len()).ok()?;
                Some((a, b))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(WordSplit { spans })
    }

    /// A `Doc` of `text` that takes its words from `split` instead of tokenising.
    ///
    /// `split` must come from [`Doc::word_split`] of a text equal to `text`: the words are
    /// not re-checked, only that each range lies on char boundaries of `text`, so a split
    /// of another text cannot panic; it then gives `None`.
    pub fn with_word_split(text: &'a str, split: &WordSplit) -> Option<Self> {
        let words = split
            .spans
            .iter()
            .map(|&(a, b)| text.get(a as usize..b as usize))
            .collect::<Option<Vec<_>>>()?;
        let doc = Doc::new(text);
        doc.words.get_or_init(|| words);
        Some(doc)
    }

    /// Runs `f` with the reusable tokenizer scratch buffer of this document.
    pub(crate) fn with_scratch<R>(&self, f: impl FnOnce(&mut Scratch) -> R) -> R {
        f(&mut self.scratch.borrow_mut())
    }
}

impl Drop for Doc<'_> {
    fn drop(&mut self) {
        SCRATCH.set(Some(self.scratch.take()));
    }
}
