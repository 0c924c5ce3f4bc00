//! Numbered schema migrations, applied once each and recorded in `schema_migrations`.

use crate::db::{Db, Dialect, TxMode};
use crate::error::{Error, Result};

/// Migrations in order; index + 1 is the migration number. Never edit a shipped one:
/// append a new one, because stores in the field have already applied the old text.
const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    r#"
CREATE TABLE runs (
    id {pk},
    pipeline TEXT NOT NULL,
    spec TEXT NOT NULL,
    spec_hash TEXT NOT NULL,
    code_version TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at BIGINT,
    status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed'))
);
CREATE TABLE run_steps (
    run_id BIGINT NOT NULL REFERENCES runs(id),
    step TEXT NOT NULL,
    counters TEXT NOT NULL,
    PRIMARY KEY (run_id, step)
);
CREATE TABLE task_outcomes (
    run_id BIGINT NOT NULL REFERENCES runs(id),
    task_key TEXT NOT NULL,
    step TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('reused', 'recomputed')),
    reason TEXT NOT NULL,
    PRIMARY KEY (run_id, task_key)
);
CREATE TABLE datasets (
    id {pk},
    name TEXT NOT NULL UNIQUE,
    derived_from BIGINT REFERENCES datasets(id),
    last_version BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE TABLE forget_audits (
    id {pk},
    actor TEXT NOT NULL,
    at BIGINT NOT NULL,
    reason TEXT NOT NULL,
    sources TEXT NOT NULL,
    plan TEXT NOT NULL
);
CREATE TABLE versions (
    id {pk},
    dataset_id BIGINT NOT NULL REFERENCES datasets(id),
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    run_id BIGINT REFERENCES runs(id),
    spec_hash TEXT,
    schema_json TEXT NOT NULL,
    forget_audit_id BIGINT REFERENCES forget_audits(id),
    UNIQUE (dataset_id, version)
);
CREATE TABLE version_files (
    id {pk},
    version_id BIGINT NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    row_count BIGINT NOT NULL,
    byte_size BIGINT NOT NULL,
    UNIQUE (version_id, path)
);
CREATE TABLE version_parents (
    version_id BIGINT NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    parent_id BIGINT NOT NULL REFERENCES versions(id),
    PRIMARY KEY (version_id, parent_id)
);
CREATE INDEX version_parents_parent ON version_parents (parent_id);
CREATE TABLE version_sources (
    version_id BIGINT NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    PRIMARY KEY (version_id, path)
);
CREATE TABLE tags (
    dataset_id BIGINT NOT NULL REFERENCES datasets(id),
    tag TEXT NOT NULL,
    version_id BIGINT NOT NULL REFERENCES versions(id),
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (dataset_id, tag)
);
CREATE INDEX tags_version ON tags (version_id);
CREATE TABLE cache_entries (
    cache_key TEXT PRIMARY KEY,
    location TEXT NOT NULL,
    stats TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL
);
CREATE TABLE version_cache_refs (
    version_id BIGINT NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    cache_key TEXT NOT NULL,
    PRIMARY KEY (version_id, cache_key)
);
CREATE INDEX version_cache_refs_key ON version_cache_refs (cache_key);
CREATE TABLE op_chains (
    id {pk},
    run_id BIGINT NOT NULL REFERENCES runs(id),
    step TEXT NOT NULL,
    ops TEXT NOT NULL
);
CREATE INDEX op_chains_run_step ON op_chains (run_id, step);
CREATE TABLE source_files (
    id {pk},
    path TEXT NOT NULL UNIQUE
);
-- The two lineage tables carry no foreign keys: they hold tens of millions of rows and
-- per-row reference checks would roughly double bulk-load time.
CREATE TABLE records (
    record_id TEXT PRIMARY KEY,
    source_id TEXT NOT NULL,
    source_file_id BIGINT NOT NULL,
    source_offset BIGINT NOT NULL,
    chain_id BIGINT NOT NULL,
    drop_step TEXT,
    drop_reason TEXT
) {without_rowid};
CREATE INDEX records_source ON records (source_id);
CREATE TABLE version_records (
    version_id BIGINT NOT NULL,
    record_id TEXT NOT NULL,
    file_id BIGINT NOT NULL,
    PRIMARY KEY (version_id, record_id)
) {without_rowid};
CREATE INDEX version_records_record ON version_records (record_id);
"#,
    // 2: one lineage row per (record, operator chain). The same record id legitimately
    // appears in several runs (re-runs, a specialised dataset re-reading a global one),
    // and a record-only key kept just the first of them.
    r#"
CREATE TABLE records_by_chain (
    record_id TEXT NOT NULL,
    chain_id BIGINT NOT NULL,
    source_id TEXT NOT NULL,
    source_file_id BIGINT NOT NULL,
    source_offset BIGINT NOT NULL,
    drop_step TEXT,
    drop_reason TEXT,
    PRIMARY KEY (record_id, chain_id)
) {without_rowid};
INSERT INTO records_by_chain (record_id, chain_id, source_id, source_file_id, source_offset, drop_step, drop_reason)
    SELECT record_id, chain_id, source_id, source_file_id, source_offset, drop_step, drop_reason FROM records;
DROP TABLE records;
ALTER TABLE records_by_chain RENAME TO records;
CREATE INDEX records_source ON records (source_id);
"#,
    // 3: who runs a run and where it writes. Abandonment is its own column rather than a
    // new `status` value because SQLite cannot change migration 1's CHECK without
    // rebuilding `runs`, which four tables reference; readers map (running, abandoned_at
    // set) to `abandoned`.
    r#"
ALTER TABLE runs ADD COLUMN host TEXT;
ALTER TABLE runs ADD COLUMN pid BIGINT;
ALTER TABLE runs ADD COLUMN pid_start TEXT;
ALTER TABLE runs ADD COLUMN output TEXT;
ALTER TABLE runs ADD COLUMN abandoned_at BIGINT;
"#,
    // 4: record lineage moves beside the data (a Parquet sidecar and an id index per
    // output file); the registry keeps one row per file. A store whose per-record tables
    // hold rows is converted by the engine first (see `Error::LegacyLineage`).
    r#"
DROP TABLE version_records;
DROP TABLE records;
DROP TABLE source_files;
DROP TABLE op_chains;
CREATE TABLE lineage_files (
    id {pk},
    run_id BIGINT NOT NULL REFERENCES runs(id),
    kind TEXT NOT NULL CHECK (kind IN ('kept', 'rejected')),
    data_path TEXT,
    lineage_path TEXT NOT NULL,
    index_path TEXT NOT NULL,
    row_count BIGINT NOT NULL
);
CREATE INDEX lineage_files_run ON lineage_files (run_id);
CREATE INDEX lineage_files_data ON lineage_files (data_path);
CREATE INDEX lineage_files_lineage ON lineage_files (lineage_path);
-- Which slot of a bloom pack (a run's filters side by side in one object) holds each
-- sidecar's filter, so explain reads one row of a pack instead of every file's index.
CREATE TABLE lineage_blooms (
    lineage_path TEXT PRIMARY KEY,
    pack_path TEXT NOT NULL,
    pack_slot BIGINT NOT NULL
);
"#,
    // 5: the service (`curate serve`): registered pipelines, queued runs ("jobs", since
    // `runs` records executions) split into leased tasks, their events, workers, API
    // tokens (hashed), the audit log of mutating calls, and watched pipelines' cursors.
    r#"
CREATE TABLE pipelines (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    priority BIGINT NOT NULL DEFAULT 0,
    max_slots BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE jobs (
    id {pk},
    pipeline TEXT NOT NULL,
    spec TEXT NOT NULL,
    output TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'cancelling', 'succeeded', 'failed', 'cancelled')),
    priority BIGINT NOT NULL DEFAULT 0,
    attempt BIGINT NOT NULL DEFAULT 1,
    actor TEXT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    ended_at BIGINT,
    deadline BIGINT,
    run_id BIGINT REFERENCES runs(id),
    version TEXT,
    error TEXT,
    report TEXT,
    watch TEXT
);
CREATE INDEX jobs_state ON jobs (state, id);
CREATE INDEX jobs_pipeline ON jobs (pipeline, id);
CREATE INDEX jobs_pipeline_state ON jobs (pipeline, state, id);
-- The runs not ended of each output, for "which earlier run holds this output".
CREATE INDEX jobs_output_active ON jobs (output, id) WHERE state IN ('queued', 'running', 'cancelling');
CREATE TABLE job_tasks (
    id {pk},
    job_id BIGINT NOT NULL REFERENCES jobs(id),
    wave BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('plan', 'map', 'reduce', 'commit')),
    stage BIGINT NOT NULL,
    shard BIGINT NOT NULL,
    task_key TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'leased', 'done', 'dead', 'cancelled')),
    attempts BIGINT NOT NULL DEFAULT 0,
    not_before BIGINT NOT NULL DEFAULT 0,
    worker TEXT,
    lease_expires BIGINT,
    error TEXT,
    result TEXT
);
CREATE INDEX job_tasks_job ON job_tasks (job_id, wave, state);
CREATE INDEX job_tasks_state ON job_tasks (state, lease_expires);
CREATE TABLE job_events (
    id {pk},
    job_id BIGINT NOT NULL REFERENCES jobs(id),
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX job_events_job ON job_events (job_id, id);
CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    host TEXT NOT NULL,
    slots BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL
);
CREATE TABLE tokens (
    id {pk},
    name TEXT NOT NULL,
    scope TEXT NOT NULL CHECK (scope IN ('read', 'run', 'admin')),
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE TABLE audit_log (
    id {pk},
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT
);
CREATE TABLE service_counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
-- A watched pipeline's cursor: the input files its latest version consumed (with the
-- store objects made from each), committed in the transaction that commits the version.
CREATE TABLE watches (
    pipeline TEXT PRIMARY KEY,
    paused BIGINT NOT NULL DEFAULT 0,
    cursor TEXT NOT NULL,
    last_version TEXT,
    checked_at BIGINT,
    lag_ms BIGINT NOT NULL DEFAULT 0,
    pending BIGINT NOT NULL DEFAULT 0,
    last_error TEXT
);
"#,
];

