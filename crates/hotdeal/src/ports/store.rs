//! The durable store: the source of truth for users, the catalogue and
//! orders. Every method that moves stock does it in one transaction with
//! conditional updates, so the store alone never oversells, whatever runs in
//! front of it.

use crate::model::{Deal, IdempotentAnswer, Order, Page, Paged, Product, ProductPatch, User};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hotdeal_domain::{DealId, OrderId, OrderStatus, PaymentStatus, ProductId, StockKey, UserId};
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("email already registered")]
    EmailExists,
    /// The write names a user the store does not have (a token signed for
    /// another database).
    #[error("no such user")]
    UnknownUser,
    /// The storage cannot take writes now (disk full, I/O error, the
    /// database file gone): nothing was written; retry later.
    #[error("storage unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Another writer got in the way (a lock not granted in time, a
    /// serialization failure, a deadlock): nothing was written; the same
    /// call may succeed if retried.
    #[error("conflicting write")]
    Conflict(#[source] Box<dyn std::error::Error + Send + Sync>),
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
    /// Paying with points, the balance is short.
    InsufficientPoints {
        balance: i64,
    },
    /// The coupon is not an unused coupon of this user.
    CouponNotUsable,
    /// The order's reservation was aborted by the reconciler (it outlived
    /// its deadline) before this write reached the store: nothing written.
    Aborted,
    /// The write's idempotency key has an answer stored already (the
    /// request repeats one answered before): nothing written. Only a store
    /// that says [`OrderStore::refuses_answered_keys`] answers this.
    KeyAnswered,
}

/// Outcome of cancelling an order.
#[derive(Debug)]
pub enum Cancellation {
    /// Cancelled; `returned` says which stock got the units back (a deal's
    /// line goes to the product once the deal is settled). Paid orders were
    /// refunded and a used coupon given back in the same transaction.
    Cancelled {
        order: Box<Order>,
        returned: Vec<(StockKey, i64)>,
    },
    NotFound,
    InvalidState(OrderStatus),
    /// `CancelBy::Expiry` on an order that was paid, cancelled, or not due.
    NotDue,
}

/// An admitted order on its way to the store, with the units it takes.
/// A paid order (`payment_status: paid`) takes `total_amount` points; an
/// order with a `coupon_id` uses the user's coupon; `answer` is stored as
/// the reply to the request's idempotency key, all in one transaction.
#[derive(Debug, Clone)]
pub struct OrderWrite {
    pub order: Order,
    pub demand: BTreeMap<StockKey, i64>,
    pub answer: Option<IdempotentAnswer>,
}

/// Who cancels an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelBy {
    /// The buyer: any order not yet shipped.
    Buyer,
    /// The payment window passed: only if still unpaid and due.
    Expiry,
}

/// Outcome of paying an order later.
#[derive(Debug)]
pub enum Payment {
    Paid(Box<Order>),
    NotFound,
    /// The payment window passed (or the order was cancelled for it).
    Expired,
    InvalidState(&'static str),
    InsufficientPoints {
        balance: i64,
    },
}

impl Payment {
    /// Why `user` may not pay `order` at `now`, if they may not: the one
    /// rule every store applies, before its guarded update and again to
    /// explain a guarded update that changed nothing.
    pub fn refusal(order: &Order, user: UserId, now: DateTime<Utc>) -> Option<Payment> {
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

/// An idempotency key to store with a change, and how to render the
/// answer from the changed resource once the transaction knows it.
pub struct IdempotencyWrite<'a, T> {
    pub user_id: UserId,
    pub key: &'a str,
    pub request_hash: [u8; 32],
    pub status: u16,
    pub render: &'a (dyn Fn(&T) -> Vec<u8> + Send + Sync),
}

impl<T> IdempotencyWrite<'_, T> {
    pub fn answer(&self, resource: &T) -> IdempotentAnswer {
        IdempotentAnswer {
            user_id: self.user_id,
            key: self.key.to_owned(),
            request_hash: self.request_hash,
            status: self.status,
            body: (self.render)(resource),
        }
    }
}

/// The store, split by the context that uses it: each service holds only
/// the part it reads and writes ([`UserStore`], [`CatalogStore`],
/// [`OrderStore`]), so a process serving one role never holds the rest.
/// The adapters implement every part on one connection pool; [`Store`] is
/// all of them: what an adapter is, and what the wiring opens.
///
/// An adapter answers a write as done only after it committed durably; a
/// write that may not have committed is an error, never a success.
///
/// An adapter may not rely on its callers being serialised: several
/// instances, or several connections of one, call it at once. Every state
/// change is one guarded statement (`UPDATE … WHERE <the state it expects>
/// RETURNING …`) or happens after the rows it depends on are locked, so two
/// racing callers can never both win (two cancels, a payment and an
/// expiry, two settlements of one deal); a write that lost a race to a lock
/// answers [`StoreError::Conflict`] and may be retried.
pub trait Store: StoreHealth + UserStore + CatalogStore + ReservationFence + OrderStore {}

impl<T> Store for T where T: StoreHealth + UserStore + CatalogStore + ReservationFence + OrderStore {}

/// Whether the store takes writes now: every role's health route asks it.
pub trait StoreHealth: Send + Sync + 'static {
    /// False after a storage failure, until the store has committed a write
    /// again; writes meanwhile fail fast with [`StoreError::Unavailable`].
    fn writable(&self) -> bool;
}

