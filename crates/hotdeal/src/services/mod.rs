//! The use cases of the storefront: what happens on sign-up, on opening a
//! deal, on placing and paying an order, on a coupon rush. They validate
//! against the rules of the domain, ask the ports for data and changes, and
//! return typed errors that the transport maps to the contract's codes.

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

pub use auth::{Registration, TokenPair};
pub use catalog::{NewDeal, NewProduct};
pub use coupons::NewCoupon;
pub use error::{Error, Result};
pub use events::RELAY_EVERY;
pub use idempotency::{Begun, FlightGuard as InFlightGuard, IdempotencyKey, InFlight};
pub use observe::{LiveCoupon, LiveDeal, WriterView, MAX_LIVE};
pub use orders::{PlaceOrder, RenderOrder};
pub use points::RenderCharge;
pub use waiting_room::{QueueSettings, QueueView, WaitingRoom};

use crate::model::{Coupon, Order};
use crate::ports::{
    Clock, CouponAdmission, Hold, IssueHold, IssueWrite, Issued, Ledger, OrderWrite,
    PasswordHasher, Placement, RunningKeys, StockAdmission, Store,
};
use batcher::Batcher;
use catalog_cache::CatalogCache;
use chrono::{DateTime, Duration, Utc};
use hotdeal_domain::{DealId, OrderId, ProductId, StockKey, UserId};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use tokens::TokenKeys;

