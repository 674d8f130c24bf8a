//! Input the service must refuse rather than repair: emails that are not
//! plain addresses or that spell a taken address differently, names with
//! nothing visible, JSON objects naming a key twice, query strings whose
//! percent-encoding is broken.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, student, Backend, TestApp};

const PATH: &str = "/api/v1/students";

fn with_email(email: &str) -> Value {
    let mut body = student("Plain");
    body["email"] = json!(email);
    body
}

async fn only_a_plain_address_is_accepted(app: TestApp) {
    for email in [
        "Someone <dn1@example.org>",
        "<dn1@example.org>",
        "\"dn1\"@example.org",
        "dn1(work)@example.org",
        "dn1@[192.0.2.1]",
    ] {
        let problem = assert_problem(
            app.send_json(Method::POST, PATH, &with_email(email)).await,
            422,
        )
        .await;
        assert_eq!(
            problem["errors"],
            json!({"email": ["must be a plain address such as ada@example.org, without a display name, comment or quotes"]}),
            "{email}"
        );
    }
    let problem = assert_problem(
        app.send_json(Method::POST, PATH, &with_email("dn\u{200B}1@example.org"))
            .await,
        422,
    )
    .await;
    assert_eq!(
        problem["errors"],
        json!({"email": ["must be a valid email address"]})
    );
}

async fn an_address_is_taken_in_every_spelling_of_it(app: TestApp) {
    let first = app.create_student(&with_email("dn1@bücher.example")).await;
    assert_eq!(first["email"], "dn1@bücher.example", "stored as given");

    for same in [
        "DN1@Bücher.Example",
        "dn1@xn--bcher-kva.example",
        "\u{ff44}n1@bücher.example", // a full-width d
        "dn1@bu\u{308}cher.example", // a decomposed ü
    ] {
        let problem = assert_problem(
            app.send_json(Method::POST, PATH, &with_email(same)).await,
            409,
        )
        .await;
        assert_eq!(
            problem["type"], "urn:student-api:problem:email-taken",
            "{same}"
        );
    }

    // Changing one's address to another spelling of a taken one is refused too.
    let other = app.create_student(&with_email("other@example.org")).await;
    let path = format!("{PATH}/{}", other["id"]);
    let problem = assert_problem(
        app.send_json(
            Method::PATCH,
            &path,
            &json!({"email": "DN1@XN--BCHER-KVA.EXAMPLE"}),
        )
        .await,
        409,
    )
    .await;
    assert_eq!(problem["type"], "urn:student-api:problem:email-taken");

    // A student may change the spelling of their own address.
    let own = format!("{PATH}/{}", first["id"]);
    let response = app
        .send_json(Method::PATCH, &own, &json!({"email": "DN1@Bücher.example"}))
        .await;
    assert_eq!(response.status(), 200);
}

async fn dots_and_tags_make_different_addresses(app: TestApp) {
    app.create_student(&with_email("ada@example.org")).await;
    app.create_student(&with_email("a.da@example.org")).await;
    app.create_student(&with_email("ada+school@example.org"))
        .await;
}

async fn a_name_with_nothing_visible_is_empty(app: TestApp) {
    for name in [
        "\u{200B}",
        "\u{FEFF}",
        "\u{2028}",
        "\u{202E}",
        "\u{200B}\u{FEFF}\u{2060}",
    ] {
        let mut body = student("Invisible");
        body["name"] = json!(name);
        body["domain"] = json!(name);
        let problem = assert_problem(app.send_json(Method::POST, PATH, &body).await, 422).await;
        assert_eq!(
            problem["errors"],
            json!({"name": ["must not be empty"], "domain": ["must not be empty"]}),
            "{name:?}"
        );
    }
    let mut body = student("Spoof");
    body["name"] = json!("Ada\u{202E}ecalevoL");
    let problem = assert_problem(app.send_json(Method::POST, PATH, &body).await, 422).await;
    assert_eq!(
        problem["errors"],
        json!({"name": ["must not contain line separators or bidirectional formatting characters"]})
    );
    let mut body = student("Trimmed");
    body["name"] = json!("\u{FEFF}Ada Lovelace\u{200B}");
    let created = app.create_student(&body).await;
    assert_eq!(created["name"], "Ada Lovelace");
}

