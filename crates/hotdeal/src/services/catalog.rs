//! Products, stock and deals (the catalogue context).
//!
//! Reads come from the in-memory catalogue with live stock from the
//! admission tier; writes go to the store first and then update both.
//!
//! The order context holds an `Arc<Catalogue>` too: an order is priced
//! from the catalogue in memory (reading through to the store on a miss)
//! and its units are held in, and given back to, the stock tier through
//! it. So a process with the order role builds a catalogue even without
//! the product role; it serves none of the catalogue's routes, and when
//! the product service runs in another process it reads products and deals
//! from it (over gRPC, [`CatalogReads`]) instead of loading the store's.

use super::catalog_cache::CatalogCache;
use super::tier::Seeding;
use super::{Error, Result};
use crate::model::{Deal, DealView, Page, Paged, Product, ProductPatch};
use crate::observability::metrics::Metrics;
use crate::ports::{
    CatalogReads, CatalogStore, Clock, DealCreation, Increase, Refused, ReservationFence, Snapshot,
    StockAdmission, StockChange, Verdict,
};
use chrono::{DateTime, Utc};
use hotdeal_domain::{DealId, DealStatus, DealWindow, ProductId, StockKey, UserId};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// A validated new product.
#[derive(Debug, Clone)]
pub struct NewProduct {
    pub name: String,
    pub description: Option<String>,
    pub price: i64,
    pub stock: i64,
    pub category: Option<String>,
    pub image_url: Option<String>,
}

/// A validated new deal.
#[derive(Debug, Clone)]
pub struct NewDeal {
    pub product_id: ProductId,
    pub deal_price: i64,
    pub deal_stock: i64,
    pub per_user_limit: Option<i64>,
    pub window: DealWindow,
    /// Orders need an admitted queue token.
    pub waiting_room: bool,
    /// The deal's own admission rate (users/s); `None` = server default.
    pub queue_admit_per_sec: Option<i64>,
}

/// The catalogue context: products, their stock and deals.
pub struct Catalogue {
    pub(super) store: Arc<dyn CatalogStore>,
    /// Where a product or deal this process has not seen, or has heard
    /// changed, is read: the store, or the product service's catalogue
    /// over gRPC in an order process without the product role.
    reads: Arc<dyn CatalogReads>,
    /// The shared tier's reservation fence, for the stock reconciler.
    pub(super) fence: Arc<dyn ReservationFence>,
    /// Live stock counts and per-user holdings; every order passes here
    /// before the store.
    pub admission: Arc<dyn StockAdmission>,
    /// Products and deals in memory, for the order path and hot reads.
    pub catalog: CatalogCache,
    /// Products a seller flagged as hot (`/hotdeal/start`). A hint;
    /// correctness never depends on it. A std Mutex: held for an insert or
    /// lookup, never across an await.
    hot: Mutex<HashSet<ProductId>>,
    /// Stock keys of a shared tier this instance is seeding now.
    pub(super) seeding: Seeding,
    pub(super) clock: Arc<dyn Clock>,
    /// The tier audit records its drift here.
    pub(super) metrics: Arc<Metrics>,
}

