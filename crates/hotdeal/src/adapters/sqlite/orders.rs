//! Writing orders: group commit, the one-by-one fallback, cancels,
//! payments, and the points and outbox rows that go with them.

use super::json_rows::{push_json_str, JsonRows};
use super::rows::micros;
use super::{writer, SqliteStore};
use crate::model::{IdempotentAnswer, Order, PointKind};
use crate::ports::store::{
    CancelBy, Cancellation, IdempotencyWrite, OrderWrite, Payment, Placement, StoreError,
    StoreResult,
};
use chrono::SecondsFormat;
use chrono::{DateTime, Utc};
use hotdeal_domain::{DealId, OrderId, PaymentStatus, ProductId, StockKey, UserId};
use sqlx::sqlite::SqliteArguments;
use sqlx::Arguments as _;
use sqlx::{Row, Sqlite, SqliteConnection, Transaction};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::OnceLock;
use uuid::Uuid;

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
    /// their points as `debits` says; stock is one conditional update per
    /// key for the whole batch, and every row goes in with one
    /// multi-statement query ([`NewRows`]). The admission tier admitted
    /// every order already, so the stock conditions hold; if one does not,
    /// nothing is written and [`Batch::OneByOne`] sends the batch down the
    /// slow path.
    pub(super) async fn place_batch(
        &self,
        batch: &[&OrderWrite],
        debits: Debits,
    ) -> StoreResult<Batch> {
        let mut w = self.writer().await?;
        let placed = place_batch(w.conn(), batch, debits).await;
        w.settle(placed)
    }

    /// Which of `batch` carry an idempotency key that has an answer stored.
    pub(super) async fn answered_keys(&self, batch: &[&OrderWrite]) -> StoreResult<Vec<bool>> {
        let mut w = self.writer().await?;
        let found = async {
            let mut found = Vec::with_capacity(batch.len());
            for write in batch {
                found.push(match &write.answer {
                    Some(a) => key_answered(w.conn(), a).await?,
                    None => false,
                });
            }
            Ok(found)
        }
        .await;
        w.settle(found)
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
/// What the fast path made of a batch.
pub(super) enum Batch {
    /// Committed; one placement per order.
    Placed(Vec<Placement>),
    /// A condition failed for the batch as a whole: nothing written; the
    /// orders go one by one.
    OneByOne,
    /// An insert hit a unique key (an idempotency key answered before, as
    /// a rule): nothing written, the connection intact.
    Duplicate,
    /// A payer's debit among the rows failed (a short balance, or no
    /// account): nothing written; the batch goes again with
    /// [`Debits::Guarded`].
    Short,
}

/// How the fast path takes the points of paid orders without a coupon.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Debits {
    /// With the batch's inserts: one debit per payer, which the table's
    /// `CHECK (balance >= 0)` refuses to take below zero, and the history
    /// rows, their balances read from the accounts just written (`NOT
    /// NULL` refuses a payer without an account). A refusal fails the
    /// batch ([`Batch::Short`]). No statement returns rows, so SQLite
    /// builds no temporary table for them.
    InRows,
    /// One guarded update for every payer that returns what it left; a
    /// payer who cannot pay for all their orders goes order by order.
    Guarded,
}

/// Whether an answer is stored for `a`'s user and key.
async fn key_answered(conn: &mut SqliteConnection, a: &IdempotentAnswer) -> StoreResult<bool> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM idempotency_keys WHERE user_id = ?1 AND key = ?2")
            .bind(a.user_id.0)
            .bind(a.key.as_str())
            .fetch_optional(&mut *conn)
            .await?;
    Ok(found.is_some())
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

/// A debit below zero (`CHECK`) or of a user with no account (`NOT NULL`).
fn is_refused_debit(e: &sqlx::Error) -> bool {
    use sqlx::error::ErrorKind;
    e.as_database_error().is_some_and(|d| {
        matches!(
            d.kind(),
            ErrorKind::CheckViolation | ErrorKind::NotNullViolation
        )
    })
}

