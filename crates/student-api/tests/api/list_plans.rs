//! Every list, search and sort statement is served by an index, proven on
//! the plans the databases choose for a seeded table (no timing): on
//! PostgreSQL no `Seq Scan on students`, on SQLite no `SCAN students`
//! without an index (the rowid order of `sort=id` is the primary key
//! itself); and without a search, no sort step either, so a page reads
//! only its rows. On SQLite, a rare fragment's page goes through the
//! full-text index and a common one's, in an order other than id, walks
//! that order's index (no sort). The table holds enough rows, analysed, for the planners
//! to choose as they do at scale.

use std::sync::Arc;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::Connection as _;
use student_api::config::DatabaseTarget;
use student_api::credentials::Publisher;
use student_api::storage::{CountMode, ListQuery, Position, Sort, SortKey, Start, Store};

use crate::helpers::{config, connect, Backend, TestDb};

const ROWS: i64 = 30_000;
const FIRST_NAMES: [&str; 8] = [
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken",
];

/// A search that matches one row (a name's random part), and one that
/// matches an eighth of them.
const RARE: &str = "7f3e0b";
const COMMON: &str = "grace";

fn name_case(column: &str) -> String {
    let arms = FIRST_NAMES
        .iter()
        .enumerate()
        .map(|(i, name)| format!("when {i} then '{name}'"))
        .collect::<Vec<_>>()
        .join(" ");
    format!("(case {column} % 8 {arms} end)")
}

async fn seed_postgres(url: &str) {
    let client = connect(url).await;
    let first = name_case("i");
    client
        .batch_execute(&format!(
            "insert into students (name, email, email_key, domain, gpa, created_at)
             select n.first || ' ' || n.code, lower(n.first) || '.' || i || '@example.org',
                    lower(n.first) || '.' || i || '@example.org', 'Physics', (i % 1001) / 100.0,
                    now() - i * interval '1 second'
             from generate_series(1, {ROWS}) as i,
                  lateral (select {first} as first,
                                  case when i = 12345 then '{RARE}'
                                       else lpad(to_hex((i * 40503) % 16777216), 6, '0') end as code) as n"
        ))
        .await
        .expect("seed PostgreSQL");
    // As autovacuum does after a bulk load: statistics, the visibility map
    // (index-only scans) and the GIN indexes' pending entries merged.
    client
        .batch_execute("vacuum analyze students")
        .await
        .expect("vacuum");
}

async fn seed_sqlite(path: &std::path::Path) {
    let mut conn =
        sqlx::SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(path))
            .await
            .unwrap();
    let first = name_case("i");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "with recursive n(i) as (select 1 union all select i + 1 from n where i < {ROWS})
         insert into students (name, email, email_key, domain, gpa, created_at)
         select {first} || ' ' || (case when i = 12345 then '{RARE}'
                                        else printf('%06x', (i * 40503) % 16777216) end),
                lower({first}) || '.' || i || '@example.org',
                lower({first}) || '.' || i || '@example.org', 'Physics', (i % 1001) / 100.0,
                strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || i || ' seconds')
         from n;
         analyze;"
    )))
    .execute(&mut conn)
    .await
    .expect("seed SQLite");
}

/// The row in the middle of `key`'s ascending order: a cursor there leaves
/// half the rows on either side, as a cursor deep in a list does.
async fn middle(store: &Store, key: SortKey) -> Position {
    let query = ListQuery {
        limit: 1,
        start: Start::Offset(ROWS / 2),
        search: None,
        sort: Sort {
            key,
            descending: false,
        },
        count: CountMode::Planned,
    };
    let page = store.list(&query).await.unwrap();
    Position::of(&page.records[0], key)
}

/// Every shape a list request can take: each sort, with and without a
/// search, from the start, from a cursor and from an offset.
async fn shapes(store: &Store) -> Vec<ListQuery> {
    let mut queries = Vec::new();
    for key in [SortKey::Id, SortKey::Name, SortKey::Gpa, SortKey::Created] {
        let middle = middle(store, key).await;
        for descending in [false, true] {
            for search in [None, Some(RARE), Some(COMMON)] {
                for start in [
                    Start::Offset(0),
                    Start::After(middle.clone()),
                    Start::Offset(100),
                ] {
                    queries.push(ListQuery {
                        limit: 20,
                        start,
                        search: search.map(str::to_owned),
                        sort: Sort { key, descending },
                        count: CountMode::Estimated,
                    });
                }
            }
        }
    }
    queries
}

