//! `curate registry upgrade`: converts a store whose lineage is one registry row per
//! record (curate 0.1, schema 3) into lineage files beside the data (schema 4).
//!
//! Each data file a version lists gets a sidecar and id index written from the file
//! itself (its `id` and `_source` columns, so row i of the sidecar is row i of the file),
//! under the operators of the version's run; each run's dropped records get rejects
//! sidecars written from their registry rows, a bounded page at a time. Objects go to the
//! store before their rows are staged in the registry, so an interrupted upgrade re-run
//! skips what is staged and redoes the rest; the registry's last step then drops the
//! per-record tables and records the staged files (one transaction).

use std::collections::HashSet;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray, StructArray, UInt32Array, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use curate_core::record;
use curate_lineage::{OperatorInfo, SidecarWriter};
use curate_registry::{LegacyReject, LineageFile, LineageKind, Registry, RejectCursor, RunId};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use parquet::file::reader::ChunkReader;

use crate::{file_err, Error, Home, Result};

/// How much of a run's rejects is held at once.
#[derive(Debug, Clone, Copy)]
pub struct UpgradeLimits {
    /// Registry rows read per query.
    pub page_rows: usize,
    /// Rows per rejects sidecar; its id index is built in memory.
    pub rows_per_file: u64,
}

impl Default for UpgradeLimits {
    fn default() -> Self {
        // A page of 64k rows is a few MB; a file of 4M rows keeps its id index under
        // ~300 MB while building.
        UpgradeLimits { page_rows: 64 * 1024, rows_per_file: 4 << 20 }
    }
}

/// What an upgrade converted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UpgradeReport {
    /// The store already kept lineage beside the data; nothing was done.
    pub already_current: bool,
    /// Data files given a lineage sidecar now (per run they belong to).
    pub data_files: usize,
    /// Records in those files.
    pub kept_records: u64,
    /// Rejects sidecars written now.
    pub reject_files: usize,
    /// Dropped records in those sidecars.
    pub rejected_records: u64,
    /// Files (data and rejects) an earlier, interrupted upgrade had converted.
    pub resumed_files: usize,
    /// Data files no run produced (versions committed without one, as no ancestor
    /// either): they have no operators to record, and are left without lineage.
    pub without_run: Vec<String>,
    /// Per-record lineage rows dropped from the registry.
    pub legacy_rows: i64,
}

/// Converts the registry `reg` (opened with [`Home::registry_for_upgrade`]) and the store
/// of `home`; see the module docs. Re-running it after an interruption completes it.
pub fn upgrade(home: &Home, reg: &Registry, limits: UpgradeLimits) -> Result<UpgradeReport> {
    let mut report = UpgradeReport::default();
    if !reg.needs_upgrade()? {
        report.already_current = true;
        return Ok(report);
    }
    let scratch = Scratch::new()?;
    let staged = reg.staged_lineage_files()?;
    let done_kept: HashSet<(Option<String>, RunId)> =
        staged.iter().filter(|s| s.file.kind == LineageKind::Kept).map(|s| (s.file.data.clone(), s.run)).collect();
    let done_rejects: HashSet<RunId> = staged.iter().filter(|s| s.file.kind == LineageKind::Rejected).map(|s| s.run).collect();
    report.resumed_files = staged.len();

    for f in reg.legacy_data_files()? {
        let Some(run) = f.run else {
            tracing::warn!(file = f.path, "no run produced this data file; it is left without lineage");
            report.without_run.push(f.path);
            continue;
        };
        if done_kept.contains(&(Some(f.path.clone()), run)) {
            continue;
        }
        let operators = operators_json(reg, run)?;
        let lineage = convert_data_file(home, &scratch, &f.path, &operators)?;
        report.data_files += 1;
        report.kept_records += lineage.rows;
        reg.stage_lineage_files(run, &[lineage])?;
    }

    for run in reg.legacy_runs()? {
        if done_rejects.contains(&run) {
            continue;
        }
        let operators = operators_json(reg, run)?;
        let files = convert_rejects(home, reg, &scratch, run, &operators, limits)?;
        report.reject_files += files.len();
        report.rejected_records += files.iter().map(|f| f.rows).sum::<u64>();
        // All of a run's rejects files at once: a run is either converted or redone.
        reg.stage_lineage_files(run, &files)?;
    }

    report.legacy_rows = reg.finish_upgrade()?;
    Ok(report)
}

