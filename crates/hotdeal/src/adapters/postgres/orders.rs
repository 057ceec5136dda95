//! Writing orders on PostgreSQL: group commit, the one-by-one fallback,
//! cancels, payments and the payment-expiry sweep.
//!
//! A batch is a handful of set-based statements whatever its size:
//! coupon uses (one `UPDATE … FROM UNNEST … RETURNING`), the payers'
//! accounts locked in key order and debited in one update, the per-user
//! deal holdings as one upsert whose `WHERE` carries the limit, one
//! `INSERT … SELECT * FROM UNNEST(…)` per table, and last, just before the
//! commit, one conditional stock update per table for the hot rows, so a
//! hot row stays locked for about one log flush. Anything that does not add
//! up (a key short of stock, a limit, a duplicate idempotency key, a
//! failing row) rolls the batch back and sends it down the slow path,
//! where each order is its own transaction and only the faulty ones fail.

use super::rows::corrupt;
use super::{Pg, PgStore};
use crate::model::{IdempotentAnswer, Order, PointKind};
use crate::ports::store::{
    CancelBy, Cancellation, IdempotencyWrite, OrderWrite, Payment, Placement, StoreError,
    StoreResult,
};
use chrono::{DateTime, Utc};
use hotdeal_domain::{DealId, OrderId, PaymentStatus, ProductId, StockKey, UserId};
use serde_json::json;
use sqlx::{Connection, PgConnection, Row};
use std::collections::{BTreeMap, HashMap, HashSet};
use uuid::Uuid;

/// Why a points step failed.
pub(super) enum Spend {
    Done { id: Uuid, balance: i64 },
    Short(i64),
}

impl PgStore {
    pub(super) async fn place(&self, batch: &[OrderWrite]) -> Vec<StoreResult<Placement>> {
        match super::write!(self, |c| place_batch(c, batch).await) {
            Ok(Some(placements)) => return placements.into_iter().map(Ok).collect(),
            Ok(None) => {}
            // The database failed (or kept deadlocking): nothing was
            // written and no order would fare better on its own.
            Err(StoreError::Unavailable(e)) => {
                return batch
                    .iter()
                    .map(|_| Err(StoreError::Unavailable(e.to_string().into())))
                    .collect();
            }
            Err(e) => {
                tracing::warn!(error = %e, orders = batch.len(), "batch commit failed; committing one by one")
            }
        }
        let mut out = Vec::with_capacity(batch.len());
        for w in batch {
            out.push(super::write!(self, |c| place_one(c, w).await));
        }
        out
    }
}

