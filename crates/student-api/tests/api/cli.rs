//! The binary itself: subcommands, configuration from the environment,
//! failing fast with the variable's name, JSON logs, and signals.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{admin_connection, postgres_migrations, Backend, TestDb};

const BIN: &str = env!("CARGO_BIN_EXE_student-api");

/// The binary with a clean environment: only what each test sets.
fn command(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().current_dir(dir).env("LOG_FORMAT", "json");
    cmd
}

fn output_text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn help_lists_the_environment_variables_without_secret_values() {
    let dir = tempfile::tempdir().unwrap();
    let output = command(dir.path())
        .arg("--help")
        .env("DATABASE_URL", "postgres://u:hunter2-in-help@h/db")
        .env("POSTGRES_PASSWORD", "hunter2-in-help")
        .output()
        .unwrap();
    let text = output_text(&output);
    assert!(output.status.success());
    for var in [
        "LISTEN_ADDR",
        "METRICS_ADDR",
        "LOG_FORMAT",
        "RUST_LOG",
        "DATABASE_URL",
        "DATABASE_URL_FILE",
        "POSTGRES_PASSWORD_FILE",
    ] {
        assert!(
            text.contains(&format!("[env: {var}")),
            "{var} missing from help:\n{text}"
        );
    }
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn an_invalid_listen_address_fails_fast_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let output = command(dir.path())
        .env("LISTEN_ADDR", "localhost-8080")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        output_text(&output).contains("LISTEN_ADDR"),
        "{}",
        output_text(&output)
    );
}

#[test]
fn postgres_parts_without_a_user_fail_fast_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let output = command(dir.path())
        .env("POSTGRES_HOST", "127.0.0.1")
        .env("POSTGRES_PASSWORD", "irrelevant")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(output_text(&output).contains("POSTGRES_USER is required when POSTGRES_HOST is set"));
}

/// Runs `cmd` and returns its output once it exits; fails the test (and
/// stops the process) when it is still running after `limit`.
fn exit_within(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            let output = child.wait_with_output().unwrap();
            panic!(
                "still running after {limit:?}; it should have refused to start:\n{}",
                output_text(&output)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_database_url_with_an_unencoded_hash_or_at_fails_fast_without_echoing_it() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        "postgres://app:Hx7@Pass#Qz@127.0.0.1:5432/school",
        "postgres://app:Zq@Vw@127.0.0.1:5432/school",
    ] {
        let mut cmd = command(dir.path());
        cmd.env("DATABASE_URL", url)
            .env("LISTEN_ADDR", format!("127.0.0.1:{}", free_port()));
        let output = exit_within(cmd, Duration::from_secs(10));
        let text = output_text(&output);
        assert_eq!(output.status.code(), Some(2), "{text}");
        assert!(text.contains("DATABASE_URL: "), "{text}");
        for part in ["Hx7", "Pass", "Qz", "Zq", "Vw"] {
            assert!(!text.contains(part), "{part} printed: {text}");
        }
    }
}

#[test]
fn an_unreadable_sslrootcert_stops_the_service_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path());
    cmd.env(
        "DATABASE_URL",
        "postgres://app:unused@127.0.0.1:1/school?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
    )
    .env("LISTEN_ADDR", format!("127.0.0.1:{}", free_port()));
    let output = exit_within(cmd, Duration::from_secs(10));
    let text = output_text(&output);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("sslrootcert"), "{text}");
    assert!(text.contains("DATABASE_URL"), "{text}");
    assert!(!text.contains("unused"), "{text}");
}

