//! Constraint violations by name: only a violation of the email index
//! (`students_email_key_key`) is "email already used" (409); another unique
//! index refusing a write is not the client's doing and is an opaque 500.

use reqwest::Method;
use sqlx::Connection;

use crate::helpers::{assert_problem, student, Backend, TestApp};

const PATH: &str = "/api/v1/students";
/// An index the schema does not have: what a later migration, or an
/// operator, might add.
const NAME_INDEX: &str = "create unique index students_name_key on students (name)";

/// Two students with the same name and different emails: the second is
/// refused by the name index, not the email one.
async fn another_unique_index_is_a_500_not_an_email_taken(app: &TestApp) {
    app.create_student(&student("Same Name")).await;
    let problem = assert_problem(
        app.send_json(Method::POST, PATH, &student("Same Name"))
            .await,
        500,
    )
    .await;
    assert_eq!(problem["type"], "urn:student-api:problem:internal");
    // The email index is still told apart.
    let taken = app.create_student(&student("Other Name")).await;
    let mut again = student("Third Name");
    again["email"] = taken["email"].clone();
    let problem = assert_problem(app.send_json(Method::POST, PATH, &again).await, 409).await;
    assert_eq!(problem["type"], "urn:student-api:problem:email-taken");
}

#[tokio::test]
async fn sqlite_another_unique_index_is_a_500_not_an_email_taken() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let url = app.database_url.clone().expect("the test's own database");
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query(NAME_INDEX).execute(&mut db).await.unwrap();
    db.close().await.unwrap();
    another_unique_index_is_a_500_not_an_email_taken(&app).await;
}

#[tokio::test]
async fn postgres_another_unique_index_is_a_500_not_an_email_taken() {
    crate::require_postgres!();
    let app = TestApp::spawn(Backend::Postgres).await;
    let db = crate::helpers::connect(app.database_url.as_deref().unwrap()).await;
    db.batch_execute(NAME_INDEX).await.unwrap();
    another_unique_index_is_a_500_not_an_email_taken(&app).await;
}
