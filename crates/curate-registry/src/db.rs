//! The one seam between registry logic and the two SQL backends.
//!
//! Queries are written once in the common subset of SQLite and PostgreSQL with `?`
//! placeholders; the PostgreSQL side renumbers them. Only DDL (migrations) and bulk
//! loading differ, and those differences live here.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::error::{Error, Result};

/// A column value; every stored integer is 64-bit and every string is text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Text(String),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

impl Value {
    pub(crate) fn int(&self) -> Result<i64> {
        match self {
            Value::Int(v) => Ok(*v),
            other => Err(Error::Corrupt(format!("expected integer, found {other:?}"))),
        }
    }
    pub(crate) fn opt_int(&self) -> Result<Option<i64>> {
        match self {
            Value::Null => Ok(None),
            v => v.int().map(Some),
        }
    }
    pub(crate) fn text(self) -> Result<String> {
        match self {
            Value::Text(v) => Ok(v),
            other => Err(Error::Corrupt(format!("expected text, found {other:?}"))),
        }
    }
    pub(crate) fn opt_text(self) -> Result<Option<String>> {
        match self {
            Value::Null => Ok(None),
            v => v.text().map(Some),
        }
    }
}

/// One result row, columns in select order.
pub(crate) type Row = Vec<Value>;

/// First column of the first row, or None when there is no row.
pub(crate) fn first(rows: Vec<Row>) -> Option<Value> {
    rows.into_iter().next().and_then(|r| r.into_iter().next())
}

/// Pops columns off a row front to back so call sites read like the SELECT list.
pub(crate) struct Cols(std::vec::IntoIter<Value>);

impl Cols {
    pub(crate) fn new(row: Row) -> Self {
        Cols(row.into_iter())
    }
    fn next(&mut self) -> Result<Value> {
        self.0.next().ok_or_else(|| Error::Corrupt("row has fewer columns than selected".into()))
    }
    pub(crate) fn int(&mut self) -> Result<i64> {
        self.next()?.int()
    }
    pub(crate) fn opt_int(&mut self) -> Result<Option<i64>> {
        self.next()?.opt_int()
    }
    pub(crate) fn text(&mut self) -> Result<String> {
        self.next()?.text()
    }
    pub(crate) fn opt_text(&mut self) -> Result<Option<String>> {
        self.next()?.opt_text()
    }
}

/// Which SQL dialect a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// Expands the few DDL spellings that differ between the backends.
    pub(crate) fn ddl(self, sql: &str) -> String {
        let (pk, without_rowid) = match self {
            // INTEGER PRIMARY KEY aliases SQLite's rowid, so ids cost no extra index.
            Dialect::Sqlite => ("INTEGER PRIMARY KEY", "WITHOUT ROWID"),
            Dialect::Postgres => ("BIGSERIAL PRIMARY KEY", ""),
        };
        sql.replace("{pk}", pk).replace("{without_rowid}", without_rowid)
    }
}

/// Transaction flavour: writers take the write lock up front.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxMode {
    Read,
    Write,
}

/// A single connection to either backend.
pub(crate) trait Db: Send {
    fn dialect(&self) -> Dialect;
    fn begin(&mut self, mode: TxMode) -> Result<()>;
    fn commit(&mut self) -> Result<()>;
    fn rollback(&mut self) -> Result<()>;
    /// Takes, without waiting, the lock only one control plane of the store holds: a
    /// file lock beside a SQLite store (returned), a session advisory lock on PostgreSQL
    /// (held by this connection). `None` when another process holds it.
    fn lock_control_plane(&mut self) -> Result<Option<Option<std::fs::File>>>;
    /// Runs several `;`-separated statements without parameters.
    fn batch(&mut self, sql: &str) -> Result<()>;
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64>;
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>>;
}

/// Session advisory lock key held by the one control plane (`curate serve`) of a store.
const CONTROL_PLANE_LOCK: i32 = 741_820_261;

/// Advisory lock key that orders run starts against gc's sweep of files on PostgreSQL.
const STORE_LOCK: i64 = 7_418_202_612;

