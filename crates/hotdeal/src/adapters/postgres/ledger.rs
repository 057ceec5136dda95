//! Points, coupons, idempotency answers and the outbox on PostgreSQL.

use super::orders::{fence, insert_answers, insert_events, move_points, Spend};
use super::rows::{corrupt, coupon_from_row, user_coupon_from_row, COUPON_COLS, USER_COUPON_COLS};
use super::{Pg, PgStore};
use crate::model::{
    Coupon, IdempotentAnswer, Page, Paged, PointAccount, PointEntry, PointKind, UserCoupon,
};
use crate::ports::events::{CatalogueEvent, EventSink, SinkError};
use crate::ports::ledger::{
    Charge, CouponLedger, IdempotencyAnswers, IssueWrite, Issued, Outbox, OutboxEntry, PointsLedger,
};
use crate::ports::store::{IdempotencyWrite, StoreError, StoreResult};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hotdeal_domain::{OrderId, UserId};
use serde_json::json;
use sqlx::{Connection, PgConnection, Row};
use std::collections::BTreeMap;
use uuid::Uuid;

fn issue_event(uc: &UserCoupon) -> (&'static str, String) {
    let payload =
        json!({ "coupon_id": uc.coupon_id, "user_id": uc.user_id, "user_coupon_id": uc.id });
    ("coupon.issued", payload.to_string())
}

