//! Placing, reading and cancelling orders.
//!
//! Prices come from the server's own records; the client only says what and
//! how many. Every check that needs no stock (existence, ownership of a deal
//! by the product, the deal's window) happens before the store is asked to
//! move stock, and the store re-checks what can change in between inside
//! its transaction.

use super::catalog::insufficient;
use super::{Error, Result, Storefront};
use crate::model::{Order, OrderItem, Page, Paged, Product, ShippingAddress};
use crate::ports::{Cancellation, Placement, Refused};
use hotdeal_domain::{
    sum_demands, DealStatus, LineDemand, OrderId, OrderStatus, PaymentStatus, ProductId, UserId,
};
use serde_json::json;
use std::collections::hash_map::{Entry, HashMap};
use uuid::Uuid;

/// A validated order request.
#[derive(Debug, Clone)]
pub struct PlaceOrder {
    pub lines: Vec<LineDemand>,
    pub shipping_address: Option<ShippingAddress>,
}

impl Storefront {
    pub async fn place_order(&self, user: UserId, req: PlaceOrder) -> Result<Order> {
        let now = self.clock.now();
        let mut products: HashMap<ProductId, Product> = HashMap::new();
        let mut items = Vec::with_capacity(req.lines.len());
        for line in &req.lines {
            let product = match products.entry(line.product_id) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => {
                    let p = self.store.product(line.product_id).await?;
                    e.insert(p.ok_or(Error::ProductNotFound)?)
                }
            };
            let unit_price = match line.deal_id {
                None => product.price,
                Some(deal_id) => {
                    let view = self.store.deal(deal_id).await?.ok_or(Error::DealNotFound)?;
                    if view.deal.product_id != line.product_id {
                        return Err(Error::DealNotFound);
                    }
                    let status = view.deal.status(now);
                    if matches!(status, DealStatus::Scheduled | DealStatus::Ended) {
                        return Err(Error::DealNotActive(json!({
                            "deal_id": deal_id, "status": status.as_str(),
                        })));
                    }
                    view.deal.deal_price
                }
            };
            items.push(OrderItem {
                id: Uuid::now_v7(),
                product_id: line.product_id,
                deal_id: line.deal_id,
                product_name: product.name.clone(),
                quantity: line.quantity,
                unit_price,
                subtotal: unit_price.saturating_mul(line.quantity),
            });
        }
        let total_amount = items
            .iter()
            .fold(0i64, |acc, i| acc.saturating_add(i.subtotal));
        let order = Order {
            id: OrderId::new(),
            user_id: user,
            items,
            total_amount,
            discount_amount: 0,
            status: OrderStatus::Confirmed,
            payment_status: PaymentStatus::Unpaid,
            shipping_address: req.shipping_address,
            coupon_id: None,
            cancel_reason: None,
            cancelled_at: None,
            created_at: now,
            updated_at: now,
        };
        let demand = sum_demands(&req.lines);
        // Sold out? Refused here, before any write.
        let admitted = self.admission.admit(&demand).map_err(insufficient)?;
        let placed = self.store.place_order(&order, &demand).await;
        if !matches!(placed, Ok(Placement::Placed)) {
            self.admission.release(&admitted);
        }
        match placed? {
            Placement::Placed => Ok(order),
            Placement::Insufficient {
                key,
                requested,
                available,
            } => Err(insufficient(Refused {
                key,
                requested,
                available,
            })),
            Placement::DealNotActive(d) => Err(Error::DealNotActive(
                json!({ "deal_id": d, "status": "ended" }),
            )),
            Placement::LimitExceeded { deal, limit, held } => {
                Err(Error::PurchaseLimitExceeded(json!({
                    "deal_id": deal, "per_user_limit": limit, "already_bought": held,
                })))
            }
        }
    }

    /// An order, if `user` placed it.
    pub async fn order_of(&self, user: UserId, id: OrderId) -> Result<Order> {
        let order = self.store.order(id).await?.ok_or(Error::NotFound)?;
        if order.user_id != user {
            return Err(Error::Forbidden);
        }
        Ok(order)
    }

    pub async fn orders_of(
        &self,
        user: UserId,
        status: Option<OrderStatus>,
        page: Page,
    ) -> Result<Paged<Order>> {
        Ok(self.store.orders_of(user, status, page).await?)
    }

    pub async fn cancel_order(
        &self,
        user: UserId,
        id: OrderId,
        reason: Option<String>,
    ) -> Result<Order> {
        self.order_of(user, id).await?;
        match self
            .store
            .cancel_order(id, reason.as_deref(), self.clock.now())
            .await?
        {
            Cancellation::Cancelled { order, returned } => {
                for (key, units) in returned {
                    self.admission.restock(key, units);
                }
                Ok(*order)
            }
            Cancellation::NotFound => Err(Error::NotFound),
            Cancellation::InvalidState(s) => Err(Error::InvalidState(format!(
                "an order that is {} cannot be cancelled",
                s.as_str()
            ))),
        }
    }
}
