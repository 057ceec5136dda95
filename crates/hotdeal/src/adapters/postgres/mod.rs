//! The PostgreSQL store: the source of truth when hotdeal runs on a
//! database server instead of an embedded file.
//!
//! Unlike the SQLite store, writes run on a pool of connections at once, so
//! nothing here relies on its callers being serialised: every state change
//! is a guarded statement (`UPDATE … WHERE … AND <state> RETURNING`) or
//! follows a `SELECT … FOR UPDATE` of its row. Group commit stays a handful
//! of set-based statements per batch, whatever its size (see [`orders`]).
//!
//! A deadlock or serialisation failure (SQLSTATE 40P01, 40001) retries the
//! whole transaction a few times inside the adapter; a connection failure
//! or an administrative shutdown (08xxx, 57Pxx, a pool timeout, I/O) is
//! [`StoreError::Unavailable`] and stops writes until a probe commits.
//!
//! The in-memory admission tier in front of this store is exact only while
//! it is the only one: [`PgStore::open`] takes a session advisory lock on a
//! dedicated connection, held for the life of the process, and refuses to
//! start when another instance holds it.
//!
//! Connection URLs may carry a password: neither they nor the connect
//! options (whose `Debug` prints the password) appear in any message.

mod ledger;
mod orders;
mod rows;

use crate::model::{Deal, Order, Page, Paged, Product, ProductPatch, User};
use crate::ports::events::CatalogueEvent;
use crate::ports::store::{
    CancelBy, Cancellation, CatalogReads, CatalogStore, DealCreation, IdempotencyWrite, OrderStore,
    OrderWrite, Payment, Placement, ReservationFence, Settled, Snapshot, StockChange, StoreError,
    StoreHealth, StoreResult, UserStore,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hotdeal_domain::{DealId, OrderId, OrderStatus, ProductId, StockKey, UserId};
use rows::{
    deal_from_row, item_from_row, order_from_row, product_from_row, user_from_row, DEAL_COLS,
    ITEM_COLS, ORDER_COLS, PRODUCT_COLS, USER_COLS,
};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection, Postgres, Row};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Attempts of a transaction that hit a deadlock or a serialisation
/// failure before the write is answered as a [`StoreError::Conflict`]
/// (503, retry).
const ATTEMPTS: u32 = 5;

/// How a sqlx error from PostgreSQL reads in the store's vocabulary.
pub(crate) fn classify(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) => {
            let code = d.code().map(|c| c.into_owned()).unwrap_or_default();
            match code.as_str() {
                // The transaction was rolled back and may simply run again.
                "40001" | "40P01" => StoreError::Conflict(Box::new(e)),
                // Products, deals, orders and coupons are never deleted: the
                // one row a write names that may be missing is its user.
                "23503" => StoreError::UnknownUser,
                // Connection exceptions, insufficient resources (disk full,
                // out of memory, too many connections), operator
                // intervention (shutdown), system errors, a read-only
                // standby.
                c if c.starts_with("08")
                    || c.starts_with("53")
                    || c.starts_with("57P")
                    || c.starts_with("58")
                    || c == "25006" =>
                {
                    StoreError::Unavailable(Box::new(e))
                }
                _ => StoreError::Backend(Box::new(e)),
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(Box::new(e)),
        _ => StoreError::Backend(Box::new(e)),
    }
}

/// Whether a sqlx error came from PostgreSQL (for the shared conversion).
pub(crate) fn is_postgres_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => d
            .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
            .is_some(),
        _ => false,
    }
}

/// `?` on sqlx errors inside this adapter: PostgreSQL's codes, not SQLite's.
trait Pg<T> {
    fn pg(self) -> StoreResult<T>;
}

impl<T> Pg<T> for Result<T, sqlx::Error> {
    fn pg(self) -> StoreResult<T> {
        self.map_err(classify)
    }
}

