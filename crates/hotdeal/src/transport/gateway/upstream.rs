//! The services behind the gateway: one pool of addresses per role, picked
//! round robin among the healthy ones, reached over HTTP/2 cleartext (prior
//! knowledge) through hyper's client — one multiplexed connection per
//! address, opened again when it breaks.
//!
//! A configured host name stands for every address it resolves to (looked
//! up at start and every [`RESOLVE_EVERY`]), so replicas behind one DNS
//! name share the load.
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
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::net::lookup_host;

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

/// How often the pools' host names are resolved again (a replica that
/// came or went behind one DNS name, a container with a new address).
pub const RESOLVE_EVERY: Duration = Duration::from_secs(5);

/// The longest a lookup may take before the previous answer is kept.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// One address and its health.
pub struct Endpoint {
    /// `ip:port` as resolved, or the configured `host:port` when the name
    /// did not resolve (the connector then tries, fails and cools it down).
    authority: String,
    /// Milliseconds since the pools' epoch until which this address is
    /// skipped; 0 = healthy. An atomic: every request reads it, failures
    /// write it, and none of them should wait for another.
    down_until_ms: AtomicU64,
}

impl Endpoint {
    fn new(authority: String) -> Self {
        Self {
            authority,
            down_until_ms: AtomicU64::new(0),
        }
    }

    pub fn authority(&self) -> &str {
        &self.authority
    }
}

/// The addresses that serve one role.
pub struct Pool {
    pub role: Role,
    /// As configured: each may be a host name standing for several
    /// addresses (Docker's DNS answers with every replica of a service).
    names: Vec<UpstreamAddr>,
    /// What the names resolved to last, one endpoint per address. Replaced
    /// whole by the resolver (health kept for addresses that stay); every
    /// request takes a cheap clone of the `Arc` under a read lock.
    endpoints: RwLock<Arc<Vec<Arc<Endpoint>>>>,
    /// Round-robin cursor.
    next: AtomicUsize,
}

/// Why no address could be picked.
#[derive(Debug)]
pub struct AllDown {
    /// When the first one comes back.
    pub retry_after: Duration,
}

impl Pool {
    fn new(role: Role, names: &[UpstreamAddr]) -> Self {
        let endpoints = names
            .iter()
            .map(|n| Arc::new(Endpoint::new(n.authority().to_owned())))
            .collect();
        Self {
            role,
            names: names.to_vec(),
            endpoints: RwLock::new(Arc::new(endpoints)),
            next: AtomicUsize::new(0),
        }
    }

    pub fn endpoints(&self) -> Arc<Vec<Arc<Endpoint>>> {
        self.endpoints
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Resolves every name again and swaps in the new address list if it
    /// changed.
    async fn refresh(&self) {
        let mut authorities: Vec<String> = Vec::new();
        for name in &self.names {
            for a in resolve(name).await {
                if !authorities.contains(&a) {
                    authorities.push(a);
                }
            }
        }
        let current = self.endpoints();
        let same = current
            .iter()
            .map(|e| e.authority.as_str())
            .eq(authorities.iter().map(String::as_str));
        if same {
            return;
        }
        let next: Vec<Arc<Endpoint>> = authorities
            .into_iter()
            .map(|a| {
                current
                    .iter()
                    .find(|e| e.authority == a)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(Endpoint::new(a)))
            })
            .collect();
        tracing::info!(
            role = self.role.name(),
            addresses = next.len(),
            "upstream addresses resolved"
        );
        *self.endpoints.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
    }
}

/// The addresses `name` stands for, as `ip:port`. When a name has IPv4
/// addresses, only those: `localhost` also answers `::1`, where a server
/// bound to 127.0.0.1 does not listen, and a dead address costs a failed
/// call before it cools down. A name that does not resolve stays as it is.
async fn resolve(name: &UpstreamAddr) -> Vec<String> {
    let looked_up = tokio::time::timeout(RESOLVE_TIMEOUT, lookup_host(name.authority())).await;
    let Ok(Ok(found)) = looked_up else {
        return vec![name.authority().to_owned()];
    };
    let found: Vec<SocketAddr> = found.collect();
    let any_v4 = found.iter().any(SocketAddr::is_ipv4);
    let mut out: Vec<String> = found
        .into_iter()
        .filter(|a| !any_v4 || a.is_ipv4())
        .map(|a| a.to_string())
        .collect();
    out.sort();
    out.dedup();
    if out.is_empty() {
        out.push(name.authority().to_owned());
    }
    out
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

    /// Resolves every pool's names again.
    pub async fn refresh(&self) {
        for pool in &self.pools {
            pool.refresh().await;
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The next healthy address of `pool` not in `tried`, round robin.
    pub fn pick(&self, pool: &Pool, tried: &[Arc<Endpoint>]) -> Result<Arc<Endpoint>, AllDown> {
        let endpoints = pool.endpoints();
        let n = endpoints.len();
        let start = pool.next.fetch_add(1, Ordering::Relaxed);
        let now = self.now_ms();
        let mut soonest = u64::MAX;
        for k in 0..n {
            let endpoint = &endpoints[(start + k) % n];
            if tried.iter().any(|t| Arc::ptr_eq(t, endpoint)) {
                continue;
            }
            let until = endpoint.down_until_ms.load(Ordering::Relaxed);
            if until <= now {
                return Ok(endpoint.clone());
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

    /// Skips `endpoint` of `pool` for the cool-down.
    pub fn cool_down(&self, pool: &Pool, endpoint: &Endpoint, why: &'static str) {
        let until = self.now_ms() + self.cooldown.as_millis() as u64;
        let was = endpoint.down_until_ms.swap(until, Ordering::Relaxed);
        if was <= self.now_ms() {
            // Logged when an address goes down, not for every request
            // that finds it down. An address is host:port, never a secret
            // (credentials are refused when the setting is parsed).
            tracing::warn!(
                role = pool.role.name(),
                upstream = endpoint.authority(),
                why,
                cooldown_ms = self.cooldown.as_millis() as u64,
                "upstream skipped for a cool-down"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_resolve_to_their_addresses_preferring_ipv4() {
        let local = UpstreamAddr::parse("http://localhost:8081").expect("addr");
        assert_eq!(resolve(&local).await, ["127.0.0.1:8081"]);
        let literal = UpstreamAddr::parse("http://127.0.0.2:9").expect("addr");
        assert_eq!(resolve(&literal).await, ["127.0.0.2:9"]);
        let nowhere = UpstreamAddr::parse("http://no-such-host.invalid:1").expect("addr");
        assert_eq!(resolve(&nowhere).await, ["no-such-host.invalid:1"]);
    }

    #[tokio::test]
    async fn health_survives_a_refresh_that_keeps_the_address() {
        let ups = Upstreams::parse_entry("all=http://127.0.0.1:1,http://127.0.0.1:2").expect("ups");
        let pools = Pools::new(&ups, Duration::from_secs(60)).expect("pools");
        let pool = pools.pool(Role::Order).expect("pool");
        let first = pools.pick(pool, &[]).expect("one");
        pools.cool_down(pool, &first, "test");
        pools.refresh().await;
        for _ in 0..4 {
            let picked = pools.pick(pool, &[]).expect("the other");
            assert_ne!(picked.authority(), first.authority());
        }
        let other = pools.pick(pool, &[]).expect("other");
        assert!(pools.pick(pool, &[other]).is_err(), "both down or tried");
    }
}
