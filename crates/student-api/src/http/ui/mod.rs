//! The web front end: one HTML page and its static assets, embedded in the
//! binary so that the binary and the container need nothing beside them.
//!
//! Assets are served at `/assets/<stem>.<hash>.<ext>`, the hash being a
//! digest of their bytes, with a year-long immutable cache lifetime; the
//! page itself is `no-cache` and names the hashed files, filled in once at
//! start. Every answer carries a strict Content-Security-Policy: the page
//! loads only these files and talks only to this service. These routes are
//! not part of the API and stay out of the OpenAPI document; a path that is
//! not one of the current assets is the usual JSON 404.
//!
//! The files live in `assets/` beside this module, inside `src/`, so that
//! every build that has the sources (the container's included) has them.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::error::ApiError;
use super::AppState;

/// What the page may load and where it may send requests: nothing but this
/// origin, no inline script or style, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; \
     base-uri 'none'; frame-ancestors 'none'";

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The page is revalidated on every load, so a new release is seen at once.
const NO_CACHE: &str = "no-cache";

const INDEX_TEMPLATE: &str = include_str!("assets/index.html");

/// One embedded file: where it is served from and how.
struct Asset {
    /// `app.<hash>.js`: the last path segment under `/assets/`.
    file_name: String,
    /// Quoted strong validator, the same hash.
    etag: HeaderValue,
    content_type: &'static str,
    body: &'static [u8],
}

impl Asset {
    fn new(stem: &str, ext: &str, content_type: &'static str, body: &'static [u8]) -> Self {
        let hash = content_hash(body);
        Self {
            file_name: format!("{stem}.{hash}.{ext}"),
            etag: etag(&hash),
            content_type,
            body,
        }
    }

    fn path(&self) -> String {
        format!("/assets/{}", self.file_name)
    }
}

struct Site {
    assets: [Asset; 3],
    index: Vec<u8>,
    index_etag: HeaderValue,
}

/// Built on first use: hashes the embedded files and fills the page template.
static SITE: LazyLock<Site> = LazyLock::new(|| {
    let assets = [
        Asset::new(
            "app",
            "js",
            "text/javascript; charset=utf-8",
            include_bytes!("assets/app.js"),
        ),
        Asset::new(
            "app",
            "css",
            "text/css; charset=utf-8",
            include_bytes!("assets/app.css"),
        ),
        Asset::new(
            "icon",
            "svg",
            "image/svg+xml",
            include_bytes!("assets/icon.svg"),
        ),
    ];
    let mut index = INDEX_TEMPLATE.to_owned();
    for (placeholder, asset) in ["{{app.js}}", "{{app.css}}", "{{icon.svg}}"]
        .iter()
        .zip(&assets)
    {
        index = index.replace(placeholder, &asset.path());
    }
    let index = index.into_bytes();
    let index_etag = etag(&content_hash(&index));
    Site {
        assets,
        index,
        index_etag,
    }
});

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/assets/{file}", get(asset))
        .layer(axum::middleware::map_response(security_headers))
}

/// The page, naming the current hashed assets.
async fn index(headers: HeaderMap) -> Response {
    let site = &*SITE;
    respond(
        &headers,
        &site.index_etag,
        "text/html; charset=utf-8",
        NO_CACHE,
        site.index.clone(),
    )
}

/// A hashed asset; any other name (an old hash included) is a JSON 404.
async fn asset(Path(file): Path<String>, uri: Uri, headers: HeaderMap) -> Response {
    match SITE.assets.iter().find(|a| a.file_name == file) {
        Some(asset) => respond(
            &headers,
            &asset.etag,
            asset.content_type,
            IMMUTABLE,
            asset.body,
        ),
        None => ApiError::RouteNotFound(uri.path().to_owned()).into_response(),
    }
}

/// 200 with the body, or 304 when the client already holds this version.
fn respond(
    request: &HeaderMap,
    etag: &HeaderValue,
    content_type: &'static str,
    cache_control: &'static str,
    body: impl IntoResponse,
) -> Response {
    let fresh = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/").as_bytes() == etag.as_bytes()
        });
    let headers = [
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static(cache_control),
        ),
        (header::ETAG, etag.clone()),
    ];
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (
        headers,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ] {
        headers.insert(name, value);
    }
    response
}

fn etag(hash: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{hash}\"")).expect("a hex digest is a valid header value")
}

/// A 64-bit FNV-1a digest of `bytes` as 16 hex digits. It names versions of
/// our own files for caches; nothing relies on it resisting collisions made
/// on purpose.
fn content_hash(bytes: &[u8]) -> String {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let digest = bytes.iter().fold(OFFSET_BASIS, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    });
    format!("{digest:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_content_hash_is_fnv_1a_64() {
        // Reference values of the published FNV-1a test vectors.
        assert_eq!(content_hash(b""), "cbf29ce484222325");
        assert_eq!(content_hash(b"a"), "af63dc4c8601ec8c");
        assert_ne!(content_hash(b"ab"), content_hash(b"ba"));
    }

    #[test]
    fn the_page_names_every_asset_by_its_hash_and_no_placeholder_is_left() {
        let page = String::from_utf8(SITE.index.clone()).unwrap();
        for asset in &SITE.assets {
            assert!(page.contains(&asset.path()), "{}", asset.file_name);
        }
        assert!(!page.contains("{{"), "unfilled placeholder in the page");
    }
}
