//! `GET /api/v1/students/{id}`.

use crate::helpers::{assert_problem, student, TestApp};

async fn getting_a_student_returns_it(app: TestApp) {
    let created = app.create_student(&student("Alan Turing")).await;

    let response = app
        .get(&format!("/api/v1/students/{}", created["id"]))
        .await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.json::<serde_json::Value>().await.unwrap(), created);
}

async fn a_missing_student_is_a_404(app: TestApp) {
    let problem = assert_problem(app.get("/api/v1/students/999999").await, 404).await;
    assert_eq!(problem["detail"], "no student with id 999999");
}

async fn an_id_that_is_not_a_positive_integer_is_a_400(app: TestApp) {
    for id in ["abc", "0", "-1", "1.5", "+1", "9223372036854775808", "%20"] {
        let problem = assert_problem(app.get(&format!("/api/v1/students/{id}")).await, 400).await;
        assert_eq!(problem["detail"], "id must be a positive integer", "{id}");
    }
}

crate::on_both_backends!(
    getting_a_student_returns_it,
    a_missing_student_is_a_404,
    an_id_that_is_not_a_positive_integer_is_a_400,
);