/// See [`SqliteStore::place_batch`]. A batch without coupons whose debits
/// go with the rows is one query ([`place_at_once`]). Otherwise, hand-offs
/// per batch, whatever its size: `BEGIN`, the coupon orders' savepoints,
/// one guarded update per stock key, one for per-user deal counts (when
/// there are any), one for every insert (and, with [`Debits::InRows`], the
/// payers' debits), `COMMIT`; with [`Debits::Guarded`], one more for the
/// payers' points. An idempotency answer goes in with a plain insert: a
/// key answered before fails it on the table's unique key, and the whole
/// batch rolls back ([`Batch::Duplicate`]).
async fn place_batch(
    conn: &mut SqliteConnection,
    batch: &[&OrderWrite],
    debits: Debits,
) -> StoreResult<Batch> {
    if debits == Debits::InRows && batch.iter().all(|w| w.order.coupon_id.is_none()) {
        return place_at_once(conn, batch).await;
    }
    let mut tx = writer::begin(conn).await?;
    let mut placements = vec![Placement::Placed; batch.len()];
    let mut rows = NewRows::for_orders(batch.len());
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
    // Paid orders without a coupon: one guarded balance update for every
    // payer of the batch (each for the sum of their orders); a payer who
    // cannot pay for all of them goes order by order.
    let mut payers: BTreeMap<UserId, (i64, Vec<usize>)> = BTreeMap::new();
    for (i, w) in batch.iter().enumerate() {
        if w.order.coupon_id.is_none() && w.order.payment_status == PaymentStatus::Paid {
            if debits == Debits::InRows {
                rows.debit(&w.order);
                continue;
            }
            let payer = payers.entry(w.order.user_id).or_default();
            payer.0 += w.order.total_amount;
            payer.1.push(i);
        }
    }
    if !payers.is_empty() {
        let now = latest(batch);
        let mut spends = JsonRows::with_capacity(payers.len() * 48);
        for (user, (total, _)) in &payers {
            spends.row().uuid(user.0).int(*total);
        }
        let left: Vec<(uuid::Uuid, i64)> = sqlx::query_as(
            "UPDATE point_accounts SET balance = balance - p.total, updated_at = ?2 \
             FROM (SELECT unhex(value->>0) AS uid, value->>1 AS total FROM json_each(?1)) AS p \
             WHERE point_accounts.user_id = p.uid AND point_accounts.balance >= p.total \
             RETURNING user_id, balance",
        )
        .bind(spends.finish())
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let left: BTreeMap<UserId, i64> = left.into_iter().map(|(u, b)| (UserId(u), b)).collect();
        for (user, (total, orders)) in &payers {
            match left.get(user) {
                Some(&left) => {
                    let mut balance = left + total;
                    for &i in orders {
                        let o = &batch[i].order;
                        balance -= o.total_amount;
                        rows.history(
                            o.user_id,
                            PointKind::Payment,
                            o.total_amount,
                            balance,
                            Some(o.id),
                            micros(o.created_at),
                        );
                    }
                }
                None => {
                    for &i in orders {
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
    }
    let accepted: Vec<&OrderWrite> = batch
        .iter()
        .zip(&placements)
        .filter(|(_, p)| **p == Placement::Placed)
        .map(|(w, _)| *w)
        .collect();
    let (demand, held) = units_taken(&accepted);
    let now = latest(&accepted);
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
            return Ok(Batch::OneByOne);
        };
        if let StockKey::Deal(d) = key {
            limits.insert(d, row.try_get(0)?);
        }
    }
    if !held.is_empty() {
        let holds: Vec<(uuid::Uuid, i64)> = sqlx::query_as(
            "INSERT INTO deal_purchases (deal_id, user_id, quantity) \
             SELECT unhex(value->>0), unhex(value->>1), value->>2 FROM json_each(?1) WHERE true \
             ON CONFLICT (deal_id, user_id) DO UPDATE SET quantity = quantity + excluded.quantity \
             RETURNING deal_id, quantity",
        )
        .bind(claims_json(&held))
        .fetch_all(&mut *tx)
        .await?;
        for (deal, holds) in holds {
            if limits
                .get(&DealId(deal))
                .copied()
                .flatten()
                .is_some_and(|l| holds > l)
            {
                return Ok(Batch::OneByOne);
            }
        }
    }
    for w in &accepted {
        rows.order(&w.order)?;
        rows.order_event("order.placed", &w.order);
        if let Some(a) = &w.answer {
            rows.answer(a)?;
        }
    }
    match rows.insert_rows(&mut tx, now).await {
        Ok(()) => {}
        Err(e) if is_unique_violation(&e) => {
            tx.rollback().await?;
            return Ok(Batch::Duplicate);
        }
        Err(e) if debits == Debits::InRows && is_refused_debit(&e) => {
            tx.rollback().await?;
            return Ok(Batch::Short);
        }
        Err(e) => return Err(e.into()),
    }
    tx.commit().await?;
    Ok(Batch::Placed(placements))
}

/// Stock keys a batch may touch and still go as one query with its rows;
/// a batch touching more sends its stock updates as a query of their own,
/// so the shapes the statement cache keeps stay few.
const STOCK_KEYS_WITH_ROWS: usize = 2;

/// [`place_batch`] for a batch without coupons whose debits go with the
/// rows: the whole transaction as one multi-statement query, so one
/// hand-off to the connection's thread (and back) instead of one per
/// statement — `BEGIN IMMEDIATE`, the rows, the guarded stock updates,
/// `COMMIT`. The stock comes last: within the transaction the order does
/// not matter, and the rows' query shapes stay the ones [`NewRows`] uses.
/// Every statement rolls the whole transaction back when it refuses a row
/// ([`OnRefusal::RollBack`], foreign keys deferred to the `COMMIT`), so
/// SQLite keeps no statement journal. A failed guard (`batch_guard`,
/// migration 0006), a unique key or a short debit stops the query with
/// nothing written; the batch is reported as the step-by-step path would
/// report it.
async fn place_at_once(conn: &mut SqliteConnection, batch: &[&OrderWrite]) -> StoreResult<Batch> {
    let now = latest(batch);
    let (demand, held) = units_taken(batch);
    let mut rows = NewRows::for_orders(batch.len());
    for w in batch {
        rows.order(&w.order)?;
        rows.order_event("order.placed", &w.order);
        if let Some(a) = &w.answer {
            rows.answer(a)?;
        }
        if w.order.payment_status == PaymentStatus::Paid {
            rows.debit(&w.order);
        }
    }
    let mut queries = rows.queries(now, OnRefusal::RollBack)?;
    if queries.is_empty() || demand.len() > STOCK_KEYS_WITH_ROWS {
        queries.push(Query {
            on_refusal: OnRefusal::RollBack,
            ..Query::default()
        });
    }
    if let Some(first) = queries.first_mut() {
        first.sql.insert_str(0, "BEGIN IMMEDIATE;\n");
    }
    if let Some(last) = queries.last_mut() {
        last.take_stock(&demand, &held, now);
        last.sql.push_str("COMMIT;\n");
    }
    let mut run = Ok(());
    for q in queries {
        run = q.execute(&mut *conn).await;
        if run.is_err() {
            break;
        }
    }
    let Err(e) = run else {
        return Ok(Batch::Placed(vec![Placement::Placed; batch.len()]));
    };
    let refused = if is_guard(&e) {
        Ok(Batch::OneByOne)
    } else if is_unique_violation(&e) {
        Ok(Batch::Duplicate)
    } else if is_refused_debit(&e) {
        Ok(Batch::Short)
    } else {
        Err(StoreError::from(e))
    };
    // A refused row or guard rolled the transaction back already; any
    // other failure (a foreign key at COMMIT, storage) may have left it
    // open. If the rollback fails otherwise, the error stands and the
    // writer retires the connection.
    match sqlx::query("ROLLBACK").execute(&mut *conn).await {
        Err(r) if refused.is_ok() && !is_no_transaction(&r) => Err(r.into()),
        _ => refused,
    }
}

/// `ROLLBACK` with no transaction open.
fn is_no_transaction(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.message().contains("no transaction is active"))
}

/// The latest order time of `writes`: the batch's "now" for the stock
/// rows and the deals' windows.
fn latest(writes: &[&OrderWrite]) -> i64 {
    writes
        .iter()
        .map(|w| micros(w.order.created_at))
        .max()
        .unwrap_or(0)
}

/// What `writes` take together: units per stock key, and units per buyer
/// of each deal (for the deals' per-user limits).
fn units_taken(
    writes: &[&OrderWrite],
) -> (BTreeMap<StockKey, i64>, BTreeMap<(DealId, UserId), i64>) {
    let mut demand: BTreeMap<StockKey, i64> = BTreeMap::new();
    let mut held: BTreeMap<(DealId, UserId), i64> = BTreeMap::new();
    for w in writes {
        for (&key, &qty) in &w.demand {
            *demand.entry(key).or_insert(0) += qty;
            if let StockKey::Deal(d) = key {
                *held.entry((d, w.order.user_id)).or_insert(0) += qty;
            }
        }
    }
    (demand, held)
}

/// Units per deal and buyer as `[deal, user, units]` rows for `json_each`.
fn claims_json(held: &BTreeMap<(DealId, UserId), i64>) -> String {
    let mut claims = JsonRows::with_capacity(held.len() * 80);
    for ((deal, user), qty) in held {
        claims.row().uuid(deal.0).uuid(user.0).int(*qty);
    }
    claims.finish()
}

/// The rollback of a failed `batch_guard` check.
fn is_guard(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.message() == "batch guard")
}

