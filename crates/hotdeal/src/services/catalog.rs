//! Products, stock and deals.

use super::{Error, Result, Storefront};
use crate::model::{Deal, DealView, Page, Paged, Product, ProductPatch};
use crate::ports::{DealCreation, Refused, StockChange};
use chrono::{DateTime, Utc};
use hotdeal_domain::{DealId, DealWindow, ProductId, StockKey, UserId};
use serde_json::json;
use std::collections::BTreeMap;

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
}

impl Storefront {
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
        self.admission
            .open(StockKey::Product(product.id), product.stock);
        Ok(product)
    }

    pub async fn product(&self, id: ProductId) -> Result<Product> {
        self.store.product(id).await?.ok_or(Error::NotFound)
    }

    pub async fn products(&self, category: Option<&str>, page: Page) -> Result<Paged<Product>> {
        Ok(self.store.products(category, page).await?)
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
        self.store
            .update_product(id, &patch, self.clock.now())
            .await?
            .ok_or(Error::NotFound)
    }

    pub async fn adjust_stock(&self, seller: UserId, id: ProductId, delta: i64) -> Result<Product> {
        self.owned_product(seller, id).await?;
        let key = StockKey::Product(id);
        // Units removed are taken from the admission tier first, so no order
        // can be admitted against them meanwhile.
        let taken = if delta < 0 {
            self.admission
                .admit(&BTreeMap::from([(key, -delta)]))
                .map_err(insufficient)?
        } else {
            Default::default()
        };
        let change = self.store.adjust_stock(id, delta, self.clock.now()).await;
        match change {
            Ok(StockChange::Done(p)) => {
                if delta > 0 {
                    self.admission.restock(key, delta);
                }
                Ok(p)
            }
            other => {
                self.admission.release(&taken);
                match other? {
                    StockChange::Done(_) | StockChange::NotFound => Err(Error::NotFound),
                    StockChange::Insufficient { available } => Err(insufficient(Refused {
                        key,
                        requested: -delta,
                        available,
                    })),
                }
            }
        }
    }

    pub async fn create_deal(&self, seller: UserId, d: NewDeal) -> Result<DealView> {
        let product = match self.store.product(d.product_id).await? {
            Some(p) => p,
            None => return Err(Error::ProductNotFound),
        };
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
        };
        let product_key = StockKey::Product(d.product_id);
        let taken = self
            .admission
            .admit(&BTreeMap::from([(product_key, d.deal_stock)]))
            .map_err(insufficient)?;
        let created = self.store.insert_deal(&deal).await;
        match created {
            Ok(DealCreation::Created(_)) => {
                self.admission
                    .open(StockKey::Deal(deal.id), deal.deal_stock);
            }
            other => {
                self.admission.release(&taken);
                match other? {
                    DealCreation::Created(_) | DealCreation::ProductNotFound => {
                        return Err(Error::ProductNotFound)
                    }
                    DealCreation::Insufficient { available } => {
                        return Err(insufficient(Refused {
                            key: product_key,
                            requested: d.deal_stock,
                            available,
                        }))
                    }
                }
            }
        }
        // Read back so `product.stock` shows the units set aside.
        self.store.deal(deal.id).await?.ok_or(Error::NotFound)
    }

    pub async fn deal(&self, id: DealId) -> Result<DealView> {
        self.store.deal(id).await?.ok_or(Error::NotFound)
    }

    pub async fn running_deals(&self, page: Page) -> Result<Paged<DealView>> {
        Ok(self.store.running_deals(self.clock.now(), page).await?)
    }

    /// Returns the unsold units of ended deals to their products. Run by a
    /// background task; safe to call at any time and from anywhere.
    pub async fn settle_ended_deals(&self) -> Result<usize> {
        let settled = self.store.settle_ended_deals(self.clock.now()).await?;
        for s in &settled {
            self.admission.close(StockKey::Deal(s.deal));
            self.admission
                .restock(StockKey::Product(s.product), s.returned);
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
}

/// The contract's 400 `INSUFFICIENT_STOCK`, naming the stock that is short.
pub(super) fn insufficient(r: Refused) -> Error {
    let mut details = json!({ "requested": r.requested, "available": r.available });
    match r.key {
        StockKey::Product(p) => details["product_id"] = json!(p),
        StockKey::Deal(d) => details["deal_id"] = json!(d),
    }
    Error::InsufficientStock(details)
}
