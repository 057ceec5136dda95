//! The in-process admission tier: one atomic counter per stock key.
//!
//! Taking units is a compare-and-swap loop on the key's counter, so racing
//! requests never take more than there is and no lock is held while they
//! do. The map from key to counter changes only when a product or deal
//! appears or a deal is settled; lookups take its read lock for a few
//! nanoseconds.

use crate::ports::admission::{Admitted, Refused, StockAdmission};
use hotdeal_domain::StockKey;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

#[derive(Debug, Default)]
pub struct MemoryAdmission {
    // A std RwLock: held for a map lookup, never across an await.
    counters: RwLock<HashMap<StockKey, Arc<AtomicI64>>>,
}

impl MemoryAdmission {
    pub fn new() -> Self {
        Self::default()
    }

    fn counter(&self, key: StockKey) -> Option<Arc<AtomicI64>> {
        self.counters
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned()
    }

    /// Takes `qty` from `counter` if it holds that many; otherwise returns
    /// what it holds.
    fn take(counter: &AtomicI64, qty: i64) -> Result<(), i64> {
        let mut current = counter.load(Ordering::Acquire);
        loop {
            if current < qty {
                return Err(current);
            }
            match counter.compare_exchange_weak(
                current,
                current - qty,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(seen) => current = seen,
            }
        }
    }
}

impl StockAdmission for MemoryAdmission {
    fn open(&self, key: StockKey, units: i64) {
        self.counters
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, Arc::new(AtomicI64::new(units)));
    }

    fn close(&self, key: StockKey) {
        self.counters
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
    }

    fn admit(&self, demand: &BTreeMap<StockKey, i64>) -> Result<Admitted, Refused> {
        let mut admitted = Admitted::default();
        for (&key, &qty) in demand {
            let Some(counter) = self.counter(key) else {
                continue;
            };
            if let Err(available) = Self::take(&counter, qty) {
                self.release(&admitted);
                return Err(Refused {
                    key,
                    requested: qty,
                    available,
                });
            }
            admitted.taken.push((key, qty));
        }
        Ok(admitted)
    }

    fn release(&self, admitted: &Admitted) {
        for &(key, qty) in &admitted.taken {
            self.restock(key, qty);
        }
    }

    fn restock(&self, key: StockKey, units: i64) {
        if let Some(c) = self.counter(key) {
            c.fetch_add(units, Ordering::AcqRel);
        }
    }

    fn available(&self, key: StockKey) -> Option<i64> {
        self.counter(key).map(|c| c.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotdeal_domain::{DealId, ProductId};
    use proptest::prelude::*;

    fn demand(pairs: &[(StockKey, i64)]) -> BTreeMap<StockKey, i64> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn all_or_nothing() {
        let tier = MemoryAdmission::new();
        let (a, b) = (
            StockKey::Product(ProductId::new()),
            StockKey::Deal(DealId::new()),
        );
        tier.open(a, 5);
        tier.open(b, 1);
        let refused = tier.admit(&demand(&[(a, 2), (b, 2)])).expect_err("b has 1");
        assert_eq!(
            refused,
            Refused {
                key: b,
                requested: 2,
                available: 1
            }
        );
        assert_eq!(
            (tier.available(a), tier.available(b)),
            (Some(5), Some(1)),
            "nothing kept"
        );
        let ok = tier.admit(&demand(&[(a, 2), (b, 1)])).expect("fits");
        assert_eq!((tier.available(a), tier.available(b)), (Some(3), Some(0)));
        tier.release(&ok);
        assert_eq!((tier.available(a), tier.available(b)), (Some(5), Some(1)));
    }

    #[test]
    fn untracked_keys_pass_through() {
        let tier = MemoryAdmission::new();
        let k = StockKey::Product(ProductId::new());
        assert_eq!(tier.admit(&demand(&[(k, 3)])), Ok(Admitted::default()));
        tier.restock(k, 3);
        assert_eq!(tier.available(k), None);
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
                    let mut won = 0;
                    for _ in 0..1_000 {
                        if tier.admit(&demand(&[(k, 1)])).is_ok() {
                            won += 1;
                        }
                    }
                    won
                })
            })
            .collect();
        let won: i64 = threads.into_iter().map(|t| t.join().expect("join")).sum();
        assert_eq!(won, 1_000);
        assert_eq!(tier.available(k), Some(0));
    }

    proptest! {
        /// Admissions and releases in any order keep
        /// `available + held = initial` and `available ≥ 0`.
        #[test]
        fn counts_are_conserved(ops in proptest::collection::vec((0usize..2, 1i64..5, any::<bool>()), 1..60)) {
            let tier = MemoryAdmission::new();
            let keys = [StockKey::Product(ProductId::new()), StockKey::Deal(DealId::new())];
            tier.open(keys[0], 10);
            tier.open(keys[1], 7);
            let mut held: Vec<Admitted> = vec![];
            for (k, qty, release) in ops {
                if release && !held.is_empty() {
                    let a = held.remove(0);
                    tier.release(&a);
                } else if let Ok(a) = tier.admit(&demand(&[(keys[k], qty)])) {
                    held.push(a);
                }
                for (i, initial) in [(0, 10), (1, 7)] {
                    let taken: i64 = held.iter().flat_map(|a| &a.taken).filter(|t| t.0 == keys[i]).map(|t| t.1).sum();
                    let available = tier.available(keys[i]).unwrap_or(-1);
                    prop_assert!(available >= 0);
                    prop_assert_eq!(available + taken, initial);
                }
            }
        }
    }
}
