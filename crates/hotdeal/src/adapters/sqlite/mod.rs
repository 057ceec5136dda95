//! The embedded store: SQLite in WAL mode through sqlx.
//!
//! SQLite allows one writer at a time. Rather than letting many pooled
//! connections fight over the write lock (and fail with `SQLITE_BUSY` on
//! lock upgrades), every write goes through a pool of exactly one
//! connection, so write transactions queue in-process in arrival order.
//! Reads use their own pool of read-only connections, which WAL lets run
//! beside the writer.

mod json_rows;
mod ledger;
mod orders;
mod rows;
mod writer;

use crate::model::{Deal, Order, Page, Paged, Product, ProductPatch, User};
use crate::ports::events::CatalogueEvent;
use crate::ports::store::{
    CancelBy, Cancellation, CatalogReads, CatalogStore, DealCreation, IdempotencyWrite, OrderStore,
    OrderWrite, Payment, Placement, ReservationFence, Settled, Snapshot, StockChange, StoreError,
    StoreHealth, StoreResult, UserStore,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hotdeal_domain::{DealId, OrderId, OrderStatus, ProductId, UserId};
use rows::{deal_from_row, micros, order_from_rows, product_from_row, user_from_row};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, SqliteConnection};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use writer::{Health, Writer};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if super::postgres::is_postgres_error(&e) {
            return super::postgres::classify(e);
        }
        writer::classify(e)
    }
}

/// Durability of a commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// WAL with `synchronous=NORMAL`: a commit survives the process being
    /// killed (`kill -9`), not necessarily a power loss.
    Process,
    /// `synchronous=FULL`: every commit is fsynced; survives power loss.
    Power,
}

#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// The single writer connection (see the module docs).
    writer: SqlitePool,
    /// Read-only connections for queries.
    reader: SqlitePool,
    /// Copies the WAL into the database file, off the writer's path.
    checkpointer: SqlitePool,
    /// Whether writes are taken (see [`writer`]).
    health: Arc<Health>,
}

