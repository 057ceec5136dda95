//! Coupon holders and counts on Redis.

use super::{log_failure, read, RedisTier};
use crate::ports::admission::{CouponAdmission, CouponRefused, IssueHold, Verdict};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hotdeal_domain::UserId;
use std::sync::Arc;
use uuid::Uuid;

impl RedisTier {
    async fn settle_issues_now(self: Arc<Self>, done: Vec<(IssueHold, Verdict)>) {
        let mut forget = redis::pipe();
        let mut any = false;
        for (hold, verdict) in done {
            let k = self.coupon_keys(hold.coupon);
            let id = hold.id.to_string();
            match verdict {
                Verdict::Commit | Verdict::Overcounted(_) => {
                    forget.hdel(&k.resv, &id).ignore();
                    forget.zrem(&k.due, &id).ignore();
                    any = true;
                }
                Verdict::Abort => {
                    let mut conn = self.conn();
                    let done: redis::RedisResult<i64> = self
                        .scripts
                        .unissue
                        .key(&k.holders)
                        .key(&k.resv)
                        .key(&k.due)
                        .arg(&id)
                        .invoke_async(&mut conn)
                        .await;
                    if let Err(e) = done {
                        log_failure(&e);
                    }
                }
            }
        }
        if any {
            let mut conn = self.conn();
            if let Err(e) = forget.query_async::<()>(&mut conn).await {
                log_failure(&e);
            }
        }
    }
}

#[async_trait]
impl CouponAdmission for Arc<RedisTier> {
    async fn open_coupon(
        &self,
        coupon: Uuid,
        total: i64,
        holders: &[UserId],
    ) -> Result<(), CouponRefused> {
        let fail = |e: redis::RedisError| {
            log_failure(&e);
            CouponRefused::Unavailable
        };
        let k = self.coupon_keys(coupon);
        let mut conn = self.conn();
        redis::cmd("SADD")
            .arg(self.tracked_coupons())
            .arg(coupon.to_string())
            .query_async::<()>(&mut conn)
            .await
            .map_err(fail)?;
        let mut seed = self.scripts.seed_coupon.prepare_invoke();
        seed.key(&k.total).key(&k.holders).arg(total);
        for u in holders {
            seed.arg(u.0.to_string());
        }
        let _: i64 = seed.invoke_async(&mut conn).await.map_err(fail)?;
        Ok(())
    }

    async fn hold_issue(
        &self,
        id: Uuid,
        coupon: Uuid,
        user: UserId,
    ) -> Result<IssueHold, CouponRefused> {
        let k = self.coupon_keys(coupon);
        let mut conn = self.conn();
        let answer: i64 = self
            .scripts
            .issue
            .key(&k.total)
            .key(&k.holders)
            .key(&k.resv)
            .key(&k.due)
            .arg(id.to_string())
            .arg(user.0.to_string())
            .arg(self.deadline_ms())
            .invoke_async(&mut conn)
            .await
            .map_err(|e| {
                log_failure(&e);
                CouponRefused::Unavailable
            })?;
        match answer {
            -1 => Err(CouponRefused::AlreadyIssued),
            -2 => Err(CouponRefused::Unseeded),
            -3 => Err(CouponRefused::SoldOut),
            issued => {
                self.note_coupon(coupon, issued);
                Ok(IssueHold { id, coupon, user })
            }
        }
    }

    async fn settle_issues(&self, done: Vec<(IssueHold, Verdict)>) {
        if done.is_empty() {
            return;
        }
        self.clone().settle_issues_now(done).await;
    }

    async fn overdue_issues(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<IssueHold>, CouponRefused> {
        let fail = |e: redis::RedisError| {
            log_failure(&e);
            CouponRefused::Unavailable
        };
        let mut conn = self.conn();
        let coupons: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.tracked_coupons())
            .query_async(&mut conn)
            .await
            .map_err(fail)?;
        let coupons: Vec<Uuid> = coupons.iter().filter_map(|c| c.parse().ok()).collect();
        let mut holds = Vec::new();
        for coupon in coupons {
            let k = self.coupon_keys(coupon);
            let ids: Vec<String> = redis::cmd("ZRANGEBYSCORE")
                .arg(&k.due)
                .arg("-inf")
                .arg(now.timestamp_millis())
                .arg("LIMIT")
                .arg(0)
                .arg(limit)
                .query_async(&mut conn)
                .await
                .map_err(fail)?;
            if ids.is_empty() {
                continue;
            }
            let users: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(&k.resv)
                .arg(&ids)
                .query_async(&mut conn)
                .await
                .map_err(fail)?;
            for (id, user) in ids.iter().zip(users) {
                let (Ok(id), Some(Ok(user))) =
                    (id.parse::<Uuid>(), user.map(|u| u.parse::<Uuid>()))
                else {
                    continue;
                };
                holds.push(IssueHold {
                    id,
                    coupon,
                    user: UserId(user),
                });
                if holds.len() >= limit {
                    return Ok(holds);
                }
            }
        }
        Ok(holds)
    }

    fn issued(&self, coupon: Uuid) -> Option<i64> {
        let mut copies = self.copies.lock().unwrap_or_else(|e| e.into_inner());
        let seen = read(&mut copies.coupons, coupon);
        if seen.is_none() {
            copies.coupons.insert(
                coupon,
                super::Seen {
                    value: i64::MIN,
                    changed_at: DateTime::<Utc>::MIN_UTC,
                    read_at: std::time::Instant::now(),
                    // Every refresh that reads the key begins after this.
                    told_at: std::time::Instant::now(),
                    ver: 0,
                },
            );
            return None;
        }
        seen.map(|(v, _)| v).filter(|v| *v != i64::MIN)
    }
}
