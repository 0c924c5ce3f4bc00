//! `explain`: where a record came from, what touched it, where it was dropped, which
//! versions hold it — answered from the lineage beside the data, through the per-file id
//! indexes, reading one row group of each sidecar that holds the record.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use curate_lineage::OperatorInfo;
use curate_registry::{ForgetNote, LineageKind, Registry, RunId, VersionRef};

use crate::lineage::{find, LineageSet};
use crate::record_run::step_label;
use crate::{Home, Result};

/// One run's view of a record: where it was read from and what happened to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Occurrence {
    /// Run that processed it.
    pub run: RunId,
    /// Input record id.
    pub source_id: String,
    /// Input file.
    pub source_file: String,
    /// Byte offset (JSONL) or row (Parquet) in the input file.
    pub source_offset: u64,
    /// Operators that touched it, in order.
    pub operators: Vec<OperatorInfo>,
    /// Drop step (`02-length_filter`) and reason, if dropped.
    pub dropped: Option<(String, String)>,
    /// The stored data file holding it, if kept.
    pub file: Option<String>,
}

/// A record derived from the explained one under another id.
#[derive(Debug, Clone, PartialEq)]
pub struct DerivedRecord {
    /// Record id.
    pub record_id: String,
    /// Its direct input record id.
    pub source_id: String,
    /// Versions containing it, with the file holding it.
    pub versions: Vec<(VersionRef, String)>,
}

/// Answer to "where did this record come from and where is it now".
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// Record id.
    pub record_id: String,
    /// Every run that processed it, oldest run first.
    pub occurrences: Vec<Occurrence>,
    /// Versions containing it, with the file holding it.
    pub versions: Vec<(VersionRef, String)>,
    /// Records derived from it under other ids.
    pub derived: Vec<DerivedRecord>,
    /// Forget requests that reached it, oldest first.
    pub forgets: Vec<ForgetNote>,
}

/// Explains `record_id`; `None` when no lineage file holds it and no forget names it.
pub fn explain(home: &Home, reg: &Registry, record_id: &str) -> Result<Option<Explanation>> {
    let store = home.store()?;
    let set = LineageSet::load(reg)?;
    let keys: HashSet<String> = HashSet::from([record_id.to_owned()]);
    let hits = find(&store, &set, &keys)?;
    let mut occurrences = Vec::new();
    let mut kept_files = BTreeSet::new();
    let mut derived: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    let mut sources = vec![record_id.to_owned()];
    for hit in &hits {
        let (file, runs) = &set.files[hit.file];
        for row in &hit.rows {
            if row.id != record_id {
                let d = derived.entry(row.id.clone()).or_insert_with(|| (row.source_id.clone(), BTreeSet::new()));
                d.1.extend(file.data.clone());
                continue;
            }
            if !sources.contains(&row.source_id) {
                sources.push(row.source_id.clone());
            }
            let dropped = row.dropped.as_ref().map(|(step, reason)| {
                let op = hit.operators.get(*step as usize).map_or("?", |o| o.name.as_str());
                (step_label(*step as usize, op), reason.clone())
            });
            let touched = match &row.dropped {
                Some((step, _)) => hit.operators.iter().take(*step as usize + 1).cloned().collect(),
                None => hit.operators.clone(),
            };
            let data = (file.kind == LineageKind::Kept).then(|| file.data.clone()).flatten();
            kept_files.extend(data.clone());
            for &run in runs {
                occurrences.push(Occurrence {
                    run,
                    source_id: row.source_id.clone(),
                    source_file: row.source_file.clone(),
                    source_offset: row.source_offset.or(row.source_row).unwrap_or(0),
                    operators: touched.clone(),
                    dropped: dropped.clone(),
                    file: data.clone(),
                });
            }
        }
    }
    let forgets = reg.forget_notes(&sources)?;
    if occurrences.is_empty() && derived.is_empty() && forgets.is_empty() {
        return Ok(None);
    }
    occurrences.sort_by(|a, b| (a.run, &a.dropped, &a.file).cmp(&(b.run, &b.dropped, &b.file)));
    occurrences.dedup();
    let mut all_files: Vec<String> = kept_files.iter().cloned().collect();
    all_files.extend(derived.values().flat_map(|(_, f)| f.iter().cloned()));
    let holding = reg.versions_holding(&all_files)?;
    let in_versions = |files: &BTreeSet<String>| -> Vec<(VersionRef, String)> {
        let mut v: Vec<(VersionRef, String)> =
            files.iter().flat_map(|f| holding.get(f).into_iter().flatten().map(move |v| (v.clone(), f.clone()))).collect();
        v.sort();
        v
    };
    let versions = in_versions(&kept_files);
    let derived = derived
        .into_iter()
        .map(|(record_id, (source_id, files))| DerivedRecord { versions: in_versions(&files), record_id, source_id })
        .collect();
    Ok(Some(Explanation { record_id: record_id.to_owned(), occurrences, versions, derived, forgets }))
}
