//! Writing orders: group commit, the one-by-one fallback, cancels,
//! payments, and the points and outbox rows that go with them.

use super::rows::micros;
use super::{writer, SqliteStore, ORDER_COLS};
use crate::model::{IdempotentAnswer, Order, PointKind};
use crate::ports::store::{
    CancelBy, Cancellation, IdempotencyWrite, OrderWrite, Payment, Placement, StoreError,
    StoreResult,
};
use chrono::{DateTime, Utc};
use hotdeal_domain::{DealId, OrderId, OrderStatus, PaymentStatus, ProductId, StockKey, UserId};
use serde_json::json;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, Transaction};
use std::collections::BTreeMap;

/// Rows per multi-row INSERT. Batches are cut into these fixed sizes so
/// the statement cache holds a handful of prepared statements instead of
/// one per batch length (each large, and slow to prepare).
pub(super) const CHUNKS: [usize; 4] = [64, 16, 4, 1];

/// Splits `rows` into slices of the sizes in [`CHUNKS`], largest first.
pub(super) fn fixed_chunks<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        let size = CHUNKS.into_iter().find(|&c| c <= rows.len())?;
        let (head, tail) = rows.split_at(size);
        rows = tail;
        Some(head)
    })
}

/// What a points move did: the history row it wrote and the balance it
/// left, or the balance that was too short.
enum Spend {
    Done { entry: uuid::Uuid, balance: i64 },
    Short(i64),
}

impl SqliteStore {
    /// The fast path: the whole batch in one transaction. Orders with a
    /// coupon are checked one by one in savepoints (so one unusable coupon
    /// or short balance drops that order alone); other paid orders take
    /// their points with one update per user; stock is one conditional
    /// update per key for the whole batch, and rows go in with multi-row
    /// inserts. The admission tier admitted every order already, so the
    /// stock conditions hold; if one does not, nothing is written and `None`
    /// sends the batch down the slow path.
    pub(super) async fn place_batch(
        &self,
        batch: &[OrderWrite],
    ) -> StoreResult<Option<Vec<Placement>>> {
        let mut w = self.writer().await?;
        let placed = place_batch(w.conn(), batch).await;
        w.settle(placed)
    }

    /// One order in its own transaction, every condition checked by SQL.
    pub(super) async fn place_one(&self, w: &OrderWrite) -> StoreResult<Placement> {
        let mut writer = self.writer().await?;
        let placed = place_one(writer.conn(), w).await;
        writer.settle(placed)
    }

    pub(super) async fn cancel(
        &self,
        id: OrderId,
        reason: Option<&str>,
        by: CancelBy,
        now: DateTime<Utc>,
    ) -> StoreResult<Cancellation> {
        let mut w = self.writer().await?;
        let cancelled = cancel(w.conn(), id, reason, by, now).await;
        w.settle(cancelled)
    }

    pub(super) async fn pay(
        &self,
        id: OrderId,
        user: UserId,
        now: DateTime<Utc>,
        idempotency: Option<&IdempotencyWrite<'_, Order>>,
    ) -> StoreResult<Payment> {
        let mut w = self.writer().await?;
        let paid = pay(w.conn(), id, user, now, idempotency).await;
        w.settle(paid)
    }
}

