//! Finding records through the per-file id indexes, and rewriting an output file (data
//! and lineage) without some of its rows.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

use arrow_array::BooleanArray;
use curate_io::{ObjectReader, Tally, VersionStore};
use curate_lineage::{BloomPack, IdIndex, LineageRow, OperatorInfo};
use curate_registry::{BloomRef, LineageFile, Registry, RunId};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;

use crate::{file_err, Error, Result};

/// The recorded lineage files, each sidecar once with every run that wrote it (a
/// content-addressed file is shared by runs that produced the same bytes).
pub(crate) struct LineageSet {
    pub(crate) files: Vec<(LineageFile, Vec<RunId>)>,
    /// Where the files' bloom filters sit in bloom packs, by sidecar.
    blooms: BTreeMap<String, BloomRef>,
}

impl LineageSet {
    pub(crate) fn load(reg: &Registry) -> Result<Self> {
        let blooms = reg.blooms()?;
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
        Ok(LineageSet { files: order.into_iter().filter_map(|k| by_sidecar.remove(&k)).collect(), blooms })
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
    // Files whose filter sits in a bloom pack (a run's files share one) are asked there:
    // one read of one row per key and pack. The others are asked through their own index.
    let mut packs: BTreeMap<&str, Vec<(usize, u64)>> = BTreeMap::new();
    let mut unpacked = Vec::new();
    for (i, (f, _)) in set.files.iter().enumerate() {
        match set.blooms.get(&f.lineage) {
            Some(b) => packs.entry(b.pack.as_str()).or_default().push((i, b.slot)),
            None => unpacked.push(i),
        }
    }
    let mut candidates: BTreeMap<usize, Vec<&String>> = BTreeMap::new();
    let packs: Vec<(&str, Vec<(usize, u64)>)> = packs.into_iter().collect();
    let answers = parallel(&packs, IO_THREADS, |(pack, members)| {
        let reader = store.reader(pack).map_err(|e| lineage_err(pack, e))?;
        let pack_file = BloomPack::open(reader).map_err(|e| lineage_err(pack, e))?;
        let mut maybe = Vec::new();
        for k in keys {
            let answers = pack_file.may_contain(k).map_err(|e| lineage_err(pack, e))?;
            for &(i, slot) in members {
                if answers.get(slot as usize).copied().unwrap_or(true) {
                    maybe.push((i, k));
                }
            }
        }
        Ok(maybe)
    })?;
    for (i, k) in answers.into_iter().flatten() {
        candidates.entry(i).or_default().push(k);
    }
    let asked = parallel(&unpacked, IO_THREADS, |&i| {
        let f = &set.files[i].0;
        let index = open_index(store, f)?;
        if keys.len() > 16 {
            index.load_bloom().map_err(|e| lineage_err(&f.index, e))?;
        }
        let mut maybe = Vec::new();
        for k in keys {
            if index.may_contain(k).map_err(|e| lineage_err(&f.index, e))? {
                maybe.push(k);
            }
        }
        Ok(maybe)
    })?;
    for (&i, maybe) in unpacked.iter().zip(asked) {
        if !maybe.is_empty() {
            candidates.entry(i).or_default().extend(maybe);
        }
    }
    let candidates: Vec<(usize, Vec<&String>)> = candidates.into_iter().collect();
    let found = parallel(&candidates, IO_THREADS, |(i, maybe)| {
        let f = &set.files[*i].0;
        let index = open_index(store, f)?;
        let mut rows = Vec::new();
        for k in maybe {
            rows.extend(index.rows_unfiltered(k).map_err(|e| lineage_err(&f.index, e))?);
        }
        if rows.is_empty() {
            return Ok(None);
        }
        let (found, operators) = read_sidecar(store, &f.lineage, Some(&rows))?;
        let found: Vec<LineageRow> = found.into_iter().filter(|r| keys.contains(&r.id) || keys.contains(&r.source_id)).collect();
        Ok((!found.is_empty()).then_some(Hit { file: *i, rows: found, operators }))
    })?;
    Ok(found.into_iter().flatten().collect())
}

fn open_index(store: &VersionStore, f: &LineageFile) -> Result<IdIndex<ObjectReader>> {
    let reader = store.reader(&f.index).map_err(|e| lineage_err(&f.index, e))?;
    IdIndex::open(reader).map_err(|e| lineage_err(&f.index, e))
}

/// Lays the bloom filters of `files`' id indexes side by side in one bloom pack in the
/// store and returns each file's slot, so explain reads one row of one object per run
/// instead of one block of every file's index.
pub(crate) fn write_bloom_pack(store: &VersionStore, files: &[LineageFile]) -> Result<Vec<BloomRef>> {
    let mut distinct: Vec<&LineageFile> = Vec::new();
    for f in files {
        if !distinct.iter().any(|d| d.lineage == f.lineage) {
            distinct.push(f);
        }
    }
    let indexes = distinct.iter().map(|f| open_index(store, f)).collect::<Result<Vec<_>>>()?;
    let scratch = store.local_root().map_or_else(std::env::temp_dir, |r| r.join("tmp"));
    std::fs::create_dir_all(&scratch).map_err(|e| file_err(&scratch, e))?;
    let name = distinct.first().map_or("empty", |f| f.index.rsplit('/').next().unwrap_or_default());
    let tmp = scratch.join(format!(".blooms-{}-{name}", curate_core::io::scratch_id()));
    let mut out = hashed_file(&tmp)?;
    let slots = curate_lineage::write_pack(&indexes, &mut out).map_err(|e| file_err(&tmp, e))?;
    let hash = close_hashed(out, &tmp)?;
    let pack = store.adopt(&tmp, &hash, ".blooms").map_err(|e| file_err(&tmp, e))?;
    Ok(distinct
        .iter()
        .zip(slots)
        .filter_map(|(f, slot)| slot.map(|slot| BloomRef { lineage: f.lineage.clone(), pack: pack.clone(), slot }))
        .collect())
}

/// Threads for work that mostly waits on storage (index probes of files that may not be
/// in the page cache): more than the cores, so reads overlap.
pub(crate) const IO_THREADS: usize = 4;

/// The machine's cores, for work that computes.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `f` over every item on up to `threads` threads; results in item order, the first error
/// (in item order) returned.
pub(crate) fn parallel<T: Sync, R: Send>(items: &[T], threads: usize, f: impl Fn(&T) -> Result<R> + Sync) -> Result<Vec<R>> {
    let threads = threads.min(items.len()).max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots: std::sync::Mutex<Vec<Option<Result<R>>>> = std::sync::Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                if let Ok(mut s) = slots.lock() {
                    s[i] = Some(r);
                }
            });
        }
    });
    let slots = slots.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    slots.into_iter().map(|r| r.unwrap_or_else(|| Err(Error::Invalid("a worker thread stopped early".into())))).collect()
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

