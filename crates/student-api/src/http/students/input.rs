//! Request bodies of the student endpoints: a JSON object turned into domain
//! types, collecting every problem so that one 422 names every bad field.

use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};
use utoipa::ToSchema;

use crate::domain::{
    text_pattern, Email, Gpa, NewStudent, StudentChanges, StudentDomain, StudentName,
};
use crate::http::error::FieldErrors;

const WRITABLE_FIELDS: [&str; 4] = ["name", "email", "domain", "gpa"];

/// The OpenAPI schema of a name or field of study: after trimming
/// surrounding whitespace and invisible characters, 1 to 100 characters,
/// none of them a control character, a line separator or a bidirectional
/// control (the pattern is built from the parser's own tables).
fn text_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(text_pattern()))
        .build()
}

/// Body of `POST` and `PUT`: every writable field. It documents the wire
/// format only: bodies are read field by field from a JSON object (so that
/// one 422 names every bad field), never deserialized into this type.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct StudentInput {
    /// Display name; surrounding whitespace is trimmed.
    #[schema(schema_with = text_schema, example = "Ada Lovelace")]
    name: String,
    /// A plain email address (no display name, comment or quotes), unique
    /// across students in its canonical form (case, Unicode and IDNA folded).
    #[schema(format = Email, max_length = 254, example = "ada@example.org")]
    email: String,
    /// Field of study; surrounding whitespace is trimmed.
    #[schema(schema_with = text_schema, example = "Mathematics")]
    domain: String,
    /// Grade point average, 0 to 10 inclusive.
    #[schema(minimum = 0.0, maximum = 10.0, example = 8.7)]
    gpa: f64,
}

/// Body of `PATCH`: any non-empty subset of the writable fields.
/// (`minProperties: 1` is added by [`crate::http::openapi`].)
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct StudentPatchInput {
    #[schema(schema_with = text_schema)]
    name: Option<String>,
    #[schema(format = Email, max_length = 254, nullable = false)]
    email: Option<String>,
    #[schema(schema_with = text_schema)]
    domain: Option<String>,
    #[schema(minimum = 0.0, maximum = 10.0, nullable = false)]
    gpa: Option<f64>,
}

/// Parses a body that must hold every writable field.
pub fn parse_new_student(body: Map<String, Value>) -> Result<NewStudent, FieldErrors> {
    let (changes, mut errors) = parse_fields(body);
    let name = require(changes.name, "name", &mut errors);
    let email = require(changes.email, "email", &mut errors);
    let domain = require(changes.domain, "domain", &mut errors);
    let gpa = require(changes.gpa, "gpa", &mut errors);
    match (name, email, domain, gpa) {
        (Some(name), Some(email), Some(domain), Some(gpa)) if errors.is_empty() => Ok(NewStudent {
            name,
            email,
            domain,
            gpa,
        }),
        _ => Err(errors),
    }
}

/// Records "is required" for an absent field that has no other error.
fn require<T>(value: Option<T>, key: &str, errors: &mut FieldErrors) -> Option<T> {
    if value.is_none() && !errors.contains_key(key) {
        errors.insert(key.to_owned(), vec!["is required".to_owned()]);
    }
    value
}

/// Parses a body holding a non-empty subset of the writable fields.
pub fn parse_changes(body: Map<String, Value>) -> Result<StudentChanges, FieldErrors> {
    let empty = body.is_empty();
    let (changes, mut errors) = parse_fields(body);
    if empty {
        errors.insert(
            "body".to_owned(),
            vec![format!(
                "must contain at least one of: {}",
                WRITABLE_FIELDS.join(", ")
            )],
        );
    }
    if errors.is_empty() {
        Ok(changes)
    } else {
        Err(errors)
    }
}

/// Parses whichever writable fields are present; unknown fields are errors.
fn parse_fields(mut body: Map<String, Value>) -> (StudentChanges, FieldErrors) {
    let mut errors = FieldErrors::new();
    let changes = StudentChanges {
        name: take_text(&mut body, "name", StudentName::parse, &mut errors),
        email: take_text(&mut body, "email", Email::parse, &mut errors),
        domain: take_text(&mut body, "domain", StudentDomain::parse, &mut errors),
        gpa: take(&mut body, "gpa", &mut errors, |value| match value {
            Value::Number(n) => n
                .as_f64()
                .ok_or_else(|| "must be a number".to_owned())
                .and_then(Gpa::new),
            _ => Err("must be a number".to_owned()),
        }),
    };
    for unknown in body.keys() {
        errors.insert(unknown.clone(), vec!["is not a writable field".to_owned()]);
    }
    (changes, errors)
}

