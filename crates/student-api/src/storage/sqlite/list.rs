//! The list statements of the SQLite store, assembled per request from
//! fixed fragments (values are always bound, never written into SQL).
//!
//! Every shape is served by an index (`migrations/sqlite`): the rowid or
//! `(key, id)` for the order and the keyset condition; for a search, the
//! FTS5 table `students_search` (trigram tokenizer), which finds the
//! matches, joined to `students` by rowid. The join order is fixed
//! (`cross join`): SQLite knows nothing of how many rows a full-text match
//! returns. A search in id order reads only its page (the full-text index
//! returns matches in rowid order, from a cursor on). In another order a
//! search takes one of two routes ([`Route`]), chosen by counting its
//! matches up to a threshold T first: below T, its matches are read and
//! sorted (fewer than T rows); from T on, the order's index is walked and
//! each row tested for the fragment, which finds a page of `limit + 1`
//! after about `(limit + 1) × rows / T` rows. T = sqrt((limit + 1) × rows)
//! makes both bounds equal, about 4,600 rows for a page of 20 of a million
//! students. Both routes return the same rows: the walk's test folds case
//! exactly as the trigram tokenizer does ([`ascii_fold`]). The total of a
//! list without a search comes from `students_count`, kept by triggers, so
//! it is exact at no cost.

use sqlx::sqlite::SqliteArguments;
use sqlx::{Arguments, AssertSqlSafe, SqliteConnection};
use time::format_description::FormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

use crate::storage::{
    walk_threshold, CountMode, ListQuery, Position, SortKey, Start, StudentRecord,
    EXACT_COUNT_LIMIT, WALK_WINDOW,
};

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

/// How the page of a search is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    /// The full-text index finds the matches, which are joined to the table
    /// and, in an order other than id, sorted: for rare fragments.
    Matches,
    /// The order's index is walked from the start or the cursor, and each
    /// row is tested for the fragment: for common fragments, whose page
    /// comes after few rows. The walk stops after `window` rows: matches
    /// that all sort beyond it (a name fragment in name order) are found
    /// by the full-text route instead ([`fetch`]).
    Walk { window: i64 },
}

/// What is counted before the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Counting {
    Nothing,
    /// Every student (a list without a search), from `students_count`.
    Students,
    /// The matches of the search, all of them or up to a number.
    Matches(Option<i64>),
}

/// The result of [`count`]: `total`, the route of the page and what was
/// counted to find them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Counted {
    pub(super) total: Option<i64>,
    pub(super) route: Route,
    pub(super) counting: Counting,
}

