//! The SQL of the PostgreSQL store. Each fixed statement is prepared once
//! per connection, on first use; list statements are assembled per request
//! from fixed fragments. Values are bound, never written into SQL, except
//! the number of rows a statement returns: a number the service checked
//! (the page size plus one, 2 to 101) or a constant of its own. The planner
//! must see it to plan a prepared statement for a page: against `limit $1`
//! it plans for a tenth of the table, and keeps planning each execution.
//!
//! A list statement whose plan depends on a search's fragment is sent
//! unnamed, so PostgreSQL plans it with its values
//! ([`Statement::plan_with_values`]): a generic plan of a search cannot see
//! how rare the fragment is, and would choose between the trigram index and
//! the sort index blindly. Every other one has the same best plan whatever
//! its values, and its texts are few (a page per order and kind of start,
//! the counts, a search's walk and bounded read, which hide the fragment
//! from the planner: [`hidden_search_condition`]), so it is prepared once
//! per connection and then costs the server no parsing or planning. Every
//! shape is served by an index (`migrations/postgres`): the primary key or
//! `(key, id)` for the order and the keyset condition, the GIN trigram
//! index `students_search_trgm` on [`SEARCHED`] for `like '%…%'`.

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
    /// Whether the best plan depends on the values (a search's fragment),
    /// so that the statement must be planned with them each time.
    pub(super) plan_with_values: bool,
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

/// What a search matches: the name and the email in one text, in lower
/// case, exactly the expression of the trigram index `students_search_trgm`
/// (migration `20261205100004`), so that the planner uses the index and
/// that expression's statistics. One index read instead of one per column
/// halves the posting lists a search walks. `joined like lower(pattern)`
/// means what `name ilike pattern or email ilike pattern` did (`ilike` is
/// `like` on both sides in lower case): the separator is a control
/// character, which neither a name, an email nor a search may hold, so no
/// match can span it. The planner estimates `like` against the lowered
/// statistics as they are, where `ilike` lowered every entry again.
const SEARCHED: &str = r"lower(name || E'\x1f' || email)";

/// ` where …` for the search of `query`, binding it in `statement`.
fn search_condition(query: &ListQuery, statement: &mut Statement) -> Vec<String> {
    query
        .search
        .as_deref()
        .map(|q| {
            statement.plan_with_values = true;
            let p = statement.bind(Param::Text(contains_pattern(q)));
            format!("{SEARCHED} like lower({p})")
        })
        .into_iter()
        .collect()
}

/// The search of `query` with its fragment in a subquery, which the planner
/// cannot see into: for a statement whose route the service has already
/// chosen from its own estimate (`statistics`). The planner then estimates
/// no fragment, which costs it the statistics' histogram on every plan,
/// and plans the statement the same way for every fragment, so it is
/// prepared once per connection like those without a search. An index can
/// still serve it: the subquery runs once, before the scan.
fn hidden_search_condition(query: &ListQuery, statement: &mut Statement) -> String {
    let q = query.search.as_deref().unwrap_or_default();
    let p = statement.bind(Param::Text(contains_pattern(q)));
    format!("{SEARCHED} like (select lower({p}))")
}

fn where_clause(conditions: &[String]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!(" where {}", conditions.join(" and "))
    }
}

/// The keyset condition of a page after a cursor: a row comparison, which
/// walks the `(key, id)` index from the position on.
fn after_condition(query: &ListQuery, statement: &mut Statement) -> Option<String> {
    let Start::After(position) = &query.start else {
        return None;
    };
    let op = if query.sort.descending { "<" } else { ">" };
    let mut row = |key: &str, value: Param, id: i64| {
        let (k, i) = (statement.bind(value), statement.bind(Param::Int(id)));
        format!("({key}, id) {op} ({k}, {i})")
    };
    Some(match position {
        Position::Id(id) => format!("id {op} {}", statement.bind(Param::Int(*id))),
        Position::Name(name, id) => row("name", Param::Text(name.clone()), *id),
        Position::Gpa(gpa, id) => row("gpa", Param::Float(*gpa), *id),
        Position::Created(at, id) => row("created_at", Param::Time(*at), *id),
    })
}

/// The page's order, its columns qualified with `relation` when given.
fn order_by(query: &ListQuery, relation: &str) -> String {
    let direction = if query.sort.descending { " desc" } else { "" };
    match query.sort.key {
        SortKey::Id => format!("{relation}id{direction}"),
        key => format!(
            "{relation}{}{direction}, {relation}id{direction}",
            column(key)
        ),
    }
}

