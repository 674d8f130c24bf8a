//! `GET /api/v1/students`: its query parameters, the `Prefer: count=…`
//! header, and the headers of the page (`Link` to the next one,
//! `Preference-Applied`).
//!
//! Rules: every parameter is validated here, before the store sees it; a
//! bad value is a 400 `invalid-parameter` naming what is wrong. What a page
//! may cost is bounded here: `limit` at 100, `offset` at 10,000 (the
//! database reads every skipped row; `cursor` pages at any depth), `q` at 3
//! characters or more (no index serves shorter substrings).

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;

use super::cursor;
use crate::domain::TEXT_MAX_CHARS;
use crate::http::error::ApiError;
use crate::http::extract::{check_query_encoding, parse_in_range};
use crate::storage::{CountMode, ListQuery, Page, Position, Sort, SortKey, Start};

pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;
/// The deepest `offset` accepted: deeper pages are reached by `cursor`.
pub const MAX_OFFSET: i64 = 10_000;
/// The shortest search: trigram indexes serve three characters or more.
pub const MIN_SEARCH_CHARS: usize = 3;

/// RFC 7240's response header, which axum does not name.
pub static PREFERENCE_APPLIED: HeaderName = HeaderName::from_static("preference-applied");

/// Every accepted `sort` value, as documented.
pub const SORTS: [&str; 8] = [
    "id", "-id", "name", "-name", "gpa", "-gpa", "created", "-created",
];

/// The `sort` value that stands for `sort`.
pub fn sort_name(sort: Sort) -> &'static str {
    let index = match sort.key {
        SortKey::Id => 0,
        SortKey::Name => 2,
        SortKey::Gpa => 4,
        SortKey::Created => 6,
    };
    SORTS[index + usize::from(sort.descending)]
}

fn parse_sort(raw: &str) -> Option<Sort> {
    let (descending, key) = match raw.strip_prefix('-') {
        Some(key) => (true, key),
        None => (false, raw),
    };
    let key = match key {
        "id" => SortKey::Id,
        "name" => SortKey::Name,
        "gpa" => SortKey::Gpa,
        "created" => SortKey::Created,
        _ => return None,
    };
    Some(Sort { key, descending })
}

/// A validated list request.
pub struct ListRequest {
    pub query: ListQuery,
    /// The count the client asked for with `Prefer`, if it did.
    pub preferred_count: Option<CountMode>,
    /// `limit`, `sort` and `q` as the client gave them, for the `Link`.
    given: RawListParams,
}

#[derive(Deserialize, Default)]
struct RawListParams {
    limit: Option<String>,
    offset: Option<String>,
    q: Option<String>,
    sort: Option<String>,
    cursor: Option<String>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::InvalidParameter(message.into())
}

impl<S: Send + Sync> FromRequestParts<S> for ListRequest {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        check_query_encoding(parts.uri.query().unwrap_or_default())
            .map_err(|e| invalid(format!("invalid query string: {e}")))?;
        let Query(raw) = Query::<RawListParams>::try_from_uri(&parts.uri)
            .map_err(|e| invalid(format!("invalid query string: {}", e.body_text())))?;
        let query = parse(&raw)?;
        Ok(Self {
            query,
            preferred_count: preferred_count(&parts.headers),
            given: raw,
        })
    }
}

fn parse(raw: &RawListParams) -> Result<ListQuery, ApiError> {
    let limit = match raw.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(v) => parse_in_range(v, 1, MAX_LIMIT)
            .ok_or_else(|| invalid(format!("limit must be an integer from 1 to {MAX_LIMIT}")))?,
    };
    let offset = match raw.offset.as_deref() {
        None => None,
        Some(v) => Some(
            parse_in_range(v, 0, i64::MAX)
                .ok_or_else(|| invalid("offset must be a non-negative integer"))?,
        ),
    };
    if offset.is_some_and(|offset| offset > MAX_OFFSET) {
        return Err(invalid(format!(
            "offset must be at most {MAX_OFFSET}: to page deeper, follow next_cursor \
             (or the Link header) with the cursor parameter"
        )));
    }
    let search = match raw.q.as_deref() {
        Some(q) if q.chars().count() > TEXT_MAX_CHARS || q.chars().any(char::is_control) => {
            return Err(invalid(format!(
                "q must be at most {TEXT_MAX_CHARS} characters without control characters"
            )));
        }
        Some(q) if !q.is_empty() && q.chars().count() < MIN_SEARCH_CHARS => {
            return Err(invalid(format!(
                "q must be at least {MIN_SEARCH_CHARS} characters: a search needs at least \
                 {MIN_SEARCH_CHARS} characters (or leave q out to list every student)"
            )));
        }
        Some(q) if !q.is_empty() => Some(q.to_owned()),
        _ => None,
    };
    let sort = match raw.sort.as_deref() {
        None => Sort::default(),
        Some(v) => parse_sort(v)
            .ok_or_else(|| invalid(format!("sort must be one of: {}", SORTS.join(", "))))?,
    };
    let start = match (&raw.cursor, offset) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "cursor and offset cannot be used together: a cursor already says where the page starts",
            ))
        }
        (Some(raw), None) => Start::After(
            cursor::decode(raw, sort, search.as_deref()).map_err(|e| invalid(e.0))?,
        ),
        (None, offset) => Start::Offset(offset.unwrap_or(0)),
    };
    Ok(ListQuery {
        limit,
        start,
        search,
        sort,
        count: CountMode::default(),
    })
}

