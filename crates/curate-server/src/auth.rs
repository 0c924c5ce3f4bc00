//! Bearer tokens: random, shown once, stored as their blake3 hash; scopes nest
//! (`admin` > `run` > `read`).

use std::io::Read;

use axum::http::HeaderMap;
use curate_registry::{Registry, Scope, TokenInfo};

use crate::problem::ApiError;

/// The stored form of a token. A fast hash suffices: tokens carry 256 random bits, so
/// there is nothing to guess from the hash.
pub fn hash_token(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

/// Creates a token named `name` with `scope`; returns it with the secret, which is
/// not stored and cannot be shown again.
pub fn create_token(reg: &Registry, name: &str, scope: Scope) -> Result<(TokenInfo, String), curate_registry::Error> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes))?;
    let secret = format!("cur_{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
    let info = reg.create_token(name, scope, &hash_token(&secret))?;
    Ok((info, secret))
}

/// The token a request carries, checked for `scope`: 401 without a valid token, 403
/// when its scope is too small.
pub(crate) fn authorize(reg: &Registry, headers: &HeaderMap, scope: Scope) -> Result<TokenInfo, ApiError> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Err(ApiError::unauthorized("no token: send `Authorization: Bearer TOKEN` (create one with `curate tokens create --scope run --name NAME`)"));
    };
    let token = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).map(str::trim).unwrap_or_default();
    if token.is_empty() {
        return Err(ApiError::unauthorized("the Authorization header must be `Bearer TOKEN`"));
    }
    let Some(info) = reg.token_by_hash(&hash_token(token))? else {
        return Err(ApiError::unauthorized("unknown or revoked token"));
    };
    if info.scope < scope {
        return Err(ApiError::forbidden(format!("token {:?} has scope {}; this call needs {}", info.name, info.scope.as_str(), scope.as_str())));
    }
    Ok(info)
}