/// The migration that drops the per-record lineage tables.
pub(crate) const FILE_LINEAGE: i64 = 4;

/// Highest migration number this build knows.
pub(crate) const LATEST: i64 = MIGRATIONS.len() as i64;

/// Brings the store up to [`LATEST`]; a no-op when it is already there.
pub(crate) fn migrate(db: &mut dyn Db) -> Result<i64> {
    migrate_to(db, LATEST)
}

/// Brings the store up to migration `target` (or leaves it where it is when it is
/// already there or beyond); returns the resulting schema version.
///
/// An up-to-date store is recognised with a read, so opening one takes no write lock;
/// otherwise the check and the migrations run under the write lock (SQLite's `BEGIN
/// IMMEDIATE`, PostgreSQL's advisory lock), so processes opening a fresh store at once
/// create it exactly once.
pub(crate) fn migrate_to(db: &mut dyn Db, target: i64) -> Result<i64> {
    if let Some(current) = current_version(db)? {
        if current > LATEST {
            return Err(Error::SchemaTooNew { found: current, known: LATEST });
        }
        if current >= target {
            return Ok(current);
        }
    }
    db.begin(TxMode::Write)?;
    let result = apply_pending(db, target);
    match result {
        Ok(v) => db.commit().map(|()| v),
        Err(e) => {
            // The original error is the one worth reporting.
            let _ = db.rollback();
            Err(e)
        }
    }
}

