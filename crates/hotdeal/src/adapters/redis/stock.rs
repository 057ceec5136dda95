//! Stock keys and per-user limits on Redis.

use super::{log_failure, read, RedisTier};
use crate::ports::admission::{Hold, Increase, LimitClaim, Refused, StockAdmission, Verdict};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hotdeal_domain::{DealId, ProductId, StockKey, UserId};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use uuid::Uuid;

/// `p:<id>` / `d:<id>`: how the tracked set names a key, and its hash tag.
pub(super) fn member(key: StockKey) -> String {
    match key {
        StockKey::Product(p) => format!("p:{}", p.0),
        StockKey::Deal(d) => format!("d:{}", d.0),
    }
}

fn parse_member(m: &str) -> Option<StockKey> {
    let (kind, id) = m.split_once(':')?;
    let id: Uuid = id.parse().ok()?;
    match kind {
        "p" => Some(StockKey::Product(ProductId(id))),
        "d" => Some(StockKey::Deal(DealId(id))),
        _ => None,
    }
}

impl RedisTier {
    /// Holds one key's share of a write.
    async fn hold_key(
        &self,
        id: Uuid,
        user: UserId,
        key: StockKey,
        qty: i64,
        claim: Option<&LimitClaim>,
    ) -> Result<(), Refused> {
        let k = self.stock_keys(key);
        let (limit, claimed) = claim.map_or((0, 0), |c| (c.limit, c.units));
        let mut conn = self.conn();
        let answer: Vec<i64> = self
            .scripts
            .hold
            .key(&k.units)
            .key(&k.held)
            .key(&k.resv)
            .key(&k.due)
            .key(&k.ver)
            .arg(id.to_string())
            .arg(qty)
            .arg(user.0.to_string())
            .arg(limit)
            .arg(claimed)
            .arg(self.deadline_ms())
            .invoke_async(&mut conn)
            .await
            .map_err(|e| {
                log_failure(&e);
                Refused::Unavailable
            })?;
        match answer.as_slice() {
            [0, left, ver] => {
                self.note_stock(key, *left, *ver);
                Ok(())
            }
            [-1, available] => Err(Refused::Stock {
                key,
                requested: qty,
                available: *available,
            }),
            [-2] => Err(Refused::Unseeded(key)),
            [-3, held] => Err(Refused::Limit {
                deal: claim.map_or(DealId(Uuid::nil()), |c| c.deal),
                limit,
                held: *held,
            }),
            // The id holds this key already: a write is held once.
            _ => Err(Refused::Unavailable),
        }
    }

    /// Settles one key's share of a hold that did not commit.
    async fn release_key(&self, id: Uuid, key: StockKey, keep_units: bool) {
        let k = self.stock_keys(key);
        let mut conn = self.conn();
        let done: redis::RedisResult<Vec<i64>> = self
            .scripts
            .release
            .key(&k.units)
            .key(&k.held)
            .key(&k.resv)
            .key(&k.due)
            .key(&k.ver)
            .arg(id.to_string())
            .arg(if keep_units { "1" } else { "0" })
            .invoke_async(&mut conn)
            .await;
        match done.as_deref() {
            Ok([units, ver]) => self.note_stock(key, *units, *ver),
            Ok(_) => {}
            // The reservation stays; the reconciler settles it.
            Err(e) => log_failure(e),
        }
    }

    /// Forgets the reservations of committed writes, in one pipeline.
    async fn forget(&self, committed: &[(Uuid, StockKey)]) {
        let mut pipe = redis::pipe();
        for (id, key) in committed {
            let k = self.stock_keys(*key);
            let id = id.to_string();
            pipe.hdel(&k.resv, &id).ignore();
            pipe.zrem(&k.due, &id).ignore();
        }
        let mut conn = self.conn();
        if let Err(e) = pipe.query_async::<()>(&mut conn).await {
            log_failure(&e);
        }
    }

