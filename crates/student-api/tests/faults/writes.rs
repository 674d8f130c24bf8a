//! Writes made under a fault, and what was acknowledged of them.

use serde_json::{json, Value};

use crate::service::Service;

pub const STUDENTS: &str = "/api/v1/students";

/// One write and its answer.
#[derive(Debug, Clone)]
pub struct Write {
    pub method: &'static str,
    pub path: String,
    pub body: Value,
    pub status: u16,
    pub answer: Value,
    pub retry_after: Option<String>,
    pub content_type: Option<String>,
}

impl Write {
    pub fn acknowledged(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

pub fn student(tag: &str, n: usize) -> Value {
    json!({
        "name": format!("Student {tag} {n}"),
        "email": format!("student.{tag}.{n}@example.org"),
        "domain": "Storage",
        "gpa": f64::from(u8::try_from(n % 11).unwrap()) * 0.9,
    })
}

pub async fn send(service: &Service, method: &'static str, path: String, body: Value) -> Write {
    let request = match method {
        "POST" => service.client.post(format!("{}{path}", service.base)),
        "PATCH" => service.client.patch(format!("{}{path}", service.base)),
        other => panic!("no {other}"),
    };
    let response = request.json(&body).send().await.expect("an answer");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (retry_after, content_type) = (header("retry-after"), header("content-type"));
    let status = response.status().as_u16();
    let answer = response.json().await.unwrap_or(Value::Null);
    Write {
        method,
        path,
        body,
        status,
        answer,
        retry_after,
        content_type,
    }
}

/// Asserts that a refused write got a problem document with `Retry-After`.
pub fn assert_actionable(write: &Write, status: u16, kind: &str) {
    assert_eq!(write.status, status, "{write:?}");
    assert_eq!(write.retry_after.as_deref(), Some("5"), "{write:?}");
    assert_eq!(
        write.content_type.as_deref(),
        Some("application/problem+json"),
        "{write:?}"
    );
    assert_eq!(
        write.answer["type"],
        format!("urn:student-api:problem:{kind}"),
        "{write:?}"
    );
}

/// Asserts that every acknowledged write is in the database `service`
/// serves: each created student as it was answered, each patched one with
/// the last acknowledged value or that of a later write that failed (a
/// failed write's outcome is unknown to its client).
pub async fn assert_all_acknowledged_present(service: &Service, writes: &[Write]) {
    for (i, write) in writes.iter().enumerate().filter(|(_, w)| w.acknowledged()) {
        let path = match write.method {
            "POST" => format!("{STUDENTS}/{}", write.answer["id"]),
            _ => write.path.clone(),
        };
        let stored: Value = service
            .get(&path)
            .await
            .expect("an answer")
            .json()
            .await
            .unwrap();
        if write.method == "POST" {
            assert_eq!(stored["email"], write.answer["email"], "{write:?}");
            assert_eq!(stored["id"], write.answer["id"], "{write:?}");
            continue;
        }
        let later: Vec<&Write> = writes[i + 1..]
            .iter()
            .filter(|w| w.path == write.path)
            .collect();
        if later.iter().any(|w| w.acknowledged()) {
            continue; // a later acknowledged write is checked instead
        }
        let possible: Vec<&Value> = std::iter::once(&write.body["gpa"])
            .chain(later.iter().map(|w| &w.body["gpa"]))
            .collect();
        assert!(
            possible.contains(&&stored["gpa"]),
            "{path} holds gpa {} but the last acknowledged write set {}",
            stored["gpa"],
            write.body["gpa"]
        );
    }
}
