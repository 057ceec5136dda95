//! The HTTP side of idempotency keys: replaying a stored answer.

use super::error::ApiResult;
use super::Ctx;
use crate::model::IdempotentAnswer;
use crate::services::{Begun, IdempotencyKey, InFlightGuard};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hotdeal_domain::UserId;

/// What to do with a keyed request.
pub enum Proceed {
    /// Run it; hold the guard until answered.
    Run(Option<InFlightGuard>),
    /// Answer this (a replay).
    Answer(Response),
}

/// Checks the key, if any: a replay answers at once.
pub async fn begin<T>(
    app: &Ctx<T>,
    user: UserId,
    key: Option<&IdempotencyKey>,
) -> ApiResult<Proceed> {
    let Some(key) = key else {
        return Ok(Proceed::Run(None));
    };
    Ok(proceed(app.idempotency.begin_idempotent(user, key).await?))
}

/// As [`begin`], for `POST /orders`: the key may be looked up only if the
/// order fails ([`after_failure`]).
pub async fn begin_order<T>(
    app: &Ctx<T>,
    user: UserId,
    key: Option<&IdempotencyKey>,
) -> ApiResult<Proceed> {
    let Some(key) = key else {
        return Ok(Proceed::Run(None));
    };
    Ok(proceed(
        app.idempotency.begin_idempotent_order(user, key).await?,
    ))
}

fn proceed(begun: Begun) -> Proceed {
    match begun {
        Begun::Fresh(guard) => Proceed::Run(Some(guard)),
        Begun::Replay(answer) => Proceed::Answer(replay(answer)),
    }
}

/// A keyed request failed with `error`: the replay of its stored answer
/// if the key turns out to have one, else the error (or 422 for a key
/// answered for another request).
pub async fn after_failure<T>(
    app: &Ctx<T>,
    key: Option<&IdempotencyKey>,
    guard: Option<&InFlightGuard>,
    error: crate::services::Error,
) -> ApiResult<Response> {
    let (Some(key), Some(guard)) = (key, guard) else {
        return Err(error.into());
    };
    Ok(replay(
        app.idempotency
            .answer_after_failure(key, guard, error)
            .await?,
    ))
}

/// The stored answer, sent again.
fn replay(answer: IdempotentAnswer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut res = (status, answer.body).into_response();
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    res
}
