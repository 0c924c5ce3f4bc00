//! The lineage sidecar of one output file: a Parquet file with one row per record of the
//! output file, in the same order (row i describes row i of the data or rejects file).
//!
//! Columns: `id`, `source_id`, `source_file`, `source_offset` (JSONL byte offset),
//! `source_row` (Parquet row), and for rejects `drop_step` (index of the dropping step) and
//! `drop_reason`. The operators of the run (name, version, parameters) are in the file's
//! key-value metadata under [`OPERATORS_KEY`]: a kept record went through all of them, a
//! dropped one through those up to and including `drop_step`.

use std::io::Write;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{UInt32Type, UInt64Type};
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray, UInt32Array, UInt64Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use curate_core::record;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection, RowSelector};
use parquet::file::metadata::PageIndexPolicy;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::reader::ChunkReader;
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};

use crate::index::IndexBuilder;

/// Key-value metadata key holding the run's operators as JSON.
pub const OPERATORS_KEY: &str = "curate.operators";
/// Rows per row group.
const ROW_GROUP_ROWS: usize = 64 * 1024;
/// Rows per data page: with the offset index, explain decodes one page per column.
const PAGE_ROWS: usize = 2048;

/// Why lineage could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum LineageError {
    /// Parquet encoding or decoding failed.
    #[error("lineage sidecar: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Arrow failed.
    #[error("lineage sidecar: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// The output batch lacks a column lineage needs.
    #[error("lineage sidecar: the output has no column `{0}`")]
    MissingColumn(&'static str),
    /// The sidecar is not one this build wrote.
    #[error("lineage sidecar: {0}")]
    Invalid(String),
    /// The id index failed.
    #[error(transparent)]
    Index(#[from] crate::index::IndexError),
    /// I/O failed.
    #[error("lineage: {0}")]
    Io(#[from] std::io::Error),
}

/// An operator as lineage records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorInfo {
    /// Operator name.
    pub name: String,
    /// Operator version.
    pub version: String,
    /// Its parameters.
    pub params: serde_json::Value,
}

/// One record's lineage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineageRow {
    /// Row in the output (and sidecar) file.
    pub row: u64,
    /// Record id.
    pub id: String,
    /// The input record it derives from.
    pub source_id: String,
    /// The input file.
    pub source_file: String,
    /// Byte offset in the input (JSONL).
    pub source_offset: Option<u64>,
    /// Row in the input (Parquet).
    pub source_row: Option<u64>,
    /// For a dropped record: the dropping step's index and the reason.
    pub dropped: Option<(u32, String)>,
}

/// The sidecar's schema.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("source_id", DataType::Utf8, false),
        Field::new("source_file", DataType::Utf8, false),
        Field::new("source_offset", DataType::UInt64, true),
        Field::new("source_row", DataType::UInt64, true),
        Field::new("drop_step", DataType::UInt32, true),
        Field::new("drop_reason", DataType::Utf8, true),
    ]))
}

fn properties(operators: &str) -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_key_value_metadata(Some(vec![KeyValue::new(OPERATORS_KEY.to_string(), operators.to_string())]));
    // Ids are unique: dictionaries and statistics on them cost time and buy nothing.
    for c in ["id", "source_id"] {
        b = b.set_column_dictionary_enabled(ColumnPath::from(c), false).set_column_statistics_enabled(ColumnPath::from(c), EnabledStatistics::None);
    }
    b.build()
}

/// Writes one output file's sidecar and collects its id index, batch by batch as the
/// output file itself is written.
pub struct SidecarWriter<W: Write + Send> {
    writer: ArrowWriter<W>,
    index: IndexBuilder,
    rows: u64,
}

impl<W: Write + Send> SidecarWriter<W> {
    /// A sidecar for a run with these operators (JSON of [`OperatorInfo`]s).
    pub fn new(out: W, operators: &str) -> Result<Self, LineageError> {
        Ok(SidecarWriter { writer: ArrowWriter::try_new(out, schema(), Some(properties(operators)))?, index: IndexBuilder::new(), rows: 0 })
    }

