//! Many small rows as one bound parameter: a JSON array of row arrays that
//! a statement unpacks with `json_each`.
//!
//! sqlx runs every statement on its connection's own thread, so each
//! statement is a hand-off between threads (two context switches). The
//! guarded updates a batch makes once per payer (points) or per deal and
//! user (purchase counts) take all their rows this way, as one fixed
//! statement whatever the batch holds. Only for a few narrow columns:
//! SQLite renders and re-parses each row's text, which costs more than
//! binding once rows are wide (orders, items and answers are bound).
//!
//! Ids go in as 32 hex digits and back to 16-byte blobs with `unhex`, so
//! they compare equal to the blobs a bound `Uuid` stores.

use std::fmt::Write as _;
use uuid::Uuid;

/// A JSON array of rows, each an array of columns.
pub(super) struct JsonRows {
    buf: String,
    rows: usize,
    cols: usize,
}

impl JsonRows {
    /// An empty array with room for `bytes` of text.
    pub(super) fn with_capacity(bytes: usize) -> Self {
        let mut buf = String::with_capacity(bytes.max(2));
        buf.push('[');
        Self {
            buf,
            rows: 0,
            cols: 0,
        }
    }

    /// Starts a row; columns follow.
    pub(super) fn row(&mut self) -> &mut Self {
        if self.rows > 0 {
            self.buf.push_str("],");
        }
        self.buf.push('[');
        self.rows += 1;
        self.cols = 0;
        self
    }

    fn sep(&mut self) {
        if self.cols > 0 {
            self.buf.push(',');
        }
        self.cols += 1;
    }

    pub(super) fn uuid(&mut self, id: Uuid) -> &mut Self {
        self.sep();
        self.buf.push('"');
        self.buf
            .push_str(id.simple().encode_lower(&mut Uuid::encode_buffer()));
        self.buf.push('"');
        self
    }

    pub(super) fn int(&mut self, n: i64) -> &mut Self {
        self.sep();
        let _ = write!(self.buf, "{n}");
        self
    }

    /// The JSON text, to bind as one parameter.
    pub(super) fn finish(mut self) -> String {
        if self.rows > 0 {
            self.buf.push(']');
        }
        self.buf.push(']');
        self.buf
    }
}

/// Appends `s` as a JSON string literal.
pub(super) fn push_json_str(buf: &mut String, s: &str) {
    buf.reserve(s.len() + 2);
    buf.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        buf.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(buf, "\\u{b:04x}");
        } else {
            buf.push_str(escape);
        }
        start = i + 1;
    }
    buf.push_str(&s[start..]);
    buf.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rows_are_a_json_array_of_arrays() {
        let mut r = JsonRows::with_capacity(0);
        let id = Uuid::now_v7();
        r.row().uuid(id).int(-3);
        r.row().int(7);
        let v: serde_json::Value = serde_json::from_str(&r.finish()).expect("json");
        assert_eq!(v, serde_json::json!([[id.simple().to_string(), -3], [7]]));
        assert_eq!(JsonRows::with_capacity(0).finish(), "[]");
    }

    proptest! {
        #[test]
        fn any_string_round_trips(s in any::<String>()) {
            let mut out = String::new();
            push_json_str(&mut out, &s);
            let back: String = serde_json::from_str(&out).expect("json string");
            prop_assert_eq!(back, s);
        }
    }
}
