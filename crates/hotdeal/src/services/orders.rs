//! Placing, paying, reading, cancelling and expiring orders.
//!
//! Prices come from the server's own records; the client only says what and
//! how many. Every check that needs no write (existence, a deal's product
//! and window, the coupon) happens first; then the admission tier takes the
//! units in memory, and the batch writer commits the order (with its
//! coupon use, its points and its idempotency answer) before the answer.
//!
//! [`Ordering`] holds the order store and what the order path reads or
//! holds elsewhere, each named: the [`Catalogue`] (prices, deal windows,
//! the stock tier), the [`CouponBook`] (a coupon's definition and the
//! user's copy), the [`Idempotency`] keys, and the waiting rooms.

use super::batcher::{Batcher, QueueFull};
use super::catalog::refused;
use super::idempotency::IdempotencyKey;
use super::{tier, Catalogue, CouponBook, Error, Idempotency, Result, WaitingRoom, WritePath};
use crate::model::{IdempotentAnswer, Order, OrderItem, Page, Paged, ShippingAddress};
use crate::observability::metrics::{Flow, Metrics, Outcome, Shed};
use crate::ports::{
    CancelBy, Cancellation, Clock, Hold, Increase, LimitClaim, OrderStore, OrderWrite, Payment,
    Placement, Refused, Verdict,
};
use chrono::{DateTime, Duration, Utc};
use hotdeal_domain::{
    sum_demands, LineDemand, OrderId, OrderStatus, PaymentStatus, StockKey, UserId,
};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// Renders an order as the API answers it (for idempotency answers).
pub type RenderOrder = fn(&Order) -> Vec<u8>;

/// A validated order request.
#[derive(Debug, Clone)]
pub struct PlaceOrder {
    pub lines: Vec<LineDemand>,
    pub shipping_address: Option<ShippingAddress>,
    pub coupon_id: Option<Uuid>,
    pub pay_with_points: bool,
}

/// Payment deadlines, soonest on top.
type Deadlines = BinaryHeap<Reverse<(DateTime<Utc>, OrderId)>>;

/// The order context: placing, paying, cancelling and expiring orders,
/// and the waiting rooms in front of deals.
pub struct Ordering {
    store: Arc<dyn OrderStore>,
    /// Products and deals to price an order from, and the stock tier its
    /// units are held in.
    catalogue: Arc<Catalogue>,
    /// Coupon definitions, for an order's discount.
    coupons: Arc<CouponBook>,
    /// Keys of keyed orders and payments.
    idempotency: Arc<Idempotency>,
    /// Writes admitted orders in batches.
    orders: Batcher<OrderWrite, Placement, Hold>,
    /// Payment deadlines of unpaid orders holding deal stock, soonest
    /// first: expiry pops what is due instead of scanning orders. Unused
    /// when the store finds due orders itself (`expiry_in_store`).
    deadlines: Mutex<Deadlines>,
    /// The store sweeps due orders from its own deadline index (a shared
    /// database: another instance may have placed them).
    expiry_in_store: bool,
    payment_window: Duration,
    /// The waiting rooms in front of deals that have one.
    pub waiting_room: WaitingRoom,
    pub(super) clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
}

