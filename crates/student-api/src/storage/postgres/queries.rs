//! The SQL of the PostgreSQL store. Each fixed statement is prepared once
//! per connection, on first use; list statements are assembled per request
//! from fixed fragments (values are always bound, never written into SQL).
//!
//! List statements are sent unnamed, so PostgreSQL plans each one with its
//! values: a generic plan of a search cannot see how rare the fragment is,
//! and would choose between the trigram index and the sort index blindly.
//! Every shape is served by an index (`migrations/postgres`): the primary
//! key or `(key, id)` for the order and the keyset condition, the GIN
//! trigram indexes on `name` and `email` for `ilike '%…%'`.

use time::OffsetDateTime;
use tokio_postgres::types::{ToSql, Type};

use crate::storage::{ListQuery, Position, SortKey, Start, EXACT_COUNT_LIMIT};

macro_rules! columns {
    () => {
        "id, name, email, domain, gpa, created_at, updated_at"
    };
}

/// A statement the store runs; its position indexes the per-connection cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Query {
    Insert,
    SelectOne,
    Update,
    Delete,
}

impl Query {
    pub(super) const ALL: [Self; 4] = [Self::Insert, Self::SelectOne, Self::Update, Self::Delete];

    pub(super) fn sql(self) -> &'static str {
        match self {
            Self::Insert => concat!(
                "insert into students (name, email, email_key, domain, gpa) values ($1, $2, $3, $4, $5) returning ",
                columns!()
            ),
            Self::SelectOne => concat!("select ", columns!(), " from students where id = $1"),
            Self::Update => concat!(
                "update students set name = coalesce($2, name), email = coalesce($3, email), ",
                "email_key = coalesce($6, email_key), domain = coalesce($4, domain), ",
                "gpa = coalesce($5, gpa), updated_at = now() ",
                "where id = $1 returning ",
                columns!()
            ),
            Self::Delete => "delete from students where id = $1",
        }
    }
}

/// A value bound to a list statement.
#[derive(Debug)]
pub(super) enum Param {
    Text(String),
    Int(i64),
    Float(f64),
    Time(OffsetDateTime),
}

impl Param {
    pub(super) fn typed(&self) -> (&(dyn ToSql + Sync), Type) {
        match self {
            Self::Text(v) => (v, Type::TEXT),
            Self::Int(v) => (v, Type::INT8),
            Self::Float(v) => (v, Type::FLOAT8),
            Self::Time(v) => (v, Type::TIMESTAMPTZ),
        }
    }
}

/// An assembled statement and the values it binds, in order.
#[derive(Debug, Default)]
pub(super) struct Statement {
    pub(super) sql: String,
    pub(super) params: Vec<Param>,
}

impl Statement {
    /// Binds `param` and returns its placeholder.
    fn bind(&mut self, param: Param) -> String {
        self.params.push(param);
        format!("${}", self.params.len())
    }

    pub(super) fn typed_params(&self) -> Vec<(&(dyn ToSql + Sync), Type)> {
        self.params.iter().map(Param::typed).collect()
    }
}

fn column(key: SortKey) -> &'static str {
    match key {
        SortKey::Id => "id",
        SortKey::Name => "name",
        SortKey::Gpa => "gpa",
        SortKey::Created => "created_at",
    }
}

/// `q` as an `ilike` pattern that matches it literally anywhere: `\`, `%`
/// and `_` escaped (backslash is `like`'s default escape character).
pub(super) fn contains_pattern(q: &str) -> String {
    let mut pattern = String::with_capacity(q.len() + 2);
    pattern.push('%');
    for c in q.chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// ` where …` for the search of `query`, binding it in `statement`.
fn search_condition(query: &ListQuery, statement: &mut Statement) -> Vec<String> {
    query
        .search
        .as_deref()
        .map(|q| {
            let p = statement.bind(Param::Text(contains_pattern(q)));
            format!("(name ilike {p} or email ilike {p})")
        })
        .into_iter()
        .collect()
}

fn where_clause(conditions: &[String]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!(" where {}", conditions.join(" and "))
    }
}

/// The page: `limit + 1` rows, so that the extra one says whether more follow.
pub(super) fn page(query: &ListQuery) -> Statement {
    let mut statement = Statement::default();
    let mut conditions = search_condition(query, &mut statement);
    let descending = query.sort.descending;
    let (after, offset) = match &query.start {
        Start::Offset(offset) => (None, *offset),
        Start::After(position) => (Some(position), 0),
    };
    if let Some(position) = after {
        // A row comparison walks the (key, id) index from the position on.
        let op = if descending { "<" } else { ">" };
        let condition = match position {
            Position::Id(id) => format!("id {op} {}", statement.bind(Param::Int(*id))),
            Position::Name(name, id) => {
                let (k, i) = (
                    statement.bind(Param::Text(name.clone())),
                    statement.bind(Param::Int(*id)),
                );
                format!("(name, id) {op} ({k}, {i})")
            }
            Position::Gpa(gpa, id) => {
                let (k, i) = (
                    statement.bind(Param::Float(*gpa)),
                    statement.bind(Param::Int(*id)),
                );
                format!("(gpa, id) {op} ({k}, {i})")
            }
            Position::Created(at, id) => {
                let (k, i) = (
                    statement.bind(Param::Time(*at)),
                    statement.bind(Param::Int(*id)),
                );
                format!("(created_at, id) {op} ({k}, {i})")
            }
        };
        conditions.push(condition);
    }
    let direction = if descending { " desc" } else { "" };
    let order = match query.sort.key {
        SortKey::Id => format!("id{direction}"),
        key => format!("{}{direction}, id{direction}", column(key)),
    };
    let limit = statement.bind(Param::Int(query.limit + 1));
    let offset = if offset > 0 {
        format!(" offset {}", statement.bind(Param::Int(offset)))
    } else {
        String::new()
    };
    statement.sql = format!(
        "select {} from students{} order by {order} limit {limit}{offset}",
        columns!(),
        where_clause(&conditions)
    );
    statement
}

