//! The PostgreSQL connection pool recovers from connections the server ended.

use crate::helpers::{admin_connection, config, student, Backend, TestApp, TestDb};

/// The service on a fresh, migrated PostgreSQL database, and that
/// database's name.
async fn start_on_postgres(max_connections: u32) -> (TestApp, String) {
    let (db, url) = TestDb::create(Backend::Postgres).await;
    let database = url::Url::parse(&url)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_owned();
    let config = config(&[
        &format!("--database-url={url}"),
        &format!("--db-max-connections={max_connections}"),
    ]);
    student_api::app::migrate(&config, None).await.unwrap();
    (TestApp::start(config, Some(db)).await, database)
}

#[tokio::test]
async fn connections_killed_by_the_server_are_replaced_not_reused() {
    crate::require_postgres!();
    let (app, database) = start_on_postgres(2).await;
    let created = app.create_student(&student("Survivor")).await;
    let path = format!("/api/v1/students/{}", created["id"]);
    assert_eq!(app.get(&path).await.status(), 200);

    // What a database restart or an administrator does to open sessions.
    let admin = admin_connection().await;
    let killed = admin
        .query(
            "select pg_terminate_backend(pid) from pg_stat_activity \
             where application_name = 'student-api' and datname = $1",
            &[&database],
        )
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

#[tokio::test]
async fn concurrent_requests_share_a_few_pipelined_connections() {
    const REQUESTS: usize = 32;
    crate::require_postgres!();
    let (app, database) = start_on_postgres(10).await;
    let created = app.create_student(&student("Shared")).await;
    let target = app.url(&format!("/api/v1/students/{}", created["id"]));

    let client = reqwest::Client::new();
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..REQUESTS {
        let (client, target) = (client.clone(), target.clone());
        requests.spawn(async move { client.get(target).send().await.unwrap().status() });
    }
    while let Some(status) = requests.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }

    // One connection per request in flight would have opened all ten; a new
    // one opens only when each open one carries 8 queries.
    let admin = admin_connection().await;
    let open: i64 = admin
        .query_one(
            "select count(*) from pg_stat_activity \
             where application_name = 'student-api' and datname = $1",
            &[&database],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        (1..=i64::try_from(REQUESTS / 8).unwrap()).contains(&open),
        "{open} connections for {REQUESTS} concurrent requests"
    );
}