async fn place_one(conn: &mut SqliteConnection, w: &OrderWrite) -> StoreResult<Placement> {
    let order = &w.order;
    let now = micros(order.created_at);
    let mut tx = writer::begin(conn).await?;
    if let Some(a) = &w.answer {
        if key_answered(&mut tx, a).await? {
            return Ok(Placement::KeyAnswered);
        }
    }
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
    let mut rows = NewRows::new();
    rows.order(order)?;
    rows.order_event("order.placed", order);
    if let Some(a) = &w.answer {
        rows.answer(a)?;
    }
    rows.insert(&mut tx, now).await?;
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
    if let Some(refusal) = Payment::refusal(&order, user, now) {
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
            .and_then(|o| Payment::refusal(&o, user, now))
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
/// Rows a write adds to the append-only tables (orders and their items,
/// the outbox, idempotency answers, points history). [`NewRows::insert`]
/// sends them to SQLite in one multi-statement query (per 64 rows): one
/// hand-off to the connection's thread instead of one per statement. Each table's rows
/// go in multi-row inserts of the fixed sizes of [`CHUNKS`], so the query
/// text takes one of a small set of shapes, each prepared once and cached.
pub(super) struct NewRows<'a> {
    orders: Vec<&'a Order>,
    events: Vec<(&'static str, String)>,
    answers: Vec<&'a IdempotentAnswer>,
    history: Vec<History>,
    /// Paid orders whose points are taken with the rows ([`Debits::InRows`]).
    debits: Vec<&'a Order>,
}

/// A points history row.
struct History {
    user: UserId,
    kind: PointKind,
    amount: i64,
    balance_after: i64,
    order: Option<OrderId>,
    at: i64,
}

/// The tables [`NewRows`] writes, and their columns.
const TABLES: [(&str, &str, usize); 5] = [
    (
        "orders",
        "id, user_id, total_amount, discount_amount, status, payment_status, shipping_address, \
         coupon_id, cancel_reason, cancelled_at, created_at, updated_at, pay_by",
        13,
    ),
    (
        "order_items",
        "order_id, line_no, id, product_id, deal_id, product_name, quantity, unit_price, subtotal",
        9,
    ),
    ("outbox", "topic, payload, created_at", 3),
    (
        "idempotency_keys",
        "user_id, key, request_hash, status, body, created_at",
        6,
    ),
    (
        "point_history",
        "id, user_id, kind, amount, balance_after, order_id, created_at",
        7,
    ),
];

/// What a refused row (a unique key taken, a `CHECK` failed) does to the
/// transaction it is written in.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum OnRefusal {
    /// Its statement is undone and the transaction goes on (the savepoints
    /// of the step-by-step path need that). SQLite keeps a statement
    /// journal for it: every page a multi-row statement changes is copied
    /// first.
    #[default]
    UndoStatement,
    /// The whole transaction is rolled back (`INSERT OR ROLLBACK`): no
    /// statement journal. For a transaction that is all or nothing anyway
    /// ([`place_at_once`]).
    RollBack,
}

impl OnRefusal {
    fn insert(self) -> &'static str {
        match self {
            Self::UndoStatement => "INSERT INTO",
            Self::RollBack => "INSERT OR ROLLBACK INTO",
        }
    }

    fn update(self) -> &'static str {
        match self {
            Self::UndoStatement => "UPDATE",
            Self::RollBack => "UPDATE OR ROLLBACK",
        }
    }
}

