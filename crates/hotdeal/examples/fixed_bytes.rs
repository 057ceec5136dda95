//! A yardstick for `bench/write_path.sh`: hotdeal's own accept loop and
//! axum, answering every `POST /orders` with the same bytes (an order as
//! the API renders one) and doing nothing else. What `POST /orders` costs
//! beyond this is the order path itself.
//!
//! `cargo run --release --example fixed_bytes -- 127.0.0.1:18090`

use axum::http::{header, StatusCode};
use axum::routing::post;
use axum::Router;
use hotdeal::transport::http::{server, HttpLimits};
use std::time::Duration;

const ORDER: &str = r#"{"id":"01a22d6b-6b6b-7250-9d0e-76d7c99c72bc","user_id":"01a22d6b-6b6b-7250-9d0e-76d7c99c72bd","items":[{"id":"01a22d6b-6b6b-7250-9d0e-76d7c99c72be","product_id":"01a22d6b-6b6b-7250-9d0e-76d7c99c72bf","deal_id":null,"product_name":"write path","quantity":1,"unit_price":100,"subtotal":100}],"total_amount":100,"discount_amount":0,"status":"confirmed","payment_status":"unpaid","shipping_address":{"recipient_name":"Load Tester","phone":"010-1234-5678","address":"1 Teheran-ro, Gangnam-gu, Seoul","address_detail":"3F","postal_code":"06236"},"coupon_id":null,"cancel_reason":null,"cancelled_at":null,"created_at":"2026-11-30T17:00:00.000000Z","updated_at":"2026-11-30T17:00:00.000000Z"}"#;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18090".into());
    let router = Router::new().route(
        "/orders",
        post(|| async {
            (
                StatusCode::CREATED,
                [(header::CONTENT_TYPE, "application/json")],
                ORDER,
            )
        }),
    );
    let limits = HttpLimits {
        max_in_flight: 4096,
        read_cache_max_age: Duration::from_millis(100),
        max_connections: 10_000,
        header_timeout: Duration::from_secs(10),
        body_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(5),
    };
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    server::serve(listener, router, limits, std::future::pending()).await?;
    Ok(())
}
