//! The shared half of the gateway's rate limiter: GCRA state in Redis, one
//! Lua script per check (`gcra.lua`), so several gateways count one user's
//! requests together.
//!
//! One key per limit (`<prefix>:rl:{u:<user>}`, `<prefix>:rl:{ip:<addr>}`):
//! each script call touches one key, so this also runs on Redis Cluster.
//! A key holds one number and expires when its state no longer matters.
//! Calls are bounded by a short response timeout: a slow or absent Redis
//! must not slow the gateway (what the caller does then is its policy).

use crate::config::Secret;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use std::time::Duration;

/// The most a check may wait for Redis before it counts as failed.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(250);

/// GCRA state in Redis.
pub struct RedisRateLimit {
    /// One multiplexed connection, re-established in the background after
    /// Redis comes back.
    conn: ConnectionManager,
    prefix: String,
    script: Script,
}

impl std::fmt::Debug for RedisRateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimit")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Why a check could not be made. Never holds the URL.
#[derive(Debug, thiserror::Error)]
#[error("Redis rate limit: {0}")]
pub struct RateLimitError(String);

impl RedisRateLimit {
    /// Connects (the URL is a secret: it appears in no error).
    pub async fn open(url: &Secret, prefix: &str) -> Result<Self, RateLimitError> {
        let kind = |e: redis::RedisError| RateLimitError(format!("{:?}", e.kind()));
        let client = redis::Client::open(url.expose()).map_err(kind)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            // No retries inside a request: a failed check fails at once.
            .set_number_of_retries(0)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(kind)?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
            script: Script::new(include_str!("gcra.lua")),
        })
    }

    /// The key of one client's limit; `scope` says which limit (`u`, `ip`),
    /// `who` whose. The hash tag keeps the key in one slot.
    pub fn key(&self, scope: &str, who: &str) -> String {
        format!("{}:rl:{{{scope}:{who}}}", self.prefix)
    }

    /// One request against `key`: `Ok(None)` allowed, `Ok(Some(wait))`
    /// refused until `wait` has passed.
    pub async fn check(
        &self,
        key: &str,
        interval: Duration,
        tolerance: Duration,
    ) -> Result<Option<Duration>, RateLimitError> {
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let mut conn = self.conn.clone();
        let mut invocation = self.script.key(key);
        invocation.arg(micros(interval)).arg(micros(tolerance));
        let call = invocation.invoke_async::<i64>(&mut conn);
        let wait = tokio::time::timeout(RESPONSE_TIMEOUT, call)
            .await
            .map_err(|_| RateLimitError("timed out".into()))?
            .map_err(|e| RateLimitError(format!("{:?}", e.kind())))?;
        Ok((wait > 0).then(|| Duration::from_micros(wait.unsigned_abs())))
    }
}
