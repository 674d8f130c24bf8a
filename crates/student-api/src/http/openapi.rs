//! The OpenAPI 3.1 document, generated from the routes and their handlers'
//! annotations (the paths come from the routes themselves) and served at
//! `/api/v1/openapi.json`.

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::{RefOr, Schema};
use utoipa::{Modify, OpenApi};

use super::error::Problem;
use super::health::{HealthStatus, ReadyStatus};
use super::students::{StudentInput, StudentPage, StudentPatchInput, StudentView};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "student-api",
        description = "REST API for student records. Errors are RFC 9457 problem documents (`application/problem+json`). Any operation may also answer 414 (request target over 8 KiB) or 431 (header fields over 32 KiB).",
    ),
    components(schemas(StudentInput, StudentPatchInput, StudentView, StudentPage, Problem, HealthStatus, ReadyStatus)),
    tags(
        (name = "students", description = "Student records"),
        (name = "operations", description = "Probes, metrics and this document"),
    )
)]
pub struct ApiDoc;

/// Requires at least one field in a `PATCH` body. The derive cannot say
/// this: its `min_properties` attribute is emitted as `maxProperties`.
struct PatchNeedsAField;

impl Modify for PatchNeedsAField {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let schema = openapi
            .components
            .as_mut()
            .and_then(|c| c.schemas.get_mut("StudentPatchInput"));
        if let Some(RefOr::T(Schema::Object(object))) = schema {
            object.min_properties = Some(1);
            object.max_properties = None;
        }
    }
}

/// Renders the document once; it does not change while the process runs.
pub fn document() -> Result<String, serde_json::Error> {
    let mut document = ApiDoc::openapi();
    document.merge(super::documented_routes().into_openapi());
    // After the merge: the routes bring their schemas again, unmodified.
    PatchNeedsAField.modify(&mut document);
    document.to_pretty_json()
}

/// This OpenAPI document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "operations",
    operation_id = "openapi",
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object, content_type = "application/json"))
)]
pub async fn openapi_json(
    axum::extract::State(state): axum::extract::State<super::AppState>,
) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi.clone(),
    )
}