async fn assert_index_served(store: &Store, backend: Backend) {
    let mut checked = 0;
    for query in shapes(store).await {
        let plans = store.explain_list(&query).await.unwrap();
        for plan in &plans {
            let text = &plan.plan;
            let context = format!("{:?}\n{}\n{text}", query, plan.statement);
            match backend {
                Backend::Postgres => {
                    assert!(!text.contains("Seq Scan on students"), "{context}");
                    // A common fragment's page walks the order's index too.
                    if query.search.is_none() || query.search.as_deref() == Some(COMMON) {
                        assert!(!text.contains("Sort"), "{context}");
                    }
                    // A search is one statement besides its estimate: a
                    // rare fragment's page and count from one read of its
                    // matches through the trigram index, a common one's
                    // walk of the order's index, which it finds its page in
                    // (the window is a bound, not a read: a Limit over it).
                    if query.search.is_some() {
                        assert_eq!(plans.len(), 1, "{context}");
                        let rare = query.search.as_deref() == Some(RARE);
                        let walks = plan.statement.contains(") as walked where");
                        assert_eq!(walks, !rare, "{context}");
                        if rare {
                            assert!(plan.statement.starts_with("with matches"), "{context}");
                            assert!(text.contains("students_search_trgm"), "{context}");
                        }
                    }
                }
                Backend::Sqlite => {
                    for line in text.lines() {
                        let bare_scan = line == "SCAN students"
                            || (line.starts_with("SCAN students ") && !line.contains(" USING "));
                        assert!(
                            !bare_scan || (query.sort.key == SortKey::Id && query.search.is_none()),
                            "{context}"
                        );
                    }
                    // A page after a cursor starts its range at the cursor
                    // (`SEARCH … (name>?)`), rather than scanning the index
                    // from its first entry: a deep page costs a page.
                    if plan.statement.starts_with("select students.id")
                        && matches!(query.start, Start::After(_))
                        && query.sort.key != SortKey::Id
                        && query.search.is_none()
                    {
                        let ranged = text.lines().any(|line| {
                            line.starts_with("SEARCH students USING")
                                && (line.contains(">?)") || line.contains("<?)"))
                        });
                        assert!(ranged, "{context}");
                    }
                    // A common fragment in another order than id walks a
                    // window of the order's index, testing each row; its
                    // only sort is of the window's matches.
                    let common = query.search.as_deref() == Some(COMMON);
                    let walks = plan.statement.contains(") as walked where");
                    if query.search.is_none() || query.sort.key == SortKey::Id || common {
                        assert!(!text.contains("TEMP B-TREE") || walks, "{context}");
                    }
                    if plan.statement.starts_with("select students.id") || walks {
                        let walkable = common && query.sort.key != SortKey::Id;
                        assert_eq!(walks, walkable, "{context}");
                        if walks {
                            assert!(text.contains(" students USING INDEX "), "{context}");
                        }
                    }
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 8 * 3 * 3, "{checked} statements checked");
}

/// Totals at a size past the exact count's limit, by default and on request.
async fn assert_totals(store: &Store, backend: Backend) {
    let total = |search: Option<&str>, count| {
        let query = ListQuery {
            limit: 1,
            start: Start::Offset(0),
            search: search.map(str::to_owned),
            sort: Sort::default(),
            count,
        };
        async move { store.list(&query).await.unwrap().total }
    };
    let all = total(None, CountMode::Estimated).await.unwrap();
    assert_eq!(total(None, CountMode::Exact).await, Some(ROWS));
    assert_eq!(total(Some(RARE), CountMode::Estimated).await, Some(1));
    assert_eq!(total(Some(COMMON), CountMode::Exact).await, Some(ROWS / 8));
    let common = total(Some(COMMON), CountMode::Estimated).await;
    let planned = total(None, CountMode::Planned).await;
    let planned_search = total(Some(COMMON), CountMode::Planned).await;
    match backend {
        Backend::Postgres => {
            // The planner's estimates: near, not exact.
            let near = |n: Option<i64>, exact: i64| {
                n.is_some_and(|n| (exact / 3..=exact * 3).contains(&n))
            };
            assert!(near(Some(all), ROWS), "{all}");
            assert!(near(planned, ROWS), "{planned:?}");
            assert!(near(common, ROWS / 8), "{common:?}");
            assert!(near(planned_search, ROWS / 8), "{planned_search:?}");
        }
        Backend::Sqlite => {
            assert_eq!(all, ROWS, "kept exact by triggers");
            assert_eq!(planned, Some(ROWS), "kept exact by triggers");
            assert_eq!(common, None, "SQLite has no estimate of a search");
            assert_eq!(planned_search, None);
        }
    }
}

/// A search the planner expects to match few students (1,261 of 30,000)
/// that matches more than the count's limit (1,388): the one read of its
/// matches stops at 1,001 of them, in no order, so the page is asked for
/// alone, and it is the first of all the matches, not of those read.
async fn assert_page_past_the_count(store: &Store, url: &str) {
    const FRAGMENT: &str = "ada.1";
    let client = connect(url).await;
    for (key, column, descending) in [
        (SortKey::Id, "id", true),
        (SortKey::Id, "id", false),
        (SortKey::Name, "name", true),
    ] {
        let query = ListQuery {
            limit: 20,
            start: Start::Offset(0),
            search: Some(FRAGMENT.to_owned()),
            sort: Sort { key, descending },
            count: CountMode::Estimated,
        };
        let direction = if descending { "desc" } else { "asc" };
        let expected: Vec<i64> = client
            .query(
                &format!(
                    "select id from students where name ilike $1 or email ilike $1 \
                     order by {column} {direction}, id {direction} limit 20"
                ),
                &[&format!("%{FRAGMENT}%")],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        let plans = store.explain_list(&query).await.unwrap();
        let page = store.list(&query).await.unwrap();

        assert!(plans[0].statement.starts_with("with matches"), "{plans:?}");
        let ids: Vec<i64> = page.records.iter().map(|r| r.id).collect();
        assert_eq!(ids, expected, "{query:?}");
        assert!(page.has_more);
        assert!(page.total.is_some_and(|n| n > 1000), "{:?}", page.total);
    }
}

/// A common fragment whose matches all sort together, beyond the walk's
/// window (`Grace …` in name order, after a window of 3,175 rows): the
/// walk finds none, and the page comes from all the matches, sorted. The
/// same page at every start a client can give.
async fn assert_clustered_matches_paged(store: &Store, url: &str) {
    let client = connect(url).await;
    let middle = client
        .query_one(
            "select id, name from students where name ilike 'grace%' order by name, id offset 1000 limit 1",
            &[],
        )
        .await
        .unwrap();
    let (id, name): (i64, String) = (middle.get(0), middle.get(1));
    for (start, from) in [
        (Start::Offset(0), String::new()),
        (Start::Offset(40), " offset 40".to_owned()),
        (
            Start::After(Position::Name(name.clone(), id)),
            String::new(),
        ),
    ] {
        let after = if from.is_empty() && matches!(start, Start::After(_)) {
            " and (name, id) > ($2, $3)"
        } else {
            ""
        };
        let query = ListQuery {
            limit: 20,
            start,
            search: Some(COMMON.to_owned()),
            sort: Sort {
                key: SortKey::Name,
                descending: false,
            },
            count: CountMode::Estimated,
        };
        let sql = format!(
            "select id from students where (name ilike $1 or email ilike $1){after} \
             order by name, id limit 20{from}"
        );
        let pattern = format!("%{COMMON}%");
        let expected: Vec<i64> = if after.is_empty() {
            client.query(&sql, &[&pattern]).await
        } else {
            client.query(&sql, &[&pattern, &name, &id]).await
        }
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
        let page = store.list(&query).await.unwrap();

        let ids: Vec<i64> = page.records.iter().map(|r| r.id).collect();
        assert_eq!(ids, expected, "{query:?}");
        assert!(page.has_more, "{query:?}");
    }
}

/// The service's estimate of a search, made from the planner's statistics,
/// is the planner's own (`Prefer: count=planned` asks the planner).
async fn assert_estimates_as_the_planner(store: &Store) {
    let mut compared = 0;
    for fragment in [COMMON, "ada.1", "e 7", "@example"] {
        let total = |count| {
            let query = ListQuery {
                limit: 20,
                start: Start::Offset(0),
                search: Some(fragment.to_owned()),
                sort: Sort::default(),
                count,
            };
            async move { store.list(&query).await.unwrap().total.unwrap() }
        };
        let planned = total(CountMode::Planned).await;
        let estimated = total(CountMode::Estimated).await;
        if estimated > 1000 {
            assert!(
                (estimated - planned).abs() <= 1,
                "{fragment}: {estimated} against {planned}"
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 3, "estimates compared");
}

/// Prints each plan for `cargo test list_plans -- --nocapture`.
async fn print_plans(store: &Store) {
    for query in shapes(store).await.iter().step_by(3) {
        for plan in store.explain_list(query).await.unwrap() {
            println!("{query:?}\n{}\n{}\n", plan.statement, plan.plan);
        }
    }
}

#[tokio::test]
async fn sqlite_every_list_statement_is_served_by_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("students.db");
    let config = config(&[&format!("--database-url=sqlite://{}", path.display())]);
    let DatabaseTarget::Sqlite(options) = config.database.clone() else {
        unreachable!()
    };
    let store = Store::sqlite(options, &config.pool).await.unwrap();
    store.migrate().await.unwrap();
    seed_sqlite(&path).await;

    assert_index_served(&store, Backend::Sqlite).await;
    assert_totals(&store, Backend::Sqlite).await;
    print_plans(&store).await;
}

#[tokio::test]
async fn postgres_every_list_statement_is_served_by_an_index() {
    crate::require_postgres!();
    let (_db, url) = TestDb::create(Backend::Postgres).await;
    let config = config(&[&format!("--database-url={url}")]);
    student_api::app::migrate(&config, None).await.unwrap();
    seed_postgres(&url).await;
    let DatabaseTarget::Postgres(target) = config.database.clone() else {
        unreachable!()
    };
    let publisher = Publisher::new(
        target,
        None,
        "test",
        student_api::storage::postgres_login(&config.pool),
    );
    let store = Store::postgres(publisher.subscribe(), &config.pool);

    assert_index_served(&store, Backend::Postgres).await;
    assert_totals(&store, Backend::Postgres).await;
    assert_page_past_the_count(&store, &url).await;
    assert_clustered_matches_paged(&store, &url).await;
    assert_estimates_as_the_planner(&store).await;
    print_plans(&store).await;
    store.close().await;
    drop(Arc::new(publisher));
}
