//! The waiting room's queue on Redis (the scaled mode): one queue per deal
//! for every instance, kept across restarts, with the rules of
//! `adapters::memory_queue`. Each operation is one Lua script, so two
//! instances never see a queue half-changed.
//!
//! A deal's keys share one hash tag, `<prefix>:{q:<deal>}:…` (one Redis
//! Cluster slot): `meta` (the counters: credit, admissions, places given,
//! next join number), `users` (16-byte user id → the user's latest join in
//! 13 bytes: join number, place, poll limit, spent), `times` (the
//! admission time of each admitted place, 8 bytes apiece), `draw` (the
//! drawn place of each join before the opening, 4 bytes apiece), `rate`
//! (admission samples) and `claims` (join number → until when an order
//! holds it). Places are numbered in admission order, so a waiting user
//! costs one hash field — about 85 bytes, measured with `MEMORY USAGE` by
//! the ignored test `footprint` — and admitting n users writes n times,
//! touching no user's entry. Joining again replaces the user's entry, so a
//! queue holds each user once.
//!
//! Admission is computed from the caller's clock as in memory: every script
//! first turns the credit earned since the last call into admissions, so no
//! instance runs a timer, and two instances catching up one after the other
//! admit once. The draw is made one join at a time (inside-out
//! Fisher-Yates, with a random number from the joining instance): each
//! join before the opening takes a uniformly random position among those
//! so far. The first script at or after `opens_at` ends it, whichever
//! instance runs it, so every instance reads the same order, and the
//! opening costs the same for ten early joiners or a million (see
//! `queue.lua`).
//!
//! What Redis adds to the memory rules:
//! - a claim holds for [`CLAIM_LEASE`] at most, so an instance that dies
//!   mid-order does not hold its user's token for ever;
//! - the cap on users (`queue_max_users`) is a counter outside the deals'
//!   slots, raised after a join adds a user and read again only at the
//!   cap: it may overshoot by the joins in flight;
//! - deals with a queue are a set beside the queues, added to before a
//!   queue is made (so the sweep finds every queue) and again by the join
//!   that made it (in case a sweep dropped it meanwhile).

use super::{log_failure, RedisTier};
use crate::ports::queue::{
    NotAdmitted, QueueDeal, QueueError, QueueStats, QueueStore, Ticket, TicketState,
};
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use hotdeal_domain::{DealId, UserId};
use redis::aio::ConnectionManager;
use redis::{FromRedisValue, Script, ScriptInvocation};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The longest an order may hold a token between claim and settle: past
/// it the claim is void. Well beyond an order's longest path (a
/// reservation waits 30 s for its commit by default).
pub const CLAIM_LEASE: Duration = Duration::minutes(2);

/// Reply codes of the scripts (see `queue.lua`).
const TICKET: i64 = 0;
const UNKNOWN: i64 = 1;
const TOO_SOON: i64 = 2;
const FULL: i64 = 3;

/// Each script is the shared part followed by its own body.
macro_rules! queue_script {
    ($body:literal) => {
        Script::new(concat!(include_str!("queue.lua"), include_str!($body)))
    };
}

/// The queue's Lua scripts, loaded once per process (`EVALSHA`, falling
/// back to `EVAL` after Redis lost them).
struct QueueScripts {
    join: Script,
    poll: Script,
    claim: Script,
    settle: Script,
    stats: Script,
    forget: Script,
}

impl QueueScripts {
    fn load() -> Self {
        Self {
            join: queue_script!("queue_join.lua"),
            poll: queue_script!("queue_poll.lua"),
            claim: queue_script!("queue_claim.lua"),
            settle: queue_script!("queue_settle.lua"),
            stats: queue_script!("queue_stats.lua"),
            forget: Script::new(include_str!("queue_forget.lua")),
        }
    }
}

pub struct RedisQueue {
    /// The tier's multiplexed connection: cloning is cheap.
    conn: ConnectionManager,
    prefix: String,
    scripts: QueueScripts,
    max_users: u64,
    /// Users across the queues, as the counter last answered: joins are
    /// refused at `max_users` without asking Redis each time.
    users_seen: AtomicU64,
    /// Deals this instance has put in the set of deals with a queue. A
    /// std Mutex: held to look up or insert, never across an await.
    tracked: Mutex<HashSet<DealId>>,
}

