//! Parquet input: row groups as shards, columns mapped onto the record model.

use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::cast::AsArray;
use arrow_array::{new_null_array, Array, ArrayRef, RecordBatch, StructArray, UInt64Array};
use arrow_schema::{DataType, Field, SchemaRef};
use bytes::Bytes;
use curate_core::io::{BoxError, Chunk, Quarantined};
use curate_core::record::{self, source_fields};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::{ChunkReader, Length};

use crate::location::Location;
use crate::IoError;

/// Rows per batch, and per chunk of quarantined rows.
const BATCH_ROWS: usize = 8192;

/// Random access to a Parquet file in an object store.
pub(crate) struct RemoteFile {
    loc: Location,
    len: u64,
    /// The first read that failed: the decoder reports it as a decoding error, but a store
    /// failure is no reason to quarantine data.
    io_error: IoFailure,
}

/// The first I/O failure of the reads of one file.
type IoFailure = Arc<std::sync::Mutex<Option<String>>>;

impl Length for RemoteFile {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for RemoteFile {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        use bytes::Buf;
        Ok(self.get_bytes(start, (self.len - start) as usize)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.loc.read_range(start, start + length as u64).map_err(|e| {
            if let Ok(mut first) = self.io_error.lock() {
                first.get_or_insert_with(|| e.to_string());
            }
            parquet::errors::ParquetError::External(Box::new(e))
        })
    }
}

/// A Parquet file, local or in an object store, with its footer read once.
pub(crate) struct ParquetFile {
    loc: Location,
    len: u64,
    meta: ArrowReaderMetadata,
    io_error: IoFailure,
}

/// Record batches of one row group.
type Batches = Box<dyn Iterator<Item = Result<RecordBatch, arrow_schema::ArrowError>> + Send>;

impl ParquetFile {
    /// Opens a Parquet file and reads its footer.
    pub(crate) fn open(loc: &Location, len: u64) -> Result<Self, IoError> {
        let err = |e: parquet::errors::ParquetError| IoError::Format { file: loc.display.clone(), message: e.to_string() };
        let options = ArrowReaderOptions::default();
        let meta = match &loc.local {
            Some(p) => {
                let file = std::fs::File::open(p).map_err(|e| IoError::Read { file: loc.display.clone(), source: e })?;
                ArrowReaderMetadata::load(&file, options).map_err(err)?
            }
            None => ArrowReaderMetadata::load(&RemoteFile { loc: loc.clone(), len, io_error: Default::default() }, options).map_err(err)?,
        };
        Ok(ParquetFile { loc: loc.clone(), len, meta, io_error: Default::default() })
    }

    /// The file's footer: row groups, column chunks, sizes.
    pub(crate) fn metadata(&self) -> &Arc<ParquetMetaData> {
        self.meta.metadata()
    }

    /// The file's Arrow schema.
    pub(crate) fn schema(&self) -> &SchemaRef {
        self.meta.schema()
    }

    /// A reader of one row group, so that a damaged one fails alone.
    fn batches(&self, row_group: usize) -> Result<Batches, BoxError> {
        let rg = vec![row_group];
        Ok(match &self.loc.local {
            Some(p) => {
                let b = ParquetRecordBatchReaderBuilder::new_with_metadata(std::fs::File::open(p)?, self.meta.clone());
                Box::new(b.with_row_groups(rg).with_batch_size(BATCH_ROWS).build()?)
            }
            None => {
                let b = ParquetRecordBatchReaderBuilder::new_with_metadata(RemoteFile { loc: self.loc.clone(), len: self.len, io_error: self.io_error.clone() }, self.meta.clone());
                Box::new(b.with_row_groups(rg).with_batch_size(BATCH_ROWS).build()?)
            }
        })
    }
}

/// How Parquet columns map to records; decided from the first file.
#[derive(Debug, Clone)]
pub struct ParquetLayout {
    id_field: Option<String>,
    text_field: String,
    metadata: Vec<Field>,
    /// The input has a curate `_extra` column, carried over as is.
    carry_extra: bool,
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// The type a column is read as: dictionary-encoded columns become their value type, so
/// records do not depend on how a writer chose to encode a column.
fn plain_type(t: &DataType) -> &DataType {
    match t {
        DataType::Dictionary(_, values) => values,
        t => t,
    }
}

/// `a` decoded from its dictionary, if it has one.
fn plain(a: &ArrayRef) -> Result<ArrayRef, BoxError> {
    match a.as_any_dictionary_opt() {
        Some(d) => Ok(arrow_select::take::take(d.values().as_ref(), d.keys(), None)?),
        None => Ok(a.clone()),
    }
}

impl ParquetLayout {
    /// Derives the layout from a file schema, refusing columns that clash with the model.
    pub fn from_schema(file: &str, schema: &SchemaRef, id_field: Option<String>, text_field: String) -> Result<Self, IoError> {
        let bad = |message: String| IoError::Format { file: file.into(), message };
        let text = schema.field_with_name(&text_field).map_err(|_| {
            bad(format!(
                "no column `{text_field}` (input.text_field); columns are: {}",
                schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
            ))
        })?;
        if !is_string(plain_type(text.data_type())) {
            return Err(bad(format!("column `{text_field}` is {}, expected a string column", text.data_type())));
        }
        if let Some(id) = &id_field {
            let f = schema.field_with_name(id).map_err(|_| bad(format!("no column `{id}` (input.id_field)")))?;
            let t = plain_type(f.data_type());
            if !(is_string(t) || t.is_integer()) {
                return Err(bad(format!("id column `{id}` is {}, expected strings or integers", f.data_type())));
            }
        }
        let mut metadata = Vec::new();
        let mut carry_extra = false;
        for f in schema.fields() {
            let name = f.name().as_str();
            if name == text_field || Some(name) == id_field.as_deref() {
                continue;
            }
            if name == record::SOURCE {
                // Records re-read from a curate output get their new origin; the upstream
                // origin is a lineage matter, not a column to carry along.
                tracing::info!(file, "input column `_source` is replaced by this read's origin");
                continue;
            }
            if name == record::EXTRA && plain_type(f.data_type()) == &DataType::Utf8 {
                carry_extra = true;
                continue;
            }
            if [record::ID, record::TEXT, record::SOURCE, record::EXTRA].contains(&name) {
                return Err(bad(format!(
                    "column `{name}` clashes with curate's own `{name}` column; name it as input.id_field / input.text_field, or rename it"
                )));
            }
            metadata.push(f.as_ref().clone().with_data_type(plain_type(f.data_type()).clone()).with_nullable(true));
        }
        Ok(ParquetLayout { id_field, text_field, metadata, carry_extra })
    }

