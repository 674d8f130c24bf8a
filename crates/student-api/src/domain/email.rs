//! Email addresses: syntactically valid per RFC 5322 (the `email_address`
//! crate), at most 254 characters, compared case-insensitively by storage.

use std::fmt;
use std::str::FromStr;

/// Longest address SMTP can carry (RFC 5321 path limit less the brackets).
pub const EMAIL_MAX_CHARS: usize = 254;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Trims and validates `raw`; the error is a message for the user.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = super::text::trimmed_text(raw, EMAIL_MAX_CHARS)?;
        email_address::EmailAddress::from_str(trimmed)
            .map(|_| Self(trimmed.to_owned()))
            .map_err(|_| "must be a valid email address".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_addresses_are_accepted_and_trimmed() {
        assert_eq!(
            Email::parse(" ada@example.org ").unwrap().as_str(),
            "ada@example.org"
        );
        assert!(Email::parse("first.last+tag@sub.example.co.uk").is_ok());
    }

    #[test]
    fn addresses_without_at_sign_or_domain_are_rejected() {
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.org",
            "ada@@example.org",
            "a b@example.org",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn overlong_addresses_are_rejected() {
        let local = "a".repeat(64);
        let domain = format!("{}.org", "b".repeat(63));
        let long = format!("{local}@{domain}.{domain}.{domain}");
        assert!(long.len() > EMAIL_MAX_CHARS);
        assert_eq!(
            Email::parse(&long).unwrap_err(),
            "must be at most 254 characters"
        );
    }
}
