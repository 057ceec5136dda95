//! `/orders/*`: place, list, read and cancel orders.

use super::dto::{
    page_of, CancelIn, ListOf, OrderIn, OrderOut, OrderStatusName, PageQuery, PaymentIn,
};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{idempotency_key, AuthUser, JsonWithRaw, OptionalJsonBody, PathId, QueryMap};
use super::idempotent::{after_failure, begin, begin_order, Proceed};
use super::Ctx;
use crate::model::Order;
use crate::services::Ordering;
use crate::services::RenderOrder;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hotdeal_domain::Validator;
use hotdeal_domain::{OrderId, OrderStatus};

fn render_order(o: &Order) -> Vec<u8> {
    serde_json::to_vec(&OrderOut::from(o.clone())).unwrap_or_default()
}

/// Place an order. Prices are the server's; all lines succeed or none.
/// Accepts an `Idempotency-Key`. Lines on a waiting-room deal need the
/// caller's admitted `Queue-Token` for that deal; it is spent when the
/// order is placed (a refused order does not spend it).
#[utoipa::path(post, path = "/orders", tag = "orders", request_body = OrderIn,
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = r"^[!-~]([ -~]*[!-~])?$", description = "1..255 printable ASCII characters; a repeat with the same body returns the first answer"),
        ("Queue-Token" = Option<String>, Header, description = "An admitted token from `POST /deals/{deal_id}/queue`, for orders on a waiting-room deal")),
    responses(
        (status = 201, body = OrderOut, description = "Placed: `status: confirmed`; `payment_status: paid` with `payment`, else `unpaid`"),
        (status = 400, body = ErrorBody, description = "BAD_REQUEST / INSUFFICIENT_STOCK / DEAL_NOT_ACTIVE / COUPON_NOT_USABLE / INSUFFICIENT_POINTS"),
        (status = 401, body = ErrorBody, description = "UNAUTHORIZED / INVALID_TOKEN"),
        (status = 404, body = ErrorBody, description = "PRODUCT_NOT_FOUND / DEAL_NOT_FOUND"),
        (status = 409, body = ErrorBody, description = "PURCHASE_LIMIT_EXCEEDED (the deal's per-user limit) / REQUEST_IN_PROGRESS"),
        (status = 422, body = ErrorBody, description = "VALIDATION_ERROR / IDEMPOTENCY_KEY_REUSED"),
        (status = 428, body = ErrorBody, description = "QUEUE_REQUIRED: a line is on a waiting-room deal and `Queue-Token` is missing, not admitted (waiting or expired), or of another user or deal"),
        (status = 503, body = ErrorBody, description = "OVERLOADED; see Retry-After"),
    ))]
pub async fn place(
    State(app): State<Ctx<Ordering>>,
    AuthUser(user): AuthUser,
    headers: HeaderMap,
    JsonWithRaw(body, raw): JsonWithRaw<OrderIn>,
) -> ApiResult<Response> {
    let req = body.parse().map_err(ApiError::validation)?;
    let key = idempotency_key(&headers, "POST /orders", &raw)?;
    let guard = match begin_order(&app, user, key.as_ref()).await? {
        Proceed::Answer(res) => return Ok(res),
        Proceed::Run(guard) => guard,
    };
    let render: RenderOrder = render_order;
    let queue_token = headers
        .get(super::queue::QUEUE_TOKEN_HEADER)
        .map(|v| v.to_str().unwrap_or_default());
    let placed = app
        .place_queued_order(user, req, key.as_ref().map(|k| (k, render)), queue_token)
        .await;
    let (order, answer) = match placed {
        Ok(placed) => placed,
        // The key may have been answered before (a repeat): that answer,
        // not this failure, is the reply.
        Err(e) => return after_failure(&app, key.as_ref(), guard.as_ref(), e).await,
    };
    // With a key, the answer was rendered once already (it is stored).
    Ok(match answer {
        Some(body) => (
            StatusCode::CREATED,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        None => (StatusCode::CREATED, Json(OrderOut::from(order))).into_response(),
    })
}

/// Pay an unpaid order from the points balance. Accepts an
/// `Idempotency-Key`.
#[utoipa::path(post, path = "/orders/{order_id}/payments", tag = "orders",
    params(("order_id" = String, Path),
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = r"^[!-~]([ -~]*[!-~])?$", description = "1..255 printable ASCII characters; a repeat with the same body returns the first answer")),
    request_body = PaymentIn, security(("bearer" = [])),
    responses(
        (status = 200, body = OrderOut, description = "`payment_status: paid`"),
        (status = 400, body = ErrorBody, description = "INSUFFICIENT_POINTS / INVALID_STATE (already paid, cancelled, shipped)"),
        (status = 401, body = ErrorBody, description = "UNAUTHORIZED / INVALID_TOKEN"),
        (status = 403, body = ErrorBody, description = "FORBIDDEN"),
        (status = 404, body = ErrorBody, description = "NOT_FOUND"),
        (status = 409, body = ErrorBody, description = "ORDER_EXPIRED: the payment window passed / REQUEST_IN_PROGRESS"),
        (status = 422, body = ErrorBody, description = "VALIDATION_ERROR / IDEMPOTENCY_KEY_REUSED"),
    ))]