    /// Arrow fields of the metadata columns.
    pub fn fields(&self) -> Vec<Field> {
        self.metadata.clone()
    }
}

fn strings(a: &ArrayRef) -> Vec<Option<String>> {
    match a.data_type() {
        DataType::Utf8 => a.as_string::<i32>().iter().map(|s| s.map(str::to_string)).collect(),
        DataType::LargeUtf8 => a.as_string::<i64>().iter().map(|s| s.map(str::to_string)).collect(),
        DataType::Utf8View => a.as_string_view().iter().map(|s| s.map(str::to_string)).collect(),
        _ => (0..a.len())
            .map(|i| {
                (!a.is_null(i)).then(|| {
                    use arrow_array::types::*;
                    let a = a.as_ref();
                    macro_rules! int {
                        ($($t:ty),*) => {{
                            $(if let Some(p) = a.as_primitive_opt::<$t>() { return p.value(i).to_string(); })*
                            String::new()
                        }};
                    }
                    int!(Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type)
                })
            })
            .collect(),
    }
}

/// Reads row groups `[start, end)` of one file as chunks.
pub(crate) fn read_row_groups<'a>(
    layout: &'a ParquetLayout,
    schema: SchemaRef,
    loc: &Location,
    len: u64,
    start: usize,
    end: usize,
) -> Result<Box<dyn Iterator<Item = Result<Chunk, BoxError>> + Send + 'a>, BoxError> {
    let file = ParquetFile::open(loc, len)?;
    let meta = file.metadata().clone();
    let rows: i64 = (start..end).map(|i| meta.row_group(i).num_rows()).sum();
    let bytes: i64 = (start..end).map(|i| meta.row_group(i).compressed_size()).sum();
    let bytes_per_row = if rows > 0 { bytes as f64 / rows as f64 } else { 0.0 };
    let row = (0..start).map(|i| meta.row_group(i).num_rows() as u64).sum();
    Ok(Box::new(RowGroups { layout, schema, file, next_group: start, end, batches: None, row, group_end: row, bad: None, bytes_per_row }))
}

/// Streams row groups one at a time, so that a row group that fails to decode is
/// quarantined and the others are still read.
struct RowGroups<'a> {
    layout: &'a ParquetLayout,
    schema: SchemaRef,
    file: ParquetFile,
    next_group: usize,
    end: usize,
    batches: Option<Batches>,
    /// File row index of the next row.
    row: u64,
    /// File row index one past the current row group.
    group_end: u64,
    /// Why the rest of the current row group is quarantined.
    bad: Option<String>,
    bytes_per_row: f64,
}

