//! The opaque `cursor` of list pages: where the next page starts.
//!
//! A cursor is base64url (no padding) of a small JSON object: a format
//! version, the `sort` it was issued for, a digest of the `q` it was issued
//! for, the last row's sort value and its id. Decoding checks all of it, so
//! a cursor that is truncated, corrupted, of another version or used with
//! another `sort` or `q` is refused with a message, never sent to the
//! database. Cursors are not signed: one forged in the right form only
//! moves the start of a page within the same query, which any client can
//! do anyway with a real cursor, and every value is checked for its type
//! and range before it is bound.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::domain::TEXT_MAX_CHARS;
use crate::storage::{Position, Sort, SortKey};

const VERSION: u8 = 1;

/// Longer than any cursor this service issues (a 100-character name of
/// 4-byte characters, escaped, is the longest part), shorter than what a
/// client could make the decoder chew on.
pub const MAX_CURSOR_CHARS: usize = 1024;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    /// Format version.
    v: u8,
    /// The `sort` value the cursor was issued for.
    s: String,
    /// Digest of the `q` it was issued for; absent without a search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    q: Option<String>,
    /// The last row's sort value; absent when sorted by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k: Option<Value>,
    /// The last row's id.
    i: i64,
}

/// Why a cursor was refused: the message is for the client.
#[derive(Debug, PartialEq, Eq)]
pub struct InvalidCursor(pub String);

/// A short digest of a search, enough to tell two searches apart.
fn digest(search: Option<&str>) -> Option<String> {
    search.map(|q| URL_SAFE_NO_PAD.encode(&Sha256::digest(q.as_bytes())[..12]))
}

/// The cursor of the page that starts after `position`.
pub fn encode(sort: Sort, search: Option<&str>, position: &Position) -> String {
    let (k, i) = match position {
        Position::Id(id) => (None, *id),
        Position::Name(name, id) => (Some(Value::from(name.as_str())), *id),
        Position::Gpa(gpa, id) => (Some(Value::from(*gpa)), *id),
        Position::Created(at, id) => (
            // A timestamp the database produced always formats.
            at.format(&Rfc3339).ok().map(Value::from),
            *id,
        ),
    };
    let payload = Payload {
        v: VERSION,
        s: super::list::sort_name(sort).to_owned(),
        q: digest(search),
        k,
        i,
    };
    // Serializing plain fields cannot fail.
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap_or_default())
}

