//! Errors as `application/problem+json` (RFC 9457) with a message a person can act on.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answer: status, title, detail, and for validation the list of problems.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) detail: String,
    pub(crate) errors: Vec<String>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        ApiError { status, detail: detail.into(), errors: Vec::new() }
    }
    pub(crate) fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, detail)
    }
    pub(crate) fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }
    pub(crate) fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }
    pub(crate) fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }
    /// A spec or request that does not validate: 422 with one entry per problem.
    pub(crate) fn invalid(detail: impl Into<String>) -> Self {
        let detail = detail.into();
        let errors = detail.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
        ApiError { status: StatusCode::UNPROCESSABLE_ENTITY, detail, errors }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("error");
        let mut body = json!({ "type": "about:blank", "title": title, "status": self.status.as_u16(), "detail": self.detail });
        if !self.errors.is_empty() {
            body["errors"] = json!(self.errors);
        }
        (self.status, [(header::CONTENT_TYPE, "application/problem+json")], body.to_string()).into_response()
    }
}

impl From<curate_registry::Error> for ApiError {
    fn from(e: curate_registry::Error) -> Self {
        use curate_registry::Error as E;
        let status = match &e {
            E::JobNotFound(_) | E::TaskNotFound(_) | E::DatasetNotFound(_) | E::VersionNotFound(_) | E::RunNotFound(_) | E::AuditNotFound(_) => StatusCode::NOT_FOUND,
            E::InvalidReference { .. } | E::InvalidTag { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            E::Conflict(_) => StatusCode::CONFLICT,
            E::UnknownSources(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "registry call failed");
        }
        ApiError::new(status, e.to_string())
    }
}

impl From<curate_datasets::Error> for ApiError {
    fn from(e: curate_datasets::Error) -> Self {
        match e {
            curate_datasets::Error::Registry(r) => r.into(),
            curate_datasets::Error::Invalid(m) => ApiError::invalid(m),
            other => {
                tracing::error!(error = %other, "dataset call failed");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string())
            }
        }
    }
}
