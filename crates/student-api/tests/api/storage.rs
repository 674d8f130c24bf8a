//! SQLite storage faults, as a client and an operator see them: a full
//! database (PRAGMA max_page_count stands in for a full disk), read-only
//! storage (PRAGMA query_only) and a database file moved away under the
//! service. Writes get a 507 or a 503 with `Retry-After`, reads are still
//! served, `/ready` says what is wrong, `/metrics` counts it, and writes
//! work again once the fault is gone, without a restart.

use std::path::Path;

use reqwest::Method;
use serde_json::{json, Value};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::Connection as _;
use student_api::config::DatabaseTarget;

use crate::helpers::{assert_problem, config, student, TestApp};

const PATH: &str = "/api/v1/students";

/// Serves the SQLite file in `dir` with `pragmas` on every connection.
async fn serve(dir: &Path, pragmas: &[(&str, &str)]) -> TestApp {
    let path = dir.join("students.db");
    let mut config = config(&[&format!("--database-url=sqlite://{}", path.display())]);
    let mut options = SqliteConnectOptions::new().filename(&path);
    for (key, value) in pragmas {
        options = options.pragma(key.to_string(), value.to_string());
    }
    config.database = DatabaseTarget::Sqlite(options);
    TestApp::start(config, None).await
}

/// The value of `db_storage_errors_total{kind}`.
async fn storage_errors(app: &TestApp, kind: &str) -> u64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    let series = format!("db_storage_errors_total{{kind=\"{kind}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .unwrap_or_else(|| panic!("no {series} in /metrics"))
        .parse()
        .unwrap()
}

async fn ready(app: &TestApp) -> (u16, Value) {
    let response = app.get("/ready").await;
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn a_full_database_answers_507_with_retry_after_serves_reads_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    // More pages than the schema needs; a ballast written by another
    // connection (without the limit) takes some, so that freeing them
    // later stands for space coming back.
    let app = serve(dir.path(), &[("max_page_count", "64")]).await;
    let mut operator = sqlx::SqliteConnection::connect_with(
        &SqliteConnectOptions::new().filename(dir.path().join("students.db")),
    )
    .await
    .unwrap();
    sqlx::raw_sql("create table ballast (b blob); insert into ballast values (zeroblob(65536))")
        .execute(&mut operator)
        .await
        .unwrap();
    assert_eq!(storage_errors(&app, "full").await, 0);

    let mut created = Vec::new();
    let full = loop {
        assert!(created.len() < 2000, "the database never filled up");
        let response = app.send_json(Method::POST, PATH, &student("Filler")).await;
        if response.status() != 201 {
            break response;
        }
        created.push(response.json::<Value>().await.unwrap());
    };
    assert_eq!(full.headers()["retry-after"], "5");
    let problem = assert_problem(full, 507).await;
    assert_eq!(
        problem["type"],
        "urn:student-api:problem:insufficient-storage"
    );
    assert_eq!(
        problem["detail"],
        "the database has no space left to store this change; retry later"
    );

    let first = format!("{PATH}/{}", created[0]["id"]);
    assert_eq!(app.get(&first).await.status(), 200, "reads are served");
    let page: Value = app
        .get(&format!("{PATH}?limit=1"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], created.len());
    let (status, body) = ready(&app).await;
    assert_eq!(
        status, 200,
        "a full disk does not take the instance out: {body}"
    );
    assert!(
        body["checks"]["storage"]
            .as_str()
            .unwrap()
            .starts_with("no space left on the database's storage (since "),
        "{body}"
    );
    assert!(storage_errors(&app, "full").await >= 1);

    // Space comes back: writes work again without a restart. (Deleting
    // students would not do: the search index records a deletion by
    // writing, so a delete needs space too.)
    sqlx::raw_sql("drop table ballast")
        .execute(&mut operator)
        .await
        .unwrap();
    app.create_student(&student("After")).await;
    let (status, body) = ready(&app).await;
    assert_eq!(status, 200);
    assert_eq!(body["checks"].get("storage"), None, "{body}");
}