/// See the module docs. `None`: a condition failed, nothing was written.
async fn place_batch(
    conn: &mut PgConnection,
    batch: &[OrderWrite],
) -> StoreResult<Option<Vec<Placement>>> {
    if batch.iter().all(is_plain) {
        return place_in_one_call(conn, batch).await;
    }
    let mut tx = conn.begin().await.pg()?;
    let mut placements = vec![Placement::Placed; batch.len()];
    let fenced = fence(
        &mut tx,
        &batch.iter().map(|w| w.order.id.0).collect::<Vec<_>>(),
    )
    .await?;
    for (w, p) in batch.iter().zip(placements.iter_mut()) {
        if !fenced.contains(&w.order.id.0) {
            *p = Placement::Aborted;
        }
    }

    // Coupon uses, one statement. Of two orders using the same coupon, one
    // comes back.
    let with_coupon: Vec<usize> = (0..batch.len())
        .filter(|&i| placements[i] == Placement::Placed && batch[i].order.coupon_id.is_some())
        .collect();
    if !with_coupon.is_empty() {
        let o = |i: &usize| &batch[*i].order;
        let used: HashSet<Uuid> = sqlx::query_scalar(
            "UPDATE user_coupons uc SET status = 'used', used_at = x.at, order_id = x.oid \
             FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::timestamptz[]) AS x(coupon, usr, oid, at) \
             WHERE uc.coupon_id = x.coupon AND uc.user_id = x.usr AND uc.status = 'issued' \
             RETURNING x.oid",
        )
        .bind(with_coupon.iter().map(|i| o(i).coupon_id).collect::<Vec<_>>())
        .bind(with_coupon.iter().map(|i| o(i).user_id.0).collect::<Vec<_>>())
        .bind(with_coupon.iter().map(|i| o(i).id.0).collect::<Vec<_>>())
        .bind(with_coupon.iter().map(|i| o(i).created_at).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await
        .pg()?
        .into_iter()
        .collect();
        for &i in &with_coupon {
            if !used.contains(&batch[i].order.id.0) {
                placements[i] = Placement::CouponNotUsable;
            }
        }
    }

    // Points: the payers' accounts locked in key order, each order paid in
    // arrival order while its user's balance lasts, one debit per user.
    let payers: Vec<usize> = (0..batch.len())
        .filter(|&i| {
            placements[i] == Placement::Placed
                && batch[i].order.payment_status == PaymentStatus::Paid
        })
        .collect();
    let mut history = Vec::new();
    if !payers.is_empty() {
        let users: Vec<Uuid> = payers
            .iter()
            .map(|&i| batch[i].order.user_id.0)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut balances: HashMap<Uuid, i64> = sqlx::query(
            "SELECT user_id, balance FROM point_accounts WHERE user_id = ANY($1) \
             ORDER BY user_id FOR UPDATE",
        )
        .bind(&users)
        .fetch_all(&mut *tx)
        .await
        .pg()?
        .iter()
        .map(|r| Ok((r.try_get("user_id")?, r.try_get("balance")?)))
        .collect::<StoreResult<_>>()?;
        let mut debits: BTreeMap<Uuid, (i64, DateTime<Utc>)> = BTreeMap::new();
        let mut unpaid_coupons = Vec::new();
        for &i in &payers {
            let o = &batch[i].order;
            let Some(balance) = balances.get_mut(&o.user_id.0) else {
                placements[i] = Placement::InsufficientPoints { balance: 0 };
                unpaid_coupons.extend(o.coupon_id.map(|_| o.id.0));
                continue;
            };
            if *balance < o.total_amount {
                placements[i] = Placement::InsufficientPoints { balance: *balance };
                unpaid_coupons.extend(o.coupon_id.map(|_| o.id.0));
                continue;
            }
            *balance -= o.total_amount;
            let debit = debits.entry(o.user_id.0).or_insert((0, o.created_at));
            debit.0 += o.total_amount;
            debit.1 = debit.1.max(o.created_at);
            history.push((Uuid::now_v7(), o, *balance));
        }
        if !unpaid_coupons.is_empty() {
            sqlx::query(
                "UPDATE user_coupons SET status = 'issued', used_at = NULL, order_id = NULL \
                 WHERE order_id = ANY($1)",
            )
            .bind(&unpaid_coupons)
            .execute(&mut *tx)
            .await
            .pg()?;
        }
        if !debits.is_empty() {
            let done = sqlx::query(
                "UPDATE point_accounts p SET balance = p.balance - x.total, updated_at = x.at \
                 FROM UNNEST($1::uuid[], $2::int8[], $3::timestamptz[]) AS x(usr, total, at) \
                 WHERE p.user_id = x.usr AND p.balance >= x.total",
            )
            .bind(debits.keys().copied().collect::<Vec<_>>())
            .bind(debits.values().map(|d| d.0).collect::<Vec<_>>())
            .bind(debits.values().map(|d| d.1).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await
            .pg()?;
            if done.rows_affected() != debits.len() as u64 {
                return Ok(None);
            }
        }
    }
    insert_history(
        &mut tx,
        &history
            .iter()
            .map(|(id, o, after)| HistoryRow {
                id: *id,
                user: o.user_id,
                kind: PointKind::Payment,
                amount: o.total_amount,
                balance_after: *after,
                order: Some(o.id),
                at: o.created_at,
            })
            .collect::<Vec<_>>(),
    )
    .await?;

    let accepted: Vec<&OrderWrite> = batch
        .iter()
        .zip(&placements)
        .filter(|(_, p)| **p == Placement::Placed)
        .map(|(w, _)| w)
        .collect();
    let demand = Demand::of(accepted.iter().copied());
    let held = &demand.held;
    if !held.is_empty() {
        let counted = sqlx::query(
            "INSERT INTO deal_purchases AS p (deal_id, user_id, quantity) \
             SELECT x.d, x.u, x.q FROM UNNEST($1::uuid[], $2::uuid[], $3::int8[]) AS x(d, u, q) \
             JOIN deals d ON d.id = x.d \
             WHERE d.per_user_limit IS NULL OR x.q <= d.per_user_limit \
             ON CONFLICT (deal_id, user_id) DO UPDATE SET quantity = p.quantity + excluded.quantity \
             WHERE p.quantity + excluded.quantity <= COALESCE( \
                 (SELECT per_user_limit FROM deals WHERE id = excluded.deal_id), p.quantity + excluded.quantity)",
        )
        .bind(held.keys().map(|k| k.0 .0).collect::<Vec<_>>())
        .bind(held.keys().map(|k| k.1 .0).collect::<Vec<_>>())
        .bind(held.values().copied().collect::<Vec<_>>())
        .execute(&mut *tx)
        .await
        .pg()?;
        if counted.rows_affected() != held.len() as u64 {
            return Ok(None);
        }
    }
    let orders: Vec<&Order> = accepted.iter().map(|w| &w.order).collect();
    insert_orders(&mut tx, &orders).await?;
    let events: Vec<_> = orders
        .iter()
        .map(|o| order_event("order.placed", o))
        .collect();
    let now = orders.iter().map(|o| o.created_at).max();
    if let Some(now) = now {
        insert_events(&mut tx, &events, now).await?;
        let answers: Vec<&IdempotentAnswer> =
            accepted.iter().filter_map(|w| w.answer.as_ref()).collect();
        insert_answers(&mut tx, &answers, now).await?;
    }

    // The hot rows last: locked in key order, taken only where the units
    // are there (and, for a deal, while it runs), compared with the keys
    // expected.
    let (products, deals) = demand.split();
    if !products.is_empty() {
        let ids: Vec<Uuid> = products.iter().map(|(k, _)| k.uuid()).collect();
        lock_in_order(&mut tx, "products", &ids).await?;
        let taken = sqlx::query(
            "UPDATE products p SET stock = p.stock - x.q, updated_at = x.last \
             FROM UNNEST($1::uuid[], $2::int8[], $3::timestamptz[]) AS x(id, q, last) \
             WHERE p.id = x.id AND p.stock >= x.q",
        )
        .bind(&ids)
        .bind(products.iter().map(|(_, d)| d.0).collect::<Vec<_>>())
        .bind(products.iter().map(|(_, d)| d.2).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await
        .pg()?;
        if taken.rows_affected() != ids.len() as u64 {
            return Ok(None);
        }
    }
    if !deals.is_empty() {
        let ids: Vec<Uuid> = deals.iter().map(|(k, _)| k.uuid()).collect();
        lock_in_order(&mut tx, "deals", &ids).await?;
        let taken = sqlx::query(
            "UPDATE deals d SET remaining_stock = d.remaining_stock - x.q \
             FROM UNNEST($1::uuid[], $2::int8[], $3::timestamptz[], $4::timestamptz[]) \
                 AS x(id, q, first, last) \
             WHERE d.id = x.id AND d.remaining_stock >= x.q AND d.settled_at IS NULL \
               AND d.starts_at <= x.first AND d.ends_at > x.last",
        )
        .bind(&ids)
        .bind(deals.iter().map(|(_, d)| d.0).collect::<Vec<_>>())
        .bind(deals.iter().map(|(_, d)| d.1).collect::<Vec<_>>())
        .bind(deals.iter().map(|(_, d)| d.2).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await
        .pg()?;
        if taken.rows_affected() != ids.len() as u64 {
            return Ok(None);
        }
    }
    // Refused orders wrote nothing: their fence rows go, so the reconciler
    // may still abort their reservations if the request's own settling
    // never happens.
    let refused: Vec<Uuid> = batch
        .iter()
        .zip(&placements)
        .filter(|(_, p)| !matches!(p, Placement::Placed | Placement::Aborted))
        .map(|(w, _)| w.order.id.0)
        .collect();
    if !refused.is_empty() {
        sqlx::query("DELETE FROM reservations WHERE id = ANY($1)")
            .bind(&refused)
            .execute(&mut *tx)
            .await
            .pg()?;
    }
    tx.commit().await.pg()?;
    Ok(Some(placements))
}

/// Whether an order can go in [`place_in_one_call`]: it uses no coupon and
/// pays no points (those need the balance or the coupon read back before
/// the rest of the batch is decided).
fn is_plain(w: &OrderWrite) -> bool {
    w.order.coupon_id.is_none() && w.order.payment_status != PaymentStatus::Paid
}

/// A batch of plain orders through `place_order_batch` (migration 0004):
/// the same statements as [`place_batch`], in one round trip and the
/// call's own transaction. `None`: a condition failed, nothing was written.
async fn place_in_one_call(
    conn: &mut PgConnection,
    batch: &[OrderWrite],
) -> StoreResult<Option<Vec<Placement>>> {
    let orders: Vec<&Order> = batch.iter().map(|w| &w.order).collect();
    let lines = lines_of(&orders);
    let events: Vec<_> = orders
        .iter()
        .map(|o| order_event("order.placed", o))
        .collect();
    let answers: Vec<&IdempotentAnswer> = batch.iter().filter_map(|w| w.answer.as_ref()).collect();
    let now = orders.iter().map(|o| o.created_at).max();
    let demand = Demand::of(batch);
    let (products, deals) = demand.split();
    let done = sqlx::query(
        "SELECT place_order_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
           $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, \
           $32, $33, $34, $35, $36, $37)",
    )
    .bind(orders.iter().map(|o| o.id.0).collect::<Vec<_>>())
    .bind(orders.iter().map(|o| o.user_id.0).collect::<Vec<_>>())
    .bind(orders.iter().map(|o| o.total_amount).collect::<Vec<_>>())
    .bind(orders.iter().map(|o| o.discount_amount).collect::<Vec<_>>())
    .bind(orders.iter().map(|o| o.status.as_str()).collect::<Vec<_>>())
    .bind(
        orders
            .iter()
            .map(|o| o.payment_status.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(addresses_of(&orders)?)
    .bind(orders.iter().map(|o| o.created_at).collect::<Vec<_>>())
    .bind(orders.iter().map(|o| o.updated_at).collect::<Vec<_>>())
    .bind(orders.iter().map(|o| o.pay_by).collect::<Vec<_>>())
    .bind_lines(&lines)
    .bind(events.iter().map(|e| e.0).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.1.as_str()).collect::<Vec<_>>())
    .bind(now)
    .bind(answers.iter().map(|a| a.user_id.0).collect::<Vec<_>>())
    .bind(answers.iter().map(|a| a.key.as_str()).collect::<Vec<_>>())
    .bind(
        answers
            .iter()
            .map(|a| a.request_hash.to_vec())
            .collect::<Vec<_>>(),
    )
    .bind(
        answers
            .iter()
            .map(|a| i32::from(a.status))
            .collect::<Vec<_>>(),
    )
    .bind(answers.iter().map(|a| a.body.clone()).collect::<Vec<_>>())
    .bind(demand.held.keys().map(|k| k.0 .0).collect::<Vec<_>>())
    .bind(demand.held.keys().map(|k| k.1 .0).collect::<Vec<_>>())
    .bind(demand.held.values().copied().collect::<Vec<_>>())
    .bind(products.iter().map(|(k, _)| k.uuid()).collect::<Vec<_>>())
    .bind(products.iter().map(|(_, d)| d.0).collect::<Vec<_>>())
    .bind(products.iter().map(|(_, d)| d.2).collect::<Vec<_>>())
    .bind(deals.iter().map(|(k, _)| k.uuid()).collect::<Vec<_>>())
    .bind(deals.iter().map(|(_, d)| d.0).collect::<Vec<_>>())
    .bind(deals.iter().map(|(_, d)| d.1).collect::<Vec<_>>())
    .bind(deals.iter().map(|(_, d)| d.2).collect::<Vec<_>>())
    .execute(conn)
    .await;
    match done {
        Ok(_) => Ok(Some(vec![Placement::Placed; batch.len()])),
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(BATCH_REFUSED) => Ok(None),
        Err(e) => Err(super::classify(e)),
    }
}

/// The SQLSTATE `place_order_batch` raises when the batch does not add up.
const BATCH_REFUSED: &str = "HD001";

/// What a batch's orders take: units per stock key, with the first and
/// last instant of the orders taking them (a deal's window must hold for
/// both), and units per (deal, user) for the per-user limits.
struct Demand {
    keys: BTreeMap<StockKey, (i64, DateTime<Utc>, DateTime<Utc>)>,
    held: BTreeMap<(DealId, UserId), i64>,
}

type KeyDemand<'a> = Vec<(&'a StockKey, &'a (i64, DateTime<Utc>, DateTime<Utc>))>;

impl Demand {
    fn of<'a>(writes: impl IntoIterator<Item = &'a OrderWrite>) -> Self {
        let mut keys: BTreeMap<StockKey, (i64, DateTime<Utc>, DateTime<Utc>)> = BTreeMap::new();
        let mut held = BTreeMap::new();
        for w in writes {
            let at = w.order.created_at;
            for (&key, &qty) in &w.demand {
                let d = keys.entry(key).or_insert((0, at, at));
                d.0 += qty;
                d.1 = d.1.min(at);
                d.2 = d.2.max(at);
                if let StockKey::Deal(deal) = key {
                    *held.entry((deal, w.order.user_id)).or_insert(0) += qty;
                }
            }
        }
        Self { keys, held }
    }

    /// Product keys and deal keys, each in key order.
    fn split(&self) -> (KeyDemand<'_>, KeyDemand<'_>) {
        self.keys
            .iter()
            .partition(|(k, _)| matches!(k, StockKey::Product(_)))
    }
}

/// Locks rows of `table` in key order (deadlock-free against any other
/// writer that does the same). One key needs no ordering.
async fn lock_in_order(conn: &mut PgConnection, table: &str, ids: &[Uuid]) -> StoreResult<()> {
    if ids.len() < 2 {
        return Ok(());
    }
    sqlx::query(&format!(
        "SELECT 1 FROM {table} WHERE id = ANY($1) ORDER BY id FOR UPDATE"
    ))
    .bind(ids)
    .execute(&mut *conn)
    .await
    .pg()?;
    Ok(())
}

/// One order in its own transaction, every condition checked by SQL.
async fn place_one(conn: &mut PgConnection, w: &OrderWrite) -> StoreResult<Placement> {
    let order = &w.order;
    let now = order.created_at;
    let mut tx = conn.begin().await.pg()?;
    if fence(&mut tx, &[order.id.0]).await?.is_empty() {
        return Ok(Placement::Aborted);
    }
    // Keys in order (the demand is a sorted map).
    for (&key, &qty) in &w.demand {
        if let Some(refusal) = take_stock(&mut tx, key, qty, now).await? {
            // Dropping `tx` rolls back what was already taken.
            return Ok(refusal);
        }
        if let StockKey::Deal(d) = key {
            if let Some(refusal) = count_purchase(&mut tx, d, order.user_id, qty).await? {
                return Ok(refusal);
            }
        }
    }
    if let Some(refusal) = use_coupon_and_pay(&mut tx, order).await? {
        return Ok(refusal);
    }
    insert_orders(&mut tx, &[order]).await?;
    insert_events(&mut tx, &[order_event("order.placed", order)], now).await?;
    if let Some(a) = &w.answer {
        insert_answers(&mut tx, &[a], now).await?;
    }
    tx.commit().await.pg()?;
    Ok(Placement::Placed)
}

/// Uses the order's coupon and takes its points, or says why not.
async fn use_coupon_and_pay(conn: &mut PgConnection, o: &Order) -> StoreResult<Option<Placement>> {
    if let Some(coupon) = o.coupon_id {
        let used = sqlx::query(
            "UPDATE user_coupons SET status = 'used', used_at = $1, order_id = $2 \
             WHERE coupon_id = $3 AND user_id = $4 AND status = 'issued'",
        )
        .bind(o.created_at)
        .bind(o.id.0)
        .bind(coupon)
        .bind(o.user_id.0)
        .execute(&mut *conn)
        .await
        .pg()?;
        if used.rows_affected() != 1 {
            return Ok(Some(Placement::CouponNotUsable));
        }
    }
    if o.payment_status == PaymentStatus::Paid {
        let spend = move_points(
            conn,
            o.user_id,
            PointKind::Payment,
            -o.total_amount,
            Some(o.id),
            o.created_at,
        )
        .await?;
        if let Spend::Short(balance) = spend {
            return Ok(Some(Placement::InsufficientPoints { balance }));
        }
    }
    Ok(None)
}

/// Moves `delta` points (negative spends) with a history row, refusing to
/// go below zero; the balance and the history row's id come back from the
/// statements that wrote them.
pub(super) async fn move_points(
    conn: &mut PgConnection,
    user: UserId,
    kind: PointKind,
    delta: i64,
    order: Option<OrderId>,
    now: DateTime<Utc>,
) -> StoreResult<Spend> {
    let balance: Option<i64> = if delta >= 0 {
        sqlx::query_scalar(
            "INSERT INTO point_accounts AS a (user_id, balance, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE SET balance = a.balance + excluded.balance, \
             updated_at = excluded.updated_at RETURNING balance",
        )
        .bind(user.0)
        .bind(delta)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await
        .pg()?
    } else {
        sqlx::query_scalar(
            "UPDATE point_accounts SET balance = balance + $2, updated_at = $3 \
             WHERE user_id = $1 AND balance + $2 >= 0 RETURNING balance",
        )
        .bind(user.0)
        .bind(delta)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await
        .pg()?
    };
    let Some(balance_after) = balance else {
        let balance: Option<i64> =
            sqlx::query_scalar("SELECT balance FROM point_accounts WHERE user_id = $1")
                .bind(user.0)
                .fetch_optional(&mut *conn)
                .await
                .pg()?;
        return Ok(Spend::Short(balance.unwrap_or(0)));
    };
    let id = Uuid::now_v7();
    insert_history(
        conn,
        &[HistoryRow {
            id,
            user,
            kind,
            amount: delta.abs(),
            balance_after,
            order,
            at: now,
        }],
    )
    .await?;
    Ok(Spend::Done {
        id,
        balance: balance_after,
    })
}

/// Takes `qty` units of `key`, or says why not.
async fn take_stock(
    conn: &mut PgConnection,
    key: StockKey,
    qty: i64,
    now: DateTime<Utc>,
) -> StoreResult<Option<Placement>> {
    match key {
        StockKey::Product(p) => {
            let left: Option<i64> = sqlx::query_scalar(
                "UPDATE products SET stock = stock - $1, updated_at = $2 \
                 WHERE id = $3 AND stock >= $1 RETURNING stock",
            )
            .bind(qty)
            .bind(now)
            .bind(p.0)
            .fetch_optional(&mut *conn)
            .await
            .pg()?;
            if left.is_some() {
                return Ok(None);
            }
            let available: Option<i64> =
                sqlx::query_scalar("SELECT stock FROM products WHERE id = $1")
                    .bind(p.0)
                    .fetch_optional(&mut *conn)
                    .await
                    .pg()?;
            Ok(Some(Placement::Insufficient {
                key,
                requested: qty,
                available: available.unwrap_or(0),
            }))
        }
        StockKey::Deal(d) => {
            let left: Option<i64> = sqlx::query_scalar(
                "UPDATE deals SET remaining_stock = remaining_stock - $1 \
                 WHERE id = $2 AND remaining_stock >= $1 AND settled_at IS NULL \
                   AND starts_at <= $3 AND ends_at > $3 RETURNING remaining_stock",
            )
            .bind(qty)
            .bind(d.0)
            .bind(now)
            .fetch_optional(&mut *conn)
            .await
            .pg()?;
            if left.is_some() {
                return Ok(None);
            }
            let row = sqlx::query(
                "SELECT remaining_stock, \
                   (settled_at IS NULL AND starts_at <= $2 AND ends_at > $2) AS running \
                 FROM deals WHERE id = $1",
            )
            .bind(d.0)
            .bind(now)
            .fetch_optional(&mut *conn)
            .await
            .pg()?;
            Ok(Some(match row {
                Some(r) if r.try_get::<bool, _>("running")? => Placement::Insufficient {
                    key,
                    requested: qty,
                    available: r.try_get("remaining_stock")?,
                },
                _ => Placement::DealNotActive(d),
            }))
        }
    }
}

/// Adds `qty` to what `user` holds of deal `d`, within the deal's
/// per-user limit: one upsert whose `WHERE` carries the limit.
async fn count_purchase(
    conn: &mut PgConnection,
    d: DealId,
    user: UserId,
    qty: i64,
) -> StoreResult<Option<Placement>> {
    let counted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO deal_purchases AS p (deal_id, user_id, quantity) \
         SELECT $1, $2, $3 FROM deals d WHERE d.id = $1 \
           AND (d.per_user_limit IS NULL OR $3 <= d.per_user_limit) \
         ON CONFLICT (deal_id, user_id) DO UPDATE SET quantity = p.quantity + excluded.quantity \
         WHERE p.quantity + excluded.quantity <= COALESCE( \
             (SELECT per_user_limit FROM deals WHERE id = excluded.deal_id), p.quantity + excluded.quantity) \
         RETURNING quantity",
    )
    .bind(d.0)
    .bind(user.0)
    .bind(qty)
    .fetch_optional(&mut *conn)
    .await
    .pg()?;
    if counted.is_some() {
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT d.per_user_limit, COALESCE(p.quantity, 0) AS held FROM deals d \
         LEFT JOIN deal_purchases p ON p.deal_id = d.id AND p.user_id = $2 WHERE d.id = $1",
    )
    .bind(d.0)
    .bind(user.0)
    .fetch_optional(&mut *conn)
    .await
    .pg()?
    .ok_or_else(|| corrupt("deal of a purchase"))?;
    Ok(Some(Placement::LimitExceeded {
        deal: d,
        limit: row
            .try_get::<Option<i64>, _>("per_user_limit")?
            .unwrap_or(0),
        held: row.try_get("held")?,
    }))
}

/// Puts `qty` units back where an order line took them from; returns the
/// stock that got them.
async fn return_stock(
    conn: &mut PgConnection,
    product: ProductId,
    deal: Option<DealId>,
    qty: i64,
    now: DateTime<Utc>,
) -> StoreResult<StockKey> {
    if let Some(d) = deal {
        // Guarded: a deal settled meanwhile (even by another instance)
        // does not take units back.
        let back_to_deal = sqlx::query(
            "UPDATE deals SET remaining_stock = remaining_stock + $1 \
             WHERE id = $2 AND settled_at IS NULL",
        )
        .bind(qty)
        .bind(d.0)
        .execute(&mut *conn)
        .await
        .pg()?;
        if back_to_deal.rows_affected() == 1 {
            return Ok(StockKey::Deal(d));
        }
        // The deal already gave its units back; these follow them to the
        // product and count as returned: `deal_stock = remaining + returned
        // + sold`.
        sqlx::query("UPDATE deals SET returned_stock = returned_stock + $1 WHERE id = $2")
            .bind(qty)
            .bind(d.0)
            .execute(&mut *conn)
            .await
            .pg()?;
    }
    sqlx::query("UPDATE products SET stock = stock + $1, updated_at = $2 WHERE id = $3")
        .bind(qty)
        .bind(now)
        .bind(product.0)
        .execute(&mut *conn)
        .await
        .pg()?;
    Ok(StockKey::Product(product))
}

/// Cancels after locking the order row, so of a buyer's cancel, an expiry
/// and a payment racing on any instance exactly one sees the order as it
/// was.
pub(super) async fn cancel(
    conn: &mut PgConnection,
    id: OrderId,
    reason: Option<&str>,
    by: CancelBy,
    now: DateTime<Utc>,
) -> StoreResult<Cancellation> {
    let mut tx = conn.begin().await.pg()?;
    let Some(order) = lock_order(&mut tx, id).await? else {
        return Ok(Cancellation::NotFound);
    };
    let reason = match by {
        CancelBy::Buyer if !order.status.can_cancel() => {
            return Ok(Cancellation::InvalidState(order.status));
        }
        CancelBy::Buyer => reason,
        CancelBy::Expiry => {
            let due = order.status.can_cancel()
                && order.payment_status == PaymentStatus::Unpaid
                && order.pay_by.is_some_and(|t| t <= now);
            if !due {
                return Ok(Cancellation::NotDue);
            }
            Some("PAYMENT_TIMEOUT")
        }
    };
    let paid = order.payment_status == PaymentStatus::Paid;
    let changed = sqlx::query(
        "UPDATE orders SET status = 'cancelled', cancel_reason = $1, cancelled_at = $2, \
         updated_at = $2, pay_by = NULL, payment_status = \
           CASE WHEN payment_status = 'paid' THEN 'refunded' ELSE payment_status END \
         WHERE id = $3 AND status = $4 AND payment_status = $5",
    )
    .bind(reason)
    .bind(now)
    .bind(id.0)
    .bind(order.status.as_str())
    .bind(order.payment_status.as_str())
    .execute(&mut *tx)
    .await
    .pg()?;
    if changed.rows_affected() != 1 {
        // Cannot happen under the row lock; never return units twice.
        return Err(corrupt("order changed under its lock"));
    }
    let mut returned = Vec::with_capacity(order.items.len());
    for item in &order.items {
        let key = return_stock(&mut tx, item.product_id, item.deal_id, item.quantity, now).await?;
        returned.push((key, item.quantity));
        if let Some(d) = item.deal_id {
            sqlx::query(
                "UPDATE deal_purchases SET quantity = quantity - $1 \
                 WHERE deal_id = $2 AND user_id = $3",
            )
            .bind(item.quantity)
            .bind(d.0)
            .bind(order.user_id.0)
            .execute(&mut *tx)
            .await
            .pg()?;
        }
    }
    if paid {
        move_points(
            &mut tx,
            order.user_id,
            PointKind::Refund,
            order.total_amount,
            Some(id),
            now,
        )
        .await?;
    }
    if let Some(coupon) = order.coupon_id {
        sqlx::query(
            "UPDATE user_coupons SET status = 'issued', used_at = NULL, order_id = NULL \
             WHERE coupon_id = $1 AND user_id = $2 AND order_id = $3",
        )
        .bind(coupon)
        .bind(order.user_id.0)
        .bind(id.0)
        .execute(&mut *tx)
        .await
        .pg()?;
    }
    let Some(cancelled) = PgStore::load_order(&mut tx, id).await? else {
        return Ok(Cancellation::NotFound);
    };
    let topic = if by == CancelBy::Expiry {
        "order.expired"
    } else {
        "order.cancelled"
    };
    // The units given back ride on the event: a shared tier applies them
    // from here if the request that cancelled dies before it does.
    let (topic, payload) = order_event(topic, &cancelled);
    let mut payload: serde_json::Value =
        serde_json::from_str(&payload).map_err(|e| StoreError::Backend(e.into()))?;
    payload["returned"] = returned_json(&returned);
    insert_events(&mut tx, &[(topic, payload.to_string())], now).await?;
    tx.commit().await.pg()?;
    Ok(Cancellation::Cancelled {
        order: Box::new(cancelled),
        returned,
    })
}

/// The order, its row locked until the transaction ends.
async fn lock_order(conn: &mut PgConnection, id: OrderId) -> StoreResult<Option<Order>> {
    let found: Option<Uuid> = sqlx::query_scalar("SELECT id FROM orders WHERE id = $1 FOR UPDATE")
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await
        .pg()?;
    if found.is_none() {
        return Ok(None);
    }
    PgStore::load_order(conn, id).await
}

pub(super) async fn pay(
    conn: &mut PgConnection,
    id: OrderId,
    user: UserId,
    now: DateTime<Utc>,
    idempotency: Option<&IdempotencyWrite<'_, Order>>,
) -> StoreResult<Payment> {
    let mut tx = conn.begin().await.pg()?;
    let Some(order) = lock_order(&mut tx, id).await? else {
        return Ok(Payment::NotFound);
    };
    // The row lock makes expiry and payment exclusive, whichever instance
    // runs them.
    if let Some(refusal) = Payment::refusal(&order, user, now) {
        return Ok(refusal);
    }
    let spend = move_points(
        &mut tx,
        user,
        PointKind::Payment,
        -order.total_amount,
        Some(id),
        now,
    )
    .await?;
    if let Spend::Short(balance) = spend {
        return Ok(Payment::InsufficientPoints { balance });
    }
    let changed = sqlx::query(
        "UPDATE orders SET payment_status = 'paid', pay_by = NULL, updated_at = $1 \
         WHERE id = $2 AND payment_status = 'unpaid' AND status <> 'cancelled'",
    )
    .bind(now)
    .bind(id.0)
    .execute(&mut *tx)
    .await
    .pg()?;
    if changed.rows_affected() != 1 {
        return Err(corrupt("order changed under its lock"));
    }
    let Some(paid) = PgStore::load_order(&mut tx, id).await? else {
        return Ok(Payment::NotFound);
    };
    insert_events(&mut tx, &[order_event("order.paid", &paid)], now).await?;
    if let Some(idem) = idempotency {
        insert_answers(&mut tx, &[&idem.answer(&paid)], now).await?;
    }
    tx.commit().await.pg()?;
    Ok(Payment::Paid(Box::new(paid)))
}

/// Cancels up to `limit` unpaid orders whose payment window passed, in one
/// transaction. The due orders are claimed with `FOR UPDATE SKIP LOCKED`
/// on the deadline index, so sweeps on several instances (or a payment in
/// flight) never wait for each other; each is then cancelled by the same
/// guarded path as a buyer's cancel, in a savepoint.
pub(super) async fn expire_due(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> StoreResult<Vec<Cancellation>> {
    let mut tx = conn.begin().await.pg()?;
    let due: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM orders \
         WHERE pay_by IS NOT NULL AND payment_status = 'unpaid' AND status <> 'cancelled' \
           AND pay_by <= $1 \
         ORDER BY pay_by LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await
    .pg()?;
    let mut out = Vec::with_capacity(due.len());
    for id in due {
        out.push(cancel(&mut tx, OrderId(id), None, CancelBy::Expiry, now).await?);
    }
    tx.commit().await.pg()?;
    Ok(out)
}

/// A point history row to insert.
pub(super) struct HistoryRow {
    pub id: Uuid,
    pub user: UserId,
    pub kind: PointKind,
    pub amount: i64,
    pub balance_after: i64,
    pub order: Option<OrderId>,
    pub at: DateTime<Utc>,
}

async fn insert_history(conn: &mut PgConnection, rows: &[HistoryRow]) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO point_history (id, user_id, kind, amount, balance_after, order_id, created_at) \
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::int8[], $5::int8[], \
                              $6::uuid[], $7::timestamptz[])",
    )
    .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.user.0).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.amount).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.balance_after).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.order.map(|o| o.0)).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.at).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await
    .pg()?;
    Ok(())
}

