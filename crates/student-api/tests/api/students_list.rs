//! `GET /api/v1/students`: pagination, ordering and search.

use serde_json::{json, Value};

use crate::helpers::{assert_problem, student, TestApp};

async fn list(app: &TestApp, query: &str) -> Value {
    let response = app.get(&format!("/api/v1/students{query}")).await;
    assert_eq!(response.status(), 200, "{query}");
    response.json().await.unwrap()
}

fn ids(page: &Value) -> Vec<i64> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect()
}

async fn an_empty_list_has_the_default_paging(app: TestApp) {
    assert_eq!(
        list(&app, "").await,
        json!({"data": [], "total": 0, "limit": 20, "offset": 0, "has_more": false, "next_cursor": null})
    );
}

async fn pages_are_ordered_by_id_and_count_every_student(app: TestApp) {
    let mut created = Vec::new();
    for i in 0..25 {
        created.push(
            app.create_student(&student(&format!("Student {i}"))).await["id"]
                .as_i64()
                .unwrap(),
        );
    }

    let first = list(&app, "").await;
    let second = list(&app, "?limit=20&offset=20").await;
    let small = list(&app, "?limit=3&offset=5").await;
    let beyond = list(&app, "?offset=100").await;

    assert_eq!(ids(&first), created[..20]);
    assert_eq!(
        (
            first["total"].clone(),
            first["limit"].clone(),
            first["offset"].clone()
        ),
        (json!(25), json!(20), json!(0))
    );
    assert_eq!(ids(&second), created[20..]);
    assert_eq!(ids(&small), created[5..8]);
    assert_eq!(
        beyond,
        json!({"data": [], "total": 25, "limit": 20, "offset": 100, "has_more": false, "next_cursor": null})
    );
    assert_eq!(ids(&list(&app, "?limit=100").await).len(), 25);
}

async fn search_matches_name_or_email_ignoring_case(app: TestApp) {
    let mut ada = student("Ada Lovelace");
    ada["email"] = json!("countess@analytical.example");
    let ada = app.create_student(&ada).await;
    let mut grace = student("Grace Hopper");
    grace["email"] = json!("grace@navy.example");
    let grace = app.create_student(&grace).await;
    app.create_student(&student("Someone Else")).await;

    let by_name = list(&app, "?q=LOVELACE").await;
    let by_email = list(&app, "?q=NaVy").await;
    let both = list(&app, "?q=EXA&limit=1").await;
    let literal = list(&app, "?q=%25%25%25").await;

    assert_eq!(ids(&by_name), vec![ada["id"].as_i64().unwrap()]);
    assert_eq!(by_name["total"], 1);
    assert_eq!(ids(&by_email), vec![grace["id"].as_i64().unwrap()]);
    assert_eq!(both["total"], 3, "'exa' is in every email: {both}");
    assert_eq!(ids(&both).len(), 1);
    assert_eq!(
        literal["total"], 0,
        "% is matched literally, not as a wildcard"
    );
}

async fn bad_paging_parameters_are_a_400(app: TestApp) {
    for query in [
        "limit=0",
        "limit=101",
        "limit=-1",
        "limit=abc",
        "limit=",
        "offset=-1",
        "offset=1.5",
        "offset=x",
        "limit=1&limit=2",
    ] {
        let problem =
            assert_problem(app.get(&format!("/api/v1/students?{query}")).await, 400).await;
        assert_eq!(
            problem["type"], "urn:student-api:problem:invalid-parameter",
            "{query}"
        );
    }
}

async fn a_search_with_control_characters_is_a_400(app: TestApp) {
    assert_problem(app.get("/api/v1/students?q=a%00b").await, 400).await;
    assert_problem(
        app.get(&format!("/api/v1/students?q={}", "a".repeat(101)))
            .await,
        400,
    )
    .await;
}

crate::on_both_backends!(
    an_empty_list_has_the_default_paging,
    pages_are_ordered_by_id_and_count_every_student,
    search_matches_name_or_email_ignoring_case,
    bad_paging_parameters_are_a_400,
    a_search_with_control_characters_is_a_400,
);