    /// Adds the lineage of an output batch (kept or rejects schema: `id`, `_source`, and
    /// for rejects the step index and reason).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), LineageError> {
        let col = |name: &'static str| batch.column_by_name(name).ok_or(LineageError::MissingColumn(name));
        let ids = col(record::ID)?;
        let id_strings = ids.as_string_opt::<i32>().ok_or(LineageError::MissingColumn(record::ID))?;
        let source = col(record::SOURCE)?.as_struct_opt().ok_or(LineageError::MissingColumn(record::SOURCE))?;
        let part = |i: usize| -> Result<&ArrayRef, LineageError> { Ok(source.columns().get(i).ok_or(LineageError::MissingColumn(record::SOURCE))?) };
        let n = batch.num_rows();
        let (drop_step, drop_reason): (ArrayRef, ArrayRef) = match (batch.column_by_name(record::REJECT_STEP_INDEX), batch.column_by_name(record::REJECT_REASON)) {
            (Some(s), Some(r)) => (s.clone(), r.clone()),
            _ => (Arc::new(UInt32Array::new_null(n)), Arc::new(StringArray::new_null(n))),
        };
        for (i, id) in id_strings.iter().enumerate() {
            self.index.add(id.unwrap_or_default(), self.rows + i as u64);
        }
        let out = RecordBatch::try_new(
            schema(),
            vec![ids.clone(), ids.clone(), part(0)?.clone(), part(1)?.clone(), part(2)?.clone(), drop_step, drop_reason],
        )?;
        self.writer.write(&out)?;
        self.rows += n as u64;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Closes the sidecar; returns its writer and the id index to write.
    pub fn finish(self) -> Result<(W, IndexBuilder), LineageError> {
        Ok((self.writer.into_inner()?, self.index))
    }
}

/// Reads the given rows (ascending or not) of a sidecar, decoding only the pages that hold
/// them (through the offset index); returns them in row order with the run's operators.
pub fn read_rows<T: ChunkReader + 'static>(file: T, rows: &[u64]) -> Result<(Vec<LineageRow>, Vec<OperatorInfo>), LineageError> {
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
    let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(file, options)?;
    let operators = operators(builder.metadata().file_metadata().key_value_metadata())?;
    let mut wanted: Vec<u64> = rows.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    let mut groups = Vec::new();
    let mut selectors = Vec::new();
    let mut found = Vec::new();
    let mut at = 0u64;
    for (g, rg) in builder.metadata().row_groups().iter().enumerate() {
        let n = u64::try_from(rg.num_rows()).unwrap_or(0);
        let inside: Vec<u64> = wanted.iter().copied().filter(|&r| r >= at && r < at + n).collect();
        if !inside.is_empty() {
            groups.push(g);
            let mut pos = at;
            for r in inside {
                if r > pos {
                    selectors.push(RowSelector::skip((r - pos) as usize));
                }
                selectors.push(RowSelector::select(1));
                found.push(r);
                pos = r + 1;
            }
            if at + n > pos {
                selectors.push(RowSelector::skip((at + n - pos) as usize));
            }
        }
        at += n;
    }
    if groups.is_empty() {
        return Ok((Vec::new(), operators));
    }
    let reader = builder.with_row_groups(groups).with_row_selection(RowSelection::from(selectors)).build()?;
    let mut out = Vec::with_capacity(found.len());
    let mut rows = found.into_iter();
    for batch in reader {
        let batch = batch?;
        let numbers: Vec<u64> = rows.by_ref().take(batch.num_rows()).collect();
        if numbers.len() != batch.num_rows() {
            return Err(LineageError::Invalid("the sidecar returned more rows than asked for".into()));
        }
        for_rows(&batch, &numbers, &mut out)?;
    }
    Ok((out, operators))
}

