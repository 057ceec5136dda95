//! The use cases of the storefront: what happens on sign-up, on opening a
//! deal, on placing and paying an order, on a coupon rush. They validate
//! against the rules of the domain, ask the ports for data and changes, and
//! return typed errors that the transport maps to the contract's codes.
//!
//! One service per context, each holding only the ports it uses:
//!
//! - [`Accounts`] (auth): the [`UserStore`](crate::ports::UserStore), the
//!   password hasher, the token keys.
//! - [`Catalogue`] (product): the [`CatalogStore`](crate::ports::CatalogStore),
//!   the stock tier ([`StockAdmission`]), the catalogue in memory, the
//!   reservation fence for the stock tier's reconciler.
//! - [`Ordering`] (order): the [`OrderStore`](crate::ports::OrderStore), the
//!   order writer, the payment deadlines and the waiting rooms; it reads
//!   products and deals and holds stock through an `Arc<Catalogue>`, and
//!   reads coupon definitions through an `Arc<CouponBook>`.
//! - [`Coupons`] (coupon): the coupon tier ([`CouponAdmission`]), the issue
//!   writer and the [`CouponBook`] (definitions on the
//!   [`CouponLedger`](crate::ports::CouponLedger)).
//! - [`Points`] (point): the [`PointsLedger`](crate::ports::PointsLedger).
//!
//! Shared by every role: the token check ([`Authenticator`]), the
//! idempotency keys ([`Idempotency`]), the event relay ([`Events`]) and the
//! metrics. [`Storefront`] composes the services of the roles a process
//! runs and nothing else: a process with `--role order` builds the
//! catalogue (the order path reads it and holds stock through it; with the
//! product service in another process, both over gRPC), the
//! coupon book (definitions, for discounts) and the order service, but no
//! accounts, no coupon tier or issue writer, no points.

mod auth;
pub mod batcher;
mod catalog;
pub mod catalog_cache;
mod coupons;
mod error;
mod events;
mod idempotency;
mod observe;
mod orders;
mod points;
mod tier;
pub mod tokens;
pub mod waiting_room;

pub use auth::{Accounts, Authenticator, Registration, TokenPair};
pub use catalog::{Catalogue, NewDeal, NewProduct};
pub use coupons::{CouponBook, Coupons, NewCoupon};
pub use error::{Error, Result};
pub use events::{Events, RELAY_EVERY};
pub use idempotency::{Begun, FlightGuard as InFlightGuard, Idempotency, IdempotencyKey, InFlight};
pub use observe::{LiveCoupon, LiveDeal, WriterView, MAX_LIVE};
pub use orders::{Ordering, PlaceOrder, RenderOrder};
pub use points::{Points, RenderCharge};
pub use waiting_room::{QueueSettings, QueueView, WaitingRoom};

use crate::config::{Role, Roles};
use crate::observability::metrics::Metrics;
use crate::ports::events::{reload_for, EventHandler, HandleError, Reload};
use crate::ports::hasher::HasherStats;
use crate::ports::{
    CatalogReads, CatalogStore, Clock, CouponAdmission, CouponLedger, IdempotencyAnswers, Ledger,
    OrderStore, Outbox, PasswordHasher, PointsLedger, QueueStore, ReservationFence, RunningKeys,
    StockAdmission, Store, StoreHealth, UserStore,
};
use async_trait::async_trait;
use chrono::Duration;
use std::sync::Arc;
use tokens::TokenKeys;

/// The store and ledger as the services hold them: one handle per part.
/// Both backends implement every part on one connection pool, so this
/// costs a pointer per part; what it buys is that each service names the
/// part it uses and cannot reach the others.
#[derive(Clone)]
pub struct StoreParts {
    pub health: Arc<dyn StoreHealth>,
    pub users: Arc<dyn UserStore>,
    pub catalog: Arc<dyn CatalogStore>,
    pub orders: Arc<dyn OrderStore>,
    pub fence: Arc<dyn ReservationFence>,
    pub points: Arc<dyn PointsLedger>,
    pub coupons: Arc<dyn CouponLedger>,
    pub answers: Arc<dyn IdempotencyAnswers>,
    pub outbox: Arc<dyn Outbox>,
}

