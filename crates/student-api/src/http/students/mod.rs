//! The `/api/v1/students` resource: create, list, read, replace, patch, delete.
//!
//! Handlers only translate between HTTP and the store: bodies are parsed into
//! domain types by `input`, rows are turned into views by `view`, and every
//! failure is an [`ApiError`].

mod cursor;
mod input;
mod list;
mod view;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use input::{StudentInput, StudentPatchInput};
pub use view::{StudentPage, StudentView};

use super::error::{ApiError, Problem};
use super::extract::{JsonObject, StudentId};
use super::AppState;
use crate::domain::StudentChanges;
use crate::storage::Start;

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

/// List students a page at a time, sorted, optionally filtered.
///
/// Walk a whole collection with `cursor`: each page's `next_cursor` (also
/// in the `Link` header) starts the next one, at the same cost at any depth
/// and without duplicates or gaps when students are added or removed
/// meanwhile. `total` is exact up to 1,000 matches and an estimate beyond
/// unless `Prefer: count=exact|planned|estimated` asks otherwise.
#[utoipa::path(
    get,
    path = COLLECTION_PATH,
    tag = "students",
    operation_id = "listStudents",
    params(
        ListParamsDoc,
        ("Prefer" = Option<String>, Header, example = "count=exact",
            description = "`count=exact` (every match counted), `count=planned` (the database's estimate) or `count=estimated` (exact up to 1,000 matches, planned beyond; the default). Other preferences are ignored"),
    ),
    responses(
        (status = 200, description = "A page of students", body = StudentPage,
            links(
                ("NextPage" = (
                    operation_id = "listStudents",
                    parameters(
                        ("cursor" = "$response.body#/next_cursor"),
                        ("sort" = "$request.query.sort"),
                        ("q" = "$request.query.q"),
                        ("limit" = "$request.query.limit"),
                    ),
                    description = "The next page, while `has_more`"
                ))
            ),
            headers(
                ("Link" = String, description = "RFC 8288 link to the next page, `rel=\"next\"`, when `has_more`"),
                ("Preference-Applied" = String, description = "The count preference applied, when `Prefer` asked for one"),
                ("Vary" = String, description = "`prefer`"),
            )),
        (status = 400, response = inline(BadRequest)),
        (status = 503, response = inline(Unavailable)),
    )
)]
pub async fn list_students(
    State(state): State<AppState>,
    mut request: list::ListRequest,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(count) = request.preferred_count {
        request.query.count = count;
    }
    let page = state.store.list(&request.query).await?;
    let next_cursor = request.next_cursor(&page);
    let headers = request.headers(COLLECTION_PATH, next_cursor.as_deref());
    let offset = match &request.query.start {
        Start::Offset(offset) => *offset,
        Start::After(_) => 0,
    };
    Ok((
        headers,
        Json(StudentPage::new(
            page,
            request.query.limit,
            offset,
            next_cursor,
        )),
    ))
}

/// The list's query parameters as the OpenAPI document shows them; they
/// are read by [`list::ListRequest`], never deserialized into this type.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct ListParamsDoc {
    /// Page size (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// Order: `id` (default), `name`, `gpa` or `created`, descending with a
    /// leading `-`; ties are broken by id in the same direction.
    #[param(schema_with = sort_schema)]
    sort: Option<String>,
    /// Case-insensitive substring of the name or email, matched literally;
    /// at least 3 characters (empty: no filter).
    #[param(schema_with = search_schema)]
    q: Option<String>,
    /// The `next_cursor` of a previous page, unchanged, with the same
    /// `sort` and `q`; not with `offset`.
    #[param(schema_with = cursor_schema)]
    cursor: Option<String>,
    /// Students to skip (default 0), up to 10,000; deeper pages are
    /// reached with `cursor`. Not with `cursor`.
    #[param(minimum = 0, maximum = 10000)]
    offset: Option<i64>,
}

fn sort_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "Order: `id` (default), `name`, `gpa` or `created`, descending with a leading `-`; \
             ties are broken by id in the same direction",
        ))
        .enum_values(Some(list::SORTS))
        .build()
}

fn search_schema() -> Object {
    // Empty, or 3 to 100 characters none of which is a control character.
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "Case-insensitive substring of the name or email, matched literally; \
             at least 3 characters (empty: no filter)",
        ))
        .max_length(Some(100))
        .pattern(Some(r"^(?:[^\u0000-\u001F\u007F-\u009F]{3,})?$"))
        .build()
}

fn cursor_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "The `next_cursor` of a previous page, unchanged, with the same `sort` and `q`; \
             not with `offset`",
        ))
        .min_length(Some(1))
        .max_length(Some(cursor::MAX_CURSOR_CHARS))
        .pattern(Some("^[A-Za-z0-9_-]+$"))
        .build()
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
