//! `GET /api/v1/students`: sorting, cursor pages, the `Link` header and the
//! count preference (`Prefer: count=…`).

use std::collections::HashSet;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, student, TestApp};

const PATH: &str = "/api/v1/students";

async fn page(app: &TestApp, query: &str) -> (reqwest::header::HeaderMap, Value) {
    let response = app.get(&format!("{PATH}?{query}")).await;
    assert_eq!(response.status(), 200, "{query}");
    let headers = response.headers().clone();
    (headers, response.json().await.unwrap())
}

fn ids(page: &Value) -> Vec<i64> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect()
}

/// Follows `next_cursor` from the first page of `query` to the last one,
/// checking each page's `has_more`, `Link` and `next_cursor` agree.
async fn walk(app: &TestApp, query: &str) -> Vec<i64> {
    let mut seen = Vec::new();
    let (mut headers, mut body) = page(app, query).await;
    loop {
        seen.extend(ids(&body));
        let Some(cursor) = body["next_cursor"].as_str() else {
            assert_eq!(body["has_more"], false, "{body}");
            assert!(headers.get("link").is_none());
            return seen;
        };
        assert_eq!(body["has_more"], true);
        let link = headers["link"].to_str().unwrap().to_owned();
        let next = format!("{query}&cursor={cursor}");
        assert!(
            link.starts_with(&format!("<{PATH}?")) && link.ends_with(">; rel=\"next\""),
            "{link}"
        );
        assert!(link.contains(&format!("cursor={cursor}>")), "{link}");
        (headers, body) = page(app, &next).await;
    }
}

/// Students whose names sort the same under any collation, with ties in
/// name and in GPA; returns them as created.
async fn seed(app: &TestApp) -> Vec<Value> {
    let mut created = Vec::new();
    for (name, gpa) in [
        ("Dee", 7.5),
        ("Ada", 9.0),
        ("Cy", 7.5),
        ("Ada", 6.0),
        ("Bea", 9.0),
        ("Eve", 7.5),
        ("Ada", 7.5),
        ("Cy", 10.0),
        ("Fay", 0.0),
        ("Bea", 6.0),
        ("Gus", 9.0),
    ] {
        let mut body = student(name);
        body["gpa"] = json!(gpa);
        created.push(app.create_student(&body).await);
    }
    created
}

fn sorted(students: &[Value], key: &str, descending: bool) -> Vec<i64> {
    let mut students: Vec<&Value> = students.iter().collect();
    students.sort_by(|a, b| {
        let by_key = match key {
            "id" => std::cmp::Ordering::Equal,
            "name" => a["name"].as_str().cmp(&b["name"].as_str()),
            "gpa" => a["gpa"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["gpa"].as_f64().unwrap()),
            "created" => a["created_at"].as_str().cmp(&b["created_at"].as_str()),
            other => panic!("{other}"),
        };
        by_key.then(a["id"].as_i64().cmp(&b["id"].as_i64()))
    });
    if descending {
        students.reverse();
    }
    students.iter().map(|s| s["id"].as_i64().unwrap()).collect()
}

async fn every_sort_pages_by_cursor_in_order_with_ties_broken_by_id(app: TestApp) {
    let created = seed(&app).await;

    for key in ["id", "name", "gpa", "created"] {
        for descending in [false, true] {
            let sort = if descending {
                format!("-{key}")
            } else {
                key.to_owned()
            };
            let expected = sorted(&created, key, descending);

            let by_cursor = walk(&app, &format!("limit=4&sort={sort}")).await;
            let (_, one_page) = page(&app, &format!("limit=100&sort={sort}")).await;

            assert_eq!(by_cursor, expected, "sort={sort}");
            assert_eq!(ids(&one_page), expected, "sort={sort}");
        }
    }
}

async fn a_search_pages_by_cursor_and_the_link_repeats_its_parameters(app: TestApp) {
    let created = seed(&app).await;
    let (headers, first) = page(&app, "limit=2&sort=-gpa&q=EXAMPLE").await;
    let cursor = first["next_cursor"].as_str().unwrap();

    let link = headers["link"].to_str().unwrap();
    let followed = app
        .get(link.trim_start_matches('<').split('>').next().unwrap())
        .await;
    let (_, by_cursor) = page(
        &app,
        &format!("limit=2&sort=-gpa&q=EXAMPLE&cursor={cursor}"),
    )
    .await;

    assert_eq!(
        link,
        format!("<{PATH}?limit=2&sort=-gpa&q=EXAMPLE&cursor={cursor}>; rel=\"next\"")
    );
    assert_eq!(followed.json::<Value>().await.unwrap(), by_cursor);
    assert_eq!(by_cursor["offset"], 0);
    assert_eq!(
        walk(&app, "limit=3&sort=-gpa&q=example").await,
        sorted(&created, "gpa", true)
    );
    let (_, none) = page(&app, "q=nobody-has-this").await;
    assert_eq!(
        none,
        json!({"data": [], "total": 0, "limit": 20, "offset": 0, "has_more": false, "next_cursor": null})
    );
}