/// Takes the lock that serialises migrations (PostgreSQL; SQLite's IMMEDIATE write
/// transaction already excludes other writers) for the rest of the transaction.
pub(crate) fn lock_migrations(db: &mut dyn Db) -> Result<()> {
    if db.dialect() == Dialect::Postgres {
        // Several processes may open a fresh store at once; the advisory lock makes the
        // check-then-create below atomic.
        db.execute("SELECT pg_advisory_xact_lock(7418202611)", &[])?;
    }
    Ok(())
}

fn apply_pending(db: &mut dyn Db, target: i64) -> Result<i64> {
    lock_migrations(db)?;
    db.batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )?;
    let current = applied(db)?;
    if current > LATEST {
        return Err(Error::SchemaTooNew { found: current, known: LATEST });
    }
    for number in current + 1..=target {
        if number == FILE_LINEAGE && current > 0 {
            let records = crate::db::first(db.query("SELECT COUNT(*) FROM records", &[])?).map_or(Ok(0), |v| v.int())?;
            if records > 0 {
                return Err(Error::LegacyLineage { records });
            }
        }
        apply(db, number)?;
    }
    Ok(current.max(target))
}

/// Applies migration `number` and records it, with no checks.
pub(crate) fn apply(db: &mut dyn Db, number: i64) -> Result<()> {
    let sql = usize::try_from(number - 1)
        .ok()
        .and_then(|i| MIGRATIONS.get(i))
        .ok_or_else(|| Error::Corrupt(format!("no migration {number}")))?;
    db.batch(&db.dialect().ddl(sql))?;
    db.execute(
        "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
        &[number.into(), crate::now_ms().into()],
    )?;
    Ok(())
}

/// The store's schema version read without locking for writes; `None` when the store
/// has no migration table yet (or it cannot be read, which the write path reports).
pub(crate) fn current_version(db: &mut dyn Db) -> Result<Option<i64>> {
    db.begin(TxMode::Read)?;
    let result = applied(db);
    // A failed statement aborts a PostgreSQL transaction; either way the read is over.
    let _ = db.rollback();
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_retryable() => Err(e),
        Err(_) => Ok(None),
    }
}

/// Highest migration recorded in the store (0 when none).
pub(crate) fn applied(db: &mut dyn Db) -> Result<i64> {
    let rows = db.query("SELECT MAX(version) FROM schema_migrations", &[])?;
    Ok(crate::db::first(rows).map_or(Ok(None), |v| v.opt_int())?.unwrap_or(0))
}
