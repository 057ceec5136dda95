//! `/coupons/*` and `/users/me/coupons`: first-come-first-served coupons.

use super::dto::{page_of, CouponIn, CouponOut, ListOf, PageQuery, UserCouponOut};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{AuthUser, JsonBody, PathId, QueryMap};
use super::Ctx;
use crate::services::Coupons;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use uuid::Uuid;

/// Create a coupon.
#[utoipa::path(post, path = "/coupons", tag = "coupons", request_body = CouponIn,
    security(("bearer" = [])),
    responses(
        (status = 201, body = CouponOut, description = "Created"),
        (status = 401, body = ErrorBody, description = "UNAUTHORIZED / INVALID_TOKEN"),
        (status = 422, body = ErrorBody, description = "VALIDATION_ERROR"),
    ))]
pub async fn create(
    State(app): State<Ctx<Coupons>>,
    AuthUser(user): AuthUser,
    JsonBody(body): JsonBody<CouponIn>,
) -> ApiResult<(StatusCode, Json<CouponOut>)> {
    let c = body.parse().map_err(ApiError::validation)?;
    Ok((
        StatusCode::CREATED,
        Json(app.create_coupon(user, c).await?.into()),
    ))
}

/// One coupon with its live counts.
#[utoipa::path(get, path = "/coupons/{coupon_id}", tag = "coupons",
    params(("coupon_id" = String, Path)),
    responses(
        (status = 200, body = CouponOut, description = "The coupon"),
        (status = 404, body = ErrorBody, description = "NOT_FOUND"),
    ))]
pub async fn get(
    State(app): State<Ctx<Coupons>>,
    PathId(id): PathId<Uuid>,
) -> ApiResult<Json<CouponOut>> {
    Ok(Json(app.coupon(id).await?.into()))
}

/// Claim one coupon: first come, first served, one per user.
#[utoipa::path(post, path = "/coupons/{coupon_id}/issue", tag = "coupons",
    params(("coupon_id" = String, Path)), security(("bearer" = [])),
    responses(
        (status = 201, body = UserCouponOut, description = "Issued"),
        (status = 400, body = ErrorBody, description = "COUPON_NOT_ACTIVE: outside the coupon's window"),
        (status = 401, body = ErrorBody, description = "UNAUTHORIZED / INVALID_TOKEN"),
        (status = 404, body = ErrorBody, description = "NOT_FOUND"),
        (status = 409, body = ErrorBody, description = "COUPON_ALREADY_ISSUED / COUPON_SOLD_OUT"),
        (status = 503, body = ErrorBody, description = "OVERLOADED"),
    ))]
pub async fn issue(
    State(app): State<Ctx<Coupons>>,
    AuthUser(user): AuthUser,
    PathId(id): PathId<Uuid>,
) -> ApiResult<(StatusCode, Json<UserCouponOut>)> {
    let issued = app.issue_coupon(user, id).await?;
    Ok((StatusCode::CREATED, Json(issued.into())))
}

/// The caller's coupons, newest first.
#[utoipa::path(get, path = "/users/me/coupons", tag = "coupons", security(("bearer" = [])),
    params(
        PageQuery,
    ),
    responses(
        (status = 200, body = ListOf<UserCouponOut>, description = "A page of coupons"),
        (status = 401, body = ErrorBody, description = "UNAUTHORIZED / INVALID_TOKEN"),
    ))]
pub async fn mine(
    State(app): State<Ctx<Coupons>>,
    AuthUser(user): AuthUser,
    QueryMap(q): QueryMap,
) -> ApiResult<Json<ListOf<UserCouponOut>>> {
    let page = page_of(&q).map_err(ApiError::validation)?;
    Ok(Json(ListOf::from_paged(
        app.coupons_of(user, page).await?,
        UserCouponOut::from,
    )))
}