/// What a PostgreSQL store connects to and how.
#[derive(Clone)]
pub struct PgSettings {
    /// `postgres://…`; may carry a password, so it is never shown.
    pub url: String,
    /// The schema that holds hotdeal's tables (created if missing); `None`
    /// uses the connection's default search path.
    pub schema: Option<String>,
    /// Pooled connections.
    pub pool_size: u32,
}

impl std::fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings")
            .field("url", &"redacted")
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// Whether the store takes writes.
#[derive(Debug, Default)]
struct Health {
    unwritable: AtomicBool,
}

impl Health {
    fn writable(&self) -> bool {
        !self.unwritable.load(Ordering::Acquire)
    }

    fn failed(&self, why: &str) {
        if !self.unwritable.swap(true, Ordering::AcqRel) {
            tracing::error!(
                error = why,
                "database failed: refusing writes until a probe write commits"
            );
        }
    }

    fn recovered(&self) {
        if self.unwritable.swap(false, Ordering::AcqRel) {
            tracing::info!("database recovered: taking writes again");
        }
    }
}

/// A pooled connection for one write. Hand the write's result to
/// [`Writer::settle`]; a connection that failed, or whose write was
/// abandoned half way, is closed instead of going back to the pool.
struct Writer<'a> {
    conn: PoolConnection<Postgres>,
    health: &'a Health,
    settled: bool,
}

impl Writer<'_> {
    fn conn(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    fn settle<T>(mut self, result: StoreResult<T>) -> StoreResult<T> {
        self.settled = true;
        if let Err(StoreError::Unavailable(e)) = &result {
            self.conn.close_on_drop();
            self.health.failed(&e.to_string());
        }
        result
    }
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.conn.close_on_drop();
        }
    }
}

/// Runs one write transaction with a pooled connection: refused at once
/// while the store is unwritable, retried on a deadlock or serialisation
/// failure. `$conn` names the `&mut PgConnection` inside `$body`.
macro_rules! write {
    ($store:expr, |$conn:ident| $body:expr) => {{
        let mut attempt = 1;
        loop {
            let outcome = async {
                let mut w = $store.writer().await?;
                let result = {
                    let $conn = w.conn();
                    $body
                };
                w.settle(result)
            }
            .await;
            match outcome {
                Err(e) if $crate::adapters::postgres::retryable(&e, attempt) => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(2 * u64::from(attempt)))
                        .await;
                }
                other => break other,
            }
        }
    }};
}
pub(crate) use write;

pub(crate) fn retryable(e: &StoreError, attempt: u32) -> bool {
    matches!(e, StoreError::Conflict(_)) && attempt < ATTEMPTS
}

pub struct PgStore {
    pool: PgPool,
    /// Holds the instance lock (a session advisory lock) for the life of
    /// the process; closing it lets the next instance start.
    lock: tokio::sync::Mutex<Option<PgConnection>>,
    health: Arc<Health>,
}

impl std::fmt::Debug for PgStore {
    // The pool's Debug prints its connect options, password included.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("connections", &self.pool.size())
            .finish_non_exhaustive()
    }
}

/// Why the store could not open, without the URL.
fn opening(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match classify(e) {
        StoreError::Unavailable(inner) => {
            StoreError::Unavailable(format!("{what}: {}", redact(&*inner)).into())
        }
        other => StoreError::Backend(format!("{what}: {}", redact(&other)).into()),
    }
}

/// An error's text, with nothing that could be a connection string.
fn redact(e: &dyn std::error::Error) -> String {
    let text = e.to_string();
    if text.contains("://") {
        "connection failed".into()
    } else {
        text
    }
}

/// The schema names accepted: lower-case SQL identifiers, so they need no
/// quoting anywhere.
pub fn valid_schema(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && name.len() <= 63
}

/// Tries for the instance lock, 100 ms apart, before refusing to start.
const LOCK_ATTEMPTS: u32 = 30;