fn take_text<T>(
    body: &mut Map<String, Value>,
    key: &str,
    parse: fn(&str) -> Result<T, String>,
    errors: &mut FieldErrors,
) -> Option<T> {
    take(body, key, errors, |value| match value {
        Value::String(s) => parse(s),
        _ => Err("must be a string".to_owned()),
    })
}

fn take<T>(
    body: &mut Map<String, Value>,
    key: &str,
    errors: &mut FieldErrors,
    parse: impl FnOnce(&Value) -> Result<T, String>,
) -> Option<T> {
    let value = body.remove(key)?;
    parse(&value)
        .map_err(|message| errors.insert(key.to_owned(), vec![message]))
        .ok()
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // exact values go in and must come out
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    fn messages(errors: &FieldErrors) -> Vec<(&str, &str)> {
        errors
            .iter()
            .flat_map(|(k, v)| v.iter().map(move |m| (k.as_str(), m.as_str())))
            .collect()
    }

    #[test]
    fn a_complete_body_becomes_a_new_student() {
        let student = parse_new_student(object(json!({
            "name": " Ada ", "email": "ada@example.org", "domain": "Maths", "gpa": 9
        })))
        .unwrap();
        assert_eq!(student.name.as_str(), "Ada");
        assert_eq!(student.gpa.value(), 9.0);
    }

    #[test]
    fn every_offending_field_is_named_at_once() {
        let errors = parse_new_student(object(json!({
            "name": "", "email": "nope", "gpa": "3.5", "nickname": "x"
        })))
        .unwrap_err();
        assert_eq!(
            messages(&errors),
            vec![
                ("domain", "is required"),
                ("email", "must be a valid email address"),
                ("gpa", "must be a number"),
                ("name", "must not be empty"),
                ("nickname", "is not a writable field"),
            ]
        );
    }

    #[test]
    fn null_is_not_a_value_for_any_field() {
        let errors = parse_changes(object(json!({"name": null, "gpa": null}))).unwrap_err();
        assert_eq!(
            messages(&errors),
            vec![("gpa", "must be a number"), ("name", "must be a string")]
        );
    }

    #[test]
    fn an_empty_patch_is_rejected() {
        let errors = parse_changes(Map::new()).unwrap_err();
        assert_eq!(
            messages(&errors),
            vec![(
                "body",
                "must contain at least one of: name, email, domain, gpa"
            )]
        );
    }

    #[test]
    fn a_patch_may_change_a_single_field() {
        let changes = parse_changes(object(json!({"gpa": 7.5}))).unwrap();
        assert_eq!(changes.gpa.map(Gpa::value), Some(7.5));
        assert!(changes.name.is_none() && changes.email.is_none() && changes.domain.is_none());
    }

    #[test]
    fn read_only_fields_are_rejected() {
        let errors = parse_changes(object(
            json!({"id": 3, "created_at": "2026-01-01T00:00:00Z"}),
        ))
        .unwrap_err();
        assert_eq!(errors.keys().collect::<Vec<_>>(), vec!["created_at", "id"]);
    }

    proptest::proptest! {
        /// The pattern in the OpenAPI document accepts exactly what the parser accepts.
        #[test]
        fn the_documented_pattern_matches_the_parser(raw in "[ \\t\\n\\u{85}\\u{a0}\\u{3000}\\u{0}\\u{7f}a-zé]{0,104}") {
            let pattern = regex::Regex::new(&text_pattern()).unwrap();
            proptest::prop_assert_eq!(pattern.is_match(&raw), StudentName::parse(&raw).is_ok(), "{:?}", raw);
        }

        #[test]
        fn the_documented_pattern_matches_the_parser_with_invisible_characters(
            raw in "[ a\u{200B}\u{200C}\u{200F}\u{2028}\u{202E}\u{2066}\u{FEFF}\u{3164}\u{E0041}\u{0}]{0,6}"
        ) {
            let pattern = regex::Regex::new(&text_pattern()).unwrap();
            proptest::prop_assert_eq!(pattern.is_match(&raw), StudentName::parse(&raw).is_ok(), "{:?}", raw);
        }

        #[test]
        fn the_documented_pattern_matches_the_parser_on_any_text(raw in "\\PC{0,3}\\p{C}?\\s{0,2}.{0,101}") {
            let pattern = regex::Regex::new(&text_pattern()).unwrap();
            proptest::prop_assert_eq!(pattern.is_match(&raw), StudentDomain::parse(&raw).is_ok(), "{:?}", raw);
        }
    }
}
