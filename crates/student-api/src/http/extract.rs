//! Request extractors whose rejections are problem documents: a JSON object
//! body, a student id from the path, and the checks every query string
//! passes (the list's parameters are read in `students::list`).
//!
//! Rules: malformed input is a 4xx with a message naming what is wrong,
//! never a 500 and never axum's plain-text rejection. Input that parsers
//! usually repair silently is refused instead: a JSON object that names a
//! key twice (which one would win is the parser's choice, I-JSON forbids
//! it), and a query string whose percent-encoding is malformed or does not
//! decode to UTF-8 (decoders replace such bytes, so a search would run on
//! text the client never sent).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Number, Value};

use super::error::ApiError;

/// Largest accepted request body.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

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
        match serde_json::from_slice::<DistinctKeys>(&bytes) {
            Ok(DistinctKeys(Value::Object(map))) => Ok(Self(map)),
            Ok(_) => Err(ApiError::Validation(
                [("body".to_owned(), vec!["must be a JSON object".to_owned()])].into(),
            )),
            // A duplicate key is the only error the visitor itself raises.
            Err(e) if e.classify() == serde_json::error::Category::Data => Err(
                ApiError::MalformedBody(format!("request body must name each key once: {e}")),
            ),
            Err(e) => Err(ApiError::MalformedBody(format!(
                "request body is not valid JSON: {e}"
            ))),
        }
    }
}

/// A JSON value whose objects, at every depth, name each key once.
struct DistinctKeys(Value);

impl<'de> Deserialize<'de> for DistinctKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DistinctKeysVisitor).map(Self)
    }
}

struct DistinctKeysVisitor;

impl<'de> Visitor<'de> for DistinctKeysVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON text holds finite numbers only.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(DistinctKeys(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key {key:?}")));
            }
            let DistinctKeys(value) = access.next_value()?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
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
/// It also describes itself in the OpenAPI document.
#[derive(Debug, Clone, Copy, utoipa::IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
pub struct StudentId(
    /// Student id.
    #[param(minimum = 1)]
    pub i64,
);

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

/// Checks that every `%` starts an escape of two hexadecimal digits and that
/// the decoded query (`+` being a space) is UTF-8. Decoding the whole query
/// at once is enough: `&` and `=` are ASCII, so they cannot split a valid
/// UTF-8 sequence, and every parameter is valid exactly when the whole is.
pub(super) fn check_query_encoding(query: &str) -> Result<(), &'static str> {
    let bytes = query.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .ok_or("'%' must be followed by two hexadecimal digits")?;
                let hex = std::str::from_utf8(hex).map_err(|_| "invalid escape")?;
                decoded.push(u8::from_str_radix(hex, 16).map_err(|_| "invalid escape")?);
                i += 3;
            }
            b'+' => {
                decoded.push(b' ');
                i += 1;
            }
            byte => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    std::str::from_utf8(&decoded)
        .map(drop)
        .map_err(|_| "percent-encoded bytes must be UTF-8")
}

/// A decimal integer in `min..=max`, written in digits only (no sign, no spaces).
pub(super) fn parse_in_range(raw: &str, min: i64, max: i64) -> Option<i64> {
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
    fn malformed_or_non_utf8_percent_encoding_is_refused() {
        for good in [
            "",
            "q=ada",
            "q=%C3%A9mile",
            "q=a+b&limit=5",
            "q=%25",
            "q=%e2%82%ac",
        ] {
            assert_eq!(check_query_encoding(good), Ok(()), "{good:?}");
        }
        for bad in [
            "q=%FF",
            "q=%",
            "q=%Z",
            "q=%ZZ",
            "q=%C0%AF",
            "q=%ED%A0%80",
            "q=%C3&x=%A9",
            "q=%+1",
        ] {
            assert!(check_query_encoding(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn duplicate_keys_are_refused_at_every_depth() {
        let parse = |raw: &str| serde_json::from_str::<DistinctKeys>(raw).map(|d| d.0);
        assert_eq!(
            parse(r#"{"a":1,"b":[{"c":null}],"d":{"e":"x"}}"#).unwrap(),
            serde_json::json!({"a":1,"b":[{"c":null}],"d":{"e":"x"}})
        );
        for bad in [
            r#"{"a":1,"a":2}"#,
            r#"{"a":{"b":1,"b":1}}"#,
            r#"[{"a":1,"a":1}]"#,
        ] {
            let err = parse(bad).unwrap_err();
            assert_eq!(err.classify(), serde_json::error::Category::Data, "{bad}");
            assert!(err.to_string().starts_with("duplicate key"), "{err}");
        }
        assert_eq!(parse("1.5e3").unwrap(), serde_json::json!(1500.0));
        assert_eq!(parse("-7").unwrap(), serde_json::json!(-7));
    }

    #[test]
    fn range_parsing_rejects_signs_and_out_of_range_values() {
        assert_eq!(parse_in_range("100", 1, 100), Some(100));
        assert_eq!(parse_in_range("101", 1, 100), None);
        assert_eq!(parse_in_range("-5", 0, 10), None);
        assert_eq!(parse_in_range("", 0, 10), None);
    }
}