/// See [`SqliteStore::place_batch`].
async fn place_batch(
    conn: &mut SqliteConnection,
    batch: &[OrderWrite],
) -> StoreResult<Option<Vec<Placement>>> {
    let mut tx = writer::begin(conn).await?;
    let mut placements = vec![Placement::Placed; batch.len()];
    // Orders with a coupon, one by one (each in a savepoint, so one
    // unusable coupon or short balance drops that order alone).
    for (w, placement) in batch.iter().zip(&mut placements) {
        if w.order.coupon_id.is_none() {
            continue;
        }
        let mut sp = sqlx::Acquire::begin(&mut tx).await?;
        if let Some(refusal) = use_coupon_and_pay(&mut sp, &w.order).await? {
            *placement = refusal;
            sp.rollback().await?;
        } else {
            sp.commit().await?;
        }
    }
    // Paid orders without a coupon: one balance update per user for all
    // their orders in the batch; a user who cannot pay for all of them
    // goes order by order.
    let mut payers: BTreeMap<UserId, Vec<usize>> = BTreeMap::new();
    for (i, w) in batch.iter().enumerate() {
        if w.order.coupon_id.is_none() && w.order.payment_status == PaymentStatus::Paid {
            payers.entry(w.order.user_id).or_default().push(i);
        }
    }
    let mut history = Vec::new();
    for (user, orders) in payers {
        let total: i64 = orders.iter().map(|&i| batch[i].order.total_amount).sum();
        let now = orders
            .iter()
            .map(|&i| micros(batch[i].order.created_at))
            .max()
            .unwrap_or(0);
        let left: Option<i64> = sqlx::query_scalar(
            "UPDATE point_accounts SET balance = balance - ?2, updated_at = ?3 \
                 WHERE user_id = ?1 AND balance >= ?2 RETURNING balance",
        )
        .bind(user.0)
        .bind(total)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        match left {
            Some(left) => {
                let mut balance = left + total;
                for &i in &orders {
                    let o = &batch[i].order;
                    balance -= o.total_amount;
                    history.push((
                        o.user_id,
                        o.total_amount,
                        balance,
                        o.id,
                        micros(o.created_at),
                    ));
                }
            }
            None => {
                for &i in &orders {
                    let mut sp = sqlx::Acquire::begin(&mut tx).await?;
                    if let Some(refusal) = use_coupon_and_pay(&mut sp, &batch[i].order).await? {
                        placements[i] = refusal;
                        sp.rollback().await?;
                    } else {
                        sp.commit().await?;
                    }
                }
            }
        }
    }
    for chunk in fixed_chunks(&history) {
        let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO point_history (id, user_id, kind, amount, balance_after, order_id, created_at) ",
            );
        q.push_values(chunk, |mut b, (user, amount, after, order, at)| {
            b.push_bind(uuid::Uuid::now_v7())
                .push_bind(user.0)
                .push_bind(PointKind::Payment.as_str())
                .push_bind(*amount)
                .push_bind(*after)
                .push_bind(order.0)
                .push_bind(*at);
        });
        q.build().persistent(true).execute(&mut *tx).await?;
    }
    let accepted: Vec<&OrderWrite> = batch
        .iter()
        .zip(&placements)
        .filter(|(_, p)| **p == Placement::Placed)
        .map(|(w, _)| w)
        .collect();
    let mut demand: BTreeMap<StockKey, i64> = BTreeMap::new();
    let mut held: BTreeMap<(DealId, UserId), i64> = BTreeMap::new();
    for w in &accepted {
        for (&key, &qty) in &w.demand {
            *demand.entry(key).or_insert(0) += qty;
            if let StockKey::Deal(d) = key {
                *held.entry((d, w.order.user_id)).or_insert(0) += qty;
            }
        }
    }
    let now = accepted
        .iter()
        .map(|w| micros(w.order.created_at))
        .max()
        .unwrap_or(0);
    // The same conditions as the one-by-one path, checked for the batch
    // as a whole: enough stock, the deal running, each user within the
    // deal's limit. Any miss and nothing is written: `None` sends the batch
    // down the slow path, which finds the order at fault.
    let mut limits: BTreeMap<DealId, Option<i64>> = BTreeMap::new();
    for (&key, &qty) in &demand {
        let taken = match key {
            StockKey::Product(p) => sqlx::query(
                "UPDATE products SET stock = stock - ?1, updated_at = ?2 WHERE id = ?3 AND stock >= ?1 \
                 RETURNING NULL",
            )
            .bind(qty)
            .bind(now)
            .bind(p.0),
            StockKey::Deal(d) => sqlx::query(
                "UPDATE deals SET remaining_stock = remaining_stock - ?1 \
                 WHERE id = ?3 AND remaining_stock >= ?1 AND settled_at IS NULL \
                   AND starts_at <= ?2 AND ends_at > ?2 \
                 RETURNING per_user_limit",
            )
            .bind(qty)
            .bind(now)
            .bind(d.0),
        }
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = taken else {
            return Ok(None);
        };
        if let StockKey::Deal(d) = key {
            limits.insert(d, row.try_get(0)?);
        }
    }
    for chunk in fixed_chunks(&held.iter().collect::<Vec<_>>()) {
        let mut q =
            QueryBuilder::<Sqlite>::new("INSERT INTO deal_purchases (deal_id, user_id, quantity) ");
        q.push_values(chunk, |mut b, ((deal, user), qty)| {
            b.push_bind(deal.0).push_bind(user.0).push_bind(**qty);
        });
        q.push(
            " ON CONFLICT (deal_id, user_id) DO UPDATE SET quantity = quantity + excluded.quantity \
             RETURNING deal_id, quantity",
        );
        for row in q.build().persistent(true).fetch_all(&mut *tx).await? {
            let deal = DealId(row.try_get("deal_id")?);
            let holds: i64 = row.try_get("quantity")?;
            if limits
                .get(&deal)
                .copied()
                .flatten()
                .is_some_and(|l| holds > l)
            {
                return Ok(None);
            }
        }
    }
    let orders: Vec<&Order> = accepted.iter().map(|w| &w.order).collect();
    insert_orders(&mut tx, &orders).await?;
    let events: Vec<_> = orders
        .iter()
        .map(|o| order_event("order.placed", o))
        .collect();
    insert_events(&mut tx, &events, now).await?;
    let answers: Vec<&IdempotentAnswer> =
        accepted.iter().filter_map(|w| w.answer.as_ref()).collect();
    insert_answers(&mut tx, &answers, now).await?;
    tx.commit().await?;
    Ok(Some(placements))
}

