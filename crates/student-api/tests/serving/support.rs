//! Harness: the real binary on a free loopback port with a fresh SQLite
//! database, its JSON log in a file, and a raw HTTP/1.1 client that knows
//! exactly what it wrote and what came back on each connection.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_student-api");

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The service, killed if a test ends while it still runs.
pub struct Service {
    child: Child,
    pub port: u16,
    dir: PathBuf,
    log: PathBuf,
}

impl Service {
    /// Starts the binary in `dir` (its SQLite file goes to `dir/data`) with
    /// only `env` set, and waits until `/ready` answers 200.
    pub async fn start(dir: &Path, env: &[(&str, &str)]) -> Self {
        Self::start_with_shell_prefix(dir, env, None).await
    }

    /// Like [`Service::start`], run by `bash -c '<prefix>; exec student-api'`
    /// (e.g. `ulimit -n 256`).
    pub async fn start_with_shell_prefix(
        dir: &Path,
        env: &[(&str, &str)],
        prefix: Option<&str>,
    ) -> Self {
        let port = free_port();
        let log = dir.join(format!("service-{port}.log"));
        let mut command = match prefix {
            Some(prefix) => {
                let mut command = Command::new("bash");
                command.args(["-c", &format!("{prefix}; exec \"$0\""), BIN]);
                command
            }
            None => Command::new(BIN),
        };
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("LOG_FORMAT", "json")
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .envs(env.iter().copied())
            .current_dir(dir)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::inherit());
        let child = command.spawn().expect("start the service");
        let mut service = Self {
            child,
            port,
            dir: dir.to_owned(),
            log,
        };
        service.wait_ready().await;
        service
    }

    async fn wait_ready(&mut self) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the service exited with {status}:\n{}", self.log_text());
            }
            if let Ok(response) = get(self.port, "/ready").await {
                if response.status == 200 {
                    return;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "not ready in time:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits up to `limit` for the process to exit.
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < limit,
                "still running after {limit:?}:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The JSON log lines written so far.
    pub fn log_lines(&self) -> Vec<Value> {
        self.log_text()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// The first log line with this message.
    pub fn log_line(&self, message: &str) -> Option<Value> {
        self.log_lines()
            .into_iter()
            .find(|line| line["message"] == message)
    }

    /// The value of an integer metric series, e.g.
    /// `http_connections_closed_total{reason="evicted"}` (0 when absent).
    pub async fn metric(&self, series: &str) -> u64 {
        let response = get(self.port, "/metrics").await.expect("metrics");
        let text = String::from_utf8(response.body).unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One response, as read off the socket.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// How reading a response failed.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The connection ended (EOF or reset) after this many bytes of the response.
    Closed {
        received: usize,
    },
    TimedOut,
    Malformed(String),
}

/// A client connection that sends requests one at a time.
pub struct Conn {
    pub stream: TcpStream,
    buffer: Vec<u8>,
    /// Responses read on this connection.
    pub answered: usize,
}

impl Conn {
    pub async fn open(port: u16) -> std::io::Result<Self> {
        Ok(Self {
            stream: TcpStream::connect(("127.0.0.1", port)).await?,
            buffer: Vec::new(),
            answered: 0,
        })
    }

    pub async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Reads one response (Content-Length bodies only: what the service sends).
    pub async fn read_response(&mut self, limit: Duration) -> Result<RawResponse, ReadError> {
        tokio::time::timeout(limit, self.read_response_inner())
            .await
            .unwrap_or(Err(ReadError::TimedOut))
    }

    async fn read_response_inner(&mut self) -> Result<RawResponse, ReadError> {
        let head_end = loop {
            if let Some(at) = find(&self.buffer, b"\r\n\r\n") {
                break at + 4;
            }
            self.fill().await?;
        };
        let head = String::from_utf8_lossy(&self.buffer[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| ReadError::Malformed(head.clone()))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map_or(0, |(_, v)| v.parse().unwrap_or(0));
        while self.buffer.len() < head_end + length {
            self.fill().await?;
        }
        let body = self.buffer[head_end..head_end + length].to_vec();
        self.buffer.drain(..head_end + length);
        self.answered += 1;
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }

    async fn fill(&mut self) -> Result<(), ReadError> {
        self.buffer.reserve(16 * 1024);
        match self.stream.read_buf(&mut self.buffer).await {
            Ok(0) | Err(_) => Err(ReadError::Closed {
                received: self.buffer.len(),
            }),
            Ok(_) => Ok(()),
        }
    }

    /// Waits up to `limit` for the service to close the connection; returns
    /// how long it took, or `None` if it stayed open (bytes are discarded).
    pub async fn closed_within(&mut self, limit: Duration) -> Option<Duration> {
        let started = Instant::now();
        let mut chunk = [0u8; 4096];
        loop {
            let left = limit.checked_sub(started.elapsed())?;
            match tokio::time::timeout(left, self.stream.read(&mut chunk)).await {
                Err(_) => return None,
                Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
                Ok(Ok(_)) => {}
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// `GET path` on a connection of its own.
pub async fn get(port: u16, path: &str) -> Result<RawResponse, ReadError> {
    let mut conn = Conn::open(port)
        .await
        .map_err(|_| ReadError::Closed { received: 0 })?;
    conn.write(request("GET", path, &[], None).as_bytes())
        .await
        .map_err(|_| ReadError::Closed { received: 0 })?;
    conn.read_response(Duration::from_secs(10)).await
}

/// An HTTP/1.1 request, with `Content-Length` when there is a body.
pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> String {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (name, value) in headers {
        let _ = write!(text, "{name}: {value}\r\n");
    }
    if let Some(body) = body {
        let _ = write!(
            text,
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
    } else {
        text.push_str("\r\n");
    }
    text
}

/// Asserts a problem document with a request id; returns its body.
pub fn assert_problem(response: &RawResponse, status: u16, kind: &str) -> Value {
    assert_eq!(response.status, status, "{response:?}");
    assert_eq!(
        response.header("content-type"),
        Some("application/problem+json"),
        "{response:?}"
    );
    let id = response.header("x-request-id").expect("an X-Request-Id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    let problem = response.json();
    assert_eq!(problem["status"], status);
    assert_eq!(problem["type"], format!("urn:student-api:problem:{kind}"));
    problem
}