/// The kept chain of `run` as a sidecar's operators (JSON of [`OperatorInfo`]s).
fn operators_json(reg: &Registry, run: RunId) -> Result<String> {
    let ops: Vec<OperatorInfo> = reg
        .legacy_operators(run)?
        .into_iter()
        .map(|o| OperatorInfo { name: o.name, version: o.version, params: o.params })
        .collect();
    serde_json::to_string(&ops).map_err(|e| Error::Invalid(format!("operators of run {run}: {e}")))
}

/// A private directory for sidecars on their way into the store, removed on drop.
struct Scratch {
    dir: PathBuf,
    next: std::cell::Cell<u64>,
}

impl Scratch {
    fn new() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("curate-upgrade-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| file_err(&dir, e))?;
        Ok(Scratch { dir, next: std::cell::Cell::new(0) })
    }

    /// Fresh paths for a sidecar and its index (the names give the store its extensions).
    fn pair(&self) -> (PathBuf, PathBuf) {
        let n = self.next.get();
        self.next.set(n + 1);
        (self.dir.join(format!("{n}.parquet")), self.dir.join(format!("{n}.idx")))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Best effort: leftovers in the temp directory are only disk.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A sidecar being written to a scratch file.
struct Sidecar {
    writer: SidecarWriter<BufWriter<File>>,
    path: PathBuf,
    index: PathBuf,
}

impl Sidecar {
    fn create(scratch: &Scratch, operators: &str) -> Result<Self> {
        let (path, index) = scratch.pair();
        let file = File::create(&path).map_err(|e| file_err(&path, e))?;
        let writer = SidecarWriter::new(BufWriter::new(file), operators).map_err(|e| file_err(&path, e))?;
        Ok(Sidecar { writer, path, index })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(batch).map_err(|e| file_err(&self.path, e))
    }

    /// Closes the sidecar, writes its index and adds both to the store.
    fn store(self, home: &Home, kind: LineageKind, data: Option<String>) -> Result<LineageFile> {
        let rows = self.writer.rows();
        let (out, builder) = self.writer.finish().map_err(|e| file_err(&self.path, e))?;
        out.into_inner().map_err(|e| file_err(&self.path, e.error()))?;
        let mut w = BufWriter::new(File::create(&self.index).map_err(|e| file_err(&self.index, e))?);
        builder.write_to(&mut w).map_err(|e| file_err(&self.index, e))?;
        w.into_inner().map_err(|e| file_err(&self.index, e.error()))?;
        let lineage = home.put(&self.path, rows)?;
        let index = home.put(&self.index, rows)?;
        for p in [&self.path, &self.index] {
            // The store holds its own copy now.
            let _ = std::fs::remove_file(p);
        }
        Ok(LineageFile { kind, data, lineage: lineage.path, index: index.path, rows })
    }
}

/// Writes the sidecar and index of stored data file `rel` from its own `id` and
/// `_source` columns and adds them to the store.
fn convert_data_file(home: &Home, scratch: &Scratch, rel: &str, operators: &str) -> Result<LineageFile> {
    let store = home.store()?;
    let mut sidecar = Sidecar::create(scratch, operators)?;
    match store.local_path(rel) {
        Some(p) => {
            let f = File::open(&p).map_err(|e| file_err(&p, e))?;
            copy_lineage(f, rel, &mut sidecar)?;
        }
        None => copy_lineage(store.read(rel).map_err(|e| Error::File { path: rel.to_owned(), message: e.to_string() })?, rel, &mut sidecar)?,
    }
    sidecar.store(home, LineageKind::Kept, Some(rel.to_owned()))
}

/// Feeds the `id` and `_source` columns of a Parquet data file to `sidecar`, in order.
fn copy_lineage<T: ChunkReader + 'static>(data: T, rel: &str, sidecar: &mut Sidecar) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| Error::File { path: rel.to_owned(), message: format!("not a curate Parquet output: {e}") };
    let builder = ParquetRecordBatchReaderBuilder::try_new(data).map_err(|e| err(&e))?;
    let mut roots = Vec::new();
    for c in [record::ID, record::SOURCE] {
        roots.push(builder.schema().index_of(c).map_err(|e| err(&e))?);
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    for batch in builder.with_projection(mask).build().map_err(|e| err(&e))? {
        sidecar.write(&batch.map_err(|e| err(&e))?)?;
    }
    Ok(())
}

/// Writes the rejects sidecars of `run` from its registry rows, a page at a time and at
/// most `limits.rows_per_file` rows per file, and adds them to the store.
fn convert_rejects(home: &Home, reg: &Registry, scratch: &Scratch, run: RunId, operators: &str, limits: UpgradeLimits) -> Result<Vec<LineageFile>> {
    let mut files = Vec::new();
    let mut cursor = RejectCursor::default();
    let mut current: Option<Sidecar> = None;
    loop {
        let (page, next) = reg.legacy_rejects(run, &cursor, limits.page_rows.max(1))?;
        if page.is_empty() {
            break;
        }
        cursor = next;
        let mut rest = page.as_slice();
        while !rest.is_empty() {
            let sidecar = match &mut current {
                Some(s) => s,
                None => current.insert(Sidecar::create(scratch, operators)?),
            };
            let room = usize::try_from(limits.rows_per_file.max(1) - sidecar.writer.rows()).unwrap_or(usize::MAX);
            let (now, later) = rest.split_at(room.min(rest.len()));
            sidecar.write(&rejects_batch(run, now)?)?;
            rest = later;
            if sidecar.writer.rows() >= limits.rows_per_file.max(1) {
                if let Some(full) = current.take() {
                    files.push(full.store(home, LineageKind::Rejected, None)?);
                }
            }
        }
    }
    if let Some(last) = current {
        files.push(last.store(home, LineageKind::Rejected, None)?);
    }
    Ok(files)
}

/// The rejects-file shape [`SidecarWriter`] reads (`id`, `_source`, step index, reason)
/// built from legacy lineage rows. Their one offset is a row for Parquet inputs and a
/// byte offset otherwise, as curate 0.1 recorded it; their source id is the record id
/// (curate 0.1 recorded no other), which is what the sidecar keeps.
fn rejects_batch(run: RunId, rows: &[LegacyReject]) -> Result<RecordBatch> {
    let mut steps = Vec::with_capacity(rows.len());
    for r in rows {
        steps.push(step_index(&r.drop_step).ok_or_else(|| {
            Error::Invalid(format!("run {run}: record {:?} was dropped at step {:?}, which names no step index", r.record_id, r.drop_step))
        })?);
    }
    let parquet_input = |r: &LegacyReject| r.source_file.ends_with(".parquet");
    let source = StructArray::try_new(
        record::source_fields(),
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.source_file.as_str()))) as ArrayRef,
            Arc::new(rows.iter().map(|r| (!parquet_input(r)).then_some(r.source_offset)).collect::<UInt64Array>()),
            Arc::new(rows.iter().map(|r| parquet_input(r).then_some(r.source_offset)).collect::<UInt64Array>()),
        ],
        None,
    )
    .map_err(|e| Error::Invalid(format!("run {run}: rejects: {e}")))?;
    let schema = Schema::new(vec![
        Field::new(record::ID, DataType::Utf8, false),
        Field::new(record::SOURCE, DataType::Struct(record::source_fields()), false),
        Field::new(record::REJECT_STEP_INDEX, DataType::UInt32, false),
        Field::new(record::REJECT_REASON, DataType::Utf8, false),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.record_id.as_str()))),
            Arc::new(source),
            Arc::new(UInt32Array::from(steps)),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.drop_reason.as_str()))),
        ],
    )
    .map_err(|e| Error::Invalid(format!("run {run}: rejects: {e}")))
}