impl StoreParts {
    /// The parts of one store that is also the ledger (both backends are).
    pub fn of<S: Store + Ledger>(store: Arc<S>) -> Self {
        Self {
            health: store.clone(),
            users: store.clone(),
            catalog: store.clone(),
            orders: store.clone(),
            fence: store.clone(),
            points: store.clone(),
            coupons: store.clone(),
            answers: store.clone(),
            outbox: store,
        }
    }
}

/// The engines the storefront runs on. The wiring opens them once per
/// process; [`Storefront::start`] hands each service the parts it uses.
pub struct Engines {
    pub store: StoreParts,
    pub admission: Arc<dyn StockAdmission>,
    /// The product service's catalogue in another process (over gRPC),
    /// for an order role without the product role: products and deals
    /// are read from it, not from the store.
    pub remote_catalogue: Option<Arc<dyn CatalogReads>>,
    pub coupon_admission: Arc<dyn CouponAdmission>,
    pub clock: Arc<dyn Clock>,
    /// Only the auth role hashes passwords: `None` elsewhere.
    pub hasher: Option<Arc<dyn PasswordHasher>>,
    /// Who waits for which waiting-room deal.
    pub queue: Arc<dyn QueueStore>,
    /// Idempotency keys running now, as every instance sees them.
    pub running: Arc<dyn RunningKeys>,
}

/// Tuning of the write paths.
#[derive(Clone, Copy, Debug)]
pub struct WritePath {
    /// Changes waiting for the writer before new ones are refused (503).
    pub queue: usize,
    /// Most changes committed in one transaction.
    pub max_batch: usize,
    /// How long an unpaid order may hold deal stock.
    pub payment_window: Duration,
    /// The waiting rooms' rules.
    pub waiting_room: QueueSettings,
}

/// The services of the roles one process runs. A context this process
/// does not serve is `None`; the HTTP router mounts only the routes of the
/// services present, and the housekeeping runs only their jobs.
pub struct Storefront {
    /// What this process runs.
    pub roles: Roles,
    /// Sign-up, login and sessions (the auth role).
    pub accounts: Option<Arc<Accounts>>,
    /// Products, stock and deals: the product role's, and the order role's
    /// to read (an order is priced and held against it).
    pub catalogue: Option<Arc<Catalogue>>,
    /// Orders and the waiting rooms (the order role).
    pub ordering: Option<Arc<Ordering>>,
    /// Coupon definitions, for the coupon role and for discounts on orders.
    pub coupon_book: Option<Arc<CouponBook>>,
    /// Coupon issues (the coupon role).
    pub coupons: Option<Arc<Coupons>>,
    /// Balances and charges (the point role).
    pub points: Option<Arc<Points>>,
    /// Every route checks the bearer token the auth role signed.
    pub auth: Arc<Authenticator>,
    /// Idempotency keys: orders and payments, point charges.
    pub idempotency: Arc<Idempotency>,
    /// Committed events: the outbox relay and the in-process bus. Every
    /// role writes events (a sign-up, a charge, an order).
    pub events: Arc<Events>,
    /// Whether the store takes writes (every role's health route).
    pub health: Arc<dyn StoreHealth>,
    /// Counters of this server, read by `/metrics` and the ops page.
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
}

