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

/// What a list is ordered by; ties are always broken by id, in the same
/// direction. Each key has an index on `(key, id)` on both backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    #[default]
    Id,
    Name,
    Gpa,
    Created,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sort {
    pub key: SortKey,
    pub descending: bool,
}

/// A row's place in a sort order: the value of its sort key and its id.
/// A page that starts after a position holds the rows that come after it,
/// whatever was inserted or deleted since (keyset pagination).
#[derive(Debug, Clone, PartialEq)]
pub enum Position {
    Id(i64),
    Name(String, i64),
    Gpa(f64, i64),
    Created(OffsetDateTime, i64),
}

impl Position {
    /// Where `record` stands when the list is sorted by `key`.
    pub fn of(record: &StudentRecord, key: SortKey) -> Self {
        match key {
            SortKey::Id => Self::Id(record.id),
            SortKey::Name => Self::Name(record.name.clone(), record.id),
            SortKey::Gpa => Self::Gpa(record.gpa, record.id),
            SortKey::Created => Self::Created(record.created_at, record.id),
        }
    }

    pub fn key(&self) -> SortKey {
        match self {
            Self::Id(_) => SortKey::Id,
            Self::Name(..) => SortKey::Name,
            Self::Gpa(..) => SortKey::Gpa,
            Self::Created(..) => SortKey::Created,
        }
    }
}

/// Where a page starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// After skipping this many matching rows (bounded by the HTTP layer:
    /// the database reads every skipped row).
    Offset(i64),
    /// Right after this position, which is in the query's sort order.
    After(Position),
}

/// How `total` is computed, PostgREST's three choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CountMode {
    /// Every matching row counted: its cost grows with the matches.
    Exact,
    /// The database's estimate without reading rows; `None` where the
    /// backend has none (a search on SQLite).
    Planned,
    /// Exact up to [`crate::storage::EXACT_COUNT_LIMIT`] matches, an
    /// estimate beyond (or where the database expects far more matches):
    /// what a list costs stays bounded at any size.
    #[default]
    Estimated,
}

/// A page request: `search` is matched case-insensitively against name and
/// email; `start`, when a position, is in the order of `sort`.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub limit: i64,
    pub start: Start,
    pub search: Option<String>,
    pub sort: Sort,
    pub count: CountMode,
}

/// One page of students in the requested order.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub records: Vec<StudentRecord>,
    /// The number of matching students as `CountMode` asked for it.
    pub total: Option<i64>,
    /// Whether rows follow the last one of this page.
    pub has_more: bool,
}

/// Connection pool occupancy, exported as metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Open connections, idle or in use.
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}
