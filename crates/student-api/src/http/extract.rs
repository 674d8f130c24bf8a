//! Request extractors whose rejections are problem documents: a JSON object
//! body, a student id from the path, and list query parameters.
//!
//! Rules: malformed input is a 4xx with a message naming what is wrong,
//! never a 500 and never axum's plain-text rejection.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::ApiError;
use crate::domain::TEXT_MAX_CHARS;
use crate::storage::ListQuery;

/// Largest accepted request body.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;

/// A request body that is a JSON object, sent as `application/json`.
/// Field-level validation happens later, so that every bad field is reported.
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json_content_type(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| match rejection {
                BytesRejection::FailedToBufferBody(_)
                    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE =>
                {
                    ApiError::PayloadTooLarge {
                        limit_kib: BODY_LIMIT_BYTES / 1024,
                    }
                }
                other => ApiError::MalformedBody(format!(
                    "could not read the request body: {}",
                    other.body_text()
                )),
            })?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(_) => Err(ApiError::Validation(
                [("body".to_owned(), vec!["must be a JSON object".to_owned()])].into(),
            )),
            Err(e) => Err(ApiError::MalformedBody(format!(
                "request body is not valid JSON: {e}"
            ))),
        }
    }
}

/// `application/json` or any `application/*+json`, parameters ignored.
fn is_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The `{id}` path segment: a positive 64-bit integer written in digits.
#[derive(Debug, Clone, Copy)]
pub struct StudentId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for StudentId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let invalid = || ApiError::InvalidParameter("id must be a positive integer".to_owned());
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| invalid())?;
        parse_positive_id(&raw).map(Self).ok_or_else(invalid)
    }
}

fn parse_positive_id(raw: &str) -> Option<i64> {
    parse_in_range(raw, 1, i64::MAX)
}

/// Query parameters of the list endpoint, validated into a [`ListQuery`].
pub struct ListParams(pub ListQuery);

#[derive(Deserialize)]
struct RawListParams {
    limit: Option<String>,
    offset: Option<String>,
    q: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for ListParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Query(raw) = Query::<RawListParams>::try_from_uri(&parts.uri).map_err(|e| {
            ApiError::InvalidParameter(format!("invalid query string: {}", e.body_text()))
        })?;
        let limit = match raw.limit.as_deref() {
            None => DEFAULT_LIMIT,
            Some(v) => parse_in_range(v, 1, MAX_LIMIT).ok_or_else(|| {
                ApiError::InvalidParameter(format!(
                    "limit must be an integer from 1 to {MAX_LIMIT}"
                ))
            })?,
        };
        let offset = match raw.offset.as_deref() {
            None => 0,
            Some(v) => parse_in_range(v, 0, i64::MAX).ok_or_else(|| {
                ApiError::InvalidParameter("offset must be a non-negative integer".to_owned())
            })?,
        };
        let search = match raw.q {
            Some(q) if q.chars().count() > TEXT_MAX_CHARS || q.chars().any(char::is_control) => {
                return Err(ApiError::InvalidParameter(format!(
                    "q must be at most {TEXT_MAX_CHARS} characters without control characters"
                )));
            }
            Some(q) if !q.is_empty() => Some(q),
            _ => None,
        };
        Ok(Self(ListQuery {
            limit,
            offset,
            search,
        }))
    }
}

/// A decimal integer in `min..=max`, written in digits only (no sign, no spaces).
fn parse_in_range(raw: &str, min: i64, max: i64) -> Option<i64> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse::<i64>().ok().filter(|v| (min..=max).contains(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn ids_are_positive_decimal_integers() {
        assert_eq!(parse_positive_id("42"), Some(42));
        assert_eq!(parse_positive_id("007"), Some(7));
        for bad in [
            "0",
            "-1",
            "+1",
            "1.0",
            "abc",
            "",
            " 1",
            "9223372036854775808",
        ] {
            assert_eq!(parse_positive_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn json_content_types_are_recognised_with_parameters() {
        let accepts = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
            is_json_content_type(&headers)
        };
        assert!(accepts("application/json"));
        assert!(accepts("Application/JSON; charset=utf-8"));
        assert!(accepts("application/merge-patch+json"));
        assert!(!accepts("text/plain"));
        assert!(!accepts("application/jsonx"));
        assert!(!is_json_content_type(&HeaderMap::new()));
    }

    #[test]
    fn range_parsing_rejects_signs_and_out_of_range_values() {
        assert_eq!(parse_in_range("100", 1, 100), Some(100));
        assert_eq!(parse_in_range("101", 1, 100), None);
        assert_eq!(parse_in_range("-5", 0, 10), None);
        assert_eq!(parse_in_range("", 0, 10), None);
    }
}
