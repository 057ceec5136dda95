//! Points, coupons, idempotency answers and the outbox on SQLite.

use super::orders::{charge_points, fixed_chunks, insert_answers, insert_events};
use super::rows::{micros, time};
use super::{writer, SqliteStore};
use crate::model::{
    Coupon, DiscountType, IdempotentAnswer, Page, Paged, PointAccount, PointEntry, PointKind,
    UserCoupon,
};
use crate::ports::events::CatalogueEvent;
use crate::ports::ledger::{
    Charge, CouponLedger, IdempotencyAnswers, IssueWrite, Issued, Outbox, OutboxEntry, PointsLedger,
};
use crate::ports::store::{IdempotencyWrite, StoreError, StoreResult};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hotdeal_domain::{DealWindow, OrderId, UserId};
use serde_json::json;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};
use std::collections::BTreeMap;
use uuid::Uuid;

const COUPON_COLS: &str =
    "id, name, discount_type, discount_value, max_discount, min_order_amount, \
     total_quantity, issued_count, starts_at, ends_at, created_by, created_at";
const USER_COUPON_COLS: &str = "id, coupon_id, user_id, status, issued_at, used_at, order_id";

fn corrupt(what: &str) -> StoreError {
    StoreError::Backend(format!("corrupt row: {what}").into())
}

fn coupon_from_row(r: &SqliteRow) -> StoreResult<Coupon> {
    let kind: String = r.try_get("discount_type")?;
    Ok(Coupon {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        discount_type: DiscountType::parse(&kind).ok_or_else(|| corrupt("discount type"))?,
        discount_value: r.try_get("discount_value")?,
        max_discount: r.try_get("max_discount")?,
        min_order_amount: r.try_get("min_order_amount")?,
        total_quantity: r.try_get("total_quantity")?,
        issued_count: r.try_get("issued_count")?,
        window: DealWindow::new(time(r.try_get("starts_at")?), time(r.try_get("ends_at")?))
            .ok_or_else(|| corrupt("coupon window"))?,
        created_by: UserId(r.try_get("created_by")?),
        created_at: time(r.try_get("created_at")?),
    })
}

fn user_coupon_from_row(r: &SqliteRow) -> StoreResult<UserCoupon> {
    let status: String = r.try_get("status")?;
    Ok(UserCoupon {
        id: r.try_get("id")?,
        coupon_id: r.try_get("coupon_id")?,
        user_id: UserId(r.try_get("user_id")?),
        used: status == "used",
        issued_at: time(r.try_get("issued_at")?),
        used_at: r.try_get::<Option<i64>, _>("used_at")?.map(time),
        order_id: r.try_get::<Option<Uuid>, _>("order_id")?.map(OrderId),
    })
}

fn issue_event(uc: &UserCoupon) -> (&'static str, String) {
    let payload =
        json!({ "coupon_id": uc.coupon_id, "user_id": uc.user_id, "user_coupon_id": uc.id });
    ("coupon.issued", payload.to_string())
}