impl std::fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQueue")
            .field("prefix", &self.prefix)
            .field("max_users", &self.max_users)
            .finish_non_exhaustive()
    }
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// A failed Redis call, logged by its kind only (the text may quote the
/// address).
fn backend(e: redis::RedisError) -> QueueError {
    log_failure(&e);
    QueueError::Backend(format!("{:?}", e.kind()))
}

fn unexpected(reply: &[i64]) -> QueueError {
    tracing::warn!(?reply, "a queue script answered unexpectedly");
    QueueError::Backend("unexpected reply from a queue script".into())
}

/// The ticket in a script's reply: `[TICKET, seq, kind, number, rate
/// numerator, rate denominator, poll_after_ms, …]`.
fn ticket(reply: &[i64]) -> Option<Ticket> {
    let &[TICKET, seq, kind, n, num, den, wait_ms, ..] = reply else {
        return None;
    };
    let state = match kind {
        0 => TicketState::Drawing {
            pool: u64::try_from(n).ok()?,
        },
        1 => TicketState::Waiting {
            ahead: u64::try_from(n).ok()?,
        },
        2 => TicketState::Admitted {
            until: from_micros(n),
        },
        3 => TicketState::Expired {
            until: Some(from_micros(n)),
        },
        4 => TicketState::Expired { until: None },
        _ => return None,
    };
    Some(Ticket {
        seq: u32::try_from(seq).ok()?,
        state,
        rate: rate(num, den),
        poll_after: Duration::milliseconds(wait_ms),
    })
}

/// The scripts' rate, `num` admissions per `den` µs, computed as the
/// memory queue does.
fn rate(num: i64, den: i64) -> f64 {
    num as f64 * 1e6 / den.max(1) as f64
}

impl RedisQueue {
    /// The waiting rooms on the tier's connection and key prefix, holding
    /// at most about `max_users` users across deals.
    pub fn new(tier: &RedisTier, max_users: u64) -> Self {
        Self {
            conn: tier.conn(),
            prefix: tier.prefix.clone(),
            scripts: QueueScripts::load(),
            max_users,
            users_seen: AtomicU64::new(0),
            tracked: Mutex::default(),
        }
    }

    fn keys(&self, deal: DealId) -> [String; 6] {
        let tag = format!("{}:{{q:{}}}", self.prefix, deal.0);
        ["meta", "users", "times", "rate", "claims", "draw"].map(|k| format!("{tag}:{k}"))
    }

    /// The set of deals that have a queue.
    fn deals_key(&self) -> String {
        format!("{}:queues", self.prefix)
    }

    /// Users in every queue (approximately, see the module's docs).
    fn users_key(&self) -> String {
        format!("{}:queues:users", self.prefix)
    }

    /// A call of `script` on the deal's keys, with the rules and `now`
    /// every catching-up script starts with (see `queue.lua`).
    fn call<'a>(
        &self,
        script: &'a Script,
        deal: &QueueDeal,
        now: DateTime<Utc>,
    ) -> ScriptInvocation<'a> {
        let mut call = script.prepare_invoke();
        for key in self.keys(deal.id) {
            call.key(key);
        }
        call.arg(micros(now))
            .arg(micros(deal.opens_at))
            .arg(deal.admit_per_sec.max(1))
            .arg(deal.admitted_for.num_microseconds().unwrap_or(0))
            .arg(deal.poll_min.num_milliseconds())
            .arg(deal.poll_max.num_milliseconds());
        call
    }

    async fn run<T: FromRedisValue>(&self, call: &ScriptInvocation<'_>) -> Result<T, QueueError> {
        let mut conn = self.conn.clone();
        call.invoke_async(&mut conn).await.map_err(backend)
    }

    /// Adds the deal to the set of deals with a queue (once per instance,
    /// unless `again`), before its queue may exist.
    async fn track(&self, deal: DealId, again: bool) -> Result<(), QueueError> {
        let known = self
            .tracked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&deal);
        if known && !again {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        redis::cmd("SADD")
            .arg(self.deals_key())
            .arg(deal.0.to_string())
            .query_async::<()>(&mut conn)
            .await
            .map_err(backend)?;
        self.tracked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(deal);
        Ok(())
    }

    /// Whether the rooms may take another user.
    async fn has_room(&self) -> Result<bool, QueueError> {
        if self.users_seen.load(Ordering::Relaxed) < self.max_users {
            return Ok(true);
        }
        // At the cap as last seen; queues may have been dropped since.
        let mut conn = self.conn.clone();
        let users: Option<i64> = redis::cmd("GET")
            .arg(self.users_key())
            .query_async(&mut conn)
            .await
            .map_err(backend)?;
        let users = users.unwrap_or(0).max(0) as u64;
        self.users_seen.store(users, Ordering::Relaxed);
        Ok(users < self.max_users)
    }

    /// Counts a user a join added. A failure is logged, and the count
    /// stays short by one.
    async fn count_user(&self) {
        let mut conn = self.conn.clone();
        match redis::cmd("INCR")
            .arg(self.users_key())
            .query_async::<i64>(&mut conn)
            .await
        {
            Ok(users) => self
                .users_seen
                .store(users.max(0) as u64, Ordering::Relaxed),
            Err(e) => log_failure(&e),
        }
    }
}

