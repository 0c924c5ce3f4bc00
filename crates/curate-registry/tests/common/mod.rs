//! Runs each registry test body once on SQLite and once on PostgreSQL.

use std::sync::atomic::{AtomicU32, Ordering};

use curate_registry::Registry;

/// Default PostgreSQL server for tests; override with `CURATE_TEST_POSTGRES`.
const DEFAULT_POSTGRES: &str = "postgres://root@127.0.0.1:5432/test";

/// An isolated, empty store: a SQLite file in a temp dir, or a fresh PostgreSQL schema.
pub enum Backend {
    Sqlite { _dir: tempfile::TempDir, path: String },
    Postgres { admin: Box<postgres::Client>, schema: String, url: String },
}

impl Backend {
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("create temp dir");
        let path = dir.path().join("registry.db").to_string_lossy().into_owned();
        Backend::Sqlite { _dir: dir, path }
    }

    /// Panics with a clear message when the server is unreachable: a PostgreSQL test
    /// that silently passed without a server would prove nothing.
    pub fn postgres() -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let base = std::env::var("CURATE_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_POSTGRES.to_owned());
        let mut admin = postgres::Client::connect(&base, postgres::NoTls).unwrap_or_else(|e| {
            panic!("PostgreSQL unreachable at {base} (set CURATE_TEST_POSTGRES to a reachable server): {e}")
        });
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let schema = format!("reg_test_{}_{}_{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed), nanos);
        admin.batch_execute(&format!("CREATE SCHEMA {schema}")).expect("create test schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
        Backend::Postgres { admin: Box::new(admin), schema, url }
    }

    /// Location string to hand to `Registry::open`.
    pub fn location(&self) -> &str {
        match self {
            Backend::Sqlite { path, .. } => path,
            Backend::Postgres { url, .. } => url,
        }
    }

    pub fn open(&self) -> Registry {
        self.try_open().expect("open registry")
    }

    pub fn try_open(&self) -> curate_registry::Result<Registry> {
        Registry::open(self.location())
    }

    /// Runs raw SQL behind the registry's back (to fake a store from a newer build).
    #[allow(dead_code)]
    pub fn raw(&mut self, sql: &str) {
        match self {
            Backend::Sqlite { path, .. } => {
                rusqlite::Connection::open(&*path).expect("open sqlite").execute_batch(sql).expect("raw sql")
            }
            Backend::Postgres { admin, schema, .. } => {
                admin.batch_execute(&format!("SET search_path TO {schema}; {sql}; RESET search_path")).expect("raw sql")
            }
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Backend::Postgres { admin, schema, .. } = self {
            // Best effort: a leftover schema only costs disk in the test database.
            let _ = admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
        }
    }
}

/// Declares `sqlite::name` and `postgres::name` tests for each listed test body.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(&mut $crate::common::Backend::sqlite()) } )*
        }
        mod postgres {
            $( #[test] fn $name() { super::$name(&mut $crate::common::Backend::postgres()) } )*
        }
    };
}
