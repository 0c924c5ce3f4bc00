//! `fasttext_classify`: a fastText model (`.bin` or quantized `.ftz`, read by
//! `curate-fasttext`) labels each text: top label and probability, and the probability of
//! chosen labels, as columns for a later `select` (DCLM-style quality filtering, say).

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Float64Array, RecordBatch, StringArray};
use arrow_schema::DataType;
use curate_core::operator::{BuildContext, BuiltinOp, Columns, OpError, OpKind, OpOutput, Operator};
use curate_fasttext::{FastText, Prediction};
use rayon::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::model_path;
use crate::util::{string_column, with_columns};

/// fastText's default label prefix, left out of label columns and names.
const LABEL_PREFIX: &str = "__label__";

/// Parameters of `fasttext_classify`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FastTextClassifyParams {
    /// fastText model file (`.bin`, or `.ftz` quantized).
    pub model: String,
    /// Column holding the text (newlines count as spaces, one prediction per text).
    #[serde(default = "crate::util::text_column")]
    pub column: String,
    /// Prefix of the output columns: `<output>_label` (top label, without `__label__`) and
    /// `<output>_prob` (its probability, as fastText reports it).
    #[serde(default = "default_output")]
    pub output: String,
    /// Labels (without `__label__`) whose probability gets a column `<output>_<label>` of its
    /// own, for thresholds on a class that is not always the top one (e.g. `hq`).
    #[serde(default)]
    pub labels: Vec<String>,
}

fn default_output() -> String {
    "fasttext".into()
}

/// Loads a fastText model, naming the parameter in errors.
pub(crate) fn load_model(model: &str, ctx: &BuildContext) -> Result<(FastText, String), String> {
    let path = model_path(model, ctx);
    let bytes = std::fs::read(&path).map_err(|e| format!("model: {}: {e}", path.display()))?;
    let digest = blake3::hash(&bytes).to_hex().to_string();
    let model = FastText::read(bytes.as_slice()).map_err(|e| format!("model: {}: {e}", path.display()))?;
    Ok((model, digest))
}

/// A label without fastText's prefix.
pub(crate) fn label_name(label: &str) -> &str {
    label.strip_prefix(LABEL_PREFIX).unwrap_or(label)
}

/// `f` of the `k` best predictions of each present text, `None` for nulls; rows in parallel,
/// one predictor (scratch buffers) per worker.
fn per_row<T: Send>(model: &FastText, texts: &StringArray, k: usize, f: impl Fn(&[Prediction]) -> T + Sync) -> Vec<Option<T>> {
    (0..texts.len())
        .into_par_iter()
        .map_init(|| model.predictor(), |p, row| texts.is_valid(row).then(|| f(p.predict(texts.value(row), k, 0.0))))
        .collect()
}

/// The top label and probability of each present text, `None` for nulls.
pub(crate) fn top_labels<'m>(model: &'m FastText, texts: &StringArray) -> Vec<Option<(&'m str, f32)>> {
    per_row(model, texts, 1, |best| best.first().map_or(("", 0.0), |pr| (label_name(&model.labels()[pr.label]), pr.prob)))
}

/// fastText classification into columns.
pub struct FastTextClassify {
    params: FastTextClassifyParams,
    model: FastText,
    digest: String,
    /// For each of `params.labels`: its index in the model and its column.
    label_columns: Vec<(usize, String)>,
}

impl BuiltinOp for FastTextClassify {
    const NAME: &'static str = "fasttext_classify";
    const VERSION: &'static str = "1";
    const KIND: OpKind = OpKind::Annotate;
    const SUMMARY: &'static str = "Top label and probability (and chosen labels' probabilities) from a local fastText .bin/.ftz model";
    type Params = FastTextClassifyParams;

    fn new(params: Self::Params) -> Result<Self, String> {
        Self::new_in(params, &BuildContext::default())
    }

    fn new_in(params: Self::Params, ctx: &BuildContext) -> Result<Self, String> {
        let (model, digest) = load_model(&params.model, ctx)?;
        let mut seen = BTreeSet::new();
        let mut label_columns = Vec::new();
        for wanted in &params.labels {
            let wanted = label_name(wanted);
            let Some(index) = model.labels().iter().position(|l| label_name(l) == wanted) else {
                let known: Vec<&str> = model.labels().iter().map(|l| label_name(l)).take(20).collect();
                return Err(format!("labels: the model has no label `{wanted}`; its labels: {}", known.join(", ")));
            };
            if seen.insert(index) {
                label_columns.push((index, format!("{}_{wanted}", params.output)));
            }
        }
        Ok(FastTextClassify { params, model, digest, label_columns })
    }
}

impl FastTextClassify {
    fn label_column(&self) -> String {
        format!("{}_label", self.params.output)
    }

    fn prob_column(&self) -> String {
        format!("{}_prob", self.params.output)
    }
}

impl Operator for FastTextClassify {
    fn columns(&self) -> Columns {
        let mut writes = vec![(self.label_column(), DataType::Utf8), (self.prob_column(), DataType::Float64)];
        writes.extend(self.label_columns.iter().map(|(_, c)| (c.clone(), DataType::Float64)));
        Columns { reads: vec![self.params.column.clone()], writes }
    }

    fn process(&self, batch: RecordBatch) -> Result<OpOutput, OpError> {
        let texts = string_column(&batch, &self.params.column)?;
        let wanted = !self.label_columns.is_empty();
        let labels = self.model.labels().len();
        // Per row: top label, its probability, and (when labels are asked for) every label's.
        let k = if wanted { labels } else { 1 };
        let rows: Vec<Option<(usize, f32, Vec<f32>)>> = per_row(&self.model, texts, k, |predictions| {
            let (top, prob) = predictions.first().map_or((usize::MAX, 0.0), |pr| (pr.label, pr.prob));
            let mut all = Vec::new();
            if wanted {
                all = vec![0.0; labels];
                predictions.iter().for_each(|pr| all[pr.label] = pr.prob);
            }
            (top, prob, all)
        });
        let name = |i: usize| self.model.labels().get(i).map(|l| label_name(l));
        let top: StringArray = rows.iter().map(|r| r.as_ref().and_then(|(t, _, _)| name(*t))).collect();
        let prob: Float64Array = rows.iter().map(|r| r.as_ref().map(|(_, p, _)| f64::from(*p))).collect();
        let (label_col, prob_col) = (self.label_column(), self.prob_column());
        let mut columns: Vec<(&str, ArrayRef)> = vec![(&label_col, Arc::new(top)), (&prob_col, Arc::new(prob))];
        for (index, column) in &self.label_columns {
            let values: Float64Array = rows.iter().map(|r| r.as_ref().map(|(_, _, all)| f64::from(all[*index]))).collect();
            columns.push((column, Arc::new(values)));
        }
        Ok(OpOutput { batch: with_columns(&batch, columns)?, verdicts: None })
    }

    fn content_key(&self) -> Option<String> {
        Some(format!("model {}", self.digest))
    }
}
