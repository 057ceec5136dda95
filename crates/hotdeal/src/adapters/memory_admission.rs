//! The in-process admission tier: one atomic counter per stock key, and a
//! map of units held per (deal, user) for limited deals.
//!
//! Taking units is a compare-and-swap loop on the key's counter: racing
//! requests never take more than there is, and the first to arrive wins.
//! The map from key to counter changes only when a product or deal appears
//! or a deal is settled, so lookups take its read lock for nanoseconds.

use crate::ports::admission::{
    Admitted, CouponAdmission, CouponRefused, LimitClaim, Refused, StockAdmission,
};
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
    fn claim(
        &self,
        user: UserId,
        limits: &[LimitClaim],
    ) -> Result<Vec<(DealId, UserId, i64)>, Refused> {
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
            claimed.push((c.deal, user, c.units));
        }
        Ok(claimed)
    }
}

impl StockAdmission for MemoryAdmission {
    fn open(&self, key: StockKey, units: i64) {
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

    fn close(&self, key: StockKey) {
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

    fn set_held(&self, deal: DealId, user: UserId, units: i64) {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((deal, user), units);
    }

    fn admit(
        &self,
        user: UserId,
        demand: &BTreeMap<StockKey, i64>,
        limits: &[LimitClaim],
    ) -> Result<Admitted, Refused> {
        let mut admitted = Admitted {
            claimed: self.claim(user, limits)?,
            taken: Vec::new(),
        };
        for (&key, &qty) in demand {
            let Some(counter) = self.counter(key) else {
                continue;
            };
            if let Err(available) = Self::take(&counter, qty) {
                self.release(&admitted);
                return Err(Refused::Stock {
                    key,
                    requested: qty,
                    available,
                });
            }
            admitted.taken.push((key, qty));
        }
        if !admitted.taken.is_empty() {
            self.version.fetch_add(1, Ordering::AcqRel);
        }
        Ok(admitted)
    }

    fn release(&self, admitted: &Admitted) {
        for &(key, qty) in &admitted.taken {
            self.restock(key, qty);
        }
        for &(deal, user, units) in &admitted.claimed {
            self.unclaim(deal, user, units);
        }
    }

    fn restock(&self, key: StockKey, units: i64) {
        if let Some(c) = self.counter(key) {
            c.units.fetch_add(units, Ordering::AcqRel);
            c.touch();
            self.version.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn unclaim(&self, deal: DealId, user: UserId, units: i64) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = held.get_mut(&(deal, user)) {
            *h = (*h - units).max(0);
        }
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

impl CouponAdmission for MemoryAdmission {
    fn open_coupon(&self, coupon: uuid::Uuid, total: i64, holders: &[UserId]) {
        let counts = CouponCounts {
            total,
            holders: holders.iter().copied().collect(),
        };
        self.coupons
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(coupon, counts);
    }

    fn admit_issue(&self, coupon: uuid::Uuid, user: UserId) -> Result<(), CouponRefused> {
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

    fn release_issue(&self, coupon: uuid::Uuid, user: UserId) {
        let mut coupons = self.coupons.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = coupons.get_mut(&coupon) {
            c.holders.remove(&user);
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
        tier.open_coupon(coupon, 500, &[]);
        let users: Vec<UserId> = (0..2000).map(|_| UserId::new()).collect();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (tier, users) = (tier.clone(), users.clone());
                std::thread::spawn(move || {
                    // Every thread tries every user: duplicates race too.
                    let mut won = Vec::new();
                    for (i, u) in users.iter().enumerate() {
                        if (i + t) % 2 == 0 && tier.admit_issue(coupon, *u).is_ok() {
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
            tier.admit_issue(coupon, UserId::new()),
            Err(CouponRefused::SoldOut)
        );
        assert_eq!(
            tier.admit_issue(coupon, winners[0]),
            Err(CouponRefused::AlreadyIssued)
        );
        tier.release_issue(coupon, winners[0]);
        assert_eq!(tier.admit_issue(coupon, winners[0]), Ok(()));
    }

    #[test]
    fn all_or_nothing() {
        let tier = MemoryAdmission::new();
        let user = UserId::new();
        let (a, b) = (
            StockKey::Product(ProductId::new()),
            StockKey::Deal(DealId::new()),
        );
        tier.open(a, 5);
        tier.open(b, 1);
        let refused = tier
            .admit(user, &demand(&[(a, 2), (b, 2)]), &[])
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
            .admit(user, &demand(&[(a, 2), (b, 1)]), &[])
            .expect("fits");
        assert_eq!((units(&tier, a), units(&tier, b)), (Some(3), Some(0)));
        tier.release(&ok);
        assert_eq!((units(&tier, a), units(&tier, b)), (Some(5), Some(1)));
    }

    #[test]
    fn per_user_limits_are_claimed_and_released() {
        let tier = MemoryAdmission::new();
        let deal = DealId::new();
        let key = StockKey::Deal(deal);
        tier.open(key, 100);
        let (u1, u2) = (UserId::new(), UserId::new());
        let claim = |units| {
            [LimitClaim {
                deal,
                units,
                limit: 3,
            }]
        };
        let first = tier
            .admit(u1, &demand(&[(key, 2)]), &claim(2))
            .expect("2 of 3");
        let refused = tier
            .admit(u1, &demand(&[(key, 2)]), &claim(2))
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
        tier.admit(u2, &demand(&[(key, 3)]), &claim(3))
            .expect("per user");
        tier.release(&first);
        tier.admit(u1, &demand(&[(key, 3)]), &claim(3))
            .expect("released");
        // A stock refusal gives the claim back too.
        let other = StockKey::Product(ProductId::new());
        tier.open(other, 0);
        let u3 = UserId::new();
        tier.admit(u3, &demand(&[(key, 1), (other, 1)]), &claim(1))
            .expect_err("no stock");
        tier.admit(u3, &demand(&[(key, 3)]), &claim(3))
            .expect("claim was returned");
    }

    #[test]
    fn untracked_keys_pass_through() {
        let tier = MemoryAdmission::new();
        let k = StockKey::Product(ProductId::new());
        let admitted = tier
            .admit(UserId::new(), &demand(&[(k, 3)]), &[])
            .expect("pass");
        assert_eq!(admitted, Admitted::default());
        tier.restock(k, 3);
        assert_eq!(units(&tier, k), None);
    }

    #[test]
    fn racing_threads_never_take_more_than_there_is() {
        let tier = Arc::new(MemoryAdmission::new());
        let k = StockKey::Deal(DealId::new());
        tier.open(k, 1_000);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let tier = tier.clone();
                std::thread::spawn(move || {
                    let user = UserId::new();
                    (0..1_000)
                        .filter(|_| tier.admit(user, &demand(&[(k, 1)]), &[]).is_ok())
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
            tier.open(keys[0], 10);
            tier.open(keys[1], 7);
            let mut held: Vec<Admitted> = vec![];
            for (k, qty, release) in ops {
                if release && !held.is_empty() {
                    let a = held.remove(0);
                    tier.release(&a);
                } else if let Ok(a) = tier.admit(user, &demand(&[(keys[k], qty)]), &[]) {
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
