//! `PUT` (full replace) and `PATCH` (partial update) of `/api/v1/students/{id}`.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, student, TestApp};

fn path(student: &Value) -> String {
    format!("/api/v1/students/{}", student["id"])
}

async fn put_replaces_every_field_and_moves_updated_at(app: TestApp) {
    let created = app.create_student(&student("Before")).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let replacement =
        json!({"name": "After", "email": "after@example.org", "domain": "Physics", "gpa": 3.5});

    let response = app
        .send_json(Method::PUT, &path(&created), &replacement)
        .await;

    assert_eq!(response.status(), 200);
    let updated: Value = response.json().await.unwrap();
    assert_eq!(
        updated,
        json!({
            "id": created["id"], "name": "After", "email": "after@example.org", "domain": "Physics", "gpa": 3.5,
            "created_at": created["created_at"], "updated_at": updated["updated_at"],
        })
    );
    assert!(
        updated["updated_at"].as_str() > created["updated_at"].as_str(),
        "{updated}"
    );
    assert_eq!(
        app.get(&path(&created))
            .await
            .json::<Value>()
            .await
            .unwrap(),
        updated
    );
}

async fn put_requires_every_writable_field(app: TestApp) {
    let created = app.create_student(&student("Whole")).await;
    let problem = assert_problem(
        app.send_json(
            Method::PUT,
            &path(&created),
            &json!({"name": "Only a name"}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(
        problem["errors"],
        json!({"domain": ["is required"], "email": ["is required"], "gpa": ["is required"]})
    );
}

async fn patch_changes_only_the_given_fields(app: TestApp) {
    let created = app.create_student(&student("Partial")).await;

    let response = app
        .send_json(
            Method::PATCH,
            &path(&created),
            &json!({"gpa": 6.75, "domain": " Biology "}),
        )
        .await;

    assert_eq!(response.status(), 200);
    let updated: Value = response.json().await.unwrap();
    assert_eq!(updated["gpa"], 6.75);
    assert_eq!(updated["domain"], "Biology");
    for unchanged in ["id", "name", "email", "created_at"] {
        assert_eq!(updated[unchanged], created[unchanged], "{unchanged}");
    }
}

async fn an_empty_patch_is_a_422(app: TestApp) {
    let created = app.create_student(&student("Empty")).await;
    let problem = assert_problem(
        app.send_json(Method::PATCH, &path(&created), &json!({}))
            .await,
        422,
    )
    .await;
    assert_eq!(
        problem["errors"],
        json!({"body": ["must contain at least one of: name, email, domain, gpa"]})
    );
}

async fn a_patch_with_unknown_or_invalid_fields_names_each(app: TestApp) {
    let created = app.create_student(&student("Strict")).await;
    let body = json!({"id": 7, "gpa": -1, "email": ""});
    let problem = assert_problem(
        app.send_json(Method::PATCH, &path(&created), &body).await,
        422,
    )
    .await;
    assert_eq!(
        problem["errors"],
        json!({
            "email": ["must not be empty"],
            "gpa": ["must be a number from 0 to 10"],
            "id": ["is not a writable field"],
        })
    );
    let unchanged: Value = app.get(&path(&created)).await.json().await.unwrap();
    assert_eq!(unchanged, created);
}

async fn updating_a_missing_student_is_a_404(app: TestApp) {
    let body = json!({"name": "Ghost", "email": "ghost@example.org", "domain": "None", "gpa": 1});
    assert_problem(
        app.send_json(Method::PUT, "/api/v1/students/424242", &body)
            .await,
        404,
    )
    .await;
    assert_problem(
        app.send_json(Method::PATCH, "/api/v1/students/424242", &json!({"gpa": 1}))
            .await,
        404,
    )
    .await;
}

async fn taking_another_students_email_is_a_409_but_keeping_your_own_is_fine(app: TestApp) {
    let mut first = student("First");
    first["email"] = json!("first@example.org");
    app.create_student(&first).await;
    let second = app.create_student(&student("Second")).await;

    let taken = app
        .send_json(
            Method::PATCH,
            &path(&second),
            &json!({"email": "FIRST@example.org"}),
        )
        .await;
    let own = app
        .send_json(
            Method::PATCH,
            &path(&second),
            &json!({"email": second["email"].as_str().unwrap().to_uppercase()}),
        )
        .await;

    assert_problem(taken, 409).await;
    assert_eq!(own.status(), 200);
}

async fn bad_ids_and_bodies_are_rejected_before_storage(app: TestApp) {
    assert_problem(
        app.send_json(Method::PATCH, "/api/v1/students/zero", &json!({"gpa": 1}))
            .await,
        400,
    )
    .await;
    let response = app
        .request(Method::PUT, "/api/v1/students/1")
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_problem(response, 400).await;
    let response = app
        .request(Method::PATCH, "/api/v1/students/1")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_problem(response, 415).await;
}

crate::on_both_backends!(
    put_replaces_every_field_and_moves_updated_at,
    put_requires_every_writable_field,
    patch_changes_only_the_given_fields,
    an_empty_patch_is_a_422,
    a_patch_with_unknown_or_invalid_fields_names_each,
    updating_a_missing_student_is_a_404,
    taking_another_students_email_is_a_409_but_keeping_your_own_is_fine,
    bad_ids_and_bodies_are_rejected_before_storage,
);
