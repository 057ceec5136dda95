//! `/points/*`: balance, charges, history.

use super::dto::{page_of, ChargeIn, ChargeOut, ListOf, PageQuery, PointEntryOut, PointsOut};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{idempotency_key, AuthUser, JsonWithRaw, QueryMap};
use super::idempotent::{begin, Proceed};
use super::Ctx;
use crate::ports::Charge;
use crate::services::Points;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

/// The caller's balance.
#[utoipa::path(get, path = "/points", tag = "points", security(("bearer" = [])),
    responses(
        (status = 200, body = PointsOut, description = "The balance (0 before any charge)"),
        (status = 401, body = ErrorBody, description = "UNAUTHORIZED / INVALID_TOKEN"),
    ))]
pub async fn balance(
    State(app): State<Ctx<Points>>,
    AuthUser(user): AuthUser,
) -> ApiResult<Json<PointsOut>> {
    Ok(Json(app.points(user).await?.into()))
}

fn render_charge(c: &Charge) -> Vec<u8> {
    serde_json::to_vec(&ChargeOut::from(c)).unwrap_or_default()
}

/// Add points. Accepts an `Idempotency-Key`.
#[utoipa::path(post, path = "/points/charges", tag = "points", request_body = ChargeIn,
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = r"^[!-~]([ -~]*[!-~])?$", description = "1..255 printable ASCII characters; a repeat with the same body returns the first answer")),
    responses(
        (status = 201, body = ChargeOut, description = "Charged"),
        (status = 401, body = ErrorBody, description = "UNAUTHORIZED / INVALID_TOKEN"),
        (status = 409, body = ErrorBody, description = "REQUEST_IN_PROGRESS"),
        (status = 422, body = ErrorBody, description = "VALIDATION_ERROR (amount not in 1..10000000) / IDEMPOTENCY_KEY_REUSED"),
    ))]
pub async fn charge(
    State(app): State<Ctx<Points>>,
    AuthUser(user): AuthUser,
    headers: HeaderMap,
    JsonWithRaw(body, raw): JsonWithRaw<ChargeIn>,
) -> ApiResult<Response> {
    let amount = body.parse().map_err(ApiError::validation)?;
    let key = idempotency_key(&headers, "POST /points/charges", &raw)?;
    let _guard = match begin(&app, user, key.as_ref()).await? {
        Proceed::Answer(res) => return Ok(res),
        Proceed::Run(guard) => guard,
    };
    let render: crate::services::RenderCharge = render_charge;
    let charge = app
        .charge_points(user, amount, key.as_ref().map(|k| (k, render)))
        .await?;
    Ok((StatusCode::CREATED, Json(ChargeOut::from(&charge))).into_response())
}

/// The caller's point history, newest first.
#[utoipa::path(get, path = "/points/history", tag = "points", security(("bearer" = [])),
    params(
        PageQuery,
    ),
    responses(
        (status = 200, body = ListOf<PointEntryOut>, description = "A page of history"),
        (status = 401, body = ErrorBody, description = "UNAUTHORIZED / INVALID_TOKEN"),
        (status = 422, body = ErrorBody, description = "VALIDATION_ERROR"),
    ))]
pub async fn history(
    State(app): State<Ctx<Points>>,
    AuthUser(user): AuthUser,
    QueryMap(q): QueryMap,
) -> ApiResult<Json<ListOf<PointEntryOut>>> {
    let page = page_of(&q).map_err(ApiError::validation)?;
    Ok(Json(ListOf::from_paged(
        app.point_history(user, page).await?,
        PointEntryOut::from,
    )))
}
