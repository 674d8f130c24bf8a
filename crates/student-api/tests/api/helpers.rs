//! Test harness: each test gets the real application on a random loopback
//! port with a database of its own (a fresh SQLite file, or a fresh
//! PostgreSQL database created on the server named by `TEST_DATABASE_URL`
//! and dropped afterwards). Without `TEST_DATABASE_URL` the PostgreSQL tests
//! say so and pass without running (`require_postgres!`), so a plain
//! `cargo test` on a fresh clone runs everything SQLite can.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::Value;
use student_api::cli::Cli;
use student_api::config::Config;
use student_api::http::Health;
use student_api::Application;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const TEST_DATABASE_URL: &str = "TEST_DATABASE_URL";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Whether PostgreSQL tests can run; when not, says why on standard error.
/// It writes to the stream itself: libtest captures `eprintln!` of a
/// passing test, and a skipped test passes.
pub fn postgres_available() -> bool {
    static EXPLAINED: std::sync::Once = std::sync::Once::new();
    if std::env::var_os(TEST_DATABASE_URL).is_some() {
        return true;
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("a PostgreSQL test")
        .to_owned();
    let mut stderr = std::io::stderr().lock();
    EXPLAINED.call_once(|| {
        let _ = writeln!(
            stderr,
            "PostgreSQL tests are skipped: they need a server. Run `bash scripts/test.sh unit`, \
             which starts a throwaway one, or set \
             {TEST_DATABASE_URL}=postgres://user:password@127.0.0.1:port/postgres"
        );
    });
    let _ = writeln!(stderr, "skipped (needs {TEST_DATABASE_URL}): {test}");
    false
}

/// Returns from the test, saying why, when no PostgreSQL server is configured.
#[macro_export]
macro_rules! require_postgres {
    () => {
        if !$crate::helpers::postgres_available() {
            return;
        }
    };
}

/// The superuser URL of the throwaway PostgreSQL server the test command starts.
pub fn admin_url() -> String {
    std::env::var(TEST_DATABASE_URL).unwrap_or_else(|_| {
        panic!(
            "{TEST_DATABASE_URL} is not set: PostgreSQL tests need a server. \
             Run `scripts/test.sh unit`, which starts a throwaway one, or set \
             {TEST_DATABASE_URL}=postgres://user:password@127.0.0.1:port/postgres"
        )
    })
}

/// A database that exists for one test.
pub enum TestDb {
    /// The directory is deleted when the test ends.
    Sqlite {
        _dir: tempfile::TempDir,
    },
    Postgres {
        name: String,
    },
}

impl TestDb {
    pub async fn create(backend: Backend) -> (Self, String) {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("students.db").display());
                (Self::Sqlite { _dir: dir }, url)
            }
            Backend::Postgres => {
                let name = format!("test_{}", uuid::Uuid::new_v4().simple());
                let admin = admin_connection().await;
                admin
                    .batch_execute(&format!("create database {name}"))
                    .await
                    .expect("create test database");
                let url = database_url(&name);
                (Self::Postgres { name }, url)
            }
        }
    }
}

/// The URL of database `name` on the test server, same credentials.
pub fn database_url(name: &str) -> String {
    let mut url = url::Url::parse(&admin_url()).expect("TEST_DATABASE_URL is a URL");
    url.set_path(name);
    url.to_string()
}

pub async fn admin_connection() -> tokio_postgres::Client {
    connect(&admin_url()).await
}

/// A plain client (none of the service's session settings) of the test
/// server, which listens on loopback without TLS.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test server");
    tokio::spawn(connection);
    client
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Self::Postgres { name } = self {
            let name = name.clone();
            // Drop runs outside async; use a short-lived runtime on its own thread.
            let dropped = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime")
                    .block_on(async move {
                        let admin = admin_connection().await;
                        admin
                            .batch_execute(&format!("drop database if exists {name} with (force)"))
                            .await
                    })
            })
            .join();
            if !matches!(dropped, Ok(Ok(()))) {
                eprintln!("warning: could not drop a test database");
            }
        }
    }
}

/// Builds a serve configuration from command-line style flags. Shutdown
/// starts stopping at once unless a test asks for a `--shutdown-delay`.
pub fn config(flags: &[&str]) -> Config {
    let mut argv = vec!["student-api", "--listen-addr=127.0.0.1:0"];
    if !flags.iter().any(|f| f.starts_with("--shutdown-delay")) {
        argv.push("--shutdown-delay=0s");
    }
    argv.extend_from_slice(flags);
    Cli::try_parse_from(argv)
        .expect("valid flags")
        .config()
        .expect("valid configuration")
}