/// The coupon and its `coupon.created` event, in one transaction.
async fn insert_coupon(conn: &mut SqliteConnection, c: &Coupon) -> StoreResult<()> {
    let mut tx = writer::begin(conn).await?;
    sqlx::query(&format!(
        "INSERT INTO coupons ({COUPON_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(c.id)
    .bind(&c.name)
    .bind(c.discount_type.as_str())
    .bind(c.discount_value)
    .bind(c.max_discount)
    .bind(c.min_order_amount)
    .bind(c.total_quantity)
    .bind(c.issued_count)
    .bind(micros(c.window.starts_at))
    .bind(micros(c.window.ends_at))
    .bind(c.created_by.0)
    .bind(micros(c.created_at))
    .execute(&mut *tx)
    .await?;
    let event = CatalogueEvent::CouponCreated(c.id).outbox_row();
    insert_events(&mut tx, &[event], micros(c.created_at)).await?;
    tx.commit().await?;
    Ok(())
}

impl SqliteStore {
    /// All issues in one transaction: one conditional count update per
    /// coupon, one multi-row insert. `None` when a condition fails (a
    /// duplicate or an exhausted coupon), so the caller goes one by one.
    async fn issue_batch(&self, batch: &[IssueWrite]) -> StoreResult<Option<()>> {
        let mut w = self.writer().await?;
        let issued = issue_batch(w.conn(), batch).await;
        w.settle(issued)
    }

    async fn issue_one(&self, w: &IssueWrite) -> StoreResult<Issued> {
        let mut writer = self.writer().await?;
        let issued = issue_one(writer.conn(), w).await;
        writer.settle(issued)
    }
}

async fn issue_batch(conn: &mut SqliteConnection, batch: &[IssueWrite]) -> StoreResult<Option<()>> {
    let mut per_coupon: BTreeMap<Uuid, i64> = BTreeMap::new();
    for w in batch {
        *per_coupon.entry(w.user_coupon.coupon_id).or_insert(0) += 1;
    }
    let now = batch
        .iter()
        .map(|w| micros(w.user_coupon.issued_at))
        .max()
        .unwrap_or(0);
    let mut tx = writer::begin(conn).await?;
    for (coupon, n) in &per_coupon {
        let counted = sqlx::query(
            "UPDATE coupons SET issued_count = issued_count + ?1 \
                 WHERE id = ?2 AND issued_count + ?1 <= total_quantity",
        )
        .bind(n)
        .bind(coupon)
        .execute(&mut *tx)
        .await?;
        if counted.rows_affected() != 1 {
            return Ok(None);
        }
    }
    for chunk in fixed_chunks(batch) {
        let mut q =
            QueryBuilder::<Sqlite>::new(format!("INSERT INTO user_coupons ({USER_COUPON_COLS}) "));
        q.push_values(chunk, |mut b, w| {
            let uc = &w.user_coupon;
            b.push_bind(uc.id)
                .push_bind(uc.coupon_id)
                .push_bind(uc.user_id.0)
                .push_bind("issued")
                .push_bind(micros(uc.issued_at))
                .push_bind(None::<i64>)
                .push_bind(None::<Uuid>);
        });
        if let Err(e) = q.build().persistent(true).execute(&mut *tx).await {
            if e.as_database_error()
                .is_some_and(|d| d.is_unique_violation())
            {
                return Ok(None);
            }
            return Err(e.into());
        }
    }
    let events: Vec<_> = batch.iter().map(|w| issue_event(&w.user_coupon)).collect();
    insert_events(&mut tx, &events, now).await?;
    tx.commit().await?;
    Ok(Some(()))
}

async fn issue_one(conn: &mut SqliteConnection, w: &IssueWrite) -> StoreResult<Issued> {
    let uc = &w.user_coupon;
    let mut tx = writer::begin(conn).await?;
    let counted = sqlx::query(
            "UPDATE coupons SET issued_count = issued_count + 1 WHERE id = ?1 AND issued_count < total_quantity",
        )
        .bind(uc.coupon_id)
        .execute(&mut *tx)
        .await?;
    if counted.rows_affected() != 1 {
        return Ok(Issued::SoldOut);
    }
    let inserted = sqlx::query(&format!(
        "INSERT INTO user_coupons ({USER_COUPON_COLS}) VALUES (?, ?, ?, 'issued', ?, NULL, NULL)"
    ))
    .bind(uc.id)
    .bind(uc.coupon_id)
    .bind(uc.user_id.0)
    .bind(micros(uc.issued_at))
    .execute(&mut *tx)
    .await;
    match inserted {
        Ok(_) => {}
        Err(e)
            if e.as_database_error()
                .is_some_and(|d| d.is_unique_violation()) =>
        {
            return Ok(Issued::AlreadyIssued)
        }
        Err(e) => return Err(e.into()),
    }
    insert_events(&mut tx, &[issue_event(uc)], micros(uc.issued_at)).await?;
    tx.commit().await?;
    Ok(Issued::Issued)
}

#[async_trait]
impl PointsLedger for SqliteStore {
    async fn point_account(&self, user: UserId) -> StoreResult<Option<PointAccount>> {
        let row = sqlx::query("SELECT balance, updated_at FROM point_accounts WHERE user_id = ?")
            .bind(user.0)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| {
            Ok(PointAccount {
                user_id: user,
                balance: r.try_get("balance")?,
                updated_at: time(r.try_get("updated_at")?),
            })
        })
        .transpose()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn charge(
        &self,
        user: UserId,
        amount: i64,
        now: DateTime<Utc>,
        idempotency: Option<&IdempotencyWrite<'_, Charge>>,
    ) -> StoreResult<Charge> {
        let now = micros(now);
        let mut w = self.writer().await?;
        let charged = async {
            let mut tx = writer::begin(w.conn()).await?;
            let (charge_id, balance) = charge_points(&mut tx, user, amount, now).await?;
            let charge = Charge {
                charge_id,
                amount,
                balance,
            };
            if let Some(idem) = idempotency {
                insert_answers(&mut tx, &[&idem.answer(&charge)], now).await?;
            }
            tx.commit().await?;
            Ok(charge)
        }
        .await;
        w.settle(charged)
    }

    async fn point_history(&self, user: UserId, page: Page) -> StoreResult<Paged<PointEntry>> {
        let rows = sqlx::query(
            "SELECT id, kind, amount, balance_after, order_id, created_at FROM point_history \
             WHERE user_id = ?1 ORDER BY id DESC LIMIT ?2 OFFSET ?3",
        )
        .bind(user.0)
        .bind(page.size)
        .bind(page.offset())
        .fetch_all(&self.reader)
        .await?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM point_history WHERE user_id = ?")
            .bind(user.0)
            .fetch_one(&self.reader)
            .await?;
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
                    created_at: time(r.try_get("created_at")?),
                })
            })
            .collect::<StoreResult<_>>()?;
        Ok(Paged { items, total, page })
    }
}

#[async_trait]
impl CouponLedger for SqliteStore {
    async fn insert_coupon(&self, c: &Coupon) -> StoreResult<()> {
        let mut w = self.writer().await?;
        let done = insert_coupon(w.conn(), c).await;
        w.settle(done)
    }

