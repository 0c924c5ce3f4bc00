//! Column access shared by operators.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{Field, Schema};
use curate_core::operator::OpError;
use curate_core::record::TEXT;

/// The default of an operator's text-column parameter: the record's `text`.
pub fn text_column() -> String {
    TEXT.into()
}

/// The Utf8 column `name` of `batch`, or an error naming what is there instead.
pub fn string_column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray, OpError> {
    let col = batch.column_by_name(name).ok_or_else(|| OpError(format!("column `{name}` is missing")))?;
    col.as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| OpError(format!("column `{name}` is {}, not a string column", col.data_type())))
}

/// `batch` with each of `columns` replacing the column of the same name, or appended when
/// there is none; new columns are nullable and typed by their array, a replaced one becomes
/// nullable when its new array holds nulls.
pub fn with_columns(batch: &RecordBatch, columns: Vec<(&str, ArrayRef)>) -> Result<RecordBatch, OpError> {
    let mut fields: Vec<Field> = batch.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut arrays: Vec<ArrayRef> = batch.columns().to_vec();
    for (name, array) in columns {
        match fields.iter().position(|f| f.name() == name) {
            Some(i) => {
                let nullable = fields[i].is_nullable() || array.null_count() > 0;
                fields[i] = fields[i].clone().with_data_type(array.data_type().clone()).with_nullable(nullable);
                arrays[i] = array;
            }
            None => {
                fields.push(Field::new(name, array.data_type().clone(), true));
                arrays.push(array);
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| OpError(e.to_string()))
}
