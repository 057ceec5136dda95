//! What can go wrong in a use case, in the contract's vocabulary. Each
//! refusal carries what it is about as typed fields, so every transport
//! (the HTTP body's `details`, a gRPC status) renders it its own way.

use crate::ports::{HashError, StoreError};
use hotdeal_domain::{DealId, DealStatus, FieldErrors, StockKey};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid fields")]
    Validation(FieldErrors),
    #[error("missing or non-bearer authorization")]
    Unauthorized,
    #[error("invalid or expired token")]
    InvalidToken,
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("email already registered")]
    EmailExists,
    #[error("not allowed")]
    Forbidden,
    #[error("not found")]
    NotFound,
    #[error("product not found")]
    ProductNotFound,
    #[error("deal not found")]
    DealNotFound,
    #[error("deal is not active")]
    DealNotActive { deal: DealId, status: DealStatus },
    /// `key` has only `available` of the `requested` units.
    #[error("insufficient stock")]
    InsufficientStock {
        key: StockKey,
        requested: i64,
        available: i64,
    },
    /// The buyer holds `held` units of a deal limited to `limit` each.
    #[error("purchase limit exceeded")]
    PurchaseLimitExceeded { deal: DealId, limit: i64, held: i64 },
    #[error("invalid state: {0}")]
    InvalidState(String),
    /// The balance is short of what the order costs (`required`, when
    /// the order's total is at hand).
    #[error("not enough points")]
    InsufficientPoints { balance: i64, required: Option<i64> },
    #[error("coupon not usable: {0}")]
    CouponNotUsable(String),
    #[error("the payment window has passed")]
    OrderExpired,
    #[error("coupon already issued to this user")]
    CouponAlreadyIssued,
    #[error("coupon sold out")]
    CouponSoldOut,
    #[error("coupon not active")]
    CouponNotActive,
    #[error("a request with this idempotency key is still running")]
    RequestInProgress,
    #[error("this idempotency key was used for another request")]
    IdempotencyKeyReused,
    /// The store refused the change: its idempotency key has an answer
    /// stored already. The caller reads that answer and replays it
    /// ([`crate::services::Idempotency::answer_after_failure`]).
    #[error("this idempotency key has an answer stored")]
    KeyAnswered,
    #[error("overloaded")]
    Overloaded,
    /// The deal has no waiting room (`POST /deals/{id}/queue`).
    #[error("the deal has no waiting room")]
    NoWaitingRoom,
    /// An order on a waiting-room deal without an admitted token.
    #[error("an admitted queue token is required")]
    QueueRequired { reason: &'static str },
    /// Polled sooner than the last answer's `poll_after_ms`.
    #[error("polled too soon")]
    RateLimited { retry_after_ms: i64 },
    /// The store cannot take writes now; nothing was changed.
    #[error("storage unavailable")]
    StoreUnavailable,
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::EmailExists => Error::EmailExists,
            // A token signed by this server for a user its store lacks.
            StoreError::UnknownUser => Error::InvalidToken,
            // Logged by the store once when it happens, not per request.
            StoreError::Unavailable(_) => Error::StoreUnavailable,
            // Another writer held what this one needed; the client retries.
            StoreError::Conflict(_) => Error::Overloaded,
            StoreError::Backend(inner) => Error::Internal(inner),
        }
    }
}

impl From<HashError> for Error {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Saturated => Error::Overloaded,
            HashError::Failed(msg) => Error::Internal(msg.into()),
        }
    }
}
