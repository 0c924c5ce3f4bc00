//! Finding records through the per-file id indexes, and rewriting an output file (data
//! and lineage) without some of its rows.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

use arrow_array::BooleanArray;
use curate_io::VersionStore;
use curate_lineage::{IdIndex, LineageRow, OperatorInfo};
use curate_registry::{LineageFile, Registry, RunId};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;

use crate::{file_err, Error, Result};

/// The recorded lineage files, each sidecar once with every run that wrote it (a
/// content-addressed file is shared by runs that produced the same bytes).
pub(crate) struct LineageSet {
    pub(crate) files: Vec<(LineageFile, Vec<RunId>)>,
}

impl LineageSet {
    pub(crate) fn load(reg: &Registry) -> Result<Self> {
        let mut by_sidecar: BTreeMap<String, (LineageFile, Vec<RunId>)> = BTreeMap::new();
        let mut order = Vec::new();
        for r in reg.lineage_files()? {
            let e = by_sidecar.entry(r.file.lineage.clone()).or_insert_with(|| {
                order.push(r.file.lineage.clone());
                (r.file.clone(), Vec::new())
            });
            if !e.1.contains(&r.run) {
                e.1.push(r.run);
            }
        }
        Ok(LineageSet { files: order.into_iter().filter_map(|k| by_sidecar.remove(&k)).collect() })
    }
}

/// The rows of one lineage file that carry a searched key.
pub(crate) struct Hit {
    /// Index into [`LineageSet::files`].
    pub(crate) file: usize,
    pub(crate) rows: Vec<LineageRow>,
    pub(crate) operators: Vec<OperatorInfo>,
}

fn lineage_err(rel: &str, e: impl std::fmt::Display) -> Error {
    Error::File { path: rel.to_owned(), message: e.to_string() }
}

/// Rows of every lineage file whose id or source id is one of `keys`: each file's index
/// is asked first (one 32-byte read per key when few keys are asked, the whole bloom
/// filter when many), and only files that hold a key have their sidecar read.
pub(crate) fn find(store: &VersionStore, set: &LineageSet, keys: &HashSet<String>) -> Result<Vec<Hit>> {
    let mut hits = Vec::new();
    for (i, (f, _)) in set.files.iter().enumerate() {
        let reader = store.reader(&f.index).map_err(|e| lineage_err(&f.index, e))?;
        let index = IdIndex::open(reader).map_err(|e| lineage_err(&f.index, e))?;
        if keys.len() > 16 {
            index.load_bloom().map_err(|e| lineage_err(&f.index, e))?;
        }
        let mut rows = Vec::new();
        for k in keys {
            rows.extend(index.rows(k).map_err(|e| lineage_err(&f.index, e))?);
        }
        if rows.is_empty() {
            continue;
        }
        let (found, operators) = read_sidecar(store, &f.lineage, Some(&rows))?;
        let found: Vec<LineageRow> = found.into_iter().filter(|r| keys.contains(&r.id) || keys.contains(&r.source_id)).collect();
        if !found.is_empty() {
            hits.push(Hit { file: i, rows: found, operators });
        }
    }
    Ok(hits)
}

/// Reads the given rows of a stored sidecar (all rows with `None`).
pub(crate) fn read_sidecar(store: &VersionStore, rel: &str, rows: Option<&[u64]>) -> Result<(Vec<LineageRow>, Vec<OperatorInfo>)> {
    let result = match store.local_path(rel) {
        Some(p) => {
            let f = File::open(&p).map_err(|e| file_err(&p, e))?;
            match rows {
                Some(r) => curate_lineage::sidecar::read_rows(f, r),
                None => curate_lineage::sidecar::read_all(f),
            }
        }
        None => {
            let bytes = store.read(rel).map_err(|e| lineage_err(rel, e))?;
            match rows {
                Some(r) => curate_lineage::sidecar::read_rows(bytes, r),
                None => curate_lineage::sidecar::read_all(bytes),
            }
        }
    };
    result.map_err(|e| lineage_err(rel, e))
}

