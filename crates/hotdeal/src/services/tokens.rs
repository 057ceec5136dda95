//! Access tokens: HS256 JWTs with `sub`, `iat`, `exp`.
//!
//! The algorithm is fixed. A token is accepted only if its header says
//! exactly `HS256` and its HMAC-SHA256 matches, so `alg: none` and algorithm
//! confusion are impossible by construction. Verification is one HMAC and a
//! small JSON parse: microseconds, no I/O. A general JWT library would bring
//! RSA and elliptic-curve code this service never uses.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use hotdeal_domain::UserId;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Seconds an access token is valid (`expires_in` in the API).
pub const ACCESS_TOKEN_TTL_SECS: i64 = 3600;

/// The fixed header, pre-encoded.
const HEADER_JSON: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: i64,
    exp: i64,
}

#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
}

#[derive(Clone)]
pub struct TokenKeys {
    /// The MAC keyed once; cloning it per use avoids re-deriving the key
    /// block on every request.
    mac: HmacSha256,
    header_b64: String,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(..)")
    }
}

impl TokenKeys {
    pub fn new(secret: &[u8]) -> Self {
        // HMAC accepts keys of any length.
        let mac = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
        Self {
            mac,
            header_b64: B64.encode(HEADER_JSON),
        }
    }

    /// A signed access token for `user`, valid from `now` for one hour.
    pub fn issue(&self, user: UserId, now: DateTime<Utc>) -> String {
        let iat = now.timestamp();
        let claims = Claims {
            sub: user.to_string(),
            iat,
            exp: iat + ACCESS_TOKEN_TTL_SECS,
        };
        let payload = serde_json::to_vec(&claims).unwrap_or_default();
        let signing_input = format!("{}.{}", self.header_b64, B64.encode(payload));
        let mut mac = self.mac.clone();
        mac.update(signing_input.as_bytes());
        let sig = B64.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{sig}")
    }

    /// A key for another purpose (e.g. signing queue tokens), derived from
    /// the same secret. The derivation input starts with a byte no JWT
    /// signing input starts with, so no derived key is ever a JWT
    /// signature.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(b"\0hotdeal derived key:");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The user of a valid, unexpired token; `None` for anything else.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Option<UserId> {
        let (signing_input, sig_b64) = token.rsplit_once('.')?;
        let (header_b64, payload_b64) = signing_input.split_once('.')?;
        let header: Header = serde_json::from_slice(&B64.decode(header_b64).ok()?).ok()?;
        if header.alg != "HS256" {
            return None;
        }
        let sig = B64.decode(sig_b64).ok()?;
        let mut mac = self.mac.clone();
        mac.update(signing_input.as_bytes());
        // Constant-time comparison.
        mac.verify_slice(&sig).ok()?;
        let claims: Claims = serde_json::from_slice(&B64.decode(payload_b64).ok()?).ok()?;
        if now.timestamp() >= claims.exp {
            return None;
        }
        UserId::parse(&claims.sub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn a_token_verifies_until_it_expires() {
        let keys = TokenKeys::new(b"secret");
        let user = UserId::new();
        let now = Utc::now();
        let t = keys.issue(user, now);
        assert_eq!(t.split('.').count(), 3);
        assert_eq!(keys.verify(&t, now), Some(user));
        assert_eq!(keys.verify(&t, now + Duration::seconds(3599)), Some(user));
        assert_eq!(keys.verify(&t, now + Duration::seconds(3600)), None);
    }

    #[test]
    fn another_key_or_a_changed_payload_fails() {
        let now = Utc::now();
        let t = TokenKeys::new(b"a").issue(UserId::new(), now);
        assert_eq!(TokenKeys::new(b"b").verify(&t, now), None);
        let parts: Vec<&str> = t.split('.').collect();
        let forged_payload = B64.encode(format!(
            r#"{{"sub":"{}","iat":0,"exp":9999999999}}"#,
            UserId::new()
        ));
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(TokenKeys::new(b"a").verify(&forged, now), None);
    }

    #[test]
    fn alg_none_is_refused() {
        let keys = TokenKeys::new(b"secret");
        let now = Utc::now();
        let header = B64.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let payload = B64.encode(format!(
            r#"{{"sub":"{}","iat":{},"exp":{}}}"#,
            UserId::new(),
            now.timestamp(),
            now.timestamp() + 60
        ));
        assert_eq!(keys.verify(&format!("{header}.{payload}."), now), None);
        // Even with a valid HMAC over the tampered header, the algorithm is wrong.
        let input = format!("{header}.{payload}");
        let mut mac = keys.mac.clone();
        mac.update(input.as_bytes());
        let sig = B64.encode(mac.finalize().into_bytes());
        assert_eq!(keys.verify(&format!("{input}.{sig}"), now), None);
    }

    #[test]
    fn garbage_is_refused() {
        let keys = TokenKeys::new(b"secret");
        for t in ["", "a", "a.b", "a.b.c", "...", "eyJ.eyJ.sig"] {
            assert_eq!(keys.verify(t, Utc::now()), None, "{t}");
        }
    }
}
