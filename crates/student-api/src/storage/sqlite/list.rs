//! The list statements of the SQLite store, assembled per request from
//! fixed fragments (values are always bound, never written into SQL).
//!
//! Every shape is served by an index (`migrations/sqlite`): the rowid or
//! `(key, id)` for the order and the keyset condition; for a search, the
//! FTS5 table `students_search` (trigram tokenizer), which finds the
//! matches, joined to `students` by rowid. The join order is fixed
//! (`cross join`): SQLite knows nothing of how many rows a full-text match
//! returns, and walking the sort index while probing the matches would read
//! the whole index for a rare fragment. A search in id order reads only its
//! page (the full-text index returns matches in rowid order, from a cursor
//! on); in another order it sorts its matches: its cost grows with the
//! matches, never with the table. The total of a list without a search
//! comes from `students_count`, kept by triggers, so it is exact at no cost.

use sqlx::sqlite::SqliteArguments;
use sqlx::{Arguments, AssertSqlSafe, SqliteConnection};
use time::format_description::FormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

use crate::storage::{CountMode, ListQuery, Position, SortKey, Start, EXACT_COUNT_LIMIT};

const COLUMNS: &str = "students.id, students.name, students.email, students.domain, \
                       students.gpa, students.created_at, students.updated_at";

/// The text the `created_at` column holds (the migrations' default).
const TIMESTAMP: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// An assembled statement and its arguments, in order.
pub(super) struct Statement {
    pub(super) sql: String,
    pub(super) arguments: SqliteArguments,
}

impl Statement {
    fn new() -> Self {
        Self {
            sql: String::new(),
            arguments: SqliteArguments::default(),
        }
    }

    fn bind<T>(&mut self, value: T) -> Result<(), sqlx::Error>
    where
        T: for<'q> sqlx::Encode<'q, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite> + Send + 'static,
    {
        self.arguments.add(value).map_err(sqlx::Error::Encode)
    }
}

/// `q` as an FTS5 phrase: the trigram tokenizer matches it as a substring
/// of a column, case-insensitively. Double quotes are doubled inside it.
pub(super) fn phrase(q: &str) -> String {
    format!("\"{}\"", q.replace('"', "\"\""))
}

/// The expression a sort key orders by. With a search, id order is the
/// full-text index's own rowid order, which it returns without sorting and
/// from a cursor on.
fn column(key: SortKey, search: bool) -> &'static str {
    // Names sort without regard to ASCII case, as people read them.
    match key {
        SortKey::Id if search => "students_search.rowid",
        SortKey::Id => "students.id",
        SortKey::Name => "students.name collate nocase",
        SortKey::Gpa => "students.gpa",
        SortKey::Created => "students.created_at",
    }
}

/// The page: `limit + 1` rows, so that the extra one says whether more follow.
pub(super) fn page(query: &ListQuery) -> Result<Statement, sqlx::Error> {
    let mut statement = Statement::new();
    let mut conditions = Vec::new();
    let searching = query.search.is_some();
    let from = if let Some(q) = query.search.as_deref() {
        statement.bind(phrase(q))?;
        conditions.push("students_search match ?");
        "students_search cross join students on students.id = students_search.rowid"
    } else {
        "students"
    };
    let descending = query.sort.descending;
    let op = if descending { "<" } else { ">" };
    let keyset;
    let offset = match &query.start {
        Start::Offset(offset) => *offset,
        Start::After(position) => {
            match position {
                Position::Id(id) => statement.bind(*id)?,
                Position::Name(name, id) => {
                    statement.bind(name.clone())?;
                    statement.bind(*id)?;
                }
                Position::Gpa(gpa, id) => {
                    statement.bind(*gpa)?;
                    statement.bind(*id)?;
                }
                Position::Created(at, id) => {
                    statement.bind(timestamp(*at)?)?;
                    statement.bind(*id)?;
                }
            }
            keyset = match position.key() {
                SortKey::Id => format!("{} {op} ?", column(SortKey::Id, searching)),
                key => format!("({}, students.id) {op} (?, ?)", column(key, searching)),
            };
            conditions.push(&keyset);
            0
        }
    };
    let direction = if descending { " desc" } else { "" };
    let order = match query.sort.key {
        SortKey::Id => format!("{}{direction}", column(SortKey::Id, searching)),
        key => format!(
            "{}{direction}, students.id{direction}",
            column(key, searching)
        ),
    };
    statement.bind(query.limit + 1)?;
    statement.bind(offset)?;
    statement.sql = format!(
        "select {COLUMNS} from {from}{} order by {order} limit ? offset ?",
        where_clause(&conditions)
    );
    Ok(statement)
}

