//! `html_extract`: replaces HTML pages by their main-content text.

use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use curate_core::operator::{BuiltinOp, Columns, OpError, OpKind, OpOutput, Operator, Verdicts};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::util::string_column;

/// Parameters of `html_extract`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HtmlExtractParams {
    /// Column holding the HTML page. Every input has a `text` column (`input.text_field`
    /// names the field it comes from), so pages read with `text_field: html` are here.
    #[serde(default = "crate::util::text_column")]
    pub input_column: String,
    /// Column receiving the extracted text; equal to `input_column`, the text replaces the page.
    #[serde(default = "crate::util::text_column")]
    pub output_column: String,
}

impl Default for HtmlExtractParams {
    fn default() -> Self {
        HtmlExtractParams { input_column: crate::util::text_column(), output_column: crate::util::text_column() }
    }
}

/// Extracts main-content text from HTML and drops pages that have none.
pub struct HtmlExtract {
    params: HtmlExtractParams,
}

impl BuiltinOp for HtmlExtract {
    const NAME: &'static str = "html_extract";
    const VERSION: &'static str = "1";
    const KIND: OpKind = OpKind::Map;
    const SUMMARY: &'static str = "Main-content text of HTML pages (navigation, headers, footers, sidebars, scripts, forms and cookie banners removed; paragraphs, headings, lists, tables and code kept); drops pages with no text";
    type Params = HtmlExtractParams;

    fn new(params: Self::Params) -> Result<Self, String> {
        Ok(HtmlExtract { params })
    }
}

impl Operator for HtmlExtract {
    fn columns(&self) -> Columns {
        Columns {
            reads: vec![self.params.input_column.clone()],
            writes: vec![(self.params.output_column.clone(), DataType::Utf8)],
        }
    }

    fn process(&self, batch: RecordBatch) -> Result<OpOutput, OpError> {
        let html = string_column(&batch, &self.params.input_column)?;
        let rows = batch.num_rows();
        let in_place = self.params.input_column == self.params.output_column;
        let mut out = StringBuilder::with_capacity(rows, html.value_data().len() / 4);
        let mut verdicts = Verdicts::keep_all(rows);
        for row in 0..rows {
            let text = if html.is_null(row) { String::new() } else { curate_html::extract(html.value(row)) };
            if text.is_empty() {
                verdicts.drop_row(row, "html_extract:empty");
                // A rejected page keeps its HTML when it would otherwise be overwritten, so
                // the rejects show what was judged empty.
                out.append_option((in_place && html.is_valid(row)).then(|| html.value(row)));
            } else {
                out.append_value(text);
            }
        }
        let array: ArrayRef = Arc::new(out.finish());
        let schema = batch.schema();
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        let mut arrays: Vec<ArrayRef> = batch.columns().to_vec();
        let field = Field::new(&self.params.output_column, DataType::Utf8, true);
        match schema.index_of(&self.params.output_column) {
            Ok(i) => {
                fields[i] = field;
                arrays[i] = array;
            }
            Err(_) => {
                fields.push(field);
                arrays.push(array);
            }
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| OpError(e.to_string()))?;
        Ok(OpOutput { batch, verdicts: Some(verdicts) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use arrow_array::StringArray;

    fn batch(pages: Vec<Option<&str>>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("text", DataType::Utf8, true)]));
        RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(pages))]).unwrap()
    }

    fn run(params: HtmlExtractParams, pages: Vec<Option<&str>>) -> (RecordBatch, Vec<Option<String>>) {
        let out = HtmlExtract::new(params).unwrap().process(batch(pages)).unwrap();
        let v = out.verdicts.unwrap();
        let reasons = (0..v.len()).map(|i| v.reason(i).map(|r| r.to_string())).collect();
        (out.batch, reasons)
    }

    fn strings(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
        let col = batch.column_by_name(name).unwrap().as_any().downcast_ref::<StringArray>().unwrap();
        (0..col.len()).map(|i| col.is_valid(i).then(|| col.value(i).to_string())).collect()
    }

    const PAGE: &str = "<html><body><nav><a href=/>Home</a></nav><main><h1>Title</h1><p>Body &amp; soul.</p></main></body></html>";

    #[test]
    fn replaces_pages_in_place_and_drops_empty_ones() {
        let blank = "<html><body><nav><a href=/>Home</a></nav><script>x()</script></body></html>";
        let (batch, reasons) = run(HtmlExtractParams::default(), vec![Some(PAGE), Some(blank), None]);
        assert_eq!(reasons, vec![None, Some("html_extract:empty".into()), Some("html_extract:empty".into())]);
        assert_eq!(strings(&batch, "text"), vec![Some("Title\n\nBody & soul.".into()), Some(blank.into()), None]);
        assert_eq!(batch.num_columns(), 1);
    }

    #[test]
    fn writes_a_separate_column_when_asked() {
        let params = HtmlExtractParams { input_column: "text".into(), output_column: "content".into() };
        let (batch, reasons) = run(params, vec![Some(PAGE), Some("")]);
        assert_eq!(reasons, vec![None, Some("html_extract:empty".into())]);
        assert_eq!(strings(&batch, "text"), vec![Some(PAGE.into()), Some(String::new())]);
        assert_eq!(strings(&batch, "content"), vec![Some("Title\n\nBody & soul.".into()), None]);
    }

    #[test]
    fn names_a_missing_column() {
        let params = HtmlExtractParams { input_column: "html".into(), output_column: "text".into() };
        let err = HtmlExtract::new(params).unwrap().process(batch(vec![Some(PAGE)])).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("column `html` is missing"));
    }
}