/// Creates the database file readable by its owner only (it holds password
/// hashes) unless it exists; SQLite gives its `-wal` and `-shm` files the
/// same permissions.
fn create_private_file(path: &std::path::Path) -> std::io::Result<()> {
    if path.as_os_str() == ":memory:" || path.exists() {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// WAL frames (pages) past which the checkpointer restarts the log: about
/// 64 MiB of 4 KiB pages.
const WAL_RESTART_FRAMES: i64 = 16_384;

/// Checkpoints the WAL every 200 ms until the store is closed. A PASSIVE
/// checkpoint runs beside the writer and readers and never blocks them.
///
/// Under a steady stream of commits a PASSIVE checkpoint never catches up
/// with the last frame, so the writer never gets to start the log over and
/// the WAL grows without bound (a 40 s soak at 5,400 orders/s left 2.9 GB).
/// Past [`WAL_RESTART_FRAMES`] the checkpointer therefore asks for a
/// RESTART: it waits for the writer's current transaction, copies the rest,
/// and the next commit starts the log from its beginning; the writer waits
/// for that copy once, a few tens of milliseconds. `journal_size_limit`
/// then cuts the file back.
async fn checkpoint_loop(pool: SqlitePool) {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Logged when checkpoints start and stop failing, not every 200 ms.
    let mut failing = false;
    let mut mode = "PASSIVE";
    while !pool.is_closed() {
        tick.tick().await;
        // (busy, frames in the log, frames copied)
        let done: Result<(i64, i64, i64), _> =
            sqlx::query_as(&format!("PRAGMA wal_checkpoint({mode})"))
                .fetch_one(&pool)
                .await;
        match done {
            Err(e) if !failing && !pool.is_closed() => {
                failing = true;
                tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
            }
            Err(_) => {}
            Ok((_, frames, _)) => {
                if failing {
                    failing = false;
                    tracing::info!("WAL checkpoints work again");
                }
                mode = if frames > WAL_RESTART_FRAMES {
                    "RESTART"
                } else {
                    "PASSIVE"
                };
            }
        }
    }
}

const PRODUCT_COLS: &str =
    "id, seller_id, name, description, price, stock, category, image_url, created_at, updated_at";
const DEAL_COLS: &str = "id, product_id, deal_price, deal_stock, remaining_stock, per_user_limit, \
     starts_at, ends_at, settled_at, created_at, waiting_room, queue_admit_per_sec";
const ORDER_COLS: &str = "id, user_id, total_amount, discount_amount, status, payment_status, shipping_address, coupon_id, cancel_reason, cancelled_at, created_at, updated_at, pay_by";
const ITEM_COLS: &str =
    "id, order_id, product_id, deal_id, product_name, quantity, unit_price, subtotal";

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` and applies the
    /// migrations.
    pub async fn open(url: &str, durability: Durability) -> StoreResult<Self> {
        // The parser's error may quote the URL; say what is wrong instead.
        let base = SqliteConnectOptions::from_str(url).map_err(|_| {
            StoreError::Backend("the database URL is not a valid sqlite URL".into())
        })?;
        create_private_file(base.get_filename())
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        let base = base
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match durability {
                Durability::Process => SqliteSynchronous::Normal,
                Durability::Power => SqliteSynchronous::Full,
            })
            .busy_timeout(Duration::from_secs(10))
            // A restarted WAL is cut back to 64 MiB (see `checkpoint_loop`).
            .pragma("journal_size_limit", "67108864")
            .foreign_keys(true);
        // The writer never checkpoints: a checkpoint syncs the database file
        // and would stall the commit that triggers it. A second connection
        // checkpoints in the background instead (see `checkpoint_loop`).
        // Batches insert with multi-statement queries whose shapes follow
        // the row counts, below 64 rows a table (see `orders::NewRows`):
        // room for those shapes.
        // sqlx pings a pooled connection before lending it by default: one
        // more hand-off to the connection's thread per write or read. An
        // embedded connection does not go stale the way a socket does, and a
        // writer that saw a failure is closed, never lent again (`writer`).
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .test_before_acquire(false)
            .connect_with(
                base.clone()
                    .pragma("wal_autocheckpoint", "0")
                    .statement_cache_capacity(512),
            )
            .await?;
        MIGRATOR
            .run(&writer)
            .await
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        let checkpointer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(base.clone())
            .await?;
        tokio::spawn(checkpoint_loop(checkpointer.clone()));
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(base.clone().read_only(true))
            .await?;
        let health = Arc::new(Health::new(Some(base.get_filename().to_owned())));
        tokio::spawn(writer::probe_loop(
            writer.clone(),
            health.clone(),
            Duration::from_millis(250),
        ));
        Ok(Self {
            writer,
            reader,
            checkpointer,
            health,
        })
    }

    /// The writer connection for one write (see [`writer`]).
    async fn writer(&self) -> StoreResult<Writer<'_>> {
        Writer::acquire(&self.writer, &self.health).await
    }

    /// Closes both pools, flushing the WAL.
    pub async fn close(&self) {
        self.checkpointer.close().await;
        self.reader.close().await;
        let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.writer)
            .await;
        self.writer.close().await;
    }

    async fn load_order(
        conn: &mut sqlx::SqliteConnection,
        id: OrderId,
    ) -> StoreResult<Option<Order>> {
        let Some(row) = sqlx::query(&format!("SELECT {ORDER_COLS} FROM orders WHERE id = ?"))
            .bind(id.0)
            .fetch_optional(&mut *conn)
            .await?
        else {
            return Ok(None);
        };
        let items = sqlx::query(&format!(
            "SELECT {ITEM_COLS} FROM order_items WHERE order_id = ? ORDER BY line_no"
        ))
        .bind(id.0)
        .fetch_all(&mut *conn)
        .await?;
        Ok(Some(order_from_rows(&row, &items)?))
    }
}

impl StoreHealth for SqliteStore {
    fn writable(&self) -> bool {
        self.health.writable()
    }
}

#[async_trait]
impl UserStore for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn insert_user(&self, u: &User) -> StoreResult<()> {
        let mut w = self.writer().await?;
        let res = sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(u.id.0)
        .bind(&u.email)
        .bind(&u.name)
        .bind(&u.password_hash)
        .bind(micros(u.created_at))
        .execute(w.conn())
        .await;
        w.settle(match res {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_database_error()
                    .is_some_and(|d| d.is_unique_violation()) =>
            {
                Err(StoreError::EmailExists)
            }
            Err(e) => Err(e.into()),
        })
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(
            "SELECT id, email, name, password_hash, created_at FROM users WHERE email = ?",
        )
        .bind(email)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|r| user_from_row(&r)).transpose()
    }

    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>> {
        let row = sqlx::query(
            "SELECT id, email, name, password_hash, created_at FROM users WHERE id = ?",
        )
        .bind(id.0)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|r| user_from_row(&r)).transpose()
    }

    async fn insert_refresh_token(
        &self,
        token_hash: &[u8; 32],
        user: UserId,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut w = self.writer().await?;
        let res = sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, user_id, expires_at) VALUES (?, ?, ?)",
        )
        .bind(&token_hash[..])
        .bind(user.0)
        .bind(micros(expires_at))
        .execute(w.conn())
        .await;
        w.settle(res.map(drop).map_err(StoreError::from))
    }

    async fn consume_refresh_token(
        &self,
        token_hash: &[u8; 32],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<UserId>> {
        let mut w = self.writer().await?;
        let user: Result<Option<uuid::Uuid>, _> = sqlx::query_scalar(
            "UPDATE refresh_tokens SET used_at = ?1 \
             WHERE token_hash = ?2 AND used_at IS NULL AND expires_at > ?1 RETURNING user_id",
        )
        .bind(micros(now))
        .bind(&token_hash[..])
        .fetch_optional(w.conn())
        .await;
        w.settle(user.map(|u| u.map(UserId)).map_err(StoreError::from))
    }

    async fn revoke_refresh_tokens(
        &self,
        user: UserId,
        token_hash: Option<&[u8; 32]>,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let mut w = self.writer().await?;
        let revoked = sqlx::query(
            "UPDATE refresh_tokens SET used_at = ?1 \
             WHERE user_id = ?2 AND used_at IS NULL AND (?3 IS NULL OR token_hash = ?3)",
        )
        .bind(micros(now))
        .bind(user.0)
        .bind(token_hash.map(|h| &h[..]))
        .execute(w.conn())
        .await;
        w.settle(revoked.map(|r| r.rows_affected()).map_err(StoreError::from))
    }
}

#[async_trait]
impl CatalogReads for SqliteStore {
    async fn deal(&self, id: DealId) -> StoreResult<Option<Deal>> {
        let row = sqlx::query(&format!("SELECT {DEAL_COLS} FROM deals WHERE id = ?"))
            .bind(id.0)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| deal_from_row(&r)).transpose()
    }

    async fn product(&self, id: ProductId) -> StoreResult<Option<Product>> {
        let row = sqlx::query(&format!("SELECT {PRODUCT_COLS} FROM products WHERE id = ?"))
            .bind(id.0)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| product_from_row(&r)).transpose()
    }
}

#[async_trait]
impl CatalogStore for SqliteStore {
    async fn insert_product(&self, p: &Product) -> StoreResult<()> {
        let mut w = self.writer().await?;
        let res = insert_product(w.conn(), p).await;
        w.settle(res)
    }

    async fn products(&self, category: Option<&str>, page: Page) -> StoreResult<Paged<Product>> {
        let rows = sqlx::query(&format!(
            "SELECT {PRODUCT_COLS} FROM products WHERE (?1 IS NULL OR category = ?1) \
             ORDER BY id DESC LIMIT ?2 OFFSET ?3"
        ))
        .bind(category)
        .bind(page.size)
        .bind(page.offset())
        .fetch_all(&self.reader)
        .await?;
        let total: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM products WHERE (?1 IS NULL OR category = ?1)")
                .bind(category)
                .fetch_one(&self.reader)
                .await?;
        let items = rows
            .iter()
            .map(product_from_row)
            .collect::<StoreResult<_>>()?;
        Ok(Paged { items, total, page })
    }

    async fn update_product(
        &self,
        id: ProductId,
        patch: &ProductPatch,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Product>> {
        // Each nullable column takes a "change it" flag and the new value, so
        // one statement covers any combination of fields.
        let mut w = self.writer().await?;
        let row = update_product(w.conn(), id, patch, now).await;
        w.settle(row)?.map(|r| product_from_row(&r)).transpose()
    }
    async fn adjust_stock(
        &self,
        id: ProductId,
        delta: i64,
        // Names the change for a shared tier; the embedded store has none.
        _adjustment: uuid::Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<StockChange> {
        let mut w = self.writer().await?;
        let change = adjust_stock(w.conn(), id, delta, now).await;
        w.settle(change)
    }

    async fn insert_deal(&self, d: &Deal) -> StoreResult<DealCreation> {
        let mut w = self.writer().await?;
        let created = insert_deal(w.conn(), d).await;
        w.settle(created)
    }

    async fn settle_ended_deals(&self, now: DateTime<Utc>) -> StoreResult<Vec<Settled>> {
        let mut w = self.writer().await?;
        let settled = settle_ended_deals(w.conn(), now).await;
        w.settle(settled)
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn snapshot(&self) -> StoreResult<Snapshot> {
        let products = sqlx::query(&format!("SELECT {PRODUCT_COLS} FROM products"))
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(product_from_row)
            .collect::<StoreResult<_>>()?;
        let deals = sqlx::query(&format!("SELECT {DEAL_COLS} FROM deals"))
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(deal_from_row)
            .collect::<StoreResult<_>>()?;
        let held = sqlx::query(
            "SELECT p.deal_id, p.user_id, p.quantity FROM deal_purchases p \
             JOIN deals d ON d.id = p.deal_id \
             WHERE d.settled_at IS NULL AND d.per_user_limit IS NOT NULL AND p.quantity > 0",
        )
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(|r| {
            Ok((
                DealId(r.try_get("deal_id")?),
                UserId(r.try_get("user_id")?),
                r.try_get("quantity")?,
            ))
        })
        .collect::<StoreResult<_>>()?;
        Ok(Snapshot {
            products,
            deals,
            held,
        })
    }
}

/// No shared tier runs in front of the embedded store: no fence.
impl ReservationFence for SqliteStore {}

#[async_trait]
impl OrderStore for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all, fields(batch = batch.len()))]
    async fn place_orders(&self, batch: &[OrderWrite]) -> Vec<StoreResult<Placement>> {
        let mut out: Vec<Option<StoreResult<Placement>>> = batch.iter().map(|_| None).collect();
        let mut pending: Vec<usize> = (0..batch.len()).collect();
        // A batch refused for a key answered before goes again without the
        // repeats it had; one refused for a payer's debit goes again with
        // guarded debits, which drop that payer's orders alone.
        let mut keys_checked = false;
        let mut debits = orders::Debits::InRows;
        loop {
            let writes: Vec<&OrderWrite> = pending.iter().map(|&i| &batch[i]).collect();
            match self.place_batch(&writes, debits).await {
                Ok(orders::Batch::Placed(placements)) => {
                    for (&i, p) in pending.iter().zip(placements) {
                        out[i] = Some(Ok(p));
                    }
                    pending.clear();
                    break;
                }
                Ok(orders::Batch::OneByOne) => break,
                Ok(orders::Batch::Short) if debits == orders::Debits::InRows => {
                    debits = orders::Debits::Guarded;
                }
                Ok(orders::Batch::Short) => break,
                Ok(orders::Batch::Duplicate) if !keys_checked => {
                    keys_checked = true;
                    let answered = match self.answered_keys(&writes).await {
                        Ok(answered) => answered,
                        Err(_) => break,
                    };
                    if !answered.contains(&true) {
                        break; // another unique key: the slow path finds it
                    }
                    let mut rest = Vec::with_capacity(pending.len());
                    for (i, answered) in pending.into_iter().zip(answered) {
                        if answered {
                            out[i] = Some(Ok(Placement::KeyAnswered));
                        } else {
                            rest.push(i);
                        }
                    }
                    pending = rest;
                    if pending.is_empty() {
                        break;
                    }
                }
                Ok(orders::Batch::Duplicate) => break,
                // Storage failed: nothing was written and no order would fare
                // better on its own.
                Err(StoreError::Unavailable(e)) => {
                    let why = e.to_string();
                    for &i in &pending {
                        out[i] = Some(Err(StoreError::Unavailable(why.clone().into())));
                    }
                    pending.clear();
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, orders = pending.len(), "batch commit failed; committing one by one");
                    break;
                }
            }
        }
        // The slow path: each order on its own, so one bad order cannot
        // take the others down with it.
        for i in pending {
            out[i] = Some(self.place_one(&batch[i]).await);
        }
        out.into_iter()
            .map(|o| {
                o.unwrap_or_else(|| Err(StoreError::Backend("no outcome for an order".into())))
            })
            .collect()
    }

    fn refuses_answered_keys(&self) -> bool {
        true
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn order(&self, id: OrderId) -> StoreResult<Option<Order>> {
        let mut conn = self.reader.acquire().await?;
        Self::load_order(&mut conn, id).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn orders_of(
        &self,
        user: UserId,
        status: Option<OrderStatus>,
        page: Page,
    ) -> StoreResult<Paged<Order>> {
        let mut conn = self.reader.acquire().await?;
        let status = status.map(OrderStatus::as_str);
        let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
            "SELECT id FROM orders WHERE user_id = ?1 AND (?2 IS NULL OR status = ?2) \
             ORDER BY id DESC LIMIT ?3 OFFSET ?4",
        )
        .bind(user.0)
        .bind(status)
        .bind(page.size)
        .bind(page.offset())
        .fetch_all(&mut *conn)
        .await?;
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM orders WHERE user_id = ?1 AND (?2 IS NULL OR status = ?2)",
        )
        .bind(user.0)
        .bind(status)
        .fetch_one(&mut *conn)
        .await?;
        let mut items = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(o) = Self::load_order(&mut conn, OrderId(id)).await? {
                items.push(o);
            }
        }
        Ok(Paged { items, total, page })
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn cancel_order(
        &self,
        id: OrderId,
        reason: Option<&str>,
        by: CancelBy,
        now: DateTime<Utc>,
    ) -> StoreResult<Cancellation> {
        self.cancel(id, reason, by, now).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn pay_order(
        &self,
        id: OrderId,
        user: UserId,
        now: DateTime<Utc>,
        idempotency: Option<&IdempotencyWrite<'_, Order>>,
    ) -> StoreResult<Payment> {
        self.pay(id, user, now, idempotency).await
    }

    async fn awaiting_payment(&self) -> StoreResult<Vec<(OrderId, DateTime<Utc>)>> {
        let rows = sqlx::query(
            "SELECT id, pay_by FROM orders \
             WHERE pay_by IS NOT NULL AND payment_status = 'unpaid' AND status != 'cancelled'",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                let at: i64 = r.try_get("pay_by")?;
                Ok((
                    OrderId(r.try_get("id")?),
                    DateTime::from_timestamp_micros(at).unwrap_or_default(),
                ))
            })
            .collect()
    }

    /// The due orders, each cancelled by the guarded cancel (which checks
    /// again, under the writer, that it is still unpaid and due).
    async fn expire_due(&self, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<Cancellation>> {
        let due: Vec<uuid::Uuid> = sqlx::query_scalar(
            "SELECT id FROM orders \
             WHERE pay_by IS NOT NULL AND payment_status = 'unpaid' AND status != 'cancelled' \
               AND pay_by <= ? ORDER BY pay_by LIMIT ?",
        )
        .bind(micros(now))
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        let mut out = Vec::with_capacity(due.len());
        for id in due {
            out.push(
                self.cancel(OrderId(id), None, CancelBy::Expiry, now)
                    .await?,
            );
        }
        Ok(out)
    }
}

async fn adjust_stock(
    conn: &mut SqliteConnection,
    id: ProductId,
    delta: i64,
    now: DateTime<Utc>,
) -> StoreResult<StockChange> {
    let row = sqlx::query(&format!(
        "UPDATE products SET stock = stock + ?1, updated_at = ?2 \
             WHERE id = ?3 AND stock + ?1 >= 0 RETURNING {PRODUCT_COLS}"
    ))
    .bind(delta)
    .bind(micros(now))
    .bind(id.0)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(r) = row {
        return Ok(StockChange::Done(product_from_row(&r)?));
    }
    let available: Option<i64> = sqlx::query_scalar("SELECT stock FROM products WHERE id = ?")
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match available {
        Some(available) => StockChange::Insufficient { available },
        None => StockChange::NotFound,
    })
}

/// The product and its `product.created` event, in one transaction.
async fn insert_product(conn: &mut SqliteConnection, p: &Product) -> StoreResult<()> {
    let mut tx = writer::begin(conn).await?;
    sqlx::query(&format!(
        "INSERT INTO products ({PRODUCT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(p.id.0)
    .bind(p.seller_id.0)
    .bind(&p.name)
    .bind(&p.description)
    .bind(p.price)
    .bind(p.stock)
    .bind(&p.category)
    .bind(&p.image_url)
    .bind(micros(p.created_at))
    .bind(micros(p.updated_at))
    .execute(&mut *tx)
    .await?;
    let event = CatalogueEvent::ProductCreated(p.id).outbox_row();
    orders::insert_events(&mut tx, &[event], micros(p.created_at)).await?;
    tx.commit().await?;
    Ok(())
}

/// The edit and its `product.updated` event, in one transaction.
async fn update_product(
    conn: &mut SqliteConnection,
    id: ProductId,
    patch: &ProductPatch,
    now: DateTime<Utc>,
) -> StoreResult<Option<sqlx::sqlite::SqliteRow>> {
    let mut tx = writer::begin(conn).await?;
    let row = sqlx::query(&format!(
        "UPDATE products SET \
               name = COALESCE(?1, name), \
               description = CASE WHEN ?2 THEN ?3 ELSE description END, \
               price = COALESCE(?4, price), \
               category = CASE WHEN ?5 THEN ?6 ELSE category END, \
               image_url = CASE WHEN ?7 THEN ?8 ELSE image_url END, \
               updated_at = ?9 \
             WHERE id = ?10 RETURNING {PRODUCT_COLS}"
    ))
    .bind(&patch.name)
    .bind(patch.description.is_some())
    .bind(patch.description.clone().flatten())
    .bind(patch.price)
    .bind(patch.category.is_some())
    .bind(patch.category.clone().flatten())
    .bind(patch.image_url.is_some())
    .bind(patch.image_url.clone().flatten())
    .bind(micros(now))
    .bind(id.0)
    .fetch_optional(&mut *tx)
    .await?;
    // No row, no change: nothing to tell anyone.
    if row.is_some() {
        let event = CatalogueEvent::ProductUpdated(id).outbox_row();
        orders::insert_events(&mut tx, &[event], micros(now)).await?;
    }
    tx.commit().await?;
    Ok(row)
}

async fn insert_deal(conn: &mut SqliteConnection, d: &Deal) -> StoreResult<DealCreation> {
    let mut tx = writer::begin(conn).await?;
    let taken = sqlx::query(
        "UPDATE products SET stock = stock - ?1, updated_at = ?2 WHERE id = ?3 AND stock >= ?1",
    )
    .bind(d.deal_stock)
    .bind(micros(d.created_at))
    .bind(d.product_id.0)
    .execute(&mut *tx)
    .await?;
    if taken.rows_affected() == 0 {
        let available: Option<i64> = sqlx::query_scalar("SELECT stock FROM products WHERE id = ?")
            .bind(d.product_id.0)
            .fetch_optional(&mut *tx)
            .await?;
        return Ok(match available {
            Some(available) => DealCreation::Insufficient { available },
            None => DealCreation::ProductNotFound,
        });
    }
    sqlx::query(
            "INSERT INTO deals (id, product_id, deal_price, deal_stock, remaining_stock, per_user_limit, \
             starts_at, ends_at, created_at, waiting_room, queue_admit_per_sec) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(d.id.0)
        .bind(d.product_id.0)
        .bind(d.deal_price)
        .bind(d.deal_stock)
        .bind(d.remaining_stock)
        .bind(d.per_user_limit)
        .bind(micros(d.window.starts_at))
        .bind(micros(d.window.ends_at))
        .bind(micros(d.created_at))
        .bind(d.waiting_room)
        .bind(d.queue_admit_per_sec)
        .execute(&mut *tx)
        .await?;
    let event = CatalogueEvent::DealCreated {
        deal: d.id,
        product: d.product_id,
    }
    .outbox_row();
    orders::insert_events(&mut tx, &[event], micros(d.created_at)).await?;
    tx.commit().await?;
    Ok(DealCreation::Created(d.clone()))
}

async fn settle_ended_deals(
    conn: &mut SqliteConnection,
    now: DateTime<Utc>,
) -> StoreResult<Vec<Settled>> {
    let now = micros(now);
    let mut tx = writer::begin(conn).await?;
    let due = sqlx::query(
            "SELECT id, product_id, remaining_stock FROM deals WHERE settled_at IS NULL AND ends_at <= ?",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
    let mut settled = Vec::with_capacity(due.len());
    for row in &due {
        let deal = DealId(row.try_get("id")?);
        let product = ProductId(row.try_get("product_id")?);
        let returned: i64 = row.try_get("remaining_stock")?;
        // Settled once, with the count it was read with: a deal another
        // writer settled (or sold from) meanwhile is left to it, or to the
        // next round.
        let won = sqlx::query(
            "UPDATE deals SET returned_stock = returned_stock + remaining_stock, \
             remaining_stock = 0, settled_at = ?1 \
             WHERE id = ?2 AND settled_at IS NULL AND remaining_stock = ?3",
        )
        .bind(now)
        .bind(deal.0)
        .bind(returned)
        .execute(&mut *tx)
        .await?;
        if won.rows_affected() != 1 {
            continue;
        }
        sqlx::query("UPDATE products SET stock = stock + ?1, updated_at = ?2 WHERE id = ?3")
            .bind(returned)
            .bind(now)
            .bind(product.0)
            .execute(&mut *tx)
            .await?;
        settled.push(Settled {
            deal,
            product,
            returned,
        });
    }
    tx.commit().await?;
    Ok(settled)
}
