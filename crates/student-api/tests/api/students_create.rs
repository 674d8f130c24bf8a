//! `POST /api/v1/students`.

use reqwest::Method;
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::helpers::{assert_problem, student, TestApp};

const PATH: &str = "/api/v1/students";

async fn creating_a_student_returns_201_with_the_student_and_its_location(app: TestApp) {
    let body = json!({"name": "  Ada Lovelace ", "email": "Ada@Example.org", "domain": "Mathematics", "gpa": 9.25});

    let response = app.send_json(Method::POST, PATH, &body).await;

    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created: serde_json::Value = response.json().await.unwrap();
    let id = created["id"].as_i64().unwrap();
    assert!(id > 0);
    assert_eq!(location, format!("/api/v1/students/{id}"));
    let created_at = created["created_at"].as_str().unwrap();
    assert_eq!(
        created,
        json!({
            "id": id, "name": "Ada Lovelace", "email": "Ada@Example.org", "domain": "Mathematics", "gpa": 9.25,
            "created_at": created_at, "updated_at": created_at,
        })
    );
    let parsed = OffsetDateTime::parse(created_at, &Rfc3339).unwrap();
    assert!(created_at.ends_with('Z'), "UTC: {created_at}");
    assert_eq!(
        created_at.len(),
        "2026-11-24T10:00:00.123456Z".len(),
        "fixed width: {created_at}"
    );
    assert!((OffsetDateTime::now_utc() - parsed).abs() < time::Duration::minutes(1));
    let fetched: serde_json::Value = app.get(&location).await.json().await.unwrap();
    assert_eq!(fetched, created);
}

async fn ids_are_assigned_in_increasing_order(app: TestApp) {
    let first = app.create_student(&student("First")).await;
    let second = app.create_student(&student("Second")).await;
    assert!(second["id"].as_i64() > first["id"].as_i64());
}

async fn gpa_bounds_are_inclusive_and_integers_are_numbers(app: TestApp) {
    for gpa in [json!(0), json!(10), json!(10.0), json!(0.0)] {
        let mut body = student("Bounds");
        body["gpa"] = gpa.clone();
        let created = app.create_student(&body).await;
        assert_eq!(created["gpa"].as_f64(), gpa.as_f64());
    }
}

async fn every_invalid_field_is_named_in_one_422(app: TestApp) {
    let body = json!({
        "name": "   ", "email": "not-an-email", "domain": "x".repeat(101), "gpa": 10.5, "nickname": "Ada"
    });

    let problem = assert_problem(app.send_json(Method::POST, PATH, &body).await, 422).await;

    assert_eq!(problem["type"], "urn:student-api:problem:validation-failed");
    assert_eq!(
        problem["errors"],
        json!({
            "domain": ["must be at most 100 characters"],
            "email": ["must be a valid email address"],
            "gpa": ["must be a number from 0 to 10"],
            "name": ["must not be empty"],
            "nickname": ["is not a writable field"],
        })
    );
}

async fn missing_fields_are_each_reported_as_required(app: TestApp) {
    let problem = assert_problem(
        app.send_json(Method::POST, PATH, &json!({"name": "Ada"}))
            .await,
        422,
    )
    .await;
    assert_eq!(
        problem["errors"],
        json!({"domain": ["is required"], "email": ["is required"], "gpa": ["is required"]})
    );
}

async fn a_gpa_sent_as_a_string_or_null_is_rejected(app: TestApp) {
    for gpa in [json!("9.5"), json!("NaN"), json!(null), json!(true)] {
        let mut body = student("Strings");
        body["gpa"] = gpa;
        let problem = assert_problem(app.send_json(Method::POST, PATH, &body).await, 422).await;
        assert_eq!(problem["errors"], json!({"gpa": ["must be a number"]}));
    }
}

async fn nan_is_not_json_and_is_a_400(app: TestApp) {
    let response = app
        .request(Method::POST, PATH)
        .header("content-type", "application/json")
        .body(r#"{"name":"Ada","email":"a@example.org","domain":"Maths","gpa":NaN}"#)
        .send()
        .await
        .unwrap();
    assert_problem(response, 400).await;
}

async fn an_email_already_used_in_any_case_is_a_409(app: TestApp) {
    let mut body = student("Grace");
    body["email"] = json!("grace.hopper@example.org");
    app.create_student(&body).await;

    body["email"] = json!("GRACE.Hopper@EXAMPLE.org");
    let problem = assert_problem(app.send_json(Method::POST, PATH, &body).await, 409).await;

    assert_eq!(problem["type"], "urn:student-api:problem:email-taken");
}

async fn malformed_json_is_a_400(app: TestApp) {
    for raw in [r#"{"name": "Ada""#, "not json", "", r#"{"name": "\ud800"}"#] {
        let response = app
            .request(Method::POST, PATH)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        let problem = assert_problem(response, 400).await;
        assert_eq!(
            problem["type"], "urn:student-api:problem:malformed-body",
            "{raw}"
        );
    }
}

async fn a_body_that_is_not_an_object_is_a_422(app: TestApp) {
    let problem =
        assert_problem(app.send_json(Method::POST, PATH, &json!([1, 2])).await, 422).await;
    assert_eq!(
        problem["errors"],
        json!({"body": ["must be a JSON object"]})
    );
}

async fn a_missing_or_wrong_content_type_is_a_415(app: TestApp) {
    let body = student("Ada").to_string();
    let without = app
        .request(Method::POST, PATH)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_problem(without, 415).await;
    let wrong = app
        .request(Method::POST, PATH)
        .header("content-type", "text/plain")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_problem(wrong, 415).await;
    let with_charset = app
        .request(Method::POST, PATH)
        .header("content-type", "application/json; charset=utf-8")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(with_charset.status(), 201);
}

async fn a_body_over_64_kib_is_a_413(app: TestApp) {
    let mut body = student("Big");
    body["name"] = json!("x".repeat(64 * 1024));
    let problem = assert_problem(app.send_json(Method::POST, PATH, &body).await, 413).await;
    assert_eq!(problem["type"], "urn:student-api:problem:payload-too-large");
}

async fn a_body_just_under_the_limit_is_read(app: TestApp) {
    let mut body = student("Padded");
    let padding = 64 * 1024 - body.to_string().len() - r#","name":"""#.len() - 16;
    body["name"] = json!(format!("Padded{}", " ".repeat(padding)));
    assert!(body.to_string().len() < 64 * 1024);
    let created = app.create_student(&body).await;
    assert_eq!(created["name"], "Padded");
}

crate::on_both_backends!(
    creating_a_student_returns_201_with_the_student_and_its_location,
    ids_are_assigned_in_increasing_order,
    gpa_bounds_are_inclusive_and_integers_are_numbers,
    every_invalid_field_is_named_in_one_422,
    missing_fields_are_each_reported_as_required,
    a_gpa_sent_as_a_string_or_null_is_rejected,
    nan_is_not_json_and_is_a_400,
    an_email_already_used_in_any_case_is_a_409,
    malformed_json_is_a_400,
    a_body_that_is_not_an_object_is_a_422,
    a_missing_or_wrong_content_type_is_a_415,
    a_body_over_64_kib_is_a_413,
    a_body_just_under_the_limit_is_read,
);
