//! The one place where failures become HTTP answers:
//! `{"error": CODE, "message": text, "details": {...}}`.
//!
//! Internal errors are logged here, once, with their cause chain; the client
//! only ever sees a generic message.

use crate::services::Error;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hotdeal_domain::StockKey;
use serde::Serialize;
use serde_json::{json, Value};

/// Seconds a refused client is told to wait.
pub const RETRY_AFTER_SECS: &str = "1";

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    /// A stable UPPER_SNAKE code, e.g. `INSUFFICIENT_STOCK`.
    #[schema(value_type = String)]
    error: &'a str,
    #[schema(value_type = String)]
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    details: Option<&'a Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such resource")
    }

    pub fn validation(fields: impl Serialize) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            "invalid fields",
        )
        .with_details(serde_json::to_value(fields).unwrap_or(Value::Null))
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        use StatusCode as S;
        match e {
            Error::Validation(fields) => ApiError::validation(fields),
            Error::Unauthorized => ApiError::new(
                S::UNAUTHORIZED,
                "UNAUTHORIZED",
                "a Bearer access token is required",
            ),
            Error::InvalidToken => ApiError::new(
                S::UNAUTHORIZED,
                "INVALID_TOKEN",
                "the token is invalid or expired",
            ),
            Error::InvalidCredentials => ApiError::new(
                S::UNAUTHORIZED,
                "INVALID_CREDENTIALS",
                "email or password is wrong",
            ),
            Error::EmailExists => ApiError::new(
                S::CONFLICT,
                "EMAIL_EXISTS",
                "this email is already registered",
            ),
            Error::Forbidden => ApiError::new(
                S::FORBIDDEN,
                "FORBIDDEN",
                "this resource belongs to someone else",
            ),
            Error::NotFound => ApiError::not_found(),
            Error::ProductNotFound => {
                ApiError::new(S::NOT_FOUND, "PRODUCT_NOT_FOUND", "no such product")
            }
            Error::DealNotFound => ApiError::new(
                S::NOT_FOUND,
                "DEAL_NOT_FOUND",
                "no such deal for this product",
            ),
            Error::DealNotActive { deal, status } => {
                ApiError::new(S::BAD_REQUEST, "DEAL_NOT_ACTIVE", "the deal is not running")
                    .with_details(json!({ "deal_id": deal, "status": status.as_str() }))
            }
            Error::InsufficientStock {
                key,
                requested,
                available,
            } => {
                let mut details = json!({ "requested": requested, "available": available });
                match key {
                    StockKey::Product(p) => details["product_id"] = json!(p),
                    StockKey::Deal(d) => details["deal_id"] = json!(d),
                }
                ApiError::new(S::BAD_REQUEST, "INSUFFICIENT_STOCK", "not enough stock")
                    .with_details(details)
            }
            Error::PurchaseLimitExceeded { deal, limit, held } => ApiError::new(
                S::CONFLICT,
                "PURCHASE_LIMIT_EXCEEDED",
                "the deal's per-user limit would be exceeded",
            )
            .with_details(json!({
                "deal_id": deal, "per_user_limit": limit, "already_bought": held,
            })),
            Error::InvalidState(msg) => ApiError::new(S::BAD_REQUEST, "INVALID_STATE", msg),
            Error::InsufficientPoints { balance, required } => {
                let mut details = json!({ "balance": balance });
                if let Some(required) = required {
                    details["required"] = json!(required);
                }
                ApiError::new(S::BAD_REQUEST, "INSUFFICIENT_POINTS", "not enough points")
                    .with_details(details)
            }
            Error::CouponNotUsable(msg) => ApiError::new(S::BAD_REQUEST, "COUPON_NOT_USABLE", msg),
            Error::OrderExpired => ApiError::new(
                S::CONFLICT,
                "ORDER_EXPIRED",
                "the payment window has passed; the order was cancelled",
            ),
            Error::CouponAlreadyIssued => ApiError::new(
                S::CONFLICT,
                "COUPON_ALREADY_ISSUED",
                "this user already has this coupon",
            ),
            Error::CouponSoldOut => ApiError::new(
                S::CONFLICT,
                "COUPON_SOLD_OUT",
                "no coupon of this kind is left",
            ),
            Error::CouponNotActive => ApiError::new(
                S::BAD_REQUEST,
                "COUPON_NOT_ACTIVE",
                "the coupon is not being issued now",
            ),
            Error::RequestInProgress => ApiError::new(
                S::CONFLICT,
                "REQUEST_IN_PROGRESS",
                "a request with this idempotency key is still running",
            ),
            // Resolved by the handler into a replay; should it get here, a
            // retry finds the stored answer.
            Error::KeyAnswered => ApiError::new(
                S::CONFLICT,
                "REQUEST_IN_PROGRESS",
                "a request with this idempotency key was answered; retry to get its answer",
            ),
            Error::IdempotencyKeyReused => ApiError::new(
                S::UNPROCESSABLE_ENTITY,
                "IDEMPOTENCY_KEY_REUSED",
                "this idempotency key was used for a different request",
            ),
            Error::Overloaded => ApiError::new(
                S::SERVICE_UNAVAILABLE,
                "OVERLOADED",
                "the server is busy; retry shortly",
            ),
            Error::NoWaitingRoom => ApiError::new(
                S::CONFLICT,
                "NO_WAITING_ROOM",
                "this deal has no waiting room; order it directly",
            ),
            Error::QueueRequired { reason } => ApiError::new(
                S::PRECONDITION_REQUIRED,
                "QUEUE_REQUIRED",
                "this deal is behind a waiting room: send an admitted Queue-Token of yours for it",
            )
            .with_details(json!({ "reason": reason })),
            Error::RateLimited { retry_after_ms } => ApiError::new(
                S::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                "polled faster than poll_after_ms; retry after Retry-After seconds",
            )
            .with_details(json!({ "retry_after_ms": retry_after_ms })),
            Error::StoreUnavailable => ApiError::new(
                S::SERVICE_UNAVAILABLE,
                "OVERLOADED",
                "the server cannot record changes right now; nothing was changed, retry shortly",
            ),
            Error::Internal(cause) => {
                tracing::error!(error = %cause, source = ?cause.source(), "internal error");
                ApiError::new(S::INTERNAL_SERVER_ERROR, "INTERNAL", "internal error")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code,
            message: &self.message,
            details: self.details.as_ref(),
        };
        let mut res = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE
            || self.status == StatusCode::TOO_MANY_REQUESTS
        {
            // A limit that knows when it lifts says so (whole seconds,
            // rounded up); others ask for a second.
            let wait = self
                .details
                .as_ref()
                .and_then(|d| d.get("retry_after_ms"))
                .and_then(Value::as_i64)
                .map(|ms| HeaderValue::from(((ms.max(1) + 999) / 1000) as u64));
            res.headers_mut().insert(
                header::RETRY_AFTER,
                wait.unwrap_or(HeaderValue::from_static(RETRY_AFTER_SECS)),
            );
        }
        res
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
