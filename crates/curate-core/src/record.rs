//! The record data model: reserved column names and batch shaping helpers.

use std::sync::Arc;

use arrow_array::{new_null_array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};

/// Stable record id (string).
pub const ID: &str = "id";
/// Text payload.
pub const TEXT: &str = "text";
/// Where the record came from: struct of `file`, `byte_offset` (JSONL) and `row` (Parquet).
pub const SOURCE: &str = "_source";
/// Input fields that did not fit the inferred metadata columns, as a JSON object.
pub const EXTRA: &str = "_extra";
/// Field metadata key marking a Utf8 column that holds JSON text (nested input values).
pub const JSON_METADATA_KEY: &str = "curate.json";

/// Rejects: name of the operator that dropped the record.
pub const REJECT_STEP: &str = "step";
/// Rejects: index of the step in the pipeline.
pub const REJECT_STEP_INDEX: &str = "step_index";
/// Rejects: `operator:rule` reason.
pub const REJECT_REASON: &str = "reason";

/// A nullable Utf8 field marked as holding JSON text.
pub fn json_text_field(name: &str) -> Field {
    let metadata: std::collections::HashMap<String, String> =
        [(JSON_METADATA_KEY.to_string(), "true".to_string())].into_iter().collect();
    Field::new(name, DataType::Utf8, true).with_metadata(metadata)
}

/// Fields of the `_source` struct column.
pub fn source_fields() -> Fields {
    Fields::from(vec![
        Field::new("file", DataType::Utf8, false),
        Field::new("byte_offset", DataType::UInt64, true),
        Field::new("row", DataType::UInt64, true),
    ])
}

/// The schema every input produces: id, text, the given metadata fields, `_source`, `_extra`.
pub fn input_schema(metadata: Vec<Field>) -> SchemaRef {
    let mut fields = vec![Field::new(ID, DataType::Utf8, false), Field::new(TEXT, DataType::Utf8, false)];
    fields.extend(metadata);
    fields.push(Field::new(SOURCE, DataType::Struct(source_fields()), false));
    fields.push(Field::new(EXTRA, DataType::Utf8, true));
    Arc::new(Schema::new(fields))
}

/// Applies an operator's column writes to a schema: overwritten columns keep their place,
/// new ones are appended.
pub fn with_writes(schema: &Schema, writes: &[(String, DataType)]) -> SchemaRef {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    for (name, ty) in writes {
        match fields.iter_mut().find(|f| f.name() == name) {
            Some(f) => *f = Field::new(name, ty.clone(), true),
            None => fields.push(Field::new(name, ty.clone(), true)),
        }
    }
    Arc::new(Schema::new(fields))
}

/// The schema of rejects files: id, step, step index, reason, then every other column the
/// pipeline can produce (nullable, as earlier steps have not computed later columns).
pub fn rejects_schema(full: &Schema) -> SchemaRef {
    let mut fields = vec![
        Field::new(ID, DataType::Utf8, false),
        Field::new(REJECT_STEP, DataType::Utf8, false),
        Field::new(REJECT_STEP_INDEX, DataType::UInt32, false),
        Field::new(REJECT_REASON, DataType::Utf8, false),
    ];
    fields.extend(full.fields().iter().filter(|f| f.name() != ID).map(|f| f.as_ref().clone().with_nullable(true)));
    Arc::new(Schema::new(fields))
}

/// Error shaping a batch to a schema.
#[derive(Debug, thiserror::Error)]
#[error("column `{column}`: {message}")]
pub struct ShapeError {
    /// The offending column.
    pub column: String,
    /// What is wrong.
    pub message: String,
}

/// Reorders `batch`'s columns to `schema` by name, filling columns the batch lacks with nulls.
/// `extra` supplies columns by name that take precedence over the batch's own.
pub fn conform(batch: &RecordBatch, schema: &SchemaRef, extra: &[(&str, ArrayRef)]) -> Result<RecordBatch, ShapeError> {
    let rows = batch.num_rows();
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            let col = extra
                .iter()
                .find(|(n, _)| *n == f.name())
                .map(|(_, c)| c.clone())
                .or_else(|| batch.column_by_name(f.name()).cloned());
            match col {
                Some(c) if c.data_type() == f.data_type() => Ok(c),
                Some(c) => Err(ShapeError {
                    column: f.name().clone(),
                    message: format!("has type {} where {} was declared", c.data_type(), f.data_type()),
                }),
                None if f.is_nullable() => Ok(new_null_array(f.data_type(), rows)),
                None => Err(ShapeError { column: f.name().clone(), message: "is missing".into() }),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| ShapeError { column: String::new(), message: e.to_string() })
}