impl Storefront {
    /// Builds the services `roles` need and loads what they keep in
    /// memory (the catalogue, coupon definitions, payment deadlines) and
    /// the admission tiers from the store. Must run inside a Tokio runtime
    /// (it starts the writer tasks).
    pub async fn start(
        e: Engines,
        tokens: TokenKeys,
        path: WritePath,
        roles: Roles,
    ) -> Result<Self> {
        let metrics: Arc<Metrics> = Arc::default();
        let (product, order, coupon) = (
            roles.contains(Role::Product),
            roles.contains(Role::Order),
            roles.contains(Role::Coupon),
        );
        let store = e.store;
        let accounts = match (&e.hasher, roles.contains(Role::Auth)) {
            (Some(hasher), true) => Some(Arc::new(Accounts::new(
                store.users.clone(),
                hasher.clone(),
                e.clock.clone(),
                tokens.clone(),
            ))),
            _ => None,
        };
        // The order role reads the catalogue and holds stock through it.
        let catalogue = if product || order {
            let catalogue = Catalogue::start(
                store.catalog.clone(),
                e.remote_catalogue.clone().filter(|_| !product),
                store.fence.clone(),
                e.admission.clone(),
                e.clock.clone(),
                metrics.clone(),
            )
            .await?;
            Some(Arc::new(catalogue))
        } else {
            None
        };
        // The order role reads coupon definitions to price a discount.
        let coupon_book = if coupon || order {
            Some(Arc::new(CouponBook::load(store.coupons.clone()).await?))
        } else {
            None
        };
        let idempotency = Arc::new(Idempotency::new(
            e.running,
            store.answers.clone(),
            store.orders.refuses_answered_keys(),
            e.clock.clone(),
        ));
        let coupons = match (&coupon_book, coupon) {
            (Some(book), true) => Some(Arc::new(
                Coupons::start(
                    book.clone(),
                    store.coupons.clone(),
                    store.users.clone(),
                    store.fence.clone(),
                    e.coupon_admission,
                    e.clock.clone(),
                    metrics.clone(),
                    path,
                )
                .await?,
            )),
            _ => None,
        };
        let ordering = match (&catalogue, &coupon_book, order) {
            (Some(catalogue), Some(book), true) => {
                let key = tokens.derive("queue-token");
                let waiting_room = WaitingRoom::new(e.queue, &key, path.waiting_room);
                let ordering = Ordering::start(
                    store.orders.clone(),
                    catalogue.clone(),
                    book.clone(),
                    idempotency.clone(),
                    waiting_room,
                    e.clock.clone(),
                    metrics.clone(),
                    path,
                )
                .await?;
                Some(Arc::new(ordering))
            }
            _ => None,
        };
        let points = roles
            .contains(Role::Point)
            .then(|| Arc::new(Points::new(store.points.clone(), e.clock.clone())));
        Ok(Self {
            roles,
            accounts,
            catalogue,
            ordering,
            coupon_book,
            coupons,
            points,
            auth: Arc::new(Authenticator::new(tokens, e.clock.clone())),
            idempotency,
            events: Arc::new(Events::new(store.outbox, e.admission, e.clock.clone())),
            health: store.health,
            metrics,
            clock: e.clock,
        })
    }

    /// The password hasher's load, when this process hashes.
    pub fn hasher_stats(&self) -> Option<HasherStats> {
        self.accounts.as_ref().and_then(|a| a.hasher_stats())
    }
}

/// The catalogue following the event stream: each change is read again
/// from the store (the event says what changed, the store what it is now),
/// which is idempotent, so redelivery or replay is harmless. A process
/// keeps only the parts it serves, and follows only those.
#[async_trait]
impl EventHandler for Storefront {
    async fn handle(&self, topic: &str, payload: &[u8]) -> std::result::Result<(), HandleError> {
        let transient = |e: Error| HandleError::Transient(e.to_string());
        match reload_for(topic, payload)? {
            None => {}
            Some(Reload::Product(id)) => {
                if let Some(c) = &self.catalogue {
                    c.reload_product(id).await.map_err(transient)?;
                    // Stock figures live outside the entry: pages showing
                    // them must be rendered again even if no field changed.
                    c.catalog.touch();
                }
            }
            Some(Reload::Deal { deal, product }) => {
                if let Some(c) = &self.catalogue {
                    if c.reload_deal(deal).await.map_err(transient)?.is_none() {
                        c.reload_product(product).await.map_err(transient)?;
                    }
                    c.catalog.touch();
                }
            }
            Some(Reload::Coupon(id)) => {
                if let Some(book) = &self.coupon_book {
                    book.reload(id).await.map_err(transient)?;
                }
            }
        }
        Ok(())
    }
}
