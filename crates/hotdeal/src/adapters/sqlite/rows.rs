//! Row ↔ record conversions for the SQLite store.

use crate::model::{Deal, Order, OrderItem, Product, ShippingAddress, User};
use crate::ports::store::{StoreError, StoreResult};
use chrono::{DateTime, Utc};
use hotdeal_domain::{DealId, DealWindow, OrderId, OrderStatus, PaymentStatus, ProductId, UserId};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use uuid::Uuid;

pub fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub fn time(v: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(v).unwrap_or_default()
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Backend(format!("corrupt row: {what}").into())
}

pub fn user_from_row(r: &SqliteRow) -> StoreResult<User> {
    Ok(User {
        id: UserId(r.try_get("id")?),
        email: r.try_get("email")?,
        name: r.try_get("name")?,
        password_hash: r.try_get("password_hash")?,
        created_at: time(r.try_get("created_at")?),
    })
}

pub fn product_from_row(r: &SqliteRow) -> StoreResult<Product> {
    Ok(Product {
        id: ProductId(r.try_get("id")?),
        seller_id: UserId(r.try_get("seller_id")?),
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        price: r.try_get("price")?,
        stock: r.try_get("stock")?,
        category: r.try_get("category")?,
        image_url: r.try_get("image_url")?,
        created_at: time(r.try_get("created_at")?),
        updated_at: time(r.try_get("updated_at")?),
    })
}

pub fn deal_from_row(r: &SqliteRow) -> StoreResult<Deal> {
    let window = DealWindow::new(time(r.try_get("starts_at")?), time(r.try_get("ends_at")?))
        .ok_or_else(|| corrupt("deal window"))?;
    Ok(Deal {
        id: DealId(r.try_get("id")?),
        product_id: ProductId(r.try_get("product_id")?),
        deal_price: r.try_get("deal_price")?,
        deal_stock: r.try_get("deal_stock")?,
        remaining_stock: r.try_get("remaining_stock")?,
        per_user_limit: r.try_get("per_user_limit")?,
        window,
        settled_at: r.try_get::<Option<i64>, _>("settled_at")?.map(time),
        created_at: time(r.try_get("created_at")?),
        waiting_room: r.try_get("waiting_room")?,
        queue_admit_per_sec: r.try_get("queue_admit_per_sec")?,
    })
}

pub fn order_from_rows(r: &SqliteRow, items: &[SqliteRow]) -> StoreResult<Order> {
    let status: String = r.try_get("status")?;
    let payment: String = r.try_get("payment_status")?;
    let address: Option<String> = r.try_get("shipping_address")?;
    let shipping_address = address
        .map(|a| serde_json::from_str::<ShippingAddress>(&a))
        .transpose()
        .map_err(|_| corrupt("shipping address"))?;
    let items = items
        .iter()
        .map(|i| {
            Ok(OrderItem {
                id: i.try_get("id")?,
                product_id: ProductId(i.try_get("product_id")?),
                deal_id: i.try_get::<Option<Uuid>, _>("deal_id")?.map(DealId),
                product_name: i.try_get("product_name")?,
                quantity: i.try_get("quantity")?,
                unit_price: i.try_get("unit_price")?,
                subtotal: i.try_get("subtotal")?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
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
        cancelled_at: r.try_get::<Option<i64>, _>("cancelled_at")?.map(time),
        created_at: time(r.try_get("created_at")?),
        updated_at: time(r.try_get("updated_at")?),
        pay_by: r.try_get::<Option<i64>, _>("pay_by")?.map(time),
    })
}
