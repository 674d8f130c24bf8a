//! Many connections cannot starve other clients: the open-file limit is
//! raised to the hard limit, the connection cap fits under it, idle
//! connections make room at the cap, and otherwise new connections wait in
//! the backlog instead of being accepted and dropped.

use std::time::{Duration, Instant};

use crate::support::{request, Conn, Service};

#[tokio::test]
async fn idle_connections_beyond_the_cap_under_a_low_open_file_limit_do_not_stop_other_clients() {
    let dir = tempfile::tempdir().unwrap();
    // Soft limit 128, hard 256: the service raises the soft one to 256 and
    // keeps 64 + 3 x 10 (pool) descriptors out of the connection cap.
    let service = Service::start_with_shell_prefix(
        dir.path(),
        &[("HTTP_HEADER_TIMEOUT", "30s"), ("HTTP_IDLE_TIMEOUT", "5m")],
        Some("ulimit -Sn 128 && ulimit -Hn 256"),
    )
    .await;
    let raised = service
        .log_line("raised the open-file limit to the hard limit")
        .expect("the limit raise is logged");
    assert_eq!(
        (raised["from"].as_u64(), raised["to"].as_u64()),
        (Some(128), Some(256))
    );
    let lowered = service
        .log_line("HTTP_MAX_CONNECTIONS lowered to fit the open-file limit")
        .expect("the lowered cap is logged");
    assert_eq!(lowered["max_connections"], 162);

    // More idle connections than the service has descriptors at all. The
    // timeouts are long, so only the cap can keep the service usable.
    let mut idle = Vec::new();
    for n in 0..300 {
        let conn = tokio::time::timeout(Duration::from_secs(10), Conn::open(service.port))
            .await
            .unwrap_or_else(|_| panic!("connection {n}: the service stopped taking connections"));
        idle.push(conn.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    for attempt in 0..5 {
        let started = Instant::now();
        let mut client = Conn::open(service.port).await.unwrap();
        client
            .write(request("GET", "/healthcheck", &[], None).as_bytes())
            .await
            .unwrap();
        let response = client
            .read_response(Duration::from_secs(10))
            .await
            .unwrap_or_else(|err| panic!("attempt {attempt}: no answer ({err:?})"));
        assert_eq!(response.status, 200);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "attempt {attempt} took {:?}",
            started.elapsed()
        );
    }

    // The oldest idle connections were closed to make room, and the
    // service never ran out of descriptors.
    assert!(idle[0]
        .closed_within(Duration::from_secs(1))
        .await
        .is_some());
    let text = service.log_text();
    assert!(!text.contains("cannot accept connections"), "{text}");
    assert!(
        service
            .metric("http_connections_closed_total{reason=\"evicted\"}")
            .await
            >= 100
    );
    assert_eq!(service.metric("http_connections_max").await, 162);
}

#[tokio::test]
async fn at_the_cap_with_no_idle_connection_new_clients_wait_in_the_backlog_until_one_closes() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(
        dir.path(),
        &[
            ("HTTP_MAX_CONNECTIONS", "2"),
            ("HTTP_HEADER_TIMEOUT", "20s"),
        ],
    )
    .await;
    // Two connections in the middle of their headers: busy, not idle.
    let mut first = Conn::open(service.port).await.unwrap();
    let mut second = Conn::open(service.port).await.unwrap();
    for conn in [&mut first, &mut second] {
        conn.write(b"GET /healthcheck HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The kernel completes the third connection, the service does not take it.
    let mut third = Conn::open(service.port).await.unwrap();
    third
        .write(request("GET", "/healthcheck", &[], None).as_bytes())
        .await
        .unwrap();
    assert_eq!(
        third
            .read_response(Duration::from_secs(1))
            .await
            .unwrap_err(),
        crate::support::ReadError::TimedOut,
        "a third connection is served above the cap of 2"
    );

    // The first finishes its request: answered, with Connection: close at
    // the cap, which frees its slot for the waiting client.
    first.write(b"\r\n").await.unwrap();
    let answer = first.read_response(Duration::from_secs(5)).await.unwrap();
    assert_eq!(answer.status, 200);
    assert!(answer.closes(), "{answer:?}");
    let waited = third.read_response(Duration::from_secs(5)).await.unwrap();
    assert_eq!(waited.status, 200);
}

/// The lowest descriptor number the process does not use: with the soft
/// limit there, it cannot open another (`accept` fails with EMFILE).
fn lowest_free_descriptor(pid: u32) -> usize {
    let used: std::collections::HashSet<usize> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    (0..=used.len()).find(|n| !used.contains(n)).unwrap()
}

/// CPU time the process has used, in clock ticks (user + system).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Sets the soft open-file limit of a running process (the hard one stays:
/// raising it back would need CAP_SYS_RESOURCE).
fn set_open_file_limit(pid: u32, limit: usize) {
    let status = std::process::Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--nofile={limit}:")])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn out_of_descriptors_accepting_backs_off_frees_an_idle_connection_and_recovers() {
    if std::process::Command::new("prlimit")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: prlimit (util-linux) is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &[]).await;
    let pid = service.pid();
    let healthcheck = request("GET", "/healthcheck", &[], None);

    // No descriptor left and no idle connection to close: accepting fails
    // and backs off, without spinning. (First the readiness probe's
    // connection must be gone, or closing it would free a descriptor.)
    tokio::time::sleep(Duration::from_millis(300)).await;
    set_open_file_limit(pid, lowest_free_descriptor(pid));
    let mut waiting = Conn::open(service.port).await.unwrap();
    waiting.write(healthcheck.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = cpu_ticks(pid);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let spent = cpu_ticks(pid) - before;
    assert!(spent < 20, "{spent} ticks of CPU in 2 s of failing accepts");
    let failures = |service: &Service| {
        service
            .log_lines()
            .iter()
            .filter(|l| {
                l["message"] == "cannot accept connections; closing an idle one and pausing accepts"
            })
            .count()
    };
    assert_eq!(
        failures(&service),
        1,
        "logged once, not per attempt:\n{}",
        service.log_text()
    );

    // Descriptors again: the waiting client is served, no restart needed.
    set_open_file_limit(pid, 1024);
    let answer = waiting.read_response(Duration::from_secs(3)).await.unwrap();
    assert_eq!(answer.status, 200);
    assert!(
        service.log_line("accepting connections again").is_some(),
        "{}",
        service.log_text()
    );

    // Out of descriptors with idle keep-alive connections: one is closed
    // to free a descriptor, and the new client is served.
    let mut idle = Vec::new();
    for _ in 0..5 {
        let mut conn = Conn::open(service.port).await.unwrap();
        conn.write(healthcheck.as_bytes()).await.unwrap();
        conn.read_response(Duration::from_secs(5)).await.unwrap();
        idle.push(conn);
    }
    set_open_file_limit(pid, lowest_free_descriptor(pid));
    for attempt in 0..3 {
        let mut client = Conn::open(service.port).await.unwrap();
        client.write(healthcheck.as_bytes()).await.unwrap();
        let answer = client
            .read_response(Duration::from_secs(5))
            .await
            .unwrap_or_else(|err| panic!("attempt {attempt}: no answer ({err:?})"));
        assert_eq!(answer.status, 200);
    }
}