#[async_trait]
impl QueueStore for RedisQueue {
    async fn join(
        &self,
        deal: &QueueDeal,
        user: UserId,
        now: DateTime<Utc>,
    ) -> Result<Ticket, QueueError> {
        self.track(deal.id, false).await?;
        let room = self.has_room().await?;
        let mut call = self.call(&self.scripts.join, deal, now);
        // Join numbers start anywhere, so a token of a queue that was lost
        // rarely names a join of the next one.
        call.arg(user.0.as_bytes())
            .arg(rand::random::<u32>())
            .arg(u8::from(room))
            // The join's draw, should it come before the opening (below
            // 2^53, so exact in Lua).
            .arg(rand::random::<u64>() >> 11);
        let reply: Vec<i64> = self.run(&call).await?;
        if reply.first() == Some(&FULL) {
            return Err(QueueError::Full);
        }
        let t = ticket(&reply).ok_or_else(|| unexpected(&reply))?;
        if reply.get(7) == Some(&1) {
            self.count_user().await;
        }
        if reply.get(8) == Some(&1) {
            // Made the queue: tracked again, should a sweep have dropped
            // the deal from the set since this instance tracked it. The
            // join stands either way (a failure is logged).
            let _ = self.track(deal.id, true).await;
        }
        Ok(t)
    }

    async fn poll(
        &self,
        deal: &QueueDeal,
        user: UserId,
        seq: u32,
        now: DateTime<Utc>,
    ) -> Result<Ticket, QueueError> {
        let mut call = self.call(&self.scripts.poll, deal, now);
        call.arg(user.0.as_bytes()).arg(seq);
        let reply: Vec<i64> = self.run(&call).await?;
        match reply.as_slice() {
            [UNKNOWN] => Ok(Ticket::expired(seq, deal)),
            &[TOO_SOON, ms] => Err(QueueError::TooSoon {
                retry_in: Duration::milliseconds(ms),
            }),
            _ => ticket(&reply).ok_or_else(|| unexpected(&reply)),
        }
    }

    async fn claim(
        &self,
        deal: &QueueDeal,
        user: UserId,
        seq: u32,
        now: DateTime<Utc>,
    ) -> Result<(), NotAdmitted> {
        let mut call = self.call(&self.scripts.claim, deal, now);
        call.arg(user.0.as_bytes())
            .arg(seq)
            .arg(CLAIM_LEASE.num_microseconds().unwrap_or(i64::MAX));
        match self.run::<i64>(&call).await {
            Ok(0) => Ok(()),
            Ok(1) => Err(NotAdmitted::Waiting),
            Ok(3) => Err(NotAdmitted::InUse),
            Ok(_) => Err(NotAdmitted::Expired),
            Err(_) => Err(NotAdmitted::Unavailable),
        }
    }

    async fn settle(&self, deal: DealId, user: UserId, seq: u32, used: bool) {
        let mut call = self.scripts.settle.prepare_invoke();
        for key in self.keys(deal) {
            call.key(key);
        }
        call.arg(user.0.as_bytes()).arg(seq).arg(u8::from(used));
        // On failure (logged) the claim lapses after its lease; a spent
        // token then stays usable for one more order.
        let _ = self.run::<i64>(&call).await;
    }

    async fn deals(&self) -> Vec<DealId> {
        let mut conn = self.conn.clone();
        let members: Vec<String> = match redis::cmd("SMEMBERS")
            .arg(self.deals_key())
            .query_async(&mut conn)
            .await
        {
            Ok(m) => m,
            Err(e) => {
                log_failure(&e);
                return Vec::new();
            }
        };
        members
            .iter()
            .filter_map(|m| m.parse().ok().map(DealId))
            .collect()
    }

