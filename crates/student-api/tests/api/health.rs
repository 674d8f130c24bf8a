//! Liveness and readiness probes.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{
    assert_problem, black_hole_database, config, refused_database, spawn_against, Backend, TestApp,
    TestDb,
};

async fn liveness_reports_ok_and_the_version(app: TestApp) {
    for path in ["/healthcheck", "/health"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            body,
            json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")})
        );
    }
}

async fn readiness_is_200_with_a_migrated_database(app: TestApp) {
    let response = app.get("/ready").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"status": "ready", "checks": {"database": "ok", "migrations": "ok"}})
    );
}

async fn readiness_fails_as_soon_as_shutdown_begins(app: TestApp) {
    app.health.begin_shutdown();
    let problem = assert_problem(app.get("/ready").await, 503).await;
    assert_eq!(problem["checks"], json!({"shutdown": "in progress"}));
}

crate::on_both_backends!(
    liveness_reports_ok_and_the_version,
    readiness_is_200_with_a_migrated_database,
    readiness_fails_as_soon_as_shutdown_begins,
);

#[tokio::test]
async fn liveness_never_touches_the_database() {
    let app = spawn_against(&black_hole_database().await, &[]).await;
    let started = Instant::now();
    assert_eq!(app.get("/healthcheck").await.status(), 200);
    assert!(started.elapsed() < Duration::from_millis(500));
}

#[tokio::test]
async fn readiness_is_503_when_the_database_is_down() {
    let app = spawn_against(&refused_database(), &["--db-acquire-timeout=200ms"]).await;
    let problem = assert_problem(app.get("/ready").await, 503).await;
    assert_eq!(
        problem["checks"],
        json!({"database": "unavailable", "migrations": "unknown"})
    );
    assert_eq!(problem["detail"], "the database is unavailable");
}

#[tokio::test]
async fn readiness_answers_within_its_timeout_when_the_database_hangs() {
    let app = spawn_against(&black_hole_database().await, &["--readiness-timeout=300ms"]).await;
    let started = Instant::now();
    let problem = assert_problem(app.get("/ready").await, 503).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        problem["checks"],
        json!({"database": "timeout", "migrations": "unknown"})
    );
}

#[tokio::test]
async fn readiness_is_503_until_postgres_migrations_are_applied() {
    crate::require_postgres!();
    let (db, url) = TestDb::create(Backend::Postgres).await;
    let config = config(&[&format!("--database-url={url}")]);
    let app = TestApp::start(config.clone(), Some(db)).await;

    let problem = assert_problem(app.get("/ready").await, 503).await;
    assert_eq!(
        problem["checks"],
        json!({"database": "ok", "migrations": "pending"})
    );

    let applied = student_api::app::migrate(&config, None).await.unwrap();
    assert_eq!(
        applied,
        crate::helpers::postgres_migrations(),
        "every migration in migrations/postgres"
    );
    assert_eq!(app.get("/ready").await.status(), 200);
    assert_eq!(
        student_api::app::migrate(&config, None).await.unwrap(),
        0,
        "migrate is idempotent"
    );
}