/// `INSERT INTO <table> (...) VALUES (?, ...), ...;` for each table, each
/// size of [`CHUNKS`] and each [`OnRefusal`], written once.
fn insert_sql(table: usize, rows: usize, on_refusal: OnRefusal) -> &'static str {
    static SQL: OnceLock<[Vec<Vec<String>>; 2]> = OnceLock::new();
    let sql = SQL.get_or_init(|| {
        [OnRefusal::UndoStatement, OnRefusal::RollBack].map(|on_refusal| {
            TABLES
                .iter()
                .map(|(name, cols, n)| {
                    CHUNKS
                        .iter()
                        .map(|&size| {
                            let row = format!("({})", vec!["?"; *n].join(", "));
                            format!(
                                "{} {name} ({cols}) VALUES {};\n",
                                on_refusal.insert(),
                                vec![row; size].join(", ")
                            )
                        })
                        .collect()
                })
                .collect()
        })
    });
    let size = CHUNKS.iter().position(|&c| c == rows).unwrap_or(0);
    &sql[on_refusal as usize][table][size]
}

/// `INSERT INTO point_history … VALUES …;` for paid orders' history rows
/// whose balance is read from the account (see [`Query::debits`]), for
/// each size of [`CHUNKS`] and each [`OnRefusal`], written once.
fn debit_history_sql(rows: usize, on_refusal: OnRefusal) -> &'static str {
    static SQL: OnceLock<[Vec<String>; 2]> = OnceLock::new();
    let sql = SQL.get_or_init(|| {
        let row = "(?, ?, 'payment', ?, (SELECT balance FROM point_accounts WHERE user_id = ?) + ?, ?, ?)";
        [OnRefusal::UndoStatement, OnRefusal::RollBack].map(|on_refusal| {
            CHUNKS
                .iter()
                .map(|&size| {
                    format!(
                        "{} point_history (id, user_id, kind, amount, balance_after, order_id, created_at) VALUES {};\n",
                        on_refusal.insert(),
                        vec![row; size].join(", ")
                    )
                })
                .collect()
        })
    });
    let size = CHUNKS.iter().position(|&c| c == rows).unwrap_or(0);
    &sql[on_refusal as usize][size]
}

