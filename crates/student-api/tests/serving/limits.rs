//! Limits on a request's size, at the edge: what the router sees gets a
//! problem document with a request id; what only the HTTP parser sees gets
//! its bare status and the connection is closed (docs/api.md lists both).

use std::fmt::Write as _;
use std::time::Duration;

use crate::support::{assert_problem, request, Conn, Service};

async fn exchange(service: &Service, raw: &[u8]) -> (crate::support::RawResponse, Conn) {
    let mut conn = Conn::open(service.port).await.unwrap();
    conn.write(raw).await.unwrap();
    let response = conn
        .read_response(Duration::from_secs(5))
        .await
        .expect("an answer");
    (response, conn)
}

#[tokio::test]
async fn a_body_declared_over_the_limit_with_expect_100_continue_is_refused_before_it_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &[]).await;
    let head = "POST /api/v1/students HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                Content-Type: application/json\r\nContent-Length: 10000000\r\n\
                Expect: 100-continue\r\n\r\n";

    // The first thing back is the 413 (not `100 Continue`): the client never sends the body.
    let (response, mut conn) = exchange(&service, head.as_bytes()).await;

    let problem = assert_problem(&response, 413, "payload-too-large");
    assert_eq!(
        problem["detail"],
        "request body is larger than the limit of 64 KiB"
    );
    assert!(response.closes(), "{response:?}");
    assert!(conn.closed_within(Duration::from_secs(2)).await.is_some());
}

#[tokio::test]
async fn a_body_declared_over_the_limit_is_a_413_problem_before_any_of_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &[]).await;
    let head = "PUT /api/v1/students/1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                Content-Type: application/json\r\nContent-Length: 65537\r\n\r\n";

    let (response, _) = exchange(&service, head.as_bytes()).await;

    assert_problem(&response, 413, "payload-too-large");
    assert!(response.closes());
}

#[tokio::test]
async fn a_request_target_over_8_kib_is_a_414_problem_with_a_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &[]).await;
    let path = format!("/api/v1/students?q={}", "a".repeat(9 * 1024));

    let (response, mut conn) =
        exchange(&service, request("GET", &path, &[], None).as_bytes()).await;

    let problem = assert_problem(&response, 414, "uri-too-long");
    assert_eq!(
        problem["detail"],
        "request target (path and query) is longer than the limit of 8 KiB"
    );
    // The connection stays usable.
    conn.write(request("GET", "/healthcheck", &[], None).as_bytes())
        .await
        .unwrap();
    assert_eq!(
        conn.read_response(Duration::from_secs(5))
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn header_fields_over_32_kib_are_a_431_problem_with_a_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &[]).await;
    let cookie = "c".repeat(20 * 1024);
    let token = "t".repeat(20 * 1024);
    let raw = request(
        "GET",
        "/api/v1/students",
        &[
            ("Cookie", &cookie),
            ("Authorization", &token),
            ("X-Request-Id", "big-headers"),
        ],
        None,
    );

    let (response, _) = exchange(&service, raw.as_bytes()).await;

    assert_eq!(response.status, 431);
    assert_eq!(response.header("x-request-id"), Some("big-headers"));
    assert_eq!(
        response.json()["type"],
        "urn:student-api:problem:headers-too-large"
    );
    assert_eq!(
        response.json()["detail"],
        "request header fields are larger than the limit of 32 KiB"
    );
}

#[tokio::test]
async fn what_only_the_http_parser_sees_gets_a_bare_status_a_closed_connection_and_a_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &[]).await;
    let many_headers = (0..100).fold(String::new(), |mut text, i| {
        let _ = write!(text, "X-H{i}: v\r\n");
        text
    });
    // Well over the parser's 64 KiB: one read may take in somewhat more
    // than that, and a head that is then complete is parsed.
    let huge_headers = (0..90).fold(String::new(), |mut text, i| {
        let _ = write!(text, "X-H{i}: {}\r\n", "v".repeat(2048));
        text
    });
    let cases: Vec<(&str, String, u16)> = vec![
        (
            "a Content-Length that is not a number",
            "POST /api/v1/students HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".into(),
            400,
        ),
        (
            "two different Content-Length values",
            "POST /api/v1/students HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}".into(),
            400,
        ),
        (
            "a NUL in a header value",
            "GET /healthcheck HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n".into(),
            400,
        ),
        (
            "a bare CR in a header value",
            "GET /healthcheck HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n".into(),
            400,
        ),
        (
            "more than 100 header fields",
            format!("GET /healthcheck HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n"),
            431,
        ),
        (
            "header fields far over 64 KiB",
            format!("GET /healthcheck HTTP/1.1\r\nHost: x\r\n{huge_headers}\r\n"),
            431,
        ),
        (
            "a request line far over 64 KiB (a 200 KB path)",
            format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "p".repeat(200 * 1024)),
            431,
        ),
    ];

    for (case, raw, status) in &cases {
        let (response, mut conn) = exchange(&service, raw.as_bytes()).await;
        assert_eq!(response.status, *status, "{case}: {response:?}");
        assert!(response.body.is_empty(), "{case}: {response:?}");
        assert_eq!(response.header("content-type"), None, "{case}");
        assert!(
            conn.closed_within(Duration::from_secs(2)).await.is_some(),
            "{case}"
        );
    }

    // Logged as each connection ends, which may be just after the client sees it close.
    let rejected = || {
        service
            .log_lines()
            .into_iter()
            .filter(|line| line["message"] == "request rejected by the HTTP parser")
            .count()
    };
    for _ in 0..100 {
        if rejected() == cases.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(rejected(), cases.len(), "{}", service.log_text());
    assert_eq!(
        service
            .metric("http_connections_closed_total{reason=\"malformed\"}")
            .await,
        7
    );
}