impl RowGroups<'_> {
    /// Quarantines the rest of the current row group, unless reading (not decoding) failed.
    fn fail(&mut self, e: impl std::fmt::Display) -> Result<(), BoxError> {
        if let Some(io) = self.file.io_error.lock().ok().and_then(|e| e.clone()) {
            return Err(format!("{}: {io}", self.file.loc.display).into());
        }
        let group = self.next_group - 1;
        let first = self.group_end - self.file.metadata().row_group(group).num_rows() as u64;
        self.bad = Some(format!(
            "row group {group} (rows {first}..{}) cannot be decoded from row {}: {e}; its remaining rows are not read",
            self.group_end, self.row
        ));
        self.batches = None;
        Ok(())
    }

    fn next_chunk(&mut self) -> Result<Option<Chunk>, BoxError> {
        loop {
            if let Some(reason) = &self.bad {
                let n = (self.group_end - self.row).min(BATCH_ROWS as u64);
                if n == 0 {
                    self.bad = None;
                    continue;
                }
                let quarantined = (self.row..self.row + n)
                    .map(|row| Quarantined { file: self.file.loc.display.clone(), line: None, byte_offset: None, row: Some(row), error: reason.clone(), raw: Vec::new() })
                    .collect();
                self.row += n;
                let bytes = (self.bytes_per_row * n as f64) as u64;
                return Ok(Some(Chunk { batch: RecordBatch::new_empty(self.schema.clone()), quarantined, bytes }));
            }
            if let Some(batches) = self.batches.as_mut() {
                match batches.next() {
                    Some(Ok(b)) => {
                        let chunk = to_records(self.layout, &self.schema, &self.file.loc.display, &b, self.row, self.bytes_per_row)?;
                        self.row += b.num_rows() as u64;
                        return Ok(Some(chunk));
                    }
                    Some(Err(e)) => self.fail(e)?,
                    None if self.row < self.group_end => self.fail("the row group ends early")?,
                    None => self.batches = None,
                }
                continue;
            }
            if self.next_group == self.end {
                return Ok(None);
            }
            let group = self.next_group;
            self.next_group += 1;
            self.group_end = self.row + self.file.metadata().row_group(group).num_rows() as u64;
            match self.file.batches(group) {
                Ok(b) => self.batches = Some(b),
                Err(e) => self.fail(e)?,
            }
        }
    }
}

impl Iterator for RowGroups<'_> {
    type Item = Result<Chunk, BoxError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_chunk().transpose()
    }
}

fn to_records(layout: &ParquetLayout, schema: &SchemaRef, file: &str, b: &RecordBatch, first_row: u64, bytes_per_row: f64) -> Result<Chunk, BoxError> {
    let n = b.num_rows();
    let col = |name: &str| plain(b.column_by_name(name).ok_or_else(|| format!("{file}: column `{name}` is missing"))?);
    let text = strings(&col(&layout.text_field)?);
    let ids = match &layout.id_field {
        Some(f) => strings(&col(f)?),
        None => (0..n).map(|i| Some(format!("{file}#{}", first_row + i as u64))).collect(),
    };
    let mut keep = Vec::with_capacity(n);
    let mut quarantined = Vec::new();
    for i in 0..n {
        let problem = match (&text[i], &ids[i]) {
            (None, _) => Some(format!("column `{}` is null", layout.text_field)),
            (_, None) => Some(format!("id column `{}` is null", layout.id_field.as_deref().unwrap_or_default())),
            _ => None,
        };
        match problem {
            Some(error) => quarantined.push(Quarantined {
                file: file.into(),
                line: None,
                byte_offset: None,
                row: Some(first_row + i as u64),
                error,
                raw: Vec::new(),
            }),
            None => keep.push(i),
        }
    }
    let pick = |a: &ArrayRef| -> Result<ArrayRef, BoxError> {
        if keep.len() == n {
            return Ok(a.clone());
        }
        let idx = UInt64Array::from(keep.iter().map(|&i| i as u64).collect::<Vec<_>>());
        Ok(arrow_select::take::take(a.as_ref(), &idx, None)?)
    };
    let mut id_b = StringBuilder::new();
    let mut text_b = StringBuilder::new();
    for &i in &keep {
        id_b.append_option(ids[i].as_deref());
        text_b.append_option(text[i].as_deref());
    }
    let mut columns: Vec<ArrayRef> = vec![Arc::new(id_b.finish()), Arc::new(text_b.finish())];
    for f in &layout.metadata {
        columns.push(match b.column_by_name(f.name()).map(plain).transpose()? {
            Some(a) if a.data_type() == f.data_type() => pick(&a)?,
            Some(a) => {
                return Err(format!("{file}: column `{}` is {} here but {} in the first input file", f.name(), a.data_type(), f.data_type()).into())
            }
            None => new_null_array(f.data_type(), keep.len()),
        });
    }
    let files: ArrayRef = Arc::new(arrow_array::StringArray::from(vec![file; keep.len()]));
    let offsets: ArrayRef = new_null_array(&DataType::UInt64, keep.len());
    let rows: ArrayRef = Arc::new(UInt64Array::from(keep.iter().map(|&i| first_row + i as u64).collect::<Vec<_>>()));
    columns.push(Arc::new(StructArray::try_new(source_fields(), vec![files, offsets, rows], None)?));
    columns.push(match b.column_by_name(record::EXTRA).map(plain).transpose()? {
        Some(a) if layout.carry_extra && a.data_type() == &DataType::Utf8 => pick(&a)?,
        _ => new_null_array(&DataType::Utf8, keep.len()),
    });
    Ok(Chunk { batch: RecordBatch::try_new(schema.clone(), columns)?, quarantined, bytes: (bytes_per_row * n as f64) as u64 })
}
