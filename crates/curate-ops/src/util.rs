//! Column access shared by operators.

use arrow_array::{RecordBatch, StringArray};
use curate_core::operator::OpError;

/// The Utf8 column `name` of `batch`, or an error naming what is there instead.
pub fn string_column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray, OpError> {
    let col = batch.column_by_name(name).ok_or_else(|| OpError(format!("column `{name}` is missing")))?;
    col.as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| OpError(format!("column `{name}` is {}, not a string column", col.data_type())))
}
