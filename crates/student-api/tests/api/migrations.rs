//! The list migrations on populated tables: on PostgreSQL as a rolling
//! update runs it (two replicas' migrators at once, writers going on, an
//! index that an interrupted build left invalid), on SQLite the search and
//! count of the students already there.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sqlx::Connection as _;

use crate::helpers::{config, connect, Backend, TestDb};

/// The migrations that build the list's indexes concurrently, their
/// statistics between them, and the indexes they leave.
const INDEX_MIGRATIONS: [i64; 3] = [20_261_205_100_002, 20_261_205_100_003, 20_261_205_100_004];
const INDEXES: [&str; 4] = [
    "students_name_id",
    "students_gpa_id",
    "students_created_at_id",
    "students_search_trgm",
];
/// Built by the first of them, replaced by `students_search_trgm` in the last.
const REPLACED: [&str; 2] = ["students_name_trgm", "students_email_trgm"];

#[tokio::test]
async fn postgres_list_indexes_build_concurrently_beside_writers_and_a_second_migrator() {
    crate::require_postgres!();
    let (_db, url) = TestDb::create(Backend::Postgres).await;
    let config = config(&[&format!("--database-url={url}")]);
    student_api::app::migrate(&config, None).await.unwrap();
    let admin = connect(&url).await;
    // A populated table as it stood before the migration; one index left
    // invalid, as a concurrent build interrupted half-way leaves it (a
    // unique build that meets duplicates stops the same way).
    admin
        .batch_execute(&format!(
            "insert into students (name, email, email_key, domain, gpa)
             select 'Student ' || i, 's' || i || '@example.org', 's' || i || '@example.org',
                    'Physics', (i % 1001) / 100.0
             from generate_series(1, 50000) as i;
             drop index {};
             delete from _sqlx_migrations where version in ({});",
            INDEXES.join(", "),
            INDEX_MIGRATIONS.map(|v| v.to_string()).join(", ")
        ))
        .await
        .unwrap();
    let interrupted = admin
        .batch_execute("create unique index concurrently students_search_trgm on students (domain)")
        .await;
    assert!(interrupted.is_err(), "the build meets duplicates");
    let invalid: bool = admin
        .query_one(
            "select not indisvalid from pg_index where indexrelid = 'students_search_trgm'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(invalid);

    // Writers go on meanwhile. A concurrent build never takes a lock that
    // conflicts with theirs, so they need not wait at all; a plain build
    // would hold them for the whole build, longer than this.
    let writer = connect(&url).await;
    writer
        .batch_execute("set lock_timeout = '20ms'")
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let inserts = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut written = 0_u32;
            while !stop.load(Ordering::Relaxed) {
                writer
                    .execute(
                        "insert into students (name, email, email_key, domain, gpa) \
                         values ('Writer', $1, $1, 'Physics', 5)",
                        &[&format!("w{}@example.org", uuid::Uuid::new_v4().simple())],
                    )
                    .await
                    .expect("a write during the migration");
                written += 1;
            }
            written
        }
    });

    let (first, second) = tokio::join!(
        student_api::app::migrate(&config, None),
        student_api::app::migrate(&config, None),
    );
    stop.store(true, Ordering::Relaxed);
    let written = inserts.await.unwrap();

    let applied = first.unwrap() + second.unwrap();
    assert_eq!(
        applied, 3,
        "one migrator applied them, the other found them done"
    );
    assert!(written > 0);
    assert_indexes_as_migrated(&admin).await;
    assert_eq!(
        student_api::app::migrate(&config, None).await.unwrap(),
        0,
        "nothing left to apply"
    );
}

/// The list's indexes are there and valid, the trigram one over name and
/// email with its statistics target, the per-column ones it replaced gone.
async fn assert_indexes_as_migrated(admin: &tokio_postgres::Client) {
    let rows = admin
        .query(
            "select c.relname, i.indisvalid, pg_get_indexdef(i.indexrelid) \
             from pg_index i join pg_class c on c.oid = i.indexrelid \
             where i.indrelid = 'students'::regclass",
            &[],
        )
        .await
        .unwrap();
    for name in REPLACED {
        assert!(
            !rows.iter().any(|row| row.get::<_, String>(0) == name),
            "{name} dropped"
        );
    }
    for name in INDEXES {
        let row = rows
            .iter()
            .find(|row| row.get::<_, String>(0) == name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert!(row.get::<_, bool>(1), "{name} is valid");
        if name.ends_with("_trgm") {
            let definition: String = row.get(2);
            assert!(
                definition.contains("USING gin") && definition.contains("gin_trgm_ops"),
                "{definition}"
            );
        }
    }
    let target: i32 = admin
        .query_one(
            "select attstattarget::int4 from pg_attribute \
             where attrelid = 'students_search_trgm'::regclass and attnum = 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(target, 1000, "the search's statistics");
}

/// SQLite's list migration indexes the students already there: the search
/// finds them and the total counts them.
#[tokio::test]
async fn sqlite_list_migration_indexes_the_students_already_there() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("students.db");
    let config = config(&[&format!("--database-url=sqlite://{}", path.display())]);
    student_api::app::migrate(&config, None).await.unwrap();
    let mut conn = sqlx::SqliteConnection::connect_with(
        &sqlx::sqlite::SqliteConnectOptions::new().filename(&path),
    )
    .await
    .unwrap();
    // The database as it stood before the migration, with students in it.
    sqlx::raw_sql(
        "drop trigger students_search_insert; drop trigger students_search_delete;
         drop trigger students_search_update; drop trigger students_count_insert;
         drop trigger students_count_delete;
         drop table students_search; drop table students_count;
         drop index students_name_id; drop index students_gpa_id; drop index students_created_at_id;
         delete from _sqlx_migrations where version = 20261205100001;
         with recursive n(i) as (select 1 union all select i + 1 from n where i < 5000)
         insert into students (name, email, email_key, domain, gpa)
         select 'Student ' || i, 's' || i || '@example.org', 's' || i || '@example.org', 'Physics', 5
         from n;",
    )
    .execute(&mut conn)
    .await
    .unwrap();

    let applied = student_api::app::migrate(&config, None).await.unwrap();
    let app = crate::helpers::TestApp::start(config, None).await;
    let all: serde_json::Value = app
        .get("/api/v1/students?limit=1")
        .await
        .json()
        .await
        .unwrap();
    let found: serde_json::Value = app
        .get("/api/v1/students?q=ent%204999")
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(applied, 1);
    assert_eq!(all["total"], 5000);
    assert_eq!(found["total"], 1, "{found}");
    assert_eq!(found["data"][0]["email"], "s4999@example.org");
}
