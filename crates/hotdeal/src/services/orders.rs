//! Placing, reading and cancelling orders.
//!
//! Prices come from the server's own records; the client only says what and
//! how many. Every check that needs no stock (existence, ownership of a deal
//! by the product, the deal's window) happens before the store is asked to
//! move stock, and the store re-checks what can change in between inside
//! its transaction.

use super::catalog::refused;
use super::{Error, Result, Storefront};
use crate::model::{Order, OrderItem, Page, Paged, ShippingAddress};
use crate::ports::{Cancellation, LimitClaim, OrderWrite, Placement, Refused};
use hotdeal_domain::{sum_demands, LineDemand, OrderId, OrderStatus, PaymentStatus, UserId};
use serde_json::json;
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
        let mut items = Vec::with_capacity(req.lines.len());
        let mut limits: Vec<LimitClaim> = Vec::new();
        for line in &req.lines {
            let product = self
                .catalog
                .product(line.product_id)
                .ok_or(Error::ProductNotFound)?;
            let unit_price = match line.deal_id {
                None => product.price,
                Some(deal_id) => {
                    let deal = self.catalog.deal(deal_id).ok_or(Error::DealNotFound)?;
                    if deal.product_id != line.product_id {
                        return Err(Error::DealNotFound);
                    }
                    self.deal_is_open(&deal, now)?;
                    if let Some(limit) = deal.per_user_limit {
                        match limits.iter_mut().find(|c| c.deal == deal_id) {
                            Some(c) => c.units += line.quantity,
                            None => limits.push(LimitClaim {
                                deal: deal_id,
                                units: line.quantity,
                                limit,
                            }),
                        }
                    }
                    deal.deal_price
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
        // Sold out or over the limit? Refused here, in microseconds.
        let admitted = self
            .admission
            .admit(user, &demand, &limits)
            .map_err(refused)?;
        let committed = self
            .committer
            .submit(
                OrderWrite { order, demand },
                admitted,
                self.admission.as_ref(),
            )
            .map_err(|_| Error::Overloaded)?;
        let (placement, order) = committed
            .await
            .map_err(|_| Error::Internal("the order writer stopped".into()))?;
        match placement? {
            Placement::Placed => Ok(order),
            Placement::Insufficient {
                key,
                requested,
                available,
            } => Err(refused(Refused::Stock {
                key,
                requested,
                available,
            })),
            Placement::DealNotActive(d) => Err(Error::DealNotActive(
                json!({ "deal_id": d, "status": "ended" }),
            )),
            Placement::LimitExceeded { deal, limit, held } => {
                Err(refused(Refused::Limit { deal, limit, held }))
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
                for item in &order.items {
                    if let Some(deal) = item.deal_id {
                        self.admission.unclaim(deal, order.user_id, item.quantity);
                    }
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