/// Every row of a sidecar, in order, with the run's operators.
pub fn read_all<T: ChunkReader + 'static>(file: T) -> Result<(Vec<LineageRow>, Vec<OperatorInfo>), LineageError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
    let operators = operators(builder.metadata().file_metadata().key_value_metadata())?;
    let mut out = Vec::new();
    let mut at = 0;
    for batch in builder.build()? {
        let batch = batch?;
        let numbers: Vec<u64> = (at..at + batch.num_rows() as u64).collect();
        for_rows(&batch, &numbers, &mut out)?;
        at += batch.num_rows() as u64;
    }
    Ok((out, operators))
}

/// Writes `src` without the rows `drop` refuses to `out` (rows renumbered), with the same
/// operators; returns the writer, the new id index and the rows kept.
pub fn rewrite<T: ChunkReader + 'static, W: Write + Send>(
    src: T,
    drop: impl Fn(u64) -> bool,
    out: W,
) -> Result<(W, IndexBuilder, u64), LineageError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(src)?;
    let kv = builder.metadata().file_metadata().key_value_metadata().cloned();
    let operators = serde_json::to_string(&operators(kv.as_ref())?).map_err(|e| LineageError::Invalid(e.to_string()))?;
    let mut writer = ArrowWriter::try_new(out, schema(), Some(properties(&operators)))?;
    let mut index = IndexBuilder::new();
    let (mut at, mut kept) = (0u64, 0u64);
    for batch in builder.build()? {
        let batch = batch?;
        let keep: arrow_array::BooleanArray = (0..batch.num_rows() as u64).map(|i| Some(!drop(at + i))).collect();
        at += batch.num_rows() as u64;
        let batch = arrow_select::filter::filter_record_batch(&batch, &keep)?;
        let ids = batch.column(0).as_string_opt::<i32>().ok_or_else(|| LineageError::Invalid("`id` is not a string column".into()))?;
        let sources = batch.column(1).as_string_opt::<i32>().ok_or_else(|| LineageError::Invalid("`source_id` is not a string column".into()))?;
        for (i, (id, source)) in ids.iter().zip(sources.iter()).enumerate() {
            let (id, source) = (id.unwrap_or_default(), source.unwrap_or_default());
            index.add(id, kept + i as u64);
            if source != id {
                index.add(source, kept + i as u64);
            }
        }
        kept += batch.num_rows() as u64;
        writer.write(&batch)?;
    }
    Ok((writer.into_inner()?, index, kept))
}

fn operators(kv: Option<&Vec<KeyValue>>) -> Result<Vec<OperatorInfo>, LineageError> {
    let text = kv.and_then(|kv| kv.iter().find(|k| k.key == OPERATORS_KEY)).and_then(|k| k.value.as_deref());
    let text = text.ok_or_else(|| LineageError::Invalid(format!("no `{OPERATORS_KEY}` metadata")))?;
    serde_json::from_str(text).map_err(|e| LineageError::Invalid(format!("`{OPERATORS_KEY}`: {e}")))
}