/// All issues in one transaction: one conditional count update for every
/// coupon, one insert. `None` when a count or a row does not come back (a
/// duplicate, an exhausted coupon): nothing is written and the caller goes
/// one by one.
async fn issue_batch(conn: &mut PgConnection, batch: &[IssueWrite]) -> StoreResult<Option<()>> {
    let mut per_coupon: BTreeMap<Uuid, i64> = BTreeMap::new();
    for w in batch {
        *per_coupon.entry(w.user_coupon.coupon_id).or_insert(0) += 1;
    }
    let Some(now) = batch.iter().map(|w| w.user_coupon.issued_at).max() else {
        return Ok(Some(()));
    };
    let mut tx = conn.begin().await.pg()?;
    let ucs: Vec<&UserCoupon> = batch.iter().map(|w| &w.user_coupon).collect();
    // Every issue fenced, or the batch goes one by one (where an issue the
    // reconciler aborted answers `Aborted`).
    let ids: Vec<Uuid> = ucs.iter().map(|u| u.id).collect();
    if fence(&mut tx, &ids).await?.len() != ids.len() {
        return Ok(None);
    }
    let inserted = sqlx::query(
        "INSERT INTO user_coupons (id, coupon_id, user_id, status, issued_at) \
         SELECT i, c, u, 'issued', t FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::timestamptz[]) \
             AS x(i, c, u, t) \
         ON CONFLICT DO NOTHING",
    )
    .bind(ucs.iter().map(|u| u.id).collect::<Vec<_>>())
    .bind(ucs.iter().map(|u| u.coupon_id).collect::<Vec<_>>())
    .bind(ucs.iter().map(|u| u.user_id.0).collect::<Vec<_>>())
    .bind(ucs.iter().map(|u| u.issued_at).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await
    .pg()?;
    if inserted.rows_affected() != batch.len() as u64 {
        return Ok(None);
    }
    let events: Vec<_> = ucs.iter().map(|u| issue_event(u)).collect();
    insert_events(&mut tx, &events, now).await?;
    // The hot rows last, in key order.
    let counted = sqlx::query(
        "UPDATE coupons c SET issued_count = c.issued_count + x.n \
         FROM UNNEST($1::uuid[], $2::int8[]) AS x(id, n) \
         WHERE c.id = x.id AND c.issued_count + x.n <= c.total_quantity",
    )
    .bind(per_coupon.keys().copied().collect::<Vec<_>>())
    .bind(per_coupon.values().copied().collect::<Vec<_>>())
    .execute(&mut *tx)
    .await
    .pg()?;
    if counted.rows_affected() != per_coupon.len() as u64 {
        return Ok(None);
    }
    tx.commit().await.pg()?;
    Ok(Some(()))
}

async fn issue_one(conn: &mut PgConnection, w: &IssueWrite) -> StoreResult<Issued> {
    let uc = &w.user_coupon;
    let mut tx = conn.begin().await.pg()?;
    if fence(&mut tx, &[uc.id]).await?.is_empty() {
        return Ok(Issued::Aborted);
    }
    let counted = sqlx::query(
        "UPDATE coupons SET issued_count = issued_count + 1 \
         WHERE id = $1 AND issued_count < total_quantity",
    )
    .bind(uc.coupon_id)
    .execute(&mut *tx)
    .await
    .pg()?;
    if counted.rows_affected() != 1 {
        return Ok(Issued::SoldOut);
    }
    let inserted = sqlx::query(
        "INSERT INTO user_coupons (id, coupon_id, user_id, status, issued_at) \
         VALUES ($1, $2, $3, 'issued', $4) ON CONFLICT DO NOTHING",
    )
    .bind(uc.id)
    .bind(uc.coupon_id)
    .bind(uc.user_id.0)
    .bind(uc.issued_at)
    .execute(&mut *tx)
    .await
    .pg()?;
    if inserted.rows_affected() != 1 {
        return Ok(Issued::AlreadyIssued);
    }
    insert_events(&mut tx, &[issue_event(uc)], uc.issued_at).await?;
    tx.commit().await.pg()?;
    Ok(Issued::Issued)
}

async fn charge(
    conn: &mut PgConnection,
    user: UserId,
    amount: i64,
    now: DateTime<Utc>,
    idempotency: Option<&IdempotencyWrite<'_, Charge>>,
) -> StoreResult<Charge> {
    let mut tx = conn.begin().await.pg()?;
    let Spend::Done { id, balance } =
        move_points(&mut tx, user, PointKind::Charge, amount, None, now).await?
    else {
        return Err(corrupt("a charge was refused"));
    };
    let charge = Charge {
        charge_id: id,
        amount,
        balance,
    };
    if let Some(idem) = idempotency {
        insert_answers(&mut tx, &[&idem.answer(&charge)], now).await?;
    }
    tx.commit().await.pg()?;
    Ok(charge)
}

#[async_trait]
impl PointsLedger for PgStore {
    async fn point_account(&self, user: UserId) -> StoreResult<Option<PointAccount>> {
        let row = sqlx::query("SELECT balance, updated_at FROM point_accounts WHERE user_id = $1")
            .bind(user.0)
            .fetch_optional(&self.pool)
            .await
            .pg()?;
        row.map(|r| {
            Ok(PointAccount {
                user_id: user,
                balance: r.try_get("balance")?,
                updated_at: r.try_get("updated_at")?,
            })
        })
        .transpose()
    }

    async fn charge(
        &self,
        user: UserId,
        amount: i64,
        now: DateTime<Utc>,
        idempotency: Option<&IdempotencyWrite<'_, Charge>>,
    ) -> StoreResult<Charge> {
        super::write!(self, |c| charge(c, user, amount, now, idempotency).await)
    }

    async fn point_history(&self, user: UserId, page: Page) -> StoreResult<Paged<PointEntry>> {
        let rows = sqlx::query(
            "SELECT id, kind, amount, balance_after, order_id, created_at FROM point_history \
             WHERE user_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3",
        )
        .bind(user.0)
        .bind(page.size)
        .bind(page.offset())
        .fetch_all(&self.pool)
        .await
        .pg()?;
        let total: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM point_history WHERE user_id = $1")
                .bind(user.0)
                .fetch_one(&self.pool)
                .await
                .pg()?;
        let items = rows
            .iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                Ok(PointEntry {
                    id: r.try_get("id")?,
                    user_id: user,
                    kind: PointKind::parse(&kind).ok_or_else(|| corrupt("point kind"))?,
                    amount: r.try_get("amount")?,
                    balance_after: r.try_get("balance_after")?,
                    order_id: r.try_get::<Option<Uuid>, _>("order_id")?.map(OrderId),
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<StoreResult<_>>()?;
        Ok(Paged { items, total, page })
    }
}

#[async_trait]
impl CouponLedger for PgStore {
    async fn insert_coupon(&self, c: &Coupon) -> StoreResult<()> {
        super::write!(self, |conn| {
            let mut tx = conn.begin().await.pg()?;
            sqlx::query(&format!(
                "INSERT INTO coupons ({COUPON_COLS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            ))
            .bind(c.id)
            .bind(&c.name)
            .bind(c.discount_type.as_str())
            .bind(c.discount_value)
            .bind(c.max_discount)
            .bind(c.min_order_amount)
            .bind(c.total_quantity)
            .bind(c.issued_count)
            .bind(c.window.starts_at)
            .bind(c.window.ends_at)
            .bind(c.created_by.0)
            .bind(c.created_at)
            .execute(&mut *tx)
            .await
            .pg()?;
            let event = CatalogueEvent::CouponCreated(c.id).outbox_row();
            insert_events(&mut tx, &[event], c.created_at).await?;
            tx.commit().await.pg()
        })
    }

    async fn coupon(&self, id: Uuid) -> StoreResult<Option<Coupon>> {
        let row = sqlx::query(&format!("SELECT {COUPON_COLS} FROM coupons WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .pg()?;
        row.map(|r| coupon_from_row(&r)).transpose()
    }

    async fn coupons(&self) -> StoreResult<Vec<Coupon>> {
        let rows = sqlx::query(&format!("SELECT {COUPON_COLS} FROM coupons"))
            .fetch_all(&self.pool)
            .await
            .pg()?;
        rows.iter().map(coupon_from_row).collect()
    }

    async fn coupon_holders(&self) -> StoreResult<Vec<(Uuid, UserId, bool)>> {
        let rows = sqlx::query("SELECT coupon_id, user_id, status FROM user_coupons")
            .fetch_all(&self.pool)
            .await
            .pg()?;
        rows.iter()
            .map(|r| {
                let status: String = r.try_get("status")?;
                Ok((
                    r.try_get("coupon_id")?,
                    UserId(r.try_get("user_id")?),
                    status == "used",
                ))
            })
            .collect()
    }

    async fn coupon_seed(&self, coupon: Uuid) -> StoreResult<Option<(i64, Vec<UserId>)>> {
        let mut tx = self.pool.begin().await.pg()?;
        // One snapshot for the total and the holders.
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await
            .pg()?;
        let total: Option<i64> =
            sqlx::query_scalar("SELECT total_quantity FROM coupons WHERE id = $1")
                .bind(coupon)
                .fetch_optional(&mut *tx)
                .await
                .pg()?;
        let Some(total) = total else {
            return Ok(None);
        };
        let holders: Vec<Uuid> =
            sqlx::query_scalar("SELECT user_id FROM user_coupons WHERE coupon_id = $1")
                .bind(coupon)
                .fetch_all(&mut *tx)
                .await
                .pg()?;
        tx.commit().await.pg()?;
        Ok(Some((total, holders.into_iter().map(UserId).collect())))
    }

    #[tracing::instrument(skip_all, fields(issues = batch.len()))]
    async fn issue_coupons(&self, batch: &[IssueWrite]) -> Vec<StoreResult<Issued>> {
        match super::write!(self, |c| issue_batch(c, batch).await) {
            Ok(Some(())) => return batch.iter().map(|_| Ok(Issued::Issued)).collect(),
            Ok(None) => {}
            Err(StoreError::Unavailable(e)) => {
                return batch
                    .iter()
                    .map(|_| Err(StoreError::Unavailable(e.to_string().into())))
                    .collect();
            }
            Err(e) => {
                tracing::warn!(error = %e, issues = batch.len(), "batch issue failed; recording one by one")
            }
        }
        let mut out = Vec::with_capacity(batch.len());
        for w in batch {
            out.push(super::write!(self, |c| issue_one(c, w).await));
        }
        out
    }

    async fn user_coupons(&self, user: UserId, page: Page) -> StoreResult<Paged<UserCoupon>> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COUPON_COLS} FROM user_coupons WHERE user_id = $1 \
             ORDER BY issued_at DESC, id DESC LIMIT $2 OFFSET $3"
        ))
        .bind(user.0)
        .bind(page.size)
        .bind(page.offset())
        .fetch_all(&self.pool)
        .await
        .pg()?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM user_coupons WHERE user_id = $1")
            .bind(user.0)
            .fetch_one(&self.pool)
            .await
            .pg()?;
        let items = rows
            .iter()
            .map(user_coupon_from_row)
            .collect::<StoreResult<_>>()?;
        Ok(Paged { items, total, page })
    }

    async fn user_coupon(&self, coupon: Uuid, user: UserId) -> StoreResult<Option<UserCoupon>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COUPON_COLS} FROM user_coupons WHERE coupon_id = $1 AND user_id = $2"
        ))
        .bind(coupon)
        .bind(user.0)
        .fetch_optional(&self.pool)
        .await
        .pg()?;
        row.map(|r| user_coupon_from_row(&r)).transpose()
    }

    async fn user_coupon_by_id(&self, id: Uuid) -> StoreResult<Option<UserCoupon>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COUPON_COLS} FROM user_coupons WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .pg()?;
        row.map(|r| user_coupon_from_row(&r)).transpose()
    }
}