    async fn settle_all(self: Arc<Self>, done: Vec<(Hold, Verdict)>) {
        let mut committed = Vec::new();
        for (hold, verdict) in done {
            match verdict {
                Verdict::Commit => {
                    committed.extend(hold.taken.iter().map(|&(key, _)| (hold.id, key)));
                }
                Verdict::Abort => {
                    for &(key, _) in &hold.taken {
                        self.release_key(hold.id, key, false).await;
                    }
                }
                Verdict::Overcounted(short) => {
                    for &(key, _) in &hold.taken {
                        self.release_key(hold.id, key, key == short).await;
                    }
                }
            }
        }
        if !committed.is_empty() {
            // Forgetting a committed reservation changes no count: off the
            // writer's path (a record left by a crash here is the
            // reconciler's, which finds it committed in the fence).
            tokio::spawn(async move { self.forget(&committed).await });
        }
    }

    /// Every seeded stock key's `applied` set, for trimming.
    pub(super) async fn tracked_applied(&self) -> redis::RedisResult<Vec<String>> {
        let mut conn = self.conn();
        let members: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.tracked_stock())
            .query_async(&mut conn)
            .await?;
        Ok(members
            .iter()
            .filter_map(|m| parse_member(m))
            .map(|k| self.stock_keys(k).applied)
            .collect())
    }
}

