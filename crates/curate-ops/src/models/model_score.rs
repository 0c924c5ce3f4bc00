//! `model_score`: a BERT classification or regression head over each text (FineWeb-Edu style
//! educational-value scores, quality or toxicity classes), as columns for a later `select`.

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use arrow_schema::DataType;
use curate_core::operator::{BuildContext, BuiltinOp, Columns, OpError, OpKind, OpOutput, Operator};
use curate_embed::{EmbedOptions, Scorer};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{load_encoder, present};
use crate::util::{string_column, with_columns};

/// Parameters of `model_score`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelScoreParams {
    /// Model directory of a `BertForSequenceClassification` (config.json, tokenizer.json,
    /// model.safetensors).
    pub model: String,
    /// Column holding the text.
    #[serde(default = "crate::util::text_column")]
    pub column: String,
    /// Output column: the score of a regression head; for a classifier, the top label, with
    /// its probability in `<output>_prob`.
    #[serde(default = "default_output")]
    pub output: String,
    /// Longest input in tokens, special tokens included; longer texts are truncated. Default:
    /// the model's position table.
    #[serde(default)]
    pub max_tokens: Option<usize>,
}

fn default_output() -> String {
    "model_score".into()
}

/// Scores from a local BERT head.
pub struct ModelScore {
    params: ModelScoreParams,
    scorer: Scorer,
    prob_column: String,
}

impl BuiltinOp for ModelScore {
    const NAME: &'static str = "model_score";
    const VERSION: &'static str = "1";
    const KIND: OpKind = OpKind::Annotate;
    const SUMMARY: &'static str = "Score (regression) or top label and probability (classifier) per text from a local BERT head";
    type Params = ModelScoreParams;

    fn new(params: Self::Params) -> Result<Self, String> {
        Self::new_in(params, &BuildContext::default())
    }

    fn new_in(params: Self::Params, ctx: &BuildContext) -> Result<Self, String> {
        let options = EmbedOptions { max_tokens: params.max_tokens, normalize: None };
        let scorer = load_encoder(Scorer::load, &params.model, ctx, options)?;
        let prob_column = format!("{}_prob", params.output);
        Ok(ModelScore { params, scorer, prob_column })
    }
}

impl Operator for ModelScore {
    fn columns(&self) -> Columns {
        let writes = if self.scorer.is_regression() {
            vec![(self.params.output.clone(), DataType::Float64)]
        } else {
            vec![(self.params.output.clone(), DataType::Utf8), (self.prob_column.clone(), DataType::Float64)]
        };
        Columns { reads: vec![self.params.column.clone()], writes }
    }

    fn process(&self, batch: RecordBatch) -> Result<OpOutput, OpError> {
        let column = string_column(&batch, &self.params.column)?;
        let (rows, texts) = present(column);
        let logits = self.scorer.logits(&texts).map_err(|e| OpError(e.to_string()))?;
        let classes = self.scorer.labels().len();
        let n = batch.num_rows();
        let columns: Vec<(&str, ArrayRef)> = if self.scorer.is_regression() {
            let mut scores = vec![None; n];
            for (i, &row) in rows.iter().enumerate() {
                scores[row] = Some(f64::from(logits[i * classes]));
            }
            vec![(&self.params.output, Arc::new(Float64Array::from(scores)))]
        } else {
            let (mut labels, mut probs) = (vec![None; n], vec![None; n]);
            for (i, &row) in rows.iter().enumerate() {
                let (best, p) = top_softmax(&logits[i * classes..(i + 1) * classes]);
                labels[row] = Some(self.scorer.labels()[best].as_str());
                probs[row] = Some(p);
            }
            vec![(&self.params.output, Arc::new(StringArray::from(labels))), (&self.prob_column, Arc::new(Float64Array::from(probs)))]
        };
        Ok(OpOutput { batch: with_columns(&batch, columns)?, verdicts: None })
    }

    fn content_key(&self) -> Option<String> {
        Some(format!("model {}", self.scorer.digest()))
    }
}

/// The index of the largest logit and its softmax probability (the first on ties).
fn top_softmax(logits: &[f32]) -> (usize, f64) {
    let (best, max) = logits.iter().enumerate().fold((0, f32::NEG_INFINITY), |acc, (i, &v)| if v > acc.1 { (i, v) } else { acc });
    let sum: f64 = logits.iter().map(|&v| f64::from(v - max).exp()).sum();
    (best, 1.0 / sum)
}
