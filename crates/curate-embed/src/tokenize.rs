//! A Hugging Face `tokenizer.json`, truncated to the model's length, with no padding: the
//! encoder packs sequences of any length, so padding would only cost time.

use tokenizers::{Tokenizer, TruncationParams};

use crate::error::ModelError;
use crate::files::ModelDir;

/// Token ids of texts.
pub(crate) struct TextTokenizer {
    inner: Tokenizer,
    add_special_tokens: bool,
    /// The unknown token's id, left out of every encoding (model2vec does so).
    skip: Option<u32>,
}

impl TextTokenizer {
    /// Loads `tokenizer.json`; `max_tokens` counts special tokens, as the reference libraries do.
    pub(crate) fn load(dir: &mut ModelDir, max_tokens: Option<usize>, add_special_tokens: bool) -> Result<Self, ModelError> {
        let bytes = dir.read("tokenizer.json")?;
        let mut inner = Tokenizer::from_bytes(&bytes).map_err(|e| ModelError::invalid(dir.path("tokenizer.json"), e.to_string()))?;
        inner.with_padding(None);
        let truncation = max_tokens.map(|max_length| TruncationParams { max_length, ..Default::default() });
        inner.with_truncation(truncation).map_err(|e| ModelError::invalid(dir.path("tokenizer.json"), e.to_string()))?;
        Ok(TextTokenizer { inner, add_special_tokens, skip: None })
    }

    /// Leaves the model's unknown token out of encodings.
    pub(crate) fn skip_unknown(&mut self) {
        let unk = serde_json::to_value(self.inner.get_model()).ok().and_then(|m| m.get("unk_token").and_then(|u| u.as_str().map(str::to_string)));
        self.skip = unk.and_then(|u| self.inner.token_to_id(&u));
    }

    /// The ids of one text.
    pub(crate) fn ids(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        let encoding = self.inner.encode(text, self.add_special_tokens).map_err(|e| ModelError::Tokenize(e.to_string()))?;
        let ids = encoding.get_ids();
        Ok(match self.skip {
            Some(unk) => ids.iter().copied().filter(|&i| i != unk).collect(),
            None => ids.to_vec(),
        })
    }
}
