//! Short human-entered text fields (a student's name, their field of study).
//!
//! Rules: whitespace and invisible characters (Unicode's White_Space and
//! Default_Ignorable_Code_Point) are trimmed from both ends, so a value made
//! only of them is empty; the rest must be 1 to [`TEXT_MAX_CHARS`]
//! characters with no control characters, no line or paragraph separators
//! and no bidirectional embedding, override or isolate controls. Control
//! characters and separators are never meaningful in a name (and PostgreSQL
//! rejects NUL outright); bidirectional controls make a name display as
//! something other than what it holds. Invisible characters inside a name
//! stay: zero-width joiners and non-joiners are part of how some scripts
//! and emoji are written.

use std::fmt;
use std::ops::RangeInclusive;

/// Longest accepted name or field of study, in Unicode scalar values.
pub const TEXT_MAX_CHARS: usize = 100;

/// Trimmed from both ends: White_Space (`char::is_whitespace`) and
/// Default_Ignorable_Code_Point, merged where they touch. A unit test checks
/// this table against Unicode's properties.
const TRIMMED: &[RangeInclusive<char>] = &[
    '\u{9}'..='\u{D}',
    ' '..=' ',
    '\u{85}'..='\u{85}',
    '\u{A0}'..='\u{A0}',
    '\u{AD}'..='\u{AD}',
    '\u{34F}'..='\u{34F}',
    '\u{61C}'..='\u{61C}',
    '\u{115F}'..='\u{1160}',
    '\u{1680}'..='\u{1680}',
    '\u{17B4}'..='\u{17B5}',
    '\u{180B}'..='\u{180F}',
    '\u{2000}'..='\u{200F}',
    '\u{2028}'..='\u{202F}',
    '\u{205F}'..='\u{206F}',
    '\u{3000}'..='\u{3000}',
    '\u{3164}'..='\u{3164}',
    '\u{FE00}'..='\u{FE0F}',
    '\u{FEFF}'..='\u{FEFF}',
    '\u{FFA0}'..='\u{FFA0}',
    '\u{FFF0}'..='\u{FFF8}',
    '\u{1BCA0}'..='\u{1BCA3}',
    '\u{1D173}'..='\u{1D17A}',
    '\u{E0000}'..='\u{E0FFF}',
];

/// Refused anywhere inside a value (besides control characters): the line
/// and paragraph separators, and the bidirectional embeddings, overrides and
/// isolates (the implicit marks LRM, RLM and ALM stay allowed).
const REFUSED_INSIDE: &[RangeInclusive<char>] = &[
    '\u{2028}'..='\u{2029}',
    '\u{202A}'..='\u{202E}',
    '\u{2066}'..='\u{2069}',
];

/// Control characters (general category Cc), as `char::is_control` has them.
const CONTROLS: &[RangeInclusive<char>] = &['\u{0}'..='\u{1F}', '\u{7F}'..='\u{9F}'];

fn in_ranges(ranges: &[RangeInclusive<char>], c: char) -> bool {
    ranges.iter().any(|range| range.contains(&c))
}

/// Whitespace or an invisible character: what trimming removes.
pub(super) fn is_invisible(c: char) -> bool {
    in_ranges(TRIMMED, c)
}

fn parse_text(raw: &str) -> Result<String, String> {
    trimmed_text(raw, TEXT_MAX_CHARS).map(str::to_owned)
}

/// Trims `raw` and checks it is 1 to `max` characters without control
/// characters, separators or bidirectional controls; shared with [`super::Email`].
pub(super) fn trimmed_text(raw: &str, max: usize) -> Result<&str, String> {
    let trimmed = raw.trim_matches(is_invisible);
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
    if trimmed.chars().any(|c| in_ranges(REFUSED_INSIDE, c)) {
        return Err(
            "must not contain line separators or bidirectional formatting characters".to_owned(),
        );
    }
    Ok(trimmed)
}

