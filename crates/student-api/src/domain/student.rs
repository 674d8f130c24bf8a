//! The writable shape of a student, whole (create, replace) or partial (patch).

use super::{Email, Gpa, StudentDomain, StudentName};

/// Every writable field, validated: what create and full replace store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewStudent {
    pub name: StudentName,
    pub email: Email,
    pub domain: StudentDomain,
    pub gpa: Gpa,
}

/// A partial update: `None` leaves the stored value as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StudentChanges {
    pub name: Option<StudentName>,
    pub email: Option<Email>,
    pub domain: Option<StudentDomain>,
    pub gpa: Option<Gpa>,
}

impl From<NewStudent> for StudentChanges {
    fn from(student: NewStudent) -> Self {
        Self {
            name: Some(student.name),
            email: Some(student.email),
            domain: Some(student.domain),
            gpa: Some(student.gpa),
        }
    }
}