/// A connection holding the session advisory lock of this database and
/// schema, or why it could not be had.
async fn instance_lock(options: &PgConnectOptions) -> StoreResult<PgConnection> {
    let mut lock = PgConnection::connect_with(options)
        .await
        .map_err(opening("connecting to PostgreSQL"))?;
    // A predecessor that just stopped may hold the lock until its session
    // ends on the server, a moment after it closed the connection: a
    // restart waits a little for it rather than refusing at once.
    let mut locked = false;
    for attempt in 0..LOCK_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        locked = sqlx::query_scalar(
            "SELECT pg_try_advisory_lock(hashtextextended('hotdeal:' || current_schema(), 0))",
        )
        .fetch_one(&mut lock)
        .await
        .map_err(opening("taking the instance lock"))?;
        if locked {
            break;
        }
    }
    if !locked {
        return Err(StoreError::Backend(
            "another hotdeal instance is running on this database and schema: with the \
             in-memory admission tier a second instance would oversell, so this one \
             refuses to start (stop the other one, or use another database or schema)"
                .into(),
        ));
    }
    Ok(lock)
}

impl PgStore {
    /// Connects, takes the instance lock, creates the schema if needed and
    /// applies the migrations.
    pub async fn open(settings: &PgSettings) -> StoreResult<Self> {
        Self::open_with(settings, true).await
    }

    /// As [`PgStore::open`], without the instance lock: for writers that
    /// share the database on purpose (another connection racing this one in
    /// tests; instances in front of a shared admission tier).
    pub async fn open_shared(settings: &PgSettings) -> StoreResult<Self> {
        Self::open_with(settings, false).await
    }

    async fn open_with(settings: &PgSettings, exclusive: bool) -> StoreResult<Self> {
        let mut options = PgConnectOptions::from_str(&settings.url).map_err(|_| {
            StoreError::Backend("the database URL is not a valid postgres URL".into())
        })?;
        options = options.application_name("hotdeal");
        if let Some(schema) = &settings.schema {
            if !valid_schema(schema) {
                return Err(StoreError::Backend(
                    "the database schema must be a lower-case identifier ([a-z_][a-z0-9_]*)".into(),
                ));
            }
            // Create it first, on a connection that does not need it.
            let mut admin = PgConnection::connect_with(&options)
                .await
                .map_err(opening("connecting to PostgreSQL"))?;
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .execute(&mut admin)
                .await
                .or_else(|e| match &e {
                    // Two starts racing to create it: it exists.
                    sqlx::Error::Database(d) if d.is_unique_violation() => Ok(Default::default()),
                    _ => Err(e),
                })
                .map_err(opening("creating the schema"))?;
            admin.close().await.ok();
            options = options.options([("search_path", schema.as_str())]);
        }
        let lock = if exclusive {
            Some(instance_lock(&options).await?)
        } else {
            None
        };
        let pool = PgPoolOptions::new()
            .max_connections(settings.pool_size.max(2))
            .min_connections(2)
            .acquire_timeout(Duration::from_secs(5))
            // A broken connection fails its statement and is closed then;
            // a round trip before every use would cost more than it saves.
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(opening("connecting to PostgreSQL"))?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend(format!("applying migrations: {e}").into()))?;
        let health = Arc::new(Health::default());
        tokio::spawn(probe_loop(pool.clone(), health.clone()));
        Ok(Self {
            pool,
            lock: tokio::sync::Mutex::new(lock),
            health,
        })
    }

    async fn writer(&self) -> StoreResult<Writer<'_>> {
        if !self.health.writable() {
            return Err(StoreError::Unavailable(
                "the store is not taking writes until the database recovers".into(),
            ));
        }
        let conn = self.pool.acquire().await.pg()?;
        Ok(Writer {
            conn,
            health: &self.health,
            settled: false,
        })
    }

    /// Closes the pool and releases the instance lock.
    pub async fn close(&self) {
        self.pool.close().await;
        if let Some(lock) = self.lock.lock().await.take() {
            lock.close().await.ok();
        }
    }

    async fn load_order(conn: &mut PgConnection, id: OrderId) -> StoreResult<Option<Order>> {
        Ok(Self::load_orders(conn, &[id.0]).await?.pop())
    }

    /// Orders by id, in the order given, with their lines (two queries).
    async fn load_orders(conn: &mut PgConnection, ids: &[uuid::Uuid]) -> StoreResult<Vec<Order>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&format!(
            "SELECT {ORDER_COLS} FROM orders WHERE id = ANY($1)"
        ))
        .bind(ids)
        .fetch_all(&mut *conn)
        .await
        .pg()?;
        let items = sqlx::query(&format!(
            "SELECT {ITEM_COLS} FROM order_items WHERE order_id = ANY($1) ORDER BY order_id, line_no"
        ))
        .bind(ids)
        .fetch_all(&mut *conn)
        .await
        .pg()?;
        let mut lines: std::collections::HashMap<uuid::Uuid, Vec<_>> = Default::default();
        for i in &items {
            lines
                .entry(i.try_get("order_id")?)
                .or_default()
                .push(item_from_row(i)?);
        }
        let mut by_id: std::collections::HashMap<uuid::Uuid, Order> = Default::default();
        for r in &rows {
            let id: uuid::Uuid = r.try_get("id")?;
            let order = order_from_row(r, lines.remove(&id).unwrap_or_default())?;
            by_id.insert(id, order);
        }
        Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }
}