fn where_clause(conditions: &[&str]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!(" where {}", conditions.join(" and "))
    }
}

/// The `created_at` text of `at`, for a keyset comparison.
fn timestamp(at: OffsetDateTime) -> Result<String, sqlx::Error> {
    at.to_offset(UtcOffset::UTC)
        .format(TIMESTAMP)
        .map_err(|e| sqlx::Error::Encode(e.into()))
}

/// The statement that counts for `query`, if any: none for a planned
/// count of a search, which SQLite cannot estimate.
pub(super) fn count_statement(query: &ListQuery) -> Result<Option<Statement>, sqlx::Error> {
    let mut statement = Statement::new();
    let Some(q) = query.search.as_deref() else {
        // Kept exact by triggers: every mode gets the exact count.
        statement.sql.push_str("select n from students_count");
        return Ok(Some(statement));
    };
    statement.sql = match query.count {
        CountMode::Planned => return Ok(None),
        CountMode::Exact => {
            "select count(*) from students_search where students_search match ?".to_owned()
        }
        CountMode::Estimated => format!(
            "select count(*) from (select rowid from students_search \
             where students_search match ? limit {})",
            EXACT_COUNT_LIMIT + 1
        ),
    };
    statement.bind(phrase(q))?;
    Ok(Some(statement))
}

/// `total` as `query.count` asks for it.
pub(super) async fn count(
    conn: &mut SqliteConnection,
    query: &ListQuery,
) -> Result<Option<i64>, sqlx::Error> {
    let Some(statement) = count_statement(query)? else {
        return Ok(None);
    };
    let n: Option<i64> = sqlx::query_scalar_with(AssertSqlSafe(statement.sql), statement.arguments)
        .fetch_optional(conn)
        .await?;
    // Beyond the limit, the estimated count of a search is unknown here.
    let known = query.search.is_none()
        || query.count == CountMode::Exact
        || n.is_some_and(|n| n <= EXACT_COUNT_LIMIT);
    Ok(n.filter(|_| known))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Sort;
    use time::macros::datetime;

    #[test]
    fn quotes_in_a_search_stay_inside_the_phrase() {
        assert_eq!(phrase(r#"a"b"#), r#""a""b""#);
    }

    #[test]
    fn a_search_drives_the_join_and_the_keyset_follows_the_sort() {
        let query = ListQuery {
            limit: 20,
            start: Start::After(Position::Name("Ada".to_owned(), 4)),
            search: Some("lov".to_owned()),
            sort: Sort {
                key: SortKey::Name,
                descending: false,
            },
            count: CountMode::Estimated,
        };
        assert_eq!(
            page(&query).unwrap().sql,
            format!(
                "select {COLUMNS} from students_search cross join students on students.id = students_search.rowid \
                 where students_search match ? and (students.name collate nocase, students.id) > (?, ?) \
                 order by students.name collate nocase, students.id limit ? offset ?"
            )
        );
    }

    #[test]
    fn timestamps_compare_as_the_column_s_text() {
        assert_eq!(
            timestamp(datetime!(2026-11-24 09:30:39.09 +02:00)).unwrap(),
            "2026-11-24T07:30:39.090Z"
        );
    }
}
