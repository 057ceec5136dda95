//! The use cases of the storefront: what happens on sign-up, on opening a
//! deal, on placing an order. They validate against the rules of the
//! domain, ask the ports for data and changes, and return typed errors that
//! the transport maps to the contract's codes.

mod auth;
mod catalog;
mod error;
mod orders;
pub mod tokens;

pub use auth::{Registration, TokenPair};
pub use catalog::{NewDeal, NewProduct};
pub use error::{Error, Result};
pub use orders::PlaceOrder;

use crate::ports::{Clock, PasswordHasher, StockAdmission, Store};
use hotdeal_domain::ProductId;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use tokens::TokenKeys;

/// Everything the storefront's use cases need, shared by all requests.
pub struct Storefront {
    pub store: Arc<dyn Store>,
    /// Fast refusal of sold-out requests; mirrors the store's stock.
    pub admission: Arc<dyn StockAdmission>,
    pub clock: Arc<dyn Clock>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub tokens: TokenKeys,
    /// Products a seller flagged as hot (`/hotdeal/start`). A hint for the
    /// admission tier; correctness never depends on it. A std Mutex: held
    /// for an insert or lookup, never across an await.
    hot: Mutex<HashSet<ProductId>>,
}

impl Storefront {
    pub fn new(
        store: Arc<dyn Store>,
        admission: Arc<dyn StockAdmission>,
        clock: Arc<dyn Clock>,
        hasher: Arc<dyn PasswordHasher>,
        tokens: TokenKeys,
    ) -> Self {
        Self {
            store,
            admission,
            clock,
            hasher,
            tokens,
            hot: Mutex::new(HashSet::new()),
        }
    }

    /// Loads the admission tier from the store (at start).
    pub async fn load_admission(&self) -> Result<usize> {
        let levels = self.store.stock_levels().await?;
        for &(key, units) in &levels {
            self.admission.open(key, units);
        }
        Ok(levels.len())
    }
}
