//! Text embeddings and model scores from local model files, in pure Rust:
//!
//! * [`Embedder`]: a BERT-family sentence encoder (a sentence-transformers snapshot: mean or
//!   CLS pooling, normalisation as its modules say) or a static embedding model (a tokenizer
//!   and an embedding matrix, model2vec / wordllama style);
//! * [`Scorer`]: a BERT classification or regression head (`BertForSequenceClassification`).
//!
//! Models are directories of local files; nothing is downloaded. Each model has a digest of
//! every file it read, so callers can key cached outputs on the weights. Like the other
//! algorithm crates, this one knows nothing of Arrow or pipelines.

mod bert;
mod error;
mod files;
mod static_model;
mod tokenize;

use std::path::Path;

use rayon::prelude::*;
use serde::Deserialize;

use crate::bert::{Bert, BertConfig, Linear, Scratch};
pub use crate::error::ModelError;
use crate::files::ModelDir;
use crate::static_model::StaticModel;
use crate::tokenize::TextTokenizer;

/// How an encoder turns token states into one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The mean over every token, special tokens included (sentence-transformers' default).
    Mean,
    /// The state of the first token ([CLS]).
    Cls,
}

/// Settings a caller may override; `None` keeps what the model's files say.
#[derive(Debug, Clone, Default)]
pub struct EmbedOptions {
    /// Longest sequence in tokens, special tokens included; longer texts are truncated.
    pub max_tokens: Option<usize>,
    /// Scale every vector to unit length.
    pub normalize: Option<bool>,
}

enum Model {
    Bert { bert: Bert, pooling: Pooling },
    Static(StaticModel),
}

/// A text embedding model loaded from a directory.
pub struct Embedder {
    model: Model,
    tokenizer: TextTokenizer,
    normalize: bool,
    dim: usize,
    digest: String,
}

/// sentence-transformers' `sentence_bert_config.json`.
#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

/// sentence-transformers' `1_Pooling/config.json`.
#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
}

/// One module of sentence-transformers' `modules.json`.
#[derive(Deserialize)]
struct ModuleEntry {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    path: String,
}

impl Embedder {
    /// Loads the model in `dir`: a BERT encoder when `config.json` says `model_type: bert`,
    /// otherwise a static model (`model.safetensors` holding one embedding matrix).
    pub fn load(dir: &Path, options: &EmbedOptions) -> Result<Self, ModelError> {
        let mut files = ModelDir::open(dir)?;
        // model2vec snapshots carry a config.json too, with model_type `model2vec`.
        let is_bert = files.has("config.json") && {
            let config: serde_json::Value = files.json("config.json")?;
            config.get("model_type").and_then(serde_json::Value::as_str).is_some_and(|t| t != "model2vec")
        };
        let embedder = if is_bert { Self::load_bert(files, options)? } else { Self::load_static(files, options)? };
        Ok(embedder)
    }

    fn load_bert(mut files: ModelDir, options: &EmbedOptions) -> Result<Self, ModelError> {
        let config = BertConfig::load(&mut files)?;
        let mut pooling = Pooling::Mean;
        let mut normalize = false;
        if files.has("modules.json") {
            let modules: Vec<ModuleEntry> = files.json("modules.json")?;
            for module in &modules {
                if module.kind.ends_with(".Normalize") {
                    normalize = true;
                } else if module.kind.ends_with(".Pooling") {
                    let name = format!("{}/config.json", module.path);
                    let p: PoolingConfig = files.json(&name)?;
                    pooling = match (p.pooling_mode_cls_token, p.pooling_mode_mean_tokens) {
                        (true, false) => Pooling::Cls,
                        (false, true) => Pooling::Mean,
                        _ => return Err(ModelError::invalid(files.path(&name), "only mean or CLS pooling (one of them) is supported")),
                    };
                } else if !module.kind.ends_with(".Transformer") {
                    return Err(ModelError::invalid(files.path("modules.json"), format!("module `{}` is not supported (Transformer, Pooling, Normalize are)", module.kind)));
                }
            }
        }
        let mut max_tokens = config.max_position_embeddings;
        if files.has("sentence_bert_config.json") {
            let sb: SentenceBertConfig = files.json("sentence_bert_config.json")?;
            max_tokens = sb.max_seq_length.unwrap_or(max_tokens).min(max_tokens);
        }
        let max_tokens = options.max_tokens.unwrap_or(max_tokens).min(config.max_position_embeddings);
        let tokenizer = TextTokenizer::load(&mut files, Some(max_tokens), true)?;
        let mut tensors = files.tensors("model.safetensors")?;
        let prefix = bert::prefix(&tensors)?;
        let dim = config.hidden_size;
        let bert = Bert::load(config, &mut tensors, prefix)?;
        Ok(Embedder {
            model: Model::Bert { bert, pooling },
            tokenizer,
            normalize: options.normalize.unwrap_or(normalize),
            dim,
            digest: files.digest(),
        })
    }

