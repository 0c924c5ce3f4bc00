//! `embed`: a vector per text from a local sentence encoder (BERT family, as
//! sentence-transformers computes it) or a static embedding model, as a fixed-size list column.

use std::sync::Arc;

use arrow_array::{FixedSizeListArray, Float32Array, RecordBatch};
use arrow_buffer::NullBuffer;
use arrow_schema::{DataType, Field};
use curate_core::operator::{BuildContext, BuiltinOp, Columns, OpError, OpKind, OpOutput, Operator};
use curate_embed::{EmbedOptions, Embedder};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{load_encoder, present};
use crate::util::{string_column, with_columns};

/// Parameters of `embed`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbedParams {
    /// Model directory: a sentence-transformers / Hugging Face BERT snapshot (config.json,
    /// tokenizer.json, model.safetensors) or a static model (tokenizer.json and a
    /// model.safetensors holding one embedding matrix).
    pub model: String,
    /// Column holding the text.
    #[serde(default = "crate::util::text_column")]
    pub column: String,
    /// Column receiving the vectors (fixed-size list of float32; null for null text).
    #[serde(default = "default_output")]
    pub output: String,
    /// Longest input in tokens, special tokens included; longer texts are truncated. Default:
    /// the model's (max_seq_length of sentence-transformers, else its position table).
    #[serde(default)]
    pub max_tokens: Option<usize>,
    /// Scale vectors to unit length. Default: as the model's files say (a Normalize module).
    #[serde(default)]
    pub normalize: Option<bool>,
}

fn default_output() -> String {
    "embedding".into()
}

/// Sentence embeddings from a local model.
pub struct Embed {
    params: EmbedParams,
    embedder: Embedder,
}

impl BuiltinOp for Embed {
    const NAME: &'static str = "embed";
    const VERSION: &'static str = "1";
    const KIND: OpKind = OpKind::Annotate;
    const SUMMARY: &'static str = "Embedding vector per text from a local BERT-family sentence encoder or static embedding model";
    type Params = EmbedParams;

    fn new(params: Self::Params) -> Result<Self, String> {
        Self::new_in(params, &BuildContext::default())
    }

    fn new_in(params: Self::Params, ctx: &BuildContext) -> Result<Self, String> {
        let options = EmbedOptions { max_tokens: params.max_tokens, normalize: params.normalize };
        let embedder = load_encoder(Embedder::load, &params.model, ctx, options)?;
        Ok(Embed { params, embedder })
    }
}

impl Embed {
    /// The list type of the output column.
    fn output_type(&self) -> DataType {
        DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, false)), self.embedder.dim() as i32)
    }
}

impl Operator for Embed {
    fn columns(&self) -> Columns {
        Columns { reads: vec![self.params.column.clone()], writes: vec![(self.params.output.clone(), self.output_type())] }
    }

    fn process(&self, batch: RecordBatch) -> Result<OpOutput, OpError> {
        let column = string_column(&batch, &self.params.column)?;
        let (rows, texts) = present(column);
        let vectors = self.embedder.embed(&texts).map_err(|e| OpError(e.to_string()))?;
        let array = vector_column(&self.embedder, batch.num_rows(), &rows, &vectors)?;
        Ok(OpOutput { batch: with_columns(&batch, vec![(&self.params.output, Arc::new(array))])?, verdicts: None })
    }

    fn content_key(&self) -> Option<String> {
        Some(format!("model {}", self.embedder.digest()))
    }
}

/// A fixed-size list column of `n` rows holding `vectors` at `rows` and nulls elsewhere.
fn vector_column(embedder: &Embedder, n: usize, rows: &[usize], vectors: &[f32]) -> Result<FixedSizeListArray, OpError> {
    let dim = embedder.dim();
    let mut values = vec![0.0f32; n * dim];
    let mut valid = vec![false; n];
    for (i, &row) in rows.iter().enumerate() {
        values[row * dim..(row + 1) * dim].copy_from_slice(&vectors[i * dim..(i + 1) * dim]);
        valid[row] = true;
    }
    let nulls = (rows.len() < n).then(|| NullBuffer::from(valid));
    let field = Arc::new(Field::new("item", DataType::Float32, false));
    FixedSizeListArray::try_new(field, dim as i32, Arc::new(Float32Array::from(values)), nulls).map_err(|e| OpError(e.to_string()))
}