/// While the store is unwritable, tries a one-row write every 250 ms until
/// one commits. Ends with the pool.
async fn probe_loop(pool: PgPool, health: Arc<Health>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !pool.is_closed() {
        tick.tick().await;
        if health.writable() {
            continue;
        }
        let probe = async {
            let mut conn = pool.acquire().await?;
            let done = sqlx::query("UPDATE store_probe SET probed_at = now() WHERE id = 1")
                .execute(&mut *conn)
                .await;
            // A connection the outage broke must not go back to the pool
            // (nothing tests a connection before it is lent).
            if done.is_err() {
                conn.close_on_drop();
            }
            done
        }
        .await;
        if probe.is_ok() {
            health.recovered();
        }
    }
}

impl StoreHealth for PgStore {
    fn writable(&self) -> bool {
        self.health.writable()
    }
}

#[async_trait]
impl UserStore for PgStore {
    #[tracing::instrument(skip_all)]
    async fn insert_user(&self, u: &User) -> StoreResult<()> {
        write!(self, |c| {
            let res = sqlx::query(&format!(
                "INSERT INTO users ({USER_COLS}) VALUES ($1, $2, $3, $4, $5)"
            ))
            .bind(u.id.0)
            .bind(&u.email)
            .bind(&u.name)
            .bind(&u.password_hash)
            .bind(u.created_at)
            .execute(c)
            .await;
            match res {
                Ok(_) => Ok(()),
                Err(e)
                    if e.as_database_error()
                        .is_some_and(|d| d.is_unique_violation()) =>
                {
                    Err(StoreError::EmailExists)
                }
                Err(e) => Err(classify(e)),
            }
        })
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!("SELECT {USER_COLS} FROM users WHERE email = $1"))
            .bind(email)
            .fetch_optional(&self.pool)
            .await
            .pg()?;
        row.map(|r| user_from_row(&r)).transpose()
    }

    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!("SELECT {USER_COLS} FROM users WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .pg()?;
        row.map(|r| user_from_row(&r)).transpose()
    }

    async fn insert_refresh_token(
        &self,
        token_hash: &[u8; 32],
        user: UserId,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        write!(self, |c| {
            sqlx::query(
                "INSERT INTO refresh_tokens (token_hash, user_id, expires_at) VALUES ($1, $2, $3)",
            )
            .bind(&token_hash[..])
            .bind(user.0)
            .bind(expires_at)
            .execute(c)
            .await
            .pg()
            .map(drop)
        })
    }

    async fn consume_refresh_token(
        &self,
        token_hash: &[u8; 32],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<UserId>> {
        write!(self, |c| {
            sqlx::query_scalar::<_, uuid::Uuid>(
                "UPDATE refresh_tokens SET used_at = $1 \
                 WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1 RETURNING user_id",
            )
            .bind(now)
            .bind(&token_hash[..])
            .fetch_optional(c)
            .await
            .pg()
            .map(|u| u.map(UserId))
        })
    }

    async fn revoke_refresh_tokens(
        &self,
        user: UserId,
        token_hash: Option<&[u8; 32]>,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        write!(self, |c| {
            sqlx::query(
                "UPDATE refresh_tokens SET used_at = $1 \
                 WHERE user_id = $2 AND used_at IS NULL AND ($3::bytea IS NULL OR token_hash = $3)",
            )
            .bind(now)
            .bind(user.0)
            .bind(token_hash.map(|h| &h[..]))
            .execute(c)
            .await
            .pg()
            .map(|r| r.rows_affected())
        })
    }
}

