//! `curate datasets|runs|explain|forget|gc|registry`: the registry seen from the command line.

use std::collections::BTreeSet;

use clap::Subcommand;
use curate_datasets::{views, Home};
use curate_registry::{Registry, RunStatus, Version};
use serde_json::{json, Value};

/// `curate datasets ...`
#[derive(Subcommand)]
pub enum DatasetsCommand {
    /// List datasets with their latest version and what they derive from.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Versions of a dataset: files, rows, derivation, run, tags.
    Show {
        /// Dataset name, or one version (`web@3`, `web@release-1`).
        dataset: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Records added and removed between two versions, and why.
    Diff {
        /// The older version (`web@3`).
        old: String,
        /// The newer version (`web@4`).
        new: String,
        /// Record ids listed per side at most (all with --json).
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check every stored file of a version (or of every version of a dataset) against its manifest: size and blake3 hash.
    Verify {
        /// Dataset name, or one version (`web@3`).
        dataset: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Name a version (`curate datasets tag web@4 release-2026-12`).
    Tag {
        /// The version.
        version: String,
        /// The tag.
        tag: String,
        /// Move the tag if it already names another version.
        #[arg(long = "move")]
        move_tag: bool,
    },
}

/// `curate runs ...`
#[derive(Subcommand)]
pub enum RunsCommand {
    /// Recent runs, newest first.
    List {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A run: spec, code version, per-step counters, reused and recomputed tasks with reasons.
    Show {
        /// Run id.
        run: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `curate registry ...`
#[derive(Subcommand)]
pub enum RegistryCommand {
    /// Convert a registry that keeps one lineage row per record (curate 0.1) to lineage files beside the data; re-run it if it was interrupted.
    Upgrade {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `registry` subcommand.
pub fn registry(home: &Home, cmd: RegistryCommand) -> anyhow::Result<()> {
    match cmd {
        RegistryCommand::Upgrade { json } => {
            let reg = home.registry_for_upgrade()?;
            let r = curate_datasets::upgrade(home, &reg, curate_datasets::UpgradeLimits::default())?;
            if json {
                return print(&json!({
                    "already_current": r.already_current,
                    "data_files": r.data_files, "kept_records": r.kept_records,
                    "reject_files": r.reject_files, "rejected_records": r.rejected_records,
                    "resumed_files": r.resumed_files, "without_run": r.without_run, "legacy_rows": r.legacy_rows,
                }));
            }
            if r.already_current {
                println!("the registry already keeps lineage beside the data; nothing to upgrade");
                return Ok(());
            }
            println!("converted {} data file(s) with {} kept record(s)", r.data_files, r.kept_records);
            println!("converted the rejects of every run: {} file(s) with {} dropped record(s)", r.reject_files, r.rejected_records);
            if r.resumed_files > 0 {
                println!("  {} file(s) were converted by an earlier, interrupted upgrade", r.resumed_files);
            }
            for f in &r.without_run {
                println!("  warning: {f}: no run produced it (nor an ancestor version's), so it has no lineage; explain does not find its records");
            }
            println!("dropped {} per-record lineage row(s); the registry is at schema {}", r.legacy_rows, reg.schema_version()?);
        }
    }
    Ok(())
}

fn print(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub(crate) use curate_datasets::views::time;


/// Versions named by `dataset`: one (`web@3`, `web@tag`) or all of a dataset (`web`).
fn named_versions(reg: &Registry, dataset: &str) -> anyhow::Result<Vec<Version>> {
    let versions = if dataset.contains('@') { vec![reg.version(dataset)?] } else { reg.versions(dataset)? };
    if versions.is_empty() {
        anyhow::bail!("dataset `{dataset}` has no versions; `curate datasets list` shows what exists");
    }
    Ok(versions)
}

/// Runs a `datasets` subcommand.
pub fn datasets(home: &Home, cmd: DatasetsCommand) -> anyhow::Result<()> {
    let reg = match cmd {
        DatasetsCommand::Tag { .. } => home.registry()?,
        _ => home.registry_read_only()?,
    };
    match cmd {
        DatasetsCommand::List { json } => {
            let all = reg.datasets()?;
            if json {
                return print(&Value::Array(
                    all.iter().map(|d| json!({"name": d.name, "latest": d.latest, "derived_from": d.derived_from})).collect(),
                ));
            }
            if all.is_empty() {
                println!("no datasets yet: `curate run SPEC` commits the first version");
            }
            for d in all {
                let rows: u64 = reg.version(&format!("{}@{}", d.name, d.latest))?.files.iter().map(|f| f.rows).sum();
                let from = d.derived_from.map(|p| format!("  (derived from {p})")).unwrap_or_default();
                println!("{:<24} latest @{:<4} {rows:>12} records{from}", d.name, d.latest);
            }
        }
        DatasetsCommand::Show { dataset, json } => {
            let versions = named_versions(&reg, &dataset)?;
            if json {
                return print(&Value::Array(versions.iter().map(views::version_json).collect()));
            }
            for v in versions {
                let rows: u64 = v.files.iter().map(|f| f.rows).sum();
                let bytes: u64 = v.files.iter().map(|f| f.bytes).sum();
                let tags = if v.tags.is_empty() { String::new() } else { format!("  tags: {}", v.tags.join(", ")) };
                println!("{}  {}  {rows} records, {} files, {bytes} bytes{tags}", v.reference, time(v.created_at_ms), v.files.len());
                let mut from: Vec<String> = v.parents.iter().map(ToString::to_string).collect();
                from.extend(v.sources.iter().map(|s| format!("{} ({})", s.path, &s.content_hash[..12.min(s.content_hash.len())])));
                println!("    derived from: {}", if from.is_empty() { "-".into() } else { from.join(", ") });
                let run = v.run.map_or("-".into(), |r| r.to_string());
                let spec = v.spec_hash.as_deref().map_or("-", |s| &s[..12.min(s.len())]);
                let audit = v.forget_audit.map(|a| format!(", forget audit #{a}")).unwrap_or_default();
                println!("    run {run}, spec {spec}{audit}");
            }
        }
        DatasetsCommand::Diff { old, new, limit, json } => {
            let (a, b) = (reg.version(&old)?, reg.version(&new)?);
            let records = curate_datasets::diff_records(home, &reg, &old, &new)?;
            if json {
                return print(&views::diff_json(&reg, &a, &b, &records)?);
            }
            let why = views::diff_reasons(&reg, &a, &b)?;
            println!("{} -> {}: +{} records, -{} records", a.reference, b.reference, records.added.len(), records.removed.len());
            for w in &why {
                println!("  why: {w}");
            }
            for (sign, ids) in [("+", &records.added), ("-", &records.removed)] {
                for id in ids.iter().take(limit) {
                    println!("  {sign} {id}");
                }
                if ids.len() > limit {
                    println!("  {sign} ... {} more (--limit)", ids.len() - limit);
                }
            }
        }
        DatasetsCommand::Verify { dataset, json } => {
            let mut bad_total = 0;
            let mut out = Vec::new();
            for v in named_versions(&reg, &dataset)? {
                let bad = home.verify(&v);
                bad_total += bad.len();
                if json {
                    out.push(json!({
                        "version": v.reference.to_string(), "files": v.files.len(),
                        "bad": bad.iter().map(|b| json!({
                            "path": b.file.path, "expected": format!("{} bytes with blake3 {}", b.file.bytes, b.file.content_hash), "found": b.found,
                        })).collect::<Vec<_>>(),
                    }));
                    continue;
                }
                if bad.is_empty() {
                    println!("{}: {} file(s) ok", v.reference, v.files.len());
                    continue;
                }
                println!("{}: {} of {} file(s) do not match the manifest", v.reference, bad.len(), v.files.len());
                for b in &bad {
                    println!("  {}: expected {} bytes with blake3 {}, found {}", b.file.path, b.file.bytes, b.file.content_hash, b.found);
                }
            }
            if json {
                print(&Value::Array(out))?;
            }
            if bad_total > 0 {
                anyhow::bail!("{bad_total} stored file(s) of {dataset} do not match their manifest");
            }
        }
        DatasetsCommand::Tag { version, tag, move_tag } => {
            let v = if move_tag { reg.move_tag(&version, &tag)? } else { reg.tag(&version, &tag)? };
            println!("{tag} -> {v}");
        }
    }
    Ok(())
}

/// Why two versions differ, from their derivations.
/// Runs whose process is gone, marked abandoned where the registry can be written; a
/// read-only registry still shows them as abandoned.
fn abandoned_now(home: &Home, reg: &Registry) -> anyhow::Result<BTreeSet<i64>> {
    let dead = curate_datasets::dead_runs(reg)?;
    if !dead.is_empty() {
        match home.registry() {
            Ok(rw) => {
                curate_datasets::reap_dead_runs(&rw)?;
            }
            Err(e) => tracing::debug!(error = %e, "registry not writable; abandoned runs shown, not recorded"),
        }
    }
    Ok(dead.into_iter().collect())
}

/// The status to show: abandoned when the run's process is gone.
fn status(id: i64, status: RunStatus, dead: &BTreeSet<i64>) -> &'static str {
    if dead.contains(&id) { RunStatus::Abandoned.as_str() } else { status.as_str() }
}

/// Runs a `runs` subcommand.
pub fn runs(home: &Home, cmd: RunsCommand) -> anyhow::Result<()> {
    let reg = home.registry_read_only()?;
    let dead = abandoned_now(home, &reg)?;
    match cmd {
        RunsCommand::List { limit, json } => {
            let runs = reg.runs(limit)?;
            if json {
                return print(&Value::Array(
                    runs.iter()
                        .map(|r| json!({"run": r.id, "pipeline": r.pipeline, "status": status(r.id, r.status, &dead), "started": time(r.started_at_ms), "spec_hash": r.spec_hash, "output": r.output}))
                        .collect(),
                ));
            }
            for r in runs {
                let took = r.ended_at_ms.map(|e| format!("{:.1}s", (e - r.started_at_ms) as f64 / 1000.0)).unwrap_or_default();
                println!("{:>5}  {:<24} {:<10} {}  {took}", r.id, r.pipeline, status(r.id, r.status, &dead), time(r.started_at_ms));
            }
        }
        RunsCommand::Show { run, json } => {
            let r = reg.run(run)?;
            let reused = r.tasks.iter().filter(|t| t.decision == curate_registry::TaskDecision::Reused).count();
            if json {
                return print(&json!({
                    "run": r.id, "pipeline": r.pipeline, "status": status(r.id, r.status, &dead), "spec_hash": r.spec_hash,
                    "output": r.output, "host": r.owner.as_ref().map(|o| &o.host), "pid": r.owner.as_ref().map(|o| o.pid),
                    "code_version": r.code_version, "started": time(r.started_at_ms), "spec": r.spec,
                    "steps": r.steps.iter().map(|(name, c)| json!({"step": name, "in": c.input, "out": c.kept, "dropped": c.dropped})).collect::<Vec<_>>(),
                    "tasks": r.tasks.iter().map(|t| json!({"key": t.task_key, "step": t.step, "decision": t.decision.as_str(), "reason": t.reason})).collect::<Vec<_>>(),
                    "reused": reused, "recomputed": r.tasks.len() - reused,
                }));
            }
            println!("run {} of {}: {} (curate {}, spec {})", r.id, r.pipeline, status(r.id, r.status, &dead), r.code_version, &r.spec_hash[..12.min(r.spec_hash.len())]);
            if status(r.id, r.status, &dead) == RunStatus::Abandoned.as_str() {
                println!("its process is gone; `curate run SPEC --resume` continues it into the same output");
            }
            println!("started {}", time(r.started_at_ms));
            println!("  {:<28} {:>10} {:>10}  dropped", "step", "in", "out");
            for (name, c) in &r.steps {
                let dropped = c.dropped.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ");
                println!("  {name:<28} {:>10} {:>10}  {dropped}", c.input, c.kept);
            }
            println!("task steps: {reused} reused, {} recomputed", r.tasks.len() - reused);
            for t in &r.tasks {
                println!("  {:<10} {:<28} {}  {}", t.decision.as_str(), t.step, &t.task_key[..12.min(t.task_key.len())], t.reason);
            }
        }
    }
    Ok(())
}

/// `curate explain ID`.
pub fn explain(home: &Home, id: &str, json: bool) -> anyhow::Result<()> {
    let reg = home.registry_read_only()?;
    let Some(e) = curate_datasets::explain(home, &reg, id)? else {
        anyhow::bail!("no record `{id}` in any recorded run's lineage; ids are the input's id_field values, or FILE@BYTE_OFFSET (JSONL) / FILE#ROW (Parquet) when it has none");
    };
    if json {
        return print(&views::explain_json(&e));
    }
    println!("record {}", e.record_id);
    for o in &e.occurrences {
        println!("  run {}: source {} in {} at {}", o.run, o.source_id, o.source_file, o.source_offset);
        for op in &o.operators {
            println!("    {} v{} {}", op.name, op.version, op.params);
        }
        match &o.dropped {
            Some((step, reason)) => println!("    dropped at {step}: {reason}"),
            None => println!("    kept"),
        }
    }
    if e.versions.is_empty() {
        println!("  in no dataset version");
    }
    for (v, f) in &e.versions {
        println!("  in {v} ({f})");
    }
    for d in &e.derived {
        let vs: Vec<String> = d.versions.iter().map(|(v, _)| v.to_string()).collect();
        println!("  derived record {} (from {}) in {}", d.record_id, d.source_id, vs.join(", "));
    }
    for f in &e.forgets {
        let via = if f.source_id == e.record_id { String::new() } else { format!(" (through source {})", f.source_id) };
        println!("  forgotten by forget #{} on {} by {}: {}{via}", f.audit, time(f.at_ms), f.actor, f.reason);
        if !f.without.is_empty() {
            let vs: Vec<String> = f.without.iter().map(ToString::to_string).collect();
            println!("    committed without it: {}", vs.join(", "));
        }
    }
    if let (Some(f), false) = (e.forgets.last(), e.versions.is_empty()) {
        println!("  the versions listed above still hold it; `curate forget {} --purge` removes it there", f.source_id);
    }
    Ok(())
}