/// The position `raw` stands for, if it was issued for `sort` and `search`.
pub fn decode(raw: &str, sort: Sort, search: Option<&str>) -> Result<Position, InvalidCursor> {
    let malformed = || {
        InvalidCursor(
            "cursor is not valid: pass the next_cursor of a previous page unchanged".to_owned(),
        )
    };
    if raw.is_empty() || raw.len() > MAX_CURSOR_CHARS {
        return Err(malformed());
    }
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| malformed())?;
    let payload: Payload = serde_json::from_slice(&bytes).map_err(|_| malformed())?;
    if payload.v != VERSION {
        return Err(InvalidCursor(
            "cursor is from another version of this service: start again without it".to_owned(),
        ));
    }
    let sort_name = super::list::sort_name(sort);
    if payload.s != sort_name || payload.q != digest(search) {
        return Err(InvalidCursor(format!(
            "cursor was issued for another sort or q: use it with the sort and q of the page \
             it came from (this request has sort={sort_name}{}), or start again without it",
            if search.is_some() {
                " and a q"
            } else {
                " and no q"
            }
        )));
    }
    let id = payload.i;
    if id < 1 {
        return Err(malformed());
    }
    let position = match (sort.key, payload.k) {
        (SortKey::Id, None) => Position::Id(id),
        (SortKey::Name, Some(Value::String(name)))
            if name.chars().count() <= TEXT_MAX_CHARS && !name.chars().any(char::is_control) =>
        {
            Position::Name(name, id)
        }
        (SortKey::Gpa, Some(Value::Number(gpa))) => match gpa.as_f64() {
            Some(gpa) if (0.0..=10.0).contains(&gpa) => Position::Gpa(gpa, id),
            _ => return Err(malformed()),
        },
        (SortKey::Created, Some(Value::String(at))) => Position::Created(
            OffsetDateTime::parse(&at, &Rfc3339).map_err(|_| malformed())?,
            id,
        ),
        _ => return Err(malformed()),
    };
    Ok(position)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const BY_NAME: Sort = Sort {
        key: SortKey::Name,
        descending: false,
    };
    const BY_CREATED_DESC: Sort = Sort {
        key: SortKey::Created,
        descending: true,
    };

    fn forge(payload: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(payload).unwrap())
    }

    #[test]
    fn a_cursor_round_trips_for_its_own_sort_and_search() {
        let positions = [
            (Sort::default(), Position::Id(7)),
            (BY_NAME, Position::Name("Zoë \"Z\" O'Brien".to_owned(), 3)),
            (
                Sort {
                    key: SortKey::Gpa,
                    descending: true,
                },
                Position::Gpa(8.700_000_000_000_001, 9),
            ),
            (
                BY_CREATED_DESC,
                Position::Created(datetime!(2026-11-24 10:00:00.123456 UTC), 12),
            ),
        ];
        for (sort, position) in positions {
            for search in [None, Some("ada")] {
                let cursor = encode(sort, search, &position);
                assert!(cursor.len() < MAX_CURSOR_CHARS);
                assert_eq!(decode(&cursor, sort, search), Ok(position.clone()));
            }
        }
    }

    #[test]
    fn a_cursor_is_refused_with_another_sort_or_search() {
        let cursor = encode(BY_NAME, Some("ada"), &Position::Name("Ada".to_owned(), 1));
        let descending = Sort {
            descending: true,
            ..BY_NAME
        };
        for (sort, search) in [
            (descending, Some("ada")),
            (Sort::default(), Some("ada")),
            (BY_NAME, Some("adb")),
            (BY_NAME, None),
        ] {
            let err = decode(&cursor, sort, search).unwrap_err();
            assert!(
                err.0.starts_with("cursor was issued for another"),
                "{err:?}"
            );
        }
    }

    #[test]
    fn truncated_corrupted_or_forged_cursors_are_refused() {
        let cursor = encode(BY_NAME, None, &Position::Name("Ada".to_owned(), 1));
        let too_long = "A".repeat(MAX_CURSOR_CHARS + 1);
        let mut bad = vec![
            String::new(),
            cursor[..cursor.len() - 3].to_owned(),
            format!("{cursor}=="),
            cursor.replace('e', "*"),
            too_long,
            "%%%".to_owned(),
        ];
        for payload in [
            serde_json::json!({"v": 1, "s": "name", "k": "Ada", "i": 0}),
            serde_json::json!({"v": 1, "s": "name", "k": "A\u{0}da", "i": 1}),
            serde_json::json!({"v": 1, "s": "name", "k": "a".repeat(101), "i": 1}),
            serde_json::json!({"v": 1, "s": "name", "k": 3, "i": 1}),
            serde_json::json!({"v": 1, "s": "name", "i": 1}),
            serde_json::json!({"v": 1, "s": "name", "k": "Ada", "i": 1, "x": 1}),
            serde_json::json!({"v": 1, "s": "name", "k": "Ada", "i": "1"}),
            serde_json::json!({"v": 1, "s": "name", "k": "Ada", "i": 1e300}),
            serde_json::json!([1, "name", "Ada", 1]),
        ] {
            bad.push(forge(&payload));
        }
        for raw in &bad {
            assert!(decode(raw, BY_NAME, None).is_err(), "{raw:?}");
        }
        let gpa = Sort {
            key: SortKey::Gpa,
            descending: false,
        };
        for k in [
            serde_json::json!(10.5),
            serde_json::json!(-1),
            serde_json::json!("8"),
        ] {
            let raw = forge(&serde_json::json!({"v": 1, "s": "gpa", "k": k, "i": 1}));
            assert!(decode(&raw, gpa, None).is_err(), "{k}");
        }
        let raw = forge(&serde_json::json!({"v": 1, "s": "-created", "k": "yesterday", "i": 1}));
        assert!(decode(&raw, BY_CREATED_DESC, None).is_err());
        let raw = forge(&serde_json::json!({"v": 2, "s": "name", "k": "Ada", "i": 1}));
        assert!(decode(&raw, BY_NAME, None)
            .unwrap_err()
            .0
            .contains("another version"));
    }
}
