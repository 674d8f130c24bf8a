//! The drills' fault switch (`FAULT_INJECTION=on`): served on the metrics
//! address only, it fails a chosen share of API requests with a chosen
//! 5xx or delays them, never touches probes or metrics, counts what it
//! did, and is refused without a separate metrics address.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use student_api::cli::Cli;

use crate::helpers::{assert_problem, student, Backend, TestApp};

async fn drill_app(backend: Backend) -> (TestApp, SocketAddr) {
    let app = TestApp::spawn_with(
        backend,
        &["--metrics-addr=127.0.0.1:0", "--fault-injection=on"],
    )
    .await;
    let metrics_addr = app.metrics_addr.expect("a separate metrics address");
    (app, metrics_addr)
}

fn admin(addr: SocketAddr) -> String {
    format!("http://{addr}/admin/fault")
}

async fn set_fault(app: &TestApp, addr: SocketAddr, body: &Value) -> reqwest::Response {
    app.client
        .put(admin(addr))
        .json(body)
        .send()
        .await
        .expect("PUT /admin/fault")
}

/// The fault as `GET /admin/fault` shows it.
async fn shown_fault(app: &TestApp, addr: SocketAddr) -> Value {
    app.client
        .get(admin(addr))
        .send()
        .await
        .expect("GET /admin/fault")
        .json()
        .await
        .unwrap()
}

