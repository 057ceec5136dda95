//! The shared admission tier on Redis, for several instances of hotdeal,
//! and beside it the waiting rooms' queues (`queue`).
//!
//! Each stock key and each coupon lives under its own hash tag
//! (`<prefix>:{d:<id>}:units`, `…:held`, `…:resv`, `…:due`, `…:applied`),
//! so every Lua script touches one slot: ready for Redis Cluster. A
//! reservation is a field of the key's `resv` hash named by the write's id
//! and a member of its `due` set scored by its deadline; settling removes
//! it, and only the call that removes it gives units back, so the request
//! and the reconciler can both settle without counting twice.
//!
//! Reads of counts (`available`, `issued`) come from a local copy that a
//! background task refreshes every [`REFRESH`] for the keys read lately,
//! and that holds and give-backs update as they answer: pages show counts
//! at most that old, and the order path never waits for a read.

mod coupons;
mod queue;
mod rate_limit;
mod stock;

pub use queue::{RedisQueue, CLAIM_LEASE};
pub use rate_limit::{RateLimitError, RedisRateLimit};

use crate::config::Secret;
use crate::ports::Clock;
use chrono::{DateTime, Utc};
use hotdeal_domain::StockKey;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How stale a count read from the local copy may be.
pub const REFRESH: Duration = Duration::from_millis(100);
/// A key not read for this long is no longer refreshed.
const WATCH_FOR: Duration = Duration::from_secs(10);
/// Applied event names are kept this long (the relay retries well within).
const APPLIED_FOR: chrono::Duration = chrono::Duration::days(2);

/// The Lua scripts, loaded once per process (`EVALSHA`, falling back to
/// `EVAL` after Redis lost them).
struct Scripts {
    hold: Script,
    release: Script,
    give_back: Script,
    seed: Script,
    issue: Script,
    unissue: Script,
    seed_coupon: Script,
}

impl Scripts {
    fn load() -> Self {
        Self {
            hold: Script::new(include_str!("hold.lua")),
            release: Script::new(include_str!("release.lua")),
            give_back: Script::new(include_str!("give_back.lua")),
            seed: Script::new(include_str!("seed.lua")),
            issue: Script::new(include_str!("issue.lua")),
            unissue: Script::new(include_str!("unissue.lua")),
            seed_coupon: Script::new(include_str!("seed_coupon.lua")),
        }
    }
}

/// A count as last seen, and when it changed.
#[derive(Clone, Copy)]
struct Seen {
    value: i64,
    changed_at: DateTime<Utc>,
    read_at: Instant,
    /// When a script last told the value: a refresh that began before
    /// may carry an older one and must not overwrite it.
    told_at: Instant,
    /// The key's change counter with the value, where the tier keeps one
    /// (stock keys): answers arriving out of order keep the newest.
    ver: i64,
}

/// The local copy of counts: stock keys and coupons by their id.
#[derive(Default)]
struct Copies {
    stock: HashMap<StockKey, Seen>,
    coupons: HashMap<uuid::Uuid, Seen>,
}

pub struct RedisTier {
    conn: ConnectionManager,
    prefix: String,
    scripts: Scripts,
    clock: Arc<dyn Clock>,
    /// How long a reservation may wait for its commit.
    ttl: chrono::Duration,
    copies: Mutex<Copies>,
    version: AtomicU64,
}

impl std::fmt::Debug for RedisTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTier")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Why the tier could not be opened. Never holds the URL.
#[derive(Debug, thiserror::Error)]
#[error("cannot reach Redis: {0}")]
pub struct OpenError(String);

impl RedisTier {
    /// Connects (the URL is a secret: it appears in no error) and starts
    /// the refresher of the local copy.
    pub async fn open(
        url: &Secret,
        prefix: &str,
        ttl: chrono::Duration,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, OpenError> {
        // Errors from the client may quote the address; keep only the kind.
        let client =
            redis::Client::open(url.expose()).map_err(|e| OpenError(format!("{:?}", e.kind())))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| OpenError(format!("{:?}", e.kind())))?;
        let tier = Arc::new(Self {
            conn,
            prefix: prefix.to_owned(),
            scripts: Scripts::load(),
            clock,
            ttl,
            copies: Mutex::default(),
            version: AtomicU64::new(1),
        });
        tokio::spawn(refresh(Arc::downgrade(&tier)));
        Ok(tier)
    }

    fn conn(&self) -> ConnectionManager {
        // A handle on one multiplexed connection: cloning is cheap, and
        // concurrent commands share it (pipelined by the client).
        self.conn.clone()
    }

    fn deadline_ms(&self) -> i64 {
        (self.clock.now() + self.ttl).timestamp_millis()
    }

