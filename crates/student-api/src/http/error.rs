//! The HTTP error boundary: every failure becomes an RFC 9457 problem
//! document (`application/problem+json`).
//!
//! Rules: 4xx responses carry a message written for the client; 5xx
//! responses are opaque to the client while the full cause chain goes to the
//! log (at `error` for 500, `warn` for 503, whose cause is a dependency).
//! No variant carries a secret, so neither side can leak one.

use std::collections::BTreeMap;
use std::error::Error as StdError;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::storage::{StorageError, StorageFault};

/// Seconds a client should wait before retrying a 503 or a 507.
pub const RETRY_AFTER_SECS: u32 = 5;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// Field name → every message about that field.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    MalformedBody(String),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("request body must be sent with Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("request body is larger than the limit of {limit_kib} KiB")]
    PayloadTooLarge { limit_kib: usize },
    #[error("request target (path and query) is longer than the limit of {limit_kib} KiB")]
    UriTooLong { limit_kib: usize },
    #[error("request header fields are larger than the limit of {limit_kib} KiB")]
    HeadersTooLarge { limit_kib: usize },
    #[error("request body has invalid fields")]
    Validation(FieldErrors),
    #[error("no student with id {0}")]
    StudentNotFound(i64),
    #[error("no route for {0}")]
    RouteNotFound(String),
    #[error("method {0} is not allowed on this route")]
    MethodNotAllowed(String),
    #[error("email address is already used by another student")]
    EmailTaken,
    #[error("the service cannot reach its database right now; retry later")]
    Unavailable(#[source] StorageError),
    #[error("the database has no space left to store this change; retry later")]
    InsufficientStorage(#[source] StorageError),
    #[error("the database cannot store data right now; retry later")]
    StorageFault(#[source] StorageError),
    #[error("the request took too long and was abandoned; retry later")]
    Timeout,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
    /// A drill's fault injection failed this request on purpose.
    #[error("this request was failed on purpose: a fault-injection drill is running")]
    InjectedFault(StatusCode),
}

impl From<StorageError> for ApiError {
    fn from(err: StorageError) -> Self {
        match err {
            StorageError::EmailTaken => Self::EmailTaken,
            StorageError::Unavailable(_) => Self::Unavailable(err),
            StorageError::Fault(StorageFault::Full, _) => Self::InsufficientStorage(err),
            StorageError::Fault(..) => Self::StorageFault(err),
            other => Self::Internal(other.into()),
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:student-api:problem:validation-failed",
    "title": "Unprocessable Content",
    "status": 422,
    "detail": "request body has invalid fields",
    "errors": {"gpa": ["must be a number from 0 to 10"]}
}))]
pub struct Problem {
    /// URI identifying the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind of problem (the HTTP reason phrase).
    pub title: String,
    /// HTTP status code.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// Explanation specific to this occurrence.
    pub detail: String,
    /// For validation problems: field name → messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<FieldErrors>,
    /// For readiness problems: check name → result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks: Option<BTreeMap<String, String>>,
}

impl Problem {
    pub fn new(status: StatusCode, slug: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("urn:student-api:problem:{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: None,
            checks: None,
        }
    }

    /// Serialises the problem with its status and content type.
    pub fn into_response_with_status(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::INSUFFICIENT_STORAGE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}

impl ApiError {
    fn status_and_slug(&self) -> (StatusCode, &'static str) {
        match self {
            Self::MalformedBody(_) => (StatusCode::BAD_REQUEST, "malformed-body"),
            Self::InvalidParameter(_) => (StatusCode::BAD_REQUEST, "invalid-parameter"),
            Self::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type")
            }
            Self::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large"),
            Self::UriTooLong { .. } => (StatusCode::URI_TOO_LONG, "uri-too-long"),
            Self::HeadersTooLarge { .. } => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers-too-large",
            ),
            Self::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation-failed"),
            Self::StudentNotFound(_) | Self::RouteNotFound(_) => {
                (StatusCode::NOT_FOUND, "not-found")
            }
            Self::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed"),
            Self::EmailTaken => (StatusCode::CONFLICT, "email-taken"),
            Self::Unavailable(_) | Self::StorageFault(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            Self::InsufficientStorage(_) => {
                (StatusCode::INSUFFICIENT_STORAGE, "insufficient-storage")
            }
            Self::Timeout => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            Self::InjectedFault(status) => (*status, "injected-fault"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug) = self.status_and_slug();
        match &self {
            Self::Internal(err) => {
                tracing::error!(error = %cause_chain(err.as_ref()), "request failed");
            }
            Self::Unavailable(err) => {
                tracing::warn!(error = %cause_chain(err), "database unavailable");
            }
            // The storage layer logs each fault at `error` once, when it
            // starts; each request that meets it is a warning.
            Self::InsufficientStorage(err) | Self::StorageFault(err) => {
                tracing::warn!(error = %cause_chain(err), "database storage fault");
            }
            Self::InjectedFault(status) => {
                tracing::warn!(
                    status = status.as_u16(),
                    "fault injected: request failed on purpose"
                );
            }
            _ => {}
        }
        let mut problem = Problem::new(status, slug, self.to_string());
        let unread_body = matches!(self, Self::PayloadTooLarge { .. });
        if let Self::Validation(errors) = self {
            problem.errors = Some(errors);
        }
        let mut response = problem.into_response_with_status();
        if unread_body {
            // The rest of the body is not read: the connection cannot carry
            // another request, and the client should know before it tries.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// Formats an error and its sources as `outer: inner: root`.
pub fn cause_chain(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::DbError;

    #[test]
    fn the_cause_chain_lists_every_source() {
        let err = StorageError::Unavailable(DbError::TimedOut);
        assert_eq!(
            cause_chain(&err),
            "database unavailable: no database connection became available in time"
        );
    }

    #[tokio::test]
    async fn internal_errors_do_not_reveal_their_cause_to_the_client() {
        let err = ApiError::Internal(anyhow::anyhow!("relation \"students\" does not exist"));
        let response = err.into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            PROBLEM_CONTENT_TYPE
        );
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            serde_json::json!({"type": "urn:student-api:problem:internal", "title": "Internal Server Error",
                               "status": 500, "detail": "internal error"})
        );
    }

    #[tokio::test]
    async fn a_full_disk_is_a_507_and_other_storage_faults_a_503_both_with_retry_after() {
        let full = ApiError::from(StorageError::Fault(StorageFault::Full, DbError::NoRow));
        let response = full.into_response();
        assert_eq!(response.status(), StatusCode::INSUFFICIENT_STORAGE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
        let moved = ApiError::from(StorageError::Fault(StorageFault::Moved, DbError::NoRow));
        let response = moved.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
    }

    #[tokio::test]
    async fn unavailable_responses_carry_retry_after() {
        let response =
            ApiError::Unavailable(StorageError::Unavailable(DbError::TimedOut)).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
    }
}