/// Adds one argument; encoding these types cannot fail.
fn arg<'q, T>(args: &mut SqliteArguments<'q>, value: T)
where
    T: 'q + sqlx::Encode<'q, Sqlite> + sqlx::Type<Sqlite>,
{
    let _ = args.add(value);
}

impl<'a> NewRows<'a> {
    pub(super) fn new() -> Self {
        Self {
            orders: Vec::new(),
            events: Vec::new(),
            answers: Vec::new(),
            history: Vec::new(),
            debits: Vec::new(),
        }
    }

    /// Room for `orders` orders with their events.
    fn for_orders(orders: usize) -> Self {
        Self {
            orders: Vec::with_capacity(orders),
            events: Vec::with_capacity(orders),
            ..Self::new()
        }
    }

    /// An order and its items.
    fn order(&mut self, o: &'a Order) -> StoreResult<()> {
        self.orders.push(o);
        Ok(())
    }

    pub(super) fn event(&mut self, topic: &'static str, payload: String) {
        self.events.push((topic, payload));
    }

    fn order_event(&mut self, topic: &'static str, o: &Order) {
        let (topic, payload) = order_event(topic, o);
        self.event(topic, payload);
    }

    /// Takes `o`'s total from its buyer's points, with a history row.
    fn debit(&mut self, o: &'a Order) {
        self.debits.push(o);
    }

    pub(super) fn answer(&mut self, a: &'a IdempotentAnswer) -> StoreResult<()> {
        self.answers.push(a);
        Ok(())
    }

    fn history(
        &mut self,
        user: UserId,
        kind: PointKind,
        amount: i64,
        balance_after: i64,
        order: Option<OrderId>,
        at: i64,
    ) {
        self.history.push(History {
            user,
            kind,
            amount,
            balance_after,
            order,
            at,
        });
    }

