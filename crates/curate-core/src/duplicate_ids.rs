//! Input ids taken from the data (`id_field`) that occur more than once.
//!
//! `explain`, `forget` and the registry name records by id, so a second record with the same
//! id would be invisible to them. Each task checks the ids it reads against those it read
//! before and, by the spec's `on_duplicate_id`, counts them (and warns), quarantines the later
//! ones with their content, or fails.

use std::collections::HashSet;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type, UInt64Type, UInt8Type};
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, StructArray};
use arrow_schema::DataType;
use arrow_select::filter::filter_record_batch;

use crate::io::{BoxError, Chunk, Quarantined};
use crate::record;
use crate::spec::OnDuplicateId;

/// The ids one task has read so far.
pub(crate) struct IdCheck {
    policy: OnDuplicateId,
    /// 128-bit hashes of the ids: exact for any practical count, a fraction of the memory
    /// of the strings.
    seen: HashSet<u128>,
    /// Duplicates found so far.
    pub(crate) found: u64,
}

impl IdCheck {
    pub(crate) fn new(policy: OnDuplicateId) -> Self {
        IdCheck { policy, seen: HashSet::new(), found: 0 }
    }

    /// Applies the policy to a chunk just read from `file`.
    pub(crate) fn apply(&mut self, chunk: &mut Chunk, file: &str) -> Result<(), BoxError> {
        let batch = &chunk.batch;
        let ids = batch.column_by_name(record::ID).ok_or("input batch without an id column")?.as_string::<i32>();
        let mut dup = Vec::new();
        for (row, id) in ids.iter().enumerate() {
            let id = id.unwrap_or_default();
            let h = u128::from_le_bytes(blake3::hash(id.as_bytes()).as_bytes()[..16].try_into().unwrap_or_default());
            if !self.seen.insert(h) {
                dup.push(row);
            }
        }
        if dup.is_empty() {
            return Ok(());
        }
        self.found += dup.len() as u64;
        let at = |row: usize| location(batch, row);
        match self.policy {
            OnDuplicateId::Keep => {
                let first = dup[0];
                tracing::warn!(file, id = ids.value(first), at = %at(first), "record id seen before in this input; kept (input.on_duplicate_id: keep)");
            }
            OnDuplicateId::Fail => {
                let first = dup[0];
                return Err(format!(
                    "{file}: record id `{}` ({}) occurs more than once; set input.on_duplicate_id to `keep` or `quarantine` to go on",
                    ids.value(first),
                    at(first)
                )
                .into());
            }
            OnDuplicateId::Quarantine => {
                for &row in &dup {
                    let (byte_offset, src_row) = source_position(batch, row);
                    chunk.quarantined.push(Quarantined {
                        file: file.to_string(),
                        line: None,
                        byte_offset,
                        row: src_row,
                        error: format!("duplicate id `{}`: an earlier record of this input has it", ids.value(row)),
                        raw: row_json(batch, row).into_bytes(),
                    });
                }
                let mut keep = vec![true; batch.num_rows()];
                for &row in &dup {
                    keep[row] = false;
                }
                chunk.batch = filter_record_batch(batch, &BooleanArray::from(keep))?;
            }
        }
        Ok(())
    }
}

fn source_position(batch: &RecordBatch, row: usize) -> (Option<u64>, Option<u64>) {
    let Some(src) = batch.column_by_name(record::SOURCE).and_then(|c| c.as_any().downcast_ref::<StructArray>()) else {
        return (None, None);
    };
    let get = |name: &str| {
        src.column_by_name(name)
            .and_then(|c| c.as_primitive_opt::<UInt64Type>())
            .filter(|c| c.is_valid(row))
            .map(|c| c.value(row))
    };
    (get("byte_offset"), get("row"))
}

fn location(batch: &RecordBatch, row: usize) -> String {
    match source_position(batch, row) {
        (Some(o), _) => format!("byte offset {o}"),
        (_, Some(r)) => format!("row {r}"),
        _ => format!("record {row} of its batch"),
    }
}

/// The record as a JSON object of its input fields (what quarantine keeps as `raw`).
fn row_json(batch: &RecordBatch, row: usize) -> String {
    let mut obj = serde_json::Map::new();
    for (field, col) in batch.schema().fields().iter().zip(batch.columns()) {
        let name = field.name();
        if name == record::SOURCE || col.is_null(row) {
            continue;
        }
        if name == record::EXTRA {
            if let Ok(serde_json::Value::Object(extra)) = serde_json::from_str(col.as_string::<i32>().value(row)) {
                obj.extend(extra);
            }
            continue;
        }
        let json_text = field.metadata().contains_key(record::JSON_METADATA_KEY);
        obj.insert(name.clone(), value_json(col, row, json_text));
    }
    serde_json::Value::Object(obj).to_string()
}

fn value_json(col: &ArrayRef, row: usize, json_text: bool) -> serde_json::Value {
    use serde_json::Value;
    macro_rules! num {
        ($t:ty) => {
            Value::from(col.as_primitive::<$t>().value(row))
        };
    }
    match col.data_type() {
        DataType::Utf8 => {
            let s = col.as_string::<i32>().value(row);
            if json_text {
                serde_json::from_str(s).unwrap_or_else(|_| Value::from(s))
            } else {
                Value::from(s)
            }
        }
        DataType::LargeUtf8 => Value::from(col.as_string::<i64>().value(row)),
        DataType::Boolean => Value::from(col.as_boolean().value(row)),
        DataType::Int8 => num!(Int8Type),
        DataType::Int16 => num!(Int16Type),
        DataType::Int32 => num!(Int32Type),
        DataType::Int64 => num!(Int64Type),
        DataType::UInt8 => num!(UInt8Type),
        DataType::UInt16 => num!(UInt16Type),
        DataType::UInt32 => num!(UInt32Type),
        DataType::UInt64 => num!(UInt64Type),
        DataType::Float32 => num!(Float32Type),
        DataType::Float64 => num!(Float64Type),
        // Other Parquet types are rare in text inputs: kept readable, not typed.
        _ => Value::from(format!("{:?}", col.slice(row, 1))),
    }
}
