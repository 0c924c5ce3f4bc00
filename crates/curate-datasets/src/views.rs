//! The JSON shapes of versions, diffs and explanations that `curate ... --json` prints
//! and the service returns, built in one place so both always agree.

use std::collections::BTreeSet;

use curate_registry::{Registry, Version, VersionRef};
use serde_json::{json, Value};

use crate::{Explanation, RecordDiff, Result};

/// A timestamp (ms since the epoch) as UTC, `2026-12-05 10:00:00Z`.
pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(|| format!("{ms} ms"), |t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
}

/// A version: reference, rows, bytes, files, derivation, tags.
pub fn version_json(v: &Version) -> Value {
    json!({
        "version": v.reference.to_string(),
        "created": time(v.created_at_ms),
        "rows": v.files.iter().map(|f| f.rows).sum::<u64>(),
        "bytes": v.files.iter().map(|f| f.bytes).sum::<u64>(),
        "files": v.files.iter().map(|f| json!({"path": f.path, "content_hash": f.content_hash, "rows": f.rows, "bytes": f.bytes})).collect::<Vec<_>>(),
        "parents": v.parents.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "sources": v.sources.iter().map(|s| json!({"path": s.path, "content_hash": s.content_hash})).collect::<Vec<_>>(),
        "spec_hash": v.spec_hash,
        "run": v.run,
        "tags": v.tags,
        "forget_audit": v.forget_audit,
    })
}

/// What differs between two versions: records added and removed, files, and why.
pub fn diff_json(reg: &Registry, a: &Version, b: &Version, records: &RecordDiff) -> Result<Value> {
    let files = reg.diff(&a.reference.to_string(), &b.reference.to_string())?;
    Ok(json!({
        "old": a.reference.to_string(), "new": b.reference.to_string(),
        "added": records.added, "removed": records.removed,
        "files_added": files.added.len(), "files_removed": files.removed.len(),
        "why": diff_reasons(reg, a, b)?,
    }))
}

/// Why two versions of a dataset differ, in words.
pub fn diff_reasons(reg: &Registry, a: &Version, b: &Version) -> Result<Vec<String>> {
    let mut why = Vec::new();
    if a.spec_hash != b.spec_hash {
        why.push("spec changed (steps, parameters, operator versions or input settings)".to_string());
    }
    let sa: BTreeSet<_> = a.sources.iter().map(|s| (&s.path, &s.content_hash)).collect();
    let sb: BTreeSet<_> = b.sources.iter().map(|s| (&s.path, &s.content_hash)).collect();
    let (pa, pb): (BTreeSet<_>, BTreeSet<_>) = (a.sources.iter().map(|s| &s.path).collect(), b.sources.iter().map(|s| &s.path).collect());
    for p in pb.difference(&pa) {
        why.push(format!("input file added: {p}"));
    }
    for p in pa.difference(&pb) {
        why.push(format!("input file removed: {p}"));
    }
    for (p, _) in sb.difference(&sa) {
        if pa.contains(p) {
            why.push(format!("input file changed: {p}"));
        }
    }
    if a.parents != b.parents {
        let names = |v: &Version| v.parents.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        why.push(format!("parent versions changed: [{}] -> [{}]", names(a), names(b)));
    }
    if let Some(id) = b.forget_audit {
        let audit = reg.audit(id)?;
        why.push(format!("forget #{id} by {}: {} ({} sources)", audit.actor, audit.reason, audit.sources.len()));
    }
    if why.is_empty() {
        why.push("same derivation (a re-run)".into());
    }
    Ok(why)
}

/// Where a record came from, what touched it, which versions hold it, and who forgot it.
pub fn explain_json(e: &Explanation) -> Value {
    let versions = |vs: &[(VersionRef, String)]| vs.iter().map(|(v, f)| json!({"version": v.to_string(), "file": f})).collect::<Vec<_>>();
    json!({
        "record": e.record_id,
        "occurrences": e.occurrences.iter().map(|o| json!({
            "run": o.run, "source_id": o.source_id, "source_file": o.source_file, "source_offset": o.source_offset,
            "operators": o.operators.iter().map(|op| json!({"name": op.name, "version": op.version, "params": op.params})).collect::<Vec<_>>(),
            "dropped": o.dropped.as_ref().map(|(step, reason)| json!({"step": step, "reason": reason})),
            "file": o.file,
        })).collect::<Vec<_>>(),
        "versions": versions(&e.versions),
        "derived": e.derived.iter().map(|d| json!({"record": d.record_id, "from": d.source_id, "versions": versions(&d.versions)})).collect::<Vec<_>>(),
        "forgotten": e.forgets.iter().map(|f| json!({
            "audit": f.audit, "at": time(f.at_ms), "actor": f.actor, "reason": f.reason, "source_id": f.source_id,
            "without": f.without.iter().map(ToString::to_string).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// The first `limit` records of a version as JSON objects, read from its first files
/// only (no whole-version check: a sample must stay cheap on a 10 TB version).
pub fn records_json(home: &crate::Home, version: &Version, limit: usize) -> Result<Vec<Value>> {
    use curate_core::io::Source;
    let store = home.store()?;
    let parquet = version.files.iter().all(|f| f.path.ends_with(".parquet"));
    let mut out = Vec::new();
    for f in &version.files {
        if out.len() >= limit {
            break;
        }
        let input = json!({ "path": [store.locate(&f.path)], "format": if parquet { "parquet" } else { "jsonl" }, "id_field": curate_core::record::ID });
        let spec: curate_core::spec::InputSpec = serde_json::from_value(input).map_err(|e| crate::Error::Invalid(e.to_string()))?;
        let source = curate_io::FileSource::open(&spec).map_err(|e| crate::Error::Input(format!("{}: {e}", f.path)))?;
        for shard in source.shards() {
            let chunks = source.read(shard).map_err(|e| crate::Error::Input(format!("{}: {e}", f.path)))?;
            for chunk in chunks {
                let chunk = chunk.map_err(|e| crate::Error::Input(format!("{}: {e}", f.path)))?;
                let mut lines = Vec::new();
                curate_core::json_rows::write_rows(&chunk.batch, &mut lines);
                for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    if out.len() >= limit {
                        return Ok(out);
                    }
                    out.push(serde_json::from_slice(line).map_err(|e| crate::Error::Invalid(format!("{}: {e}", f.path)))?);
                }
            }
        }
    }
    Ok(out)
}