/// `q` folded as the trigram tokenizer folds text (`case_sensitive 0`),
/// when that gives ASCII: ASCII letters to lower case, and the only two
/// other characters the tokenizer folds into ASCII, the Kelvin sign (to
/// `k`) and the long s (to `s`) (a test checks the list against every
/// character through SQLite itself). A fragment holding any other
/// character has no such fold, and takes the full-text route.
pub(super) fn ascii_fold(q: &str) -> Option<String> {
    q.chars()
        .map(|c| match c {
            '\u{212A}' => Some('k'),
            '\u{17F}' => Some('s'),
            c if c.is_ascii() => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// A column folded as [`ascii_fold`] folds a fragment: where the folded
/// fragment (ASCII) occurs in the tokenizer's folding of the column, the
/// column holds ASCII characters or the two folded into ASCII, which this
/// folds alike; any other character matches no character of the fragment.
fn folded(column: &str) -> String {
    format!("lower(replace(replace({column}, char(8490), 'k'), char(383), 's'))")
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
/// `route` applies to a search only.
pub(super) fn page(query: &ListQuery, route: Route) -> Result<Statement, sqlx::Error> {
    match (query.search.as_deref(), route) {
        (Some(q), Route::Walk { window }) => walk(query, q, window),
        _ => direct(query),
    }
}

/// The walk of a search: the first `window` rows of the order (from the
/// cursor on), each tested for the fragment.
fn walk(query: &ListQuery, q: &str, window: i64) -> Result<Statement, sqlx::Error> {
    let Some(fragment) = ascii_fold(q) else {
        return Err(sqlx::Error::Protocol(
            "a search without an ASCII fold cannot walk an index".into(),
        ));
    };
    let rows = ListQuery {
        limit: window - 1,
        start: match &query.start {
            Start::Offset(_) => Start::Offset(0),
            after @ Start::After(_) => after.clone(),
        },
        search: None,
        ..query.clone()
    };
    let mut statement = direct(&rows)?;
    statement.bind(fragment.clone())?;
    statement.bind(fragment)?;
    statement.bind(query.limit + 1)?;
    statement.bind(match query.start {
        Start::Offset(offset) => offset,
        Start::After(_) => 0,
    })?;
    // The window's rows come in order, but SQLite sorts them again: at
    // most the window's matches, a few rows.
    statement.sql = format!(
        "select * from ({}) as walked where (instr({}, ?) > 0 or instr({}, ?) > 0) \
         order by {} limit ? offset ?",
        statement.sql,
        folded("walked.name"),
        folded("walked.email"),
        order_by(query, false).replace("students.", "walked.")
    );
    Ok(statement)
}

fn order_by(query: &ListQuery, searching: bool) -> String {
    let direction = if query.sort.descending { " desc" } else { "" };
    match query.sort.key {
        SortKey::Id => format!("{}{direction}", column(SortKey::Id, searching)),
        key => format!(
            "{}{direction}, students.id{direction}",
            column(key, searching)
        ),
    }
}

/// A list without a search, or a search through the full-text index.
fn direct(query: &ListQuery) -> Result<Statement, sqlx::Error> {
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
                // The sort value twice: for the range start and for the
                // row-value comparison (see `keyset` below).
                Position::Name(name, id) => {
                    statement.bind(name.clone())?;
                    statement.bind(name.clone())?;
                    statement.bind(*id)?;
                }
                Position::Gpa(gpa, id) => {
                    statement.bind(*gpa)?;
                    statement.bind(*gpa)?;
                    statement.bind(*id)?;
                }
                Position::Created(at, id) => {
                    statement.bind(timestamp(*at)?)?;
                    statement.bind(timestamp(*at)?)?;
                    statement.bind(*id)?;
                }
            }
            // SQLite does not start an index range at a row-value
            // comparison whose first column carries a collation (`name
            // collate nocase`): it scans the index from its first entry,
            // so a deep page would cost its depth. The redundant bound on
            // the sort value alone gives the range its start.
            keyset = match position.key() {
                SortKey::Id => format!("{} {op} ?", column(SortKey::Id, searching)),
                key => {
                    let sort_value = column(key, searching);
                    format!("{sort_value} {op}= ? and ({sort_value}, students.id) {op} (?, ?)")
                }
            };
            conditions.push(&keyset);
            0
        }
    };
    let order = order_by(query, searching);
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

/// The page of `query` by `route`. A walk that finds fewer rows than the
/// page needs within its window may have stopped short of the matches (or
/// met the end of the list): the full-text route then finds them, reading
/// the window's rows and the matches at most.
pub(super) async fn fetch(
    conn: &mut SqliteConnection,
    query: &ListQuery,
    route: Route,
) -> Result<Vec<StudentRecord>, sqlx::Error> {
    let statement = page(query, route)?;
    let records: Vec<StudentRecord> =
        sqlx::query_as_with(AssertSqlSafe(statement.sql), statement.arguments)
            .fetch_all(&mut *conn)
            .await?;
    let full = i64::try_from(records.len()).unwrap_or(i64::MAX) > query.limit;
    if full || route == Route::Matches || query.search.is_none() {
        return Ok(records);
    }
    let statement = page(query, Route::Matches)?;
    sqlx::query_as_with(AssertSqlSafe(statement.sql), statement.arguments)
        .fetch_all(conn)
        .await
}

/// The statement that counts as `counting` says, if any.
pub(super) fn count_statement(
    query: &ListQuery,
    counting: Counting,
) -> Result<Option<Statement>, sqlx::Error> {
    let mut statement = Statement::new();
    match (counting, query.search.as_deref()) {
        (Counting::Nothing, _) | (Counting::Matches(_), None) => return Ok(None),
        // Kept exact by triggers: every mode gets the exact count.
        (Counting::Students, _) => statement.sql.push_str("select n from students_count"),
        (Counting::Matches(None), Some(q)) => {
            statement
                .sql
                .push_str("select count(*) from students_search where students_search match ?");
            statement.bind(phrase(q))?;
        }
        (Counting::Matches(Some(up_to)), Some(q)) => {
            statement.sql.push_str(
                "select count(*) from (select rowid from students_search \
                 where students_search match ? limit ?)",
            );
            statement.bind(phrase(q))?;
            statement.bind(up_to)?;
        }
    }
    Ok(Some(statement))
}

/// `total` as `query.count` asks for it, and the route of a search's page.
pub(super) async fn count(
    conn: &mut SqliteConnection,
    query: &ListQuery,
) -> Result<Counted, sqlx::Error> {
    let Some(q) = query.search.as_deref() else {
        let counting = Counting::Students;
        return Ok(Counted {
            total: run_count(conn, query, counting).await?,
            route: Route::Matches,
            counting,
        });
    };
    // In id order the full-text route reads only its page.
    let threshold = if query.sort.key != SortKey::Id && ascii_fold(q).is_some() {
        let rows = run_count(conn, query, Counting::Students).await?;
        // An offset page walks past its offset too.
        let skipped = match query.start {
            Start::Offset(offset) => offset,
            Start::After(_) => 0,
        };
        Some(walk_threshold(rows.unwrap_or(0), query.limit + skipped))
    } else {
        None
    };
    let counting = match (query.count, threshold) {
        (CountMode::Exact, _) => Counting::Matches(None),
        (CountMode::Estimated, _) => {
            Counting::Matches(Some(threshold.unwrap_or(0).max(EXACT_COUNT_LIMIT + 1)))
        }
        (CountMode::Planned, Some(threshold)) => Counting::Matches(Some(threshold)),
        (CountMode::Planned, None) => Counting::Nothing,
    };
    let matches = run_count(conn, query, counting).await?;
    let total = match query.count {
        CountMode::Exact => matches,
        // Beyond the limit, the estimated count of a search is unknown here.
        CountMode::Estimated => matches.filter(|&n| n <= EXACT_COUNT_LIMIT),
        // SQLite has no estimate of a search.
        CountMode::Planned => None,
    };
    let route = match (threshold, matches) {
        // Four times what spread matches need: matches bunched beyond the
        // window cost the window and the full-text route.
        (Some(threshold), Some(n)) if n >= threshold => Route::Walk {
            window: threshold.saturating_mul(WALK_WINDOW),
        },
        _ => Route::Matches,
    };
    Ok(Counted {
        total,
        route,
        counting,
    })
}

async fn run_count(
    conn: &mut SqliteConnection,
    query: &ListQuery,
    counting: Counting,
) -> Result<Option<i64>, sqlx::Error> {
    let Some(statement) = count_statement(query, counting)? else {
        return Ok(None);
    };
    sqlx::query_scalar_with(AssertSqlSafe(statement.sql), statement.arguments)
        .fetch_optional(conn)
        .await
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
            page(&query, Route::Matches).unwrap().sql,
            format!(
                "select {COLUMNS} from students_search cross join students on students.id = students_search.rowid \
                 where students_search match ? and students.name collate nocase >= ? \
                 and (students.name collate nocase, students.id) > (?, ?) \
                 order by students.name collate nocase, students.id limit ? offset ?"
            )
        );
    }

    #[test]
    fn a_common_search_walks_the_order_s_index_testing_each_row() {
        let query = ListQuery {
            limit: 20,
            start: Start::After(Position::Gpa(2.5, 4)),
            search: Some("Gr\u{212A}".to_owned()),
            sort: Sort {
                key: SortKey::Gpa,
                descending: true,
            },
            count: CountMode::Estimated,
        };
        let statement = page(&query, Route::Walk { window: 100 }).unwrap();
        let order = "order by students.gpa desc, students.id desc limit ? offset ?";
        assert_eq!(
            statement.sql,
            format!(
                "select * from (select {COLUMNS} from students \
                 where students.gpa <= ? and (students.gpa, students.id) < (?, ?) {order}) as walked \
                 where (instr({}, ?) > 0 or instr({}, ?) > 0) {}",
                folded("walked.name"),
                folded("walked.email"),
                order.replace("students.", "walked.")
            )
        );
        let search = Some("Grä".to_owned());
        assert!(page(&ListQuery { search, ..query }, Route::Walk { window: 100 }).is_err());
    }

    #[test]
    fn a_fragment_folds_into_ascii_as_the_tokenizer_folds_it() {
        assert_eq!(ascii_fold("GrAce.x@Y").as_deref(), Some("grace.x@y"));
        assert_eq!(ascii_fold("\u{212A}ri\u{17F}").as_deref(), Some("kris"));
        assert_eq!(ascii_fold("Ängel"), None);
    }

    #[test]
    fn the_threshold_balances_both_routes() {
        assert_eq!(walk_threshold(1_000_000, 20), 4_582);
        assert_eq!(walk_threshold(2_100, 20), 210);
        assert_eq!(walk_threshold(0, 20), 1);
    }

    #[test]
    fn timestamps_compare_as_the_column_s_text() {
        assert_eq!(
            timestamp(datetime!(2026-11-24 09:30:39.09 +02:00)).unwrap(),
            "2026-11-24T07:30:39.090Z"
        );
    }

    /// Both routes of a search on a real database: the same rows, page by
    /// page, for every order and for fragments in and out of ASCII case,
    /// and the route chosen at the threshold.
    mod routes {
        use sqlx::sqlite::SqliteConnectOptions;
        use sqlx::{Connection, SqliteConnection};

        use super::super::super::MIGRATOR;
        use super::*;
        use crate::storage::{Sort, StudentRecord};

        /// With 2,100 students and pages of 20, the threshold is 210.
        const ROWS: i64 = 2_100;
        /// Names in and out of ASCII, in several cases, with the two
        /// characters the tokenizer folds into ASCII and SQL's quotes.
        const FIRST: [&str; 12] = [
            "Grace",
            "GRACE",
            "grace",
            "\u{c4}ngel",
            "\u{e4}NGEL",
            "\u{c9}lodie",
            "\u{212A}elvin",
            "Kelvin",
            "Mo\u{17F}es",
            "MOSES",
            "\u{3a9}mega",
            "O'Brien \"Q\"",
        ];
        const DOMAINS: [&str; 3] = ["example.org", "EXAMPLE.net", "uni.edu"];
        /// Fragments matching 209, 210 and 211 students.
        const BELOW: &str = "zqa";
        const AT: &str = "zqb";
        const ABOVE: &str = "zqc";

        async fn seeded() -> (tempfile::TempDir, SqliteConnection) {
            let dir = tempfile::tempdir().unwrap();
            let options = SqliteConnectOptions::new()
                .filename(dir.path().join("students.db"))
                .create_if_missing(true);
            let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
            MIGRATOR.run(&mut conn).await.unwrap();
            let mut tx = conn.begin().await.unwrap();
            for i in 0..ROWS {
                let first = FIRST[usize::try_from(i).unwrap() % FIRST.len()];
                let marker = match i {
                    0..209 => BELOW,
                    209..419 => AT,
                    419..630 => ABOVE,
                    _ => "",
                };
                let name = format!("{first} {:04x}{marker}", (i * 40_503) % 65_536);
                let email = format!(
                    "s{i}@{}",
                    DOMAINS[usize::try_from(i).unwrap() % DOMAINS.len()]
                );
                sqlx::query(
                    "insert into students (name, email, email_key, domain, gpa, created_at) \
                     values (?, ?, lower(?), 'Physics', ?, \
                             strftime('%Y-%m-%dT%H:%M:%fZ', '2026-01-01', ? || ' seconds'))",
                )
                .bind(name)
                .bind(&email)
                .bind(&email)
                // Few distinct values: ties broken by id.
                .bind(f64::from(u8::try_from(i % 7).unwrap()))
                .bind((i * 7_919) % 5_003)
                .execute(&mut *tx)
                .await
                .unwrap();
            }
            tx.commit().await.unwrap();
            (dir, conn)
        }

        /// The page by the full-text route, checked against the walk within
        /// a window too small for most pages (which falls back) and within
        /// one as large as the table (which finds every page itself).
        async fn pages(conn: &mut SqliteConnection, query: &ListQuery) -> Vec<StudentRecord> {
            let matches = fetch(conn, query, Route::Matches).await.unwrap();
            for window in [45, ROWS] {
                let walked = fetch(conn, query, Route::Walk { window }).await.unwrap();
                assert_eq!(matches, walked, "{query:?}, window {window}");
            }
            let statement = page(query, Route::Walk { window: ROWS }).unwrap();
            let walked: Vec<StudentRecord> =
                sqlx::query_as_with(AssertSqlSafe(statement.sql), statement.arguments)
                    .fetch_all(&mut *conn)
                    .await
                    .unwrap();
            assert_eq!(matches, walked, "{query:?}, no fallback");
            matches
        }

        #[tokio::test]
        async fn both_routes_return_the_same_rows() {
            let (_dir, mut conn) = seeded().await;
            let fragments = [
                "grace",
                "GRAC",
                "kel",
                "\u{212A}EL",
                "mos",
                "mo\u{17F}",
                "example",
                "EXAMPLE.NET",
                "o'b",
                "\"q\"",
                BELOW,
                AT,
                ABOVE,
                "qzxv",
            ];
            let mut compared = 0;
            for q in fragments {
                for key in [SortKey::Id, SortKey::Name, SortKey::Gpa, SortKey::Created] {
                    for descending in [false, true] {
                        let mut query = ListQuery {
                            limit: 37,
                            start: Start::Offset(0),
                            search: Some(q.to_owned()),
                            sort: Sort { key, descending },
                            count: CountMode::Estimated,
                        };
                        let offset = ListQuery {
                            start: Start::Offset(40),
                            ..query.clone()
                        };
                        pages(&mut conn, &offset).await;
                        let mut seen = 0;
                        loop {
                            let matches = pages(&mut conn, &query).await;
                            compared += 1;
                            seen += matches.len().min(37);
                            if matches.len() <= 37 {
                                break;
                            }
                            query.start = Start::After(Position::of(&matches[36], key));
                        }
                        if q == "grace" {
                            assert_eq!(seen, 3 * 175, "{q} {key:?}");
                        }
                    }
                }
            }
            assert!(compared > 500, "{compared} pages compared");
        }

        #[tokio::test]
        async fn the_route_changes_at_the_threshold() {
            let (_dir, mut conn) = seeded().await;
            let routed = |q: &str, key, count| ListQuery {
                limit: 20,
                start: Start::Offset(0),
                search: Some(q.to_owned()),
                sort: Sort {
                    key,
                    descending: false,
                },
                count,
            };
            for (q, matching, route) in [
                (BELOW, 209, Route::Matches),
                (AT, 210, Route::Walk { window: 840 }),
                (ABOVE, 211, Route::Walk { window: 840 }),
            ] {
                for mode in [CountMode::Estimated, CountMode::Exact, CountMode::Planned] {
                    let query = routed(q, SortKey::Name, mode);
                    let counted = count(&mut conn, &query).await.unwrap();
                    assert_eq!(counted.route, route, "{query:?}");
                    let total = (mode != CountMode::Planned).then_some(matching);
                    assert_eq!(counted.total, total, "{query:?}");
                }
                // In id order, the full-text route reads only its page.
                let query = routed(q, SortKey::Id, CountMode::Estimated);
                assert_eq!(
                    count(&mut conn, &query).await.unwrap().route,
                    Route::Matches
                );
            }
            // No ASCII fold: the full-text route, however common.
            let query = routed("\u{e4}ngel", SortKey::Name, CountMode::Estimated);
            let counted = count(&mut conn, &query).await.unwrap();
            assert_eq!((counted.route, counted.total), (Route::Matches, Some(350)));
        }

        /// The characters outside ASCII that the trigram tokenizer folds into
        /// ASCII are exactly those `ascii_fold` knows, in the SQLite built
        /// with the store (checked over the first two planes of Unicode).
        #[tokio::test]
        async fn the_tokenizer_folds_only_two_characters_into_ascii() {
            let (_dir, mut conn) = seeded().await;
            sqlx::raw_sql(
                "create virtual table fold using fts5(t, tokenize = 'trigram case_sensitive 0');
                 with recursive n(c) as (select 128 union all select c + 1 from n where c < 131071)
                 insert into fold (rowid, t)
                 select c, 'x' || char(c) || 'x' from n where c not between 55296 and 57343;",
            )
            .execute(&mut conn)
            .await
            .unwrap();
            let folded: Vec<(String, i64)> = sqlx::query_as(
                "with recursive a(c) as (select 32 union all select c + 1 from a where c < 126)
                 select char(a.c), fold.rowid from a, fold
                 where fold match '\"x' || replace(char(a.c), '\"', '\"\"') || 'x\"'
                 order by a.c",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            let expected = [("K", 0x212A), ("S", 0x17F), ("k", 0x212A), ("s", 0x17F)];
            assert_eq!(folded, expected.map(|(a, c)| (a.to_owned(), c)).to_vec());
            for (a, c) in expected {
                let c = char::from_u32(u32::try_from(c).unwrap())
                    .unwrap()
                    .to_string();
                assert_eq!(
                    ascii_fold(&c).as_deref(),
                    Some(a.to_ascii_lowercase().as_str())
                );
            }
        }
    }
}