    fn load_static(mut files: ModelDir, options: &EmbedOptions) -> Result<Self, ModelError> {
        let (model, normalize) = StaticModel::load(&mut files)?;
        let mut tokenizer = TextTokenizer::load(&mut files, options.max_tokens.or(model.max_tokens()), false)?;
        if model.skip_unknown {
            tokenizer.skip_unknown();
        }
        Ok(Embedder { dim: model.dim(), model: Model::Static(model), tokenizer, normalize: options.normalize.unwrap_or(normalize), digest: files.digest() })
    }

    /// Length of each vector.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// `"bert"` or `"static"`.
    pub fn kind(&self) -> &'static str {
        match self.model {
            Model::Bert { .. } => "bert",
            Model::Static(_) => "static",
        }
    }

    /// Digest of every file the model read (weights, tokenizer, configs).
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The token ids the model sees for `text` (after truncation).
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        self.tokenizer.ids(text)
    }

    /// Embeds `texts`, `dim()` floats per text in order; texts run in parallel.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<f32>, ModelError> {
        let ids: Vec<Vec<u32>> = texts.par_iter().map(|t| self.tokenizer.ids(t)).collect::<Result<_, _>>()?;
        let mut vectors: Vec<f32> = match &self.model {
            Model::Static(model) => ids.par_iter().flat_map_iter(|ids| model.embed(ids)).collect(),
            Model::Bert { bert, pooling } => grouped(bert, &ids, |hidden, seqs| {
                let mut out = Vec::with_capacity(seqs.len() * self.dim);
                for states in sequence_states(bert, hidden, seqs) {
                    match pooling {
                        Pooling::Cls => out.extend_from_slice(&states[..self.dim]),
                        Pooling::Mean => out.extend(mean_rows(states, self.dim)),
                    }
                }
                out
            }),
        };
        if self.normalize {
            vectors.chunks_exact_mut(self.dim).for_each(normalize);
        }
        Ok(vectors)
    }
}

/// Tokens per group of sequences the encoder runs at once: enough rows for efficient matrix
/// products, few enough groups wait for the slowest.
const GROUP_TOKENS: usize = 2048;

/// Consecutive runs of sequences holding about `tokens` tokens each (a longer sequence alone).
fn token_groups(ids: &[Vec<u32>], tokens: usize) -> Vec<std::ops::Range<usize>> {
    let mut groups = Vec::new();
    let (mut start, mut count) = (0, 0);
    for (i, seq) in ids.iter().enumerate() {
        if count > 0 && count + seq.len() > tokens {
            groups.push(start..i);
            (start, count) = (i, 0);
        }
        count += seq.len();
    }
    if start < ids.len() {
        groups.push(start..ids.len());
    }
    groups
}

/// `per_group` of the last hidden states of each group of about [`GROUP_TOKENS`] tokens of
/// `ids` (and the group's sequences), groups in parallel, outputs concatenated in order.
fn grouped(bert: &Bert, ids: &[Vec<u32>], per_group: impl Fn(&[f32], &[&[u32]]) -> Vec<f32> + Sync) -> Vec<f32> {
    let parts: Vec<Vec<f32>> = token_groups(ids, GROUP_TOKENS)
        .par_iter()
        .map_init(Scratch::default, |scratch, group| {
            let seqs: Vec<&[u32]> = ids[group.clone()].iter().map(Vec::as_slice).collect();
            per_group(bert.forward(&seqs, scratch), &seqs)
        })
        .collect();
    parts.concat()
}

