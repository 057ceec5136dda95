//! The HTTP side of idempotency keys: replaying a stored answer.

use super::error::ApiResult;
use super::AppState;
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
pub async fn begin(
    app: &AppState,
    user: UserId,
    key: Option<&IdempotencyKey>,
) -> ApiResult<Proceed> {
    let Some(key) = key else {
        return Ok(Proceed::Run(None));
    };
    Ok(match app.begin_idempotent(user, key).await? {
        Begun::Fresh(guard) => Proceed::Run(Some(guard)),
        Begun::Replay(answer) => {
            let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
            let mut res = (status, answer.body).into_response();
            let headers = res.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
            Proceed::Answer(res)
        }
    })
}