/// The tier is shared behind an `Arc`: settling runs in the background.
#[async_trait]
impl StockAdmission for Arc<RedisTier> {
    async fn open(&self, key: StockKey, units: i64, held: &[(UserId, i64)]) -> Result<(), Refused> {
        let k = self.stock_keys(key);
        let mut conn = self.conn();
        // Tracked before seeded: the reconciler must see every key that
        // may hold reservations.
        redis::cmd("SADD")
            .arg(self.tracked_stock())
            .arg(member(key))
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| {
                log_failure(&e);
                Refused::Unavailable
            })?;
        let mut seed = self.scripts.seed.prepare_invoke();
        seed.key(&k.units).key(&k.held).key(&k.ver).arg(units);
        for (user, n) in held {
            seed.arg(user.0.to_string()).arg(*n);
        }
        let now: Vec<i64> = seed.invoke_async(&mut conn).await.map_err(|e| {
            log_failure(&e);
            Refused::Unavailable
        })?;
        if let [units, ver] = now.as_slice() {
            self.note_stock(key, *units, *ver);
        }
        Ok(())
    }

    async fn close(&self, key: StockKey) {
        let k = self.stock_keys(key);
        let mut pipe = redis::pipe();
        pipe.del(&[&k.units, &k.held, &k.resv, &k.due, &k.applied, &k.ver])
            .ignore();
        pipe.srem(self.tracked_stock(), member(key)).ignore();
        let mut conn = self.conn();
        if let Err(e) = pipe.query_async::<()>(&mut conn).await {
            log_failure(&e);
        }
        let mut copies = self.copies.lock().unwrap_or_else(|e| e.into_inner());
        copies.stock.remove(&key);
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    async fn hold(
        &self,
        id: Uuid,
        user: UserId,
        demand: &BTreeMap<StockKey, i64>,
        limits: &[LimitClaim],
    ) -> Result<Hold, Refused> {
        let mut hold = Hold {
            id,
            user,
            taken: Vec::with_capacity(demand.len()),
            claimed: Vec::new(),
        };
        // One script per key (each its own slot); a refusal gives back
        // the keys already held.
        for (&key, &qty) in demand {
            let claim = match key {
                StockKey::Deal(d) => limits.iter().find(|c| c.deal == d),
                StockKey::Product(_) => None,
            };
            if let Err(r) = self.hold_key(id, user, key, qty, claim).await {
                for &(held, _) in &hold.taken {
                    self.release_key(id, held, false).await;
                }
                return Err(r);
            }
            hold.taken.push((key, qty));
            if let Some(c) = claim {
                hold.claimed.push((c.deal, c.units));
            }
        }
        Ok(hold)
    }

    async fn settle(&self, done: Vec<(Hold, Verdict)>) {
        if done.iter().all(|(h, _)| h.taken.is_empty()) {
            return;
        }
        self.clone().settle_all(done).await;
    }

    async fn give_back(&self, event: &str, increases: &[Increase]) -> Result<(), Refused> {
        let now = self.clock.now().timestamp_millis();
        for inc in increases {
            let k = self.stock_keys(inc.key);
            let (user, unclaim) = inc
                .unclaim
                .map_or((String::new(), 0), |(u, n)| (u.0.to_string(), n));
            let mut conn = self.conn();
            let told: Vec<i64> = self
                .scripts
                .give_back
                .key(&k.units)
                .key(&k.held)
                .key(&k.applied)
                .key(&k.ver)
                .arg(event)
                .arg(inc.units)
                .arg(user)
                .arg(unclaim)
                .arg(now)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| {
                    log_failure(&e);
                    Refused::Unavailable
                })?;
            if let [units, ver] = told.as_slice() {
                self.note_stock(inc.key, *units, *ver);
            }
        }
        Ok(())
    }

    async fn overdue(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Hold>, Refused> {
        let fail = |e: redis::RedisError| {
            log_failure(&e);
            Refused::Unavailable
        };
        let mut conn = self.conn();
        let members: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.tracked_stock())
            .query_async(&mut conn)
            .await
            .map_err(fail)?;
        let keys: Vec<StockKey> = members.iter().filter_map(|m| parse_member(m)).collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for &key in &keys {
            pipe.zrangebyscore_limit(
                self.stock_keys(key).due,
                "-inf",
                now.timestamp_millis(),
                0,
                limit as isize,
            );
        }
        let due: Vec<Vec<String>> = pipe.query_async(&mut conn).await.map_err(fail)?;
        let mut holds = Vec::new();
        for (key, ids) in keys.iter().zip(due) {
            if ids.is_empty() {
                continue;
            }
            let records: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(self.stock_keys(*key).resv)
                .arg(&ids)
                .query_async(&mut conn)
                .await
                .map_err(fail)?;
            for (id, record) in ids.iter().zip(records) {
                let Ok(id) = id.parse::<Uuid>() else { continue };
                let Some(record) = record else {
                    // Settled meanwhile; drop the stray deadline.
                    let _: redis::RedisResult<()> = redis::cmd("ZREM")
                        .arg(self.stock_keys(*key).due)
                        .arg(id.to_string())
                        .query_async(&mut conn)
                        .await;
                    continue;
                };
                let mut parts = record.split(' ');
                let user = parts.next().and_then(|u| u.parse().ok()).map(UserId);
                let qty = parts.next().and_then(|q| q.parse::<i64>().ok());
                let claim = parts.next().and_then(|c| c.parse::<i64>().ok());
                let (Some(user), Some(qty), Some(claim)) = (user, qty, claim) else {
                    continue;
                };
                holds.push(Hold {
                    id,
                    user,
                    taken: vec![(*key, qty)],
                    claimed: match key {
                        StockKey::Deal(d) if claim > 0 => vec![(*d, claim)],
                        _ => Vec::new(),
                    },
                });
                if holds.len() >= limit {
                    return Ok(holds);
                }
            }
        }
        Ok(holds)
    }

    async fn audit(&self, keys: &[StockKey]) -> Result<Vec<(StockKey, i64, i64)>, Refused> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for &key in keys {
            let k = self.stock_keys(key);
            // One MULTI per key: its count and its reservations at once.
            pipe.cmd("MULTI").ignore();
            pipe.get(&k.units).ignore();
            pipe.hvals(&k.resv).ignore();
            pipe.cmd("EXEC");
        }
        let mut conn = self.conn();
        let answers: Vec<(Option<i64>, Vec<String>)> =
            pipe.query_async(&mut conn).await.map_err(|e| {
                log_failure(&e);
                Refused::Unavailable
            })?;
        Ok(keys
            .iter()
            .zip(answers)
            .filter_map(|(&key, (units, records))| {
                let reserved = records
                    .iter()
                    .filter_map(|r| r.split(' ').nth(1)?.parse::<i64>().ok())
                    .sum();
                units.map(|u| (key, u, reserved))
            })
            .collect())
    }

    fn available(&self, key: StockKey) -> Option<(i64, DateTime<Utc>)> {
        let mut copies = self.copies.lock().unwrap_or_else(|e| e.into_inner());
        let seen = read(&mut copies.stock, key);
        if seen.is_none() {
            // Watch it from now on; until the refresher has read it, the
            // caller shows the store's count.
            copies.stock.insert(
                key,
                super::Seen {
                    value: i64::MIN,
                    changed_at: DateTime::<Utc>::MIN_UTC,
                    read_at: std::time::Instant::now(),
                    // Every refresh that reads the key begins after this.
                    told_at: std::time::Instant::now(),
                    ver: i64::MIN,
                },
            );
            return None;
        }
        seen.filter(|(v, _)| *v != i64::MIN)
    }

    fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }
}