    /// Inserts every row, in the caller's transaction. Up to 63 rows per
    /// table (a batch at a rush of tens of clients) go in one query; each
    /// further 64 orders (with their items) and each further 64 rows of
    /// another table go in a query of their own, so the shapes the
    /// statement cache keeps stay small (a shape of several hundred rows
    /// costs megabytes prepared) while big batches still need only a
    /// hand-off per 64 rows.
    pub(super) async fn insert(self, conn: &mut SqliteConnection, now: i64) -> StoreResult<()> {
        Ok(self.insert_rows(conn, now).await?)
    }

    /// As [`NewRows::insert`], with SQLite's own error (to tell a unique
    /// key from other failures).
    async fn insert_rows(self, conn: &mut SqliteConnection, now: i64) -> sqlx::Result<()> {
        for q in self.queries(now, OnRefusal::UndoStatement)? {
            q.execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// The multi-statement queries that insert every row, in order; none
    /// is empty.
    fn queries(&self, now: i64, on_refusal: OnRefusal) -> sqlx::Result<Vec<Query<'_>>> {
        let full = CHUNKS[0];
        let fresh = || Query {
            on_refusal,
            ..Query::default()
        };
        let mut queries = Vec::new();
        let mut tail = fresh();
        let split = |n: usize| n / full * full;
        let (windows, rest) = self.orders.split_at(split(self.orders.len()));
        for window in windows.chunks(full) {
            let mut q = fresh();
            q.orders(window)?;
            queries.push(q);
        }
        tail.orders(rest)?;
        let (windows, rest) = self.events.split_at(split(self.events.len()));
        for window in windows.chunks(full) {
            let mut q = fresh();
            q.events(window, now);
            queries.push(q);
        }
        tail.events(rest, now);
        let (windows, rest) = self.answers.split_at(split(self.answers.len()));
        for window in windows.chunks(full) {
            let mut q = fresh();
            q.answers(window, now);
            queries.push(q);
        }
        tail.answers(rest, now);
        let (windows, rest) = self.history.split_at(split(self.history.len()));
        for window in windows.chunks(full) {
            let mut q = fresh();
            q.history(window);
            queries.push(q);
        }
        tail.history(rest);
        let (windows, rest) = self.debits.split_at(split(self.debits.len()));
        for window in windows.chunks(full) {
            let mut q = fresh();
            q.debits(window, now);
            queries.push(q);
        }
        tail.debits(rest, now);
        queries.push(tail);
        queries.retain(|q| !q.sql.is_empty());
        Ok(queries)
    }
}

/// One multi-statement insert being written: its text and its arguments.
#[derive(Default)]
struct Query<'q> {
    sql: String,
    args: SqliteArguments<'q>,
    on_refusal: OnRefusal,
}