impl Catalogue {
    /// Loads the catalogue and opens its stock in the tier. Seeding only
    /// fills what the tier lacks: a shared tier keeps the counts other
    /// instances are selling from. One that cannot be reached now is
    /// seeded key by key on first use instead.
    ///
    /// With a `remote` catalogue (the product service's, for an order
    /// process without the product role) nothing is loaded: the product
    /// service keeps the catalogue and the stock, and this one reads each
    /// product and deal from it when first needed, and again when an
    /// event says it changed.
    pub async fn start(
        store: Arc<dyn CatalogStore>,
        remote: Option<Arc<dyn CatalogReads>>,
        fence: Arc<dyn ReservationFence>,
        admission: Arc<dyn StockAdmission>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Result<Self> {
        let catalog = CatalogCache::new();
        let (reads, snapshot) = match remote {
            Some(remote) => (remote, Snapshot::default()),
            None => (
                store.clone() as Arc<dyn CatalogReads>,
                store.snapshot().await?,
            ),
        };
        for p in snapshot.products {
            let _ = admission.open(StockKey::Product(p.id), p.stock, &[]).await;
            catalog.put_product(p);
        }
        let mut held: HashMap<DealId, Vec<(UserId, i64)>> = HashMap::new();
        for (deal, user, units) in snapshot.held {
            held.entry(deal).or_default().push((user, units));
        }
        for d in snapshot.deals {
            if d.settled_at.is_none() {
                let users = held.remove(&d.id).unwrap_or_default();
                let _ = admission
                    .open(StockKey::Deal(d.id), d.remaining_stock, &users)
                    .await;
            }
            catalog.put_deal(d);
        }
        Ok(Self {
            store,
            reads,
            fence,
            admission,
            catalog,
            hot: Mutex::new(HashSet::new()),
            seeding: Seeding::default(),
            clock,
            metrics,
        })
    }

    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn create_product(&self, seller: UserId, p: NewProduct) -> Result<Product> {
        let now = self.clock.now();
        let product = Product {
            id: ProductId::new(),
            seller_id: seller,
            name: p.name,
            description: p.description,
            price: p.price,
            stock: p.stock,
            category: p.category,
            image_url: p.image_url,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_product(&product).await?;
        // A tier that cannot take it now seeds it from the store on the
        // first order instead.
        let _ = self
            .admission
            .open(StockKey::Product(product.id), product.stock, &[])
            .await;
        self.catalog.put_product(product.clone());
        Ok(product)
    }

    /// A product with its live stock.
    pub async fn product(&self, id: ProductId) -> Result<Product> {
        let cached = self.catalog_product(id).await?.ok_or(Error::NotFound)?;
        Ok(self.live_product(&cached))
    }

    /// A product from the in-memory catalogue, or read through from the
    /// store when this instance has not seen it yet (another instance
    /// created it, and its event is still on the way). Only found products
    /// are cached, so asking for ids that do not exist costs a read each
    /// time but never memory.
    pub async fn catalog_product(&self, id: ProductId) -> Result<Option<Arc<Product>>> {
        match self.catalog.product(id) {
            Some(p) => Ok(Some(p)),
            None => self.reload_product(id).await,
        }
    }

    /// A deal from the in-memory catalogue, or read through from the store
    /// (as [`Catalogue::catalog_product`]).
    pub async fn catalog_deal(&self, id: DealId) -> Result<Option<Arc<Deal>>> {
        match self.catalog.deal(id) {
            Some(d) => Ok(Some(d)),
            None => Ok(self.reload_deal(id).await?.map(|(d, _)| d)),
        }
    }

    /// Reads a product from the store into the catalogue (bumping its
    /// epoch, so cached pages are rendered again); `None` if it does not
    /// exist. A copy older than the cached one (a read that raced a newer
    /// write) is not put back.
    pub async fn reload_product(&self, id: ProductId) -> Result<Option<Arc<Product>>> {
        let Some(fresh) = self.reads.product(id).await? else {
            return Ok(None);
        };
        if let Some(cached) = self.catalog.product(id) {
            if cached.updated_at > fresh.updated_at {
                return Ok(Some(cached));
            }
        }
        let fresh = Arc::new(fresh);
        self.catalog.put_product((*fresh).clone());
        Ok(Some(fresh))
    }

    /// Reads a deal and its product from the store into the catalogue (a
    /// new deal, a settled one); `None` if the deal does not exist.
    pub async fn reload_deal(&self, id: DealId) -> Result<Option<(Arc<Deal>, Arc<Product>)>> {
        let Some(deal) = self.reads.deal(id).await? else {
            return Ok(None);
        };
        // The product first: a deal is listed only with its product.
        let Some(product) = self.reload_product(deal.product_id).await? else {
            return Ok(None);
        };
        let deal = Arc::new(deal);
        self.catalog.put_deal((*deal).clone());
        Ok(Some((deal, product)))
    }

    fn live_product(&self, p: &Product) -> Product {
        let mut p = p.clone();
        if let Some((units, changed_at)) = self.admission.available(StockKey::Product(p.id)) {
            p.stock = units;
            p.updated_at = p.updated_at.max(changed_at);
        }
        p
    }

    /// A deal with its live remaining units (0 once settled).
    fn live_deal(&self, d: &Deal) -> Deal {
        let mut d = d.clone();
        d.remaining_stock = match self.admission.available(StockKey::Deal(d.id)) {
            Some((units, _)) => units,
            // A settled deal is untracked and has none; a shared tier's
            // count not read yet shows the store's.
            None if d.settled_at.is_some() => 0,
            None => d.remaining_stock,
        };
        d
    }

    pub async fn products(&self, category: Option<&str>, page: Page) -> Result<Paged<Product>> {
        let mut listed = self.store.products(category, page).await?;
        for p in &mut listed.items {
            *p = self.live_product(p);
        }
        Ok(listed)
    }

    /// The product, if `seller` owns it.
    async fn owned_product(&self, seller: UserId, id: ProductId) -> Result<Product> {
        let product = self.product(id).await?;
        if product.seller_id != seller {
            return Err(Error::Forbidden);
        }
        Ok(product)
    }

    pub async fn update_product(
        &self,
        seller: UserId,
        id: ProductId,
        patch: ProductPatch,
    ) -> Result<Product> {
        self.owned_product(seller, id).await?;
        let updated = self
            .store
            .update_product(id, &patch, self.clock.now())
            .await?;
        let updated = updated.ok_or(Error::NotFound)?;
        self.catalog.put_product(updated.clone());
        Ok(self.live_product(&updated))
    }

    pub async fn adjust_stock(&self, seller: UserId, id: ProductId, delta: i64) -> Result<Product> {
        self.owned_product(seller, id).await?;
        let key = StockKey::Product(id);
        // Units removed are taken from the tier first, so no order can be
        // admitted against them meanwhile.
        let adjustment = Uuid::now_v7();
        let taken = if delta < 0 {
            let demand = BTreeMap::from([(key, -delta)]);
            Some(self.hold_units(adjustment, seller, &demand, &[]).await?)
        } else {
            None
        };
        let change = self
            .store
            .adjust_stock(id, delta, adjustment, self.clock.now())
            .await;
        match change {
            Ok(StockChange::Done(p)) => {
                if let Some(hold) = taken {
                    self.admission.settle(vec![(hold, Verdict::Commit)]).await;
                } else {
                    let increase = Increase {
                        key,
                        units: delta,
                        unclaim: None,
                    };
                    self.give_back(&adjustment.to_string(), &[increase]).await;
                }
                self.catalog.touch();
                Ok(self.live_product(&p))
            }
            other => {
                if let Some(hold) = taken {
                    self.admission.settle(vec![(hold, Verdict::Abort)]).await;
                }
                match other? {
                    StockChange::Done(_) | StockChange::NotFound => Err(Error::NotFound),
                    StockChange::Insufficient { available } => Err(refused(Refused::Stock {
                        key,
                        requested: -delta,
                        available,
                    })),
                }
            }
        }
    }

    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn create_deal(&self, seller: UserId, d: NewDeal) -> Result<DealView> {
        let product = self
            .catalog_product(d.product_id)
            .await?
            .ok_or(Error::ProductNotFound)?;
        if product.seller_id != seller {
            return Err(Error::Forbidden);
        }
        let deal = Deal {
            id: DealId::new(),
            product_id: d.product_id,
            deal_price: d.deal_price,
            deal_stock: d.deal_stock,
            remaining_stock: d.deal_stock,
            per_user_limit: d.per_user_limit,
            window: d.window,
            settled_at: None,
            created_at: self.clock.now(),
            waiting_room: d.waiting_room,
            queue_admit_per_sec: d.queue_admit_per_sec,
        };
        let product_key = StockKey::Product(d.product_id);
        let demand = BTreeMap::from([(product_key, d.deal_stock)]);
        let taken = self.hold_units(deal.id.0, seller, &demand, &[]).await?;
        match self.store.insert_deal(&deal).await {
            Ok(DealCreation::Created(_)) => {
                self.admission.settle(vec![(taken, Verdict::Commit)]).await;
                let _ = self
                    .admission
                    .open(StockKey::Deal(deal.id), deal.deal_stock, &[])
                    .await;
                self.catalog.put_deal(deal.clone());
                Ok(DealView {
                    deal,
                    product: self.live_product(&product),
                })
            }
            other => {
                self.admission.settle(vec![(taken, Verdict::Abort)]).await;
                Err(match other? {
                    DealCreation::Created(_) | DealCreation::ProductNotFound => {
                        Error::ProductNotFound
                    }
                    DealCreation::Insufficient { available } => refused(Refused::Stock {
                        key: product_key,
                        requested: d.deal_stock,
                        available,
                    }),
                })
            }
        }
    }

    /// A product as the store has it now, with its live stock: what the
    /// product service answers an order process that missed it or heard it
    /// changed. Read from the store, not this process's memory, so an
    /// answer is never older than the event that asked for it.
    pub async fn fresh_product(&self, id: ProductId) -> Result<Product> {
        let p = self.reload_product(id).await?.ok_or(Error::NotFound)?;
        Ok(self.live_product(&p))
    }

    /// A deal as the store has it now (see [`Catalogue::fresh_product`]).
    pub async fn fresh_deal(&self, id: DealId) -> Result<Deal> {
        let (d, _) = self.reload_deal(id).await?.ok_or(Error::NotFound)?;
        // The cache keeps a settlement it saw before the store's copy.
        let d = self.catalog.deal(id).unwrap_or(d);
        Ok(self.live_deal(&d))
    }

    pub async fn deal(&self, id: DealId) -> Result<DealView> {
        let deal = self.catalog_deal(id).await?.ok_or(Error::NotFound)?;
        let product = self
            .catalog_product(deal.product_id)
            .await?
            .ok_or(Error::NotFound)?;
        Ok(DealView {
            deal: self.live_deal(&deal),
            product: self.live_product(&product),
        })
    }

    /// Deals running now (`active` or `sold_out`), soonest-ending first.
    pub fn running_deals(&self, page: Page) -> Paged<DealView> {
        let now = self.clock.now();
        let mut running = self.catalog.deals_where(|d| d.window.is_running(now));
        running.sort_by_key(|(d, _)| (d.window.ends_at, d.id));
        let total = running.len() as i64;
        let items = running
            .into_iter()
            .skip(usize::try_from(page.offset()).unwrap_or(usize::MAX))
            .take(usize::try_from(page.size).unwrap_or(0))
            .map(|(d, p)| DealView {
                deal: self.live_deal(&d),
                product: self.live_product(&p),
            })
            .collect();
        Paged { items, total, page }
    }

    /// Returns the unsold units of ended deals to their products. Run by a
    /// background task; safe to call at any time and from anywhere.
    pub async fn settle_ended_deals(&self) -> Result<usize> {
        let now = self.clock.now();
        let settled = self.store.settle_ended_deals(now).await?;
        for s in &settled {
            self.admission.close(StockKey::Deal(s.deal)).await;
            let increase = Increase {
                key: StockKey::Product(s.product),
                units: s.returned,
                unclaim: None,
            };
            self.give_back(&settle_event(s.deal), &[increase]).await;
            if let Some(d) = self.catalog.deal(s.deal) {
                self.catalog.put_deal(Deal {
                    settled_at: Some(now),
                    ..(*d).clone()
                });
            }
        }
        Ok(settled.len())
    }

    /// Marks a product hot or not; answers whether it now is.
    pub async fn set_hot(&self, seller: UserId, id: ProductId, hot: bool) -> Result<bool> {
        self.owned_product(seller, id).await?;
        let mut set = self.hot.lock().unwrap_or_else(|e| e.into_inner());
        if hot {
            set.insert(id);
        } else {
            set.remove(&id);
        }
        Ok(hot)
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Whether a deal takes orders now (scheduled and ended ones do not).
    pub fn deal_is_open(&self, deal: &Deal, now: DateTime<Utc>) -> Result<()> {
        let status = deal.window.status(now, 1);
        if matches!(status, DealStatus::Scheduled | DealStatus::Ended) || deal.settled_at.is_some()
        {
            let shown = if deal.settled_at.is_some() {
                DealStatus::Ended
            } else {
                status
            };
            return Err(Error::DealNotActive {
                deal: deal.id,
                status: shown,
            });
        }
        Ok(())
    }
}

/// The contract's answer to a refusal of the admission tier:
/// 400 `INSUFFICIENT_STOCK` or 409 `PURCHASE_LIMIT_EXCEEDED`.
pub(super) fn refused(r: Refused) -> Error {
    match r {
        Refused::Stock {
            key,
            requested,
            available,
        } => Error::InsufficientStock {
            key,
            requested,
            available,
        },
        Refused::Limit { deal, limit, held } => Error::PurchaseLimitExceeded { deal, limit, held },
        Refused::Unavailable | Refused::Unseeded(_) => Error::Overloaded,
    }
}

/// The name under which a deal's settlement gives its units back: a deal
/// settles once, so the name is the same wherever it is applied from.
pub(super) fn settle_event(deal: DealId) -> String {
    format!("settle:{}", deal.0)
}
