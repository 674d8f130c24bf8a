//! The `/api/v1/students` resource: create, list, read, replace, patch, delete.
//!
//! Handlers only translate between HTTP and the store: bodies are parsed into
//! domain types by `input`, rows are turned into views by `view`, and every
//! failure is an [`ApiError`].

mod input;
mod view;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use input::{StudentInput, StudentPatchInput};
pub use view::{StudentPage, StudentView};

use super::error::{ApiError, Problem};
use super::extract::{JsonObject, ListParams, StudentId};
use super::AppState;
use crate::domain::StudentChanges;

pub const COLLECTION_PATH: &str = "/api/v1/students";
pub const ITEM_PATH: &str = "/api/v1/students/{id}";

/// The resource's routes, each declared once: its path and method come from
/// the handler's `#[utoipa::path]`, which also documents it.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_students, create_student))
        .routes(routes!(
            get_student,
            replace_student,
            update_student,
            delete_student
        ))
}

/// Create a student.
#[utoipa::path(
    post,
    path = COLLECTION_PATH,
    tag = "students",
    operation_id = "createStudent",
    request_body(content = StudentInput, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = StudentView,
            headers(("Location" = String, description = "Path of the new student"))),
        (status = 400, response = inline(BadRequest)),
        (status = 409, description = "Email already used", body = Problem, content_type = "application/problem+json"),
        (status = 413, response = inline(TooLarge)),
        (status = 415, response = inline(UnsupportedMedia)),
        (status = 422, response = inline(Invalid)),
        (status = 503, response = inline(Unavailable)),
        (status = 507, response = inline(InsufficientStorage)),
    )
)]
pub async fn create_student(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> Result<impl IntoResponse, ApiError> {
    let student = input::parse_new_student(body).map_err(ApiError::Validation)?;
    let created = StudentView::from(state.store.create(&student).await?);
    let location = format!("{COLLECTION_PATH}/{}", created.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(created),
    ))
}

/// List students by id, a page at a time, optionally filtered.
#[utoipa::path(
    get,
    path = COLLECTION_PATH,
    tag = "students",
    operation_id = "listStudents",
    params(
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Page size (default 20)"),
        ("offset" = Option<i64>, Query, minimum = 0, description = "Students to skip (default 0)"),
        ("q" = Option<String>, Query, max_length = 100, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$",
            description = "Case-insensitive substring of the name or email"),
    ),
    responses(
        (status = 200, description = "A page of students", body = StudentPage),
        (status = 400, response = inline(BadRequest)),
        (status = 503, response = inline(Unavailable)),
    )
)]
pub async fn list_students(
    State(state): State<AppState>,
    ListParams(query): ListParams,
) -> Result<Json<StudentPage>, ApiError> {
    let page = state.store.list(&query).await?;
    Ok(Json(StudentPage::new(page, query.limit, query.offset)))
}

/// Get one student.
#[utoipa::path(
    get,
    path = ITEM_PATH,
    tag = "students",
    operation_id = "getStudent",
    params(StudentId),
    responses(
        (status = 200, description = "The student", body = StudentView),
        (status = 400, response = inline(BadRequest)),
        (status = 404, response = inline(NotFound)),
        (status = 503, response = inline(Unavailable)),
    )
)]
pub async fn get_student(
    State(state): State<AppState>,
    StudentId(id): StudentId,
) -> Result<Json<StudentView>, ApiError> {
    let record = state
        .store
        .get(id)
        .await?
        .ok_or(ApiError::StudentNotFound(id))?;
    Ok(Json(record.into()))
}

/// Replace every writable field of a student.
#[utoipa::path(
    put,
    path = ITEM_PATH,
    tag = "students",
    operation_id = "replaceStudent",
    params(StudentId),
    request_body(content = StudentInput, content_type = "application/json"),
    responses(
        (status = 200, description = "The updated student", body = StudentView),
        (status = 400, response = inline(BadRequest)),
        (status = 404, response = inline(NotFound)),
        (status = 409, description = "Email already used", body = Problem, content_type = "application/problem+json"),
        (status = 413, response = inline(TooLarge)),
        (status = 415, response = inline(UnsupportedMedia)),
        (status = 422, response = inline(Invalid)),
        (status = 503, response = inline(Unavailable)),
        (status = 507, response = inline(InsufficientStorage)),
    )
)]
pub async fn replace_student(
    State(state): State<AppState>,
    StudentId(id): StudentId,
    JsonObject(body): JsonObject,
) -> Result<Json<StudentView>, ApiError> {
    let student = input::parse_new_student(body).map_err(ApiError::Validation)?;
    apply(&state, id, &student.into()).await
}

/// Change some of the writable fields of a student.
#[utoipa::path(
    patch,
    path = ITEM_PATH,
    tag = "students",
    operation_id = "updateStudent",
    params(StudentId),
    request_body(content = StudentPatchInput, content_type = "application/json"),
    responses(
        (status = 200, description = "The updated student", body = StudentView),
        (status = 400, response = inline(BadRequest)),
        (status = 404, response = inline(NotFound)),
        (status = 409, description = "Email already used", body = Problem, content_type = "application/problem+json"),
        (status = 413, response = inline(TooLarge)),
        (status = 415, response = inline(UnsupportedMedia)),
        (status = 422, response = inline(Invalid)),
        (status = 503, response = inline(Unavailable)),
        (status = 507, response = inline(InsufficientStorage)),
    )
)]
pub async fn update_student(
    State(state): State<AppState>,
    StudentId(id): StudentId,
    JsonObject(body): JsonObject,
) -> Result<Json<StudentView>, ApiError> {
    let changes = input::parse_changes(body).map_err(ApiError::Validation)?;
    apply(&state, id, &changes).await
}

async fn apply(
    state: &AppState,
    id: i64,
    changes: &StudentChanges,
) -> Result<Json<StudentView>, ApiError> {
    let record = state
        .store
        .update(id, changes)
        .await?
        .ok_or(ApiError::StudentNotFound(id))?;
    Ok(Json(record.into()))
}

/// Delete a student.
#[utoipa::path(
    delete,
    path = ITEM_PATH,
    tag = "students",
    operation_id = "deleteStudent",
    params(StudentId),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, response = inline(BadRequest)),
        (status = 404, response = inline(NotFound)),
        (status = 503, response = inline(Unavailable)),
        (status = 507, response = inline(InsufficientStorage)),
    )
)]
pub async fn delete_student(
    State(state): State<AppState>,
    StudentId(id): StudentId,
) -> Result<StatusCode, ApiError> {
    if state.store.delete(id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::StudentNotFound(id))
    }
}

/// The problem responses the operations share, one description each. They
/// exist for the document only: the body is always a [`Problem`], built by
/// [`ApiError`], so the wrapped value is never read.
macro_rules! problem_response {
    ($name:ident, $description:literal) => {
        #[derive(utoipa::ToResponse)]
        #[response(description = $description, content_type = "application/problem+json")]
        #[allow(dead_code)]
        struct $name(Problem);
    };
}

problem_response!(
    BadRequest,
    "Malformed request: invalid JSON, id or query parameter"
);
problem_response!(NotFound, "No student with this id");
problem_response!(TooLarge, "Request body over 64 KiB");
problem_response!(
    UnsupportedMedia,
    "Request body not sent as application/json"
);
problem_response!(Invalid, "Invalid fields, named in `errors`");
problem_response!(
    Unavailable,
    "Database unavailable, or its storage failing (read-only, I/O errors, file removed); retry after `Retry-After` seconds"
);
problem_response!(
    InsufficientStorage,
    "No space left on the database's storage for this change; retry after `Retry-After` seconds"
);
