//! The records the services work with and the stores persist. They mirror
//! the API's resources; the HTTP layer renders them as JSON.

use chrono::{DateTime, Utc};
use hotdeal_domain::{
    DealId, DealStatus, DealWindow, OrderId, OrderStatus, PaymentStatus, ProductId, UserId,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Clone, Debug)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct Product {
    pub id: ProductId,
    pub seller_id: UserId,
    pub name: String,
    pub description: Option<String>,
    pub price: i64,
    pub stock: i64,
    pub category: Option<String>,
    pub image_url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Fields a seller may change on a product; `None` leaves a field as is.
/// For the nullable fields, `Some(None)` clears the value.
#[derive(Clone, Debug, Default)]
pub struct ProductPatch {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub price: Option<i64>,
    pub category: Option<Option<String>>,
    pub image_url: Option<Option<String>>,
}

#[derive(Clone, Debug)]
pub struct Deal {
    pub id: DealId,
    pub product_id: ProductId,
    pub deal_price: i64,
    pub deal_stock: i64,
    pub remaining_stock: i64,
    pub per_user_limit: Option<i64>,
    pub window: DealWindow,
    /// Set once the unsold units went back to the product.
    pub settled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Orders need an admitted queue token (see `services::waiting_room`).
    pub waiting_room: bool,
    /// Users admitted per second from the deal's queue; `None` = the
    /// server's default.
    pub queue_admit_per_sec: Option<i64>,
}

impl Deal {
    pub fn status(&self, now: DateTime<Utc>) -> DealStatus {
        self.window.status(now, self.remaining_stock)
    }
}

/// A deal together with its product, as the API shows it.
#[derive(Clone, Debug)]
pub struct DealView {
    pub deal: Deal,
    pub product: Product,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShippingAddress {
    pub recipient_name: String,
    pub phone: String,
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_detail: Option<String>,
    pub postal_code: String,
}

#[derive(Clone, Debug)]
pub struct OrderItem {
    pub id: Uuid,
    pub product_id: ProductId,
    pub deal_id: Option<DealId>,
    pub product_name: String,
    pub quantity: i64,
    pub unit_price: i64,
    pub subtotal: i64,
}

#[derive(Clone, Debug)]
pub struct Order {
    pub id: OrderId,
    pub user_id: UserId,
    pub items: Vec<OrderItem>,
    pub total_amount: i64,
    pub discount_amount: i64,
    pub status: OrderStatus,
    pub payment_status: PaymentStatus,
    pub shipping_address: Option<ShippingAddress>,
    pub coupon_id: Option<Uuid>,
    pub cancel_reason: Option<String>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Unpaid orders holding deal stock are cancelled by the system at this
    /// instant unless paid before.
    pub pay_by: Option<DateTime<Utc>>,
}

/// One page of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub page: i64,
    pub size: i64,
}

impl Page {
    pub fn offset(&self) -> i64 {
        (self.page - 1) * self.size
    }
}

/// Items of one page and the total count over all pages.
#[derive(Clone, Debug)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub page: Page,
}

/// A user's point balance.
#[derive(Clone, Debug)]
pub struct PointAccount {
    pub user_id: UserId,
    pub balance: i64,
    pub updated_at: DateTime<Utc>,
}

/// Why a balance changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PointKind {
    Charge,
    Payment,
    Refund,
}

impl PointKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Charge => "charge",
            Self::Payment => "payment",
            Self::Refund => "refund",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "charge" => Self::Charge,
            "payment" => Self::Payment,
            "refund" => Self::Refund,
            _ => return None,
        })
    }
}

/// One change of a balance.
#[derive(Clone, Debug)]
pub struct PointEntry {
    pub id: Uuid,
    pub user_id: UserId,
    pub kind: PointKind,
    pub amount: i64,
    pub balance_after: i64,
    pub order_id: Option<OrderId>,
    pub created_at: DateTime<Utc>,
}