/// Counts the matches, stopping at `EXACT_COUNT_LIMIT + 1`. Run only when
/// the planner expects few matches. A search counts in no order: the order
/// does not change the count, and `order by id` would make the planner
/// either walk the primary key, testing every row until enough match
/// (60,000 rows for a fragment one student in 60 matches), or read and
/// sort every match of the trigram indexes' bitmap; without it, the
/// bitmap's heap scan stops at the limit. Without a search, id order reads
/// the first entries of the primary key only (an index-only scan).
pub(super) fn bounded_count(query: &ListQuery) -> Statement {
    let mut statement = Statement::default();
    let conditions = search_condition(query, &mut statement);
    let limit = statement.bind(Param::Int(EXACT_COUNT_LIMIT + 1));
    let (select, order) = if conditions.is_empty() {
        ("id", " order by id")
    } else {
        ("1", "")
    };
    statement.sql = format!(
        "select count(*) from (select {select} from students{}{order} limit {limit}) as matches",
        where_clause(&conditions)
    );
    statement
}

/// Counts every match.
pub(super) fn exact_count(query: &ListQuery) -> Statement {
    let mut statement = Statement::default();
    let conditions = search_condition(query, &mut statement);
    statement.sql = format!("select count(*) from students{}", where_clause(&conditions));
    statement
}

/// The planner's estimate of the matches: the plan only, no row read.
pub(super) fn planned_count(query: &ListQuery) -> Statement {
    let mut statement = Statement::default();
    let conditions = search_condition(query, &mut statement);
    statement.sql = format!(
        "explain select id from students{}",
        where_clause(&conditions)
    );
    statement
}

/// The row estimate of the top node in the first line of a text plan, as
/// in `Seq Scan on students  (cost=0.00..1.00 rows=42 width=8)`.
pub(super) fn plan_rows(first_line: &str) -> Option<i64> {
    let rest = &first_line[first_line.find(" rows=")? + " rows=".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{CountMode, Sort};

    fn query(sort: Sort, start: Start, search: Option<&str>) -> ListQuery {
        ListQuery {
            limit: 20,
            start,
            search: search.map(str::to_owned),
            sort,
            count: CountMode::Estimated,
        }
    }

    #[test]
    fn a_search_is_a_literal_contains_pattern() {
        assert_eq!(contains_pattern("a%b_c\\d"), "%a\\%b\\_c\\\\d%");
    }

    #[test]
    fn a_keyset_page_compares_rows_in_the_sort_direction() {
        let sort = Sort {
            key: SortKey::Gpa,
            descending: true,
        };
        let statement = page(&query(
            sort,
            Start::After(Position::Gpa(8.5, 7)),
            Some("ada"),
        ));
        assert_eq!(
            statement.sql,
            "select id, name, email, domain, gpa, created_at, updated_at from students \
             where (name ilike $1 or email ilike $1) and (gpa, id) < ($2, $3) \
             order by gpa desc, id desc limit $4"
        );
        assert_eq!(statement.params.len(), 4);
    }

    #[test]
    fn an_offset_page_skips_rows_in_id_order() {
        let statement = page(&query(Sort::default(), Start::Offset(40), None));
        assert_eq!(
            statement.sql,
            "select id, name, email, domain, gpa, created_at, updated_at from students \
             order by id limit $1 offset $2"
        );
    }

    #[test]
    fn the_bounded_count_asks_for_no_order() {
        let statement = bounded_count(&query(Sort::default(), Start::Offset(0), Some("garc")));
        assert_eq!(
            statement.sql,
            "select count(*) from (select 1 from students \
             where (name ilike $1 or email ilike $1) limit $2) as matches"
        );
    }

    #[test]
    fn the_row_estimate_is_read_from_the_plan() {
        assert_eq!(
            plan_rows("Bitmap Heap Scan on students  (cost=12.0..40.1 rows=1234 width=8)"),
            Some(1234)
        );
        assert_eq!(plan_rows("Result"), None);
    }

    #[test]
    fn each_query_has_its_own_cache_slot() {
        for (index, query) in Query::ALL.iter().enumerate() {
            assert_eq!(*query as usize, index, "{query:?}");
        }
    }
}
