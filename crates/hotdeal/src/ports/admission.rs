//! The admission tier: counters of available units per stock key and of
//! units each user holds of a limited deal. Every order is admitted here
//! before any database work, so a sold-out or over-limit request is refused
//! in microseconds, and only admitted orders reach the store's writer.
//!
//! The tier is loaded from the store at start and every change of stock
//! goes through it: decreases are taken here first (and released if the
//! store then fails), increases are added once the store committed them.
//! Within one process it is exact; the store's conditional updates remain
//! a second line of defence, never the first.

use chrono::{DateTime, Utc};
use hotdeal_domain::{DealId, StockKey, UserId};
use std::collections::BTreeMap;

/// A deal line's claim against the deal's per-user limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitClaim {
    pub deal: DealId,
    pub units: i64,
    pub limit: i64,
}

/// What one request took from the tier; give it back with
/// [`StockAdmission::release`] if the order does not go through.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub taken: Vec<(StockKey, i64)>,
    pub claimed: Vec<(DealId, UserId, i64)>,
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
}

pub trait StockAdmission: Send + Sync + 'static {
    /// Starts tracking `key` with `units` available (replacing any count).
    fn open(&self, key: StockKey, units: i64);

    /// Stops tracking `key` (a deal that gave its units back).
    fn close(&self, key: StockKey);

    /// Records that `user` holds `units` of `deal` (loading at start).
    fn set_held(&self, deal: DealId, user: UserId, units: i64);

    /// Takes every demand and limit claim of `user`, or nothing. Keys the
    /// tier does not track are left to the store.
    fn admit(
        &self,
        user: UserId,
        demand: &BTreeMap<StockKey, i64>,
        limits: &[LimitClaim],
    ) -> Result<Admitted, Refused>;

    /// Gives back what [`admit`](Self::admit) took.
    fn release(&self, admitted: &Admitted);

    /// Adds units that the store committed (a cancel, a restock, a deal's
    /// unsold units going back). Ignored for untracked keys.
    fn restock(&self, key: StockKey, units: i64);

    /// Lowers what `user` holds of `deal` (a cancelled order).
    fn unclaim(&self, deal: DealId, user: UserId, units: i64);

    /// The units available now and when they last changed, if tracked.
    fn available(&self, key: StockKey) -> Option<(i64, DateTime<Utc>)>;

    /// A number that changes whenever any count changes (for caches).
    fn version(&self) -> u64;
}

/// Why a coupon issue was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CouponRefused {
    AlreadyIssued,
    SoldOut,
}

/// First-come-first-served coupon issue, admitted in memory: "has this user
/// one already?" and "is any left?" in one step, before the store records
/// the issue by group commit.
pub trait CouponAdmission: Send + Sync + 'static {
    /// Starts tracking a coupon with `total` units and the users who hold one.
    fn open_coupon(&self, coupon: uuid::Uuid, total: i64, holders: &[UserId]);

    /// Takes one unit for `user`, or says why not. Untracked coupons pass.
    fn admit_issue(&self, coupon: uuid::Uuid, user: UserId) -> Result<(), CouponRefused>;

    /// Undoes [`admit_issue`](Self::admit_issue) (the store did not record it).
    fn release_issue(&self, coupon: uuid::Uuid, user: UserId);

    /// Units issued so far, if tracked.
    fn issued(&self, coupon: uuid::Uuid) -> Option<i64>;
}
