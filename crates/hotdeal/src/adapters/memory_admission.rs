//! The in-process admission tier: one atomic counter per stock key, and a
//! map of units held per (deal, user) for limited deals.
//!
//! Taking units is a compare-and-swap loop on the key's counter: racing
//! requests never take more than there is, and the first to arrive wins.
//! The map from key to counter changes only when a product or deal appears
//! or a deal is settled, so lookups take its read lock for nanoseconds.
//!
//! One process owns every count, so a reservation needs no record and no
//! deadline: a hold is settled by the writer that holds it, and an event
//! is applied once because each committed change is given back once, by
//! the request that made it.

use crate::ports::admission::{
    CouponAdmission, CouponRefused, Hold, Increase, IssueHold, LimitClaim, Refused, StockAdmission,
    Verdict,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hotdeal_domain::{DealId, StockKey, UserId};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

#[derive(Debug)]
struct Counter {
    units: AtomicI64,
    /// Microseconds since the epoch of the last change, for `updated_at`.
    changed_at: AtomicI64,
}

impl Counter {
    fn touch(&self) {
        self.changed_at
            .store(Utc::now().timestamp_micros(), Ordering::Release);
    }
}

#[derive(Debug, Default)]
pub struct MemoryAdmission {
    // std locks: held for a lookup or an update, never across an await.
    counters: RwLock<HashMap<StockKey, Arc<Counter>>>,
    held: Mutex<HashMap<(DealId, UserId), i64>>,
    /// Bumped on every change of a count.
    version: AtomicU64,
    coupons: Mutex<HashMap<uuid::Uuid, CouponCounts>>,
}

/// One coupon's issue state. Both facts change together under one lock, so
/// "already has it" and "none left" are decided in one step.
#[derive(Debug)]
struct CouponCounts {
    total: i64,
    holders: HashSet<UserId>,
}

impl MemoryAdmission {
    pub fn new() -> Self {
        Self::default()
    }

    fn counter(&self, key: StockKey) -> Option<Arc<Counter>> {
        self.counters
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned()
    }

    /// Takes `qty` if the counter holds that many; otherwise returns what
    /// it holds.
    fn take(counter: &Counter, qty: i64) -> Result<(), i64> {
        let mut current = counter.units.load(Ordering::Acquire);
        loop {
            if current < qty {
                return Err(current);
            }
            match counter.units.compare_exchange_weak(
                current,
                current - qty,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    counter.touch();
                    return Ok(());
                }
                Err(seen) => current = seen,
            }
        }
    }

    /// Claims per-user units, all or nothing.
    fn claim(&self, user: UserId, limits: &[LimitClaim]) -> Result<Vec<(DealId, i64)>, Refused> {
        if limits.is_empty() {
            return Ok(Vec::new());
        }
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        for c in limits {
            let now = held.get(&(c.deal, user)).copied().unwrap_or(0);
            if now + c.units > c.limit {
                return Err(Refused::Limit {
                    deal: c.deal,
                    limit: c.limit,
                    held: now,
                });
            }
        }
        let mut claimed = Vec::with_capacity(limits.len());
        for c in limits {
            *held.entry((c.deal, user)).or_insert(0) += c.units;
            claimed.push((c.deal, c.units));
        }
        Ok(claimed)
    }

    /// Starts tracking `key` with `units` (replacing any count).
    pub fn track(&self, key: StockKey, units: i64) {
        let counter = Counter {
            units: AtomicI64::new(units),
            changed_at: AtomicI64::new(Utc::now().timestamp_micros()),
        };
        self.counters
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, Arc::new(counter));
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    fn untrack(&self, key: StockKey) {
        self.counters
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        self.version.fetch_add(1, Ordering::AcqRel);
        if let StockKey::Deal(d) = key {
            self.held
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|(deal, _), _| *deal != d);
        }
    }

    /// Takes every demand and claim, or nothing.
    pub fn take_units(
        &self,
        user: UserId,
        demand: &BTreeMap<StockKey, i64>,
        limits: &[LimitClaim],
    ) -> Result<Hold, Refused> {
        let mut hold = Hold {
            id: uuid::Uuid::nil(),
            user,
            claimed: self.claim(user, limits)?,
            taken: Vec::new(),
        };
        for (&key, &qty) in demand {
            let Some(counter) = self.counter(key) else {
                continue;
            };
            if let Err(available) = Self::take(&counter, qty) {
                self.put_back(&hold);
                return Err(Refused::Stock {
                    key,
                    requested: qty,
                    available,
                });
            }
            hold.taken.push((key, qty));
        }
        if !hold.taken.is_empty() {
            self.version.fetch_add(1, Ordering::AcqRel);
        }
        Ok(hold)
    }

    /// Gives back what [`take_units`](Self::take_units) took.
    pub fn put_back(&self, hold: &Hold) {
        for &(key, qty) in &hold.taken {
            self.add_units(key, qty);
        }
        for &(deal, units) in &hold.claimed {
            self.drop_claim(deal, hold.user, units);
        }
    }

    fn add_units(&self, key: StockKey, units: i64) {
        if let Some(c) = self.counter(key) {
            c.units.fetch_add(units, Ordering::AcqRel);
            c.touch();
            self.version.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn drop_claim(&self, deal: DealId, user: UserId, units: i64) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = held.get_mut(&(deal, user)) {
            *h = (*h - units).max(0);
        }
    }

    /// Starts tracking a coupon (replacing any state).
    pub fn track_coupon(&self, coupon: uuid::Uuid, total: i64, holders: &[UserId]) {
        let counts = CouponCounts {
            total,
            holders: holders.iter().copied().collect(),
        };
        self.coupons
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(coupon, counts);
    }

    pub fn take_coupon(&self, coupon: uuid::Uuid, user: UserId) -> Result<(), CouponRefused> {
        let mut coupons = self.coupons.lock().unwrap_or_else(|e| e.into_inner());
        let Some(c) = coupons.get_mut(&coupon) else {
            return Ok(());
        };
        if c.holders.contains(&user) {
            return Err(CouponRefused::AlreadyIssued);
        }
        if c.holders.len() as i64 >= c.total {
            return Err(CouponRefused::SoldOut);
        }
        c.holders.insert(user);
        Ok(())
    }

    pub fn return_coupon(&self, coupon: uuid::Uuid, user: UserId) {
        let mut coupons = self.coupons.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = coupons.get_mut(&coupon) {
            c.holders.remove(&user);
        }
    }
}