pub async fn pay(
    State(app): State<Ctx<Ordering>>,
    AuthUser(user): AuthUser,
    PathId(order_id): PathId<OrderId>,
    headers: HeaderMap,
    JsonWithRaw(body, raw): JsonWithRaw<PaymentIn>,
) -> ApiResult<Response> {
    let mut v = Validator::new();
    body.check(&mut v, "method");
    v.finish().map_err(ApiError::validation)?;
    let key = idempotency_key(&headers, &format!("POST /orders/{order_id}/payments"), &raw)?;
    let _guard = match begin(&app, user, key.as_ref()).await? {
        Proceed::Answer(res) => return Ok(res),
        Proceed::Run(guard) => guard,
    };
    let render: RenderOrder = render_order;
    let order = app
        .pay_order(user, order_id, key.as_ref().map(|k| (k, render)))
        .await?;
    Ok(Json(OrderOut::from(order)).into_response())
}

/// The caller's orders, newest first.
#[utoipa::path(get, path = "/orders", tag = "orders", security(("bearer" = [])),
    params(
        PageQuery,
        ("status" = Option<OrderStatusName>, Query, description = "only orders in this status"),
    ),
    responses(
        (status = 200, body = ListOf<OrderOut>, description = "A page of orders"),
        (status = 401, body = ErrorBody, description = "UNAUTHORIZED / INVALID_TOKEN"),
        (status = 422, body = ErrorBody, description = "VALIDATION_ERROR"),
    ))]
pub async fn list(
    State(app): State<Ctx<Ordering>>,
    AuthUser(user): AuthUser,
    QueryMap(q): QueryMap,
) -> ApiResult<Json<ListOf<OrderOut>>> {
    let page = page_of(&q);
    let status = q.get("status").map(|s| OrderStatus::parse(s).ok_or(s));
    let (page, status) = match (page, status) {
        (Ok(p), None) => (p, None),
        (Ok(p), Some(Ok(s))) => (p, Some(s)),
        (page, status) => {
            let mut fields = page.err().unwrap_or_default();
            if let Some(Err(_)) = status {
                fields.insert(
                    "status".into(),
                    "must be pending, confirmed, shipped, delivered or cancelled".into(),
                );
            }
            return Err(ApiError::validation(fields));
        }
    };
    let orders = app.orders_of(user, status, page).await?;
    Ok(Json(ListOf::from_paged(orders, OrderOut::from)))
}

/// One of the caller's orders.
#[utoipa::path(get, path = "/orders/{order_id}", tag = "orders",
    params(("order_id" = String, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = OrderOut, description = "The order"),
        (status = 401, body = ErrorBody, description = "UNAUTHORIZED / INVALID_TOKEN"),
        (status = 403, body = ErrorBody, description = "FORBIDDEN: someone else's order"),
        (status = 404, body = ErrorBody, description = "NOT_FOUND"),
    ))]
pub async fn get(
    State(app): State<Ctx<Ordering>>,
    AuthUser(user): AuthUser,
    PathId(id): PathId<OrderId>,
) -> ApiResult<Json<OrderOut>> {
    Ok(Json(app.order_of(user, id).await?.into()))
}

/// Cancel an order; its units go back.
#[utoipa::path(post, path = "/orders/{order_id}/cancel", tag = "orders",
    params(("order_id" = String, Path)), request_body(content = CancelIn, description = "Optional"),
    security(("bearer" = [])),
    responses(
        (status = 200, body = OrderOut, description = "`status: cancelled`, with `cancel_reason` and `cancelled_at`"),
        (status = 400, body = ErrorBody, description = "INVALID_STATE: already cancelled, shipped or delivered"),
        (status = 401, body = ErrorBody, description = "UNAUTHORIZED / INVALID_TOKEN"),
        (status = 403, body = ErrorBody, description = "FORBIDDEN"),
        (status = 404, body = ErrorBody, description = "NOT_FOUND"),
        (status = 422, body = ErrorBody, description = "VALIDATION_ERROR: reason longer than 500"),
    ))]
pub async fn cancel(
    State(app): State<Ctx<Ordering>>,
    AuthUser(user): AuthUser,
    PathId(id): PathId<OrderId>,
    OptionalJsonBody(body): OptionalJsonBody<CancelIn>,
) -> ApiResult<Json<OrderOut>> {
    let reason = body.parse().map_err(ApiError::validation)?;
    Ok(Json(app.cancel_order(user, id, reason).await?.into()))
}
