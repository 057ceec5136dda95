//! Between the services and the admission tier: holding with seeding on
//! demand, giving committed increases back, the verdict of each store
//! outcome, and the reconciler of a shared tier.
//!
//! A shared tier (Redis) may lack a key: it was never seeded, or the tier
//! lost its data. The first request to notice seeds that key from the
//! store (never overwriting a count that appeared meanwhile); requests for
//! the same key arriving while it seeds get a fast 503 instead of piling
//! onto the store.
//!
//! The stock side belongs to the [`Catalogue`] (the order service holds
//! stock through it), the coupon side to [`Coupons`]; each reconciles its
//! own tier's reservations against the store's fence. The increases a
//! committed event carries are applied by the event relay of any role
//! ([`apply_committed_event`]), which needs the stock tier and nothing else.

use super::catalog::{refused, settle_event};
use super::orders::{cancel_event, cancel_increases};
use super::{Catalogue, Coupons, Error, Result};
use crate::ports::{
    CouponRefused, Hold, Increase, IssueHold, Issued, LimitClaim, Placement, Refused,
    StockAdmission, StoreResult, Verdict,
};
use hotdeal_domain::{OrderId, StockKey, UserId};
use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use uuid::Uuid;

/// Reservations the reconciler settles per round.
const RECONCILE_BATCH: usize = 500;

/// Keys (or coupons) being seeded by this instance now.
#[derive(Default)]
pub struct Seeding(Mutex<HashSet<Uuid>>);

impl Seeding {
    /// Claims `id` for seeding; `None` if this instance seeds it already.
    fn claim(&self, id: Uuid) -> Option<SeedGuard<'_>> {
        let fresh = self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(id);
        fresh.then_some(SeedGuard { set: self, id })
    }
}

struct SeedGuard<'a> {
    set: &'a Seeding,
    id: Uuid,
}