/// Takes the store lock for the rest of the current write transaction: `exclusive` for
/// gc's sweep, shared for starting or resuming runs, so no run starts while gc deletes
/// files it might read. SQLite needs nothing: every write transaction there is
/// `BEGIN IMMEDIATE`, which already excludes all other writers.
pub(crate) fn lock_store(db: &mut dyn Db, exclusive: bool) -> Result<()> {
    if db.dialect() == Dialect::Postgres {
        let f = if exclusive { "pg_advisory_xact_lock" } else { "pg_advisory_xact_lock_shared" };
        db.execute(&format!("SELECT {f}({STORE_LOCK})"), &[])?;
    }
    Ok(())
}

/// `?, ?, ?` for an IN list of `n` items.
pub(crate) fn placeholders(n: usize) -> String {
    let mut s = String::with_capacity(n * 3);
    for i in 0..n {
        s.push_str(if i == 0 { "?" } else { ", ?" });
    }
    s
}

// ---------------------------------------------------------------- SQLite

pub(crate) struct Sqlite {
    conn: rusqlite::Connection,
}

impl Sqlite {
    pub(crate) fn open(path: &std::path::Path) -> Result<Self> {
        let conn = rusqlite::Connection::open(path)?;
        // Concurrent writers queue on the lock instead of failing at once; WAL lets
        // readers proceed while a commit is in flight.
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL syncs the WAL at every commit: a version must never be durable in the
        // registry while a power loss could still undo it (NORMAL only syncs at
        // checkpoints, so the last commits could vanish after the store files they
        // replaced were swept). Costs one fsync per write transaction.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(Sqlite { conn })
    }

    /// Opens without ever writing, for stores the process may not write (a read-only
    /// file or directory). Reading a WAL store needs its `-shm` file; where that cannot
    /// be created (read-only directory, store closed cleanly so it is gone) the file is
    /// opened as immutable, which is exact because nobody can write it either.
    pub(crate) fn open_read_only(path: &std::path::Path) -> Result<Self> {
        use rusqlite::OpenFlags;
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let plain = rusqlite::Connection::open_with_flags(path, flags).and_then(|c| {
            c.busy_timeout(BUSY_TIMEOUT)?;
            c.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0))?;
            Ok(c)
        });
        let conn = match plain {
            Ok(c) => c,
            Err(_) => {
                let uri = format!("file:{}?immutable=1", uri_path(path));
                rusqlite::Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI)?
            }
        };
        conn.set_prepared_statement_cache_capacity(64);
        Ok(Sqlite { conn })
    }
}

/// How long a SQLite connection waits for another process's lock before reporting busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// `path` escaped for a `file:` URI (only the characters URI parsing gives meaning).
fn uri_path(path: &std::path::Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3f"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
    out
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(v) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            Value::Text(v) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
        })
    }
}

fn sqlite_value(v: rusqlite::types::ValueRef<'_>) -> Result<Value> {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => Ok(Value::Null),
        ValueRef::Integer(i) => Ok(Value::Int(i)),
        ValueRef::Text(t) => std::str::from_utf8(t)
            .map(|s| Value::Text(s.to_owned()))
            .map_err(|e| Error::Corrupt(format!("non-UTF-8 text: {e}"))),
        other => Err(Error::Corrupt(format!("unexpected SQLite value {other:?}"))),
    }
}

impl Db for Sqlite {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }
    fn begin(&mut self, mode: TxMode) -> Result<()> {
        // IMMEDIATE takes the write lock now, so a writer never has to upgrade a read
        // snapshot later (which SQLite can only answer with an unretryable BUSY).
        let sql = match mode {
            TxMode::Read => "BEGIN DEFERRED",
            TxMode::Write => "BEGIN IMMEDIATE",
        };
        Ok(self.conn.execute_batch(sql)?)
    }
    fn commit(&mut self) -> Result<()> {
        Ok(self.conn.execute_batch("COMMIT")?)
    }
    fn rollback(&mut self) -> Result<()> {
        Ok(self.conn.execute_batch("ROLLBACK")?)
    }
    fn lock_control_plane(&mut self) -> Result<Option<Option<std::fs::File>>> {
        let Some(path) = self.conn.path().filter(|p| !p.is_empty()).map(|p| format!("{p}-serve.lock")) else { return Ok(Some(None)) };
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Some(file))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
        }
    }
    fn batch(&mut self, sql: &str) -> Result<()> {
        Ok(self.conn.execute_batch(sql)?)
    }
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        Ok(stmt.execute(rusqlite::params_from_iter(params))? as u64)
    }
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let n = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut row = Vec::with_capacity(n);
            for i in 0..n {
                row.push(sqlite_value(r.get_ref(i)?)?);
            }
            out.push(row);
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------- PostgreSQL

