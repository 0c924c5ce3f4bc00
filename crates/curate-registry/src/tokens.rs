//! API tokens (stored as hashes; the caller hashes) and the audit log of mutating calls.

use crate::db::{first, Cols, Row};
use crate::error::{Error, Result};
use crate::{now_ms, Registry};

/// What a token may do; each scope includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Look: list and show.
    Read,
    /// Also submit, cancel and retry runs and register pipelines.
    Run,
    /// Also forget records, tag versions and manage the service.
    Admin,
}

impl Scope {
    /// The stored (and command line) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Run => "run",
            Scope::Admin => "admin",
        }
    }

    /// Parses `read`, `run` or `admin`.
    pub fn parse(s: &str) -> Option<Self> {
        [Scope::Read, Scope::Run, Scope::Admin].into_iter().find(|x| x.as_str() == s)
    }
}

/// A stored token (its hash only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Its id.
    pub id: i64,
    /// Its name, recorded in the audit log.
    pub name: String,
    /// What it may do.
    pub scope: Scope,
    /// When it was created.
    pub created_at_ms: i64,
    /// When it was revoked.
    pub revoked_at_ms: Option<i64>,
}

/// One audited API call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCall {
    /// Increasing id.
    pub id: i64,
    /// When.
    pub at_ms: i64,
    /// The token's name.
    pub actor: String,
    /// What was done (`runs.create`).
    pub action: String,
    /// To what (`run 12`).
    pub target: String,
    /// Details (JSON text), if any.
    pub detail: Option<String>,
}

fn token_row(row: Row) -> Result<TokenInfo> {
    let mut c = Cols::new(row);
    Ok(TokenInfo {
        id: c.int()?,
        name: c.text()?,
        scope: {
            let s = c.text()?;
            Scope::parse(&s).ok_or_else(|| Error::Corrupt(format!("unknown scope {s:?}")))?
        },
        created_at_ms: c.int()?,
        revoked_at_ms: c.opt_int()?,
    })
}

impl Registry {
    /// Stores a token by its hash; fails when an active token has this name.
    pub fn create_token(&self, name: &str, scope: Scope, token_hash: &str) -> Result<TokenInfo> {
        self.write(|db| {
            if first(db.query("SELECT id FROM tokens WHERE name = ? AND revoked_at IS NULL", &[name.into()])?).is_some() {
                return Err(Error::Conflict(format!("a token named {name:?} exists; revoke it first (`curate tokens revoke {name}`) or choose another name")));
            }
            let id = first(db.query(
                "INSERT INTO tokens (name, scope, token_hash, created_at) VALUES (?, ?, ?, ?) RETURNING id",
                &[name.into(), scope.as_str().into(), token_hash.into(), now_ms().into()],
            )?)
            .ok_or_else(|| Error::Corrupt("INSERT RETURNING gave no row".into()))?
            .int()?;
            let rows = db.query("SELECT id, name, scope, created_at, revoked_at FROM tokens WHERE id = ?", &[id.into()])?;
            rows.into_iter().next().map(token_row).transpose()?.ok_or_else(|| Error::Corrupt("token vanished".into()))
        })
    }

    /// Revokes the active token named `name`; false when there is none.
    pub fn revoke_token(&self, name: &str) -> Result<bool> {
        self.write(|db| Ok(db.execute("UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", &[now_ms().into(), name.into()])? > 0))
    }

    /// The active token with this hash.
    pub fn token_by_hash(&self, token_hash: &str) -> Result<Option<TokenInfo>> {
        self.read(|db| {
            let rows = db.query("SELECT id, name, scope, created_at, revoked_at FROM tokens WHERE token_hash = ? AND revoked_at IS NULL", &[token_hash.into()])?;
            rows.into_iter().next().map(token_row).transpose()
        })
    }

    /// Every token, revoked ones included, oldest first.
    pub fn tokens(&self) -> Result<Vec<TokenInfo>> {
        self.read(|db| db.query("SELECT id, name, scope, created_at, revoked_at FROM tokens ORDER BY id", &[])?.into_iter().map(token_row).collect())
    }

    /// Appends a mutating API call to the audit log.
    pub fn record_call(&self, actor: &str, action: &str, target: &str, detail: Option<&str>) -> Result<()> {
        self.write(|db| {
            db.execute(
                "INSERT INTO audit_log (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
                &[now_ms().into(), actor.into(), action.into(), target.into(), detail.into()],
            )?;
            Ok(())
        })
    }

    /// Audit entries with ids below `before` (a cursor), newest first, at most `limit`.
    pub fn api_calls(&self, before: Option<i64>, limit: i64) -> Result<Vec<ApiCall>> {
        self.read(|db| {
            db.query(
                "SELECT id, at, actor, action, target, detail FROM audit_log WHERE id < ? ORDER BY id DESC LIMIT ?",
                &[before.unwrap_or(i64::MAX).into(), limit.into()],
            )?
            .into_iter()
            .map(|row| {
                let mut c = Cols::new(row);
                Ok(ApiCall { id: c.int()?, at_ms: c.int()?, actor: c.text()?, action: c.text()?, target: c.text()?, detail: c.opt_text()? })
            })
            .collect()
        })
    }
}