/// Inserts orders and their lines: one statement per table.
async fn insert_orders(conn: &mut PgConnection, orders: &[&Order]) -> StoreResult<()> {
    if orders.is_empty() {
        return Ok(());
    }
    let addresses = addresses_of(orders)?;
    sqlx::query(
        "INSERT INTO orders (id, user_id, total_amount, discount_amount, status, payment_status, \
           shipping_address, coupon_id, cancel_reason, cancelled_at, created_at, updated_at, pay_by) \
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::int8[], $4::int8[], $5::text[], $6::text[], \
           $7::text[], $8::uuid[], $9::text[], $10::timestamptz[], $11::timestamptz[], \
           $12::timestamptz[], $13::timestamptz[])",
    )
    .bind(orders.iter().map(|o| o.id.0).collect::<Vec<_>>())
    .bind(orders.iter().map(|o| o.user_id.0).collect::<Vec<_>>())
    .bind(orders.iter().map(|o| o.total_amount).collect::<Vec<_>>())
    .bind(orders.iter().map(|o| o.discount_amount).collect::<Vec<_>>())
    .bind(orders.iter().map(|o| o.status.as_str()).collect::<Vec<_>>())
    .bind(orders.iter().map(|o| o.payment_status.as_str()).collect::<Vec<_>>())
    .bind(addresses)
    .bind(orders.iter().map(|o| o.coupon_id).collect::<Vec<_>>())
    .bind(orders.iter().map(|o| o.cancel_reason.clone()).collect::<Vec<_>>())
    .bind(orders.iter().map(|o| o.cancelled_at).collect::<Vec<_>>())
    .bind(orders.iter().map(|o| o.created_at).collect::<Vec<_>>())
    .bind(orders.iter().map(|o| o.updated_at).collect::<Vec<_>>())
    .bind(orders.iter().map(|o| o.pay_by).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await
    .pg()?;
    let lines = lines_of(orders);
    sqlx::query(
        "INSERT INTO order_items (order_id, line_no, id, product_id, deal_id, product_name, \
           quantity, unit_price, subtotal) \
         SELECT * FROM UNNEST($1::uuid[], $2::int8[], $3::uuid[], $4::uuid[], $5::uuid[], \
           $6::text[], $7::int8[], $8::int8[], $9::int8[])",
    )
    .bind_lines(&lines)
    .execute(&mut *conn)
    .await
    .pg()?;
    Ok(())
}

/// The orders' shipping addresses as the `shipping_address` column holds
/// them (JSON text).
fn addresses_of(orders: &[&Order]) -> StoreResult<Vec<Option<String>>> {
    orders
        .iter()
        .map(|o| {
            o.shipping_address
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoreError::Backend(Box::new(e)))
}

/// Every line of the orders: (order id, line number, line).
fn lines_of<'a>(orders: &[&'a Order]) -> Vec<(Uuid, i64, &'a crate::model::OrderItem)> {
    orders
        .iter()
        .flat_map(|o| {
            o.items
                .iter()
                .enumerate()
                .map(move |(n, i)| (o.id.0, n as i64, i))
        })
        .collect()
}