/// ` limit …` of `limit + 1` rows, so that the extra one says whether more
/// follow, and the offset of an offset page.
fn limit_clause(query: &ListQuery, statement: &mut Statement) -> String {
    let limit = query.limit + 1;
    match query.start {
        Start::Offset(offset) if offset > 0 => {
            format!(
                " limit {limit} offset {}",
                statement.bind(Param::Int(offset))
            )
        }
        _ => format!(" limit {limit}"),
    }
}

/// The page.
pub(super) fn page(query: &ListQuery) -> Statement {
    let mut statement = Statement::default();
    let mut conditions = search_condition(query, &mut statement);
    conditions.extend(after_condition(query, &mut statement));
    let limit = limit_clause(query, &mut statement);
    statement.sql = format!(
        "select {} from students{} order by {}{limit}",
        columns!(),
        where_clause(&conditions),
        order_by(query, "")
    );
    statement
}

/// The page of a search that walks the order's index from the start or
/// the cursor and tests each row, for a fragment expected to match many
/// students: their page comes after few rows. The walk stops after
/// `window` rows; fewer than `limit + 1` matches in them leave the page to
/// [`matches_page`]. The fragment is hidden from the planner
/// ([`hidden_search_condition`]): the plan is this walk whatever it is.
pub(super) fn walk_page(query: &ListQuery, window: i64) -> Statement {
    let mut statement = Statement::default();
    let after: Vec<String> = after_condition(query, &mut statement).into_iter().collect();
    let window = statement.bind(Param::Int(window));
    let search = hidden_search_condition(query, &mut statement);
    let limit = limit_clause(query, &mut statement);
    statement.sql = format!(
        "select * from (select {} from students{} order by {} limit {window}) as walked \
         where {search} order by {}{limit}",
        columns!(),
        where_clause(&after),
        order_by(query, ""),
        order_by(query, "")
    );
    statement
}

/// The page of a search from all its matches, read through the trigram
/// index and sorted: where a walk found too few of them in its window
/// (matches that sort together, as a first name in name order), or where
/// more matches than counted were expected to be few. It reads the
/// matches from the cursor on, however many they are.
pub(super) fn matches_page(query: &ListQuery) -> Statement {
    let mut statement = Statement::default();
    let mut conditions = search_condition(query, &mut statement);
    conditions.extend(after_condition(query, &mut statement));
    let limit = limit_clause(query, &mut statement);
    statement.sql = format!(
        "with matches as materialized (select {} from students{}) \
         select * from matches order by {}{limit}",
        columns!(),
        where_clause(&conditions),
        order_by(query, "")
    );
    statement
}

/// Where [`page_with_count`] puts the count, after the page's columns.
pub(super) const COUNT_COLUMN: usize = 7;

