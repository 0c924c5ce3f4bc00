//! Record-level diffs between versions: only files one side lists are read (their lineage
//! sidecars' ids), so the cost follows what changed, not the size of the versions.

use std::collections::{BTreeSet, HashMap};

use curate_registry::{Registry, Version};

use crate::lineage::{read_sidecar, LineageSet};
use crate::{Error, Home, Result};

/// Records only in one of two versions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordDiff {
    /// Record ids only in the newer side, sorted.
    pub added: Vec<String>,
    /// Record ids only in the older side, sorted.
    pub removed: Vec<String>,
}

/// Records added and removed from version `old` to `new`.
pub fn diff_records(home: &Home, reg: &Registry, old: &str, new: &str) -> Result<RecordDiff> {
    let (a, b) = (reg.version(old)?, reg.version(new)?);
    let store = home.store()?;
    let lineage: HashMap<String, String> =
        LineageSet::load(reg)?.files.into_iter().filter_map(|(f, _)| f.data.map(|d| (d, f.lineage))).collect();
    let only = |x: &Version, y: &Version| -> Result<BTreeSet<String>> {
        let theirs: BTreeSet<&str> = y.files.iter().map(|f| f.path.as_str()).collect();
        let mut ids = BTreeSet::new();
        for f in x.files.iter().filter(|f| !theirs.contains(f.path.as_str())) {
            let sidecar = lineage
                .get(&f.path)
                .ok_or_else(|| Error::Invalid(format!("{}: no lineage recorded for {}", x.reference, f.path)))?;
            ids.extend(read_sidecar(&store, sidecar, None)?.0.into_iter().map(|r| r.id));
        }
        Ok(ids)
    };
    let (before, after) = (only(&a, &b)?, only(&b, &a)?);
    Ok(RecordDiff {
        added: after.difference(&before).cloned().collect(),
        removed: before.difference(&after).cloned().collect(),
    })
}
