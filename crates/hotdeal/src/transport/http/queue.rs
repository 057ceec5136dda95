//! The waiting room: `POST /deals/{deal_id}/queue` and `GET /queue/{token}`.
//! Orders on a waiting-room deal carry the admitted token in a
//! `Queue-Token` header (`orders::place`).

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{AuthUser, PathId};
use super::Ctx;
use crate::services::Ordering;
use crate::services::QueueView;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use hotdeal_domain::DealId;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// The header that carries a queue token on `POST /orders`.
pub const QUEUE_TOKEN_HEADER: &str = "queue-token";

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum QueueStatus {
    Waiting,
    Admitted,
    Expired,
}

/// A queue token and where it stands.
#[derive(Serialize, ToSchema)]
pub struct QueueOut {
    /// Opaque and signed; bound to its user and deal. Send it as
    /// `Queue-Token` on `POST /orders` once admitted.
    #[schema(pattern = r"^[A-Za-z0-9_-]{48}\.[A-Za-z0-9_-]{22}$")]
    pub token: String,
    pub deal_id: Uuid,
    /// `waiting` until admitted; `expired` once used for an order, past
    /// `admitted_until`, replaced by a newer join, or when the deal ended.
    #[schema(value_type = QueueStatus)]
    pub status: &'static str,
    /// 1-based place among the users not admitted yet; 0 once admitted or
    /// expired. Before the deal opens, the number of users who joined early
    /// (their places are drawn at the opening: this is the worst place).
    #[schema(minimum = 0)]
    pub position: u64,
    /// Seconds until admission at the admission rate measured over the
    /// last seconds (before the opening: until the opening, plus the
    /// expected wait after the draw); 0 once admitted or expired.
    #[schema(minimum = 0)]
    pub estimated_wait_s: u64,
    /// Wait at least this long before `GET /queue/{token}` again: a sooner
    /// poll answers 429 `RATE_LIMITED`.
    #[schema(minimum = 0)]
    pub poll_after_ms: u64,
    /// Until when an admitted token may be used for one order; null while
    /// waiting (and for a token that was used).
    pub admitted_until: Option<DateTime<Utc>>,
}

impl From<QueueView> for QueueOut {
    fn from(v: QueueView) -> Self {
        Self {
            token: v.token,
            deal_id: v.deal_id.0,
            status: v.status,
            position: v.position,
            estimated_wait_s: v.estimated_wait_s,
            poll_after_ms: v.poll_after_ms,
            admitted_until: v.admitted_until,
        }
    }
}

/// Join a deal's waiting room (or get your live token for it again).
/// Users who join before the deal opens are shuffled once at the opening;
/// after that, admission follows join order.
#[utoipa::path(post, path = "/deals/{deal_id}/queue", tag = "waiting room",
    params(("deal_id" = String, Path)),
    security(("bearer" = [])),
    responses(
        (status = 200, body = QueueOut, description = "Your token: a new one, or the live one you already hold for this deal"),
        (status = 400, body = ErrorBody, description = "DEAL_NOT_ACTIVE: the deal has ended"),
        (status = 401, body = ErrorBody, description = "UNAUTHORIZED / INVALID_TOKEN"),
        (status = 404, body = ErrorBody, description = "DEAL_NOT_FOUND"),
        (status = 409, body = ErrorBody, description = "NO_WAITING_ROOM: the deal takes orders without a queue"),
        (status = 503, body = ErrorBody, description = "OVERLOADED (also when the waiting rooms are full); see Retry-After"),
    ))]
pub async fn join(
    State(app): State<Ctx<Ordering>>,
    AuthUser(user): AuthUser,
    PathId(deal): PathId<DealId>,
) -> ApiResult<Json<QueueOut>> {
    Ok(Json(app.join_queue(user, deal).await?.into()))
}

/// Where your queue token stands. Poll no faster than the last answer's
/// `poll_after_ms`.
#[utoipa::path(get, path = "/queue/{token}", tag = "waiting room",
    params(("token" = String, Path, description = "A token from `POST /deals/{deal_id}/queue`")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = QueueOut, description = "The token's standing; `position` 0 once admitted"),
        (status = 401, body = ErrorBody, description = "UNAUTHORIZED / INVALID_TOKEN"),
        (status = 403, body = ErrorBody, description = "FORBIDDEN: the token is another user's"),
        (status = 404, body = ErrorBody, description = "NOT_FOUND: not a token of this server"),
        (status = 429, body = ErrorBody, description = "RATE_LIMITED: polled faster than `poll_after_ms`; `details.retry_after_ms`",
            headers(("Retry-After" = u64, description = "Seconds to wait before polling again"))),
        (status = 503, body = ErrorBody, description = "OVERLOADED: the queue cannot be read right now; see Retry-After"),
    ))]
pub async fn status(
    State(app): State<Ctx<Ordering>>,
    AuthUser(user): AuthUser,
    token: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<QueueOut>> {
    // A segment that does not decode answers like an unknown token.
    let Path(token) = token.map_err(|_| ApiError::not_found())?;
    Ok(Json(app.queue_status(user, &token).await?.into()))
}
