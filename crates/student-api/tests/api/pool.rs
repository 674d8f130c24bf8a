//! The PostgreSQL connection pool recovers from connections the server ended.

use crate::helpers::{admin_connection, config, student, Backend, TestApp, TestDb};

#[tokio::test]
async fn connections_killed_by_the_server_are_replaced_not_reused() {
    let (db, url) = TestDb::create(Backend::Postgres).await;
    let database = url::Url::parse(&url)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_owned();
    let config = config(&[&format!("--database-url={url}"), "--db-max-connections=2"]);
    student_api::app::migrate(&config, None).await.unwrap();
    let app = TestApp::start(config, Some(db)).await;
    let created = app.create_student(&student("Survivor")).await;
    let path = format!("/api/v1/students/{}", created["id"]);
    assert_eq!(app.get(&path).await.status(), 200);

    // What a database restart or an administrator does to open sessions.
    let mut admin = admin_connection().await;
    let killed: Vec<bool> = sqlx::query_scalar(
        "select pg_terminate_backend(pid) from pg_stat_activity \
         where application_name = 'student-api' and datname = $1",
    )
    .bind(&database)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!killed.is_empty(), "the service had open connections");

    // Each dead connection may fail one request (503) before it is dropped.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(app.get(&path).await.status().as_u16());
    }
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    assert_eq!(statuses[3..], [200, 200, 200], "{statuses:?}");
}
