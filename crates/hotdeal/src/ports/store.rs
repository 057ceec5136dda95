//! The durable store: the source of truth for users, the catalogue and
//! orders. Every method that moves stock does it in one transaction with
//! conditional updates, so the store alone never oversells, whatever runs in
//! front of it.

use crate::model::{Deal, Order, Page, Paged, Product, ProductPatch, User};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hotdeal_domain::{DealId, OrderId, OrderStatus, ProductId, StockKey, UserId};
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("email already registered")]
    EmailExists,
    #[error("storage backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Outcome of a stock adjustment on a product.
#[derive(Debug)]
pub enum StockChange {
    Done(Product),
    NotFound,
    Insufficient { available: i64 },
}

/// Outcome of opening a deal.
#[derive(Debug)]
pub enum DealCreation {
    Created(Deal),
    ProductNotFound,
    Insufficient { available: i64 },
}

/// Outcome of placing an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Stock taken and the order stored as given.
    Placed,
    Insufficient {
        key: StockKey,
        requested: i64,
        available: i64,
    },
    DealNotActive(DealId),
    /// The user would hold more than the deal's per-user limit.
    LimitExceeded {
        deal: DealId,
        limit: i64,
        held: i64,
    },
}

/// Outcome of cancelling an order.
#[derive(Debug)]
pub enum Cancellation {
    /// Cancelled; `returned` says which stock got the units back (a deal's
    /// line goes to the product once the deal is settled).
    Cancelled {
        order: Box<Order>,
        returned: Vec<(StockKey, i64)>,
    },
    NotFound,
    InvalidState(OrderStatus),
}

/// An admitted order on its way to the store, with the units it takes.
#[derive(Debug, Clone)]
pub struct OrderWrite {
    pub order: Order,
    pub demand: BTreeMap<StockKey, i64>,
}

/// The catalogue as stored: every product and deal, and the units each
/// user holds of unsettled deals with a per-user limit.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub products: Vec<Product>,
    pub deals: Vec<Deal>,
    pub held: Vec<(DealId, UserId, i64)>,
}

/// A deal that ended and gave its unsold units back to its product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    pub deal: DealId,
    pub product: ProductId,
    pub returned: i64,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    // --- users and sessions
    async fn insert_user(&self, user: &User) -> StoreResult<()>;
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>>;
    async fn insert_refresh_token(
        &self,
        token_hash: &[u8; 32],
        user: UserId,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Marks a refresh token used and returns its user, if it was unused and
    /// unexpired. Exactly one of two concurrent calls can succeed.
    async fn consume_refresh_token(
        &self,
        token_hash: &[u8; 32],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<UserId>>;

    // --- catalogue
    async fn insert_product(&self, product: &Product) -> StoreResult<()>;
    async fn product(&self, id: ProductId) -> StoreResult<Option<Product>>;
    async fn products(&self, category: Option<&str>, page: Page) -> StoreResult<Paged<Product>>;
    async fn update_product(
        &self,
        id: ProductId,
        patch: &ProductPatch,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Product>>;
    /// Adds `delta` (negative removes) to a product's free stock, refusing to
    /// go below zero.
    async fn adjust_stock(
        &self,
        id: ProductId,
        delta: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<StockChange>;

    // --- deals
    /// Creates the deal and moves `deal_stock` units from the product to it.
    async fn insert_deal(&self, deal: &Deal) -> StoreResult<DealCreation>;
    /// Returns the unsold units of every deal that ended at or before `now`
    /// to its product.
    async fn settle_ended_deals(&self, now: DateTime<Utc>) -> StoreResult<Vec<Settled>>;
    /// Everything the in-memory catalogue and admission tier start from.
    async fn snapshot(&self) -> StoreResult<Snapshot>;

    // --- orders
    /// Commits a batch of admitted orders: takes their stock and inserts
    /// them. One answer per order, in order; a refusal or failure of one
    /// order never affects another. Deal stock is only taken from unsettled
    /// deals, within the deal's per-user limit.
    async fn place_orders(&self, batch: &[OrderWrite]) -> Vec<StoreResult<Placement>>;
    async fn order(&self, id: OrderId) -> StoreResult<Option<Order>>;
    async fn orders_of(
        &self,
        user: UserId,
        status: Option<OrderStatus>,
        page: Page,
    ) -> StoreResult<Paged<Order>>;
    /// Cancels an order that can still be cancelled and returns its units:
    /// to the deal while it is unsettled, else to the product.
    async fn cancel_order(
        &self,
        id: OrderId,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<Cancellation>;
}
