//! `/metrics`: Prometheus text with route templates as labels.

use reqwest::Method;

use crate::helpers::{student, Backend, TestApp};

async fn scrape(app: &TestApp) -> String {
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    response.text().await.unwrap()
}

/// The value of the sample whose name and labels are exactly `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .map(|value| value.parse().unwrap())
}

async fn requests_are_counted_by_route_template_method_and_status(app: TestApp) {
    let created = app.create_student(&student("Counted")).await;
    let id = created["id"].as_i64().unwrap();
    app.get(&format!("/api/v1/students/{id}")).await;
    app.get(&format!("/api/v1/students/{id}")).await;
    app.get("/api/v1/students/999999").await;
    app.get("/no/such/route").await;
    app.request(Method::PUT, "/metrics").send().await.unwrap();

    let text = scrape(&app).await;

    let get = r#"http_requests_total{method="GET",route="/api/v1/students/{id}",status="#;
    assert_eq!(
        sample(&text, &format!(r#"{get}"200"}}"#)),
        Some(2.0),
        "{text}"
    );
    assert_eq!(sample(&text, &format!(r#"{get}"404"}}"#)), Some(1.0));
    assert_eq!(
        sample(
            &text,
            r#"http_requests_total{method="POST",route="/api/v1/students",status="201"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"http_requests_total{method="GET",route="unmatched",status="404"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"http_requests_total{method="PUT",route="/metrics",status="405"}"#
        ),
        Some(1.0)
    );
    assert!(
        !text.contains(&format!("/api/v1/students/{id}\"")),
        "raw paths never become labels"
    );
}

async fn latency_is_a_histogram_with_fine_buckets(app: TestApp) {
    app.get("/healthcheck").await;

    let text = scrape(&app).await;

    let bucket = |le: &str| {
        format!(
            r#"http_request_duration_seconds_bucket{{method="GET",route="/healthcheck",le="{le}"}}"#
        )
    };
    for le in ["0.0005", "0.001", "0.005", "0.01", "0.1", "1", "5", "+Inf"] {
        assert!(
            sample(&text, &bucket(le)).is_some(),
            "bucket {le} missing:\n{text}"
        );
    }
    assert_eq!(sample(&text, &bucket("+Inf")), Some(1.0));
    assert_eq!(
        sample(
            &text,
            r#"http_request_duration_seconds_count{method="GET",route="/healthcheck"}"#
        ),
        Some(1.0)
    );
}

async fn gauges_describe_in_flight_requests_the_pool_and_the_build(app: TestApp) {
    app.get("/api/v1/students").await;

    let text = scrape(&app).await;

    assert_eq!(
        sample(&text, "http_requests_in_flight"),
        Some(1.0),
        "the scrape itself is in flight"
    );
    // DB_MAX_CONNECTIONS (10), and on SQLite at most two per core.
    let cores = std::thread::available_parallelism().unwrap().get();
    let sqlite = app
        .database_url
        .as_deref()
        .is_some_and(|url| url.starts_with("sqlite:"));
    let max = if sqlite { 10.min(2 * cores) } else { 10 };
    #[allow(clippy::cast_precision_loss)] // a handful of connections
    let max = max as f64;
    assert_eq!(sample(&text, "db_pool_max_connections"), Some(max));
    let open = sample(&text, "db_pool_connections").unwrap();
    let idle = sample(&text, "db_pool_idle_connections").unwrap();
    assert!(open >= 1.0 && idle <= open, "open {open}, idle {idle}");
    assert_eq!(
        sample(
            &text,
            &format!(
                r#"student_api_build_info{{version="{}"}}"#,
                env!("CARGO_PKG_VERSION")
            )
        ),
        Some(1.0)
    );
    assert!(sample(&text, "process_resident_memory_bytes").is_some_and(|rss| rss > 0.0));
}

crate::on_both_backends!(
    requests_are_counted_by_route_template_method_and_status,
    latency_is_a_histogram_with_fine_buckets,
    gauges_describe_in_flight_requests_the_pool_and_the_build,
);

#[tokio::test]
async fn metrics_can_be_served_on_their_own_address_only() {
    let app = TestApp::spawn_with(Backend::Sqlite, &["--metrics-addr=127.0.0.1:0"]).await;
    let metrics_addr = app.metrics_addr.expect("a separate metrics address");
    app.get("/healthcheck").await;

    let on_api = app.get("/metrics").await;
    let separate = app
        .client
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .unwrap();

    assert_eq!(on_api.status(), 404);
    assert_eq!(separate.status(), 200);
    let text = separate.text().await.unwrap();
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/healthcheck",status="200"} 1"#),
        "{text}"
    );
}