impl Drop for SeedGuard<'_> {
    fn drop(&mut self) {
        self.set
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

/// What an order's outcome means for its hold.
pub(super) fn order_verdict(outcome: &StoreResult<Placement>) -> Verdict {
    match outcome {
        Ok(Placement::Placed) => Verdict::Commit,
        // The tier said the units were there and the store disagrees: the
        // tier over-counted; keeping them taken corrects it.
        Ok(Placement::Insufficient { key, .. }) => Verdict::Overcounted(*key),
        // A failed write is taken as not written. Should its commit have
        // landed after all (a connection lost during COMMIT), the tier
        // counts those units as free: the store refuses them later and the
        // tier comes down again (`Overcounted`); nothing is oversold.
        Ok(_) | Err(_) => Verdict::Abort,
    }
}

/// What a coupon issue's outcome means for its hold.
pub(super) fn issue_verdict(outcome: &StoreResult<Issued>) -> Verdict {
    match outcome {
        Ok(Issued::Issued) => Verdict::Commit,
        // The store has the user as a holder already, or no unit left: the
        // tier under-knew; keeping the hold makes it agree.
        Ok(Issued::AlreadyIssued | Issued::SoldOut) => Verdict::Commit,
        Ok(Issued::Aborted) | Err(_) => Verdict::Abort,
    }
}

impl Catalogue {
    /// Holds `demand` and `limits` for `user` under reservation `id`,
    /// seeding a key the shared tier lacks.
    pub(super) async fn hold_units(
        &self,
        id: Uuid,
        user: UserId,
        demand: &BTreeMap<StockKey, i64>,
        limits: &[LimitClaim],
    ) -> Result<Hold> {
        for _ in 0..2 {
            match self.admission.hold(id, user, demand, limits).await {
                Ok(hold) => return Ok(hold),
                Err(Refused::Unseeded(key)) => self.seed(key).await?,
                Err(r) => return Err(refused(r)),
            }
        }
        Err(Error::Overloaded)
    }

    /// Holds for an order service in another process (the gRPC
    /// `Reserve`): as [`Catalogue::hold_units`], seeding here, where the
    /// catalogue's store is, a key the shared tier lacks. A key with
    /// nothing to seed (no such product, a settled deal) stays
    /// `Unseeded`, for the caller to answer as it does its own; a seed
    /// that cannot run now is `Unavailable` (a fast 503).
    pub async fn reserve(
        &self,
        id: Uuid,
        user: UserId,
        demand: &BTreeMap<StockKey, i64>,
        limits: &[LimitClaim],
    ) -> std::result::Result<Hold, Refused> {
        for _ in 0..2 {
            match self.admission.hold(id, user, demand, limits).await {
                Err(Refused::Unseeded(key)) => match self.seed(key).await {
                    Ok(()) => {}
                    Err(Error::ProductNotFound | Error::DealNotActive { .. }) => {
                        return Err(Refused::Unseeded(key))
                    }
                    Err(_) => return Err(Refused::Unavailable),
                },
                other => return other,
            }
        }
        Err(Refused::Unavailable)
    }

    /// Seeds `key` from the store, or answers 503 while another request of
    /// this instance does.
    async fn seed(&self, key: StockKey) -> Result<()> {
        let Some(_guard) = self.seeding.claim(key.uuid()) else {
            return Err(Error::Overloaded);
        };
        match self.store.stock_seed(key).await? {
            Some((units, held)) => {
                tracing::info!(?key, units, "seeding the shared tier from the store");
                self.admission
                    .open(key, units, &held)
                    .await
                    .map_err(refused)
            }
            // No such product, or a settled deal: nothing to hold; the
            // store will refuse the order with the right answer.
            None => Err(match key {
                StockKey::Product(_) => Error::ProductNotFound,
                StockKey::Deal(deal) => Error::DealNotActive {
                    deal,
                    status: hotdeal_domain::DealStatus::Ended,
                },
            }),
        }
    }

    /// Applies a committed change's increases to the tier, once per
    /// `event`. A failure is only logged: the relay of the committed event
    /// applies the same increases under the same name later.
    pub(super) async fn give_back(&self, event: &str, increases: &[Increase]) {
        if increases.is_empty() {
            return;
        }
        if let Err(e) = self.admission.give_back(event, increases).await {
            tracing::warn!(event, reason = ?e, "giving units back to the tier failed; the event relay will");
        }
    }

    /// Settles the stock tier's reservations that outlived their deadline:
    /// the store's fence says, for each, whether its write committed (keep
    /// the units) or not (give them back), and exactly one of the two can
    /// win. Runs on any instance; two running at once settle each
    /// reservation once.
    pub async fn reconcile(&self) -> Result<usize> {
        let now = self.clock.now();
        let mut settled = 0;
        let holds = self
            .admission
            .overdue(now, RECONCILE_BATCH)
            .await
            .map_err(refused)?;
        if !holds.is_empty() {
            let ids: Vec<Uuid> = holds.iter().map(|h| h.id).collect();
            let committed: HashSet<Uuid> = self
                .fence
                .abort_reservations(&ids)
                .await?
                .into_iter()
                .collect();
            settled += holds.len();
            let verdicts = holds
                .into_iter()
                .map(|h| {
                    let v = if committed.contains(&h.id) {
                        Verdict::Commit
                    } else {
                        Verdict::Abort
                    };
                    (h, v)
                })
                .collect::<Vec<_>>();
            let aborted = verdicts
                .iter()
                .filter(|(_, v)| *v == Verdict::Abort)
                .count();
            if aborted > 0 {
                tracing::info!(aborted, "gave back overdue reservations");
            }
            self.admission.settle(verdicts).await;
        }
        Ok(settled)
    }
}

impl Coupons {
    /// Holds one unit of `coupon` for `user` under reservation `id`,
    /// seeding the coupon if the shared tier lacks it.
    pub(super) async fn hold_issue(
        &self,
        id: Uuid,
        coupon: Uuid,
        user: UserId,
    ) -> std::result::Result<IssueHold, CouponRefused> {
        for _ in 0..2 {
            match self.admission.hold_issue(id, coupon, user).await {
                Err(CouponRefused::Unseeded) => {
                    let Some(_guard) = self.seeding.claim(coupon) else {
                        return Err(CouponRefused::Unavailable);
                    };
                    let seed = self
                        .ledger
                        .coupon_seed(coupon)
                        .await
                        .map_err(|_| CouponRefused::Unavailable)?;
                    let Some((total, holders)) = seed else {
                        return Err(CouponRefused::Unavailable);
                    };
                    self.admission.open_coupon(coupon, total, &holders).await?;
                }
                other => return other,
            }
        }
        Err(CouponRefused::Unavailable)
    }

    /// Settles the coupon tier's issue reservations that outlived their
    /// deadline, as [`Catalogue::reconcile`] does the stock tier's.
    pub async fn reconcile(&self) -> Result<usize> {
        let now = self.clock.now();
        let mut settled = 0;
        let issues = self
            .admission
            .overdue_issues(now, RECONCILE_BATCH)
            .await
            .map_err(|_| Error::Overloaded)?;
        if !issues.is_empty() {
            let ids: Vec<Uuid> = issues.iter().map(|h| h.id).collect();
            let committed: HashSet<Uuid> = self
                .fence
                .abort_reservations(&ids)
                .await?
                .into_iter()
                .collect();
            settled += issues.len();
            let verdicts: Vec<_> = issues
                .into_iter()
                .map(|h| {
                    let v = if committed.contains(&h.id) {
                        Verdict::Commit
                    } else {
                        Verdict::Abort
                    };
                    (h, v)
                })
                .collect();
            self.admission.settle_issues(verdicts).await;
        }
        Ok(settled)
    }
}

/// Keys compared with the store per audit: the running deals first.
const AUDIT_KEYS: usize = 200;

impl Catalogue {
    /// Compares the shared tier's counts of the running deals with the
    /// store's and records the drift in the metrics (`hotdeal_tier_drift`).
    /// A tier that rebuilt a key while writes were in flight counts units
    /// the store no longer has; the order path brings it down as the
    /// store refuses them, and this shows how far apart they were.
    pub async fn audit_tier(&self) -> Result<()> {
        let now = self.clock.now();
        let keys: Vec<StockKey> = self
            .catalog
            .deals_where(|d| d.settled_at.is_none() && d.window.is_running(now))
            .into_iter()
            .take(AUDIT_KEYS)
            .map(|(d, _)| StockKey::Deal(d.id))
            .collect();
        let counted = self.admission.audit(&keys).await.map_err(refused)?;
        let (mut drifting, mut units) = (0u64, 0u64);
        for (key, tier, reserved) in &counted {
            if let Some((store, _)) = self.store.stock_seed(*key).await? {
                let drift = (tier + reserved - store).unsigned_abs();
                if drift > 0 {
                    drifting += 1;
                    units += drift;
                    tracing::debug!(
                        ?key,
                        tier,
                        reserved,
                        store,
                        "the tier drifts from the store"
                    );
                }
            }
        }
        use std::sync::atomic::Ordering::Relaxed;
        self.metrics
            .drift_keys_checked
            .store(counted.len() as u64, Relaxed);
        self.metrics.drift_keys.store(drifting, Relaxed);
        self.metrics.drift_units.store(units, Relaxed);
        Ok(())
    }
}

/// Applies the tier increases a committed outbox event carries (a
/// cancelled or expired order, a settled deal, a restock). Called by the
/// event relay for every event, before it is marked published; an event
/// seen twice changes the tier once.
pub(super) async fn apply_committed_event(
    tier: &dyn StockAdmission,
    topic: &str,
    payload: &str,
) -> Result<()> {
    let Some((name, increases)) = increases_of(topic, payload) else {
        return Ok(());
    };
    tier.give_back(&name, &increases).await.map_err(refused)
}

/// The name and increases of a committed event that gives units back.
fn increases_of(topic: &str, payload: &str) -> Option<(String, Vec<Increase>)> {
    let v: serde_json::Value = serde_json::from_str(payload).ok()?;
    match topic {
        "order.cancelled" | "order.expired" => {
            let order = OrderId(v.get("order_id")?.as_str()?.parse().ok()?);
            let user = UserId(v.get("user_id")?.as_str()?.parse().ok()?);
            let returned = returned_of(&v)?;
            Some((cancel_event(order), cancel_increases(user, &returned)))
        }
        "deal.settled" => {
            let deal = hotdeal_domain::DealId(v.get("deal_id")?.as_str()?.parse().ok()?);
            let returned = returned_of(&v)?;
            let increases = returned
                .into_iter()
                .map(|(key, units)| Increase {
                    key,
                    units,
                    unclaim: None,
                })
                .collect();
            Some((settle_event(deal), increases))
        }
        "stock.adjusted" => {
            let adjustment = v.get("adjustment_id")?.as_str()?.to_owned();
            let product = hotdeal_domain::ProductId(v.get("product_id")?.as_str()?.parse().ok()?);
            let delta = v.get("delta")?.as_i64()?;
            // Removals were held and committed in the request; only
            // additions come from the event.
            (delta > 0).then(|| {
                (
                    adjustment,
                    vec![Increase {
                        key: StockKey::Product(product),
                        units: delta,
                        unclaim: None,
                    }],
                )
            })
        }
        _ => None,
    }
}

/// `returned: [{"product_id"|"deal_id": id, "units": n}]` of an event.
fn returned_of(v: &serde_json::Value) -> Option<Vec<(StockKey, i64)>> {
    v.get("returned")?
        .as_array()?
        .iter()
        .map(|r| {
            let units = r.get("units")?.as_i64()?;
            let key = if let Some(d) = r.get("deal_id") {
                StockKey::Deal(hotdeal_domain::DealId(d.as_str()?.parse().ok()?))
            } else {
                StockKey::Product(hotdeal_domain::ProductId(
                    r.get("product_id")?.as_str()?.parse().ok()?,
                ))
            };
            Some((key, units))
        })
        .collect()
}
