//! The services behind the gateway: one pool of addresses per role, picked
//! round robin among the healthy ones, reached over HTTP/2 cleartext (prior
//! knowledge) through hyper's client — one multiplexed connection per
//! address, opened again when it breaks.
//!
//! Health is **passive**: no probes. An address whose connection cannot be
//! opened, or whose call times out, is skipped for a cool-down; after it the
//! address gets traffic again, and one more failure skips it again. When
//! every address of a pool is cooling down, the caller answers 503 at once
//! instead of waiting on a dead service.

use crate::config::{Role, UpstreamAddr, Upstreams};
use axum::body::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The HTTP/2 client shared by every pool.
pub type H2Client = Client<HttpConnector, Full<Bytes>>;

/// A client that speaks only HTTP/2 (h2c), gives up on a connection that
/// takes longer than `connect_timeout` to open, and pings its connections
/// every second, idle or not: a dead peer is noticed before a request is
/// sent on it, and the pings keep the services' idle watchdog (5 s by
/// default) from closing a quiet connection just as a request goes out.
pub fn h2_client(connect_timeout: Duration) -> H2Client {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .http2_keep_alive_interval(Duration::from_secs(1))
        .http2_keep_alive_timeout(Duration::from_secs(5))
        .http2_keep_alive_while_idle(true)
        .build(connector)
}

/// One address and its health.
pub struct Endpoint {
    pub addr: UpstreamAddr,
    /// Milliseconds since the pools' epoch until which this address is
    /// skipped; 0 = healthy. An atomic: every request reads it, failures
    /// write it, and none of them should wait for another.
    down_until_ms: AtomicU64,
}

/// The addresses that serve one role.
pub struct Pool {
    pub role: Role,
    pub endpoints: Vec<Endpoint>,
    /// Round-robin cursor.
    next: AtomicUsize,
}

/// Why no address could be picked.
pub struct AllDown {
    /// When the first one comes back.
    pub retry_after: Duration,
}

impl Pool {
    fn new(role: Role, addrs: &[UpstreamAddr]) -> Self {
        Self {
            role,
            endpoints: addrs
                .iter()
                .map(|addr| Endpoint {
                    addr: addr.clone(),
                    down_until_ms: AtomicU64::new(0),
                })
                .collect(),
            next: AtomicUsize::new(0),
        }
    }
}

/// Every role's pool, and the clock their cool-downs are counted on.
pub struct Pools {
    pools: Vec<Pool>,
    cooldown: Duration,
    epoch: Instant,
}

impl Pools {
    /// A pool for every service role, or which roles have no address.
    pub fn new(upstreams: &Upstreams, cooldown: Duration) -> Result<Self, Vec<&'static str>> {
        let roles = Role::EVERY.into_iter().filter(|r| *r != Role::Gateway);
        let missing: Vec<_> = roles
            .clone()
            .filter(|r| upstreams.for_role(*r).is_empty())
            .map(Role::name)
            .collect();
        if !missing.is_empty() {
            return Err(missing);
        }
        Ok(Self {
            pools: roles.map(|r| Pool::new(r, upstreams.for_role(r))).collect(),
            cooldown,
            epoch: Instant::now(),
        })
    }

    pub fn pool(&self, role: Role) -> Option<&Pool> {
        self.pools.iter().find(|p| p.role == role)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The next healthy address of `pool` not in `tried`, round robin.
    pub fn pick(&self, pool: &Pool, tried: &[usize]) -> Result<usize, AllDown> {
        let n = pool.endpoints.len();
        let start = pool.next.fetch_add(1, Ordering::Relaxed);
        let now = self.now_ms();
        let mut soonest = u64::MAX;
        for k in 0..n {
            let i = (start + k) % n;
            if tried.contains(&i) {
                continue;
            }
            let until = pool.endpoints[i].down_until_ms.load(Ordering::Relaxed);
            if until <= now {
                return Ok(i);
            }
            soonest = soonest.min(until);
        }
        let wait = soonest
            .saturating_sub(now)
            .min(self.cooldown.as_millis() as u64);
        Err(AllDown {
            retry_after: Duration::from_millis(wait.max(1)),
        })
    }

    /// Skips `pool`'s address `i` for the cool-down.
    pub fn cool_down(&self, pool: &Pool, i: usize, why: &'static str) {
        let until = self.now_ms() + self.cooldown.as_millis() as u64;
        let was = pool.endpoints[i]
            .down_until_ms
            .swap(until, Ordering::Relaxed);
        if was <= self.now_ms() {
            // Logged when an address goes down, not for every request
            // that finds it down. An address is host:port, never a secret
            // (credentials are refused when the setting is parsed).
            tracing::warn!(
                role = pool.role.name(),
                upstream = pool.endpoints[i].addr.authority(),
                why,
                cooldown_ms = self.cooldown.as_millis() as u64,
                "upstream skipped for a cool-down"
            );
        }
    }
}