impl<'q> Query<'q> {
    /// Runs the query, its statement prepared once per shape and cached.
    async fn execute(self, conn: &mut SqliteConnection) -> sqlx::Result<()> {
        sqlx::query_with(&self.sql, self.args)
            .persistent(true)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// The batch's stock taken, each update followed by its guard (see
    /// [`place_at_once`]): enough stock, the deal running, and then each
    /// buyer within the deal's limit.
    fn take_stock(
        &mut self,
        demand: &BTreeMap<StockKey, i64>,
        held: &BTreeMap<(DealId, UserId), i64>,
        now: i64,
    ) {
        const PRODUCT: &str = "UPDATE OR ROLLBACK products SET stock = stock - ?, updated_at = ? \
             WHERE id = ? AND stock >= ?;\n";
        const DEAL: &str = "UPDATE OR ROLLBACK deals SET remaining_stock = remaining_stock - ? \
             WHERE id = ? AND remaining_stock >= ? AND settled_at IS NULL \
             AND starts_at <= ? AND ends_at > ?;\n";
        const TAKEN: &str = "INSERT INTO batch_guard (ok) VALUES (changes() = 1);\n";
        const HOLD: &str = "INSERT OR ROLLBACK INTO deal_purchases (deal_id, user_id, quantity) \
             SELECT unhex(value->>0), unhex(value->>1), value->>2 FROM json_each(?) WHERE true \
             ON CONFLICT (deal_id, user_id) DO UPDATE SET quantity = quantity + excluded.quantity;\n";
        const WITHIN_LIMITS: &str = "INSERT INTO batch_guard (ok) SELECT NOT EXISTS (\
             SELECT 1 FROM json_each(?) AS j \
             JOIN deal_purchases AS p ON p.deal_id = unhex(j.value->>0) AND p.user_id = unhex(j.value->>1) \
             JOIN deals AS d ON d.id = p.deal_id WHERE p.quantity > d.per_user_limit);\n";
        let args = &mut self.args;
        for (&key, &qty) in demand {
            match key {
                StockKey::Product(p) => {
                    self.sql.push_str(PRODUCT);
                    arg(args, qty);
                    arg(args, now);
                    arg(args, p.0);
                    arg(args, qty);
                }
                StockKey::Deal(d) => {
                    self.sql.push_str(DEAL);
                    arg(args, qty);
                    arg(args, d.0);
                    arg(args, qty);
                    arg(args, now);
                    arg(args, now);
                }
            }
            self.sql.push_str(TAKEN);
        }
        if !held.is_empty() {
            let claims = claims_json(held);
            self.sql.push_str(HOLD);
            self.sql.push_str(WITHIN_LIMITS);
            arg(args, claims.clone());
            arg(args, claims);
        }
    }

    /// Orders, then their items (which refer to them).
    fn orders(&mut self, orders: &[&'q Order]) -> sqlx::Result<()> {
        let args = &mut self.args;
        for chunk in fixed_chunks(orders) {
            self.sql
                .push_str(insert_sql(0, chunk.len(), self.on_refusal));
            for o in chunk {
                let address = o
                    .shipping_address
                    .as_ref()
                    .map(serde_json::to_string)
                    .transpose()
                    .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
                arg(args, o.id.0);
                arg(args, o.user_id.0);
                arg(args, o.total_amount);
                arg(args, o.discount_amount);
                arg(args, o.status.as_str());
                arg(args, o.payment_status.as_str());
                arg(args, address);
                arg(args, o.coupon_id);
                arg(args, o.cancel_reason.as_deref());
                arg(args, o.cancelled_at.map(micros));
                arg(args, micros(o.created_at));
                arg(args, micros(o.updated_at));
                arg(args, o.pay_by.map(micros));
            }
        }
        let items: Vec<_> = orders
            .iter()
            .flat_map(|o| o.items.iter().enumerate().map(move |(n, i)| (o.id, n, i)))
            .collect();
        for chunk in fixed_chunks(&items) {
            self.sql
                .push_str(insert_sql(1, chunk.len(), self.on_refusal));
            for &(order, n, i) in chunk {
                arg(args, order.0);
                arg(args, n as i64);
                arg(args, i.id);
                arg(args, i.product_id.0);
                arg(args, i.deal_id.map(|d| d.0));
                arg(args, i.product_name.as_str());
                arg(args, i.quantity);
                arg(args, i.unit_price);
                arg(args, i.subtotal);
            }
        }
        Ok(())
    }

    fn events(&mut self, events: &'q [(&'static str, String)], now: i64) {
        for chunk in fixed_chunks(events) {
            self.sql
                .push_str(insert_sql(2, chunk.len(), self.on_refusal));
            for (topic, payload) in chunk {
                arg(&mut self.args, *topic);
                arg(&mut self.args, payload.as_str());
                arg(&mut self.args, now);
            }
        }
    }

