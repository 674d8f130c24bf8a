//! Errors common to every route: unknown routes and methods, request ids,
//! and a database that is down.

use std::time::{Duration, Instant};

use reqwest::Method;

use crate::helpers::{
    admin_url, assert_problem, black_hole_database, refused_database, spawn_against, TestApp,
};

async fn an_unknown_route_is_a_json_404(app: TestApp) {
    let problem = assert_problem(app.get("/api/v2/nothing").await, 404).await;
    assert_eq!(problem["detail"], "no route for /api/v2/nothing");
    assert_problem(app.get("/api/v1/students/").await, 404).await;
}

async fn a_wrong_method_is_a_json_405_with_allow(app: TestApp) {
    let response = app
        .request(Method::DELETE, "/api/v1/students")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["allow"], "GET,HEAD,POST");
    assert_problem(response, 405).await;
    let response = app
        .request(Method::POST, "/healthcheck")
        .send()
        .await
        .unwrap();
    assert_problem(response, 405).await;
}

async fn a_request_id_is_generated_when_absent(app: TestApp) {
    let response = app.get("/healthcheck").await;
    let id = response.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
}

async fn a_request_id_is_echoed_when_given_and_replaced_when_unusable(app: TestApp) {
    let given = app
        .request(Method::GET, "/api/v1/students/0")
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "trace-abc-123");
    let long = "x".repeat(200);
    let replaced = app
        .request(Method::GET, "/healthcheck")
        .header("x-request-id", &long)
        .send()
        .await
        .unwrap();
    let id = replaced.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
}

async fn responses_are_compressed_when_the_client_accepts_gzip(app: TestApp) {
    for i in 0..5 {
        app.create_student(&crate::helpers::student(&format!("Compressed {i}")))
            .await;
    }
    let plain = app.get("/api/v1/students").await;
    let gzip = app
        .request(Method::GET, "/api/v1/students")
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    assert_eq!(gzip.headers()["content-encoding"], "gzip");
    assert!(gzip.bytes().await.unwrap().len() < plain.bytes().await.unwrap().len());
}

crate::on_both_backends!(
    responses_are_compressed_when_the_client_accepts_gzip,
    an_unknown_route_is_a_json_404,
    a_wrong_method_is_a_json_405_with_allow,
    a_request_id_is_generated_when_absent,
    a_request_id_is_echoed_when_given_and_replaced_when_unusable,
);

/// Asserts that a data request fails fast with a retryable 503.
async fn assert_fast_503(app: &TestApp, within: Duration) {
    for (method, path) in [
        (Method::GET, "/api/v1/students"),
        (Method::GET, "/api/v1/students/1"),
        (Method::DELETE, "/api/v1/students/1"),
    ] {
        let started = Instant::now();
        let response = app.request(method, path).send().await.unwrap();
        assert!(
            started.elapsed() < within,
            "{path} took {:?}",
            started.elapsed()
        );
        assert_eq!(response.headers()["retry-after"], "5");
        let problem = assert_problem(response, 503).await;
        assert_eq!(problem["type"], "urn:student-api:problem:unavailable");
        assert!(
            !problem.to_string().contains("unused"),
            "no credentials in errors: {problem}"
        );
    }
}

#[tokio::test]
async fn a_refused_database_connection_is_a_503_within_the_acquire_timeout() {
    // The pool retries refused connections until the acquire timeout (3 s by default).
    let app = spawn_against(&refused_database(), &[]).await;
    assert_fast_503(&app, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_database_that_never_answers_is_a_503_within_the_acquire_timeout() {
    let app = spawn_against(&black_hole_database().await, &["--db-acquire-timeout=1s"]).await;
    assert_fast_503(&app, Duration::from_secs(4)).await;
}

#[tokio::test]
async fn a_login_the_database_refuses_is_a_503_not_a_500() {
    crate::require_postgres!();
    // A real server, a wrong password: what expired or rotated credentials
    // look like. Retrying later can succeed, so it is not a server error.
    let mut url = url::Url::parse(&admin_url()).expect("TEST_DATABASE_URL is a URL");
    url.set_password(Some(&format!("wrong-{}", uuid::Uuid::new_v4())))
        .expect("a URL with a host takes a password");
    let app = spawn_against(url.as_str(), &["--db-acquire-timeout=1s"]).await;
    assert_fast_503(&app, Duration::from_secs(4)).await;
}