async fn a_key_named_twice_is_a_400(app: TestApp) {
    let email = student("Twice")["email"].as_str().unwrap().to_owned();
    let raw = format!(r#"{{"name":"a","name":"b","email":"{email}","domain":"Maths","gpa":5}}"#);
    for (method, path) in [
        (Method::POST, PATH.to_owned()),
        (Method::PATCH, format!("{PATH}/1")),
    ] {
        let response = app
            .request(method, &path)
            .header("content-type", "application/json")
            .body(raw.clone())
            .send()
            .await
            .unwrap();
        let problem = assert_problem(response, 400).await;
        assert_eq!(problem["type"], "urn:student-api:problem:malformed-body");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .starts_with("request body must name each key once: duplicate key \"name\""),
            "{problem}"
        );
    }
    let listed: Value = app.get(PATH).await.json().await.unwrap();
    assert_eq!(listed["total"], 0, "nothing was stored");
}

async fn a_query_string_with_broken_percent_encoding_is_a_400(app: TestApp) {
    for query in [
        "q=%FF",
        "q=%",
        "q=%ZZ",
        "q=%C0%AF",
        "q=%ED%A0%80",
        "limit=5&q=ada%E2%82",
    ] {
        let problem = assert_problem(app.get(&format!("{PATH}?{query}")).await, 400).await;
        assert_eq!(
            problem["type"], "urn:student-api:problem:invalid-parameter",
            "{query}"
        );
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .starts_with("invalid query string: "),
            "{problem}"
        );
    }
    let response = app.get(&format!("{PATH}?q=%C3%A9mile+x&limit=5")).await;
    assert_eq!(response.status(), 200);
}

crate::on_both_backends!(
    only_a_plain_address_is_accepted,
    an_address_is_taken_in_every_spelling_of_it,
    dots_and_tags_make_different_addresses,
    a_name_with_nothing_visible_is_empty,
    a_key_named_twice_is_a_400,
    a_query_string_with_broken_percent_encoding_is_a_400,
);

/// Rows written by the previous schema keep `lower(email)` as their key, and
/// a writer that does not compute the key (a replica of the previous release
/// during a rolling update) gets `lower(email)` from the database.
#[tokio::test]
async fn postgres_rows_from_the_previous_schema_and_writers_keep_their_uniqueness() {
    crate::require_postgres!();
    let app = TestApp::spawn(Backend::Postgres).await;
    let ada = app.create_student(&with_email("Ada@Example.org")).await;

    // As the previous release writes: no email_key.
    let old = plain_connection(&app).await;
    old.batch_execute("insert into students (name, email, domain, gpa) values ('Old', 'Grace@Example.org', 'Maths', 5)")
        .await
        .unwrap();
    old.batch_execute(&format!(
        "update students set email = 'Ada.King@Example.org' where id = {}",
        ada["id"]
    ))
    .await
    .unwrap();

    let problem = assert_problem(
        app.send_json(Method::POST, PATH, &with_email("grace@example.org"))
            .await,
        409,
    )
    .await;
    assert_eq!(problem["type"], "urn:student-api:problem:email-taken");
    let problem = assert_problem(
        app.send_json(Method::POST, PATH, &with_email("ADA.KING@example.org"))
            .await,
        409,
    )
    .await;
    assert_eq!(problem["type"], "urn:student-api:problem:email-taken");
    // The address Ada left is free again.
    app.create_student(&with_email("ada@example.org")).await;
}

/// A connection to the test's own database as a plain client (no session
/// settings of the service).
async fn plain_connection(app: &TestApp) -> tokio_postgres::Client {
    crate::helpers::connect(
        app.database_url
            .as_deref()
            .expect("a PostgreSQL test database"),
    )
    .await
}
