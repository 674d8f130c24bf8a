//! Response bodies of the student endpoints, separate from storage rows.

use serde::{Serialize, Serializer};
use time::format_description::FormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};
use utoipa::ToSchema;

use crate::storage::{Page, StudentRecord};

/// A student as the API returns it.
#[derive(Debug, Serialize, ToSchema)]
pub struct StudentView {
    /// Server-assigned identifier.
    #[schema(minimum = 1, example = 1)]
    pub id: i64,
    #[schema(example = "Ada Lovelace")]
    pub name: String,
    #[schema(format = Email, example = "ada@example.org")]
    pub email: String,
    /// Field of study.
    #[schema(example = "Mathematics")]
    pub domain: String,
    #[schema(minimum = 0.0, maximum = 10.0, example = 8.7)]
    pub gpa: f64,
    /// When the student was created (RFC 3339, UTC, microseconds).
    #[serde(serialize_with = "rfc3339_micros")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-24T10:00:00.123456Z")]
    pub created_at: OffsetDateTime,
    /// When the student last changed (RFC 3339, UTC, microseconds).
    #[serde(serialize_with = "rfc3339_micros")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-24T10:00:00.123456Z")]
    pub updated_at: OffsetDateTime,
}

/// RFC 3339 in UTC with a fixed six-digit fraction, so that timestamps have
/// one width and sort as text the way they sort as times.
const RFC3339_MICROS: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

fn rfc3339_micros<S: Serializer>(at: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
    let text = at
        .to_offset(UtcOffset::UTC)
        .format(RFC3339_MICROS)
        .map_err(serde::ser::Error::custom)?;
    serializer.serialize_str(&text)
}

impl From<StudentRecord> for StudentView {
    fn from(r: StudentRecord) -> Self {
        Self {
            id: r.id,
            name: r.name,
            email: r.email,
            domain: r.domain,
            gpa: r.gpa,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// One page of students, in the requested order.
#[derive(Debug, Serialize, ToSchema)]
pub struct StudentPage {
    pub data: Vec<StudentView>,
    /// Number of students matching the query, across all pages: exact, or
    /// an estimate, as `Prefer: count=…` asked (by default exact up to
    /// 1,000 matches, an estimate beyond); null when no estimate exists.
    #[schema(minimum = 0, required = true)]
    pub total: Option<i64>,
    #[schema(minimum = 1, maximum = 100)]
    pub limit: i64,
    /// Students skipped by `offset` (0 for a page reached by `cursor`).
    #[schema(minimum = 0)]
    pub offset: i64,
    /// Whether students follow this page.
    pub has_more: bool,
    /// The `cursor` of the next page, null on the last one.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

impl StudentPage {
    pub fn new(page: Page, limit: i64, offset: i64, next_cursor: Option<String>) -> Self {
        Self {
            data: page.records.into_iter().map(StudentView::from).collect(),
            total: page.total,
            limit,
            offset,
            has_more: page.has_more,
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn timestamps_are_utc_with_six_fraction_digits() {
        let at = datetime!(2026-11-24 09:30:39.09 +02:00);
        let text = serde_json::to_value(StudentView {
            id: 1,
            name: String::new(),
            email: String::new(),
            domain: String::new(),
            gpa: 0.0,
            created_at: at,
            updated_at: at,
        })
        .unwrap();
        assert_eq!(text["created_at"], "2026-11-24T07:30:39.090000Z");
    }
}
