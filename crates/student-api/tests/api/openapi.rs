//! `/api/v1/openapi.json`: the OpenAPI 3.1 document generated from the code.

use serde_json::Value;

use crate::helpers::{Backend, TestApp};

#[tokio::test]
async fn the_document_is_openapi_3_1_and_covers_every_operation() {
    let app = TestApp::spawn(Backend::Sqlite).await;

    let response = app.get("/api/v1/openapi.json").await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let doc: Value = response.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let mut operations: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| format!("{method} {path}"))
        })
        .collect();
    operations.sort();
    assert_eq!(
        operations,
        [
            "delete /api/v1/students/{id}",
            "get /api/v1/openapi.json",
            "get /api/v1/students",
            "get /api/v1/students/{id}",
            "get /health",
            "get /healthcheck",
            "get /metrics",
            "get /ready",
            "patch /api/v1/students/{id}",
            "post /api/v1/students",
            "put /api/v1/students/{id}",
        ]
    );
}

#[tokio::test]
async fn every_error_response_is_documented_as_a_problem() {
    let doc: Value =
        serde_json::from_str(&student_api::http::openapi::document().unwrap()).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                if status.starts_with('4') || status.starts_with('5') {
                    let content = response["content"]
                        .as_object()
                        .unwrap_or_else(|| panic!("{method} {path} {status}"));
                    assert!(
                        content.contains_key("application/problem+json"),
                        "{method} {path} {status}: {response}"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn request_bodies_forbid_unknown_fields() {
    let doc: Value =
        serde_json::from_str(&student_api::http::openapi::document().unwrap()).unwrap();
    let schemas = &doc["components"]["schemas"];
    for name in ["StudentInput", "StudentPatchInput"] {
        assert_eq!(
            schemas[name]["additionalProperties"],
            Value::Bool(false),
            "{name}"
        );
    }
    assert_eq!(schemas["StudentPatchInput"]["minProperties"], 1);
    let required: Vec<&str> = schemas["StudentInput"]["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(required, ["name", "email", "domain", "gpa"]);
}
