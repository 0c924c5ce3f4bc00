//! Reading what lineage needs (ids, origins, drop reasons) back from Parquet run outputs,
//! and rewriting a data file without some records.

use std::collections::HashSet;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{UInt32Type, UInt64Type};
use arrow_array::{Array, BooleanArray, RecordBatch};
use curate_core::record;
use curate_registry::{FileEntry, RecordMember};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ArrowWriter, ProjectionMask};

use crate::{file_err, Home, Result};

/// One record as lineage sees it.
pub(crate) struct RowOrigin {
    pub(crate) id: String,
    pub(crate) source_file: String,
    pub(crate) source_offset: u64,
    /// For rejects: the dropping step's index and the reason.
    pub(crate) dropped: Option<(usize, String)>,
}

fn open(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>> {
    let f = File::open(path).map_err(|e| file_err(path, e))?;
    ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| file_err(path, e))
}

/// Reads only the named top-level columns of a Parquet file, batch by batch.
fn read_columns(path: &Path, columns: &[&str], mut f: impl FnMut(&RecordBatch) -> Result<()>) -> Result<()> {
    let builder = open(path)?;
    let schema = builder.schema().clone();
    let mut roots = Vec::new();
    for c in columns {
        roots.push(schema.index_of(c).map_err(|_| file_err(path, format!("no column `{c}`; not a curate output file")))?);
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder.with_projection(mask).build().map_err(|e| file_err(path, e))?;
    for batch in reader {
        f(&batch.map_err(|e| file_err(path, e))?)?;
    }
    Ok(())
}

fn column<'a>(path: &Path, b: &'a RecordBatch, name: &str) -> Result<&'a Arc<dyn Array>> {
    b.column_by_name(name).ok_or_else(|| file_err(path, format!("no column `{name}`")))
}

/// Ids and origins of a data file's records, or (with `rejects`) of a rejects file's.
pub(crate) fn origins(path: &Path, rejects: bool, mut f: impl FnMut(RowOrigin) -> Result<()>) -> Result<()> {
    let mut cols = vec![record::ID, record::SOURCE];
    if rejects {
        cols.extend([record::REJECT_STEP_INDEX, record::REJECT_REASON]);
    }
    read_columns(path, &cols, |b| {
        let ids = column(path, b, record::ID)?.as_string::<i32>();
        let source = column(path, b, record::SOURCE)?.as_struct();
        let (files, offsets, rows) = (
            source.column(0).as_string::<i32>(),
            source.column(1).as_primitive::<UInt64Type>(),
            source.column(2).as_primitive::<UInt64Type>(),
        );
        let steps = rejects.then(|| column(path, b, record::REJECT_STEP_INDEX).map(|c| c.as_primitive::<UInt32Type>())).transpose()?;
        let reasons = rejects.then(|| column(path, b, record::REJECT_REASON).map(|c| c.as_string::<i32>())).transpose()?;
        for i in 0..b.num_rows() {
            let offset = if offsets.is_valid(i) { offsets.value(i) } else if rows.is_valid(i) { rows.value(i) } else { 0 };
            let dropped = match (steps, reasons) {
                (Some(s), Some(r)) => Some((s.value(i) as usize, r.value(i).to_string())),
                _ => None,
            };
            f(RowOrigin { id: ids.value(i).to_string(), source_file: files.value(i).to_string(), source_offset: offset, dropped })?;
        }
        Ok(())
    })
}

/// The memberships of a version's `files` read back from their objects in `home`, one file
/// at a time and only their id column, so a commit streams them instead of holding every
/// id; an unreadable file ends the stream with its error.
pub(crate) fn members<'a>(home: &'a Home, files: &'a [FileEntry]) -> impl Iterator<Item = Result<RecordMember>> + 'a {
    files.iter().flat_map(|f| match ids(&home.object_path(&f.path)) {
        Ok(ids) => ids.into_iter().map(|record_id| Ok(RecordMember { record_id, file: f.path.clone() })).collect(),
        Err(e) => vec![Err(e)],
    })
}

/// Record ids of a data file, in order.
fn ids(path: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    read_columns(path, &[record::ID], |b| {
        out.extend(column(path, b, record::ID)?.as_string::<i32>().iter().map(|s| s.unwrap_or_default().to_string()));
        Ok(())
    })?;
    Ok(out)
}

/// How many records of a Parquet file have an id in `ids`.
pub(crate) fn count_ids(path: &Path, ids: &HashSet<String>) -> Result<u64> {
    let mut n = 0;
    read_columns(path, &[record::ID], |b| {
        n += column(path, b, record::ID)?.as_string::<i32>().iter().filter(|id| id.is_some_and(|id| ids.contains(id))).count() as u64;
        Ok(())
    })?;
    Ok(n)
}

/// Rows of a Parquet file, from its footer.
pub(crate) fn rows(path: &Path) -> Result<u64> {
    Ok(u64::try_from(open(path)?.metadata().file_metadata().num_rows()).unwrap_or(0))
}

/// Writes `src` without the records whose id is in `drop` to `dest`; returns the rows kept.
pub(crate) fn rewrite_without(src: &Path, dest: &Path, drop: &HashSet<String>) -> Result<u64> {
    let builder = open(src)?;
    let schema = builder.schema().clone();
    let compression = builder
        .metadata()
        .row_groups()
        .first()
        .and_then(|rg| rg.columns().first())
        .map_or(parquet::basic::Compression::UNCOMPRESSED, |c| c.compression());
    let reader = builder.build().map_err(|e| file_err(src, e))?;
    let out = File::create(dest).map_err(|e| file_err(dest, e))?;
    let mut writer =
        ArrowWriter::try_new(out, schema, Some(curate_io::parquet_properties(compression))).map_err(|e| file_err(dest, e))?;
    let mut kept = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| file_err(src, e))?;
        let ids = column(src, &batch, record::ID)?.as_string::<i32>();
        let keep: BooleanArray = ids.iter().map(|id| Some(!id.is_some_and(|id| drop.contains(id)))).collect();
        let filtered = arrow_select::filter::filter_record_batch(&batch, &keep).map_err(|e| file_err(src, e))?;
        kept += filtered.num_rows() as u64;
        writer.write(&filtered).map_err(|e| file_err(dest, e))?;
    }
    writer.close().map_err(|e| file_err(dest, e))?;
    Ok(kept)
}