async fn place_one(conn: &mut SqliteConnection, w: &OrderWrite) -> StoreResult<Placement> {
    let order = &w.order;
    let now = micros(order.created_at);
    let mut tx = writer::begin(conn).await?;
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
    tx.commit().await?;
    Ok(Placement::Placed)
}

async fn cancel(
    conn: &mut SqliteConnection,
    id: OrderId,
    reason: Option<&str>,
    by: CancelBy,
    now: DateTime<Utc>,
) -> StoreResult<Cancellation> {
    let mut tx = writer::begin(conn).await?;
    let Some(order) = SqliteStore::load_order(&mut tx, id).await? else {
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
    let now_us = micros(now);
    // The state the cancel expects is part of the statement, so of two
    // racing cancels (a buyer's and an expiry's) only one changes the row,
    // and a refund follows what the row said at that moment.
    let payment_after: Option<String> = sqlx::query_scalar(&format!(
        "UPDATE orders SET status = 'cancelled', cancel_reason = ?1, cancelled_at = ?2, updated_at = ?2, \
         pay_by = NULL, payment_status = CASE WHEN payment_status = 'paid' THEN 'refunded' ELSE payment_status END \
         WHERE id = ?3 AND status IN {CANCELLABLE} \
           AND (NOT ?4 OR (payment_status = 'unpaid' AND pay_by IS NOT NULL AND pay_by <= ?2)) \
         RETURNING payment_status"
    ))
    .bind(reason)
    .bind(now_us)
    .bind(id.0)
    .bind(by == CancelBy::Expiry)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(payment_after) = payment_after else {
        // Another writer changed the order since it was read.
        return Ok(match SqliteStore::load_order(&mut tx, id).await? {
            None => Cancellation::NotFound,
            Some(o) if by == CancelBy::Buyer => Cancellation::InvalidState(o.status),
            Some(_) => Cancellation::NotDue,
        });
    };
    let paid = payment_after == PaymentStatus::Refunded.as_str();
    let mut returned = Vec::with_capacity(order.items.len());
    for item in &order.items {
        let key = return_stock(
            &mut tx,
            item.product_id,
            item.deal_id,
            item.quantity,
            now_us,
        )
        .await?;
        returned.push((key, item.quantity));
        if let Some(d) = item.deal_id {
            sqlx::query(
                    "UPDATE deal_purchases SET quantity = quantity - ?1 WHERE deal_id = ?2 AND user_id = ?3",
                )
                .bind(item.quantity)
                .bind(d.0)
                .bind(order.user_id.0)
                .execute(&mut *tx)
                .await?;
        }
    }
    if paid {
        move_points(
            &mut tx,
            order.user_id,
            PointKind::Refund,
            order.total_amount,
            Some(id),
            now_us,
        )
        .await?;
    }
    if let Some(coupon) = order.coupon_id {
        sqlx::query(
            "UPDATE user_coupons SET status = 'issued', used_at = NULL, order_id = NULL \
                 WHERE coupon_id = ?1 AND user_id = ?2 AND order_id = ?3",
        )
        .bind(coupon)
        .bind(order.user_id.0)
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
    }
    let Some(cancelled) = SqliteStore::load_order(&mut tx, id).await? else {
        return Ok(Cancellation::NotFound);
    };
    let topic = if by == CancelBy::Expiry {
        "order.expired"
    } else {
        "order.cancelled"
    };
    insert_events(&mut tx, &[order_event(topic, &cancelled)], now_us).await?;
    tx.commit().await?;
    Ok(Cancellation::Cancelled {
        order: Box::new(cancelled),
        returned,
    })
}

async fn pay(
    conn: &mut SqliteConnection,
    id: OrderId,
    user: UserId,
    now: DateTime<Utc>,
    idempotency: Option<&IdempotencyWrite<'_, Order>>,
) -> StoreResult<Payment> {
    let mut tx = writer::begin(conn).await?;
    let Some(order) = SqliteStore::load_order(&mut tx, id).await? else {
        return Ok(Payment::NotFound);
    };
    if let Some(refusal) = not_payable(&order, user, now) {
        return Ok(refusal);
    }
    let now_us = micros(now);
    // Guarded like a cancel: of a payment and an expiry racing for one
    // order, exactly one changes it, whoever runs them.
    let taken = sqlx::query(&format!(
        "UPDATE orders SET payment_status = 'paid', pay_by = NULL, updated_at = ?1 \
         WHERE id = ?2 AND user_id = ?3 AND status IN {CANCELLABLE} AND payment_status = 'unpaid' \
           AND (pay_by IS NULL OR pay_by > ?1)"
    ))
    .bind(now_us)
    .bind(id.0)
    .bind(user.0)
    .execute(&mut *tx)
    .await?;
    if taken.rows_affected() != 1 {
        // Another writer changed the order since it was read.
        let now_order = SqliteStore::load_order(&mut tx, id).await?;
        return Ok(now_order
            .and_then(|o| not_payable(&o, user, now))
            .unwrap_or(Payment::NotFound));
    }
    // Dropping `tx` on a short balance rolls the payment back too.
    let spend = move_points(
        &mut tx,
        user,
        PointKind::Payment,
        -order.total_amount,
        Some(id),
        now_us,
    )
    .await?;
    if let Spend::Short(balance) = spend {
        return Ok(Payment::InsufficientPoints { balance });
    }
    let Some(paid) = SqliteStore::load_order(&mut tx, id).await? else {
        return Ok(Payment::NotFound);
    };
    insert_events(&mut tx, &[order_event("order.paid", &paid)], now_us).await?;
    if let Some(idem) = idempotency {
        insert_answers(&mut tx, &[&idem.answer(&paid)], now_us).await?;
    }
    tx.commit().await?;
    Ok(Payment::Paid(Box::new(paid)))
}

/// Order states a cancel may change (`OrderStatus::can_cancel`), as SQL.
const CANCELLABLE: &str = "('pending', 'confirmed')";

/// Why `user` may not pay `order` now, if they may not.
fn not_payable(order: &Order, user: UserId, now: DateTime<Utc>) -> Option<Payment> {
    if order.user_id != user {
        return Some(Payment::NotFound);
    }
    if order.status == OrderStatus::Cancelled {
        return Some(
            if order.cancel_reason.as_deref() == Some("PAYMENT_TIMEOUT") {
                Payment::Expired
            } else {
                Payment::InvalidState("the order is cancelled")
            },
        );
    }
    if order.payment_status != PaymentStatus::Unpaid {
        return Some(Payment::InvalidState("the order is already paid"));
    }
    if !order.status.can_cancel() {
        return Some(Payment::InvalidState("the order has shipped"));
    }
    if order.pay_by.is_some_and(|t| t <= now) {
        return Some(Payment::Expired);
    }
    None
}

/// Uses the order's coupon and takes its points, or says why not.
async fn use_coupon_and_pay(
    conn: &mut SqliteConnection,
    o: &Order,
) -> StoreResult<Option<Placement>> {
    let now = micros(o.created_at);
    if let Some(coupon) = o.coupon_id {
        let used = sqlx::query(
            "UPDATE user_coupons SET status = 'used', used_at = ?1, order_id = ?2 \
             WHERE coupon_id = ?3 AND user_id = ?4 AND status = 'issued'",
        )
        .bind(now)
        .bind(o.id.0)
        .bind(coupon)
        .bind(o.user_id.0)
        .execute(&mut *conn)
        .await?;
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
            now,
        )
        .await?;
        if let Spend::Short(balance) = spend {
            return Ok(Some(Placement::InsufficientPoints { balance }));
        }
    }
    Ok(None)
}

