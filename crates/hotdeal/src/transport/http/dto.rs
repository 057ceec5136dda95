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
    /// `healthy`, or `unhealthy` (with 503) when the process cannot record
    /// changes.
    #[schema(value_type = String, pattern = "^(healthy|unhealthy)$")]
    pub status: &'static str,
    /// Which service answered, e.g. `gateway`, `order-service`.
    pub service: &'static str,
    /// Why it is unhealthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
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

/// `POST /auth/logout`: the refresh token to revoke; without one, all of
/// the caller's.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct LogoutIn {
    pub refresh_token: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct UserOut {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// The answer to a sign-up: the user, and tokens so a new user need not log
/// in (which would cost a second password hash).
#[derive(Serialize, ToSchema)]
pub struct RegisteredOut {
    #[serde(flatten)]
    pub user: UserOut,
    #[serde(flatten)]
    pub tokens: TokensOut,
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
    /// A coupon issued to the caller and not used yet.
    #[serde(default)]
    pub coupon_id: Option<Uuid>,
    /// Pay now from the points balance.
    #[serde(default)]
    pub payment: Option<PaymentIn>,
}

/// How to pay.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct PaymentIn {
    /// Only `points`.
    pub method: String,
}

impl PaymentIn {
    pub fn check(&self, v: &mut Validator, field: &str) {
        v.check(self.method == "points", field, "must be \"points\"");
    }
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
        if let Some(p) = &self.payment {
            p.check(&mut v, "payment.method");
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
            coupon_id: self.coupon_id,
            pay_with_points: self.payment.is_some(),
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

// ---------------------------------------------------------------- points

#[derive(Serialize, ToSchema)]
pub struct PointsOut {
    pub user_id: Uuid,
    pub balance: i64,
    pub updated_at: DateTime<Utc>,
}

impl From<model::PointAccount> for PointsOut {
    fn from(a: model::PointAccount) -> Self {
        Self {
            user_id: a.user_id.0,
            balance: a.balance,
            updated_at: a.updated_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChargeIn {
    /// 1..10,000,000 points.
    pub amount: i64,
}

impl ChargeIn {
    pub fn parse(self) -> Result<i64, FieldErrors> {
        let mut v = Validator::new();
        v.range("amount", self.amount, 1, 10_000_000);
        v.finish()?;
        Ok(self.amount)
    }
}

#[derive(Serialize, ToSchema)]
pub struct ChargeOut {
    pub charge_id: Uuid,
    pub amount: i64,
    /// The balance after the charge.
    pub balance: i64,
}

impl From<&crate::ports::Charge> for ChargeOut {
    fn from(c: &crate::ports::Charge) -> Self {
        Self {
            charge_id: c.charge_id,
            amount: c.amount,
            balance: c.balance,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct PointEntryOut {
    pub id: Uuid,
    /// `charge`, `payment` or `refund`.
    pub kind: &'static str,
    /// Points moved (always positive; `kind` says which way).
    pub amount: i64,
    pub balance_after: i64,
    pub order_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl From<model::PointEntry> for PointEntryOut {
    fn from(e: model::PointEntry) -> Self {
        Self {
            id: e.id,
            kind: e.kind.as_str(),
            amount: e.amount,
            balance_after: e.balance_after,
            order_id: e.order_id.map(|o| o.0),
            created_at: e.created_at,
        }
    }
}

// ---------------------------------------------------------------- coupons

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CouponIn {
    /// 1..100 characters.
    pub name: String,
    /// `fixed` (won off) or `percent` (1..100 % off).
    pub discount_type: String,
    pub discount_value: i64,
    /// Cap of a percent discount, in won.
    #[serde(default)]
    pub max_discount: Option<i64>,
    /// Orders below this (before discount) cannot use the coupon.
    #[serde(default)]
    pub min_order_amount: Option<i64>,
    /// 1..10,000,000 coupons.
    pub total_quantity: i64,
    pub starts_at: DateTime<Utc>,
    /// Must be after `starts_at`; the coupon is usable until then.
    pub ends_at: DateTime<Utc>,
}

impl CouponIn {
    pub fn parse(self) -> Result<crate::services::NewCoupon, FieldErrors> {
        let mut v = Validator::new();
        v.length("name", self.name.trim(), 1, 100);
        let kind = model::DiscountType::parse(&self.discount_type);
        v.check(kind.is_some(), "discount_type", "must be fixed or percent");
        match kind {
            Some(model::DiscountType::Percent) => {
                v.range("discount_value", self.discount_value, 1, 100)
            }
            _ => v.range("discount_value", self.discount_value, 1, MAX_WON),
        };
        if let Some(m) = self.max_discount {
            v.range("max_discount", m, 1, MAX_WON);
        }
        if let Some(m) = self.min_order_amount {
            v.range("min_order_amount", m, 0, MAX_WON);
        }
        v.range("total_quantity", self.total_quantity, 1, 10_000_000);
        let window = DealWindow::new(self.starts_at, self.ends_at);
        v.check(window.is_some(), "ends_at", "must be after starts_at");
        v.finish()?;
        let (Some(kind), Some(window)) = (kind, window) else {
            return Err(FieldErrors::new());
        };
        Ok(crate::services::NewCoupon {
            name: self.name,
            discount_type: kind,
            discount_value: self.discount_value,
            max_discount: self.max_discount,
            min_order_amount: self.min_order_amount.unwrap_or(0),
            total_quantity: self.total_quantity,
            window,
        })
    }
}

#[derive(Serialize, ToSchema)]
pub struct CouponOut {
    pub id: Uuid,
    pub name: String,
    pub discount_type: &'static str,
    pub discount_value: i64,
    pub max_discount: Option<i64>,
    pub min_order_amount: i64,
    pub total_quantity: i64,
    pub issued_count: i64,
    pub remaining: i64,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

impl From<model::Coupon> for CouponOut {
    fn from(c: model::Coupon) -> Self {
        Self {
            id: c.id,
            name: c.name,
            discount_type: c.discount_type.as_str(),
            discount_value: c.discount_value,
            max_discount: c.max_discount,
            min_order_amount: c.min_order_amount,
            total_quantity: c.total_quantity,
            issued_count: c.issued_count,
            remaining: c.total_quantity - c.issued_count,
            starts_at: c.window.starts_at,
            ends_at: c.window.ends_at,
            created_at: c.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct UserCouponOut {
    pub id: Uuid,
    pub coupon_id: Uuid,
    pub user_id: Uuid,
    /// `issued` or `used`.
    pub status: &'static str,
    pub issued_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub order_id: Option<Uuid>,
}

impl From<model::UserCoupon> for UserCouponOut {
    fn from(c: model::UserCoupon) -> Self {
        Self {
            id: c.id,
            coupon_id: c.coupon_id,
            user_id: c.user_id.0,
            status: if c.used { "used" } else { "issued" },
            issued_at: c.issued_at,
            used_at: c.used_at,
            order_id: c.order_id.map(|o| o.0),
        }
    }
}