/// The step index of a step label (`02-length_filter` → 2; see [`crate::step_label`]).
fn step_index(label: &str) -> Option<u32> {
    let (digits, _) = label.split_once('-')?;
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use curate_registry::NewRun;

    /// A run's rejects larger than a page and than a file: every row lands in exactly one
    /// of several sidecars, with its step, reason and origin, and explain finds them.
    #[test]
    fn rejects_are_paged_and_split_into_bounded_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let home = Home::new(dir.path());
        let db = dir.path().join("registry.db");
        let reg = Registry::open_for_upgrade(db.to_str().expect("utf-8 path")).expect("open");
        let run = reg.start_run(&NewRun { pipeline: "p", spec: "s", spec_hash: "h", code_version: "0.1.0", ..Default::default() }).expect("run");
        let raw = rusqlite::Connection::open(&db).expect("raw");
        let op = |name: &str| serde_json::json!({"name": name, "version": "1", "params_hash": "x", "params": {"n": 1}});
        let chains = [serde_json::json!([op("a")]), serde_json::json!([op("a"), op("b")])];
        for (i, ops) in chains.iter().enumerate() {
            raw.execute("INSERT INTO op_chains (id, run_id, step, ops) VALUES (?1, ?2, ?3, ?4)", rusqlite::params![i as i64 + 1, run, format!("{i:02}"), ops.to_string()])
                .expect("chain");
        }
        raw.execute_batch("INSERT INTO source_files (id, path) VALUES (1, 'in.jsonl'), (2, 'in.parquet')").expect("sources");
        for i in 0..25i64 {
            let (chain, step) = if i % 3 == 0 { (1, "00-a") } else { (2, "01-b") };
            raw.execute(
                "INSERT INTO records VALUES (?1, ?2, ?1, ?3, ?4, ?5, ?6)",
                rusqlite::params![format!("r{i:02}"), chain, 1 + i % 2, i * 10, step, format!("{step}:why")],
            )
            .expect("record");
        }
        // A kept record of the run: not a reject.
        raw.execute_batch("INSERT INTO records VALUES ('k', 2, 'k', 1, 0, NULL, NULL)").expect("kept");

        let report = upgrade(&home, &reg, UpgradeLimits { page_rows: 4, rows_per_file: 10 }).expect("upgrade");
        assert_eq!((report.reject_files, report.rejected_records, report.legacy_rows), (3, 25, 26));
        let files: Vec<_> = reg.lineage_files().expect("lineage").into_iter().map(|r| r.file).collect();
        assert_eq!(files.iter().map(|f| f.rows).collect::<Vec<_>>(), [10, 10, 5]);
        let store = home.store().expect("store");
        let mut ids = Vec::new();
        for f in &files {
            let (rows, operators) = crate::lineage::read_sidecar(&store, &f.lineage, None).expect("sidecar");
            assert_eq!(operators.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), ["a", "b"], "the run's longest chain");
            ids.extend(rows.into_iter().map(|r| (r.id, r.source_offset, r.source_row, r.dropped)));
        }
        ids.sort();
        assert_eq!(ids.len(), 25);
        assert_eq!(ids[3], ("r03".into(), None, Some(30), Some((0, "00-a:why".into()))), "Parquet input: a row");
        assert_eq!(ids[4], ("r04".into(), Some(40), None, Some((1, "01-b:why".into()))), "JSONL input: a byte offset");
        let e = crate::explain(&home, &reg, "r04").expect("explain").expect("found");
        assert_eq!(e.occurrences[0].dropped, Some(("01-b".into(), "01-b:why".into())));
        assert_eq!(e.occurrences[0].operators.len(), 2);
    }

    #[test]
    fn step_labels_give_their_index() {
        assert_eq!(step_index(&crate::step_label(2, "length_filter")), Some(2));
        assert_eq!(step_index("12-dedup-exact"), Some(12));
        assert_eq!(step_index("read"), None);
        assert_eq!(step_index("x-length_filter"), None);
    }
}
