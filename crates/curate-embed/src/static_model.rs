//! Static embeddings: one vector per token, averaged (model2vec, wordllama).
//!
//! wordllama (no config.json, tensor `embedding.weight`): every token counts, no truncation,
//! no normalisation. model2vec (config.json, tensor `embeddings`): the unknown token is
//! dropped, at most 512 tokens (or the config's `seq_length`), optional per-token `weights`
//! and `mapping` (token id -> row), normalised when the config says so.

use serde::Deserialize;

use crate::error::ModelError;
use crate::files::ModelDir;

/// model2vec's `config.json` (absent for wordllama).
#[derive(Deserialize)]
struct StaticConfig {
    #[serde(default = "yes")]
    normalize: bool,
    #[serde(default)]
    seq_length: Option<usize>,
}

fn yes() -> bool {
    true
}

/// model2vec's default input length in tokens.
const MODEL2VEC_MAX_TOKENS: usize = 512;

/// An embedding matrix: `rows x dim`, row-major.
pub(crate) struct StaticModel {
    table: Vec<f32>,
    rows: usize,
    dim: usize,
    max_tokens: Option<usize>,
    /// Per-token weight (model2vec), by token id.
    weights: Option<Vec<f32>>,
    /// Row of each token id (model2vec), when not the identity.
    mapping: Option<Vec<usize>>,
    /// Whether the tokenizer's unknown token is left out (model2vec).
    pub skip_unknown: bool,
}

impl StaticModel {
    /// Loads `model.safetensors` (tensor `embeddings` or `embedding.weight`) and the
    /// optional `config.json`; returns whether vectors are normalised by default.
    pub(crate) fn load(files: &mut ModelDir) -> Result<(Self, bool), ModelError> {
        // Without a config (wordllama), vectors are plain means, as wordllama's `embed` returns.
        let config = if files.has("config.json") { files.json("config.json")? } else { StaticConfig { normalize: false, seq_length: None } };
        let mut tensors = files.tensors("model.safetensors")?;
        let Some(name) = tensors.first_of(&["embeddings", "embedding.weight"]) else {
            return Err(ModelError::invalid(
                tensors.path(),
                format!("not a static embedding model: no `embeddings` or `embedding.weight` tensor (has: {})", tensors.names().join(", ")),
            ));
        };
        let [vocab, dim] = tensors.shape(name).and_then(|s| <[usize; 2]>::try_from(s).ok()).unwrap_or([0, 0]);
        if vocab == 0 || dim == 0 {
            return Err(ModelError::invalid(tensors.path(), format!("tensor `{name}` must be a non-empty vocab x dim matrix")));
        }
        let table = tensors.take(name, &[vocab, dim])?;
        let model2vec = name == "embeddings";
        let weights = match tensors.shape("weights").map(<[usize]>::to_vec) {
            Some(shape) => Some(tensors.take("weights", &shape)?),
            None => None,
        };
        let mapping = match tensors.shape("mapping").map(<[usize]>::to_vec) {
            Some(shape) => {
                let rows = tensors.take_integers("mapping", &shape)?;
                if let Some(bad) = rows.iter().find(|&&r| r < 0 || r as usize >= vocab) {
                    return Err(ModelError::invalid(tensors.path(), format!("tensor `mapping` points at row {bad}, outside the {vocab} rows")));
                }
                Some(rows.into_iter().map(|r| r as usize).collect())
            }
            None => None,
        };
        let max_tokens = config.seq_length.or(model2vec.then_some(MODEL2VEC_MAX_TOKENS));
        let model = StaticModel { table, rows: vocab, dim, max_tokens, weights, mapping, skip_unknown: model2vec };
        Ok((model, config.normalize))
    }

    pub(crate) fn dim(&self) -> usize {
        self.dim
    }

    pub(crate) fn max_tokens(&self) -> Option<usize> {
        self.max_tokens
    }

    /// The (weighted) mean of the vectors of `ids`, zeros for no tokens; ids outside the
    /// table are skipped.
    pub(crate) fn embed(&self, ids: &[u32]) -> Vec<f32> {
        let mut out = vec![0.0f32; self.dim];
        let mut n = 0usize;
        for &id in ids {
            let id = id as usize;
            let row = match &self.mapping {
                Some(m) => m.get(id).copied(),
                None => Some(id),
            };
            let Some(row) = row.filter(|&r| r < self.rows) else { continue };
            let w = self.weights.as_ref().map_or(1.0, |w| w.get(id).copied().unwrap_or(1.0));
            out.iter_mut().zip(&self.table[row * self.dim..(row + 1) * self.dim]).for_each(|(o, v)| *o += w * v);
            n += 1;
        }
        if n > 0 {
            out.iter_mut().for_each(|o| *o /= n as f32);
        }
        out
    }
}
