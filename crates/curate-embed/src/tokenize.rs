//! A Hugging Face `tokenizer.json`, truncated to the model's length, with no padding: the
//! encoder runs sequences of any length, so padding would only cost time.
//!
//! SentencePiece-style BPE tokenizers (Llama's: no pre-tokenizer, spaces normalised to `▁`)
//! run BPE over a whole text at once, which is slow on documents and never hits the model's
//! word cache. When no vocabulary token holds a `▁` after another character, no merge can
//! cross the start of a `▁`-run, so the text splits there into pieces whose BPE results,
//! concatenated, are exactly the whole text's; pieces then hit the cache.

use tokenizers::{Model, NormalizedString, Normalizer, Tokenizer, TruncationParams};

/// SentencePiece's word-boundary marker.
const SPACE_MARK: char = '\u{2581}';

use crate::error::ModelError;
use crate::files::ModelDir;

/// Token ids of texts.
pub(crate) struct TextTokenizer {
    inner: Tokenizer,
    add_special_tokens: bool,
    /// The unknown token's id, left out of every encoding (model2vec does so).
    skip: Option<u32>,
    /// Texts split into `▁`-pieces before BPE (see the module doc), with the added tokens
    /// (`<s>`...) whose presence in a text sends it down the full path instead.
    pieces: Option<Vec<String>>,
    max_tokens: Option<usize>,
}

impl TextTokenizer {
    /// Loads `tokenizer.json`; `max_tokens` counts special tokens, as the reference libraries do.
    pub(crate) fn load(dir: &mut ModelDir, max_tokens: Option<usize>, add_special_tokens: bool) -> Result<Self, ModelError> {
        let bytes = dir.read("tokenizer.json")?;
        let mut inner = Tokenizer::from_bytes(&bytes).map_err(|e| ModelError::invalid(dir.path("tokenizer.json"), e.to_string()))?;
        inner.with_padding(None);
        // With special tokens the tokenizer truncates, keeping room for them ([CLS] ... [SEP]);
        // without, ids are cut here, after the unknown token is left out (as model2vec does).
        let truncation = max_tokens.filter(|_| add_special_tokens).map(|max_length| TruncationParams { max_length, ..Default::default() });
        inner.with_truncation(truncation).map_err(|e| ModelError::invalid(dir.path("tokenizer.json"), e.to_string()))?;
        let pieces = splits_at_space_marks(&inner, add_special_tokens);
        let max_tokens = max_tokens.filter(|_| !add_special_tokens);
        Ok(TextTokenizer { inner, add_special_tokens, skip: None, pieces, max_tokens })
    }

    /// The ids of `text` split into `▁`-pieces (see the module doc).
    fn piece_ids(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        let err = |e: tokenizers::Error| ModelError::Tokenize(e.to_string());
        let mut normalized = NormalizedString::from(text);
        if let Some(n) = self.inner.get_normalizer() {
            n.normalize(&mut normalized).map_err(err)?;
        }
        let s = normalized.get();
        let mut ids = Vec::new();
        let mut start = 0;
        let mut previous = SPACE_MARK;
        for (i, c) in s.char_indices() {
            if c == SPACE_MARK && previous != SPACE_MARK && i > start {
                push_piece(&self.inner, &s[start..i], &mut ids).map_err(err)?;
                start = i;
            }
            previous = c;
        }
        push_piece(&self.inner, &s[start..], &mut ids).map_err(err)?;
        Ok(ids)
    }

    /// Leaves the model's unknown token out of encodings.
    pub(crate) fn skip_unknown(&mut self) {
        let unk = serde_json::to_value(self.inner.get_model()).ok().and_then(|m| m.get("unk_token").and_then(|u| u.as_str().map(str::to_string)));
        self.skip = unk.and_then(|u| self.inner.token_to_id(&u));
    }

    /// The ids of one text.
    pub(crate) fn ids(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        let mut ids = match &self.pieces {
            Some(added) if !added.iter().any(|a| text.contains(a.as_str())) => self.piece_ids(text)?,
            _ => self.full_ids(text)?,
        };
        if let Some(unk) = self.skip {
            ids.retain(|&i| i != unk);
        }
        if let Some(max) = self.max_tokens {
            ids.truncate(max);
        }
        Ok(ids)
    }

    /// The ids through the tokenizer's whole pipeline.
    fn full_ids(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        let encoding = self.inner.encode(text, self.add_special_tokens).map_err(|e| ModelError::Tokenize(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }
}

fn push_piece(tokenizer: &Tokenizer, piece: &str, ids: &mut Vec<u32>) -> tokenizers::Result<()> {
    ids.extend(tokenizer.get_model().tokenize(piece)?.into_iter().map(|t| t.id));
    Ok(())
}

/// The added tokens' contents when the tokenizer can run in `▁`-pieces: a BPE model, no
/// pre-tokenizer, post-processor or special tokens to add, and no vocabulary token with a
/// `▁` after another character.
fn splits_at_space_marks(tokenizer: &Tokenizer, add_special_tokens: bool) -> Option<Vec<String>> {
    let model = serde_json::to_value(tokenizer.get_model()).ok()?;
    if model.get("type").and_then(|t| t.as_str()) != Some("BPE") || tokenizer.get_pre_tokenizer().is_some() {
        return None;
    }
    if add_special_tokens && tokenizer.get_post_processor().is_some() {
        return None;
    }
    let crosses = tokenizer.get_model().get_vocab().keys().any(|token| {
        let mut previous = SPACE_MARK;
        token.chars().any(|c| {
            let crossed = c == SPACE_MARK && previous != SPACE_MARK;
            previous = c;
            crossed
        })
    });
    if crosses {
        return None;
    }
    Some(tokenizer.get_added_tokens_decoder().into_values().map(|t| t.content).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Texts mixing words, runs of spaces, tabs, newlines, punctuation, digits, accents, CJK,
    /// emoji and unknown characters, from a fixed seed.
    fn texts() -> Vec<String> {
        let parts = [
            "the", " ", "  ", "   ", "\t", "\n", "Hello", "world", ",", ".", "!?", "1234", "3.14", "café", "naïve", "Über", "日本語", "中文",
            "한국어", "Привет", "🙂", "👩‍👩‍👧", "\u{2581}", "▁▁", "x\u{2581}y", "<unk>", "-", "__init__", "http://example.com/a?b=c", "\u{0}", "\u{FEFF}",
        ];
        let mut state = 7u64;
        (0..3000)
            .map(|_| {
                let mut t = String::new();
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                for _ in 0..(state >> 60) + 1 {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    t.push_str(parts[(state >> 33) as usize % parts.len()]);
                }
                t
            })
            .collect()
    }

    #[test]
    fn pieces_give_the_whole_texts_ids() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.models/wordllama-l2-256");
        assert!(dir.exists(), "{} is missing: run scripts/models.sh", dir.display());
        let mut files = ModelDir::open(&dir).unwrap();
        let tokenizer = TextTokenizer::load(&mut files, None, false).unwrap();
        let added = tokenizer.pieces.clone().expect("Llama's tokenizer splits at space marks");
        let mut split = 0;
        for text in texts() {
            split += usize::from(!added.iter().any(|a| text.contains(a.as_str())));
            assert_eq!(tokenizer.ids(&text).unwrap(), tokenizer.full_ids(&text).unwrap(), "{text:?}");
        }
        assert!(split > 2000, "{split} texts took the split path");
    }
}