/// The page of a search expected to match few students, and the count of
/// its matches up to `EXACT_COUNT_LIMIT + 1` (in [`COUNT_COLUMN`] of every
/// row), from one read of them. For such a search the planner reads every
/// match from the trigram index and sorts them for the page anyway; the
/// count reads them again unless both are one statement. The matches are
/// read in no order and at most `EXACT_COUNT_LIMIT + 1` of them, so the
/// page is right only when the count stays within `EXACT_COUNT_LIMIT`: past
/// it, the caller asks for the page alone. When the page is empty, its one
/// row holds the count and nulls. The fragment is hidden from the planner
/// ([`hidden_search_condition`]), which reads the matches through the
/// trigram index for any fragment it cannot see.
pub(super) fn page_with_count(query: &ListQuery) -> Statement {
    let mut statement = Statement::default();
    let search = vec![hidden_search_condition(query, &mut statement)];
    let bound = EXACT_COUNT_LIMIT + 1;
    let after: Vec<String> = after_condition(query, &mut statement).into_iter().collect();
    let limit = limit_clause(query, &mut statement);
    statement.sql = format!(
        "with matches as materialized (select {} from students{} limit {bound}) \
         select page.*, counted.total from (select count(*) as total from matches) as counted \
         left join (select * from matches{} order by {}{limit}) as page on true \
         order by {}",
        columns!(),
        where_clause(&search),
        where_clause(&after),
        order_by(query, ""),
        order_by(query, "page.")
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
    let limit = EXACT_COUNT_LIMIT + 1;
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

/// The planner's estimate of the rows of `students` (`estimate_rel_size`),
/// over `pg_class as c`: the rows per page that `vacuum` or `analyze` last
/// counted, times the pages the table has now. Valid where [`COUNTED`].
pub(super) const TABLE_ROWS: &str =
    "c.reltuples / c.relpages * (pg_relation_size(c.oid) / current_setting('block_size')::int)";

/// Whether `students` (`pg_class as c`) was ever counted: before that the
/// planner guesses its size from its width instead.
pub(super) const COUNTED: &str = "c.reltuples >= 0 and c.relpages > 0";

/// [`TABLE_ROWS`]: cheaper than planning `explain select id from students`
/// for every page, and the same figure. Null when the table was never
/// counted, which leaves it to the planner.
pub(super) fn table_estimate() -> Statement {
    Statement {
        sql: format!(
            "select case when {COUNTED} then round({TABLE_ROWS})::int8 end \
             from pg_class as c where c.oid = to_regclass('students')"
        ),
        ..Statement::default()
    }
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
             where lower(name || E'\\x1f' || email) like lower($1) and (gpa, id) < ($2, $3) \
             order by gpa desc, id desc limit 21"
        );
        assert_eq!(statement.params.len(), 3);
        assert!(
            statement.plan_with_values,
            "a search is planned with its fragment"
        );
    }

    #[test]
    fn an_offset_page_skips_rows_in_id_order() {
        let statement = page(&query(Sort::default(), Start::Offset(40), None));
        assert_eq!(
            statement.sql,
            "select id, name, email, domain, gpa, created_at, updated_at from students \
             order by id limit 21 offset $1"
        );
        assert!(!statement.plan_with_values, "prepared once per connection");
    }

    #[test]
    fn the_bounded_count_asks_for_no_order() {
        let statement = bounded_count(&query(Sort::default(), Start::Offset(0), Some("garc")));
        assert_eq!(
            statement.sql,
            "select count(*) from (select 1 from students \
             where lower(name || E'\\x1f' || email) like lower($1) limit 1001) as matches"
        );
    }

    #[test]
    fn a_page_with_its_count_reads_the_matches_once_and_pages_them_in_order() {
        let sort = Sort {
            key: SortKey::Name,
            descending: false,
        };
        let statement = page_with_count(&query(
            sort,
            Start::After(Position::Name("Ada".to_owned(), 7)),
            Some("ada"),
        ));
        assert_eq!(
            statement.sql,
            "with matches as materialized (select id, name, email, domain, gpa, created_at, updated_at \
             from students where lower(name || E'\\x1f' || email) like (select lower($1)) limit 1001) \
             select page.*, counted.total from (select count(*) as total from matches) as counted \
             left join (select * from matches where (name, id) > ($2, $3) \
             order by name, id limit 21) as page on true \
             order by page.name, page.id"
        );
        assert_eq!(EXACT_COUNT_LIMIT + 1, 1001);
        assert_eq!(statement.params.len(), 3);
        assert!(!statement.plan_with_values, "prepared once per connection");
    }

    #[test]
    fn a_walk_tests_a_window_of_the_order_without_showing_the_planner_the_fragment() {
        let sort = Sort {
            key: SortKey::Created,
            descending: true,
        };
        let at = OffsetDateTime::UNIX_EPOCH;
        let statement = walk_page(
            &query(sort, Start::After(Position::Created(at, 9)), Some("ada")),
            18_332,
        );
        assert_eq!(
            statement.sql,
            "select * from (select id, name, email, domain, gpa, created_at, updated_at from students \
             where (created_at, id) < ($1, $2) order by created_at desc, id desc limit $3) as walked \
             where lower(name || E'\\x1f' || email) like (select lower($4)) \
             order by created_at desc, id desc limit 21"
        );
        assert!(matches!(statement.params[2], Param::Int(18_332)));
        assert!(!statement.plan_with_values, "prepared once per connection");
    }

    #[test]
    fn a_page_of_all_the_matches_reads_them_from_the_cursor_on() {
        let statement = matches_page(&query(
            Sort::default(),
            Start::After(Position::Id(40)),
            Some("ada"),
        ));
        assert_eq!(
            statement.sql,
            "with matches as materialized (select id, name, email, domain, gpa, created_at, updated_at \
             from students where lower(name || E'\\x1f' || email) like lower($1) and id > $2) \
             select * from matches order by id limit 21"
        );
        assert!(statement.plan_with_values);
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