    async fn coupon(&self, id: Uuid) -> StoreResult<Option<Coupon>> {
        let row = sqlx::query(&format!("SELECT {COUPON_COLS} FROM coupons WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| coupon_from_row(&r)).transpose()
    }

    async fn coupons(&self) -> StoreResult<Vec<Coupon>> {
        let rows = sqlx::query(&format!("SELECT {COUPON_COLS} FROM coupons"))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(coupon_from_row).collect()
    }

    async fn coupon_holders(&self) -> StoreResult<Vec<(Uuid, UserId, bool)>> {
        let rows = sqlx::query("SELECT coupon_id, user_id, status FROM user_coupons")
            .fetch_all(&self.reader)
            .await?;
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

    #[tracing::instrument(level = "debug", skip_all, fields(batch = batch.len()))]
    async fn issue_coupons(&self, batch: &[IssueWrite]) -> Vec<StoreResult<Issued>> {
        match self.issue_batch(batch).await {
            Ok(Some(())) => return batch.iter().map(|_| Ok(Issued::Issued)).collect(),
            Ok(None) => {}
            // Storage failed: nothing was written and no issue would fare
            // better on its own.
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
            out.push(self.issue_one(w).await);
        }
        out
    }

    async fn user_coupons(&self, user: UserId, page: Page) -> StoreResult<Paged<UserCoupon>> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COUPON_COLS} FROM user_coupons WHERE user_id = ?1 \
             ORDER BY issued_at DESC, id DESC LIMIT ?2 OFFSET ?3"
        ))
        .bind(user.0)
        .bind(page.size)
        .bind(page.offset())
        .fetch_all(&self.reader)
        .await?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM user_coupons WHERE user_id = ?")
            .bind(user.0)
            .fetch_one(&self.reader)
            .await?;
        let items = rows
            .iter()
            .map(user_coupon_from_row)
            .collect::<StoreResult<_>>()?;
        Ok(Paged { items, total, page })
    }

    async fn user_coupon(&self, coupon: Uuid, user: UserId) -> StoreResult<Option<UserCoupon>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COUPON_COLS} FROM user_coupons WHERE coupon_id = ? AND user_id = ?"
        ))
        .bind(coupon)
        .bind(user.0)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|r| user_coupon_from_row(&r)).transpose()
    }

    async fn user_coupon_by_id(&self, id: Uuid) -> StoreResult<Option<UserCoupon>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COUPON_COLS} FROM user_coupons WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|r| user_coupon_from_row(&r)).transpose()
    }
}

#[async_trait]
impl IdempotencyAnswers for SqliteStore {
    async fn idempotent_answer(
        &self,
        user: UserId,
        key: &str,
    ) -> StoreResult<Option<IdempotentAnswer>> {
        let row = sqlx::query(
            "SELECT request_hash, status, body FROM idempotency_keys WHERE user_id = ? AND key = ?",
        )
        .bind(user.0)
        .bind(key)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|r| {
            let hash: Vec<u8> = r.try_get("request_hash")?;
            let status: i64 = r.try_get("status")?;
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
        let mut w = self.writer().await?;
        // Rows go in in commit order (the rowid), so the rows to forget
        // are those before the first one stored at or after `before`:
        // found by walking from the oldest, which touches only what goes.
        // A row written under a clock set back may outlive its time a
        // little; none goes early.
        let done = sqlx::query(
            "DELETE FROM idempotency_keys WHERE id < coalesce(\
               (SELECT id FROM idempotency_keys WHERE created_at >= ?1 ORDER BY id LIMIT 1), \
               (SELECT max(id) + 1 FROM idempotency_keys))",
        )
        .bind(micros(before))
        .execute(w.conn())
        .await;
        w.settle(done.map(|d| d.rows_affected()).map_err(StoreError::from))
    }
}

#[async_trait]
impl Outbox for SqliteStore {
    async fn unpublished(&self, limit: i64) -> StoreResult<Vec<OutboxEntry>> {
        let rows = sqlx::query(
            "SELECT seq, topic, payload FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
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
        let mut w = self.writer().await?;
        let done = sqlx::query(
            "UPDATE outbox SET published_at = ?1 WHERE seq <= ?2 AND published_at IS NULL",
        )
        .bind(micros(now))
        .bind(up_to)
        .execute(w.conn())
        .await;
        w.settle(done.map(drop).map_err(StoreError::from))
    }

    async fn prune_outbox(&self, before: DateTime<Utc>, unread: bool) -> StoreResult<u64> {
        let mut w = self.writer().await?;
        let done = sqlx::query(
            "DELETE FROM outbox WHERE (published_at IS NOT NULL AND published_at < ?1) \
             OR (?2 AND published_at IS NULL AND created_at < ?1)",
        )
        .bind(micros(before))
        .bind(unread)
        .execute(w.conn())
        .await;
        w.settle(done.map(|d| d.rows_affected()).map_err(StoreError::from))
    }
}
