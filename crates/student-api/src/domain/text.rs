//! Short human-entered text fields (a student's name, their field of study).
//!
//! Rules: surrounding whitespace is trimmed, the rest must be 1 to
//! [`TEXT_MAX_CHARS`] characters with no control characters. Control
//! characters are refused because they are never meaningful in a name and
//! PostgreSQL rejects NUL outright.

use std::fmt;

/// Longest accepted name or field of study, in Unicode scalar values.
pub const TEXT_MAX_CHARS: usize = 100;

fn parse_text(raw: &str) -> Result<String, String> {
    trimmed_text(raw, TEXT_MAX_CHARS).map(str::to_owned)
}

/// Trims `raw` and checks it is 1 to `max` characters without control
/// characters; shared with [`super::Email`].
pub(super) fn trimmed_text(raw: &str, max: usize) -> Result<&str, String> {
    let trimmed = raw.trim();
    let chars = trimmed.chars().count();
    if chars == 0 {
        return Err("must not be empty".to_owned());
    }
    if chars > max {
        return Err(format!("must be at most {max} characters"));
    }
    if trimmed.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    Ok(trimmed)
}

macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            /// Trims and validates `raw`; the error is a message for the user.
            pub fn parse(raw: &str) -> Result<Self, String> {
                parse_text(raw).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_type!(
    /// A student's display name.
    StudentName
);
text_type!(
    /// The student's field of study (the API calls it `domain`).
    FieldOfStudy
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn surrounding_whitespace_is_trimmed() {
        assert_eq!(
            StudentName::parse("  Ada Lovelace \n").unwrap().as_str(),
            "Ada Lovelace"
        );
    }

    #[test]
    fn blank_text_is_rejected() {
        assert_eq!(StudentName::parse(" \t ").unwrap_err(), "must not be empty");
        assert_eq!(FieldOfStudy::parse("").unwrap_err(), "must not be empty");
    }

    #[test]
    fn length_is_counted_in_characters_after_trimming() {
        let hundred_wide = "é".repeat(100);
        assert!(StudentName::parse(&format!("  {hundred_wide}  ")).is_ok());
        assert_eq!(
            StudentName::parse(&"x".repeat(101)).unwrap_err(),
            "must be at most 100 characters"
        );
    }

    #[test]
    fn control_characters_inside_are_rejected() {
        assert!(StudentName::parse("Ada\u{0}Lovelace").is_err());
        assert!(FieldOfStudy::parse("Physics\nChemistry").is_err());
    }

    proptest! {
        #[test]
        fn accepted_text_is_trimmed_bounded_and_printable(raw in "\\PC{0,120}") {
            if let Ok(name) = StudentName::parse(&raw) {
                let s = name.as_str();
                prop_assert_eq!(s, s.trim());
                prop_assert!((1..=TEXT_MAX_CHARS).contains(&s.chars().count()));
                prop_assert!(!s.chars().any(char::is_control));
            }
        }
    }
}