/// Writes data file `src` without the rows in `drop` to `dest`, in the same format
/// (Parquet, or JSONL plain, gzip or zstd: one record per line); returns the rows kept.
pub(crate) fn rewrite_data(src: &Path, dest: &Path, doomed: &HashSet<u64>) -> Result<u64> {
    let name = src.to_string_lossy();
    if name.ends_with(".parquet") {
        return rewrite_parquet(src, dest, doomed);
    }
    let input = File::open(src).map_err(|e| file_err(src, e))?;
    let reader: Box<dyn Read> = if name.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(input))
    } else if name.ends_with(".zst") {
        Box::new(zstd::stream::read::Decoder::new(input).map_err(|e| file_err(src, e))?)
    } else {
        Box::new(input)
    };
    let out = BufWriter::new(File::create(dest).map_err(|e| file_err(dest, e))?);
    let mut writer: Box<dyn Write> = if name.ends_with(".gz") {
        Box::new(flate2::write::GzEncoder::new(out, flate2::Compression::default()))
    } else if name.ends_with(".zst") {
        Box::new(zstd::stream::write::Encoder::new(out, 3).map_err(|e| file_err(dest, e))?.auto_finish())
    } else {
        Box::new(out)
    };
    let mut kept = 0;
    let mut line = Vec::new();
    let mut reader = BufReader::new(reader);
    let mut row = 0u64;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).map_err(|e| file_err(src, e))? == 0 {
            break;
        }
        if !doomed.contains(&row) {
            writer.write_all(&line).map_err(|e| file_err(dest, e))?;
            kept += 1;
        }
        row += 1;
    }
    writer.flush().map_err(|e| file_err(dest, e))?;
    // Encoders write their trailers when dropped.
    drop(writer);
    Ok(kept)
}

fn rewrite_parquet(src: &Path, dest: &Path, drop: &HashSet<u64>) -> Result<u64> {
    let f = File::open(src).map_err(|e| file_err(src, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| file_err(src, e))?;
    let schema = builder.schema().clone();
    let compression = builder
        .metadata()
        .row_groups()
        .first()
        .and_then(|rg| rg.columns().first())
        .map_or(parquet::basic::Compression::UNCOMPRESSED, |c| c.compression());
    let reader = builder.build().map_err(|e| file_err(src, e))?;
    let out = File::create(dest).map_err(|e| file_err(dest, e))?;
    let mut writer = ArrowWriter::try_new(out, schema, Some(curate_io::parquet_properties(compression))).map_err(|e| file_err(dest, e))?;
    let (mut at, mut kept) = (0u64, 0u64);
    for batch in reader {
        let batch = batch.map_err(|e| file_err(src, e))?;
        let keep: BooleanArray = (0..batch.num_rows() as u64).map(|i| Some(!drop.contains(&(at + i)))).collect();
        at += batch.num_rows() as u64;
        let filtered = arrow_select::filter::filter_record_batch(&batch, &keep).map_err(|e| file_err(src, e))?;
        kept += filtered.num_rows() as u64;
        writer.write(&filtered).map_err(|e| file_err(dest, e))?;
    }
    writer.close().map_err(|e| file_err(dest, e))?;
    Ok(kept)
}

/// Writes sidecar `src` without the rows in `drop` to `dest` and its id index to
/// `index`; returns the rows kept.
pub(crate) fn rewrite_lineage(src: &Path, dest: &Path, index: &Path, drop: &HashSet<u64>) -> Result<u64> {
    let f = File::open(src).map_err(|e| file_err(src, e))?;
    let out = BufWriter::new(File::create(dest).map_err(|e| file_err(dest, e))?);
    let (out, idx, kept) = curate_lineage::sidecar::rewrite(f, |r| drop.contains(&r), out).map_err(|e| file_err(src, e))?;
    out.into_inner().map_err(|e| file_err(dest, e.error()))?.sync_all().map_err(|e| file_err(dest, e))?;
    let mut w = BufWriter::new(File::create(index).map_err(|e| file_err(index, e))?);
    idx.write_to(&mut w).map_err(|e| file_err(index, e))?;
    w.into_inner().map_err(|e| file_err(index, e.error()))?.sync_all().map_err(|e| file_err(index, e))?;
    Ok(kept)
}