async fn walking_by_cursor_under_inserts_and_deletes_skips_and_repeats_nothing(app: TestApp) {
    let created = seed(&app).await;
    let mut deleted = HashSet::new();
    let mut seen = Vec::new();
    let mut query = "limit=3&sort=name".to_owned();
    let mut round = 0;
    loop {
        let (_, body) = page(&app, &query).await;
        seen.extend(ids(&body));
        // Between pages: delete one student already seen and one not yet
        // seen, add two that sort anywhere.
        let unseen = created
            .iter()
            .map(|s| s["id"].as_i64().unwrap())
            .find(|id| !seen.contains(id) && !deleted.contains(id));
        for id in seen.first().copied().into_iter().chain(unseen) {
            if deleted.insert(id) {
                let response = app
                    .request(Method::DELETE, &format!("{PATH}/{id}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 204);
            }
        }
        for name in ["Aaron", "Zed"] {
            app.create_student(&student(&format!("{name} {round}")))
                .await;
        }
        round += 1;
        match body["next_cursor"].as_str() {
            Some(cursor) => query = format!("limit=3&sort=name&cursor={cursor}"),
            None => break,
        }
    }

    let unique: HashSet<i64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "a student came twice: {seen:?}");
    for student in &created {
        let id = student["id"].as_i64().unwrap();
        assert!(
            unique.contains(&id) || deleted.contains(&id),
            "student {id} was there all along and never listed: {seen:?}"
        );
    }
}

async fn bad_cursors_sorts_offsets_and_short_searches_are_a_400(app: TestApp) {
    seed(&app).await;
    let (_, by_name) = page(&app, "limit=2&sort=name").await;
    let name_cursor = by_name["next_cursor"].as_str().unwrap().to_owned();
    let (_, by_search) = page(&app, "limit=2&q=example").await;
    let search_cursor = by_search["next_cursor"].as_str().unwrap().to_owned();
    let truncated = &name_cursor[..name_cursor.len() / 2];
    let mut corrupted = name_cursor.clone().into_bytes();
    corrupted[5] = if corrupted[5] == b'A' { b'B' } else { b'A' };
    let corrupted = String::from_utf8(corrupted).unwrap();

    for (query, says) in [
        (
            format!("sort=gpa&cursor={name_cursor}"),
            "another sort or q",
        ),
        (
            format!("sort=-name&cursor={name_cursor}"),
            "another sort or q",
        ),
        (
            format!("sort=name&q=example&cursor={name_cursor}"),
            "another sort or q",
        ),
        (
            format!("q=exampl&cursor={search_cursor}"),
            "another sort or q",
        ),
        (format!("cursor={search_cursor}"), "another sort or q"),
        (format!("sort=name&cursor={truncated}"), "cursor"),
        (format!("sort=name&cursor={corrupted}"), "cursor"),
        ("cursor=not-a-cursor".to_owned(), "cursor"),
        (
            "cursor=eyJ2IjoxLCJzIjoiaWQiLCJpIjotMX0".to_owned(),
            "cursor",
        ),
        ("cursor=".to_owned(), "cursor"),
        (format!("cursor={}", "A".repeat(2000)), "cursor"),
        (
            format!("sort=name&offset=0&cursor={name_cursor}"),
            "together",
        ),
        ("offset=10001".to_owned(), "cursor"),
        ("offset=99999999999".to_owned(), "cursor"),
        ("q=ab".to_owned(), "at least 3 characters"),
        ("q=%C3%A9".to_owned(), "at least 3 characters"),
        ("sort=email".to_owned(), "sort must be one of"),
        ("sort=".to_owned(), "sort must be one of"),
        ("sort=NAME".to_owned(), "sort must be one of"),
        ("sort=name&sort=gpa".to_owned(), "invalid query string"),
    ] {
        let problem = assert_problem(app.get(&format!("{PATH}?{query}")).await, 400).await;
        assert_eq!(
            problem["type"], "urn:student-api:problem:invalid-parameter",
            "{query}"
        );
        assert!(
            problem["detail"].as_str().unwrap().contains(says),
            "{query}: {problem}"
        );
    }
    let (_, deepest) = page(&app, "offset=10000").await;
    assert_eq!(deepest["data"], json!([]));
}

async fn the_count_preference_is_applied_and_said(app: TestApp) {
    seed(&app).await;
    let get = |prefer: Option<&'static str>, query: &'static str| {
        let mut request = app.request(Method::GET, &format!("{PATH}?{query}"));
        if let Some(prefer) = prefer {
            request = request.header("prefer", prefer);
        }
        request.send()
    };

    let plain = get(None, "limit=1").await.unwrap();
    assert_eq!(plain.headers()["vary"], "prefer");
    assert!(plain.headers().get("preference-applied").is_none());
    assert_eq!(plain.json::<Value>().await.unwrap()["total"], 11);

    for (prefer, applied) in [
        ("count=exact", Some("count=exact")),
        ("return=minimal, count=estimated", Some("count=estimated")),
        ("count=planned", Some("count=planned")),
        ("count=all-of-them", None),
    ] {
        for query in ["limit=1", "limit=1&q=Ada."] {
            let response = get(Some(prefer), query).await.unwrap();
            assert_eq!(response.status(), 200);
            assert_eq!(
                response
                    .headers()
                    .get("preference-applied")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .as_deref(),
                applied,
                "{prefer} {query}"
            );
            let body: Value = response.json().await.unwrap();
            let exact = if query.contains("q=") { 3 } else { 11 };
            if prefer == "count=planned" {
                // An estimate, or null where the backend has none.
                assert!(
                    body["total"].is_null() || body["total"].as_i64().unwrap() >= 0,
                    "{body}"
                );
            } else {
                assert_eq!(body["total"], exact, "{prefer} {query}");
            }
        }
    }
}

crate::on_both_backends!(
    every_sort_pages_by_cursor_in_order_with_ties_broken_by_id,
    a_search_pages_by_cursor_and_the_link_repeats_its_parameters,
    walking_by_cursor_under_inserts_and_deletes_skips_and_repeats_nothing,
    bad_cursors_sorts_offsets_and_short_searches_are_a_400,
    the_count_preference_is_applied_and_said,
);
