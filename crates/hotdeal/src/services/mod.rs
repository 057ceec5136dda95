//! The use cases of the storefront: what happens on sign-up, on opening a
//! deal, on placing an order. They validate against the rules of the
//! domain, ask the ports for data and changes, and return typed errors that
//! the transport maps to the contract's codes.

mod auth;
mod catalog;
pub mod catalog_cache;
pub mod committer;
mod error;
mod orders;
pub mod tokens;

pub use auth::{Registration, TokenPair};
pub use catalog::{NewDeal, NewProduct};
pub use error::{Error, Result};
pub use orders::PlaceOrder;

use crate::ports::{Clock, PasswordHasher, StockAdmission, Store};
use catalog_cache::CatalogCache;
use committer::Committer;
use hotdeal_domain::{ProductId, StockKey};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use tokens::TokenKeys;

/// Everything the storefront's use cases need, shared by all requests.
pub struct Storefront {
    pub store: Arc<dyn Store>,
    /// Live stock counts and per-user holdings; every order passes here
    /// before the store.
    pub admission: Arc<dyn StockAdmission>,
    /// Products and deals in memory, for the order path and hot reads.
    pub catalog: CatalogCache,
    /// Writes admitted orders in batches.
    committer: Committer,
    pub clock: Arc<dyn Clock>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub tokens: TokenKeys,
    /// Products a seller flagged as hot (`/hotdeal/start`). A hint;
    /// correctness never depends on it. A std Mutex: held for an insert or
    /// lookup, never across an await.
    hot: Mutex<HashSet<ProductId>>,
}

/// Tuning of the order path.
#[derive(Clone, Copy, Debug)]
pub struct OrderPath {
    /// Orders waiting for the writer before new ones are refused (503).
    pub queue: usize,
    /// Most orders committed in one transaction.
    pub max_batch: usize,
}

impl Storefront {
    /// Builds the services and loads the catalogue and the admission tier
    /// from the store. Must run inside a Tokio runtime (it starts the
    /// writer task).
    pub async fn start(
        store: Arc<dyn Store>,
        admission: Arc<dyn StockAdmission>,
        clock: Arc<dyn Clock>,
        hasher: Arc<dyn PasswordHasher>,
        tokens: TokenKeys,
        path: OrderPath,
    ) -> Result<Self> {
        let snapshot = store.snapshot().await?;
        let catalog = CatalogCache::new();
        for p in snapshot.products {
            admission.open(StockKey::Product(p.id), p.stock);
            catalog.put_product(p);
        }
        for d in snapshot.deals {
            if d.settled_at.is_none() {
                admission.open(StockKey::Deal(d.id), d.remaining_stock);
            }
            catalog.put_deal(d);
        }
        for (deal, user, units) in snapshot.held {
            admission.set_held(deal, user, units);
        }
        let committer =
            Committer::start(store.clone(), admission.clone(), path.queue, path.max_batch);
        Ok(Self {
            store,
            admission,
            catalog,
            committer,
            clock,
            hasher,
            tokens,
            hot: Mutex::new(HashSet::new()),
        })
    }
}