/// How a coupon discounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiscountType {
    Fixed,
    Percent,
}

impl DiscountType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fixed => "fixed",
            Self::Percent => "percent",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "fixed" => Some(Self::Fixed),
            "percent" => Some(Self::Percent),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Coupon {
    pub id: Uuid,
    pub name: String,
    pub discount_type: DiscountType,
    pub discount_value: i64,
    pub max_discount: Option<i64>,
    pub min_order_amount: i64,
    pub total_quantity: i64,
    pub issued_count: i64,
    pub window: hotdeal_domain::DealWindow,
    pub created_by: UserId,
    pub created_at: DateTime<Utc>,
}

impl Coupon {
    /// The discount on an order of `amount` won, or `None` when the order
    /// is below the coupon's minimum.
    pub fn discount_on(&self, amount: i64) -> Option<i64> {
        if amount < self.min_order_amount {
            return None;
        }
        let raw = match self.discount_type {
            DiscountType::Fixed => self.discount_value,
            DiscountType::Percent => amount.saturating_mul(self.discount_value) / 100,
        };
        let capped = self.max_discount.map_or(raw, |m| raw.min(m));
        Some(capped.clamp(0, amount))
    }
}

/// A coupon in a user's hands.
#[derive(Clone, Debug)]
pub struct UserCoupon {
    pub id: Uuid,
    pub coupon_id: Uuid,
    pub user_id: UserId,
    pub used: bool,
    pub issued_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub order_id: Option<OrderId>,
}

/// The stored answer to a request sent with an `Idempotency-Key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotentAnswer {
    pub user_id: UserId,
    pub key: String,
    /// SHA-256 of the request (method, path, body).
    pub request_hash: [u8; 32],
    pub status: u16,
    pub body: Vec<u8>,
}

/// Something that happened, for other services: written to the outbox in
/// the same transaction as the change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// e.g. `order.placed`, `order.paid`, `order.cancelled`, `order.expired`,
    /// `coupon.issued`.
    pub topic: String,
    pub payload: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn coupon(kind: DiscountType, value: i64, max: Option<i64>, min: i64) -> Coupon {
        let now = Utc::now();
        Coupon {
            id: Uuid::now_v7(),
            name: "c".into(),
            discount_type: kind,
            discount_value: value,
            max_discount: max,
            min_order_amount: min,
            total_quantity: 1,
            issued_count: 0,
            window: hotdeal_domain::DealWindow::new(now, now + chrono::Duration::hours(1))
                .expect("window"),
            created_by: UserId::new(),
            created_at: now,
        }
    }

    #[test]
    fn discounts() {
        assert_eq!(
            coupon(DiscountType::Fixed, 3000, None, 10_000).discount_on(9_999),
            None
        );
        assert_eq!(
            coupon(DiscountType::Fixed, 3000, None, 10_000).discount_on(10_000),
            Some(3000)
        );
        assert_eq!(
            coupon(DiscountType::Fixed, 3000, None, 0).discount_on(1000),
            Some(1000)
        );
        assert_eq!(
            coupon(DiscountType::Percent, 10, None, 0).discount_on(25_000),
            Some(2500)
        );
        assert_eq!(
            coupon(DiscountType::Percent, 10, Some(2000), 0).discount_on(25_000),
            Some(2000)
        );
    }

    proptest! {
        #[test]
        fn a_discount_never_exceeds_the_order(amount in 0i64..10_000_000, value in 1i64..100, fixed in any::<bool>(), max in proptest::option::of(1i64..100_000)) {
            let kind = if fixed { DiscountType::Fixed } else { DiscountType::Percent };
            let d = coupon(kind, value * 1000, max, 0).discount_on(amount).expect("no minimum");
            prop_assert!(d >= 0 && d <= amount);
            if let Some(m) = max { prop_assert!(d <= m); }
        }
    }
}