#[async_trait]
impl StockAdmission for MemoryAdmission {
    async fn open(&self, key: StockKey, units: i64, held: &[(UserId, i64)]) -> Result<(), Refused> {
        if self.counter(key).is_none() {
            self.track(key, units);
            if let StockKey::Deal(deal) = key {
                let mut map = self.held.lock().unwrap_or_else(|e| e.into_inner());
                for &(user, n) in held {
                    map.insert((deal, user), n);
                }
            }
        }
        Ok(())
    }

    async fn close(&self, key: StockKey) {
        self.untrack(key);
    }

    async fn hold(
        &self,
        id: uuid::Uuid,
        user: UserId,
        demand: &BTreeMap<StockKey, i64>,
        limits: &[LimitClaim],
    ) -> Result<Hold, Refused> {
        let mut hold = self.take_units(user, demand, limits)?;
        hold.id = id;
        Ok(hold)
    }

    async fn settle(&self, done: Vec<(Hold, Verdict)>) {
        for (hold, verdict) in done {
            match verdict {
                Verdict::Commit => {}
                // No reconciler here: the writer's failure wrote nothing.
                Verdict::Abort => self.put_back(&hold),
                Verdict::Overcounted(key) => {
                    for &(k, qty) in &hold.taken {
                        if k != key {
                            self.add_units(k, qty);
                        }
                    }
                    for &(deal, units) in &hold.claimed {
                        self.drop_claim(deal, hold.user, units);
                    }
                }
            }
        }
    }

    async fn give_back(&self, _event: &str, increases: &[Increase]) -> Result<(), Refused> {
        for inc in increases {
            self.add_units(inc.key, inc.units);
            if let (StockKey::Deal(deal), Some((user, units))) = (inc.key, inc.unclaim) {
                self.drop_claim(deal, user, units);
            }
        }
        Ok(())
    }

    fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    fn available(&self, key: StockKey) -> Option<(i64, DateTime<Utc>)> {
        self.counter(key).map(|c| {
            let at = DateTime::from_timestamp_micros(c.changed_at.load(Ordering::Acquire));
            (c.units.load(Ordering::Acquire), at.unwrap_or_default())
        })
    }
}

#[async_trait]
impl CouponAdmission for MemoryAdmission {
    async fn open_coupon(
        &self,
        coupon: uuid::Uuid,
        total: i64,
        holders: &[UserId],
    ) -> Result<(), CouponRefused> {
        let tracked = self
            .coupons
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&coupon);
        if !tracked {
            self.track_coupon(coupon, total, holders);
        }
        Ok(())
    }

    async fn hold_issue(
        &self,
        id: uuid::Uuid,
        coupon: uuid::Uuid,
        user: UserId,
    ) -> Result<IssueHold, CouponRefused> {
        self.take_coupon(coupon, user)?;
        Ok(IssueHold { id, coupon, user })
    }

    async fn settle_issues(&self, done: Vec<(IssueHold, Verdict)>) {
        for (hold, verdict) in done {
            if verdict == Verdict::Abort {
                self.return_coupon(hold.coupon, hold.user);
            }
        }
    }

    fn issued(&self, coupon: uuid::Uuid) -> Option<i64> {
        let coupons = self.coupons.lock().unwrap_or_else(|e| e.into_inner());
        coupons.get(&coupon).map(|c| c.holders.len() as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotdeal_domain::ProductId;
    use proptest::prelude::*;

    fn demand(pairs: &[(StockKey, i64)]) -> BTreeMap<StockKey, i64> {
        pairs.iter().copied().collect()
    }

    fn units(tier: &MemoryAdmission, key: StockKey) -> Option<i64> {
        tier.available(key).map(|a| a.0)
    }

    #[test]
    fn coupons_one_per_user_never_more_than_total() {
        let tier = Arc::new(MemoryAdmission::new());
        let coupon = uuid::Uuid::now_v7();
        tier.track_coupon(coupon, 500, &[]);
        let users: Vec<UserId> = (0..2000).map(|_| UserId::new()).collect();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (tier, users) = (tier.clone(), users.clone());
                std::thread::spawn(move || {
                    // Every thread tries every user: duplicates race too.
                    let mut won = Vec::new();
                    for (i, u) in users.iter().enumerate() {
                        if (i + t) % 2 == 0 && tier.take_coupon(coupon, *u).is_ok() {
                            won.push(*u);
                        }
                    }
                    won
                })
            })
            .collect();
        let mut winners: Vec<UserId> = threads
            .into_iter()
            .flat_map(|t| t.join().expect("join"))
            .collect();
        assert_eq!(winners.len(), 500);
        winners.sort();
        winners.dedup();
        assert_eq!(winners.len(), 500, "one per user");
        assert_eq!(tier.issued(coupon), Some(500));
        assert_eq!(
            tier.take_coupon(coupon, UserId::new()),
            Err(CouponRefused::SoldOut)
        );
        assert_eq!(
            tier.take_coupon(coupon, winners[0]),
            Err(CouponRefused::AlreadyIssued)
        );
        tier.return_coupon(coupon, winners[0]);
        assert_eq!(tier.take_coupon(coupon, winners[0]), Ok(()));
    }

    #[test]
    fn all_or_nothing() {
        let tier = MemoryAdmission::new();
        let user = UserId::new();
        let (a, b) = (
            StockKey::Product(ProductId::new()),
            StockKey::Deal(DealId::new()),
        );
        tier.track(a, 5);
        tier.track(b, 1);
        let refused = tier
            .take_units(user, &demand(&[(a, 2), (b, 2)]), &[])
            .expect_err("b has 1");
        assert_eq!(
            refused,
            Refused::Stock {
                key: b,
                requested: 2,
                available: 1
            }
        );
        assert_eq!(
            (units(&tier, a), units(&tier, b)),
            (Some(5), Some(1)),
            "nothing kept"
        );
        let ok = tier
            .take_units(user, &demand(&[(a, 2), (b, 1)]), &[])
            .expect("fits");
        assert_eq!((units(&tier, a), units(&tier, b)), (Some(3), Some(0)));
        tier.put_back(&ok);
        assert_eq!((units(&tier, a), units(&tier, b)), (Some(5), Some(1)));
    }

    #[test]
    fn per_user_limits_are_claimed_and_released() {
        let tier = MemoryAdmission::new();
        let deal = DealId::new();
        let key = StockKey::Deal(deal);
        tier.track(key, 100);
        let (u1, u2) = (UserId::new(), UserId::new());
        let claim = |units| {
            [LimitClaim {
                deal,
                units,
                limit: 3,
            }]
        };
        let first = tier
            .take_units(u1, &demand(&[(key, 2)]), &claim(2))
            .expect("2 of 3");
        let refused = tier
            .take_units(u1, &demand(&[(key, 2)]), &claim(2))
            .expect_err("4 > 3");
        assert_eq!(
            refused,
            Refused::Limit {
                deal,
                limit: 3,
                held: 2
            }
        );
        assert_eq!(
            units(&tier, key),
            Some(98),
            "a refused claim takes no stock"
        );
        tier.take_units(u2, &demand(&[(key, 3)]), &claim(3))
            .expect("per user");
        tier.put_back(&first);
        tier.take_units(u1, &demand(&[(key, 3)]), &claim(3))
            .expect("released");
        // A stock refusal gives the claim back too.
        let other = StockKey::Product(ProductId::new());
        tier.track(other, 0);
        let u3 = UserId::new();
        tier.take_units(u3, &demand(&[(key, 1), (other, 1)]), &claim(1))
            .expect_err("no stock");
        tier.take_units(u3, &demand(&[(key, 3)]), &claim(3))
            .expect("claim was returned");
    }

    #[test]
    fn untracked_keys_pass_through() {
        let tier = MemoryAdmission::new();
        let k = StockKey::Product(ProductId::new());
        let admitted = tier
            .take_units(UserId::new(), &demand(&[(k, 3)]), &[])
            .expect("pass");
        assert!(admitted.taken.is_empty() && admitted.claimed.is_empty());
        tier.add_units(k, 3);
        assert_eq!(units(&tier, k), None);
    }

    #[test]
    fn racing_threads_never_take_more_than_there_is() {
        let tier = Arc::new(MemoryAdmission::new());
        let k = StockKey::Deal(DealId::new());
        tier.track(k, 1_000);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let tier = tier.clone();
                std::thread::spawn(move || {
                    let user = UserId::new();
                    (0..1_000)
                        .filter(|_| tier.take_units(user, &demand(&[(k, 1)]), &[]).is_ok())
                        .count()
                })
            })
            .collect();
        let won: usize = threads.into_iter().map(|t| t.join().expect("join")).sum();
        assert_eq!(won, 1_000);
        assert_eq!(units(&tier, k), Some(0));
    }

    proptest! {
        /// Admissions and releases in any order keep
        /// `available + held = initial` and `available ≥ 0`.
        #[test]
        fn counts_are_conserved(ops in proptest::collection::vec((0usize..2, 1i64..5, any::<bool>()), 1..60)) {
            let tier = MemoryAdmission::new();
            let user = UserId::new();
            let keys = [StockKey::Product(ProductId::new()), StockKey::Deal(DealId::new())];
            tier.track(keys[0], 10);
            tier.track(keys[1], 7);
            let mut held: Vec<Hold> = vec![];
            for (k, qty, release) in ops {
                if release && !held.is_empty() {
                    let a = held.remove(0);
                    tier.put_back(&a);
                } else if let Ok(a) = tier.take_units(user, &demand(&[(keys[k], qty)]), &[]) {
                    held.push(a);
                }
                for (i, initial) in [(0, 10), (1, 7)] {
                    let taken: i64 = held.iter().flat_map(|a| &a.taken).filter(|t| t.0 == keys[i]).map(|t| t.1).sum();
                    let available = units(&tier, keys[i]).unwrap_or(-1);
                    prop_assert!(available >= 0);
                    prop_assert_eq!(available + taken, initial);
                }
            }
        }
    }
}