    async fn stats(&self) -> Vec<QueueStats> {
        let mut stats = Vec::new();
        for deal in self.deals().await {
            let mut call = self.scripts.stats.prepare_invoke();
            for key in self.keys(deal) {
                call.key(key);
            }
            let Ok(reply) = self.run::<Vec<i64>>(&call).await else {
                return stats;
            };
            if let &[waiting, admitted, num, den] = reply.as_slice() {
                stats.push(QueueStats {
                    deal,
                    waiting: waiting.max(0) as u64,
                    admitted: admitted.max(0) as u64,
                    admit_per_sec: rate(num, den),
                });
            }
        }
        stats
    }

    async fn forget(&self, deal: DealId) {
        let mut call = self.scripts.forget.prepare_invoke();
        for key in self.keys(deal) {
            call.key(key);
        }
        let Ok(users) = self.run::<i64>(&call).await else {
            return;
        };
        // The queue is gone; the set and the count follow (a crash here
        // leaves the deal in the set, and the next sweep drops it again).
        let mut pipe = redis::pipe();
        pipe.srem(self.deals_key(), deal.0.to_string()).ignore();
        if users > 0 {
            pipe.decr(self.users_key(), users).ignore();
        }
        let mut conn = self.conn.clone();
        if let Err(e) = pipe.query_async::<()>(&mut conn).await {
            log_failure(&e);
        }
        self.tracked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&deal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::ports::queue::contract::{self, deal, t};
    use crate::ports::SystemClock;
    use std::sync::Arc;

    /// The Redis the tests use: `HOTDEAL_TEST_REDIS_URL`, or under `CI=true`
    /// the local one (a missing server then fails the test); else `None`
    /// after a notice.
    fn redis_url(test: &str) -> Option<String> {
        if let Some(url) = std::env::var("HOTDEAL_TEST_REDIS_URL")
            .ok()
            .filter(|u| !u.is_empty())
        {
            return Some(url);
        }
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            return Some("redis://127.0.0.1:6379".into());
        }
        eprintln!("notice: {test} skipped: it needs Redis (set HOTDEAL_TEST_REDIS_URL)");
        None
    }

    /// Queues under a key prefix of their own, deleted when this drops.
    struct Scratch {
        url: String,
        prefix: String,
    }

    impl Scratch {
        fn new(url: &str) -> Self {
            Self {
                url: url.to_owned(),
                prefix: format!("hdq-{}", uuid::Uuid::new_v4().simple()),
            }
        }

        /// A queue on a connection of its own (as another instance's).
        async fn queue(&self, max_users: u64) -> RedisQueue {
            let tier = RedisTier::open(
                &Secret::new(self.url.clone()),
                &self.prefix,
                chrono::Duration::seconds(30),
                Arc::new(SystemClock),
            )
            .await
            .expect("Redis");
            RedisQueue::new(&tier, max_users)
        }

