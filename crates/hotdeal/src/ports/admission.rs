//! The admission tier: counters of available units per stock key, of units
//! each user holds of a limited deal, and of who holds which coupon. Every
//! order and coupon issue is admitted here before any database work, so a
//! sold-out or over-limit request is refused in microseconds, and only
//! admitted writes reach the store's writer.
//!
//! What a write takes is a **reservation** under the write's own id (the
//! order id, the user-coupon id): held until the store decides, then
//! settled with a [`Verdict`]. In one process (the memory adapter) that is
//! exact by itself. Shared by several instances (Redis), an instance may
//! die between holding and settling: each reservation carries a deadline,
//! and the reconciler asks the store's fence which side won (the commit or
//! the abort, exactly one) and settles it. Increases (a cancel, an expiry,
//! a deal's unsold units, a restock) are applied from committed events,
//! each once, named by the event. The store's conditional updates remain a
//! second line of defence, never the first.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hotdeal_domain::{DealId, StockKey, UserId};
use std::collections::BTreeMap;
use uuid::Uuid;

/// A deal line's claim against the deal's per-user limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitClaim {
    pub deal: DealId,
    pub units: i64,
    pub limit: i64,
}

/// What one write holds in the tier until it is settled.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Hold {
    /// The write's own id; the store's fence decides by it.
    pub id: Uuid,
    pub user: UserId,
    pub taken: Vec<(StockKey, i64)>,
    /// Units counted against limited deals' per-user limits.
    pub claimed: Vec<(DealId, i64)>,
}

/// How a held write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Committed: the units stay taken; forget the reservation.
    Commit,
    /// Not written: give everything back.
    Abort,
    /// Not written because the store had fewer units of `key` than the tier
    /// counted (the tier over-counted, e.g. rebuilt while writes were in
    /// flight): the units of `key` stay taken, which brings the tier back
    /// down to the store; everything else goes back.
    Overcounted(StockKey),
}

/// Why the tier refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `key` has only `available` units.
    Stock {
        key: StockKey,
        requested: i64,
        available: i64,
    },
    /// The user already holds `held` units of a deal limited to `limit`.
    Limit { deal: DealId, limit: i64, held: i64 },
    /// The tier cannot decide now (unreachable, or rebuilding after it lost
    /// its data): nothing was taken; retry shortly.
    Unavailable,
    /// A shared tier has no count for `key` (never seeded, or lost with the
    /// tier's data): nothing was taken; seed it from the store and retry.
    Unseeded(StockKey),
}

/// Units a committed change gives back to one stock key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Increase {
    pub key: StockKey,
    pub units: i64,
    /// A cancelled order of a limited deal: the buyer's count goes down too.
    pub unclaim: Option<(UserId, i64)>,
}

#[async_trait]
pub trait StockAdmission: Send + Sync + 'static {
    /// Starts tracking `key` with `units` available and the per-user
    /// holdings of a deal, unless it is tracked already: a count another
    /// instance has been selling from is never overwritten.
    async fn open(&self, key: StockKey, units: i64, held: &[(UserId, i64)]) -> Result<(), Refused>;

    /// Stops tracking `key` (a deal that gave its units back).
    async fn close(&self, key: StockKey);

    /// Takes every demand and limit claim of `user` under reservation `id`,
    /// or nothing. Keys the tier does not track are left to the store.
    async fn hold(
        &self,
        id: Uuid,
        user: UserId,
        demand: &BTreeMap<StockKey, i64>,
        limits: &[LimitClaim],
    ) -> Result<Hold, Refused>;

    /// Settles held writes (failures leave a reservation to the
    /// reconciler).
    async fn settle(&self, done: Vec<(Hold, Verdict)>);

    /// Adds what a committed change gave back, once per `event`: a second
    /// call with the same event (the request's shortcut, then the relay of
    /// the committed event) changes nothing. Ignored for untracked keys.
    async fn give_back(&self, event: &str, increases: &[Increase]) -> Result<(), Refused>;

    /// Reservations whose deadline passed by `now`, for the reconciler
    /// (at most `limit`). A tier of one process has none.
    async fn overdue(&self, _now: DateTime<Utc>, _limit: usize) -> Result<Vec<Hold>, Refused> {
        Ok(Vec::new())
    }

    /// For each of `keys` the tier tracks: its units and the units held by
    /// reservations not settled yet, read together, to compare with the
    /// store (units + reserved = the store's count, when nothing is in
    /// flight). A tier of one process is exact by construction and answers
    /// nothing.
    async fn audit(&self, _keys: &[StockKey]) -> Result<Vec<(StockKey, i64, i64)>, Refused> {
        Ok(Vec::new())
    }

    /// The units available now and when they last changed, if tracked.
    /// A shared tier may answer from a copy up to its read bound old.
    fn available(&self, key: StockKey) -> Option<(i64, DateTime<Utc>)>;

    /// A number that changes whenever any count changes (for caches).
    fn version(&self) -> u64;
}

/// Why a coupon issue was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CouponRefused {
    AlreadyIssued,
    SoldOut,
    /// The tier cannot decide now; nothing was taken.
    Unavailable,
    /// A shared tier has no count for the coupon: seed it and retry.
    Unseeded,
}

/// One user's claim on one coupon, held under the user-coupon id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssueHold {
    pub id: Uuid,
    pub coupon: Uuid,
    pub user: UserId,
}

/// First-come-first-served coupon issue, admitted before the store: "has
/// this user one already?" and "is any left?" in one step, held under the
/// user-coupon id until the store records the issue by group commit.
#[async_trait]
pub trait CouponAdmission: Send + Sync + 'static {
    /// Starts tracking a coupon with `total` units and the users who hold
    /// one, unless it is tracked already.
    async fn open_coupon(
        &self,
        coupon: Uuid,
        total: i64,
        holders: &[UserId],
    ) -> Result<(), CouponRefused>;

    /// Takes one unit of `coupon` for `user` under reservation `id`, or says
    /// why not. Untracked coupons pass.
    async fn hold_issue(
        &self,
        id: Uuid,
        coupon: Uuid,
        user: UserId,
    ) -> Result<IssueHold, CouponRefused>;

    /// Settles held issues (see [`StockAdmission::settle`]).
    async fn settle_issues(&self, done: Vec<(IssueHold, Verdict)>);

    /// Held issues past their deadline, for the reconciler.
    async fn overdue_issues(
        &self,
        _now: DateTime<Utc>,
        _limit: usize,
    ) -> Result<Vec<IssueHold>, CouponRefused> {
        Ok(Vec::new())
    }

    /// Units issued so far, if tracked (a shared tier may answer from a
    /// recent copy).
    fn issued(&self, coupon: Uuid) -> Option<i64>;
}
