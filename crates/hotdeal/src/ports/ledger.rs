//! Points, coupons, idempotency answers and the outbox: the store's second
//! half, kept apart from catalogue and orders so each trait stays readable.
//! Each part is its own trait because a different service holds it: the
//! points service its [`PointsLedger`], the coupon service (and, to read
//! coupons for a discount, the order service) its [`CouponLedger`], the
//! idempotency keys their [`IdempotencyAnswers`], the event relay the
//! [`Outbox`]. Both stores implement all four; [`Ledger`] is all of them.

use super::events::{EventSink, SinkError};
use super::store::{IdempotencyWrite, StoreResult};
use crate::model::{Coupon, IdempotentAnswer, Page, Paged, PointAccount, PointEntry, UserCoupon};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hotdeal_domain::UserId;
use uuid::Uuid;

/// A charge as answered: `{charge_id, amount, balance}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charge {
    pub charge_id: Uuid,
    pub amount: i64,
    pub balance: i64,
}

/// An admitted coupon issue on its way to the store.
#[derive(Debug, Clone)]
pub struct IssueWrite {
    pub user_coupon: UserCoupon,
}

/// Outcome of recording an issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issued {
    Issued,
    AlreadyIssued,
    SoldOut,
    /// The issue's reservation was aborted by the reconciler before the
    /// write reached the store: nothing written.
    Aborted,
}

/// An event waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub seq: i64,
    pub topic: String,
    pub payload: String,
}

/// The whole ledger, as an adapter implements it and the wiring opens it.
pub trait Ledger: PointsLedger + CouponLedger + IdempotencyAnswers + Outbox {}

impl<T> Ledger for T where T: PointsLedger + CouponLedger + IdempotencyAnswers + Outbox {}

/// Point balances, charges and their history (the point context).
#[async_trait]
pub trait PointsLedger: Send + Sync + 'static {
    async fn point_account(&self, user: UserId) -> StoreResult<Option<PointAccount>>;
    /// Adds `amount` points, with a history row, in one transaction.
    async fn charge(
        &self,
        user: UserId,
        amount: i64,
        now: DateTime<Utc>,
        idempotency: Option<&IdempotencyWrite<'_, Charge>>,
    ) -> StoreResult<Charge>;
    async fn point_history(&self, user: UserId, page: Page) -> StoreResult<Paged<PointEntry>>;
}

/// Coupon definitions and the users' copies (the coupon context; orders
/// read them to apply a discount).
#[async_trait]
pub trait CouponLedger: Send + Sync + 'static {
    async fn insert_coupon(&self, coupon: &Coupon) -> StoreResult<()>;
    async fn coupons(&self) -> StoreResult<Vec<Coupon>>;
    /// One coupon's definition (a cache miss reads through to it).
    async fn coupon(&self, id: Uuid) -> StoreResult<Option<Coupon>>;
    /// Who holds which coupon, used or not (to load the admission tier).
    async fn coupon_holders(&self) -> StoreResult<Vec<(Uuid, UserId, bool)>>;
    /// A coupon's total and holders, to seed a shared tier that lacks it.
    async fn coupon_seed(&self, _coupon: Uuid) -> StoreResult<Option<(i64, Vec<UserId>)>> {
        Err(super::store::no_shared_tier())
    }
    /// Records admitted issues; one answer per issue, in order. An issue
    /// records its user-coupon id in the reservation fence first (see
    /// [`crate::ports::ReservationFence::abort_reservations`]).
    async fn issue_coupons(&self, batch: &[IssueWrite]) -> Vec<StoreResult<Issued>>;
    async fn user_coupons(&self, user: UserId, page: Page) -> StoreResult<Paged<UserCoupon>>;
    async fn user_coupon(&self, coupon: Uuid, user: UserId) -> StoreResult<Option<UserCoupon>>;
    /// A user coupon by its own id (the id `GET /users/me/coupons` shows).
    async fn user_coupon_by_id(&self, id: Uuid) -> StoreResult<Option<UserCoupon>>;
}

/// Stored answers of idempotency keys. Written by the store in the same
/// transaction as the change they answer; read before a keyed request runs.
#[async_trait]
pub trait IdempotencyAnswers: Send + Sync + 'static {
    async fn idempotent_answer(
        &self,
        user: UserId,
        key: &str,
    ) -> StoreResult<Option<IdempotentAnswer>>;
    /// Forgets answers stored before `before`.
    async fn prune_idempotency(&self, before: DateTime<Utc>) -> StoreResult<u64>;
}

/// Committed events waiting to be published, read by the event relay.
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    async fn unpublished(&self, limit: i64) -> StoreResult<Vec<OutboxEntry>>;
    async fn mark_published(&self, up_to: i64, now: DateTime<Utc>) -> StoreResult<()>;
    /// Deletes events published before `before`; with `unread`, also
    /// unpublished events created before it.
    async fn prune_outbox(&self, before: DateTime<Utc>, unread: bool) -> StoreResult<u64>;

    /// Hands up to `limit` unpublished events, oldest first, to `sink` and
    /// marks the ones it acknowledged as published at `now`. Answers how
    /// many were, and why the sink stopped short, if it did: the rest stay
    /// unpublished for the next round.
    ///
    /// This default suits a store with one writer (SQLite), where sequence
    /// order is commit order and one process relays. A store shared by
    /// several instances claims the rows instead, so two relays never
    /// publish the same row at once.
    async fn relay_outbox(
        &self,
        limit: i64,
        sink: &dyn EventSink,
        now: DateTime<Utc>,
    ) -> StoreResult<(usize, Option<SinkError>)> {
        let entries = self.unpublished(limit).await?;
        if entries.is_empty() {
            return Ok((0, None));
        }
        let (acked, failed) = sink.publish(&entries).await;
        if let Some(last) = acked.checked_sub(1).and_then(|i| entries.get(i)) {
            self.mark_published(last.seq, now).await?;
        }
        Ok((acked, failed))
    }
}
