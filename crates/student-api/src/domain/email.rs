//! Email addresses: a plain `local@domain` address, at most 254 characters,
//! and the canonical form that decides whether two addresses are the same.
//!
//! Rules: only a plain address is accepted. The grammar is RFC 5322's
//! addr-spec without its obsolete and exotic parts (the `email_address`
//! crate checks it): no display name (`Ada <ada@example.org>`), no comment,
//! no quoted local part (`"ada"@example.org`), no domain literal
//! (`ada@[192.0.2.1]`), no invisible character. The address is stored as
//! given (trimmed, in Unicode NFC); uniqueness is decided on its canonical
//! form:
//! - the local part in Unicode NFKC, then lowercase: mail systems treat
//!   local parts case-insensitively in practice, and NFKC makes visually
//!   identical spellings (full-width letters, composed and decomposed
//!   accents) the same address;
//! - the domain in its ASCII form (IDNA, UTS #46), which is lowercase:
//!   `Bücher.example` and `xn--bcher-kva.example` are one domain.
//!
//! Dots and `+tags` in the local part are kept as they are: whether
//! `a.da+x@` and `ada@` reach the same mailbox is a rule of some mail
//! providers, not of email, and folding them would merge distinct people.

use std::fmt;

use email_address::{EmailAddress, Options};
use unicode_normalization::UnicodeNormalization;

/// Longest address SMTP can carry (RFC 5321 path limit less the brackets).
pub const EMAIL_MAX_CHARS: usize = 254;

const INVALID: &str = "must be a valid email address";
const NOT_PLAIN: &str =
    "must be a plain address such as ada@example.org, without a display name, comment or quotes";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// As given, trimmed, in NFC.
    address: String,
    /// The canonical form (see the module docs).
    key: String,
}

impl Email {
    /// Trims and validates `raw`; the error is a message for the user.
    pub fn parse(raw: &str) -> Result<Self, String> {
        // NFC first: the same text typed on another system (a decomposed é)
        // is the same address, and the grammar check knows composed letters.
        let address: String = super::text::trimmed_text(raw, EMAIL_MAX_CHARS)?
            .nfc()
            .collect();
        // The characters that only display names, comments, quoted local
        // parts and domain literals use: a plain address has none of them.
        if address.contains(['<', '>', '(', ')', '"', '[', ']', '\\']) {
            return Err(NOT_PLAIN.to_owned());
        }
        if address.chars().any(super::text::is_invisible) {
            return Err(INVALID.to_owned());
        }
        let options = Options::default()
            .without_display_text()
            .without_domain_literal();
        EmailAddress::parse_with_options(&address, options).map_err(|_| INVALID.to_owned())?;
        // Without quotes the local part holds no '@', so the only one splits.
        let (local, domain) = address.split_once('@').ok_or_else(|| INVALID.to_owned())?;
        let domain = idna::domain_to_ascii(domain).map_err(|_| INVALID.to_owned())?;
        let local = local.nfkc().collect::<String>().to_lowercase();
        let key = format!("{local}@{domain}");
        Ok(Self { address, key })
    }

    /// The address as given (trimmed, in NFC).
    pub fn as_str(&self) -> &str {
        &self.address
    }

    /// The canonical form: equal keys mean the same address.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(raw: &str) -> String {
        Email::parse(raw).unwrap().key().to_owned()
    }

    #[test]
    fn ordinary_addresses_are_accepted_and_trimmed() {
        assert_eq!(
            Email::parse(" ada@example.org ").unwrap().as_str(),
            "ada@example.org"
        );
        assert!(Email::parse("first.last+tag@sub.example.co.uk").is_ok());
        assert!(Email::parse("o'brien@example.ie").is_ok());
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
            "a..b@example.org",
            "ada@example..org",
            "ada@xn--invalid-punycode-.org",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn display_names_comments_quotes_and_domain_literals_are_refused() {
        for bad in [
            "Someone <dn1@example.org>",
            "<dn1@example.org>",
            "\"dn1\"@example.org",
            "\"d n\"@example.org",
            "dn1(comment)@example.org",
            "(comment)dn1@example.org",
            "dn1@[192.0.2.1]",
            "dn1\\@x@example.org",
        ] {
            assert_eq!(Email::parse(bad).unwrap_err(), NOT_PLAIN, "{bad:?}");
        }
    }

    #[test]
    fn invisible_characters_inside_are_refused() {
        for bad in [
            "dn\u{200B}1@example.org",
            "dn1@exa\u{00AD}mple.org",
            "dn1\u{FEFF}@example.org",
        ] {
            assert_eq!(Email::parse(bad).unwrap_err(), INVALID, "{bad:?}");
        }
    }

    #[test]
    fn the_key_folds_case_and_the_domain_to_ascii() {
        assert_eq!(key("Ada.Lovelace@Example.ORG"), "ada.lovelace@example.org");
        assert_eq!(key("ada@Bücher.example"), "ada@xn--bcher-kva.example");
        assert_eq!(
            key("ada@xn--bcher-kva.example"),
            "ada@xn--bcher-kva.example"
        );
        // Composed and decomposed é, full-width letters.
        assert_eq!(
            key("\u{e9}mile@example.org"),
            key("e\u{301}mile@example.org")
        );
        assert_eq!(key("\u{ff41}da@example.org"), "ada@example.org");
        assert_eq!(key("ÉMILE@example.org"), "émile@example.org");
    }

    #[test]
    fn dots_and_tags_are_part_of_the_address() {
        assert_ne!(key("a.da@example.org"), key("ada@example.org"));
        assert_ne!(key("ada+x@example.org"), key("ada@example.org"));
    }

    #[test]
    fn the_address_is_kept_as_given() {
        let email = Email::parse("Ada@Bücher.example").unwrap();
        assert_eq!(email.as_str(), "Ada@Bücher.example");
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

    proptest! {
        /// A key is itself an address whose key it is.
        #[test]
        fn the_key_is_canonical(local in "[a-zA-Z0-9éÉｅ\u{301}!#$%&'*+/=?^_`{|}~-]{1,20}",
                                domain in "[a-zA-Zü0-9]{1,10}(\\.[a-zA-Z]{2,6}){1,2}") {
            if let Ok(email) = Email::parse(&format!("{local}@{domain}")) {
                let again = Email::parse(email.key()).unwrap();
                prop_assert_eq!(again.key(), email.key());
            }
        }
    }
}
