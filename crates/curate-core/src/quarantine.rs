//! Records that leave a run through quarantine after parsing: later duplicates of an input
//! id, and the rows of a batch an operator failed on. Each keeps its place in the input and
//! its content, so nothing is lost.

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{Array, RecordBatch, StructArray};

use crate::io::Quarantined;
use crate::record;

/// The quarantine entry of `row`: its input file (`file`, else the row's `_source`), its
/// position there, `error`, and the record as JSON.
pub(crate) fn entry(batch: &RecordBatch, row: usize, file: Option<&str>, error: String) -> Quarantined {
    let (byte_offset, src_row) = source_position(batch, row);
    Quarantined {
        file: file.map(str::to_string).unwrap_or_else(|| source_file(batch, row)),
        line: None,
        byte_offset,
        row: src_row,
        error,
        raw: row_json(batch, row).into_bytes(),
    }
}

/// Where `row` sits in its input file, for messages.
pub(crate) fn location(batch: &RecordBatch, row: usize) -> String {
    match source_position(batch, row) {
        (Some(o), _) => format!("byte offset {o}"),
        (_, Some(r)) => format!("row {r}"),
        _ => format!("record {row} of its batch"),
    }
}

fn source(batch: &RecordBatch) -> Option<&StructArray> {
    batch.column_by_name(record::SOURCE).and_then(|c| c.as_any().downcast_ref::<StructArray>())
}

fn source_file(batch: &RecordBatch, row: usize) -> String {
    source(batch)
        .and_then(|s| s.column_by_name("file"))
        .and_then(|c| c.as_string_opt::<i32>())
        .filter(|c| c.is_valid(row))
        .map(|c| c.value(row).to_string())
        .unwrap_or_default()
}

fn source_position(batch: &RecordBatch, row: usize) -> (Option<u64>, Option<u64>) {
    let Some(src) = source(batch) else {
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

/// The record as a JSON object of its input fields (what quarantine keeps as `raw`).
fn row_json(batch: &RecordBatch, row: usize) -> String {
    let mut one = batch.slice(row, 1);
    if let Ok(i) = one.schema().index_of(record::SOURCE) {
        one.remove_column(i);
    }
    let mut out = Vec::new();
    crate::json_rows::write_rows(&one, &mut out);
    String::from_utf8_lossy(out.trim_ascii_end()).into_owned()
}