#[tokio::test]
async fn read_only_storage_answers_503_with_retry_after_and_serves_reads() {
    let dir = tempfile::tempdir().unwrap();
    let writable = serve(dir.path(), &[]).await;
    let ada = writable.create_student(&student("Ada")).await;
    writable.shutdown().await.unwrap();

    let app = serve(dir.path(), &[("query_only", "1")]).await;
    for (method, path, body) in [
        (Method::POST, PATH.to_owned(), student("Grace")),
        (
            Method::PATCH,
            format!("{PATH}/{}", ada["id"]),
            json!({"gpa": 1}),
        ),
    ] {
        let response = app.send_json(method, &path, &body).await;
        assert_eq!(response.headers()["retry-after"], "5");
        let problem = assert_problem(response, 503).await;
        assert_eq!(problem["type"], "urn:student-api:problem:unavailable");
        assert_eq!(
            problem["detail"],
            "the database cannot store data right now; retry later"
        );
    }
    let response = app
        .request(Method::DELETE, &format!("{PATH}/{}", ada["id"]))
        .send()
        .await
        .unwrap();
    assert_problem(response, 503).await;

    let read: Value = app
        .get(&format!("{PATH}/{}", ada["id"]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read, ada, "reads are served and nothing changed");
    let (status, body) = ready(&app).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["checks"]["storage"]
            .as_str()
            .unwrap()
            .starts_with("the database's storage refuses writes"),
        "{body}"
    );
    assert_eq!(storage_errors(&app, "read_only").await, 3);
}

#[tokio::test]
async fn a_database_file_moved_away_refuses_writes_and_readiness_until_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let app = serve(dir.path(), &[]).await;
    let ada = app.create_student(&student("Ada")).await;
    let db = dir.path().join("students.db");
    let aside = dir.path().join("moved.db");

    std::fs::rename(&db, &aside).unwrap();
    let response = app.send_json(Method::POST, PATH, &student("Lost")).await;
    assert_eq!(response.headers()["retry-after"], "5");
    let problem = assert_problem(response, 503).await;
    assert_eq!(problem["type"], "urn:student-api:problem:unavailable");
    let path = format!("{PATH}/{}", ada["id"]);
    assert_problem(
        app.send_json(Method::PATCH, &path, &json!({"gpa": 2}))
            .await,
        503,
    )
    .await;
    let (status, body) = ready(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["checks"]["database"], "file removed or replaced",
        "{body}"
    );
    assert!(storage_errors(&app, "moved").await >= 2);
    // A new file at the path is not the database either.
    std::fs::write(&db, b"").unwrap();
    assert_problem(
        app.send_json(Method::POST, PATH, &student("Lost")).await,
        503,
    )
    .await;

    // Put back, the database takes writes and traffic again.
    std::fs::rename(&aside, &db).unwrap();
    assert_eq!(ready(&app).await.0, 200);
    app.create_student(&student("Back")).await;
    let page: Value = app.get(PATH).await.json().await.unwrap();
    assert_eq!(page["total"], 2, "Ada and Back, nothing in between: {page}");
}

#[tokio::test]
async fn a_deleted_database_file_fails_every_write_and_readiness() {
    let dir = tempfile::tempdir().unwrap();
    let app = serve(dir.path(), &[]).await;
    let ada = app.create_student(&student("Ada")).await;
    for suffix in ["", "-wal", "-shm"] {
        std::fs::remove_file(dir.path().join(format!("students.db{suffix}"))).unwrap();
    }
    for _ in 0..3 {
        assert_problem(
            app.send_json(Method::POST, PATH, &student("Lost")).await,
            503,
        )
        .await;
    }
    let response = app
        .request(Method::DELETE, &format!("{PATH}/{}", ada["id"]))
        .send()
        .await
        .unwrap();
    assert_problem(response, 503).await;
    assert_eq!(ready(&app).await.0, 503);
}

/// PostgreSQL reports the same faults by SQLSTATE; a trigger raises them
/// here as the server would on a full or failing disk.
#[tokio::test]
async fn postgres_disk_full_is_a_507_and_an_io_error_a_503() {
    crate::require_postgres!();
    let app = TestApp::spawn(crate::helpers::Backend::Postgres).await;
    let db = crate::helpers::connect(app.database_url.as_deref().unwrap()).await;
    for (sqlstate, status, kind) in [("53100", 507, "full"), ("58030", 503, "io")] {
        db.batch_execute(&format!(
            "create or replace function fail_write() returns trigger language plpgsql as $$
             begin raise exception 'storage says no' using errcode = '{sqlstate}'; end $$;
             drop trigger if exists fail_write on students;
             create trigger fail_write before insert on students
                 for each row execute function fail_write();"
        ))
        .await
        .unwrap();
        let response = app.send_json(Method::POST, PATH, &student("Refused")).await;
        assert_eq!(response.headers()["retry-after"], "5");
        assert_problem(response, status).await;
        assert_eq!(storage_errors(&app, kind).await, 1, "{kind}");
    }
}