#[async_trait]
impl IdempotencyAnswers for PgStore {
    async fn idempotent_answer(
        &self,
        user: UserId,
        key: &str,
    ) -> StoreResult<Option<IdempotentAnswer>> {
        let row = sqlx::query(
            "SELECT request_hash, status, body FROM idempotency_keys WHERE user_id = $1 AND key = $2",
        )
        .bind(user.0)
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .pg()?;
        row.map(|r| {
            let hash: Vec<u8> = r.try_get("request_hash")?;
            let status: i32 = r.try_get("status")?;
            Ok(IdempotentAnswer {
                user_id: user,
                key: key.to_owned(),
                request_hash: hash.try_into().map_err(|_| corrupt("request hash"))?,
                status: u16::try_from(status).map_err(|_| corrupt("status"))?,
                body: r.try_get("body")?,
            })
        })
        .transpose()
    }

    async fn prune_idempotency(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        super::write!(self, |c| {
            sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
                .bind(before)
                .execute(c)
                .await
                .pg()
                .map(|d| d.rows_affected())
        })
    }
}

#[async_trait]
impl Outbox for PgStore {
    // Known gap: with concurrent writers a lower `seq` can commit after a
    // higher one was read and marked, and `mark_published(up_to)` then
    // marks it unread. Harmless while the only subscribers are in-process
    // and best effort; a broker relay must claim rows (`FOR UPDATE SKIP
    // LOCKED`) instead of marking up to a sequence number.
    async fn unpublished(&self, limit: i64) -> StoreResult<Vec<OutboxEntry>> {
        let rows = sqlx::query(
            "SELECT seq, topic, payload FROM outbox WHERE published_at IS NULL \
             ORDER BY seq LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .pg()?;
        rows.iter()
            .map(|r| {
                Ok(OutboxEntry {
                    seq: r.try_get("seq")?,
                    topic: r.try_get("topic")?,
                    payload: r.try_get("payload")?,
                })
            })
            .collect()
    }

    async fn mark_published(&self, up_to: i64, now: DateTime<Utc>) -> StoreResult<()> {
        super::write!(self, |c| {
            sqlx::query(
                "UPDATE outbox SET published_at = $1 WHERE seq <= $2 AND published_at IS NULL",
            )
            .bind(now)
            .bind(up_to)
            .execute(c)
            .await
            .pg()
            .map(drop)
        })
    }

    /// Several instances relay at once here. Each round is one
    /// transaction: it takes a transaction-level advisory lock (one relay
    /// at a time, so the stream receives the events in outbox order and a
    /// consumer following one aggregate sees its events in order), claims
    /// the oldest unpublished rows `FOR UPDATE SKIP LOCKED` (a row is never
    /// published by two relays at once, whatever else holds the lock),
    /// publishes them and waits for the broker's acknowledgements, then
    /// deletes what was acknowledged and commits. A relay that dies before
    /// the commit leaves the rows unpublished; the next round publishes
    /// them again under the same ids, which the broker drops as duplicates.
    async fn relay_outbox(
        &self,
        limit: i64,
        sink: &dyn EventSink,
        now: DateTime<Utc>,
    ) -> StoreResult<(usize, Option<SinkError>)> {
        // The idle case, every few tens of milliseconds on every instance:
        // one index probe, no transaction. Asked as "the first
        // unpublished seq" rather than `EXISTS`: for `EXISTS` the planner
        // may pick a sequential scan, expecting an unpublished row early
        // in the table (it has no statistics yet on a young table); they
        // are all at its end, behind every published row.
        let waiting: Option<i64> = sqlx::query_scalar(
            "SELECT seq FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
        .pg()?;
        if waiting.is_none() {
            return Ok((0, None));
        }
        // No time to record: an acknowledged event leaves the outbox.
        let _ = now;
        super::write!(self, |c| relay(c, limit, sink).await)
    }

    async fn prune_outbox(&self, before: DateTime<Utc>, unread: bool) -> StoreResult<u64> {
        super::write!(self, |c| {
            sqlx::query(
                "DELETE FROM outbox WHERE (published_at IS NOT NULL AND published_at < $1) \
                 OR ($2 AND published_at IS NULL AND created_at < $1)",
            )
            .bind(before)
            .bind(unread)
            .execute(c)
            .await
            .pg()
            .map(|d| d.rows_affected())
        })
    }
}

/// One relay round in one transaction (see [`PgStore::relay_outbox`]).
async fn relay(
    conn: &mut PgConnection,
    limit: i64,
    sink: &dyn EventSink,
) -> StoreResult<(usize, Option<SinkError>)> {
    let mut tx = conn.begin().await.pg()?;
    let ours: bool = sqlx::query_scalar(
        "SELECT pg_try_advisory_xact_lock(hashtextextended('hotdeal-relay:' || current_schema(), 0))",
    )
    .fetch_one(&mut *tx)
    .await
    .pg()?;
    if !ours {
        // Another instance is relaying right now; it takes these rows.
        return Ok((0, None));
    }
    let rows = sqlx::query(
        "SELECT seq, topic, payload FROM outbox WHERE published_at IS NULL \
         ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(&mut *tx)
    .await
    .pg()?;
    let entries = rows
        .iter()
        .map(|r| {
            Ok(OutboxEntry {
                seq: r.try_get("seq")?,
                topic: r.try_get("topic")?,
                payload: r.try_get("payload")?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    if entries.is_empty() {
        return Ok((0, None));
    }
    let (acked, failed) = sink.publish(&entries).await;
    if acked > 0 {
        // The stream keeps what was acknowledged (for days); the outbox
        // only has to keep what it does not have yet. Deleting is one
        // mark on each row, where marking it published wrote a new
        // version of the row and of its key, and pruning deleted it again
        // an hour later: per event, a third of the relay's writes.
        let seqs: Vec<i64> = entries.iter().take(acked).map(|e| e.seq).collect();
        sqlx::query("DELETE FROM outbox WHERE seq = ANY($1)")
            .bind(&seqs)
            .execute(&mut *tx)
            .await
            .pg()?;
    }
    tx.commit().await.pg()?;
    Ok((acked, failed))
}