#[async_trait]
impl CatalogReads for PgStore {
    async fn product(&self, id: ProductId) -> StoreResult<Option<Product>> {
        let row = sqlx::query(&format!(
            "SELECT {PRODUCT_COLS} FROM products WHERE id = $1"
        ))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .pg()?;
        row.map(|r| product_from_row(&r)).transpose()
    }

    async fn deal(&self, id: DealId) -> StoreResult<Option<Deal>> {
        let row = sqlx::query(&format!("SELECT {DEAL_COLS} FROM deals WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .pg()?;
        row.map(|r| deal_from_row(&r)).transpose()
    }
}

#[async_trait]
impl CatalogStore for PgStore {
    async fn insert_product(&self, p: &Product) -> StoreResult<()> {
        write!(self, |c| {
            let mut tx = c.begin().await.pg()?;
            sqlx::query(&format!(
                "INSERT INTO products ({PRODUCT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            ))
            .bind(p.id.0)
            .bind(p.seller_id.0)
            .bind(&p.name)
            .bind(&p.description)
            .bind(p.price)
            .bind(p.stock)
            .bind(&p.category)
            .bind(&p.image_url)
            .bind(p.created_at)
            .bind(p.updated_at)
            .execute(&mut *tx)
            .await
            .pg()?;
            let event = CatalogueEvent::ProductCreated(p.id).outbox_row();
            orders::insert_events(&mut tx, &[event], p.created_at).await?;
            tx.commit().await.pg()
        })
    }

    async fn products(&self, category: Option<&str>, page: Page) -> StoreResult<Paged<Product>> {
        let rows = sqlx::query(&format!(
            "SELECT {PRODUCT_COLS} FROM products WHERE ($1::text IS NULL OR category = $1) \
             ORDER BY id DESC LIMIT $2 OFFSET $3"
        ))
        .bind(category)
        .bind(page.size)
        .bind(page.offset())
        .fetch_all(&self.pool)
        .await
        .pg()?;
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM products WHERE ($1::text IS NULL OR category = $1)",
        )
        .bind(category)
        .fetch_one(&self.pool)
        .await
        .pg()?;
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
        let row = write!(self, |c| {
            let mut tx = c.begin().await.pg()?;
            let row = sqlx::query(&format!(
                "UPDATE products SET \
                   name = COALESCE($1, name), \
                   description = CASE WHEN $2 THEN $3 ELSE description END, \
                   price = COALESCE($4, price), \
                   category = CASE WHEN $5 THEN $6 ELSE category END, \
                   image_url = CASE WHEN $7 THEN $8 ELSE image_url END, \
                   updated_at = $9 \
                 WHERE id = $10 RETURNING {PRODUCT_COLS}"
            ))
            .bind(&patch.name)
            .bind(patch.description.is_some())
            .bind(patch.description.clone().flatten())
            .bind(patch.price)
            .bind(patch.category.is_some())
            .bind(patch.category.clone().flatten())
            .bind(patch.image_url.is_some())
            .bind(patch.image_url.clone().flatten())
            .bind(now)
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await
            .pg()?;
            // No row, no change: nothing to tell anyone.
            if row.is_some() {
                let event = CatalogueEvent::ProductUpdated(id).outbox_row();
                orders::insert_events(&mut tx, &[event], now).await?;
            }
            tx.commit().await.pg()?;
            Ok(row)
        })?;
        row.map(|r| product_from_row(&r)).transpose()
    }

    async fn adjust_stock(
        &self,
        id: ProductId,
        delta: i64,
        adjustment: uuid::Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<StockChange> {
        write!(self, |c| adjust_stock(c, id, delta, adjustment, now).await)
    }

    async fn insert_deal(&self, d: &Deal) -> StoreResult<DealCreation> {
        write!(self, |c| insert_deal(c, d).await)
    }

    async fn settle_ended_deals(&self, now: DateTime<Utc>) -> StoreResult<Vec<Settled>> {
        write!(self, |c| settle_ended_deals(c, now).await)
    }

    async fn snapshot(&self) -> StoreResult<Snapshot> {
        let products = sqlx::query(&format!("SELECT {PRODUCT_COLS} FROM products"))
            .fetch_all(&self.pool)
            .await
            .pg()?
            .iter()
            .map(product_from_row)
            .collect::<StoreResult<_>>()?;
        let deals = sqlx::query(&format!("SELECT {DEAL_COLS} FROM deals"))
            .fetch_all(&self.pool)
            .await
            .pg()?
            .iter()
            .map(deal_from_row)
            .collect::<StoreResult<_>>()?;
        let held = sqlx::query(
            "SELECT p.deal_id, p.user_id, p.quantity FROM deal_purchases p \
             JOIN deals d ON d.id = p.deal_id \
             WHERE d.settled_at IS NULL AND d.per_user_limit IS NOT NULL AND p.quantity > 0",
        )
        .fetch_all(&self.pool)
        .await
        .pg()?
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

    async fn stock_seed(&self, key: StockKey) -> StoreResult<Option<(i64, Vec<(UserId, i64)>)>> {
        let mut tx = self.pool.begin().await.pg()?;
        // One snapshot for the count and the holdings.
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await
            .pg()?;
        let seed = match key {
            StockKey::Product(p) => {
                let stock: Option<i64> =
                    sqlx::query_scalar("SELECT stock FROM products WHERE id = $1")
                        .bind(p.0)
                        .fetch_optional(&mut *tx)
                        .await
                        .pg()?;
                stock.map(|s| (s, Vec::new()))
            }
            StockKey::Deal(d) => {
                let remaining: Option<i64> = sqlx::query_scalar(
                    "SELECT remaining_stock FROM deals WHERE id = $1 AND settled_at IS NULL",
                )
                .bind(d.0)
                .fetch_optional(&mut *tx)
                .await
                .pg()?;
                match remaining {
                    None => None,
                    Some(units) => {
                        let held = sqlx::query(
                            "SELECT p.user_id, p.quantity FROM deal_purchases p \
                             JOIN deals d ON d.id = p.deal_id \
                             WHERE p.deal_id = $1 AND d.per_user_limit IS NOT NULL AND p.quantity > 0",
                        )
                        .bind(d.0)
                        .fetch_all(&mut *tx)
                        .await
                        .pg()?
                        .iter()
                        .map(|r| Ok((UserId(r.try_get("user_id")?), r.try_get("quantity")?)))
                        .collect::<StoreResult<Vec<_>>>()?;
                        Some((units, held))
                    }
                }
            }
        };
        tx.commit().await.pg()?;
        Ok(seed)
    }
}

#[async_trait]
impl ReservationFence for PgStore {
    async fn abort_reservations(&self, ids: &[uuid::Uuid]) -> StoreResult<Vec<uuid::Uuid>> {
        write!(self, |c| abort_reservations(c, ids).await)
    }
}

#[async_trait]
impl OrderStore for PgStore {
    #[tracing::instrument(skip_all, fields(orders = batch.len()))]
    async fn place_orders(&self, batch: &[OrderWrite]) -> Vec<StoreResult<Placement>> {
        self.place(batch).await
    }

    async fn order(&self, id: OrderId) -> StoreResult<Option<Order>> {
        let mut conn = self.pool.acquire().await.pg()?;
        Self::load_order(&mut conn, id).await
    }

    async fn orders_of(
        &self,
        user: UserId,
        status: Option<OrderStatus>,
        page: Page,
    ) -> StoreResult<Paged<Order>> {
        let mut conn = self.pool.acquire().await.pg()?;
        let status = status.map(OrderStatus::as_str);
        let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
            "SELECT id FROM orders WHERE user_id = $1 AND ($2::text IS NULL OR status = $2) \
             ORDER BY id DESC LIMIT $3 OFFSET $4",
        )
        .bind(user.0)
        .bind(status)
        .bind(page.size)
        .bind(page.offset())
        .fetch_all(&mut *conn)
        .await
        .pg()?;
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM orders WHERE user_id = $1 AND ($2::text IS NULL OR status = $2)",
        )
        .bind(user.0)
        .bind(status)
        .fetch_one(&mut *conn)
        .await
        .pg()?;
        let items = Self::load_orders(&mut conn, &ids).await?;
        Ok(Paged { items, total, page })
    }

    async fn cancel_order(
        &self,
        id: OrderId,
        reason: Option<&str>,
        by: CancelBy,
        now: DateTime<Utc>,
    ) -> StoreResult<Cancellation> {
        write!(self, |c| orders::cancel(c, id, reason, by, now).await)
    }

    async fn pay_order(
        &self,
        id: OrderId,
        user: UserId,
        now: DateTime<Utc>,
        idempotency: Option<&IdempotencyWrite<'_, Order>>,
    ) -> StoreResult<Payment> {
        write!(self, |c| orders::pay(c, id, user, now, idempotency).await)
    }

    async fn awaiting_payment(&self) -> StoreResult<Vec<(OrderId, DateTime<Utc>)>> {
        // Expiry runs from the store (`expire_due`), not from timers.
        Ok(Vec::new())
    }

    fn expires_from_store(&self) -> bool {
        true
    }

    async fn expire_due(&self, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<Cancellation>> {
        write!(self, |c| orders::expire_due(c, now, limit).await)
    }
}

async fn adjust_stock(
    conn: &mut PgConnection,
    id: ProductId,
    delta: i64,
    adjustment: uuid::Uuid,
    now: DateTime<Utc>,
) -> StoreResult<StockChange> {
    let mut tx = conn.begin().await.pg()?;
    let row = sqlx::query(&format!(
        "UPDATE products SET stock = stock + $1, updated_at = $2 \
         WHERE id = $3 AND stock + $1 >= 0 RETURNING {PRODUCT_COLS}"
    ))
    .bind(delta)
    .bind(now)
    .bind(id.0)
    .fetch_optional(&mut *tx)
    .await
    .pg()?;
    if let Some(r) = row {
        let product = product_from_row(&r)?;
        let payload = serde_json::json!({
            "product_id": id, "delta": delta, "stock": product.stock,
            "adjustment_id": adjustment,
        });
        orders::insert_events(&mut tx, &[("stock.adjusted", payload.to_string())], now).await?;
        tx.commit().await.pg()?;
        return Ok(StockChange::Done(product));
    }
    let available: Option<i64> = sqlx::query_scalar("SELECT stock FROM products WHERE id = $1")
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await
        .pg()?;
    Ok(match available {
        Some(available) => StockChange::Insufficient { available },
        None => StockChange::NotFound,
    })
}

async fn insert_deal(conn: &mut PgConnection, d: &Deal) -> StoreResult<DealCreation> {
    let mut tx = conn.begin().await.pg()?;
    let taken = sqlx::query(
        "UPDATE products SET stock = stock - $1, updated_at = $2 WHERE id = $3 AND stock >= $1",
    )
    .bind(d.deal_stock)
    .bind(d.created_at)
    .bind(d.product_id.0)
    .execute(&mut *tx)
    .await
    .pg()?;
    if taken.rows_affected() == 0 {
        let available: Option<i64> = sqlx::query_scalar("SELECT stock FROM products WHERE id = $1")
            .bind(d.product_id.0)
            .fetch_optional(&mut *tx)
            .await
            .pg()?;
        return Ok(match available {
            Some(available) => DealCreation::Insufficient { available },
            None => DealCreation::ProductNotFound,
        });
    }
    sqlx::query(
        "INSERT INTO deals (id, product_id, deal_price, deal_stock, remaining_stock, per_user_limit, \
         starts_at, ends_at, created_at, waiting_room, queue_admit_per_sec) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(d.id.0)
    .bind(d.product_id.0)
    .bind(d.deal_price)
    .bind(d.deal_stock)
    .bind(d.remaining_stock)
    .bind(d.per_user_limit)
    .bind(d.window.starts_at)
    .bind(d.window.ends_at)
    .bind(d.created_at)
    .bind(d.waiting_room)
    .bind(d.queue_admit_per_sec)
    .execute(&mut *tx)
    .await
    .pg()?;
    let event = CatalogueEvent::DealCreated {
        deal: d.id,
        product: d.product_id,
    }
    .outbox_row();
    orders::insert_events(&mut tx, &[event], d.created_at).await?;
    tx.commit().await.pg()?;
    Ok(DealCreation::Created(d.clone()))
}

/// One statement: every due, unsettled deal is settled (guarded by
/// `settled_at IS NULL`, so a deal is settled once whoever runs this) and
/// its unsold units go back to its product.
async fn settle_ended_deals(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
) -> StoreResult<Vec<Settled>> {
    let mut tx = conn.begin().await.pg()?;
    let rows = sqlx::query(
        "WITH due AS ( \
             SELECT id, remaining_stock FROM deals \
             WHERE settled_at IS NULL AND ends_at <= $1 ORDER BY id FOR UPDATE), \
         settled AS ( \
             UPDATE deals d SET returned_stock = d.returned_stock + due.remaining_stock, \
                 remaining_stock = 0, settled_at = $1 \
             FROM due WHERE d.id = due.id AND d.settled_at IS NULL \
             RETURNING d.id, d.product_id, due.remaining_stock AS returned), \
         restocked AS ( \
             UPDATE products p SET stock = p.stock + s.returned, updated_at = $1 \
             FROM (SELECT product_id, SUM(returned)::bigint AS returned FROM settled GROUP BY product_id) s \
             WHERE p.id = s.product_id) \
         SELECT id, product_id, returned FROM settled",
    )
    .bind(now)
    .fetch_all(&mut *tx)
    .await
    .pg()?;
    let settled = rows
        .iter()
        .map(|r| {
            Ok(Settled {
                deal: DealId(r.try_get("id")?),
                product: ProductId(r.try_get("product_id")?),
                returned: r.try_get("returned")?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    // The units going back ride on the event, for a shared tier.
    let events: Vec<_> = settled
        .iter()
        .map(|s| {
            let payload = serde_json::json!({
                "deal_id": s.deal, "product_id": s.product,
                "returned": orders::returned_json(&[(StockKey::Product(s.product), s.returned)]),
            });
            ("deal.settled", payload.to_string())
        })
        .collect();
    orders::insert_events(&mut tx, &events, now).await?;
    tx.commit().await.pg()?;
    Ok(settled)
}

/// See [`ReservationFence::abort_reservations`]: aborted where not committed first,
/// then the committed ones read back.
async fn abort_reservations(
    conn: &mut PgConnection,
    ids: &[uuid::Uuid],
) -> StoreResult<Vec<uuid::Uuid>> {
    let mut tx = conn.begin().await.pg()?;
    sqlx::query(
        "INSERT INTO reservations (id, committed) SELECT unnest($1::uuid[]), false \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(ids)
    .execute(&mut *tx)
    .await
    .pg()?;
    let committed: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT id FROM reservations WHERE id = ANY($1) AND committed")
            .bind(ids)
            .fetch_all(&mut *tx)
            .await
            .pg()?;
    tx.commit().await.pg()?;
    Ok(committed)
}