    /// The hash tag and key names of a stock key.
    fn stock_keys(&self, key: StockKey) -> StockKeys {
        let tag = format!("{}:{{{}}}", self.prefix, stock::member(key));
        StockKeys {
            units: format!("{tag}:units"),
            held: format!("{tag}:held"),
            resv: format!("{tag}:resv"),
            due: format!("{tag}:due"),
            applied: format!("{tag}:applied"),
            ver: format!("{tag}:ver"),
        }
    }

    fn coupon_keys(&self, coupon: uuid::Uuid) -> CouponKeys {
        let tag = format!("{}:{{c:{coupon}}}", self.prefix);
        CouponKeys {
            total: format!("{tag}:total"),
            holders: format!("{tag}:holders"),
            resv: format!("{tag}:resv"),
            due: format!("{tag}:due"),
        }
    }

    /// The set of seeded stock keys (`p:<id>`, `d:<id>`), for the
    /// reconciler. Added to before a key is seeded, so it is never short.
    fn tracked_stock(&self) -> String {
        format!("{}:tracked:stock", self.prefix)
    }

    fn tracked_coupons(&self) -> String {
        format!("{}:tracked:coupons", self.prefix)
    }

    fn note_stock(&self, key: StockKey, value: i64, ver: i64) {
        let mut copies = self.copies.lock().unwrap_or_else(|e| e.into_inner());
        let stamp = Stamp::Version(ver);
        note(
            &mut copies.stock,
            key,
            value,
            self.clock.now(),
            &self.version,
            stamp,
        );
    }

    fn note_coupon(&self, coupon: uuid::Uuid, value: i64) {
        let mut copies = self.copies.lock().unwrap_or_else(|e| e.into_inner());
        let stamp = Stamp::Told;
        note(
            &mut copies.coupons,
            coupon,
            value,
            self.clock.now(),
            &self.version,
            stamp,
        );
    }

    /// Refreshes the copies of every key read lately, in one pipeline.
    async fn refresh_copies(&self) -> redis::RedisResult<()> {
        // Before the keys are listed: a copy made after this was not
        // listed by this refresh.
        let started = Instant::now();
        let (stock, coupons): (Vec<StockKey>, Vec<uuid::Uuid>) = {
            let mut copies = self.copies.lock().unwrap_or_else(|e| e.into_inner());
            copies.stock.retain(|_, s| s.read_at.elapsed() < WATCH_FOR);
            copies
                .coupons
                .retain(|_, s| s.read_at.elapsed() < WATCH_FOR);
            (
                copies.stock.keys().copied().collect(),
                copies.coupons.keys().copied().collect(),
            )
        };
        if stock.is_empty() && coupons.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for &k in &stock {
            let keys = self.stock_keys(k);
            pipe.get(keys.units).get(keys.ver);
        }
        for &c in &coupons {
            pipe.scard(self.coupon_keys(c).holders);
        }
        let mut conn = self.conn();
        let values: Vec<Option<i64>> = pipe.query_async(&mut conn).await?;
        let now = self.clock.now();
        let mut copies = self.copies.lock().unwrap_or_else(|e| e.into_inner());
        let (sv, cv) = values.split_at((2 * stock.len()).min(values.len()));
        for (k, pair) in stock.iter().zip(sv.chunks(2)) {
            // A key closed while this refresh was on its way (its copy
            // removed, perhaps watched afresh since) must not come back
            // with the count read before the close.
            let watched_before_start = copies.stock.get(k).is_some_and(|s| s.told_at <= started);
            match pair {
                [Some(_), _] if !watched_before_start => {}
                [Some(v), ver] => {
                    let stamp = Stamp::Version(ver.unwrap_or(0));
                    note(&mut copies.stock, *k, *v, now, &self.version, stamp)
                }
                // Gone (closed, or the tier lost it): show the store's.
                _ => {
                    if copies.stock.remove(k).is_some() {
                        self.version.fetch_add(1, Ordering::AcqRel);
                    }
                }
            }
        }
        for (c, v) in coupons.iter().zip(cv) {
            if let Some(v) = v {
                let stamp = Stamp::Refreshed(started);
                note(&mut copies.coupons, *c, *v, now, &self.version, stamp);
            }
        }
        Ok(())
    }

    /// Forgets event names applied long ago (they can no longer repeat).
    async fn trim_applied(&self, keys: &[String]) -> redis::RedisResult<()> {
        let horizon = (self.clock.now() - APPLIED_FOR).timestamp_millis();
        let mut pipe = redis::pipe();
        for k in keys {
            pipe.zrembyscore(k, "-inf", horizon).ignore();
        }
        let mut conn = self.conn();
        pipe.query_async::<()>(&mut conn).await
    }
}

