//! The embedded store: SQLite in WAL mode through sqlx.
//!
//! SQLite allows one writer at a time. Rather than letting many pooled
//! connections fight over the write lock (and fail with `SQLITE_BUSY` on
//! lock upgrades), every write goes through a pool of exactly one
//! connection, so write transactions queue in-process in arrival order.
//! Reads use their own pool of read-only connections, which WAL lets run
//! beside the writer.

mod rows;

use crate::model::{Deal, Order, Page, Paged, Product, ProductPatch, User};
use crate::ports::store::{
    Cancellation, DealCreation, OrderWrite, Placement, Settled, Snapshot, StockChange, Store,
    StoreError, StoreResult,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hotdeal_domain::{DealId, OrderId, OrderStatus, ProductId, StockKey, UserId};
use rows::{deal_from_row, micros, order_from_rows, product_from_row, user_from_row};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Backend(Box::new(e))
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
}

const PRODUCT_COLS: &str =
    "id, seller_id, name, description, price, stock, category, image_url, created_at, updated_at";
const DEAL_COLS: &str = "id, product_id, deal_price, deal_stock, remaining_stock, per_user_limit, \
     starts_at, ends_at, settled_at, created_at";
const ORDER_COLS: &str = "id, user_id, total_amount, discount_amount, status, payment_status, shipping_address, coupon_id, cancel_reason, cancelled_at, created_at, updated_at";
const ITEM_COLS: &str =
    "id, order_id, product_id, deal_id, product_name, quantity, unit_price, subtotal";

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` and applies the
    /// migrations.
    pub async fn open(url: &str, durability: Durability) -> StoreResult<Self> {
        let base = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match durability {
                Durability::Process => SqliteSynchronous::Normal,
                Durability::Power => SqliteSynchronous::Full,
            })
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .connect_with(base.clone())
            .await?;
        MIGRATOR
            .run(&writer)
            .await
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(base.read_only(true))
            .await?;
        Ok(Self { writer, reader })
    }

    /// Closes both pools, flushing the WAL.
    pub async fn close(&self) {
        self.reader.close().await;
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

    /// The fast path: the whole batch in one transaction with one
    /// conditional update per stock key and multi-row inserts. The
    /// admission tier admitted every order already, so the conditions hold;
    /// if one does not, nothing is written and `Ok(false)` sends the batch
    /// down the slow path.
    async fn place_batch(&self, batch: &[OrderWrite]) -> StoreResult<bool> {
        let mut demand: BTreeMap<StockKey, i64> = BTreeMap::new();
        let mut held: BTreeMap<(DealId, UserId), i64> = BTreeMap::new();
        for w in batch {
            for (&key, &qty) in &w.demand {
                *demand.entry(key).or_insert(0) += qty;
                if let StockKey::Deal(d) = key {
                    *held.entry((d, w.order.user_id)).or_insert(0) += qty;
                }
            }
        }
        let now = batch
            .iter()
            .map(|w| micros(w.order.created_at))
            .max()
            .unwrap_or(0);
        let mut tx = self.writer.begin().await?;
        for (&key, &qty) in &demand {
            let taken = match key {
                StockKey::Product(p) => sqlx::query(
                    "UPDATE products SET stock = stock - ?1, updated_at = ?2 WHERE id = ?3 AND stock >= ?1",
                )
                .bind(qty)
                .bind(now)
                .bind(p.0),
                StockKey::Deal(d) => sqlx::query(
                    "UPDATE deals SET remaining_stock = remaining_stock - ?1 \
                     WHERE id = ?3 AND remaining_stock >= ?1 AND settled_at IS NULL AND ?2 IS NOT NULL",
                )
                .bind(qty)
                .bind(now)
                .bind(d.0),
            }
            .execute(&mut *tx)
            .await?;
            if taken.rows_affected() != 1 {
                return Ok(false);
            }
        }
        for chunk in fixed_chunks(&held.iter().collect::<Vec<_>>()) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO deal_purchases (deal_id, user_id, quantity) ",
            );
            q.push_values(chunk, |mut b, ((deal, user), qty)| {
                b.push_bind(deal.0).push_bind(user.0).push_bind(**qty);
            });
            q.push(" ON CONFLICT (deal_id, user_id) DO UPDATE SET quantity = quantity + excluded.quantity");
            q.build().persistent(true).execute(&mut *tx).await?;
        }
        let orders: Vec<&Order> = batch.iter().map(|w| &w.order).collect();
        insert_orders(&mut tx, &orders).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// One order in its own transaction, every condition checked by SQL.
    async fn place_one(
        &self,
        order: &Order,
        demand: &BTreeMap<StockKey, i64>,
    ) -> StoreResult<Placement> {
        let now = micros(order.created_at);
        let mut tx = self.writer.begin().await?;
        for (&key, &qty) in demand {
            if let Some(refusal) = Self::take_stock(&mut tx, key, qty, now).await? {
                // Dropping `tx` rolls back the units already taken.
                return Ok(refusal);
            }
            if let StockKey::Deal(d) = key {
                if let Some(refusal) = Self::count_purchase(&mut tx, d, order.user_id, qty).await? {
                    return Ok(refusal);
                }
            }
        }
        insert_orders(&mut tx, &[order]).await?;
        tx.commit().await?;
        Ok(Placement::Placed)
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
        let limit: Option<i64> =
            sqlx::query_scalar("SELECT per_user_limit FROM deals WHERE id = ?")
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

    /// Puts `qty` units back where an order line took them from; returns
    /// the stock that got them.
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
}

/// Rows per multi-row INSERT. Batches are cut into these fixed sizes so
/// the statement cache holds a handful of prepared statements instead of
/// one per batch length (each large, and slow to prepare).
const CHUNKS: [usize; 4] = [64, 16, 4, 1];

/// Splits `rows` into slices of the sizes in [`CHUNKS`], largest first.
fn fixed_chunks<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        let size = CHUNKS.into_iter().find(|&c| c <= rows.len())?;
        let (head, tail) = rows.split_at(size);
        rows = tail;
        Some(head)
    })
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
                .push_bind(micros(o.updated_at));
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

#[async_trait]
impl Store for SqliteStore {
    async fn insert_user(&self, u: &User) -> StoreResult<()> {
        let res = sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(u.id.0)
        .bind(&u.email)
        .bind(&u.name)
        .bind(&u.password_hash)
        .bind(micros(u.created_at))
        .execute(&self.writer)
        .await;
        match res {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_database_error()
                    .is_some_and(|d| d.is_unique_violation()) =>
            {
                Err(StoreError::EmailExists)
            }
            Err(e) => Err(e.into()),
        }
    }

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
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, user_id, expires_at) VALUES (?, ?, ?)",
        )
        .bind(&token_hash[..])
        .bind(user.0)
        .bind(micros(expires_at))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn consume_refresh_token(
        &self,
        token_hash: &[u8; 32],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<UserId>> {
        let user: Option<uuid::Uuid> = sqlx::query_scalar(
            "UPDATE refresh_tokens SET used_at = ?1 \
             WHERE token_hash = ?2 AND used_at IS NULL AND expires_at > ?1 RETURNING user_id",
        )
        .bind(micros(now))
        .bind(&token_hash[..])
        .fetch_optional(&self.writer)
        .await?;
        Ok(user.map(UserId))
    }

    async fn insert_product(&self, p: &Product) -> StoreResult<()> {
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
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn product(&self, id: ProductId) -> StoreResult<Option<Product>> {
        let row = sqlx::query(&format!("SELECT {PRODUCT_COLS} FROM products WHERE id = ?"))
            .bind(id.0)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| product_from_row(&r)).transpose()
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
        .fetch_optional(&self.writer)
        .await?;
        row.map(|r| product_from_row(&r)).transpose()
    }

    async fn adjust_stock(
        &self,
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
        .fetch_optional(&self.writer)
        .await?;
        if let Some(r) = row {
            return Ok(StockChange::Done(product_from_row(&r)?));
        }
        let available: Option<i64> = sqlx::query_scalar("SELECT stock FROM products WHERE id = ?")
            .bind(id.0)
            .fetch_optional(&self.writer)
            .await?;
        Ok(match available {
            Some(available) => StockChange::Insufficient { available },
            None => StockChange::NotFound,
        })
    }

    async fn insert_deal(&self, d: &Deal) -> StoreResult<DealCreation> {
        let mut tx = self.writer.begin().await?;
        let taken = sqlx::query(
            "UPDATE products SET stock = stock - ?1, updated_at = ?2 WHERE id = ?3 AND stock >= ?1",
        )
        .bind(d.deal_stock)
        .bind(micros(d.created_at))
        .bind(d.product_id.0)
        .execute(&mut *tx)
        .await?;
        if taken.rows_affected() == 0 {
            let available: Option<i64> =
                sqlx::query_scalar("SELECT stock FROM products WHERE id = ?")
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
             starts_at, ends_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(DealCreation::Created(d.clone()))
    }

    async fn settle_ended_deals(&self, now: DateTime<Utc>) -> StoreResult<Vec<Settled>> {
        let now = micros(now);
        let mut tx = self.writer.begin().await?;
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
            sqlx::query("UPDATE products SET stock = stock + ?1, updated_at = ?2 WHERE id = ?3")
                .bind(returned)
                .bind(now)
                .bind(product.0)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE deals SET returned_stock = returned_stock + remaining_stock, \
                 remaining_stock = 0, settled_at = ?1 WHERE id = ?2",
            )
            .bind(now)
            .bind(deal.0)
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

    async fn place_orders(&self, batch: &[OrderWrite]) -> Vec<StoreResult<Placement>> {
        match self.place_batch(batch).await {
            Ok(true) => return batch.iter().map(|_| Ok(Placement::Placed)).collect(),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, orders = batch.len(), "batch commit failed; committing one by one")
            }
        }
        // The slow path: each order on its own, so one bad order cannot
        // take the others down with it.
        let mut out = Vec::with_capacity(batch.len());
        for w in batch {
            out.push(self.place_one(&w.order, &w.demand).await);
        }
        out
    }

    async fn order(&self, id: OrderId) -> StoreResult<Option<Order>> {
        let mut conn = self.reader.acquire().await?;
        Self::load_order(&mut conn, id).await
    }

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

    async fn cancel_order(
        &self,
        id: OrderId,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<Cancellation> {
        let mut tx = self.writer.begin().await?;
        let Some(order) = Self::load_order(&mut tx, id).await? else {
            return Ok(Cancellation::NotFound);
        };
        if !order.status.can_cancel() {
            return Ok(Cancellation::InvalidState(order.status));
        }
        let now_us = micros(now);
        sqlx::query(
            "UPDATE orders SET status = 'cancelled', cancel_reason = ?1, cancelled_at = ?2, updated_at = ?2 \
             WHERE id = ?3",
        )
        .bind(reason)
        .bind(now_us)
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        let mut returned = Vec::with_capacity(order.items.len());
        for item in &order.items {
            let key = Self::return_stock(
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
        let cancelled = Self::load_order(&mut tx, id).await?;
        tx.commit().await?;
        Ok(match cancelled {
            Some(order) => Cancellation::Cancelled {
                order: Box::new(order),
                returned,
            },
            None => Cancellation::NotFound,
        })
    }
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
