//! Field rules of the API, collected per field so a 422 can name every
//! offending field at once instead of the first one only.

use std::collections::BTreeMap;

/// Offending fields and why, in field-name order.
pub type FieldErrors = BTreeMap<String, String>;

/// Collects field errors while a request is checked.
#[derive(Debug, Default)]
pub struct Validator {
    errors: FieldErrors,
}

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `message` for `field` unless `ok`.
    pub fn check(&mut self, ok: bool, field: &str, message: &str) -> &mut Self {
        if !ok {
            self.errors
                .entry(field.to_owned())
                .or_insert_with(|| message.to_owned());
        }
        self
    }

    /// Text length in characters (not bytes) within `min..=max`.
    pub fn length(&mut self, field: &str, value: &str, min: usize, max: usize) -> &mut Self {
        let n = value.chars().count();
        let msg = if min == 0 {
            format!("must be at most {max} characters")
        } else {
            format!("must be {min}..{max} characters")
        };
        self.check((min..=max).contains(&n), field, &msg)
    }

    pub fn range(&mut self, field: &str, value: i64, min: i64, max: i64) -> &mut Self {
        self.check(
            (min..=max).contains(&value),
            field,
            &format!("must be in {min}..{max}"),
        )
    }

    pub fn email(&mut self, field: &str, value: &str) -> &mut Self {
        self.check(is_email(value), field, "must be an email address")
    }

    pub fn finish(self) -> Result<(), FieldErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.errors)
        }
    }
}

/// A pragmatic address check: one `@`, a non-empty local part, a dotted
/// domain without empty labels, no whitespace, at most 254 characters.
pub fn is_email(s: &str) -> bool {
    if s.chars().count() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.chars().count() <= 64
        && !domain.contains('@')
        && domain.contains('.')
        && domain.split('.').all(|label| !label.is_empty())
}

/// Korean mobile numbers: `01X-XXXX-XXXX`, dashes optional
/// (`^01[0-9]-?[0-9]{3,4}-?[0-9]{4}$`).
pub fn is_phone(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 3 || b[0] != b'0' || b[1] != b'1' || !b[2].is_ascii_digit() {
        return false;
    }
    let mut rest = &b[3..];
    if rest.first() == Some(&b'-') {
        rest = &rest[1..];
    }
    // middle part of 3 or 4 digits, optional dash, then exactly 4 digits
    let digits = |r: &[u8]| r.iter().all(u8::is_ascii_digit);
    for mid in [3usize, 4] {
        if rest.len() < mid || !digits(&rest[..mid]) {
            continue;
        }
        let mut tail = &rest[mid..];
        if tail.first() == Some(&b'-') {
            tail = &tail[1..];
        }
        if tail.len() == 4 && digits(tail) {
            return true;
        }
    }
    false
}

/// Five-digit postal codes.
pub fn is_postal_code(s: &str) -> bool {
    s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn emails() {
        for ok in ["a@b.co", "first.last+tag@example.com", "x@sub.domain.kr"] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in [
            "", "a", "a@", "@b.co", "a@b", "a@b..co", "a b@c.de", "a@@b.co", "a@.b.co",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }

    #[test]
    fn phones_follow_the_contract_pattern() {
        for ok in [
            "010-1234-5678",
            "01012345678",
            "011-123-4567",
            "0101234-5678",
            "010-1235678",
        ] {
            assert!(is_phone(ok), "{ok}");
        }
        for bad in [
            "",
            "02-123-4567",
            "010-12-5678",
            "010-12345-678",
            "010-1234-56789",
            "abc",
            "010--1234-5678",
        ] {
            assert!(!is_phone(bad), "{bad}");
        }
    }

    #[test]
    fn validator_collects_every_field() {
        let mut v = Validator::new();
        v.email("email", "nope")
            .length("name", "x", 2, 50)
            .range("price", -1, 0, i64::MAX);
        let errs = v.finish().expect_err("three errors");
        assert_eq!(errs.len(), 3);
        assert!(
            errs.contains_key("email") && errs.contains_key("name") && errs.contains_key("price")
        );
    }

    proptest! {
        #[test]
        fn generated_phones_match(mid in 3usize..=4, d1 in any::<bool>(), d2 in any::<bool>(), x in 0u8..10, n in 0u64..100_000_000) {
            let digits = format!("{n:08}");
            let (m, t) = if mid == 3 { (&digits[1..4], &digits[4..8]) } else { (&digits[0..4], &digits[4..8]) };
            let s = format!("01{x}{}{m}{}{t}", if d1 { "-" } else { "" }, if d2 { "-" } else { "" });
            prop_assert!(is_phone(&s), "{}", s);
        }

        #[test]
        fn length_counts_characters_not_bytes(s in "[가-힣]{2,50}") {
            let mut v = Validator::new();
            v.length("name", &s, 2, 50);
            prop_assert!(v.finish().is_ok());
        }
    }
}
