//! The real binary as a child process: started on a loopback port of its
//! own choosing (read back from its JSON log), its log lines collected, and
//! stopped with SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_student-api");

pub struct Service {
    child: Child,
    pub base: String,
    pub client: reqwest::Client,
    log: Arc<Mutex<Vec<Value>>>,
}

impl Service {
    /// Serves the SQLite database at `db` and waits until it is ready.
    pub async fn start(db: &Path) -> Self {
        let mut child = Command::new(BIN)
            .env_clear()
            .env("DATABASE_URL", format!("sqlite://{}", db.display()))
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info,sqlx=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn student-api");
        let stdout = child.stdout.take().expect("stdout");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Ok(value) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if value["message"] == "serving the API" {
                    let _ = addr_tx.send(value["addr"].as_str().unwrap_or_default().to_owned());
                }
                lines.lock().unwrap().push(value);
            }
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the service logs the address it serves on");
        // reqwest's TLS has no built-in crypto provider: install ring, as
        // the service does.
        student_api::tls::install_default();
        let service = Self {
            child,
            base: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .no_proxy()
                .build()
                .unwrap(),
            log,
        };
        let started = Instant::now();
        while service.get("/ready").await.map(|r| r.status()) != Some(reqwest::StatusCode::OK) {
            assert!(started.elapsed() < Duration::from_secs(30), "never ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        service
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub async fn get(&self, path: &str) -> Option<reqwest::Response> {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .ok()
    }

    /// Log lines so far whose `message` starts with `prefix`.
    pub fn logged(&self, prefix: &str) -> Vec<Value> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|line| {
                line["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(prefix))
            })
            .cloned()
            .collect()
    }

    /// SIGTERM, then waits for a graceful exit.
    pub fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let exit = self.child.wait().expect("wait for student-api");
        assert!(exit.success(), "graceful shutdown exits 0: {exit:?}");
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // A test that failed midway must not leave the process behind.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
