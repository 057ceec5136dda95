//! Per-user and per-IP rate limits at the edge, by GCRA (the generic cell
//! rate algorithm): each client has a theoretical arrival time (TAT); a
//! request is allowed when it arrives no earlier than the TAT minus the
//! burst tolerance, and then pushes the TAT one interval (1 s / rate) on.
//! One number per client, no timers, exact at any rate.
//!
//! The state is in this process ([`Memory`]) or, with `redis_url` set, in
//! Redis ([`RedisRateLimit`]) so several gateways share each client's
//! budget. When Redis cannot answer, the limiter **fails open**: the request
//! passes, the failure is counted (`store_errors`) and logged at most once
//! per [`LOG_EVERY`]. A limiter protects the services; it decides nothing
//! a request's correctness depends on, and the services shed their own load
//! (503 `OVERLOADED`) either way.

use crate::adapters::redis::RedisRateLimit;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most one warning about an unreachable Redis per this long.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Clients tracked in memory before expired entries are swept out.
const SWEEP_ABOVE: usize = 100_000;

/// One limit: a steady rate and the burst allowed above it.
#[derive(Clone, Copy, Debug)]
pub struct Gcra {
    /// Time one request "costs": 1 s / rate.
    interval: Duration,
    /// How far ahead of now the TAT may run: `interval * burst`.
    tolerance: Duration,
}

impl Gcra {
    /// `None` when `per_sec` is 0 (no limit).
    pub fn new(per_sec: u32, burst: u32) -> Option<Self> {
        if per_sec == 0 {
            return None;
        }
        let interval = Duration::from_secs(1) / per_sec;
        Some(Self {
            interval,
            tolerance: interval * burst.max(1),
        })
    }

    /// The decision for a request at `now` on a client whose TAT is `tat`
    /// (`now` if it has none): the new TAT, or how long to wait.
    fn decide(self, tat: Instant, now: Instant) -> Result<Instant, Duration> {
        let new_tat = tat.max(now) + self.interval;
        let allow_at = new_tat.checked_sub(self.tolerance).unwrap_or(now);
        if now < allow_at {
            Err(allow_at - now)
        } else {
            Ok(new_tat)
        }
    }
}

/// Which limit a client is held to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    User,
    Ip,
}

impl Scope {
    fn tag(self) -> &'static str {
        match self {
            Scope::User => "u",
            Scope::Ip => "ip",
        }
    }
}

/// The TATs of this process's clients.
#[derive(Default)]
pub struct Memory {
    /// A std mutex: held for a hash lookup, never across an `.await`.
    tats: Mutex<HashMap<(Scope, String), Instant>>,
}

impl Memory {
    fn check(&self, scope: Scope, who: &str, limit: Gcra) -> Option<Duration> {
        let now = Instant::now();
        let mut tats = self.tats.lock().unwrap_or_else(|e| e.into_inner());
        if tats.len() > SWEEP_ABOVE {
            // A TAT in the past is the same as no entry at all.
            tats.retain(|_, tat| *tat > now);
        }
        let key = (scope, who.to_owned());
        let tat = tats.get(&key).copied().unwrap_or(now);
        match limit.decide(tat, now) {
            Ok(new_tat) => {
                tats.insert(key, new_tat);
                None
            }
            Err(wait) => Some(wait),
        }
    }
}

/// Where the state lives.
pub enum Store {
    Memory(Memory),
    Redis(RedisRateLimit),
}

/// The limiter: its limits, its state and its counters.
pub struct RateLimiter {
    user: Option<Gcra>,
    ip: Option<Gcra>,
    store: Store,
    /// Requests refused with 429.
    pub refused: AtomicU64,
    /// Checks that Redis could not answer (the request was let through).
    pub store_errors: AtomicU64,
    /// When the last warning about Redis was logged (ms since `epoch`,
    /// 0 = never): one warning per [`LOG_EVERY`], not one per request.
    last_warned_ms: AtomicU64,
    epoch: Instant,
}

impl RateLimiter {
    pub fn new(user: Option<Gcra>, ip: Option<Gcra>, store: Store) -> Self {
        Self {
            user,
            ip,
            store,
            refused: AtomicU64::new(0),
            store_errors: AtomicU64::new(0),
            last_warned_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    pub fn limits(&self, scope: Scope) -> bool {
        self.limit(scope).is_some()
    }

    fn limit(&self, scope: Scope) -> Option<Gcra> {
        match scope {
            Scope::User => self.user,
            Scope::Ip => self.ip,
        }
    }

    /// One request of `who` under `scope`: `None` to let it through, or how
    /// long the client must wait.
    pub async fn check(&self, scope: Scope, who: &str) -> Option<Duration> {
        let limit = self.limit(scope)?;
        let wait = match &self.store {
            Store::Memory(m) => m.check(scope, who, limit),
            Store::Redis(r) => {
                let key = r.key(scope.tag(), who);
                match r.check(&key, limit.interval, limit.tolerance).await {
                    Ok(wait) => wait,
                    Err(e) => {
                        self.failed_open(&e);
                        None
                    }
                }
            }
        };
        if wait.is_some() {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        wait
    }

    fn failed_open(&self, e: &dyn std::error::Error) {
        self.store_errors.fetch_add(1, Ordering::Relaxed);
        let now = u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let last = self.last_warned_ms.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= LOG_EVERY.as_millis() as u64;
        if due
            && self
                .last_warned_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                error = %e,
                failures = self.store_errors.load(Ordering::Relaxed),
                "rate limits not checked (letting requests through): Redis did not answer"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let limit = Gcra::new(10, 3).expect("limit");
        let m = Memory::default();
        for _ in 0..3 {
            assert_eq!(m.check(Scope::User, "a", limit), None);
        }
        let wait = m.check(Scope::User, "a", limit).expect("refused");
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        // Another client, or another scope, has its own budget.
        assert_eq!(m.check(Scope::User, "b", limit), None);
        assert_eq!(m.check(Scope::Ip, "a", limit), None);
    }

    #[test]
    fn a_refused_request_costs_nothing_and_time_refills() {
        let limit = Gcra::new(10, 1).expect("limit");
        let t0 = Instant::now();
        let tat = limit.decide(t0, t0).expect("first");
        assert!(limit.decide(tat, t0).is_err());
        assert!(limit.decide(tat, t0 + Duration::from_millis(50)).is_err());
        assert!(limit.decide(tat, t0 + Duration::from_millis(100)).is_ok());
    }

    #[test]
    fn zero_means_no_limit() {
        assert!(Gcra::new(0, 10).is_none());
    }
}