        async fn conn(&self) -> redis::aio::MultiplexedConnection {
            redis::Client::open(self.url.as_str())
                .expect("url")
                .get_multiplexed_async_connection()
                .await
                .expect("Redis")
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let (url, pattern) = (self.url.clone(), format!("{}:*", self.prefix));
            // Its own thread and runtime: this may run inside a test's.
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    let Ok(client) = redis::Client::open(url.as_str()) else {
                        return;
                    };
                    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
                        return;
                    };
                    let mut cursor: u64 = 0;
                    loop {
                        let page: redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(&pattern)
                            .arg("COUNT")
                            .arg(1000)
                            .query_async(&mut conn)
                            .await;
                        let Ok((next, keys)) = page else { return };
                        if !keys.is_empty() {
                            let _: redis::RedisResult<()> =
                                redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
                        }
                        if next == 0 {
                            return;
                        }
                        cursor = next;
                    }
                });
            })
            .join();
        }
    }

    #[tokio::test]
    async fn keeps_the_port_contract() {
        let Some(url) = redis_url("keeps_the_port_contract") else {
            return;
        };
        let s = Scratch::new(&url);
        let q = s.queue(100_000).await;
        contract::admission_follows_join_order_at_the_rate(&q).await;
        contract::early_joins_are_drawn_once_at_the_opening(&q).await;
        contract::the_draw_favours_no_one(&q).await;
        contract::a_user_holds_one_live_token_and_spends_it_once(&q).await;
        contract::a_waiting_token_cannot_order(&q).await;
        contract::polling_too_soon_is_refused(&q).await;
        contract::deals_stats_and_forget(&q).await;
        contract::the_rate_is_measured_while_users_wait(&q).await;
        let capped = Scratch::new(&url);
        contract::joins_are_refused_at_the_cap(&capped.queue(3).await).await;
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        #[test]
        fn admission_after_the_opening_is_in_join_order(
            rate in 1u32..50,
            gaps_ms in proptest::collection::vec(0u32..400, 1..40),
            touches in proptest::collection::vec(0u32..4000, 0..20),
        ) {
            let Some(url) = redis_url("admission_after_the_opening_is_in_join_order") else {
                return Ok(());
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let s = Scratch::new(&url);
            rt.block_on(async {
                let q = s.queue(100_000).await;
                contract::admission_after_the_opening_is_in_join_order(&q, rate, gaps_ms, touches)
                    .await;
            });
        }
    }

    /// Instances opening the queue at once draw once: every answer, from
    /// either, gives each early joiner the same place.
    #[tokio::test]
    async fn instances_agree_on_the_draw() {
        let Some(url) = redis_url("instances_agree_on_the_draw") else {
            return;
        };
        let s = Scratch::new(&url);
        let (a, b) = (Arc::new(s.queue(1_000).await), s.queue(1_000).await);
        let d = deal(1);
        let users: Vec<UserId> = (0..200).map(|_| UserId::new()).collect();
        for u in &users {
            a.join(&d, *u, t(1.0)).await.expect("join");
        }
        let place = |tk: Ticket| match tk.state {
            TicketState::Waiting { ahead } => ahead,
            other => panic!("{other:?}"),
        };
        // Half the users ask instance a, half instance b, all at once.
        let mut asks = tokio::task::JoinSet::new();
        for (i, u) in users.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
            let (a, u) = (a.clone(), *u);
            asks.spawn(async move { (i, a.join(&d, u, t(10.0)).await) });
        }
        let mut places = vec![u64::MAX; users.len()];
        for (i, u) in users.iter().enumerate().filter(|(i, _)| i % 2 == 1) {
            places[i] = place(b.join(&d, *u, t(10.0)).await.expect("join"));
        }
        while let Some(done) = asks.join_next().await {
            let (i, tk) = done.expect("task");
            places[i] = place(tk.expect("join"));
        }
        let mut sorted = places.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..200).collect::<Vec<_>>());
        for (i, u) in users.iter().enumerate() {
            let tk = b.join(&d, *u, t(10.0)).await.expect("join");
            assert_eq!(place(tk), places[i], "user {i}");
        }
    }

    /// The queue lives in Redis: a new connection (a restarted instance)
    /// finds every join where it was.
    #[tokio::test]
    async fn the_queue_outlives_its_instance() {
        let Some(url) = redis_url("the_queue_outlives_its_instance") else {
            return;
        };
        let s = Scratch::new(&url);
        let d = deal(1);
        let (u, v) = (UserId::new(), UserId::new());
        let (first, second) = {
            let a = s.queue(1_000).await;
            let first = a.join(&d, u, t(10.0)).await.expect("join");
            (first, a.join(&d, v, t(10.0)).await.expect("join"))
        };
        let b = s.queue(1_000).await;
        let tk = b.poll(&d, v, second.seq, t(11.0)).await.expect("poll");
        assert_eq!(tk.state, TicketState::Waiting { ahead: 0 });
        let tk = b.poll(&d, u, first.seq, t(11.0)).await.expect("poll");
        assert!(matches!(tk.state, TicketState::Admitted { .. }), "{tk:?}");
        b.claim(&d, u, first.seq, t(11.0)).await.expect("claim");
    }

    /// A claim its instance never settled lapses after the lease.
    #[tokio::test]
    async fn an_unsettled_claim_lapses() {
        let Some(url) = redis_url("an_unsettled_claim_lapses") else {
            return;
        };
        let s = Scratch::new(&url);
        let q = s.queue(1_000).await;
        let d = deal(100);
        let u = UserId::new();
        let tk = q.join(&d, u, t(10.0)).await.expect("join");
        q.claim(&d, u, tk.seq, t(11.0)).await.expect("claim");
        let held = t(11.0) + CLAIM_LEASE - Duration::seconds(1);
        assert_eq!(q.claim(&d, u, tk.seq, held).await, Err(NotAdmitted::InUse));
        let lapsed = t(11.0) + CLAIM_LEASE;
        q.claim(&d, u, tk.seq, lapsed).await.expect("claim again");
    }

    /// Redis refusing a call is the queue's backend failing: an error to
    /// answer "retry", never a panic.
    #[tokio::test]
    async fn a_failing_redis_is_a_backend_error() {
        let Some(url) = redis_url("a_failing_redis_is_a_backend_error") else {
            return;
        };
        let s = Scratch::new(&url);
        let q = s.queue(1_000).await;
        let d = deal(1);
        let u = UserId::new();
        let tk = q.join(&d, u, t(10.0)).await.expect("join");
        // The queue's counters replaced by a string: every script fails.
        let mut conn = s.conn().await;
        let meta = q.keys(d.id)[0].clone();
        let _: () = redis::cmd("SET")
            .arg(&meta)
            .arg("x")
            .query_async(&mut conn)
            .await
            .expect("SET");
        assert!(matches!(
            q.join(&d, u, t(10.0)).await,
            Err(QueueError::Backend(_))
        ));
        assert!(matches!(
            q.poll(&d, u, tk.seq, t(20.0)).await,
            Err(QueueError::Backend(_))
        ));
        assert_eq!(
            q.claim(&d, u, tk.seq, t(20.0)).await,
            Err(NotAdmitted::Unavailable)
        );
        q.settle(d.id, u, tk.seq, true).await;
        assert!(q.stats().await.is_empty());
    }

    /// Bytes per waiting user, by `MEMORY USAGE`, and how long the
    /// opening and a catch-up admitting everyone hold Redis. Slow: `cargo
    /// test -p hotdeal --lib footprint -- --ignored --nocapture` (and
    /// `QUEUE_FOOTPRINT_USERS=…` for another count than 100,000).
    #[tokio::test(flavor = "multi_thread")]
    #[ignore]
    async fn footprint() {
        let Some(url) = redis_url("footprint") else {
            return;
        };
        let n: u32 = std::env::var("QUEUE_FOOTPRINT_USERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100_000);
        let s = Scratch::new(&url);
        let q = Arc::new(s.queue(u64::from(n) * 2).await);
        let d = deal(1);
        // Half before the opening (they draw), half after.
        join_many(&q, &d, 0..n / 2, t(1.0)).await;
        let started = std::time::Instant::now();
        join_many(&q, &d, n / 2..n / 2 + 1, t(10.0)).await;
        let opening = started.elapsed();
        join_many(&q, &d, n / 2 + 1..n, t(10.0)).await;
        let mut conn = s.conn().await;
        let waiting = usage(&mut conn, &q.keys(d.id)).await;
        // A day later at 1/s: everyone in, in one catch-up.
        let started = std::time::Instant::now();
        let late = t(10.0) + Duration::days(1);
        join_many(&q, &d, n..n + 1, late).await;
        let admit_all = started.elapsed();
        let admitted = usage(&mut conn, &q.keys(d.id)).await;
        let per = |bytes: u64| bytes as f64 / f64::from(n);
        eprintln!(
            "{n} users: {waiting} bytes waiting ({:.1} per waiting user), {admitted} bytes \
             admitted ({:.1} per admitted user); the opening took {opening:?}, admitting \
             all of them at once {admit_all:?}",
            per(waiting),
            per(admitted),
        );
        assert!(
            per(waiting) <= 200.0,
            "{:.1} bytes per waiting user",
            per(waiting)
        );
    }

    /// Bytes Redis holds for `keys`, by `MEMORY USAGE … SAMPLES 0` (exact).
    async fn usage(conn: &mut redis::aio::MultiplexedConnection, keys: &[String]) -> u64 {
        let mut bytes = 0;
        for key in keys {
            let used: Option<u64> = redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(key)
                .arg("SAMPLES")
                .arg(0)
                .query_async(conn)
                .await
                .expect("MEMORY USAGE");
            bytes += used.unwrap_or(0);
        }
        bytes
    }

    /// Users `users` (numbered ids) join, 500 at a time.
    async fn join_many(
        q: &Arc<RedisQueue>,
        d: &QueueDeal,
        users: std::ops::Range<u32>,
        now: DateTime<Utc>,
    ) {
        let mut next = users.start;
        while next < users.end {
            let last = (next + 500).min(users.end);
            let mut batch = tokio::task::JoinSet::new();
            for i in next..last {
                let (q, d) = (q.clone(), *d);
                let user = UserId(uuid::Uuid::from_u64_pair(
                    0x0190_0000_0000_7000,
                    u64::from(i),
                ));
                batch.spawn(async move { q.join(&d, user, now).await });
            }
            while let Some(done) = batch.join_next().await {
                done.expect("task").expect("join");
            }
            next = last;
        }
    }
}