struct StockKeys {
    units: String,
    held: String,
    resv: String,
    due: String,
    applied: String,
    ver: String,
}

struct CouponKeys {
    total: String,
    holders: String,
    resv: String,
    due: String,
}

/// How fresh a count told to [`note`] is.
#[derive(Clone, Copy)]
enum Stamp {
    /// With the key's change counter (stock keys).
    Version(i64),
    /// Told by a script now (coupons).
    Told,
    /// Read by a refresh that began then (coupons).
    Refreshed(Instant),
}

/// Records a count unless a newer one is known; bumps `version` if it
/// changed.
fn note<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, Seen>,
    key: K,
    value: i64,
    now: DateTime<Utc>,
    version: &AtomicU64,
    stamp: Stamp,
) {
    match map.get_mut(&key) {
        Some(s) => {
            let newer = match stamp {
                Stamp::Version(v) => v >= s.ver,
                Stamp::Told => true,
                // A script told a newer value while the refresh was on
                // its way.
                Stamp::Refreshed(began) => began >= s.told_at,
            };
            if !newer {
                return;
            }
            match stamp {
                Stamp::Version(v) => s.ver = v,
                Stamp::Told => s.told_at = Instant::now(),
                Stamp::Refreshed(_) => {}
            }
            if s.value != value {
                s.value = value;
                s.changed_at = now;
                version.fetch_add(1, Ordering::AcqRel);
            }
        }
        None => {
            let at = Instant::now();
            let ver = match stamp {
                Stamp::Version(v) => v,
                _ => 0,
            };
            map.insert(
                key,
                Seen {
                    value,
                    changed_at: now,
                    read_at: at,
                    told_at: at,
                    ver,
                },
            );
            version.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// Reads a copy and marks it read (so the refresher keeps it fresh).
fn read<K: std::hash::Hash + Eq + Copy>(
    map: &mut HashMap<K, Seen>,
    key: K,
) -> Option<(i64, DateTime<Utc>)> {
    let s = map.get_mut(&key)?;
    s.read_at = Instant::now();
    Some((s.value, s.changed_at))
}

/// Keeps the copies fresh while the tier lives.
async fn refresh(tier: std::sync::Weak<RedisTier>) {
    let mut tick = tokio::time::interval(REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rounds: u64 = 0;
    loop {
        tick.tick().await;
        let Some(tier) = tier.upgrade() else { return };
        if let Err(e) = tier.refresh_copies().await {
            tracing::debug!(error = ?e.kind(), "refreshing counts from Redis failed");
        }
        rounds += 1;
        // Once an hour, trim what no event can repeat any more.
        if rounds % 36_000 == 1 {
            let keys = tier.tracked_applied().await.unwrap_or_default();
            if let Err(e) = tier.trim_applied(&keys).await {
                tracing::debug!(error = ?e.kind(), "trimming applied events failed");
            }
        }
    }
}

/// Logs a failed Redis call by its kind (the error text may quote the
/// address); the caller answers "not now, retry" or leaves the work to
/// the reconciler.
fn log_failure(e: &redis::RedisError) {
    tracing::warn!(error = ?e.kind(), "the Redis tier failed");
}

/// How long a running mark outlives an instance that died mid-request.
const RUNNING_FOR: Duration = Duration::from_secs(60);

impl RedisTier {
    fn running_key(&self, user: hotdeal_domain::UserId, key: &str) -> String {
        // The key is client text: hashed, so no byte of it shapes ours.
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(key.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("{}:running:{}:{hex}", self.prefix, user.0)
    }
}

#[async_trait::async_trait]
impl crate::ports::RunningKeys for Arc<RedisTier> {
    async fn start(
        &self,
        user: hotdeal_domain::UserId,
        key: &str,
    ) -> Result<bool, crate::ports::MarksUnavailable> {
        let mut conn = self.conn();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.running_key(user, key))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(RUNNING_FOR.as_millis() as u64)
            .query_async(&mut conn)
            .await
            .map_err(|e| {
                log_failure(&e);
                crate::ports::MarksUnavailable
            })?;
        Ok(set.is_some())
    }

    async fn is_running(&self, user: hotdeal_domain::UserId, key: &str) -> bool {
        let mut conn = self.conn();
        redis::cmd("EXISTS")
            .arg(self.running_key(user, key))
            .query_async::<bool>(&mut conn)
            .await
            .unwrap_or(false)
    }

    fn finish(&self, user: hotdeal_domain::UserId, key: &str) {
        let name = self.running_key(user, key);
        let mut conn = self.conn();
        tokio::spawn(async move {
            let _: redis::RedisResult<()> =
                redis::cmd("DEL").arg(name).query_async(&mut conn).await;
        });
    }
}