/// Appends the batch's rows, numbered `numbers` (row i of the batch is row `numbers[i]` of
/// the file).
fn for_rows(batch: &RecordBatch, numbers: &[u64], out: &mut Vec<LineageRow>) -> Result<(), LineageError> {
    let bad = |c: &str| LineageError::Invalid(format!("column `{c}` missing or of the wrong type"));
    let s = |i: usize, c: &str| batch.column(i).as_string_opt::<i32>().ok_or_else(|| bad(c));
    let (ids, sources, files, reasons) = (s(0, "id")?, s(1, "source_id")?, s(2, "source_file")?, s(6, "drop_reason")?);
    let offsets: &UInt64Array = batch.column(3).as_primitive_opt::<UInt64Type>().ok_or_else(|| bad("source_offset"))?;
    let src_rows: &UInt64Array = batch.column(4).as_primitive_opt::<UInt64Type>().ok_or_else(|| bad("source_row"))?;
    let steps: &UInt32Array = batch.column(5).as_primitive_opt::<UInt32Type>().ok_or_else(|| bad("drop_step"))?;
    for (i, &row) in numbers.iter().enumerate() {
        let opt = |a: &UInt64Array| a.is_valid(i).then(|| a.value(i));
        out.push(LineageRow {
            row,
            id: ids.value(i).to_string(),
            source_id: sources.value(i).to_string(),
            source_file: files.value(i).to_string(),
            source_offset: opt(offsets),
            source_row: opt(src_rows),
            dropped: steps.is_valid(i).then(|| (steps.value(i), reasons.value(i).to_string())),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::StructArray;
    use curate_core::record::source_fields;

    fn batch(ids: &[&str], rejects: bool) -> RecordBatch {
        let n = ids.len();
        let source = StructArray::new(
            source_fields(),
            vec![
                Arc::new(StringArray::from(vec!["in.jsonl"; n])) as ArrayRef,
                Arc::new(UInt64Array::from_iter_values((0..n as u64).map(|i| i * 10))),
                Arc::new(UInt64Array::new_null(n)),
            ],
            None,
        );
        let mut fields = vec![Field::new("id", DataType::Utf8, false)];
        let mut cols: Vec<ArrayRef> = vec![Arc::new(StringArray::from(ids.to_vec()))];
        if rejects {
            fields.push(Field::new(record::REJECT_STEP_INDEX, DataType::UInt32, false));
            fields.push(Field::new(record::REJECT_REASON, DataType::Utf8, false));
            cols.push(Arc::new(UInt32Array::from(vec![1; n])));
            cols.push(Arc::new(StringArray::from(vec!["length_filter:min_chars"; n])));
        }
        fields.push(Field::new(record::SOURCE, DataType::Struct(source_fields()), false));
        cols.push(Arc::new(source));
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).expect("batch")
    }

    #[test]
    fn rows_round_trip_and_the_index_points_at_them() {
        let ops = serde_json::to_string(&[OperatorInfo { name: "length_filter".into(), version: "1".into(), params: serde_json::json!({"min_chars": 3}) }]).expect("json");
        let mut w = SidecarWriter::new(Vec::new(), &ops).expect("writer");
        let ids: Vec<String> = (0..100_000).map(|i| format!("r{i}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        w.write(&batch(&refs[..60_000], true)).expect("write");
        w.write(&batch(&refs[60_000..], true)).expect("write");
        let (bytes, index) = w.finish().expect("finish");
        let mut idx = Vec::new();
        index.write_to(&mut idx).expect("index");
        let idx = crate::index::IdIndex::open(idx).expect("open");
        let rows = idx.rows("r70001").expect("rows");
        assert_eq!(rows, vec![70_001]);
        let (found, operators) = read_rows(bytes::Bytes::from(bytes.clone()), &rows).expect("read");
        assert_eq!(operators[0].name, "length_filter");
        assert_eq!(
            found,
            vec![LineageRow {
                row: 70_001,
                id: "r70001".into(),
                source_id: "r70001".into(),
                source_file: "in.jsonl".into(),
                source_offset: Some(100_010),
                source_row: None,
                dropped: Some((1, "length_filter:min_chars".into())),
            }]
        );
        let scattered = [99_999, 3, 65_535, 65_536, 70_001, 0];
        let (some, _) = read_rows(bytes::Bytes::from(bytes.clone()), &scattered).expect("read");
        assert_eq!(some.iter().map(|r| (r.row, r.id.clone())).collect::<Vec<_>>(), [0, 3, 65_535, 65_536, 70_001, 99_999].map(|r| (r, format!("r{r}"))));
        assert!(read_rows(bytes::Bytes::from(bytes.clone()), &[100_000]).expect("read").0.is_empty());
        let (all, _) = read_all(bytes::Bytes::from(bytes)).expect("all");
        assert_eq!(all.len(), 100_000);
        assert_eq!(all[59_999].id, "r59999");
    }
}
