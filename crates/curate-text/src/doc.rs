//! The shared, lazily computed split of one document that every filter reads.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::hash::Hasher;

use crate::chars::{char_len, py_splitlines};
use crate::hash::{FxBuild, FxHasher};
use crate::table::Table;
use crate::tokenizer::{tokenize, Scratch};

/// The words of one text as byte ranges (and their ids, when computed), without the
/// text: what consecutive operators over the same text share instead of each
/// tokenising and interning it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WordSplit {
    spans: Vec<(u32, u32)>,
    ids: Option<Vec<u32>>,
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
    ids: OnceCell<Vec<u32>>,
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
            ids: OnceCell::new(),
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

    /// Per word, an id shared by equal words and only by them, numbered in order of
    /// first occurrence (so id k first occurs after ids 0..k), aligned with
    /// [`Doc::words`].
    pub fn word_ids(&self) -> &[u32] {
        self.ids.get_or_init(|| intern(self.words()))
    }

    /// Code-point length of each word, aligned with [`Doc::words`]; counted once per
    /// distinct word.
    pub fn word_char_lens(&self) -> &[u32] {
        self.word_chars.get_or_init(|| {
            per_distinct(self.words(), self.word_ids(), |w| u32::try_from(char_len(w)).unwrap_or(u32::MAX)).collect()
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
        Some(WordSplit { spans, ids: self.ids.get().cloned() })
    }

    /// A `Doc` of `text` that takes its words (and their ids, when the split has them)
    /// from `split` instead of tokenising and interning.
    ///
    /// `split` must come from [`Doc::word_split`] of a text equal to `text`: the words are
    /// not re-checked, only that each range lies on char boundaries of `text`, so a split
    /// of another text cannot panic (it gives `None`, or wrong words); its ids are
    /// numbered in order of first occurrence whatever text they came from.
    pub fn with_word_split(text: &'a str, split: &WordSplit) -> Option<Self> {
        let words = split
            .spans
            .iter()
            .map(|&(a, b)| text.get(a as usize..b as usize))
            .collect::<Option<Vec<_>>>()?;
        let doc = Doc::new(text);
        doc.words.get_or_init(|| words);
        if let Some(ids) = split.ids.as_ref().filter(|ids| ids.len() == split.spans.len()) {
            doc.ids.get_or_init(|| ids.clone());
        }
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

/// `f` of each word, computed once per distinct word: `ids` are [`intern`]'s, numbered in
/// order of first occurrence, so a word's id is new exactly when it equals the count
/// of values made so far.
pub(crate) fn per_distinct<'w, T: Copy + 'w>(
    words: &'w [&str],
    ids: &'w [u32],
    mut f: impl FnMut(&str) -> T + 'w,
) -> impl Iterator<Item = T> + 'w {
    let mut made: Vec<T> = Vec::new();
    words.iter().zip(ids).map(move |(w, &id)| {
        if id as usize == made.len() {
            made.push(f(w));
        }
        made[id as usize]
    })
}

/// Numbers the distinct words in order of first occurrence. Words are keyed by a 64-bit
/// hash and confirmed byte-wise; a genuine collision falls back to a string-keyed map.
pub(crate) fn intern(words: &[&str]) -> Vec<u32> {
    let mut table: Table<u64> = Table::new();
    table.reset(words.len());
    let mut ids = Vec::with_capacity(words.len());
    let mut next = 0u32;
    for (i, w) in words.iter().enumerate() {
        let mut h = FxHasher::default();
        h.write(w.as_bytes());
        let (slot, new) = table.upsert(h.finish(), next, u32::try_from(i).unwrap_or(u32::MAX - 1));
        if new {
            next += 1;
        } else if !same_word(words[slot.2 as usize], w) {
            return intern_exact(words);
        }
        ids.push(slot.1);
    }
    ids
}

/// Whether two words with equal [`FxHasher`] hashes are equal. A word of at most 7 bytes
/// is hashed as one multiplication of its packed bytes and length by an odd constant,
/// which is injective, so two such words of equal length and hash are equal without a
/// byte comparison (a `memcmp` call per repeated word otherwise).
#[inline]
fn same_word(a: &str, b: &str) -> bool {
    a.len() == b.len() && (a.len() <= 7 || a == b)
}

/// [`intern`] keyed by the strings themselves.
pub(crate) fn intern_exact(words: &[&str]) -> Vec<u32> {
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
