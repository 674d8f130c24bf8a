//! The OpenAPI 3.1 document, generated from the handlers' annotations and
//! served at `/api/v1/openapi.json`.

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
    paths(
        super::students::create_student,
        super::students::list_students,
        super::students::get_student,
        super::students::replace_student,
        super::students::update_student,
        super::students::delete_student,
        super::health::healthcheck,
        super::health::health,
        super::health::ready,
        super::metrics::metrics,
        openapi_json,
    ),
    components(schemas(StudentInput, StudentPatchInput, StudentView, StudentPage, Problem, HealthStatus, ReadyStatus)),
    modifiers(&PatchNeedsAField),
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
    ApiDoc::openapi().to_pretty_json()
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
