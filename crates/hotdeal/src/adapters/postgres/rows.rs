//! Row ↔ record conversions for the PostgreSQL store.

use crate::model::{
    Coupon, Deal, DiscountType, Order, OrderItem, Product, ShippingAddress, User, UserCoupon,
};
use crate::ports::store::{StoreError, StoreResult};
use hotdeal_domain::{DealId, DealWindow, OrderId, OrderStatus, PaymentStatus, ProductId, UserId};
use sqlx::postgres::PgRow;
use sqlx::Row;
use uuid::Uuid;

pub const USER_COLS: &str = "id, email, name, password_hash, created_at";
pub const PRODUCT_COLS: &str =
    "id, seller_id, name, description, price, stock, category, image_url, created_at, updated_at";
pub const DEAL_COLS: &str = "id, product_id, deal_price, deal_stock, remaining_stock, \
     per_user_limit, starts_at, ends_at, settled_at, created_at, waiting_room, queue_admit_per_sec";
pub const ORDER_COLS: &str = "id, user_id, total_amount, discount_amount, status, payment_status, \
     shipping_address, coupon_id, cancel_reason, cancelled_at, created_at, updated_at, pay_by";
pub const ITEM_COLS: &str =
    "order_id, id, product_id, deal_id, product_name, quantity, unit_price, subtotal";
pub const COUPON_COLS: &str =
    "id, name, discount_type, discount_value, max_discount, min_order_amount, \
     total_quantity, issued_count, starts_at, ends_at, created_by, created_at";
pub const USER_COUPON_COLS: &str = "id, coupon_id, user_id, status, issued_at, used_at, order_id";

pub fn corrupt(what: &str) -> StoreError {
    StoreError::Backend(format!("corrupt row: {what}").into())
}

pub fn user_from_row(r: &PgRow) -> StoreResult<User> {
    Ok(User {
        id: UserId(r.try_get("id")?),
        email: r.try_get("email")?,
        name: r.try_get("name")?,
        password_hash: r.try_get("password_hash")?,
        created_at: r.try_get("created_at")?,
    })
}

pub fn product_from_row(r: &PgRow) -> StoreResult<Product> {
    Ok(Product {
        id: ProductId(r.try_get("id")?),
        seller_id: UserId(r.try_get("seller_id")?),
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        price: r.try_get("price")?,
        stock: r.try_get("stock")?,
        category: r.try_get("category")?,
        image_url: r.try_get("image_url")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

pub fn deal_from_row(r: &PgRow) -> StoreResult<Deal> {
    let window = DealWindow::new(r.try_get("starts_at")?, r.try_get("ends_at")?)
        .ok_or_else(|| corrupt("deal window"))?;
    Ok(Deal {
        id: DealId(r.try_get("id")?),
        product_id: ProductId(r.try_get("product_id")?),
        deal_price: r.try_get("deal_price")?,
        deal_stock: r.try_get("deal_stock")?,
        remaining_stock: r.try_get("remaining_stock")?,
        per_user_limit: r.try_get("per_user_limit")?,
        window,
        settled_at: r.try_get("settled_at")?,
        created_at: r.try_get("created_at")?,
        waiting_room: r.try_get("waiting_room")?,
        queue_admit_per_sec: r.try_get("queue_admit_per_sec")?,
    })
}

pub fn item_from_row(i: &PgRow) -> StoreResult<OrderItem> {
    Ok(OrderItem {
        id: i.try_get("id")?,
        product_id: ProductId(i.try_get("product_id")?),
        deal_id: i.try_get::<Option<Uuid>, _>("deal_id")?.map(DealId),
        product_name: i.try_get("product_name")?,
        quantity: i.try_get("quantity")?,
        unit_price: i.try_get("unit_price")?,
        subtotal: i.try_get("subtotal")?,
    })
}

pub fn order_from_row(r: &PgRow, items: Vec<OrderItem>) -> StoreResult<Order> {
    let status: String = r.try_get("status")?;
    let payment: String = r.try_get("payment_status")?;
    let address: Option<String> = r.try_get("shipping_address")?;
    let shipping_address = address
        .map(|a| serde_json::from_str::<ShippingAddress>(&a))
        .transpose()
        .map_err(|_| corrupt("shipping address"))?;
    Ok(Order {
        id: OrderId(r.try_get("id")?),
        user_id: UserId(r.try_get("user_id")?),
        items,
        total_amount: r.try_get("total_amount")?,
        discount_amount: r.try_get("discount_amount")?,
        status: OrderStatus::parse(&status).ok_or_else(|| corrupt("order status"))?,
        payment_status: PaymentStatus::parse(&payment).ok_or_else(|| corrupt("payment status"))?,
        shipping_address,
        coupon_id: r.try_get("coupon_id")?,
        cancel_reason: r.try_get("cancel_reason")?,
        cancelled_at: r.try_get("cancelled_at")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        pay_by: r.try_get("pay_by")?,
    })
}

pub fn coupon_from_row(r: &PgRow) -> StoreResult<Coupon> {
    let kind: String = r.try_get("discount_type")?;
    Ok(Coupon {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        discount_type: DiscountType::parse(&kind).ok_or_else(|| corrupt("discount type"))?,
        discount_value: r.try_get("discount_value")?,
        max_discount: r.try_get("max_discount")?,
        min_order_amount: r.try_get("min_order_amount")?,
        total_quantity: r.try_get("total_quantity")?,
        issued_count: r.try_get("issued_count")?,
        window: DealWindow::new(r.try_get("starts_at")?, r.try_get("ends_at")?)
            .ok_or_else(|| corrupt("coupon window"))?,
        created_by: UserId(r.try_get("created_by")?),
        created_at: r.try_get("created_at")?,
    })
}

pub fn user_coupon_from_row(r: &PgRow) -> StoreResult<UserCoupon> {
    let status: String = r.try_get("status")?;
    Ok(UserCoupon {
        id: r.try_get("id")?,
        coupon_id: r.try_get("coupon_id")?,
        user_id: UserId(r.try_get("user_id")?),
        used: status == "used",
        issued_at: r.try_get("issued_at")?,
        used_at: r.try_get("used_at")?,
        order_id: r.try_get::<Option<Uuid>, _>("order_id")?.map(OrderId),
    })
}