async fn scrape(app: &TestApp, addr: SocketAddr) -> String {
    let response = app
        .client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

fn sample(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

async fn status_of(app: &TestApp, path: &str) -> StatusCode {
    app.get(path).await.status()
}

async fn faults_answer_api_requests_only(backend: Backend) {
    let (app, metrics_addr) = drill_app(backend).await;
    let created = app.create_student(&student("Drill")).await;
    let student_path = format!("/api/v1/students/{}", created["id"]);

    let shown = shown_fault(&app, metrics_addr).await;
    assert_eq!(shown["active"], false, "{shown}");

    let response = set_fault(
        &app,
        metrics_addr,
        &json!({"error_ratio": 1.0, "status": 503}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let shown: Value = response.json().await.unwrap();
    assert_eq!(shown["active"], true, "{shown}");
    assert_eq!(shown["status"], 503, "{shown}");

    for _ in 0..3 {
        let problem = assert_problem(app.get(&student_path).await, 503).await;
        assert_eq!(problem["type"], "urn:student-api:problem:injected-fault");
    }
    let problem = assert_problem(
        app.send_json(Method::POST, "/api/v1/students", &student("Refused"))
            .await,
        503,
    )
    .await;
    assert_eq!(problem["type"], "urn:student-api:problem:injected-fault");
    // Probes, the web page's routes and metrics are not the API's users.
    assert_eq!(status_of(&app, "/healthcheck").await, StatusCode::OK);
    assert_eq!(status_of(&app, "/ready").await, StatusCode::OK);
    let text = scrape(&app, metrics_addr).await;
    assert_eq!(
        sample(&text, r#"student_api_faults_injected_total{fault="error"}"#),
        4,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"http_requests_total{method="GET",route="/api/v1/students/{id}",status="503"}"#
        ),
        3,
        "the SLO counts injected failures like any other:\n{text}"
    );

    let response = app.client.delete(admin(metrics_addr)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap()["active"], false);
    assert_eq!(status_of(&app, &student_path).await, StatusCode::OK);
}

#[tokio::test]
async fn faults_answer_api_requests_only_sqlite() {
    Box::pin(faults_answer_api_requests_only(Backend::Sqlite)).await;
}

#[tokio::test]
async fn faults_answer_api_requests_only_postgres() {
    crate::require_postgres!();
    Box::pin(faults_answer_api_requests_only(Backend::Postgres)).await;
}

#[tokio::test]
async fn a_share_of_requests_fails_and_the_rest_is_served() {
    let (app, metrics_addr) = drill_app(Backend::Sqlite).await;
    let response = set_fault(&app, metrics_addr, &json!({"error_ratio": 0.5})).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut failed = 0;
    for _ in 0..200 {
        match status_of(&app, "/api/v1/students?limit=1").await {
            StatusCode::INTERNAL_SERVER_ERROR => failed += 1,
            StatusCode::OK => {}
            other => panic!("unexpected {other}"),
        }
    }
    // Binomial(200, 0.5): outside 60..=140 once in about 10^8 runs.
    assert!((60..=140).contains(&failed), "{failed} of 200 failed");
    let text = scrape(&app, metrics_addr).await;
    assert_eq!(
        sample(&text, r#"student_api_faults_injected_total{fault="error"}"#),
        failed,
        "{text}"
    );
}

#[tokio::test]
async fn a_delay_slows_api_requests_and_nothing_else() {
    let (app, metrics_addr) = drill_app(Backend::Sqlite).await;
    let response = set_fault(&app, metrics_addr, &json!({"delay": "300ms"})).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap()["delay"], "300ms");

    let started = Instant::now();
    assert_eq!(
        status_of(&app, "/api/v1/students?limit=1").await,
        StatusCode::OK
    );
    assert!(started.elapsed() >= Duration::from_millis(300));

    let started = Instant::now();
    assert_eq!(status_of(&app, "/healthcheck").await, StatusCode::OK);
    assert_eq!(status_of(&app, "/ready").await, StatusCode::OK);
    scrape(&app, metrics_addr).await;
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "probes and metrics waited"
    );
    let text = scrape(&app, metrics_addr).await;
    assert_eq!(
        sample(&text, r#"student_api_faults_injected_total{fault="delay"}"#),
        1,
        "{text}"
    );
}

#[tokio::test]
async fn a_wrong_fault_is_refused_and_the_one_in_force_kept() {
    let (app, metrics_addr) = drill_app(Backend::Sqlite).await;
    set_fault(&app, metrics_addr, &json!({"delay": "10ms"})).await;
    let problem = assert_problem(
        set_fault(
            &app,
            metrics_addr,
            &json!({"error_ratio": 2, "status": 404, "delay": "soon", "ratio": 1}),
        )
        .await,
        422,
    )
    .await;
    let errors = problem["errors"].as_object().expect("errors by field");
    for field in ["error_ratio", "status", "delay", "ratio"] {
        assert!(errors.contains_key(field), "{problem}");
    }
    let shown = shown_fault(&app, metrics_addr).await;
    assert_eq!(shown["delay"], "10ms", "{shown}");
    assert_eq!(shown["error_ratio"], 0.0, "{shown}");
}

#[tokio::test]
async fn the_switch_is_never_on_the_api_address_and_off_by_default() {
    let (app, _) = drill_app(Backend::Sqlite).await;
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        let response = app
            .request(method.clone(), "/admin/fault")
            .json(&json!({"error_ratio": 1.0}))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_client_error(),
            "{method} /admin/fault on the API address: {}",
            response.status()
        );
    }
    assert_eq!(
        status_of(&app, "/api/v1/students?limit=1").await,
        StatusCode::OK
    );

    let off = TestApp::spawn_with(Backend::Sqlite, &["--metrics-addr=127.0.0.1:0"]).await;
    let response = off
        .client
        .put(admin(off.metrics_addr.unwrap()))
        .json(&json!({"error_ratio": 1.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let text = scrape(&off, off.metrics_addr.unwrap()).await;
    assert!(!text.contains("student_api_faults_injected"), "{text}");
}

#[test]
fn the_switch_is_refused_without_a_separate_metrics_address() {
    let cli = Cli::try_parse_from([
        "student-api",
        "--listen-addr=127.0.0.1:0",
        "--database-url=sqlite://unused.db",
        "--fault-injection=on",
    ])
    .expect("valid flags");
    let err = cli.config().expect_err("refused").to_string();
    assert!(err.contains("FAULT_INJECTION"), "{err}");
    assert!(err.contains("METRICS_ADDR"), "{err}");
}