#[tokio::test]
async fn migrate_accepts_postgres_parts_a_password_file_and_a_kubernetes_port() {
    crate::require_postgres!();
    let (db, url) = TestDb::create(Backend::Postgres).await;
    let parsed = url::Url::parse(&url).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, format!("{}\n", parsed.password().unwrap())).unwrap();
    let migrate = || {
        command(dir.path())
            .arg("migrate")
            .env("POSTGRES_HOST", parsed.host_str().unwrap())
            .env(
                "POSTGRES_PORT",
                format!("tcp://10.96.0.7:{}", parsed.port().unwrap()),
            )
            .env("POSTGRES_USER", parsed.username())
            .env("POSTGRES_PASSWORD_FILE", &password_file)
            .env("POSTGRES_DB", parsed.path().trim_start_matches('/'))
            .env("POSTGRES_SSLMODE", "disable")
            .output()
            .unwrap()
    };

    let first = migrate();
    let second = migrate();

    assert!(first.status.success(), "{}", output_text(&first));
    assert!(
        output_text(&first).contains(&format!(r#""applied":{}"#, postgres_migrations())),
        "{}",
        output_text(&first)
    );
    assert!(second.status.success());
    assert!(
        output_text(&second).contains(r#""applied":0"#),
        "{}",
        output_text(&second)
    );
    let conn = admin_connection().await;
    let exists: bool = conn
        .query_one(
            "select exists (select 1 from pg_database where datname = $1)",
            &[&parsed.path().trim_start_matches('/')],
        )
        .await
        .unwrap()
        .get(0);
    assert!(exists);
    drop(db);
}

/// Forwards connections from `listener` to `target`, as a database that
/// has just come up would accept them.
async fn forward(listener: tokio::net::TcpListener, target: String) {
    while let Ok((mut inbound, _)) = listener.accept().await {
        let target = target.clone();
        tokio::spawn(async move {
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

#[tokio::test]
async fn migrate_waits_for_a_database_that_comes_up_late() {
    crate::require_postgres!();
    let (_db, url) = TestDb::create(Backend::Postgres).await;
    let real = url::Url::parse(&url).unwrap();
    let port = free_port();
    let mut late = real.clone();
    late.set_port(Some(port)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let child = command(dir.path())
        .args(["migrate", "--wait", "30s"])
        .env("DATABASE_URL", late.as_str())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Nothing listens on the port for two seconds, then the database "starts".
    tokio::time::sleep(Duration::from_secs(2)).await;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let target = format!("{}:{}", real.host_str().unwrap(), real.port().unwrap());
    let proxy = tokio::spawn(forward(listener, target));
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    proxy.abort();

    let text = output_text(&output);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("waiting for the database"), "{text}");
    assert!(
        text.contains(&format!(r#""applied":{}"#, postgres_migrations())),
        "{text}"
    );
}

#[test]
fn migrate_gives_up_when_its_wait_is_over() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let output = command(dir.path())
        .args(["migrate", "--wait", "2s"])
        .env(
            "DATABASE_URL",
            format!("postgres://nobody:unused@127.0.0.1:{}/nothing", free_port()),
        )
        .output()
        .unwrap();

    let text = output_text(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(
        text.contains("did not accept connections within 2s"),
        "{text}"
    );
}

#[tokio::test]
async fn a_rejected_password_fails_without_printing_it() {
    crate::require_postgres!();
    let (_db, url) = TestDb::create(Backend::Postgres).await;
    let mut wrong = url::Url::parse(&url).unwrap();
    wrong.set_password(Some("wrong-password-value")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url_file = dir.path().join("url");
    std::fs::write(&url_file, wrong.as_str()).unwrap();

    let output = command(dir.path())
        .arg("migrate")
        .env("DATABASE_URL_FILE", &url_file)
        .output()
        .unwrap();

    let text = output_text(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("password authentication failed"), "{text}");
    assert!(!text.contains("wrong-password-value"), "{text}");
}

/// Polls `/ready` on `port` until it answers 200 (bounded) and returns the client.
async fn wait_ready(port: u16) -> reqwest::Client {
    crate::helpers::install_crypto_provider();
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(response) = client
            .get(format!("http://127.0.0.1:{port}/ready"))
            .send()
            .await
        {
            if response.status() == 200 {
                return client;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "not ready in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn serve_is_the_default_on_embedded_sqlite_logs_json_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = command(dir.path())
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = Server(child);
    let client = wait_ready(port).await;
    let base = format!("http://127.0.0.1:{port}");
    let response = client
        .get(format!("{base}/api/v1/students?limit=5"))
        .header("x-request-id", "cli-test-request")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        dir.path().join("data/students.db").exists(),
        "the default SQLite file is created"
    );

    let status = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = server.0.wait().unwrap();
    assert!(exit.success(), "graceful shutdown exits 0: {exit:?}");

    let lines: Vec<Value> = BufReader::new(server.0.stdout.take().unwrap())
        .lines()
        .map(|line| serde_json::from_str(&line.unwrap()).expect("every log line is JSON"))
        .collect();
    let access = lines
        .iter()
        .find(|l| l["request_id"] == "cli-test-request")
        .expect("an access log line for the request");
    assert_eq!(access["level"], "INFO");
    assert_eq!(access["message"], "request completed");
    assert_eq!(access["method"], "GET");
    assert_eq!(access["route"], "/api/v1/students");
    assert_eq!(access["status"], 200);
    assert!(access["latency_ms"].as_f64().is_some());
    assert!(access["timestamp"].as_str().is_some());
    assert!(lines.iter().any(|l| l["message"] == "shutdown complete"));
}

#[tokio::test]
async fn serve_on_postgres_connects_with_database_url() {
    crate::require_postgres!();
    let (_db, url) = TestDb::create(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let migrate = command(dir.path())
        .arg("migrate")
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(migrate.status.success(), "{}", output_text(&migrate));
    let port = free_port();
    let child = command(dir.path())
        .arg("serve")
        .env("DATABASE_URL", &url)
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Server(child);
    wait_ready(port).await;
    assert!(
        !dir.path().join("data").exists(),
        "no SQLite file when PostgreSQL is configured"
    );
    Command::new("kill")
        .args(["-INT", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(server.0.wait().unwrap().success());
}

#[tokio::test]
async fn healthcheck_exits_0_while_the_service_answers_and_1_when_it_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = Server(
        command(dir.path())
            // Listening on every address, as in a container: the check goes
            // through loopback.
            .env("LISTEN_ADDR", format!("0.0.0.0:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_ready(port).await;
    let check = || {
        command(dir.path())
            .arg("healthcheck")
            .env("LISTEN_ADDR", format!("0.0.0.0:{port}"))
            // Settings the check must not need: a database it never opens.
            .env("POSTGRES_HOST", "db.invalid")
            .output()
            .unwrap()
    };

    let healthy = check();
    drop(server);
    let gone = check();

    assert!(healthy.status.success(), "{}", output_text(&healthy));
    assert!(output_text(&healthy).is_empty(), "silent when healthy");
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        output_text(&gone).contains(&format!(
            "no answer from http://127.0.0.1:{port}/healthcheck"
        )),
        "{}",
        output_text(&gone)
    );
}
