//! Graceful shutdown: readiness off, new connections refused, in-flight
//! requests finished within a bound.

use std::time::{Duration, Instant};

use reqwest::Method;

use crate::helpers::{black_hole_database, spawn_against, student, Backend, TestApp};

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_and_then_refuses_connections() {
    // A hung database keeps a request in flight for the acquire timeout.
    let mut app = spawn_against(&black_hole_database().await, &["--db-acquire-timeout=2s"]).await;
    let in_flight = tokio::spawn(app.request(Method::GET, "/api/v1/students").send());
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    let server = app.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;

    assert!(app.health.is_shutting_down(), "readiness fails at once");
    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight request gets its answer");
    assert_eq!(response.status(), 503);
    server.await.unwrap().expect("the server stops cleanly");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        app.request(Method::GET, "/healthcheck")
            .send()
            .await
            .is_err(),
        "no new connections"
    );
}

#[tokio::test]
async fn shutdown_gives_up_on_requests_that_outlast_the_bound() {
    let mut app = spawn_against(
        &black_hole_database().await,
        &[
            "--db-acquire-timeout=30s",
            "--request-timeout=60s",
            "--shutdown-timeout=500ms",
        ],
    )
    .await;
    let in_flight = tokio::spawn(app.request(Method::GET, "/api/v1/students").send());
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    app.begin_shutdown()
        .await
        .unwrap()
        .expect("the server stops cleanly");

    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    in_flight.abort();
}

#[tokio::test]
async fn a_request_over_the_request_timeout_is_a_503() {
    let app = spawn_against(
        &black_hole_database().await,
        &["--db-acquire-timeout=30s", "--request-timeout=500ms"],
    )
    .await;
    let started = Instant::now();
    let response = app.get("/api/v1/students").await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(response.status(), 503);
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "urn:student-api:problem:timeout");
}

#[tokio::test]
async fn an_idle_server_shuts_down_at_once_and_closes_its_pool() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.create_student(&student("Before Shutdown")).await;
    let started = Instant::now();
    app.shutdown().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
}
