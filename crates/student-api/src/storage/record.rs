//! Rows as they come out of the database, and the shapes of list queries.
//! These are storage types: the HTTP layer maps them to its own views.

use time::OffsetDateTime;

/// One row of the `students` table.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StudentRecord {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub domain: String,
    pub gpa: f64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A page request: `search` is matched case-insensitively against name and email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub limit: i64,
    pub offset: i64,
    pub search: Option<String>,
}

/// One page of students in id order, with the number of matching students.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub records: Vec<StudentRecord>,
    pub total: i64,
}

/// Connection pool occupancy, exported as metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Open connections, idle or in use.
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}
