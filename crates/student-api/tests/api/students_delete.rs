//! `DELETE /api/v1/students/{id}`.

use reqwest::Method;

use crate::helpers::{assert_problem, student, TestApp};

async fn deleting_a_student_returns_204_and_it_is_gone(app: TestApp) {
    let created = app.create_student(&student("Leaving")).await;
    let path = format!("/api/v1/students/{}", created["id"]);

    let response = app.request(Method::DELETE, &path).send().await.unwrap();

    assert_eq!(response.status(), 204);
    assert!(response.bytes().await.unwrap().is_empty());
    assert_problem(app.get(&path).await, 404).await;
    assert_problem(
        app.request(Method::DELETE, &path).send().await.unwrap(),
        404,
    )
    .await;
}

async fn a_deleted_students_email_can_be_used_again_and_ids_are_not_reused(app: TestApp) {
    let body = student("Returning");
    let first = app.create_student(&body).await;
    app.request(Method::DELETE, &format!("/api/v1/students/{}", first["id"]))
        .send()
        .await
        .unwrap();

    let second = app.create_student(&body).await;

    assert!(second["id"].as_i64() > first["id"].as_i64());
}

async fn deleting_with_a_bad_id_is_a_400(app: TestApp) {
    assert_problem(
        app.request(Method::DELETE, "/api/v1/students/-3")
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
}

crate::on_both_backends!(
    deleting_a_student_returns_204_and_it_is_gone,
    a_deleted_students_email_can_be_used_again_and_ids_are_not_reused,
    deleting_with_a_bad_id_is_a_400,
);