/// Each sequence's rows of `hidden`, the stacked states `Bert::forward` returned for `seqs`.
fn sequence_states<'h>(bert: &Bert, hidden: &'h [f32], seqs: &[&[u32]]) -> Vec<&'h [f32]> {
    let h = bert.config.hidden_size;
    let mut row = 0;
    seqs.iter()
        .map(|seq| {
            let len = seq.len().min(bert.config.max_position_embeddings);
            let states = &hidden[row * h..(row + len) * h];
            row += len;
            states
        })
        .collect()
}

/// The mean of the rows of a row-major matrix with `dim` columns (zeros when it has none).
fn mean_rows(x: &[f32], dim: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; dim];
    let rows = x.len() / dim;
    for row in x.chunks_exact(dim) {
        out.iter_mut().zip(row).for_each(|(o, v)| *o += v);
    }
    if rows > 0 {
        out.iter_mut().for_each(|o| *o /= rows as f32);
    }
    out
}

/// Scales `v` to unit length, as `torch.nn.functional.normalize` does (eps 1e-12).
fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
}

/// A BERT model with a sequence classification or regression head.
pub struct Scorer {
    bert: Bert,
    pooler: Linear,
    classifier: Linear,
    labels: Vec<String>,
    regression: bool,
    tokenizer: TextTokenizer,
    digest: String,
}

impl Scorer {
    /// Loads a `BertForSequenceClassification` directory (config.json, tokenizer.json,
    /// model.safetensors).
    pub fn load(dir: &Path, options: &EmbedOptions) -> Result<Self, ModelError> {
        let mut files = ModelDir::open(dir)?;
        let config = BertConfig::load(&mut files)?;
        let max_tokens = options.max_tokens.unwrap_or(config.max_position_embeddings).min(config.max_position_embeddings);
        let tokenizer = TextTokenizer::load(&mut files, Some(max_tokens), true)?;
        let mut tensors = files.tensors("model.safetensors")?;
        let prefix = bert::prefix(&tensors)?;
        let h = config.hidden_size;
        let Some([labels_n, _]) = tensors.shape("classifier.weight").map(|s| <[usize; 2]>::try_from(s).unwrap_or([0, 0])) else {
            return Err(ModelError::invalid(tensors.path(), format!("no classification head (`classifier.weight`); tensors: {}", tensors.names().join(", "))));
        };
        let pooler = Linear::load(&mut tensors, &format!("{prefix}pooler.dense"), h, h)?;
        let classifier = Linear::load(&mut tensors, "classifier", h, labels_n)?;
        let labels = (0..labels_n).map(|i| config.id2label.get(&i.to_string()).cloned().unwrap_or_else(|| format!("LABEL_{i}"))).collect();
        let regression = config.problem_type.as_deref() == Some("regression") || (labels_n == 1 && config.problem_type.is_none());
        let bert = Bert::load(config, &mut tensors, prefix)?;
        Ok(Scorer { bert, pooler, classifier, labels, regression, tokenizer, digest: files.digest() })
    }

    /// Names of the outputs, in order (`id2label`).
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Whether the head is a regression (one raw score) rather than classes.
    pub fn is_regression(&self) -> bool {
        self.regression
    }

    /// Digest of every file the model read.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The token ids the model sees for `text` (after truncation).
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        self.tokenizer.ids(text)
    }

    /// The head's logits, `labels().len()` per text in order; texts run in parallel.
    pub fn logits(&self, texts: &[&str]) -> Result<Vec<f32>, ModelError> {
        let ids: Vec<Vec<u32>> = texts.par_iter().map(|t| self.tokenizer.ids(t)).collect::<Result<_, _>>()?;
        let h = self.bert.config.hidden_size;
        Ok(grouped(&self.bert, &ids, |hidden, seqs| {
            // The [CLS] row of each sequence through the pooler (tanh) and the head, one row
            // per product: gemm's one-row path rounds differently from its many-row one, and a
            // text's logits must not depend on the texts grouped with it.
            let mut logits = Vec::with_capacity(seqs.len() * self.labels.len());
            let (mut pooled, mut out) = (Vec::new(), Vec::new());
            for states in sequence_states(&self.bert, hidden, seqs) {
                self.pooler.forward(&states[..h], 1, &mut pooled);
                pooled.iter_mut().for_each(|v| *v = v.tanh());
                self.classifier.forward(&pooled, 1, &mut out);
                logits.extend_from_slice(&out);
            }
            logits
        }))
    }
}