/// The regular expression (ECMA-262 and Python syntax alike) that accepts
/// exactly what [`trimmed_text`] accepts with `max` = [`TEXT_MAX_CHARS`]:
/// the pattern of names in the OpenAPI document.
pub fn text_pattern() -> String {
    let trimmed = class(&[TRIMMED]);
    let first_and_last = class(&[TRIMMED, CONTROLS]);
    let inside = class(&[CONTROLS, REFUSED_INSIDE]);
    let middle = TEXT_MAX_CHARS - 2;
    format!("^[{trimmed}]*[^{first_and_last}]([^{inside}]{{0,{middle}}}[^{first_and_last}])?[{trimmed}]*$")
}

/// The body of a character class holding every range of `tables`.
fn class(tables: &[&[RangeInclusive<char>]]) -> String {
    let mut class = String::new();
    for range in tables.iter().flat_map(|table| table.iter()) {
        class.push_str(&escape(*range.start()));
        if range.start() != range.end() {
            class.push('-');
            class.push_str(&escape(*range.end()));
        }
    }
    class
}

/// `\uXXXX` for the Basic Multilingual Plane; the character itself beyond
/// it, since ECMA-262 without the `u` flag has no escape for it.
fn escape(c: char) -> String {
    match u16::try_from(u32::from(c)) {
        Ok(unit) => format!("\\u{unit:04X}"),
        Err(_) => c.to_string(),
    }
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
    StudentDomain
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
        assert_eq!(StudentDomain::parse("").unwrap_err(), "must not be empty");
    }

    #[test]
    fn text_made_only_of_invisible_characters_is_empty() {
        for invisible in [
            "\u{200B}",
            "\u{FEFF}",
            "\u{2028}",
            "\u{202E}",
            "\u{200B}\u{FEFF}\u{2060}",
            "\u{3164}\u{115F}",
            "\u{E0041}\u{E007F}",
            " \u{200D} ",
        ] {
            assert_eq!(
                StudentName::parse(invisible).unwrap_err(),
                "must not be empty",
                "{invisible:?}"
            );
        }
    }

    #[test]
    fn invisible_characters_around_a_name_are_trimmed_and_joiners_inside_kept() {
        assert_eq!(
            StudentName::parse("\u{FEFF}Ada\u{200B}").unwrap().as_str(),
            "Ada"
        );
        // Persian "Mehr-Ali" needs the zero-width non-joiner.
        assert_eq!(
            StudentName::parse("مهر\u{200C}علی").unwrap().as_str(),
            "مهر\u{200C}علی"
        );
    }

    #[test]
    fn separators_and_bidirectional_controls_inside_are_rejected() {
        for bad in [
            "Ada\u{2028}Lovelace",
            "Ada\u{202E}ecalevoL",
            "Ada\u{2066}x\u{2069}",
        ] {
            assert_eq!(
                StudentName::parse(bad).unwrap_err(),
                "must not contain line separators or bidirectional formatting characters",
                "{bad:?}"
            );
        }
        assert!(
            StudentName::parse("Ada\u{200F}Lovelace").is_ok(),
            "RLM is allowed"
        );
    }

    #[test]
    fn the_trimmed_table_is_white_space_and_default_ignorable_code_points() {
        let property =
            regex::Regex::new(r"^[\p{White_Space}\p{Default_Ignorable_Code_Point}]$").unwrap();
        for c in (0..=0x10_FFFF).filter_map(char::from_u32) {
            assert_eq!(
                is_invisible(c),
                property.is_match(c.encode_utf8(&mut [0; 4])),
                "U+{:04X}",
                u32::from(c)
            );
        }
    }

    #[test]
    fn the_controls_table_is_what_is_control_tests() {
        for c in (0..=0x10_FFFF).filter_map(char::from_u32) {
            assert_eq!(
                in_ranges(CONTROLS, c),
                c.is_control(),
                "U+{:04X}",
                u32::from(c)
            );
        }
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
        assert!(StudentDomain::parse("Physics\nChemistry").is_err());
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