/// reqwest's TLS is rustls without a built-in crypto provider (the service
/// installs ring for the process): the test process does the same before
/// building a client.
pub fn install_crypto_provider() {
    student_api::tls::install_default();
}

/// A running application and an HTTP client for it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub client: Client,
    pub health: Arc<Health>,
    /// The URL of the test's own database, when `spawn` made one.
    pub database_url: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    // Declared last: dropped after the server has stopped.
    _db: Option<TestDb>,
}

impl TestApp {
    /// A migrated database of `backend` with the application serving it.
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, &[]).await
    }

    pub async fn spawn_with(backend: Backend, flags: &[&str]) -> Self {
        let (db, url) = TestDb::create(backend).await;
        let url_flag = format!("--database-url={url}");
        let mut all_flags = vec![url_flag.as_str()];
        all_flags.extend_from_slice(flags);
        let config = config(&all_flags);
        if backend == Backend::Postgres {
            student_api::app::migrate(&config, None)
                .await
                .expect("migrate the test database");
        }
        let mut app = Self::start(config, Some(db)).await;
        app.database_url = Some(url);
        app
    }

    /// Serves `config` as it is (no migration), e.g. against a broken database.
    pub async fn start(config: Config, db: Option<TestDb>) -> Self {
        let app = Application::build(config)
            .await
            .expect("build the application");
        let addr = app.local_addr();
        let health = app.health();
        let metrics_addr = app.metrics_addr();
        install_crypto_provider();
        let (stop, stopped) = oneshot::channel();
        let server = tokio::spawn(app.run(async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            metrics_addr,
            client: Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            health,
            database_url: None,
            stop: Some(stop),
            server: Some(server),
            _db: db,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn send_json(&self, method: Method, path: &str, body: &Value) -> Response {
        self.request(method, path)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// Creates a student and returns its JSON representation.
    pub async fn create_student(&self, body: &Value) -> Value {
        let response = self.send_json(Method::POST, "/api/v1/students", body).await;
        assert_eq!(response.status(), 201, "creating {body}");
        response.json().await.expect("student JSON")
    }

    /// Signals shutdown and waits for the server to finish.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let server = self.server.take().expect("server running");
        server.await.expect("server task")
    }

    /// Starts shutdown without waiting for it.
    pub fn begin_shutdown(&mut self) -> JoinHandle<anyhow::Result<()>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.server.take().expect("server running")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// A PostgreSQL "server" that accepts connections and never answers, as a
/// hung or partitioned database looks to a client. Returns its URL.
pub async fn black_hole_database() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("postgres://nobody:unused@{addr}/nothing")
}

/// A PostgreSQL URL on a loopback port where nothing listens.
pub fn refused_database() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("postgres://nobody:unused@{addr}/nothing")
}

/// Serves against a database URL that is not a working database.
pub async fn spawn_against(url: &str, flags: &[&str]) -> TestApp {
    let url_flag = format!("--database-url={url}");
    let mut all_flags = vec![url_flag.as_str()];
    all_flags.extend_from_slice(flags);
    TestApp::start(config(&all_flags), None).await
}

/// The number of PostgreSQL migrations, all of which a first `migrate` applies.
pub fn postgres_migrations() -> usize {
    std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .expect("migrations/postgres")
        .count()
}

/// A student body with a unique email.
pub fn student(name: &str) -> Value {
    serde_json::json!({
        "name": name,
        "email": format!("{}.{}@example.org", name.to_lowercase().replace(' ', "."), uuid::Uuid::new_v4().simple()),
        "domain": "Computer Science",
        "gpa": 8.5,
    })
}

/// Asserts an RFC 9457 problem response and returns its body.
pub async fn assert_problem(response: Response, status: u16) -> Value {
    assert_eq!(response.status(), status, "status");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json",
        "content type"
    );
    let body: Value = response.json().await.expect("problem JSON");
    assert_eq!(body["status"], status);
    assert!(
        body["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("urn:student-api:problem:")),
        "{body}"
    );
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    body
}

/// Generates a `#[tokio::test]` per backend for each listed test function,
/// each function taking a freshly spawned [`TestApp`].
#[macro_export]
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test($crate::helpers::TestApp::spawn($crate::helpers::Backend::Sqlite).await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    $crate::require_postgres!();
                    super::$test($crate::helpers::TestApp::spawn($crate::helpers::Backend::Postgres).await).await;
                }
            )*
        }
    };
}
