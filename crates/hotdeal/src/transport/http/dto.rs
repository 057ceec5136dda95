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
use utoipa::{IntoParams, ToSchema};
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

/// An integer field. JSON Schema (and so the document) counts `3.0` as an
/// integer, so a number with no fractional part is read as one; `3.5` or a
/// value outside `i64` is a field error.
fn whole<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    // 2^63 as f64: every integral f64 strictly below it in magnitude fits.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < LIMIT => Ok(f as i64),
        _ => Err(serde::de::Error::custom(format!(
            "invalid number `{n}`, expected an integer"
        ))),
    }
}

/// [`whole`] for an optional field (absent or `null` is `None`).
fn whole_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Option::<serde_json::Number>::deserialize(d)?
        .map(|n| whole(n).map_err(serde::de::Error::custom))
        .transpose()
}

/// [`whole`] for a PATCH field: absent (`None`), `null` (`Some(None)`).
fn nullable_whole<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    whole_opt(d).map(Some)
}

// ---------------------------------------------------------------- text rules
//
// Text rules are written into the document as JSON Schema patterns, which
// follow ECMA-262: `\s` there is the set below, so the code trims and
// tests blankness with exactly that set and a client (or fuzzer) that
// obeys the pattern is never refused.

/// ECMA-262 `\s`: WhiteSpace and LineTerminator.
fn is_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

/// `s` without leading and trailing [`is_space`] characters.
fn trimmed(s: &str) -> &str {
    s.trim_matches(is_space)
}

// ---------------------------------------------------------------- lists

/// Largest page number a list accepts.
const MAX_PAGE: i64 = 1_000_000;

/// The query of every list: documents `page` and `size` with the bounds
/// that [`page_of`] enforces.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // read by `page_of` from the raw query, kept for the document
pub struct PageQuery {
    /// Page number, from 1 (default 1).
    #[param(minimum = 1, maximum = 1_000_000)]
    page: Option<i64>,
    /// Items per page (default 20).
    #[param(minimum = 1, maximum = 100)]
    size: Option<i64>,
}

/// Reads `page` and `size` from the query string. A value must be plain
/// ASCII digits: no sign, no spaces (not even a trailing non-breaking one).
pub fn page_of(q: &HashMap<String, String>) -> Result<Page, FieldErrors> {
    let mut errors = FieldErrors::new();
    let mut num = |key: &str, default: i64, min: i64, max: i64| -> i64 {
        let digits = |v: &str| -> Option<i64> {
            let plain = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
            plain.then(|| v.parse::<i64>().ok()).flatten()
        };
        match q.get(key).map(|v| digits(v)) {
            None => default,
            Some(Some(n)) if (min..=max).contains(&n) => n,
            Some(_) => {
                errors.insert(
                    key.to_owned(),
                    format!("must be an integer in {min}..{max}"),
                );
                default
            }
        }
    };
    let page = num("page", 1, 1, MAX_PAGE);
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
    /// Items on all pages.
    #[schema(minimum = 0)]
    pub total: i64,
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub page: i64,
    #[schema(minimum = 1, maximum = 100)]
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
    /// Always `healthy` with a 200.
    #[schema(value_type = HealthStatus)]
    pub status: &'static str,
    /// Which service answered.
    #[schema(value_type = ServiceName)]
    pub service: &'static str,
}

/// The 503 answer of a health route: the process cannot record changes.
#[derive(Serialize, ToSchema)]
pub struct UnhealthyBody {
    /// Always `unhealthy`.
    #[schema(value_type = String, pattern = "^unhealthy$")]
    pub status: &'static str,
    /// Which service answered.
    #[schema(value_type = ServiceName)]
    pub service: &'static str,
    /// Why, in words.
    pub reason: &'static str,
}

// The closed sets of values the API answers with. The model renders them as
// strings; these enums only spell them out in the document.

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum HealthStatus {
    Healthy,
}