/// Users and their sessions (the auth context).
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
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
    /// Makes the user's unused refresh tokens unusable: the one whose hash
    /// is given, or all of them. Returns how many were revoked.
    async fn revoke_refresh_tokens(
        &self,
        user: UserId,
        token_hash: Option<&[u8; 32]>,
        now: DateTime<Utc>,
    ) -> StoreResult<u64>;
}

/// One product or deal at a time: what the order context reads of the
/// catalogue. The store answers it, and so does a product service in
/// another process (over gRPC), for an order role that runs without the
/// product role.
#[async_trait]
pub trait CatalogReads: Send + Sync + 'static {
    async fn product(&self, id: ProductId) -> StoreResult<Option<Product>>;
    /// One deal (a cache miss reads through to it).
    async fn deal(&self, id: DealId) -> StoreResult<Option<Deal>>;
}

/// Products, their stock and deals (the catalogue context).
#[async_trait]
pub trait CatalogStore: CatalogReads {
    async fn insert_product(&self, product: &Product) -> StoreResult<()>;
    async fn products(&self, category: Option<&str>, page: Page) -> StoreResult<Paged<Product>>;
    async fn update_product(
        &self,
        id: ProductId,
        patch: &ProductPatch,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Product>>;
    /// Adds `delta` (negative removes) to a product's free stock, refusing to
    /// go below zero.
    /// `adjustment` names the change in its committed event
    /// (`stock.adjusted`), so an increase reaches a shared tier once.
    async fn adjust_stock(
        &self,
        id: ProductId,
        delta: i64,
        adjustment: uuid::Uuid,
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
    /// What a stock key holds now, to seed a shared tier that lacks it:
    /// the units, and for a deal the units each user holds. `None` for an
    /// unknown product or a settled deal.
    /// A store no shared tier runs in front of (the embedded one) keeps
    /// no fence and need not answer.
    async fn stock_seed(&self, _key: StockKey) -> StoreResult<Option<(i64, Vec<(UserId, i64)>)>> {
        Err(no_shared_tier())
    }
}

/// The fence of a shared tier's reservations. Orders and coupon issues
/// record their ids in it as they commit; the stock tier's reconciler
/// (catalogue) and the coupon tier's (coupons) abort the rest, so it is a
/// part of its own rather than any one context's.
#[async_trait]
pub trait ReservationFence: Send + Sync + 'static {
    /// Records `ids` as aborted unless their writes committed first, and
    /// returns those that did commit. A write commits only if it records
    /// its id as committed first (in its own transaction), so exactly one
    /// side wins for each id.
    async fn abort_reservations(&self, _ids: &[uuid::Uuid]) -> StoreResult<Vec<uuid::Uuid>> {
        Err(no_shared_tier())
    }
}

/// Orders: placing, reading, cancelling, paying and expiring them (the
/// order context).
#[async_trait]
pub trait OrderStore: Send + Sync + 'static {
    /// Commits a batch of admitted orders: takes their stock and inserts
    /// them. One answer per order, in order; a refusal or failure of one
    /// order never affects another. Deal stock is only taken from unsettled
    /// deals, within the deal's per-user limit.
    async fn place_orders(&self, batch: &[OrderWrite]) -> Vec<StoreResult<Placement>>;
    /// Whether [`OrderStore::place_orders`] refuses an order whose idempotency
    /// key has an answer stored already ([`Placement::KeyAnswered`], in the
    /// order's own transaction), so a keyed order may run before its key is
    /// looked up and the stored answer be read only when it is refused. A
    /// store that says no may store a second answer or fail the write: the
    /// key is looked up before the order runs.
    fn refuses_answered_keys(&self) -> bool {
        false
    }
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
        by: CancelBy,
        now: DateTime<Utc>,
    ) -> StoreResult<Cancellation>;
    /// Pays an unpaid, unexpired order of `user` from their points.
    async fn pay_order(
        &self,
        id: OrderId,
        user: UserId,
        now: DateTime<Utc>,
        idempotency: Option<&IdempotencyWrite<'_, Order>>,
    ) -> StoreResult<Payment>;
    /// Unpaid orders with a payment deadline (to arm the expiry timers).
    async fn awaiting_payment(&self) -> StoreResult<Vec<(OrderId, DateTime<Utc>)>>;

    /// Whether payment expiry is driven by [`OrderStore::expire_due`] alone. A
    /// store that several instances share says yes: the due orders are
    /// found in the store, so no instance needs timers for orders another
    /// one placed. A store that says no is swept from timers armed from
    /// [`OrderStore::awaiting_payment`] and at placement.
    fn expires_from_store(&self) -> bool {
        false
    }

    /// Cancels up to `limit` unpaid orders whose payment window passed at
    /// `now` (as [`CancelBy::Expiry`]); returns the cancellations. Safe to
    /// run from several places at once: an order is cancelled once.
    async fn expire_due(&self, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<Cancellation>>;
}

/// The answer of a store that no shared tier may run in front of.
pub fn no_shared_tier() -> StoreError {
    StoreError::Backend("this store runs with the in-process tier only".into())
}