    fn answers(&mut self, answers: &[&'q IdempotentAnswer], now: i64) {
        for chunk in fixed_chunks(answers) {
            self.sql
                .push_str(insert_sql(3, chunk.len(), self.on_refusal));
            for a in chunk {
                arg(&mut self.args, a.user_id.0);
                arg(&mut self.args, a.key.as_str());
                arg(&mut self.args, &a.request_hash[..]);
                arg(&mut self.args, i64::from(a.status));
                arg(&mut self.args, &a.body[..]);
                arg(&mut self.args, now);
            }
        }
    }

    /// One debit per payer for the sum of their orders, then the orders'
    /// history rows in multi-row inserts, each row's balance read from the
    /// account just written plus what the payer's later orders of the
    /// batch took (see [`Debits::InRows`]). One history insert per chunk
    /// matters: SQLite checks `kind IN (...)` with a temporary index built
    /// once per statement.
    fn debits(&mut self, orders: &[&'q Order], now: i64) {
        // A payer without an account is refused by the history row: its
        // balance reads NULL, and the column is NOT NULL.
        const DEBIT: &str = " point_accounts SET balance = balance - ?, updated_at = ? \
             WHERE user_id = ?;\n";
        let mut payers: Vec<(UserId, i64)> = Vec::with_capacity(orders.len());
        for o in orders {
            match payers.iter_mut().find(|(u, _)| *u == o.user_id) {
                Some((_, total)) => *total += o.total_amount,
                None => payers.push((o.user_id, o.total_amount)),
            }
        }
        for &(user, total) in &payers {
            self.sql.push_str(self.on_refusal.update());
            self.sql.push_str(DEBIT);
            arg(&mut self.args, total);
            arg(&mut self.args, now);
            arg(&mut self.args, user.0);
        }
        // What each payer's orders after this one take: the balance the
        // one history row should show is the account's end balance plus it.
        let mut later = Vec::with_capacity(orders.len());
        for o in orders {
            let left = payers.iter_mut().find(|(u, _)| *u == o.user_id);
            later.push(left.map_or(0, |(_, left)| {
                *left -= o.total_amount;
                *left
            }));
        }
        let mut at = 0;
        for chunk in fixed_chunks(orders) {
            self.sql
                .push_str(debit_history_sql(chunk.len(), self.on_refusal));
            for o in chunk {
                let args = &mut self.args;
                arg(args, uuid::Uuid::now_v7());
                arg(args, o.user_id.0);
                arg(args, o.total_amount);
                arg(args, o.user_id.0);
                arg(args, later[at]);
                arg(args, o.id.0);
                arg(args, micros(o.created_at));
                at += 1;
            }
        }
    }

    fn history(&mut self, history: &[History]) {
        for chunk in fixed_chunks(history) {
            self.sql
                .push_str(insert_sql(4, chunk.len(), self.on_refusal));
            for h in chunk {
                arg(&mut self.args, uuid::Uuid::now_v7());
                arg(&mut self.args, h.user.0);
                arg(&mut self.args, h.kind.as_str());
                arg(&mut self.args, h.amount);
                arg(&mut self.args, h.balance_after);
                arg(&mut self.args, h.order.map(|o| o.0));
                arg(&mut self.args, h.at);
            }
        }
    }
}

/// The outbox payload of an order event: the keys in the order a
/// `serde_json` map keeps them (sorted), written without building a map.
pub(super) fn order_event(topic: &'static str, o: &Order) -> (&'static str, String) {
    let mut p = String::with_capacity(220);
    let mut id = Uuid::encode_buffer();
    p.push_str("{\"order_id\":\"");
    p.push_str(o.id.0.hyphenated().encode_lower(&mut id));
    p.push_str("\",\"pay_by\":");
    match o.pay_by {
        Some(t) => {
            p.push('"');
            p.push_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true));
            p.push('"');
        }
        None => p.push_str("null"),
    }
    p.push_str(",\"payment_status\":");
    push_json_str(&mut p, o.payment_status.as_str());
    p.push_str(",\"status\":");
    push_json_str(&mut p, o.status.as_str());
    let _ = write!(p, ",\"total_amount\":{},\"user_id\":\"", o.total_amount);
    p.push_str(o.user_id.0.hyphenated().encode_lower(&mut id));
    p.push_str("\"}");
    (topic, p)
}

/// Appends events to the outbox.
pub(super) async fn insert_events(
    conn: &mut SqliteConnection,
    events: &[(&'static str, String)],
    now: i64,
) -> StoreResult<()> {
    let mut rows = NewRows::new();
    for (topic, payload) in events {
        rows.event(topic, payload.clone());
    }
    rows.insert(conn, now).await
}

/// Stores answers to idempotency keys.
pub(super) async fn insert_answers(
    conn: &mut SqliteConnection,
    answers: &[&IdempotentAnswer],
    now: i64,
) -> StoreResult<()> {
    let mut rows = NewRows::new();
    for a in answers {
        rows.answer(a)?;
    }
    rows.insert(conn, now).await
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