/// Moves `delta` points (negative spends) with a history row, refusing to
/// go below zero.
async fn move_points(
    conn: &mut SqliteConnection,
    user: UserId,
    kind: PointKind,
    delta: i64,
    order: Option<OrderId>,
    now: i64,
) -> StoreResult<Spend> {
    let balance: Option<i64> = if delta >= 0 {
        sqlx::query_scalar(
            "INSERT INTO point_accounts (user_id, balance, updated_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (user_id) DO UPDATE SET balance = balance + excluded.balance, \
             updated_at = excluded.updated_at RETURNING balance",
        )
        .bind(user.0)
        .bind(delta)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?
    } else {
        sqlx::query_scalar(
            "UPDATE point_accounts SET balance = balance + ?2, updated_at = ?3 \
             WHERE user_id = ?1 AND balance + ?2 >= 0 RETURNING balance",
        )
        .bind(user.0)
        .bind(delta)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?
    };
    let Some(balance_after) = balance else {
        let balance: Option<i64> =
            sqlx::query_scalar("SELECT balance FROM point_accounts WHERE user_id = ?")
                .bind(user.0)
                .fetch_optional(&mut *conn)
                .await?;
        return Ok(Spend::Short(balance.unwrap_or(0)));
    };
    let entry = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO point_history (id, user_id, kind, amount, balance_after, order_id, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(entry)
    .bind(user.0)
    .bind(kind.as_str())
    .bind(delta.abs())
    .bind(balance_after)
    .bind(order.map(|o| o.0))
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(Spend::Done {
        entry,
        balance: balance_after,
    })
}

/// Credits a charge; returns the history row's id and the new balance.
pub(super) async fn charge_points(
    conn: &mut SqliteConnection,
    user: UserId,
    amount: i64,
    now: i64,
) -> StoreResult<(uuid::Uuid, i64)> {
    match move_points(conn, user, PointKind::Charge, amount, None, now).await? {
        Spend::Done { entry, balance } => Ok((entry, balance)),
        // A credit never falls short; the upsert always returns the row.
        Spend::Short(_) => Err(StoreError::Backend("a charge did not credit".into())),
    }
}

/// Takes `qty` units of `key`, or says why not.
async fn take_stock(
    tx: &mut Transaction<'_, Sqlite>,
    key: StockKey,
    qty: i64,
    now: i64,
) -> StoreResult<Option<Placement>> {
    match key {
        StockKey::Product(p) => {
            let done = sqlx::query(
                "UPDATE products SET stock = stock - ?1, updated_at = ?2 WHERE id = ?3 AND stock >= ?1",
            )
            .bind(qty)
            .bind(now)
            .bind(p.0)
            .execute(&mut **tx)
            .await?;
            if done.rows_affected() == 1 {
                return Ok(None);
            }
            let available: Option<i64> =
                sqlx::query_scalar("SELECT stock FROM products WHERE id = ?")
                    .bind(p.0)
                    .fetch_optional(&mut **tx)
                    .await?;
            Ok(Some(Placement::Insufficient {
                key,
                requested: qty,
                available: available.unwrap_or(0),
            }))
        }
        StockKey::Deal(d) => {
            let done = sqlx::query(
                "UPDATE deals SET remaining_stock = remaining_stock - ?1 \
                 WHERE id = ?2 AND remaining_stock >= ?1 AND settled_at IS NULL \
                   AND starts_at <= ?3 AND ends_at > ?3",
            )
            .bind(qty)
            .bind(d.0)
            .bind(now)
            .execute(&mut **tx)
            .await?;
            if done.rows_affected() == 1 {
                return Ok(None);
            }
            let row = sqlx::query(
                "SELECT remaining_stock, settled_at IS NULL AND starts_at <= ?2 AND ends_at > ?2 AS running \
                 FROM deals WHERE id = ?1",
            )
            .bind(d.0)
            .bind(now)
            .fetch_optional(&mut **tx)
            .await?;
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
/// per-user limit.
async fn count_purchase(
    tx: &mut Transaction<'_, Sqlite>,
    d: DealId,
    user: UserId,
    qty: i64,
) -> StoreResult<Option<Placement>> {
    let limit: Option<i64> = sqlx::query_scalar("SELECT per_user_limit FROM deals WHERE id = ?")
        .bind(d.0)
        .fetch_one(&mut **tx)
        .await?;
    let held: i64 = sqlx::query_scalar(
        "INSERT INTO deal_purchases (deal_id, user_id, quantity) VALUES (?1, ?2, ?3) \
         ON CONFLICT (deal_id, user_id) DO UPDATE SET quantity = quantity + excluded.quantity \
         RETURNING quantity",
    )
    .bind(d.0)
    .bind(user.0)
    .bind(qty)
    .fetch_one(&mut **tx)
    .await?;
    Ok(match limit {
        Some(limit) if held > limit => Some(Placement::LimitExceeded {
            deal: d,
            limit,
            held: held - qty,
        }),
        _ => None,
    })
}

/// Puts `qty` units back where an order line took them from; returns the
/// stock that got them.
async fn return_stock(
    tx: &mut Transaction<'_, Sqlite>,
    product: ProductId,
    deal: Option<DealId>,
    qty: i64,
    now: i64,
) -> StoreResult<StockKey> {
    if let Some(d) = deal {
        let back_to_deal = sqlx::query(
            "UPDATE deals SET remaining_stock = remaining_stock + ?1 WHERE id = ?2 AND settled_at IS NULL",
        )
        .bind(qty)
        .bind(d.0)
        .execute(&mut **tx)
        .await?;
        if back_to_deal.rows_affected() == 1 {
            return Ok(StockKey::Deal(d));
        }
        // The deal already gave its units back; these follow them to the
        // product, and are counted as returned so the deal's books stay
        // `deal_stock = remaining + returned + sold`.
        sqlx::query("UPDATE deals SET returned_stock = returned_stock + ?1 WHERE id = ?2")
            .bind(qty)
            .bind(d.0)
            .execute(&mut **tx)
            .await?;
    }
    sqlx::query("UPDATE products SET stock = stock + ?1, updated_at = ?2 WHERE id = ?3")
        .bind(qty)
        .bind(now)
        .bind(product.0)
        .execute(&mut **tx)
        .await?;
    Ok(StockKey::Product(product))
}

/// Inserts orders and their items with multi-row statements.
async fn insert_orders(tx: &mut Transaction<'_, Sqlite>, orders: &[&Order]) -> StoreResult<()> {
    for chunk in fixed_chunks(orders) {
        let mut addresses = Vec::with_capacity(chunk.len());
        for o in chunk {
            addresses.push(
                o.shipping_address
                    .as_ref()
                    .map(serde_json::to_string)
                    .transpose()
                    .map_err(|e| StoreError::Backend(Box::new(e)))?,
            );
        }
        let mut q = QueryBuilder::<Sqlite>::new(format!("INSERT INTO orders ({ORDER_COLS}) "));
        q.push_values(chunk.iter().zip(addresses), |mut b, (o, address)| {
            b.push_bind(o.id.0)
                .push_bind(o.user_id.0)
                .push_bind(o.total_amount)
                .push_bind(o.discount_amount)
                .push_bind(o.status.as_str())
                .push_bind(o.payment_status.as_str())
                .push_bind(address)
                .push_bind(o.coupon_id)
                .push_bind(o.cancel_reason.clone())
                .push_bind(o.cancelled_at.map(micros))
                .push_bind(micros(o.created_at))
                .push_bind(micros(o.updated_at))
                .push_bind(o.pay_by.map(micros));
        });
        q.build().persistent(true).execute(&mut **tx).await?;
    }
    let items: Vec<_> = orders
        .iter()
        .flat_map(|o| {
            o.items
                .iter()
                .enumerate()
                .map(move |(n, i)| (o.id, n as i64, i))
        })
        .collect();
    for chunk in fixed_chunks(&items) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO order_items (order_id, line_no, id, product_id, deal_id, product_name, \
             quantity, unit_price, subtotal) ",
        );
        q.push_values(chunk, |mut b, (order, line_no, i)| {
            b.push_bind(order.0)
                .push_bind(*line_no)
                .push_bind(i.id)
                .push_bind(i.product_id.0)
                .push_bind(i.deal_id.map(|d| d.0))
                .push_bind(i.product_name.clone())
                .push_bind(i.quantity)
                .push_bind(i.unit_price)
                .push_bind(i.subtotal);
        });
        q.build().persistent(true).execute(&mut **tx).await?;
    }
    Ok(())
}

/// The outbox payload of an order event.
pub(super) fn order_event(topic: &'static str, o: &Order) -> (&'static str, String) {
    let payload = json!({
        "order_id": o.id, "user_id": o.user_id, "total_amount": o.total_amount,
        "status": o.status.as_str(), "payment_status": o.payment_status.as_str(),
        "pay_by": o.pay_by,
    });
    (topic, payload.to_string())
}

/// Appends events to the outbox.
pub(super) async fn insert_events(
    conn: &mut SqliteConnection,
    events: &[(&'static str, String)],
    now: i64,
) -> StoreResult<()> {
    for chunk in fixed_chunks(events) {
        let mut q = QueryBuilder::<Sqlite>::new("INSERT INTO outbox (topic, payload, created_at) ");
        q.push_values(chunk, |mut b, (topic, payload)| {
            b.push_bind(*topic)
                .push_bind(payload.clone())
                .push_bind(now);
        });
        q.build().persistent(true).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Stores answers to idempotency keys.
pub(super) async fn insert_answers(
    conn: &mut SqliteConnection,
    answers: &[&IdempotentAnswer],
    now: i64,
) -> StoreResult<()> {
    for chunk in fixed_chunks(answers) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO idempotency_keys (user_id, key, request_hash, status, body, created_at) ",
        );
        q.push_values(chunk, |mut b, a| {
            b.push_bind(a.user_id.0)
                .push_bind(a.key.clone())
                .push_bind(a.request_hash.to_vec())
                .push_bind(i64::from(a.status))
                .push_bind(a.body.clone())
                .push_bind(now);
        });
        q.build().persistent(true).execute(&mut *conn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn fixed_chunks_cover_every_row_once_in_known_sizes(n in 0usize..500) {
            let rows: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = fixed_chunks(&rows).collect();
            prop_assert!(chunks.iter().all(|c| CHUNKS.contains(&c.len())));
            let flat: Vec<usize> = chunks.concat();
            prop_assert_eq!(flat, rows);
        }
    }
}