/// The `count` preference of the `Prefer` headers (RFC 7240): the first
/// one that names `count` decides; a value this service does not know is
/// ignored, as RFC 7240 asks of preferences a server cannot honour.
fn preferred_count(headers: &HeaderMap) -> Option<CountMode> {
    let value = headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|preference| {
            // Parameters after ';' do not matter for `count`.
            let preference = preference.split(';').next()?.trim();
            let (name, value) = preference.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("count")
                .then(|| value.trim().trim_matches('"').to_owned())
        })?;
    match value.as_str() {
        "exact" => Some(CountMode::Exact),
        "planned" => Some(CountMode::Planned),
        "estimated" => Some(CountMode::Estimated),
        _ => None,
    }
}

/// Characters kept as they are in a query value: RFC 3986's unreserved.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

impl ListRequest {
    /// The cursor of the page after `page`, when there is one.
    pub fn next_cursor(&self, page: &Page) -> Option<String> {
        let last = page.records.last().filter(|_| page.has_more)?;
        let position = Position::of(last, self.query.sort.key);
        Some(cursor::encode(
            self.query.sort,
            self.query.search.as_deref(),
            &position,
        ))
    }

    /// The `Link` header to the next page: the parameters the client gave
    /// (but `offset`) and the cursor, as a relative URI (RFC 8288).
    pub fn next_link(&self, path: &str, next_cursor: &str) -> Option<HeaderValue> {
        let given = [
            ("limit", &self.given.limit),
            ("sort", &self.given.sort),
            ("q", &self.given.q),
        ];
        let mut query: Vec<String> = given
            .into_iter()
            .filter_map(|(name, value)| {
                value
                    .as_deref()
                    .map(|v| format!("{name}={}", utf8_percent_encode(v, QUERY_VALUE)))
            })
            .collect();
        query.push(format!(
            "cursor={}",
            utf8_percent_encode(next_cursor, QUERY_VALUE)
        ));
        HeaderValue::from_str(&format!("<{path}?{}>; rel=\"next\"", query.join("&"))).ok()
    }

    /// The headers of the response beyond its body.
    pub fn headers(&self, path: &str, next_cursor: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        // Another count preference, another `total`: caches must tell.
        headers.insert(header::VARY, HeaderValue::from_static("prefer"));
        if let Some(count) = self.preferred_count {
            let applied = match count {
                CountMode::Exact => "count=exact",
                CountMode::Planned => "count=planned",
                CountMode::Estimated => "count=estimated",
            };
            headers.insert(
                PREFERENCE_APPLIED.clone(),
                HeaderValue::from_static(applied),
            );
        }
        if let Some(link) = next_cursor.and_then(|c| self.next_link(path, c)) {
            headers.insert(header::LINK, link);
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> RawListParams {
        let mut raw = RawListParams::default();
        for (name, value) in pairs {
            let value = Some((*value).to_owned());
            match *name {
                "limit" => raw.limit = value,
                "offset" => raw.offset = value,
                "q" => raw.q = value,
                "sort" => raw.sort = value,
                "cursor" => raw.cursor = value,
                other => panic!("{other}"),
            }
        }
        raw
    }

    fn message(pairs: &[(&str, &str)]) -> String {
        match parse(&raw(pairs)) {
            Err(ApiError::InvalidParameter(message)) => message,
            other => panic!("{pairs:?}: {other:?}"),
        }
    }

    #[test]
    fn every_sort_value_names_itself() {
        for name in SORTS {
            assert_eq!(sort_name(parse_sort(name).unwrap()), name);
        }
        for bad in [
            "",
            "-",
            "--id",
            "ID",
            "name ",
            "+name",
            "email",
            "-created_at",
        ] {
            assert_eq!(parse_sort(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn short_searches_deep_offsets_and_offset_with_cursor_are_refused() {
        assert!(message(&[("q", "ab")]).contains("at least 3 characters"));
        assert!(message(&[("q", "é")]).contains("at least 3 characters"));
        assert!(parse(&raw(&[("q", "abc")])).is_ok());
        assert!(parse(&raw(&[("q", "")])).unwrap().search.is_none());
        assert!(message(&[("offset", "10001")]).contains("cursor"));
        assert_eq!(
            parse(&raw(&[("offset", "10000")])).unwrap().start,
            Start::Offset(10_000)
        );
        let cursor = cursor::encode(Sort::default(), None, &Position::Id(3));
        assert!(message(&[("offset", "0"), ("cursor", &cursor)]).contains("together"));
        assert_eq!(
            parse(&raw(&[("cursor", &cursor)])).unwrap().start,
            Start::After(Position::Id(3))
        );
    }

    #[test]
    fn the_first_count_preference_decides() {
        let prefer = |values: &[&str]| {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append("prefer", HeaderValue::from_str(value).unwrap());
            }
            preferred_count(&headers)
        };
        assert_eq!(prefer(&[]), None);
        assert_eq!(prefer(&["count=exact"]), Some(CountMode::Exact));
        assert_eq!(
            prefer(&["return=minimal, Count=\"planned\"; x=1", "count=exact"]),
            Some(CountMode::Planned)
        );
        assert_eq!(
            prefer(&["handling=lenient", "count=estimated"]),
            Some(CountMode::Estimated)
        );
        assert_eq!(prefer(&["count=everything"]), None);
    }

    #[test]
    fn the_next_link_repeats_the_given_parameters_encoded() {
        let request = ListRequest {
            query: parse(&raw(&[("q", "a&b c"), ("sort", "-name")])).unwrap(),
            preferred_count: None,
            given: raw(&[("q", "a&b c"), ("sort", "-name")]),
        };
        assert_eq!(
            request.next_link("/api/v1/students", "abc-_").unwrap(),
            "</api/v1/students?sort=-name&q=a%26b%20c&cursor=abc-_>; rel=\"next\""
        );
    }
}