/// A query of one statement, arguments bound by position.
type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds order lines as the nine arrays of `order_items`' columns, in the
/// table's order (order id, line number, then the item's fields): the
/// batch insert and `place_order_batch` take them alike.
trait BindLines<'q> {
    fn bind_lines(self, lines: &[(Uuid, i64, &'q crate::model::OrderItem)]) -> Self;
}

impl<'q> BindLines<'q> for PgQuery<'q> {
    fn bind_lines(self, lines: &[(Uuid, i64, &'q crate::model::OrderItem)]) -> Self {
        self.bind(lines.iter().map(|l| l.0).collect::<Vec<_>>())
            .bind(lines.iter().map(|l| l.1).collect::<Vec<_>>())
            .bind(lines.iter().map(|l| l.2.id).collect::<Vec<_>>())
            .bind(lines.iter().map(|l| l.2.product_id.0).collect::<Vec<_>>())
            .bind(
                lines
                    .iter()
                    .map(|l| l.2.deal_id.map(|d| d.0))
                    .collect::<Vec<_>>(),
            )
            .bind(
                lines
                    .iter()
                    .map(|l| l.2.product_name.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(lines.iter().map(|l| l.2.quantity).collect::<Vec<_>>())
            .bind(lines.iter().map(|l| l.2.unit_price).collect::<Vec<_>>())
            .bind(lines.iter().map(|l| l.2.subtotal).collect::<Vec<_>>())
    }
}

/// The outbox payload of an order event.
fn order_event(topic: &'static str, o: &Order) -> (&'static str, String) {
    let payload = json!({
        "order_id": o.id, "user_id": o.user_id, "total_amount": o.total_amount,
        "status": o.status.as_str(), "payment_status": o.payment_status.as_str(),
        "pay_by": o.pay_by,
    });
    (topic, payload.to_string())
}

/// Appends events to the outbox, in the order given.
pub(super) async fn insert_events(
    conn: &mut PgConnection,
    events: &[(&'static str, String)],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO outbox (topic, payload, created_at) \
         SELECT t, p, $3 FROM UNNEST($1::text[], $2::text[]) WITH ORDINALITY AS x(t, p, n) ORDER BY n",
    )
    .bind(events.iter().map(|e| e.0).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.1.as_str()).collect::<Vec<_>>())
    .bind(now)
    .execute(&mut *conn)
    .await
    .pg()?;
    Ok(())
}

/// Stores answers to idempotency keys.
pub(super) async fn insert_answers(
    conn: &mut PgConnection,
    answers: &[&IdempotentAnswer],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    if answers.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO idempotency_keys (user_id, key, request_hash, status, body, created_at) \
         SELECT u, k, h, s, b, $6 FROM UNNEST($1::uuid[], $2::text[], $3::bytea[], $4::int4[], $5::bytea[]) \
             AS x(u, k, h, s, b)",
    )
    .bind(answers.iter().map(|a| a.user_id.0).collect::<Vec<_>>())
    .bind(answers.iter().map(|a| a.key.as_str()).collect::<Vec<_>>())
    .bind(answers.iter().map(|a| a.request_hash.to_vec()).collect::<Vec<_>>())
    .bind(answers.iter().map(|a| i32::from(a.status)).collect::<Vec<_>>())
    .bind(answers.iter().map(|a| a.body.clone()).collect::<Vec<_>>())
    .bind(now)
    .execute(&mut *conn)
    .await
    .pg()?;
    Ok(())
}

/// Units given back per stock key, as events carry them:
/// `[{"deal_id": …, "units": n}, {"product_id": …, "units": n}]`.
pub(super) fn returned_json(returned: &[(StockKey, i64)]) -> serde_json::Value {
    returned
        .iter()
        .map(|&(key, units)| match key {
            StockKey::Deal(d) => json!({ "deal_id": d, "units": units }),
            StockKey::Product(p) => json!({ "product_id": p, "units": units }),
        })
        .collect()
}

/// Records `ids` as committed in the reservation fence, in the write's own
/// transaction; returns those recorded. An id the reconciler aborted first
/// is missing: its write must not happen.
pub(super) async fn fence(conn: &mut PgConnection, ids: &[Uuid]) -> StoreResult<HashSet<Uuid>> {
    Ok(sqlx::query_scalar(
        "INSERT INTO reservations (id, committed) SELECT unnest($1::uuid[]), true \
         ON CONFLICT (id) DO NOTHING RETURNING id",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await
    .pg()?
    .into_iter()
    .collect())
}