pub(crate) struct Postgres {
    client: postgres::Client,
    statements: HashMap<String, postgres::Statement>,
}

impl Postgres {
    pub(crate) fn open(url: &str) -> Result<Self> {
        let client = postgres::Client::connect(url, postgres::NoTls)?;
        Ok(Postgres { client, statements: HashMap::new() })
    }

    /// Rewrites `?` placeholders to `$n` and prepares once per distinct query text.
    fn prepare(&mut self, sql: &str) -> Result<postgres::Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let mut text = String::with_capacity(sql.len() + 16);
        let mut n = 0;
        for ch in sql.chars() {
            if ch == '?' {
                n += 1;
                // Writing to a String cannot fail.
                let _ = write!(text, "${n}");
            } else {
                text.push(ch);
            }
        }
        let stmt = self.client.prepare(&text)?;
        self.statements.insert(sql.to_owned(), stmt.clone());
        Ok(stmt)
    }
}

impl postgres::types::ToSql for Value {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use postgres::types::{IsNull, Type};
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) if *ty == Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
            Value::Int(v) => v.to_sql(ty, out),
            Value::Text(v) => v.as_str().to_sql(ty, out),
        }
    }
    // Type checking happens in to_sql, per variant.
    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }
    postgres::types::to_sql_checked!();
}

fn pg_row(row: &postgres::Row) -> Result<Row> {
    use postgres::types::Type;
    let mut out = Vec::with_capacity(row.len());
    for (i, col) in row.columns().iter().enumerate() {
        let t = col.type_();
        let v = if *t == Type::INT8 {
            row.try_get::<_, Option<i64>>(i)?.into()
        } else if *t == Type::INT4 {
            row.try_get::<_, Option<i32>>(i)?.map(i64::from).into()
        } else if *t == Type::TEXT || *t == Type::VARCHAR || *t == Type::NAME {
            row.try_get::<_, Option<String>>(i)?.into()
        } else {
            return Err(Error::Corrupt(format!("unsupported column type {t} for {}", col.name())));
        };
        out.push(v);
    }
    Ok(out)
}

fn params(values: &[Value]) -> Vec<&(dyn postgres::types::ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn postgres::types::ToSql + Sync)).collect()
}

impl Db for Postgres {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }
    fn begin(&mut self, mode: TxMode) -> Result<()> {
        // READ COMMITTED is enough: writers serialise on the row locks they take first
        // (the dataset row for commits), and readers want one consistent snapshot.
        let sql = match mode {
            TxMode::Read => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            TxMode::Write => "BEGIN",
        };
        Ok(self.client.batch_execute(sql)?)
    }
    fn commit(&mut self) -> Result<()> {
        Ok(self.client.batch_execute("COMMIT")?)
    }
    fn rollback(&mut self) -> Result<()> {
        Ok(self.client.batch_execute("ROLLBACK")?)
    }
    fn lock_control_plane(&mut self) -> Result<Option<Option<std::fs::File>>> {
        // Keyed by schema too: registries in other schemas of the database have their own.
        let held = first(self.query(&format!("SELECT CASE WHEN pg_try_advisory_lock({CONTROL_PLANE_LOCK}, hashtext(current_schema())) THEN 1 ELSE 0 END"), &[])?);
        Ok(matches!(held, Some(Value::Int(1))).then_some(None))
    }
    fn batch(&mut self, sql: &str) -> Result<()> {
        Ok(self.client.batch_execute(sql)?)
    }
    fn execute(&mut self, sql: &str, values: &[Value]) -> Result<u64> {
        let stmt = self.prepare(sql)?;
        Ok(self.client.execute(&stmt, &params(values))?)
    }
    fn query(&mut self, sql: &str, values: &[Value]) -> Result<Vec<Row>> {
        let stmt = self.prepare(sql)?;
        self.client.query(&stmt, &params(values))?.iter().map(pg_row).collect()
    }
}
