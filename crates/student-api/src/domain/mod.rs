//! Validated student data: every value that reaches storage has passed
//! through one of these types, so invalid data cannot be written.
//!
//! Parsing happens once, at the HTTP edge; nothing here knows about JSON or
//! SQL. Imports nothing from the rest of the crate.

mod email;
mod gpa;
mod student;
mod text;

pub use email::Email;
pub use gpa::Gpa;
pub use student::{NewStudent, StudentChanges};
pub use text::{text_pattern, StudentDomain, StudentName, TEXT_MAX_CHARS};
