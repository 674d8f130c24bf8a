//! The web front end: the page, its hashed assets and their headers.

use regex::Regex;
use reqwest::header::HeaderMap;
use reqwest::Method;

use crate::helpers::{assert_problem, Backend, TestApp};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

fn assert_security_headers(headers: &HeaderMap) {
    assert_eq!(headers["content-security-policy"], CSP);
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["x-frame-options"], "DENY");
}

/// The asset paths the page names, in the order the page names them.
async fn asset_paths(app: &TestApp) -> Vec<String> {
    let page = app.get("/").await.text().await.unwrap();
    Regex::new(r#"(?:href|src)="(/assets/[^"]+)""#)
        .unwrap()
        .captures_iter(&page)
        .map(|c| c[1].to_owned())
        .collect()
}

#[tokio::test]
async fn the_page_is_html_with_security_headers_and_is_revalidated() {
    let app = TestApp::spawn(Backend::Sqlite).await;

    let response = app.get("/").await;

    assert_eq!(response.status(), 200);
    assert_security_headers(response.headers());
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    assert_eq!(response.headers()["cache-control"], "no-cache");
    let body = response.text().await.unwrap();
    assert!(body.starts_with("<!doctype html>"), "{body}");
    assert!(!body.contains("{{"), "unfilled placeholder");
    assert!(!body.contains("<style") && !body.contains(" style="));
}

#[tokio::test]
async fn the_page_links_its_assets_by_content_hash() {
    let app = TestApp::spawn(Backend::Sqlite).await;

    let paths = asset_paths(&app).await;

    let hashed = Regex::new(r"^/assets/(app|icon)\.[0-9a-f]{16}\.(js|css|svg)$").unwrap();
    assert_eq!(paths.len(), 3, "{paths:?}");
    for path in &paths {
        assert!(hashed.is_match(path), "{path}");
    }
    let mut kinds: Vec<&str> = paths.iter().filter_map(|p| p.rsplit('.').next()).collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["css", "js", "svg"]);
}

#[tokio::test]
async fn assets_are_immutable_with_their_content_type_and_security_headers() {
    let app = TestApp::spawn(Backend::Sqlite).await;

    for path in asset_paths(&app).await {
        let response = app.get(&path).await;

        assert_eq!(response.status(), 200, "{path}");
        assert_security_headers(response.headers());
        assert_eq!(
            response.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        let expected = match path.rsplit('.').next() {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            other => panic!("unexpected asset {other:?}"),
        };
        assert_eq!(response.headers()["content-type"], expected, "{path}");
        let hash = path.split('.').nth(1).unwrap();
        assert_eq!(response.headers()["etag"], format!("\"{hash}\"").as_str());
        assert!(!response.bytes().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn an_asset_the_client_already_holds_is_a_304() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let path = asset_paths(&app).await.remove(0);
    let etag = app.get(&path).await.headers()["etag"].clone();

    let response = app
        .request(Method::GET, &path)
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 304);
    assert!(response.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_wrong_hash_or_unknown_asset_is_a_json_404() {
    let app = TestApp::spawn(Backend::Sqlite).await;

    for path in [
        "/assets/app.0000000000000000.js",
        "/assets/app.js",
        "/assets/index.html",
        "/assets/",
        "/index.html",
    ] {
        assert_problem(app.get(path).await, 404).await;
    }
}

#[tokio::test]
async fn head_answers_like_get_without_a_body() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut paths = asset_paths(&app).await;
    paths.push("/".to_owned());

    for path in paths {
        let get = app.get(&path).await;
        let head = app.request(Method::HEAD, &path).send().await.unwrap();

        assert_eq!(head.status(), 200, "{path}");
        assert_security_headers(head.headers());
        for name in ["content-type", "cache-control", "etag"] {
            assert_eq!(head.headers()[name], get.headers()[name], "{path} {name}");
        }
        assert!(head.bytes().await.unwrap().is_empty(), "{path}");
    }
}

#[tokio::test]
async fn the_page_is_not_in_the_openapi_document() {
    let app = TestApp::spawn(Backend::Sqlite).await;

    let document: serde_json::Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();

    let paths = document["paths"].as_object().unwrap();
    assert!(!paths.contains_key("/"));
    assert!(paths.keys().all(|p| !p.starts_with("/assets")));
}

#[tokio::test]
async fn other_methods_on_the_page_are_json_405s() {
    let app = TestApp::spawn(Backend::Sqlite).await;

    let response = app.request(Method::POST, "/").send().await.unwrap();

    assert_problem(response, 405).await;
}
