//! The JSON shapes of the API: request bodies with their field rules, and
//! the resources as the contract spells them.

use crate::model::{self, DealView, Order, Page, Paged, Product, User};
use crate::services::{NewDeal, NewProduct, PlaceOrder, Registration, TokenPair};
use chrono::{DateTime, Utc};
use hotdeal_domain::validate::{is_phone, is_postal_code};
use hotdeal_domain::{
    DealId, DealWindow, FieldErrors, LineDemand, ProductId, Validator, MAX_LINES, MAX_LINE_QUANTITY,
};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::HashMap;
use utoipa::ToSchema;
use uuid::Uuid;

/// Largest money amount accepted (won); keeps every sum far from overflow.
const MAX_WON: i64 = 1_000_000_000_000;
/// Largest stock a product may hold.
const MAX_STOCK: i64 = 1_000_000_000_000;

/// Distinguishes an absent field (`None`) from an explicit `null`
/// (`Some(None)`), for PATCH bodies.
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

// ---------------------------------------------------------------- lists

/// Reads `page` and `size` from the query string.
pub fn page_of(q: &HashMap<String, String>) -> Result<Page, FieldErrors> {
    let mut errors = FieldErrors::new();
    let mut num = |key: &str, default: i64, min: i64, max: i64| -> i64 {
        match q.get(key).map(|v| v.trim().parse::<i64>()) {
            None => default,
            Some(Ok(n)) if (min..=max).contains(&n) => n,
            Some(_) => {
                errors.insert(
                    key.to_owned(),
                    format!("must be an integer in {min}..{max}"),
                );
                default
            }
        }
    };
    let page = num("page", 1, 1, 1_000_000);
    let size = num("size", 20, 1, 100);
    if errors.is_empty() {
        Ok(Page { page, size })
    } else {
        Err(errors)
    }
}

/// A page of a list.
#[derive(Serialize, ToSchema)]
pub struct ListOf<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub page: i64,
    pub size: i64,
}

impl<T> ListOf<T> {
    pub fn from_paged<U>(p: Paged<U>, f: impl Fn(U) -> T) -> Self {
        Self {
            items: p.items.into_iter().map(f).collect(),
            total: p.total,
            page: p.page.page,
            size: p.page.size,
        }
    }
}

// ---------------------------------------------------------------- health

#[derive(Serialize, ToSchema)]
pub struct HealthOut {
    /// Always `healthy` when the process answers.
    pub status: &'static str,
    /// Which service answered, e.g. `gateway`, `order-service`.
    pub service: &'static str,
}

// ---------------------------------------------------------------- auth

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterIn {
    /// An email address; compared case-insensitively.
    pub email: String,
    /// At least 8 characters.
    pub password: String,
    /// 2..50 characters.
    pub name: String,
}

