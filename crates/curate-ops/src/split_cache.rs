//! The word split each text operator computes, handed to the next text operator that
//! runs on the same thread, so a document is tokenised once per pipeline rather than once
//! per quality step.
//!
//! Steps between two text operators may drop rows (the executor then copies the kept
//! rows into new buffers) or rewrite texts (C4), so splits are found by content, not by
//! buffer or row: a text's key is cheap (length and edges), and a hit is confirmed by
//! comparing the whole text with the one the split was made from, which the cache keeps
//! alive by holding that batch's column (a reference count, not a copy). Sharing can
//! therefore never change an output, only skip work.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use arrow_array::{Array, StringArray};
use curate_text::{Doc, WordSplit};

/// Splits of the rows of one text column, looked up by text.
#[derive(Default)]
pub struct SplitCache {
    texts: Option<StringArray>,
    by_key: HashMap<u64, usize>,
    splits: Vec<Option<WordSplit>>,
}

thread_local! {
    /// The splits of the last batch a text operator tokenised on this thread.
    static LAST: RefCell<SplitCache> = RefCell::default();
}

/// A key of `text` that is cheap to compute; equal texts have equal keys.
fn key(text: &str) -> u64 {
    let b = text.as_bytes();
    let mut h = DefaultHasher::new();
    b.len().hash(&mut h);
    b[..b.len().min(32)].hash(&mut h);
    b[b.len().saturating_sub(32)..].hash(&mut h);
    h.finish()
}

impl SplitCache {
    /// Takes this thread's cache, leaving an empty one until [`SplitCache::store`].
    pub fn take() -> Self {
        LAST.with(|c| std::mem::take(&mut *c.borrow_mut()))
    }

    /// Makes `self` this thread's cache.
    pub fn store(self) {
        LAST.with(|c| *c.borrow_mut() = self);
    }

    /// The cached split of a text equal to `text`.
    pub fn lookup(&self, text: &str) -> Option<&WordSplit> {
        let texts = self.texts.as_ref()?;
        let &row = self.by_key.get(&key(text))?;
        let split = self.splits.get(row)?.as_ref()?;
        (texts.is_valid(row) && texts.value(row) == text).then_some(split)
    }

    /// A `Doc` of `text` carrying the cached split of an equal text, or a fresh `Doc`.
    pub fn doc<'a>(&self, text: &'a str) -> Doc<'a> {
        self.lookup(text)
            .and_then(|split| Doc::with_word_split(text, split))
            .unwrap_or_else(|| Doc::new(text))
    }

    /// Starts a cache for the rows of `texts`.
    pub fn for_column(texts: &StringArray) -> Self {
        SplitCache {
            texts: Some(texts.clone()),
            by_key: HashMap::with_capacity(texts.len()),
            splits: Vec::with_capacity(texts.len()),
        }
    }

    /// Records the split of the next row (rows in order), if `doc` computed one.
    pub fn push(&mut self, doc: &Doc<'_>) {
        let row = self.splits.len();
        let split = doc.word_split();
        if split.is_some() && self.texts.as_ref().is_some_and(|t| t.is_valid(row)) {
            self.by_key.entry(key(doc.text())).or_insert(row);
        }
        self.splits.push(split);
    }

    /// Whether any row has a split.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}