#[derive(ToSchema)]
#[schema(rename_all = "kebab-case")]
#[allow(dead_code)]
pub enum ServiceName {
    Gateway,
    AuthService,
    ProductService,
    OrderService,
    CouponService,
    PointService,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub enum TokenType {
    Bearer,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum DealStatus {
    Scheduled,
    Active,
    SoldOut,
    Ended,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum OrderStatusName {
    Pending,
    Confirmed,
    Shipped,
    Delivered,
    Cancelled,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum PaymentStatus {
    Unpaid,
    Paid,
    Refunded,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum PaymentMethod {
    Points,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum PointKind {
    Charge,
    Payment,
    Refund,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum DiscountType {
    Fixed,
    Percent,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum UserCouponStatus {
    Issued,
    Used,
}

// ---------------------------------------------------------------- auth

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterIn {
    /// An email address (at most 254 characters); compared
    /// case-insensitively.
    #[schema(
        max_length = 254,
        pattern = r"^[^@\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]{1,64}@[^@.\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+(\.[^@.\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+)+$"
    )]
    pub email: String,
    /// 8..1024 characters.
    #[schema(min_length = 8, max_length = 1024)]
    pub password: String,
    /// 2..50 characters once leading and trailing spaces are trimmed.
    #[schema(min_length = 2, pattern = r"^\s*\S[\s\S]{0,48}\S\s*$")]
    pub name: String,
}

impl RegisterIn {
    pub fn parse(self) -> Result<Registration, FieldErrors> {
        let mut v = Validator::new();
        v.email("email", &self.email)
            .length("password", &self.password, 8, 1024)
            .length("name", trimmed(&self.name), 2, 50);
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
    #[schema(value_type = TokenType)]
    pub token_type: &'static str,
    /// Seconds the access token is valid: 3600.
    #[schema(minimum = 1)]
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
    /// 1..200 characters, not all spaces.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: String,
    /// At most 5000 characters.
    #[serde(default)]
    #[schema(max_length = 5000)]
    pub description: Option<String>,
    /// Won.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    #[serde(deserialize_with = "whole")]
    pub price: i64,
    /// Units.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    #[serde(deserialize_with = "whole")]
    pub stock: i64,
    /// At most 50 characters; the list filter matches it exactly.
    #[serde(default)]
    #[schema(max_length = 50)]
    pub category: Option<String>,
    /// At most 2048 characters.
    #[serde(default)]
    #[schema(max_length = 2048)]
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
            .check(!trimmed(n).is_empty(), "name", "must not be blank");
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
    /// 1..200 characters, not all spaces; cannot be null.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = String, required = false, min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: Option<Option<String>>,
    /// At most 5000 characters; `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 5000)]
    pub description: Option<Option<String>>,
    /// Won; cannot be null.
    #[serde(default, deserialize_with = "nullable_whole")]
    #[schema(value_type = i64, required = false, minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub price: Option<Option<i64>>,
    /// At most 50 characters; `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 50)]
    pub category: Option<Option<String>>,
    /// At most 2048 characters; `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 2048)]
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
    #[schema(minimum = 0)]
    pub price: i64,
    /// Free units (excluding units set aside for deals).
    #[schema(minimum = 0)]
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
    #[schema(minimum = -1_000_000_000_000_i64, maximum = 1_000_000_000_000_i64)]
    #[serde(deserialize_with = "whole")]
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
    #[schema(minimum = 0)]
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
    /// Won.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    #[serde(deserialize_with = "whole")]
    pub deal_price: i64,
    /// Units set aside from the product.
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    #[serde(deserialize_with = "whole")]
    pub deal_stock: i64,
    /// Units one user may buy from this deal; absent or null = no limit.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    #[serde(deserialize_with = "whole_opt")]
    pub per_user_limit: Option<i64>,
    pub starts_at: DateTime<Utc>,
    /// Must be after `starts_at`.
    pub ends_at: DateTime<Utc>,
    /// Put the deal behind a waiting room: orders on it need an admitted
    /// `Queue-Token` (see `POST /deals/{deal_id}/queue`). Default false.
    #[serde(default)]
    pub waiting_room: bool,
    /// Users admitted per second from the waiting room; absent or null =
    /// the server's default. Only with `waiting_room: true`.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1_000_000)]
    #[serde(deserialize_with = "whole_opt")]
    pub queue_admit_per_sec: Option<i64>,
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
        if let Some(r) = self.queue_admit_per_sec {
            v.range("queue_admit_per_sec", r, 1, 1_000_000);
            v.check(
                self.waiting_room,
                "queue_admit_per_sec",
                "only for a deal with waiting_room: true",
            );
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
            waiting_room: self.waiting_room,
            queue_admit_per_sec: self.queue_admit_per_sec,
        })
    }
}

#[derive(Serialize, ToSchema)]
pub struct DealOut {
    pub id: Uuid,
    pub product_id: Uuid,
    pub product: ProductOut,
    #[schema(minimum = 0)]
    pub deal_price: i64,
    /// The product's price.
    #[schema(minimum = 0)]
    pub original_price: i64,
    #[schema(minimum = 1)]
    pub deal_stock: i64,
    #[schema(minimum = 0)]
    pub remaining_stock: i64,
    /// Units one user may buy; null = no limit.
    #[schema(minimum = 1)]
    pub per_user_limit: Option<i64>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// From the server's clock.
    #[schema(value_type = DealStatus)]
    pub status: &'static str,
    pub created_at: DateTime<Utc>,
    /// Orders need an admitted `Queue-Token`.
    pub waiting_room: bool,
    /// Users admitted per second from the waiting room; null = the
    /// server's default (or no waiting room).
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub queue_admit_per_sec: Option<i64>,
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
            waiting_room: v.deal.waiting_room,
            queue_admit_per_sec: v.deal.queue_admit_per_sec,
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
    #[schema(minimum = 1, maximum = 10)]
    #[serde(deserialize_with = "whole")]
    pub quantity: i64,
}

#[derive(Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct ShippingAddressIn {
    /// 1..50 characters once leading and trailing spaces are trimmed.
    #[schema(min_length = 1, pattern = r"^\s*\S([\s\S]{0,48}\S)?\s*$")]
    pub recipient_name: String,
    /// A Korean mobile number, dashes optional: `010-1234-5678`.
    #[schema(pattern = r"^01[0-9]-?[0-9]{3,4}-?[0-9]{4}$")]
    pub phone: String,
    /// 1..200 characters once leading and trailing spaces are trimmed.
    #[schema(min_length = 1, pattern = r"^\s*\S([\s\S]{0,198}\S)?\s*$")]
    pub address: String,
    /// At most 100 characters.
    #[serde(default)]
    #[schema(max_length = 100)]
    pub address_detail: Option<String>,
    /// Five digits.
    #[schema(pattern = r"^[0-9]{5}$")]
    pub postal_code: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderIn {
    /// 1..10 lines.
    #[schema(min_items = 1, max_items = 10)]
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
    #[schema(value_type = PaymentMethod)]
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
                trimmed(&a.recipient_name),
                1,
                50,
            )
            .check(
                is_phone(&a.phone),
                "shipping_address.phone",
                "must look like 010-1234-5678",
            )
            .length("shipping_address.address", trimmed(&a.address), 1, 200)
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
    #[schema(max_length = 500)]
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
    #[schema(minimum = 1, maximum = 10)]
    pub quantity: i64,
    #[schema(minimum = 0)]
    pub unit_price: i64,
    #[schema(minimum = 0)]
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
    /// What the buyer pays, after the discount.
    #[schema(minimum = 0)]
    pub total_amount: i64,
    #[schema(minimum = 0)]
    pub discount_amount: i64,
    #[schema(value_type = OrderStatusName)]
    pub status: &'static str,
    #[schema(value_type = PaymentStatus)]
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
    #[schema(minimum = 0)]
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
    /// Points to add.
    #[schema(minimum = 1, maximum = 10_000_000)]
    #[serde(deserialize_with = "whole")]
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
    #[schema(minimum = 1, maximum = 10_000_000)]
    pub amount: i64,
    /// The balance after the charge.
    #[schema(minimum = 0)]
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
    #[schema(value_type = PointKind)]
    pub kind: &'static str,
    /// Points moved (always positive; `kind` says which way).
    #[schema(minimum = 1)]
    pub amount: i64,
    #[schema(minimum = 0)]
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
    /// 1..100 characters once leading and trailing spaces are trimmed.
    #[schema(min_length = 1, pattern = r"^\s*\S([\s\S]{0,98}\S)?\s*$")]
    pub name: String,
    /// `fixed` (won off) or `percent` (1..100 % off).
    #[schema(value_type = DiscountType)]
    pub discount_type: String,
    /// Won off for `fixed`; 1..100 (percent) for `percent`.
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    #[serde(deserialize_with = "whole")]
    pub discount_value: i64,
    /// Cap of a percent discount, in won.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    #[serde(deserialize_with = "whole_opt")]
    pub max_discount: Option<i64>,
    /// Orders below this (before discount) cannot use the coupon.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    #[serde(deserialize_with = "whole_opt")]
    pub min_order_amount: Option<i64>,
    /// Coupons to hand out.
    #[schema(minimum = 1, maximum = 10_000_000)]
    #[serde(deserialize_with = "whole")]
    pub total_quantity: i64,
    pub starts_at: DateTime<Utc>,
    /// Must be after `starts_at`; the coupon is usable until then.
    pub ends_at: DateTime<Utc>,
}

impl CouponIn {
    pub fn parse(self) -> Result<crate::services::NewCoupon, FieldErrors> {
        let mut v = Validator::new();
        v.length("name", trimmed(&self.name), 1, 100);
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
    #[schema(value_type = DiscountType)]
    pub discount_type: &'static str,
    #[schema(minimum = 1)]
    pub discount_value: i64,
    #[schema(minimum = 1)]
    pub max_discount: Option<i64>,
    #[schema(minimum = 0)]
    pub min_order_amount: i64,
    #[schema(minimum = 1)]
    pub total_quantity: i64,
    #[schema(minimum = 0)]
    pub issued_count: i64,
    #[schema(minimum = 0)]
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
    #[schema(value_type = UserCouponStatus)]
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
