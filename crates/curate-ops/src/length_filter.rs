//! `length_filter`: drops records whose text is shorter or longer than bounds.

use arrow_array::{Array, RecordBatch};
use curate_core::operator::{BuiltinOp, Columns, OpError, OpKind, OpOutput, Operator, Verdicts};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::util::string_column;

/// Parameters of `length_filter`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LengthFilterParams {
    /// Drop records with fewer Unicode characters than this.
    pub min_chars: Option<usize>,
    /// Drop records with more Unicode characters than this.
    pub max_chars: Option<usize>,
    /// Column holding the text.
    #[serde(default = "crate::util::text_column")]
    pub column: String,
}

/// Keeps records whose text length (in characters) lies within bounds.
pub struct LengthFilter {
    params: LengthFilterParams,
}

impl BuiltinOp for LengthFilter {
    const NAME: &'static str = "length_filter";
    const VERSION: &'static str = "1";
    const KIND: OpKind = OpKind::Map;
    const SUMMARY: &'static str = "Drop records whose text has fewer than min_chars or more than max_chars characters";
    type Params = LengthFilterParams;

    fn new(params: Self::Params) -> Result<Self, String> {
        if let (Some(lo), Some(hi)) = (params.min_chars, params.max_chars) {
            if lo > hi {
                return Err(format!("min_chars ({lo}) is greater than max_chars ({hi})"));
            }
        }
        if params.min_chars.is_none() && params.max_chars.is_none() {
            return Err("set min_chars, max_chars or both".into());
        }
        Ok(LengthFilter { params })
    }
}

impl Operator for LengthFilter {
    fn columns(&self) -> Columns {
        Columns { reads: vec![self.params.column.clone()], writes: vec![] }
    }

    fn process(&self, batch: RecordBatch) -> Result<OpOutput, OpError> {
        let text = string_column(&batch, &self.params.column)?;
        let mut verdicts = Verdicts::keep_all(batch.num_rows());
        for row in 0..text.len() {
            // A null text has no length to judge; it is short of any minimum.
            let chars = if text.is_null(row) { 0 } else { text.value(row).chars().count() };
            if self.params.min_chars.is_some_and(|m| chars < m) {
                verdicts.drop_row(row, "length_filter:min_chars");
            } else if self.params.max_chars.is_some_and(|m| chars > m) {
                verdicts.drop_row(row, "length_filter:max_chars");
            }
        }
        Ok(OpOutput { batch, verdicts: Some(verdicts) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow_array::StringArray;
    use arrow_schema::{DataType, Field, Schema};

    fn batch(texts: &[&str]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("text", DataType::Utf8, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(texts.to_vec()))]).unwrap()
    }

    #[test]
    fn counts_characters_not_bytes() {
        let op = LengthFilter::new(LengthFilterParams { min_chars: Some(3), max_chars: Some(4), column: "text".into() }).unwrap();
        let out = op.process(batch(&["ab", "héé", "abcd", "abcde"])).unwrap();
        let v = out.verdicts.unwrap();
        let reasons: Vec<Option<&str>> = (0..4).map(|i| v.reason(i).map(|r| &**r)).collect();
        assert_eq!(reasons, vec![Some("length_filter:min_chars"), None, None, Some("length_filter:max_chars")]);
    }

    #[test]
    fn rejects_inverted_bounds() {
        let err = LengthFilter::new(LengthFilterParams { min_chars: Some(5), max_chars: Some(4), column: "text".into() }).err();
        assert_eq!(err.as_deref(), Some("min_chars (5) is greater than max_chars (4)"));
    }
}