/// A new file at `path` that hashes what is written to it.
fn hashed_file(path: &Path) -> Result<Tally<BufWriter<File>>> {
    Ok(Tally::new(BufWriter::with_capacity(1 << 20, File::create(path).map_err(|e| file_err(path, e))?)).0)
}

/// Flushes and syncs a hashed file; returns its hash.
fn close_hashed(w: Tally<BufWriter<File>>, path: &Path) -> Result<String> {
    let (_, hash, w) = w.finish();
    w.into_inner().map_err(|e| file_err(path, e.error()))?.sync_all().map_err(|e| file_err(path, e))?;
    Ok(hash)
}

/// Writes data file `src` without the rows in `drop` to `dest`, in the same format
/// (Parquet, or JSONL plain, gzip or zstd: one record per line); returns the rows kept and
/// the new file's hash.
pub(crate) fn rewrite_data(src: &Path, dest: &Path, doomed: &HashSet<u64>) -> Result<(u64, String)> {
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
    let mut out = hashed_file(dest)?;
    let mut writer: Box<dyn Write + '_> = if name.ends_with(".gz") {
        Box::new(flate2::write::GzEncoder::new(&mut out, flate2::Compression::default()))
    } else if name.ends_with(".zst") {
        Box::new(zstd::stream::write::Encoder::new(&mut out, 3).map_err(|e| file_err(dest, e))?.auto_finish())
    } else {
        Box::new(&mut out)
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
    Ok((kept, close_hashed(out, dest)?))
}

fn rewrite_parquet(src: &Path, dest: &Path, drop: &HashSet<u64>) -> Result<(u64, String)> {
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
    let out = hashed_file(dest)?;
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
    let out = writer.into_inner().map_err(|e| file_err(dest, e))?;
    Ok((kept, close_hashed(out, dest)?))
}

/// Writes sidecar `src` without the rows in `drop` to `dest` and its id index to
/// `index`; returns the rows kept and the two files' hashes.
pub(crate) fn rewrite_lineage(src: &Path, dest: &Path, index: &Path, drop: &HashSet<u64>) -> Result<(u64, String, String)> {
    let f = File::open(src).map_err(|e| file_err(src, e))?;
    let (out, idx, kept) = curate_lineage::sidecar::rewrite(f, |r| drop.contains(&r), hashed_file(dest)?).map_err(|e| file_err(src, e))?;
    let sidecar_hash = close_hashed(out, dest)?;
    let mut w = hashed_file(index)?;
    idx.write_to(&mut w).map_err(|e| file_err(index, e))?;
    Ok((kept, sidecar_hash, close_hashed(w, index)?))
}
