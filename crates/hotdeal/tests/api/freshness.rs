//! The contract's freshness rule, with the production page cache (stock
//! counts may trail *orders* by up to 100 ms): every other change answered
//! 2xx — a cancel, a stock edit, an expiry, a deal's settlement — shows in
//! every read that starts after the answer.

use crate::support::{spawn_app_with, t0, TestApp};
use chrono::Duration;
use hotdeal::ports::ManualClock;
use hyper::StatusCode;
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

async fn app_with_page_cache() -> TestApp {
    let dir = std::env::temp_dir().join(format!("hotdeal-test-{}", uuid::Uuid::new_v4()));
    spawn_app_with(dir, Arc::new(ManualClock::new(t0())), |c| {
        c.read_cache_ms = 100;
        c.payment_window_secs = 600;
    })
    .await
}

/// Reads `read` until it returns `want` (orders may show late, by design).
async fn settles_to(read: impl AsyncFn() -> i64, want: i64) {
    let deadline = Instant::now() + std::time::Duration::from_secs(2);
    while read().await != want {
        assert!(Instant::now() < deadline, "never showed {want}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn cancels_and_stock_edits_show_at_once() {
    let app = app_with_page_cache().await;
    let (_, seller) = app.user("seller@x.co").await;
    let (_, buyer) = app.user("buyer@x.co").await;
    let product = app.product(&seller, 1000, 10).await;
    let deal = app.deal(&seller, &product, 500, 5, None).await;
    let stock = || app.stock(&product);
    let remaining = || app.remaining(&deal);
    assert_eq!(stock().await, 5);
    assert_eq!(remaining().await, 5);

    // A stock edit answered 200 shows on the very next read.
    let r = app
        .patch(
            &format!("/products/{product}/stock"),
            Some(&seller),
            json!({"delta": 7}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(stock().await, 12, "stock PATCH");
    assert_eq!(
        app.get(&format!("/products/{product}"), None).await.body["stock"],
        12
    );

    // Orders may show late; a cancel may not.
    let order = app
        .order(&buyer, json!([{"product_id": product, "quantity": 4}]))
        .await;
    assert_eq!(order.status, StatusCode::CREATED);
    settles_to(stock, 8).await;
    let id = order.body["id"].as_str().expect("id");
    let r = app
        .post(&format!("/orders/{id}/cancel"), Some(&buyer), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(stock().await, 12, "product stock after a cancel");

    let order = app
        .order(
            &buyer,
            json!([{"product_id": product, "deal_id": deal, "quantity": 2}]),
        )
        .await;
    assert_eq!(order.status, StatusCode::CREATED);
    settles_to(remaining, 3).await;
    let id = order.body["id"].as_str().expect("id");
    let r = app
        .post(&format!("/orders/{id}/cancel"), Some(&buyer), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(remaining().await, 5, "deal remaining after a cancel");
    let deals = app.get("/products/deals", None).await;
    assert_eq!(deals.body["items"][0]["remaining_stock"], 5, "deals list");
}

#[tokio::test]
async fn expiries_and_settlements_show_at_once() {
    let app = app_with_page_cache().await;
    let (_, seller) = app.user("seller@x.co").await;
    let (_, buyer) = app.user("buyer@x.co").await;
    let product = app.product(&seller, 1000, 10).await;
    let deal = app.deal(&seller, &product, 500, 5, None).await;
    let remaining = || app.remaining(&deal);
    assert_eq!(remaining().await, 5);
    let order = app
        .order(
            &buyer,
            json!([{"product_id": product, "deal_id": deal, "quantity": 2}]),
        )
        .await;
    assert_eq!(order.status, StatusCode::CREATED);
    settles_to(remaining, 3).await;

    // The unpaid order expires: its units are back on the next read.
    app.clock.advance(Duration::minutes(11));
    assert_eq!(app.ordering().expire_due_orders().await.expect("expire"), 1);
    assert_eq!(remaining().await, 5, "after an expiry");

    // The deal ends: its unsold units go back to the product at once.
    assert_eq!(app.stock(&product).await, 5);
    app.clock.advance(Duration::hours(1));
    app.catalogue().settle_ended_deals().await.expect("settle");
    assert_eq!(app.stock(&product).await, 10, "after settlement");
}