/// The engines the storefront runs on.
pub struct Engines {
    pub store: Arc<dyn Store>,
    pub ledger: Arc<dyn Ledger>,
    pub admission: Arc<dyn StockAdmission>,
    pub coupon_admission: Arc<dyn CouponAdmission>,
    pub clock: Arc<dyn Clock>,
    pub hasher: Arc<dyn PasswordHasher>,
    /// Who waits for which waiting-room deal.
    pub queue: Arc<dyn crate::ports::QueueStore>,
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

/// Keys of answered orders kept in memory to tell a likely retry (about
/// 2 MB).
const ANSWERED_KEYS: usize = 65_536;

/// Payment deadlines, soonest on top.
type Deadlines = BinaryHeap<Reverse<(DateTime<Utc>, OrderId)>>;

/// Everything the storefront's use cases need, shared by all requests.
pub struct Storefront {
    pub store: Arc<dyn Store>,
    pub ledger: Arc<dyn Ledger>,
    /// Live stock counts and per-user holdings; every order passes here
    /// before the store.
    pub admission: Arc<dyn StockAdmission>,
    /// Who holds which coupon and how many are left.
    pub coupon_admission: Arc<dyn CouponAdmission>,
    /// Products and deals in memory, for the order path and hot reads.
    pub catalog: CatalogCache,
    /// Coupons in memory (their definitions; counts are in the tier).
    coupons: RwLock<HashMap<uuid::Uuid, Arc<Coupon>>>,
    /// Writes admitted orders in batches.
    orders: Batcher<OrderWrite, Placement, Hold>,
    /// Writes admitted coupon issues in batches.
    issues: Batcher<IssueWrite, Issued, IssueHold>,
    /// Payment deadlines of unpaid orders holding deal stock, soonest
    /// first: expiry pops what is due instead of scanning orders. Unused
    /// when the store finds due orders itself (`expiry_in_store`).
    deadlines: Mutex<Deadlines>,
    /// The store sweeps due orders from its own deadline index (a shared
    /// database: another instance may have placed them).
    expiry_in_store: bool,
    payment_window: Duration,
    /// Idempotency keys whose first request is still running.
    running: Arc<dyn RunningKeys>,
    /// The store refuses an order whose idempotency key has an answer
    /// already, so a keyed order need not look its key up first.
    keys_refused_on_write: bool,
    /// Keys of orders this process answered lately (see `idempotency`).
    answered: idempotency::AnsweredKeys,
    /// Published events, for in-process subscribers.
    pub events: tokio::sync::broadcast::Sender<crate::model::Event>,
    /// Set once a broker relay (NATS) owns the outbox: the in-process
    /// relay stands aside and unpublished events are never pruned.
    broker_relay: std::sync::atomic::AtomicBool,
    pub clock: Arc<dyn Clock>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub tokens: TokenKeys,
    /// Products a seller flagged as hot (`/hotdeal/start`). A hint;
    /// correctness never depends on it. A std Mutex: held for an insert or
    /// lookup, never across an await.
    hot: Mutex<HashSet<ProductId>>,
    /// Counters of this server, read by `/metrics` and the ops page.
    pub metrics: Arc<crate::observability::Metrics>,
    /// The waiting rooms in front of deals that have one.
    pub waiting_room: WaitingRoom,
    /// Keys of a shared tier this instance is seeding now.
    seeding: tier::Seeding,
}

impl Storefront {
    /// Builds the services and loads the catalogue, the admission tiers
    /// and the payment deadlines from the store. Must run inside a Tokio
    /// runtime (it starts the writer tasks).
    pub async fn start(e: Engines, tokens: TokenKeys, path: WritePath) -> Result<Self> {
        let snapshot = e.store.snapshot().await?;
        let catalog = CatalogCache::new();
        // Seeding only fills what the tier lacks: a shared tier keeps the
        // counts other instances are selling from. One that cannot be
        // reached now is seeded key by key on first use instead.
        for p in snapshot.products {
            let _ = e
                .admission
                .open(StockKey::Product(p.id), p.stock, &[])
                .await;
            catalog.put_product(p);
        }
        let mut held: HashMap<DealId, Vec<(UserId, i64)>> = HashMap::new();
        for (deal, user, units) in snapshot.held {
            held.entry(deal).or_default().push((user, units));
        }
        for d in snapshot.deals {
            if d.settled_at.is_none() {
                let users = held.remove(&d.id).unwrap_or_default();
                let _ = e
                    .admission
                    .open(StockKey::Deal(d.id), d.remaining_stock, &users)
                    .await;
            }
            catalog.put_deal(d);
        }
        let mut holders: HashMap<uuid::Uuid, Vec<_>> = HashMap::new();
        for (coupon, user, _) in e.ledger.coupon_holders().await? {
            holders.entry(coupon).or_default().push(user);
        }
        let mut coupons = HashMap::new();
        for c in e.ledger.coupons().await? {
            let held = holders.remove(&c.id).unwrap_or_default();
            let _ = e
                .coupon_admission
                .open_coupon(c.id, c.total_quantity, &held)
                .await;
            coupons.insert(c.id, Arc::new(c));
        }
        let deadlines = e
            .store
            .awaiting_payment()
            .await?
            .into_iter()
            .map(|(id, at)| Reverse((at, id)))
            .collect();

        let store = e.store.clone();
        let orders = Batcher::start(
            Box::new(move |writes: Vec<OrderWrite>| {
                let store = store.clone();
                Box::pin(async move {
                    let outcomes = store.place_orders(&writes).await;
                    (writes, outcomes)
                })
            }),
            tier::order_verdict,
            {
                let tier = e.admission.clone();
                Box::new(move |done| {
                    let tier = tier.clone();
                    Box::pin(async move { tier.settle(done).await })
                })
            },
            path.queue,
            path.max_batch,
        );
        let ledger = e.ledger.clone();
        let issues = Batcher::start(
            Box::new(move |writes: Vec<IssueWrite>| {
                let ledger = ledger.clone();
                Box::pin(async move {
                    let outcomes = ledger.issue_coupons(&writes).await;
                    (writes, outcomes)
                })
            }),
            tier::issue_verdict,
            {
                let tier = e.coupon_admission.clone();
                Box::new(move |done| {
                    let tier = tier.clone();
                    Box::pin(async move { tier.settle_issues(done).await })
                })
            },
            path.queue,
            path.max_batch,
        );
        let expiry_in_store = e.store.expires_from_store();
        let keys_refused_on_write = e.store.refuses_answered_keys();
        let waiting_room =
            WaitingRoom::new(e.queue, &tokens.derive("queue-token"), path.waiting_room);
        Ok(Self {
            store: e.store,
            ledger: e.ledger,
            admission: e.admission,
            coupon_admission: e.coupon_admission,
            catalog,
            coupons: RwLock::new(coupons),
            orders,
            issues,
            expiry_in_store,
            deadlines: Mutex::new(deadlines),
            payment_window: path.payment_window,
            running: e.running,
            keys_refused_on_write,
            answered: idempotency::AnsweredKeys::new(ANSWERED_KEYS),
            events: tokio::sync::broadcast::channel(1024).0,
            broker_relay: Default::default(),
            clock: e.clock,
            hasher: e.hasher,
            tokens,
            hot: Mutex::new(HashSet::new()),
            metrics: Arc::default(),
            waiting_room,
            seeding: Default::default(),
        })
    }

    /// Arms the payment deadline of a placed order.
    fn arm_deadline(&self, order: &Order) {
        if self.expiry_in_store {
            return;
        }
        if let Some(at) = order.pay_by {
            self.deadlines
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Reverse((at, order.id)));
        }
    }
}