impl Ordering {
    /// Loads the payment deadlines and starts the order writer.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        store: Arc<dyn OrderStore>,
        catalogue: Arc<Catalogue>,
        coupons: Arc<CouponBook>,
        idempotency: Arc<Idempotency>,
        waiting_room: WaitingRoom,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        path: WritePath,
    ) -> Result<Self> {
        let deadlines = store
            .awaiting_payment()
            .await?
            .into_iter()
            .map(|(id, at)| Reverse((at, id)))
            .collect();
        let writer = store.clone();
        let orders = Batcher::start(
            Box::new(move |writes: Vec<OrderWrite>| {
                let store = writer.clone();
                Box::pin(async move {
                    let outcomes = store.place_orders(&writes).await;
                    (writes, outcomes)
                })
            }),
            tier::order_verdict,
            {
                let tier = catalogue.admission.clone();
                Box::new(move |done| {
                    let tier = tier.clone();
                    Box::pin(async move { tier.settle(done).await })
                })
            },
            path.queue,
            path.max_batch,
        );
        Ok(Self {
            expiry_in_store: store.expires_from_store(),
            store,
            catalogue,
            coupons,
            idempotency,
            orders,
            deadlines: Mutex::new(deadlines),
            payment_window: path.payment_window,
            waiting_room,
            clock,
            metrics,
        })
    }

    /// The catalogue this service reads.
    pub fn catalogue(&self) -> &Arc<Catalogue> {
        &self.catalogue
    }

    /// The order writer, for the metrics.
    pub(super) fn writer(&self) -> &Batcher<OrderWrite, Placement, Hold> {
        &self.orders
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

    #[tracing::instrument(level = "debug", skip_all, fields(lines = req.lines.len()))]
    pub async fn place_order(
        &self,
        user: UserId,
        req: PlaceOrder,
        idempotency: Option<(&IdempotencyKey, RenderOrder)>,
    ) -> Result<Order> {
        Ok(self.place_order_answered(user, req, idempotency).await?.0)
    }

    /// As [`Ordering::place_order`], with the answer stored for the
    /// idempotency key (the order as rendered), so the caller can send
    /// those bytes instead of rendering the order a second time.
    pub async fn place_order_answered(
        &self,
        user: UserId,
        req: PlaceOrder,
        idempotency: Option<(&IdempotencyKey, RenderOrder)>,
    ) -> Result<(Order, Option<Vec<u8>>)> {
        let now = self.clock.now();
        let mut items = Vec::with_capacity(req.lines.len());
        // (seller, subtotal) per line: a coupon discounts its seller's lines.
        let mut by_seller = Vec::with_capacity(req.lines.len());
        let mut limits: Vec<LimitClaim> = Vec::new();
        let mut holds_deal_stock = false;
        for line in &req.lines {
            let product = self
                .catalogue
                .catalog_product(line.product_id)
                .await?
                .ok_or(Error::ProductNotFound)?;
            let unit_price = match line.deal_id {
                None => product.price,
                Some(deal_id) => {
                    let deal = self
                        .catalogue
                        .catalog_deal(deal_id)
                        .await?
                        .ok_or(Error::DealNotFound)?;
                    if deal.product_id != line.product_id {
                        return Err(Error::DealNotFound);
                    }
                    self.catalogue.deal_is_open(&deal, now)?;
                    holds_deal_stock = true;
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
            let subtotal = unit_price.saturating_mul(line.quantity);
            by_seller.push((product.seller_id, subtotal));
            items.push(OrderItem {
                id: Uuid::now_v7(),
                product_id: line.product_id,
                deal_id: line.deal_id,
                product_name: product.name.clone(),
                quantity: line.quantity,
                unit_price,
                subtotal,
            });
        }
        let subtotal = items
            .iter()
            .fold(0i64, |acc, i| acc.saturating_add(i.subtotal));
        let (coupon_id, discount_amount) = match req.coupon_id {
            Some(id) => {
                let (coupon, discount) = self
                    .coupons
                    .discount(self.clock.now(), user, id, &by_seller)
                    .await?;
                (Some(coupon), discount)
            }
            None => (None, 0),
        };
        let paid = req.pay_with_points;
        // The order's id names its reservation in the tier and its fence
        // in the store, so it exists before anything is taken.
        let order = Order {
            id: OrderId::new(),
            user_id: user,
            items,
            total_amount: subtotal - discount_amount,
            discount_amount,
            status: OrderStatus::Confirmed,
            payment_status: if paid {
                PaymentStatus::Paid
            } else {
                PaymentStatus::Unpaid
            },
            shipping_address: req.shipping_address,
            coupon_id,
            cancel_reason: None,
            cancelled_at: None,
            created_at: now,
            updated_at: now,
            // Deal stock is scarce: an unpaid order may hold it only so long.
            pay_by: (holds_deal_stock && !paid).then(|| now + self.payment_window),
        };
        let demand = sum_demands(&req.lines);
        // Sold out or over the limit? Refused here, in microseconds.
        let hold = self
            .catalogue
            .hold_units(order.id.0, user, &demand, &limits)
            .await
            .inspect_err(|e| {
                let outcome = match e {
                    Error::InsufficientStock { .. } => Outcome::SoldOut,
                    Error::PurchaseLimitExceeded { .. } => Outcome::OverLimit,
                    _ => Outcome::Shed,
                };
                self.metrics.admission(Flow::Order, outcome);
            })?;
        let answer = idempotency.map(|(key, render)| IdempotentAnswer {
            user_id: user,
            key: key.key.clone(),
            request_hash: key.request_hash,
            status: 201,
            body: render(&order),
        });
        let write = OrderWrite {
            order,
            demand,
            answer,
        };
        let committed = match self.orders.submit(write, hold) {
            Ok(committed) => committed,
            Err(QueueFull(hold)) => {
                self.catalogue
                    .admission
                    .settle(vec![(hold, Verdict::Abort)])
                    .await;
                self.metrics.admission(Flow::Order, Outcome::Shed);
                self.metrics.shed(Shed::OrderQueue);
                return Err(Error::Overloaded);
            }
        };
        self.metrics.admission(Flow::Order, Outcome::Admitted);
        let (placement, write) = committed
            .await
            .map_err(|_| Error::Internal("the order writer stopped".into()))?;
        match placement? {
            Placement::Placed => {
                self.metrics.orders_placed.fetch_add(1, Relaxed);
                self.arm_deadline(&write.order);
                if let Some(a) = &write.answer {
                    self.idempotency.note_answered(user, &a.key);
                }
                Ok((write.order, write.answer.map(|a| a.body)))
            }
            Placement::Insufficient {
                key,
                requested,
                available,
            } => Err(refused(Refused::Stock {
                key,
                requested,
                available,
            })),
            Placement::DealNotActive(deal) => Err(Error::DealNotActive {
                deal,
                status: hotdeal_domain::DealStatus::Ended,
            }),
            Placement::LimitExceeded { deal, limit, held } => {
                Err(refused(Refused::Limit { deal, limit, held }))
            }
            Placement::InsufficientPoints { balance } => Err(Error::InsufficientPoints {
                balance,
                required: Some(write.order.total_amount),
            }),
            Placement::CouponNotUsable => Err(Error::CouponNotUsable(
                "the coupon was used or is not yours".into(),
            )),
            // The reservation outlived its deadline and was given back
            // before this write reached the store: nothing was written.
            Placement::Aborted => Err(Error::Overloaded),
            // A repeat of a request answered before: nothing was written.
            Placement::KeyAnswered => Err(Error::KeyAnswered),
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

    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn cancel_order(
        &self,
        user: UserId,
        id: OrderId,
        reason: Option<String>,
    ) -> Result<Order> {
        self.order_of(user, id).await?;
        match self.cancel(id, reason.as_deref(), CancelBy::Buyer).await? {
            Cancellation::Cancelled { order, .. } => Ok(*order),
            Cancellation::NotFound => Err(Error::NotFound),
            Cancellation::InvalidState(s) => Err(Error::InvalidState(format!(
                "an order that is {} cannot be cancelled",
                s.as_str()
            ))),
            Cancellation::NotDue => {
                Err(Error::InvalidState("the order cannot be cancelled".into()))
            }
        }
    }

    /// Cancels in the store, then gives the units and per-user claims back
    /// to the admission tier.
    async fn cancel(
        &self,
        id: OrderId,
        reason: Option<&str>,
        by: CancelBy,
    ) -> Result<Cancellation> {
        let outcome = self
            .store
            .cancel_order(id, reason, by, self.clock.now())
            .await?;
        self.cancelled(&outcome).await;
        Ok(outcome)
    }

    /// Gives a cancelled order's units and per-user claims back to the
    /// admission tier. The committed event carries the same increases and
    /// name, so whichever arrives second changes nothing.
    async fn cancelled(&self, outcome: &Cancellation) {
        if let Cancellation::Cancelled { order, returned } = outcome {
            let increases = cancel_increases(order.user_id, returned);
            self.catalogue
                .give_back(&cancel_event(order.id), &increases)
                .await;
            self.catalogue.catalog.touch();
        }
    }

    /// Pays an unpaid order from the buyer's points.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn pay_order(
        &self,
        user: UserId,
        id: OrderId,
        idempotency: Option<(&IdempotencyKey, RenderOrder)>,
    ) -> Result<Order> {
        self.order_of(user, id).await?;
        let idem = idempotency
            .as_ref()
            .map(|(key, render)| key.write(user, 200, render));
        match self
            .store
            .pay_order(id, user, self.clock.now(), idem.as_ref())
            .await?
        {
            Payment::Paid(order) => Ok(*order),
            Payment::NotFound => Err(Error::NotFound),
            Payment::Expired => Err(Error::OrderExpired),
            Payment::InvalidState(why) => Err(Error::InvalidState(why.into())),
            Payment::InsufficientPoints { balance } => Err(Error::InsufficientPoints {
                balance,
                required: None,
            }),
        }
    }

    /// Cancels the unpaid orders whose payment window has passed; returns
    /// how many. Run every second by a background task; safe to call at any
    /// time.
    ///
    /// On a store shared by instances (PostgreSQL) the store finds the due
    /// orders on its deadline index and claims them with `SKIP LOCKED`.
    /// On the embedded store this pops due deadlines from the timer heap,
    /// so it touches only the orders that are due.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn expire_due_orders(&self) -> Result<usize> {
        const SWEEP: i64 = 256;
        let now = self.clock.now();
        if self.expiry_in_store {
            let mut expired = 0;
            loop {
                let swept = self.store.expire_due(now, SWEEP).await?;
                for outcome in &swept {
                    self.cancelled(outcome).await;
                    if matches!(outcome, Cancellation::Cancelled { .. }) {
                        expired += 1;
                    }
                }
                if (swept.len() as i64) < SWEEP {
                    return Ok(expired);
                }
            }
        }
        let mut expired = 0;
        loop {
            let due = {
                let mut heap = self.deadlines.lock().unwrap_or_else(|e| e.into_inner());
                match heap.peek() {
                    Some(Reverse((at, _))) if *at <= now => heap.pop().map(|Reverse((_, id))| id),
                    _ => None,
                }
            };
            let Some(id) = due else { return Ok(expired) };
            // A paid or cancelled order is simply not due any more.
            match self.cancel(id, None, CancelBy::Expiry).await {
                Ok(Cancellation::Cancelled { .. }) => expired += 1,
                Ok(_) => {}
                Err(e) => {
                    // Keep the deadline for the next round.
                    let mut heap = self.deadlines.lock().unwrap_or_else(|e| e.into_inner());
                    heap.push(Reverse((now, id)));
                    return Err(e);
                }
            }
        }
    }
}

/// The name under which a cancelled order gives its units back: an order
/// is cancelled (or expired) once, so the name is the same wherever the
/// increase is applied from.
pub(super) fn cancel_event(order: OrderId) -> String {
    format!("cancel:{}", order.0)
}

/// What a cancelled order of `buyer` gives back: its units, one increase
/// per key (an event applies to a key once, so two lines returning to the
/// same key must add up first), and on a deal that takes them back, the
/// buyer's per-user count (every unit of the order's lines on that deal
/// is returned to it).
pub(super) fn cancel_increases(buyer: UserId, returned: &[(StockKey, i64)]) -> Vec<Increase> {
    let mut per_key: std::collections::BTreeMap<StockKey, i64> = Default::default();
    for &(key, units) in returned {
        *per_key.entry(key).or_insert(0) += units;
    }
    per_key
        .into_iter()
        .map(|(key, units)| Increase {
            key,
            units,
            unclaim: matches!(key, StockKey::Deal(_)).then_some((buyer, units)),
        })
        .collect()
}
