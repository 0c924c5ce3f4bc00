//! Row-wise JSON encoding of record batches: JSONL outputs, and records quarantined after
//! parsing (their `raw`).

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use crate::record;

fn is_json_field(f: &Field) -> bool {
    f.metadata().get(record::JSON_METADATA_KEY).is_some_and(|v| v == "true")
}

fn supported(t: &DataType) -> bool {
    match t {
        DataType::Null
        | DataType::Boolean
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float32
        | DataType::Float64
        | DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View => true,
        DataType::Struct(fields) => fields.iter().all(|f| supported(f.data_type())),
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => supported(f.data_type()),
        _ => false,
    }
}

/// Checks every column can be written as JSON, naming the first that cannot.
pub fn check_schema(schema: &Schema) -> Result<(), String> {
    match schema.fields().iter().find(|f| !supported(f.data_type())) {
        Some(f) => Err(format!(
            "column `{}` of type {} cannot be written as JSONL; use `format: parquet`",
            f.name(),
            f.data_type()
        )),
        None => Ok(()),
    }
}

fn push_str(out: &mut Vec<u8>, s: &str) {
    // serde_json never fails writing a str into a Vec.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn push_value(out: &mut Vec<u8>, a: &dyn Array, i: usize, json_text: bool) {
    if a.is_null(i) {
        out.extend_from_slice(b"null");
        return;
    }
    macro_rules! num {
        ($t:ty) => {{
            let _ = serde_json::to_writer(&mut *out, &a.as_primitive::<$t>().value(i));
        }};
    }
    match a.data_type() {
        DataType::Boolean => out.extend_from_slice(if a.as_boolean().value(i) { b"true" } else { b"false" }),
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
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let s = match a.data_type() {
                DataType::Utf8 => a.as_string::<i32>().value(i),
                DataType::LargeUtf8 => a.as_string::<i64>().value(i),
                _ => a.as_string_view().value(i),
            };
            if json_text {
                out.extend_from_slice(s.as_bytes());
            } else {
                push_str(out, s);
            }
        }
        DataType::Struct(fields) => {
            let s = a.as_struct();
            out.push(b'{');
            for (k, (f, col)) in fields.iter().zip(s.columns()).enumerate() {
                if k > 0 {
                    out.push(b',');
                }
                push_str(out, f.name());
                out.push(b':');
                push_value(out, col.as_ref(), i, is_json_field(f));
            }
            out.push(b'}');
        }
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            let items = match a.data_type() {
                DataType::List(_) => a.as_list::<i32>().value(i),
                DataType::LargeList(_) => a.as_list::<i64>().value(i),
                _ => a.as_fixed_size_list().value(i),
            };
            out.push(b'[');
            for j in 0..items.len() {
                if j > 0 {
                    out.push(b',');
                }
                push_value(out, items.as_ref(), j, is_json_field(f));
            }
            out.push(b']');
        }
        _ => out.extend_from_slice(b"null"),
    }
}

/// Appends one JSON object per row, each ending in a newline. Null columns are omitted, and
/// the `_extra` object's fields are merged back in, so a JSONL input round-trips.
pub fn write_rows(batch: &RecordBatch, out: &mut Vec<u8>) {
    let schema = batch.schema();
    let extra_idx = schema.index_of(record::EXTRA).ok();
    for i in 0..batch.num_rows() {
        out.push(b'{');
        let mut first = true;
        for (c, (f, col)) in schema.fields().iter().zip(batch.columns()).enumerate() {
            if col.is_null(i) {
                continue;
            }
            if Some(c) == extra_idx {
                let obj = match col.data_type() {
                    DataType::Utf8 => col.as_string::<i32>().value(i),
                    _ => continue,
                };
                let obj = obj.trim();
                let inner = obj.strip_prefix('{').and_then(|o| o.strip_suffix('}')).unwrap_or_default().trim();
                if !inner.is_empty() {
                    if !first {
                        out.push(b',');
                    }
                    out.extend_from_slice(inner.as_bytes());
                    first = false;
                }
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            push_str(out, f.name());
            out.push(b':');
            push_value(out, col.as_ref(), i, is_json_field(f));
        }
        out.extend_from_slice(b"}\n");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Float64Array, StringArray};

    use super::*;

    #[test]
    fn rows_merge_extra_and_keep_json_text() {
        let meta = record::json_text_field("meta");
        let schema = Arc::new(Schema::new(vec![
            Field::new("text", DataType::Utf8, false),
            meta,
            Field::new("score", DataType::Float64, true),
            Field::new(record::EXTRA, DataType::Utf8, true),
        ]));
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec!["a \"q\"\n", "b"])),
            Arc::new(StringArray::from(vec![Some(r#"{"k":[1,{"z":2}]}"#), None])),
            Arc::new(Float64Array::from(vec![Some(0.5), Some(f64::NAN)])),
            Arc::new(StringArray::from(vec![Some(r#"{"late":{"deep":{"x":1}}}"#), None])),
        ];
        let batch = RecordBatch::try_new(schema, cols).unwrap();
        let mut out = Vec::new();
        write_rows(&batch, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"text\":\"a \\\"q\\\"\\n\",\"meta\":{\"k\":[1,{\"z\":2}]},\"score\":0.5,\"late\":{\"deep\":{\"x\":1}}}\n{\"text\":\"b\",\"score\":null}\n"
        );
    }

    #[test]
    fn fixed_size_lists_are_arrays() {
        let item = Arc::new(Field::new("item", DataType::Float32, false));
        let values = arrow_array::Float32Array::from(vec![0.5, -1.0, 0.25, 2.0]);
        let nulls = arrow_buffer::NullBuffer::from(vec![true, false]);
        let list = arrow_array::FixedSizeListArray::try_new(item.clone(), 2, Arc::new(values), Some(nulls)).unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::FixedSizeList(item, 2), true)]));
        check_schema(&schema).unwrap();
        let batch = RecordBatch::try_new(schema, vec![Arc::new(list)]).unwrap();
        let mut out = Vec::new();
        write_rows(&batch, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "{\"v\":[0.5,-1.0]}\n{}\n");
    }
}
