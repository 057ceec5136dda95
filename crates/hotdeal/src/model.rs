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
