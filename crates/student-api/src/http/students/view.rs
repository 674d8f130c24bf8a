//! Response bodies of the student endpoints, separate from storage rows.

use serde::Serialize;
use time::OffsetDateTime;
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
    /// When the student was created (RFC 3339, UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the student last changed (RFC 3339, UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<StudentRecord> for StudentView {
    fn from(r: StudentRecord) -> Self {
        Self {
            id: r.id,
            name: r.name,
            email: r.email,
            domain: r.domain,
            gpa: r.gpa,
            created_at: r.created_at.to_offset(time::UtcOffset::UTC),
            updated_at: r.updated_at.to_offset(time::UtcOffset::UTC),
        }
    }
}

/// One page of students, ordered by id.
#[derive(Debug, Serialize, ToSchema)]
pub struct StudentPage {
    pub data: Vec<StudentView>,
    /// Number of students matching the query, across all pages.
    #[schema(minimum = 0)]
    pub total: i64,
    #[schema(minimum = 1, maximum = 100)]
    pub limit: i64,
    #[schema(minimum = 0)]
    pub offset: i64,
}

impl StudentPage {
    pub fn new(page: Page, limit: i64, offset: i64) -> Self {
        Self {
            data: page.records.into_iter().map(StudentView::from).collect(),
            total: page.total,
            limit,
            offset,
        }
    }
}
