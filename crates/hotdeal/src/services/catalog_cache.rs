//! The catalogue in memory: every product and deal, so the order path and
//! the hot reads never query the database.
//!
//! Stock figures are not kept here: the admission tier holds the live
//! counts, and [`Catalogue`](super::Catalogue) overlays them when it hands
//! a product or deal out. This cache changes only when a product or deal is
//! created, edited or settled — rarely, next to the stream of orders — so a
//! std `RwLock` around each map costs readers almost nothing.
//!
//! Memory: one entry per product and deal ever created (a few hundred
//! bytes each), which suits a flash-sale catalogue; a catalogue of many
//! millions of products would page these maps instead.

use crate::model::{Deal, Product};
use chrono::{DateTime, Utc};
use hotdeal_domain::{DealId, ProductId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

#[derive(Debug, Default)]
pub struct CatalogCache {
    products: RwLock<HashMap<ProductId, Arc<Product>>>,
    deals: RwLock<HashMap<DealId, Arc<Deal>>>,
    /// Bumped on every change of the maps, so caches of rendered pages know
    /// when the set of deals or a product's fields changed.
    epoch: AtomicU64,
}

impl CatalogCache {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn product(&self, id: ProductId) -> Option<Arc<Product>> {
        self.products
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    pub fn deal(&self, id: DealId) -> Option<Arc<Deal>> {
        self.deals
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    pub fn put_product(&self, p: Product) {
        self.products
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(p.id, Arc::new(p));
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    pub fn put_deal(&self, d: Deal) {
        let mut deals = self.deals.write().unwrap_or_else(|e| e.into_inner());
        // A deal settles once: a copy read from the store before its
        // settlement (a reload racing the settling instance) never puts
        // the units back on show.
        if d.settled_at.is_none() && deals.get(&d.id).is_some_and(|c| c.settled_at.is_some()) {
            return;
        }
        deals.insert(d.id, Arc::new(d));
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Every deal `keep` accepts, with its product.
    pub fn deals_where(&self, keep: impl Fn(&Deal) -> bool) -> Vec<(Arc<Deal>, Arc<Product>)> {
        let deals = self.deals.read().unwrap_or_else(|e| e.into_inner());
        let products = self.products.read().unwrap_or_else(|e| e.into_inner());
        deals
            .values()
            .filter(|d| keep(d))
            .filter_map(|d| products.get(&d.product_id).map(|p| (d.clone(), p.clone())))
            .collect()
    }

    /// The next instant after `now` at which some deal starts or ends.
    pub fn next_window_change(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let deals = self.deals.read().unwrap_or_else(|e| e.into_inner());
        deals
            .values()
            .flat_map(|d| [d.window.starts_at, d.window.ends_at])
            .filter(|t| *t > now)
            .min()
    }

    /// Marks the catalogue changed although no entry did: stock moved
    /// outside an order (a cancel, an expiry, a stock edit), and a change
    /// answered 2xx must show in every read that starts after it, where
    /// counts moved by orders alone may lag a little (see the page cache).
    pub fn touch(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }
}
