//! Error type shared by every registry operation.

/// Everything that can go wrong talking to the registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The SQLite backend reported an error.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The PostgreSQL backend reported an error.
    #[error("postgres: {0}")]
    Postgres(#[from] postgres::Error),
    /// Streaming a COPY to PostgreSQL failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The store was migrated by a newer build than this one.
    #[error("registry schema version {found} is newer than the {known} this build of curate knows; upgrade curate")]
    SchemaTooNew {
        /// Highest migration recorded in the store.
        found: i64,
        /// Highest migration this build ships.
        known: i64,
    },
    /// No dataset has this name.
    #[error("dataset not found: {0}")]
    DatasetNotFound(String),
    /// The reference names a dataset that exists but no such version or tag.
    #[error("version not found: {0}")]
    VersionNotFound(String),
    /// No run has this id.
    #[error("run not found: {0}")]
    RunNotFound(i64),
    /// No queued run has this id.
    #[error("run {0} not found in the queue")]
    JobNotFound(i64),
    /// No task of the queue has this id.
    #[error("task {0} not found in the queue")]
    TaskNotFound(i64),
    /// The request conflicts with what the registry holds.
    #[error("{0}")]
    Conflict(String),
    /// None of the ids handed to `forget` is known to the registry; nothing was recorded.
    #[error("no record or source with id {}: nothing derives from them, so nothing was forgotten (ids are the input's id_field values)", .0.join(", "))]
    UnknownSources(Vec<String>),
    /// The store keeps per-record lineage rows that this build replaced with lineage
    /// files beside the data; it must be converted before it is migrated.
    #[error("this registry keeps per-record lineage ({records} rows) from curate 0.1, which this curate replaces with lineage files beside the data; run `curate registry upgrade` to convert it (it writes a lineage file and id index for each stored data file and each run's rejects, then drops the per-record tables), or point CURATE_HOME/CURATE_REGISTRY at a new registry")]
    LegacyLineage {
        /// Lineage rows found.
        records: i64,
    },
    /// No forget audit entry has this id.
    #[error("audit entry not found: {0}")]
    AuditNotFound(i64),
    /// A `name@version` string could not be parsed.
    #[error("invalid version reference {reference:?}: {why}")]
    InvalidReference {
        /// The text given.
        reference: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A tag name is reserved or malformed.
    #[error("invalid tag {tag:?}: {why}")]
    InvalidTag {
        /// The tag given.
        tag: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Creating a tag that already points elsewhere; moving must be asked for.
    #[error("tag {tag:?} already points at {dataset}@{version}; use move_tag to move it")]
    TagExists {
        /// The tag.
        tag: String,
        /// Its dataset.
        dataset: String,
        /// The version it points at now.
        version: i64,
    },
    /// The manifest handed to `commit_version` is inconsistent.
    #[error("invalid manifest: {0}")]
    InvalidManifest(String),
    /// The file sweep handed to `gc_sweep` failed (its error is returned in its place).
    #[error("deleting unreferenced files failed; gc changed nothing")]
    SweepFailed,
    /// A stored JSON column could not be (de)serialised.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// The store holds a value this build cannot interpret.
    #[error("corrupt registry: {0}")]
    Corrupt(String),
    /// A transaction kept losing to concurrent writers.
    #[error("gave up after {attempts} attempts: {last}")]
    Contention {
        /// How many times it was tried.
        attempts: u32,
        /// The last backend error.
        last: Box<Error>,
    },
}

impl Error {
    /// True when the backend reported lock contention that a fresh attempt may win.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            Error::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ),
            Error::Postgres(e) => matches!(
                e.code(),
                Some(c) if *c == postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
                    || *c == postgres::error::SqlState::T_R_DEADLOCK_DETECTED
            ),
            _ => false,
        }
    }
}

/// Result alias for registry operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