impl RegisterIn {
    pub fn parse(self) -> Result<Registration, FieldErrors> {
        let mut v = Validator::new();
        v.email("email", self.email.trim())
            .length("password", &self.password, 8, 1024)
            .length("name", self.name.trim(), 2, 50);
        v.finish()?;
        Ok(Registration {
            email: self.email,
            password: self.password,
            name: self.name,
        })
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginIn {
    pub email: String,
    pub password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshIn {
    pub refresh_token: String,
}

#[derive(Serialize, ToSchema)]
pub struct UserOut {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

impl From<User> for UserOut {
    fn from(u: User) -> Self {
        Self {
            id: u.id.0,
            email: u.email,
            name: u.name,
            created_at: u.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TokensOut {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds the access token is valid: 3600.
    pub expires_in: i64,
}

impl From<TokenPair> for TokensOut {
    fn from(t: TokenPair) -> Self {
        Self {
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            token_type: "Bearer",
            expires_in: t.expires_in,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct VerifyOut {
    pub valid: bool,
    pub user_id: Uuid,
}

// ---------------------------------------------------------------- products

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductIn {
    /// 1..200 characters.
    pub name: String,
    /// At most 5000 characters.
    #[serde(default)]
    pub description: Option<String>,
    /// Won, ≥ 0.
    pub price: i64,
    /// Units, ≥ 0.
    pub stock: i64,
    /// At most 50 characters; the list filter matches it exactly.
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub image_url: Option<String>,
}

fn check_product_fields(
    v: &mut Validator,
    name: Option<&str>,
    description: Option<&str>,
    price: Option<i64>,
    category: Option<&str>,
    image_url: Option<&str>,
) {
    if let Some(n) = name {
        v.length("name", n, 1, 200)
            .check(!n.trim().is_empty(), "name", "must not be blank");
    }
    if let Some(d) = description {
        v.length("description", d, 0, 5000);
    }
    if let Some(p) = price {
        v.range("price", p, 0, MAX_WON);
    }
    if let Some(c) = category {
        v.length("category", c, 0, 50);
    }
    if let Some(u) = image_url {
        v.length("image_url", u, 0, 2048);
    }
}

impl ProductIn {
    pub fn parse(self) -> Result<NewProduct, FieldErrors> {
        let mut v = Validator::new();
        check_product_fields(
            &mut v,
            Some(&self.name),
            self.description.as_deref(),
            Some(self.price),
            self.category.as_deref(),
            self.image_url.as_deref(),
        );
        v.range("stock", self.stock, 0, MAX_STOCK);
        v.finish()?;
        Ok(NewProduct {
            name: self.name,
            description: self.description,
            price: self.price,
            stock: self.stock,
            category: self.category,
            image_url: self.image_url,
        })
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductPatchIn {
    /// Cannot be null.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// Cannot be null.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    pub price: Option<Option<i64>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub category: Option<Option<String>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub image_url: Option<Option<String>>,
}

impl ProductPatchIn {
    pub fn parse(self) -> Result<model::ProductPatch, FieldErrors> {
        let mut v = Validator::new();
        v.check(self.name != Some(None), "name", "must not be null")
            .check(self.price != Some(None), "price", "must not be null");
        check_product_fields(
            &mut v,
            self.name.as_ref().and_then(|n| n.as_deref()),
            self.description.as_ref().and_then(|d| d.as_deref()),
            self.price.flatten(),
            self.category.as_ref().and_then(|d| d.as_deref()),
            self.image_url.as_ref().and_then(|d| d.as_deref()),
        );
        v.finish()?;
        Ok(model::ProductPatch {
            name: self.name.flatten(),
            description: self.description,
            price: self.price.flatten(),
            category: self.category,
            image_url: self.image_url,
        })
    }
}

#[derive(Serialize, ToSchema)]
pub struct ProductOut {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub price: i64,
    pub stock: i64,
    pub category: Option<String>,
    pub image_url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Product> for ProductOut {
    fn from(p: Product) -> Self {
        Self {
            id: p.id.0,
            name: p.name,
            description: p.description,
            price: p.price,
            stock: p.stock,
            category: p.category,
            image_url: p.image_url,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockDeltaIn {
    /// Units to add (positive) or remove (negative).
    pub delta: i64,
}

impl StockDeltaIn {
    pub fn parse(self) -> Result<i64, FieldErrors> {
        let mut v = Validator::new();
        v.range("delta", self.delta, -MAX_STOCK, MAX_STOCK);
        v.finish()?;
        Ok(self.delta)
    }
}

#[derive(Serialize, ToSchema)]
pub struct StockOut {
    pub product_id: Uuid,
    pub stock: i64,
    pub updated_at: DateTime<Utc>,
}

impl From<Product> for StockOut {
    fn from(p: Product) -> Self {
        Self {
            product_id: p.id.0,
            stock: p.stock,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct HotOut {
    pub product_id: Uuid,
    pub hot: bool,
}

// ---------------------------------------------------------------- deals

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DealIn {
    pub product_id: Uuid,
    /// Won, ≥ 0.
    pub deal_price: i64,
    /// Units set aside from the product, ≥ 1.
    pub deal_stock: i64,
    /// Units one user may buy from this deal; absent or null = no limit.
    #[serde(default)]
    pub per_user_limit: Option<i64>,
    pub starts_at: DateTime<Utc>,
    /// Must be after `starts_at`.
    pub ends_at: DateTime<Utc>,
}

impl DealIn {
    pub fn parse(self) -> Result<NewDeal, FieldErrors> {
        let mut v = Validator::new();
        v.range("deal_price", self.deal_price, 0, MAX_WON).range(
            "deal_stock",
            self.deal_stock,
            1,
            MAX_STOCK,
        );
        if let Some(l) = self.per_user_limit {
            v.range("per_user_limit", l, 1, MAX_STOCK);
        }
        let window = DealWindow::new(self.starts_at, self.ends_at);
        v.check(window.is_some(), "ends_at", "must be after starts_at");
        v.finish()?;
        let window = window.ok_or_else(FieldErrors::new)?;
        Ok(NewDeal {
            product_id: ProductId(self.product_id),
            deal_price: self.deal_price,
            deal_stock: self.deal_stock,
            per_user_limit: self.per_user_limit,
            window,
        })
    }
}

#[derive(Serialize, ToSchema)]
pub struct DealOut {
    pub id: Uuid,
    pub product_id: Uuid,
    pub product: ProductOut,
    pub deal_price: i64,
    /// The product's price.
    pub original_price: i64,
    pub deal_stock: i64,
    pub remaining_stock: i64,
    pub per_user_limit: Option<i64>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// `scheduled`, `active`, `sold_out` or `ended`, from the server's clock.
    pub status: &'static str,
    pub created_at: DateTime<Utc>,
}

impl DealOut {
    pub fn new(v: DealView, now: DateTime<Utc>) -> Self {
        let status = v.deal.status(now).as_str();
        Self {
            id: v.deal.id.0,
            product_id: v.deal.product_id.0,
            original_price: v.product.price,
            product: v.product.into(),
            deal_price: v.deal.deal_price,
            deal_stock: v.deal.deal_stock,
            remaining_stock: v.deal.remaining_stock,
            per_user_limit: v.deal.per_user_limit,
            starts_at: v.deal.window.starts_at,
            ends_at: v.deal.window.ends_at,
            status,
            created_at: v.deal.created_at,
        }
    }
}

// ---------------------------------------------------------------- orders

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLineIn {
    pub product_id: Uuid,
    /// Buy at this deal's price; the deal must be of `product_id` and active.
    #[serde(default)]
    pub deal_id: Option<Uuid>,
    /// 1..10.
    pub quantity: i64,
}

#[derive(Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct ShippingAddressIn {
    /// At most 50 characters.
    pub recipient_name: String,
    /// `^01[0-9]-?[0-9]{3,4}-?[0-9]{4}$`
    pub phone: String,
    /// At most 200 characters.
    pub address: String,
    /// At most 100 characters.
    #[serde(default)]
    pub address_detail: Option<String>,
    /// Five digits.
    pub postal_code: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderIn {
    /// 1..10 lines.
    pub items: Vec<OrderLineIn>,
    #[serde(default)]
    pub shipping_address: Option<ShippingAddressIn>,
}

impl OrderIn {
    pub fn parse(self) -> Result<PlaceOrder, FieldErrors> {
        let mut v = Validator::new();
        v.check(
            (1..=MAX_LINES).contains(&self.items.len()),
            "items",
            &format!("must have 1..{MAX_LINES} lines"),
        );
        for (i, line) in self.items.iter().enumerate() {
            v.range(
                &format!("items[{i}].quantity"),
                line.quantity,
                1,
                MAX_LINE_QUANTITY,
            );
        }
        if let Some(a) = &self.shipping_address {
            v.length(
                "shipping_address.recipient_name",
                a.recipient_name.trim(),
                1,
                50,
            )
            .check(
                is_phone(&a.phone),
                "shipping_address.phone",
                "must look like 010-1234-5678",
            )
            .length("shipping_address.address", a.address.trim(), 1, 200)
            .check(
                is_postal_code(&a.postal_code),
                "shipping_address.postal_code",
                "must be five digits",
            );
            if let Some(d) = &a.address_detail {
                v.length("shipping_address.address_detail", d, 0, 100);
            }
        }
        v.finish()?;
        Ok(PlaceOrder {
            lines: self
                .items
                .iter()
                .map(|l| LineDemand {
                    product_id: ProductId(l.product_id),
                    deal_id: l.deal_id.map(DealId),
                    quantity: l.quantity,
                })
                .collect(),
            shipping_address: self.shipping_address.map(|a| model::ShippingAddress {
                recipient_name: a.recipient_name,
                phone: a.phone,
                address: a.address,
                address_detail: a.address_detail,
                postal_code: a.postal_code,
            }),
        })
    }
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CancelIn {
    /// At most 500 characters.
    #[serde(default)]
    pub reason: Option<String>,
}

impl CancelIn {
    pub fn parse(self) -> Result<Option<String>, FieldErrors> {
        let mut v = Validator::new();
        if let Some(r) = &self.reason {
            v.length("reason", r, 0, 500);
        }
        v.finish()?;
        Ok(self.reason)
    }
}

#[derive(Serialize, ToSchema)]
pub struct OrderItemOut {
    pub id: Uuid,
    pub product_id: Uuid,
    pub deal_id: Option<Uuid>,
    pub product_name: String,
    pub quantity: i64,
    pub unit_price: i64,
    pub subtotal: i64,
}

#[derive(Serialize, ToSchema)]
pub struct ShippingAddressOut {
    pub recipient_name: String,
    pub phone: String,
    pub address: String,
    pub address_detail: Option<String>,
    pub postal_code: String,
}

#[derive(Serialize, ToSchema)]
pub struct OrderOut {
    pub id: Uuid,
    pub user_id: Uuid,
    pub items: Vec<OrderItemOut>,
    pub total_amount: i64,
    pub discount_amount: i64,
    /// `pending`, `confirmed`, `shipped`, `delivered` or `cancelled`.
    pub status: &'static str,
    /// `unpaid`, `paid` or `refunded`.
    pub payment_status: &'static str,
    pub shipping_address: Option<ShippingAddressOut>,
    pub coupon_id: Option<Uuid>,
    pub cancel_reason: Option<String>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Order> for OrderOut {
    fn from(o: Order) -> Self {
        Self {
            id: o.id.0,
            user_id: o.user_id.0,
            items: o
                .items
                .into_iter()
                .map(|i| OrderItemOut {
                    id: i.id,
                    product_id: i.product_id.0,
                    deal_id: i.deal_id.map(|d| d.0),
                    product_name: i.product_name,
                    quantity: i.quantity,
                    unit_price: i.unit_price,
                    subtotal: i.subtotal,
                })
                .collect(),
            total_amount: o.total_amount,
            discount_amount: o.discount_amount,
            status: o.status.as_str(),
            payment_status: o.payment_status.as_str(),
            shipping_address: o.shipping_address.map(|a| ShippingAddressOut {
                recipient_name: a.recipient_name,
                phone: a.phone,
                address: a.address,
                address_detail: a.address_detail,
                postal_code: a.postal_code,
            }),
            coupon_id: o.coupon_id,
            cancel_reason: o.cancel_reason,
            cancelled_at: o.cancelled_at,
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}
