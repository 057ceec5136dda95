//! Request extractors that answer bad input in the contract's words:
//! not JSON → 400 `BAD_REQUEST`; JSON that breaks a field rule → 422
//! `VALIDATION_ERROR` naming the field; no bearer → 401 `UNAUTHORIZED`;
//! a bad token → 401 `INVALID_TOKEN`; a path id that is not a UUID → 404.

use super::error::ApiError;
use super::Ctx;
use crate::services::Error;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use hotdeal_domain::{DealId, FieldErrors, OrderId, ProductId, UserId};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use uuid::Uuid;

/// A JSON body of type `T`.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        read_json(req, state)
            .await
            .map(|(value, _)| JsonBody(value))
    }
}

/// A JSON body of type `T` and its raw bytes (for idempotency hashes).
pub struct JsonWithRaw<T>(pub T, pub Bytes);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonWithRaw<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        read_json(req, state)
            .await
            .map(|(value, raw)| JsonWithRaw(value, raw))
    }
}

async fn read_json<T: DeserializeOwned, S: Send + Sync>(
    req: Request,
    state: &S,
) -> Result<(T, Bytes), ApiError> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json" || mime.ends_with("+json")
        })
        .unwrap_or(false);
    if !is_json {
        return Err(ApiError::bad_request(
            "Content-Type must be application/json",
        ));
    }
    let bytes = Bytes::from_request(req, state)
        .await
        .map_err(body_rejection)?;
    let value = parse_json(&bytes)?;
    Ok((value, bytes))
}

/// 413 `PAYLOAD_TOO_LARGE`.
pub fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
        "the body is too large",
    )
}

fn body_rejection(r: BytesRejection) -> ApiError {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large()
    } else {
        ApiError::bad_request("the body could not be read")
    }
}

/// Parses `bytes` as `T`, telling syntax errors (400) from field errors (422).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Every body of this API is an object. serde would read a struct from
    // an array positionally, so other shapes are refused up front.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err() {
            return Err(ApiError::bad_request("the body is not valid JSON"));
        }
        let mut fields = FieldErrors::new();
        fields.insert("body".into(), "must be a JSON object".into());
        return Err(ApiError::validation(fields));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let inner = e.inner();
        // A field error can surface before a later syntax error (`[1,`), so
        // a body only earns a 422 once it is known to be valid JSON.
        let well_formed = || serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok();
        match inner.classify() {
            serde_json::error::Category::Data if well_formed() => {
                let mut fields = FieldErrors::new();
                fields.insert(field_of(&e), data_message(inner));
                ApiError::validation(fields)
            }
            _ => ApiError::bad_request(format!("the body is not valid JSON: {inner}")),
        }
    })?;
    // One value and nothing after it: `{"amount":5}{"amount":9}` is not a
    // body of this API, whichever object a reader would take.
    de.end()
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

/// The dotted path of the offending field. serde reports a missing field
/// at its parent, with the name only in the message.
fn field_of(e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let parent = e.path().to_string();
    let msg = e.inner().to_string();
    let named = msg
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    match (parent.as_str(), named) {
        (".", Some(name)) => name.to_owned(),
        (_, Some(name)) => format!("{parent}.{name}"),
        (".", None) => "body".to_owned(),
        (_, None) => parent,
    }
}

/// serde's message without the " at line 1 column 9" suffix.
fn data_message(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg,
    }
}

/// The query string as a map; lists parse their known keys from it so a
/// bad value is a 422 naming the key.
pub struct QueryMap(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryMap {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|q| QueryMap(q.0))
            .map_err(|_| ApiError::bad_request("the query string is malformed"))
    }
}

/// The signed-in user, from `Authorization: Bearer <access_token>`.
pub struct AuthUser(pub UserId);

impl<T: Send + Sync> FromRequestParts<Ctx<T>> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Ctx<T>,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or(Error::Unauthorized)?;
        Ok(AuthUser(state.auth.authenticate(token)?))
    }
}

/// A typed id from the path. Anything that is not one — not a UUID, or a
/// segment whose percent-encoding does not decode to UTF-8 (`%FF`) — is
/// answered like an unknown id: 404 `NOT_FOUND`.
pub struct PathId<T>(pub T);

/// An id type that can come from a path segment.
pub trait ParsePathId: Sized {
    fn parse_path_id(s: &str) -> Option<Self>;
}

macro_rules! path_ids {
    ($($t:ty),*) => {$(
        impl ParsePathId for $t {
            fn parse_path_id(s: &str) -> Option<Self> {
                <$t>::parse(s)
            }
        }
    )*};
}
path_ids!(ProductId, DealId, OrderId);

impl ParsePathId for Uuid {
    fn parse_path_id(s: &str) -> Option<Self> {
        Uuid::try_parse(s).ok()
    }
}

impl<T: ParsePathId, S: Send + Sync> FromRequestParts<S> for PathId<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| match rejection {
                // The route has no parameter: a wiring mistake, not the
                // client's.
                PathRejection::MissingPathParams(e) => Error::Internal(Box::new(e)).into(),
                _ => ApiError::not_found(),
            })?;
        T::parse_path_id(&raw)
            .map(PathId)
            .ok_or_else(ApiError::not_found)
    }
}

/// A JSON body that may be left out entirely (no body at all means
/// `T::default()`); a body that is present must be valid JSON.
pub struct OptionalJsonBody<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let has_type = req.headers().contains_key(header::CONTENT_TYPE);
        if has_type {
            return JsonBody::from_request(req, state)
                .await
                .map(|b| OptionalJsonBody(b.0));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            Ok(OptionalJsonBody(T::default()))
        } else {
            Err(ApiError::bad_request(
                "Content-Type must be application/json",
            ))
        }
    }
}

/// Reads an `Idempotency-Key` header: 1..255 printable ASCII characters.
/// The key comes with a hash of what the request asks (`what` names the
/// route and id, `body` its bytes), so a reuse for another request is seen.
pub fn idempotency_key(
    headers: &axum::http::HeaderMap,
    what: &str,
    body: &[u8],
) -> Result<Option<crate::services::IdempotencyKey>, ApiError> {
    use sha2::{Digest, Sha256};
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| (0x20..=0x7e).contains(&b)));
    let Some(key) = key else {
        let mut fields = FieldErrors::new();
        fields.insert(
            "Idempotency-Key".into(),
            "must be 1..255 printable characters".into(),
        );
        return Err(ApiError::validation(fields));
    };
    let mut hash = Sha256::new();
    hash.update(what.as_bytes());
    hash.update([0]);
    hash.update(body);
    Ok(Some(crate::services::IdempotencyKey {
        key: key.to_owned(),
        request_hash: hash.finalize().into(),
    }))
}
