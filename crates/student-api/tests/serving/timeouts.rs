//! A client cannot hold a connection without using it: headers must arrive
//! within HTTP_HEADER_TIMEOUT, a keep-alive connection may wait for its next
//! request only HTTP_IDLE_TIMEOUT.

use std::time::Duration;

use crate::support::{request, Conn, Service};

#[tokio::test]
async fn a_client_trickling_its_headers_a_byte_a_second_is_cut_off_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &[("HTTP_HEADER_TIMEOUT", "2s")]).await;
    let mut slow = Conn::open(service.port).await.unwrap();
    slow.write(b"GET /healthcheck HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .unwrap();

    // One byte a second; the read doubles as the one-second pause.
    let mut closed_after = None;
    for second in 1..=10u64 {
        if slow.write(b"a").await.is_err() {
            closed_after = Some(second);
            break;
        }
        if slow.closed_within(Duration::from_secs(1)).await.is_some() {
            closed_after = Some(second);
            break;
        }
    }

    let closed_after = closed_after.expect("the trickling connection is still open after 10 s");
    assert!(
        (2..=4).contains(&closed_after),
        "closed after {closed_after} s"
    );
    assert_eq!(
        service
            .metric("http_connections_closed_total{reason=\"header_timeout\"}")
            .await,
        1
    );
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(
        dir.path(),
        &[("HTTP_HEADER_TIMEOUT", "1s"), ("HTTP_IDLE_TIMEOUT", "1m")],
    )
    .await;
    let mut silent = Conn::open(service.port).await.unwrap();

    let closed = silent.closed_within(Duration::from_secs(5)).await;

    let closed = closed.expect("a silent connection stays open");
    assert!(closed >= Duration::from_millis(900), "{closed:?}");
    assert!(closed < Duration::from_secs(3), "{closed:?}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout_and_not_before() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(
        dir.path(),
        &[("HTTP_HEADER_TIMEOUT", "1s"), ("HTTP_IDLE_TIMEOUT", "2s")],
    )
    .await;
    let mut client = Conn::open(service.port).await.unwrap();
    let healthcheck = request("GET", "/healthcheck", &[], None);

    // A request every 1.5 s keeps the connection for longer than either
    // timeout: the idle clock restarts with each response.
    for _ in 0..3 {
        client.write(healthcheck.as_bytes()).await.unwrap();
        let response = client
            .read_response(Duration::from_secs(5))
            .await
            .expect("an answer on the kept-alive connection");
        assert_eq!(response.status, 200);
        assert!(!response.closes());
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    client.write(healthcheck.as_bytes()).await.unwrap();
    client.read_response(Duration::from_secs(5)).await.unwrap();
    let closed = client.closed_within(Duration::from_secs(6)).await;

    let closed = closed.expect("an idle keep-alive connection stays open");
    assert!(closed >= Duration::from_millis(1900), "{closed:?}");
    assert!(closed < Duration::from_secs(4), "{closed:?}");
    assert_eq!(
        service
            .metric("http_connections_closed_total{reason=\"idle_timeout\"}")
            .await,
        1
    );
}
