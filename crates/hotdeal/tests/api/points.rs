//! Points, paying orders, refunds and the payment window.

use crate::support::{scaled_backend, spawn_app, TestApp};
use chrono::Duration;
use hyper::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;

pub async fn charge(app: &TestApp, token: &str, amount: i64) -> Value {
    let r = app
        .post("/points/charges", Some(token), json!({"amount": amount}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body
}

async fn balance(app: &TestApp, token: &str) -> i64 {
    app.get("/points", Some(token)).await.body["balance"]
        .as_i64()
        .expect("balance")
}

/// Σ charges + refunds − payments of a user's history.
async fn history_sum(app: &TestApp, token: &str) -> i64 {
    let h = app.get("/points/history?size=100", Some(token)).await;
    h.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| {
            let amount = e["amount"].as_i64().expect("amount");
            if e["kind"] == "payment" {
                -amount
            } else {
                amount
            }
        })
        .sum()
}

#[tokio::test]
async fn charges_and_history() {
    let app = spawn_app().await;
    let (id, t) = app.user("p@x.co").await;
    let r = app.get("/points", Some(&t)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        (r.body["user_id"].as_str(), r.body["balance"].as_i64()),
        (Some(id.as_str()), Some(0))
    );
    assert!(r.body["updated_at"].is_string());
    let c = charge(&app, &t, 5000).await;
    assert_eq!(
        (c["amount"].as_i64(), c["balance"].as_i64()),
        (Some(5000), Some(5000))
    );
    assert!(c["charge_id"].is_string());
    charge(&app, &t, 2500).await;
    assert_eq!(balance(&app, &t).await, 7500);
    let h = app.get("/points/history", Some(&t)).await;
    assert_eq!(h.body["total"], 2);
    let newest = &h.body["items"][0];
    assert_eq!(
        (
            newest["kind"].as_str(),
            newest["amount"].as_i64(),
            newest["balance_after"].as_i64()
        ),
        (Some("charge"), Some(2500), Some(7500))
    );
    assert!(newest["order_id"].is_null());
    for bad in [0, -1, 10_000_001] {
        let r = app
            .post("/points/charges", Some(&t), json!({"amount": bad}))
            .await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR"),
            "{bad}"
        );
    }
    assert_eq!(
        app.get("/points", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.post("/points/charges", None, json!({"amount": 1}))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        balance(&app, &t).await,
        7500,
        "refused charges change nothing"
    );
}

#[tokio::test]
async fn paying_with_points_at_once_and_later_and_refunds() {
    let app = spawn_app().await;
    let (_, seller) = app.user("s@x.co").await;
    let (_, buyer) = app.user("b@x.co").await;
    let p = app.product(&seller, 3000, 10).await;
    charge(&app, &buyer, 7000).await;

    let r = app
        .post(
            "/orders",
            Some(&buyer),
            json!({"items": [{"product_id": p, "quantity": 2}], "payment": {"method": "points"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["payment_status"], "paid");
    let paid_id = r.body["id"].as_str().expect("id").to_owned();
    assert_eq!(balance(&app, &buyer).await, 1000);

    // Short of points: nothing changes.
    let r = app
        .post(
            "/orders",
            Some(&buyer),
            json!({"items": [{"product_id": p, "quantity": 1}], "payment": {"method": "points"}}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "INSUFFICIENT_POINTS")
    );
    assert_eq!(
        (app.stock(&p).await, balance(&app, &buyer).await),
        (8, 1000)
    );
    let r = app
        .post(
            "/orders",
            Some(&buyer),
            json!({"items": [{"product_id": p, "quantity": 1}], "payment": {"method": "card"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Unpaid, then paid later.
    let r = app
        .order(&buyer, json!([{"product_id": p, "quantity": 1}]))
        .await;
    assert_eq!(r.body["payment_status"], "unpaid");
    let later = r.body["id"].as_str().expect("id").to_owned();
    let pay = |id: String| {
        let (app, buyer) = (&app, buyer.clone());
        async move {
            app.post(
                &format!("/orders/{id}/payments"),
                Some(&buyer),
                json!({"method": "points"}),
            )
            .await
        }
    };
    let r = pay(later.clone()).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "INSUFFICIENT_POINTS")
    );
    charge(&app, &buyer, 2000).await;
    let r = pay(later.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["payment_status"], "paid");
    assert_eq!(balance(&app, &buyer).await, 0);
    let r = pay(later.clone()).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "INVALID_STATE")
    );
    let (_, stranger) = app.user("x@x.co").await;
    let r = app
        .post(
            &format!("/orders/{later}/payments"),
            Some(&stranger),
            json!({"method": "points"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .post(
            &format!("/orders/{}/payments", uuid::Uuid::new_v4()),
            Some(&buyer),
            json!({"method": "points"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Cancel refunds.
    let r = app
        .post(
            &format!("/orders/{paid_id}/cancel"),
            Some(&buyer),
            json!({}),
        )
        .await;
    assert_eq!(r.body["payment_status"], "refunded");
    assert_eq!(balance(&app, &buyer).await, 6000);
    let h = app.get("/points/history", Some(&buyer)).await;
    assert_eq!(h.body["items"][0]["kind"], "refund");
    assert_eq!(h.body["items"][0]["order_id"], paid_id.as_str());
    assert_eq!(history_sum(&app, &buyer).await, 6000, "balance = Σ history");
    assert_eq!(app.stock(&p).await, 9);
}

#[tokio::test]
async fn unpaid_deal_orders_expire_and_a_late_payment_is_refused() {
    let app = spawn_app().await;
    let (_, seller) = app.user("s@x.co").await;
    let (buyer_id, buyer) = app.user("b@x.co").await;
    let p = app.product(&seller, 3000, 10).await;
    let deal = app.deal(&seller, &p, 1000, 5, Some(2)).await;
    charge(&app, &buyer, 10_000).await;
    let r = app
        .order(
            &buyer,
            json!([{"product_id": p, "deal_id": deal, "quantity": 2}]),
        )
        .await;
    let id = r.body["id"].as_str().expect("id").to_owned();
    // A plain-product unpaid order holds no deal stock and never expires.
    let plain = app
        .order(&buyer, json!([{"product_id": p, "quantity": 1}]))
        .await
        .body["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(app.remaining(&deal).await, 3);

    app.clock.advance(Duration::minutes(9));
    assert_eq!(
        app.ordering().expire_due_orders().await.expect("expire"),
        0,
        "not yet"
    );
    app.clock.advance(Duration::minutes(1));
    assert_eq!(app.ordering().expire_due_orders().await.expect("expire"), 1);
    let token = app.storefront.auth.tokens.issue(
        hotdeal_domain::UserId::parse(&buyer_id).expect("id"),
        app.clock_now(),
    );
    let r = app.get(&format!("/orders/{id}"), Some(&token)).await;
    assert_eq!(
        (r.body["status"].as_str(), r.body["cancel_reason"].as_str()),
        (Some("cancelled"), Some("PAYMENT_TIMEOUT"))
    );
    assert_eq!(app.remaining(&deal).await, 5, "the stock came back");
    let r = app
        .post(
            &format!("/orders/{id}/payments"),
            Some(&token),
            json!({"method": "points"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "ORDER_EXPIRED")
    );
    assert_eq!(balance(&app, &token).await, 10_000, "nothing charged");
    assert_eq!(
        app.get(&format!("/orders/{plain}"), Some(&token))
            .await
            .body["status"],
        "confirmed"
    );
    // The per-user limit came back with the units.
    let r = app
        .order(
            &token,
            json!([{"product_id": p, "deal_id": deal, "quantity": 2}]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payment_racing_expiry_is_decided_once() {
    let app = Arc::new(spawn_app().await);
    let (_, seller) = app.user("s@x.co").await;
    let (buyer_id, buyer) = app.user("b@x.co").await;
    let buyer_id = hotdeal_domain::UserId::parse(&buyer_id).expect("id");
    let p = app.product(&seller, 1000, 1000).await;
    let deal = app.deal(&seller, &p, 100, 100, None).await;
    charge(&app, &buyer, 100 * 20).await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        let r = app
            .order(
                &buyer,
                json!([{"product_id": p, "deal_id": deal, "quantity": 1}]),
            )
            .await;
        ids.push(r.body["id"].as_str().expect("id").to_owned());
    }
    // The window closes while every payment is in flight.
    app.clock
        .advance(Duration::minutes(10) - Duration::milliseconds(1));
    let token = app.storefront.auth.tokens.issue(buyer_id, app.clock_now());
    let payments: Vec<_> = ids
        .iter()
        .map(|id| {
            let (app, token, id) = (app.clone(), token.clone(), id.clone());
            tokio::spawn(async move {
                app.post(
                    &format!("/orders/{id}/payments"),
                    Some(&token),
                    json!({"method": "points"}),
                )
                .await
            })
        })
        .collect();
    app.clock.advance(Duration::milliseconds(1));
    let expired = app.ordering().expire_due_orders().await.expect("expire");
    let mut paid = 0;
    for p in payments {
        let r = p.await.expect("join");
        match (r.status, r.code()) {
            (StatusCode::OK, _) => paid += 1,
            (StatusCode::CONFLICT, "ORDER_EXPIRED") => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    // An order a payment held locked when the sweep passed (PostgreSQL's
    // sweep skips locked rows) is swept by the next one.
    let expired = expired + app.ordering().expire_due_orders().await.expect("expire");
    assert_eq!(paid + expired, 20, "each order is either paid or expired");
    assert_eq!(
        balance(&app, &token).await,
        2000 - 100 * paid as i64,
        "only paid orders were charged"
    );
    assert_eq!(app.remaining(&deal).await, 100 - paid as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_user_paying_fifty_orders_at_once() {
    let app = Arc::new(spawn_app().await);
    let (_, seller) = app.user("s@x.co").await;
    let (_, buyer) = app.user("b@x.co").await;
    let p = app.product(&seller, 1000, 1000).await;
    charge(&app, &buyer, 30_000).await;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (app, buyer, p) = (app.clone(), buyer.clone(), p.clone());
            tokio::spawn(async move {
                app.post("/orders", Some(&buyer), json!({"items": [{"product_id": p, "quantity": 1}], "payment": {"method": "points"}})).await
            })
        })
        .collect();
    let (mut paid, mut short) = (0, 0);
    for t in tasks {
        let r = t.await.expect("join");
        match (r.status, r.code()) {
            (StatusCode::CREATED, _) => paid += 1,
            (StatusCode::BAD_REQUEST, "INSUFFICIENT_POINTS") => short += 1,
            other => panic!("unexpected {other:?}: {}", r.body),
        }
    }
    assert_eq!(
        (paid, short),
        (30, 20),
        "no spurious failure, no double spend"
    );
    assert_eq!(balance(&app, &buyer).await, 0);
    assert_eq!(history_sum(&app, &buyer).await, 0);
    assert_eq!(app.stock(&p).await, 970);
    // Each row shows the balance it left, in order, however the payments
    // were batched.
    let h = app.get("/points/history?size=100", Some(&buyer)).await;
    let mut rows: Vec<(i64, i64, bool)> = h.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| {
            (
                e["amount"].as_i64().expect("amount"),
                e["balance_after"].as_i64().expect("balance_after"),
                e["kind"] == "payment",
            )
        })
        .collect();
    rows.reverse(); // oldest first
    let mut running = 0;
    for (amount, after, payment) in rows {
        running += if payment { -amount } else { amount };
        assert_eq!(after, running, "balance_after follows the payments");
    }
}

#[tokio::test]
async fn sign_up_answers_with_tokens() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/auth/register",
            None,
            json!({"email": "t@x.co", "password": "password123", "name": "Tok"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    for f in [
        "id",
        "email",
        "name",
        "created_at",
        "access_token",
        "refresh_token",
    ] {
        assert!(r.body.get(f).is_some(), "{f}");
    }
    assert_eq!(
        (r.body["token_type"].as_str(), r.body["expires_in"].as_i64()),
        (Some("Bearer"), Some(3600))
    );
    let t = r.body["access_token"].as_str().expect("token");
    assert_eq!(
        app.get("/auth/users/me", Some(t)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn committed_changes_are_published_as_events() {
    if scaled_backend() {
        // There the relay publishes to NATS instead (tests/api/events.rs).
        eprintln!("in-process event bus: not used in the scaled mode");
        return;
    }
    let app = spawn_app().await;
    let mut events = app.storefront.events.subscribe();
    let (_, seller) = app.user("s@x.co").await;
    let (_, buyer) = app.user("b@x.co").await;
    let p = app.product(&seller, 1000, 10).await;
    let id = app
        .order(&buyer, json!([{"product_id": p, "quantity": 1}]))
        .await
        .body["id"]
        .as_str()
        .expect("id")
        .to_owned();
    app.post(&format!("/orders/{id}/cancel"), Some(&buyer), json!({}))
        .await;
    assert_eq!(
        app.storefront.events.relay_events().await.expect("relay"),
        3
    );
    let created = events.recv().await.expect("event");
    assert_eq!(
        (
            created.topic.as_str(),
            created.payload["product_id"].as_str()
        ),
        ("product.created", Some(p.as_str()))
    );
    let placed = events.recv().await.expect("event");
    assert_eq!(
        (placed.topic.as_str(), placed.payload["order_id"].as_str()),
        ("order.placed", Some(id.as_str()))
    );
    let cancelled = events.recv().await.expect("event");
    assert_eq!(cancelled.topic, "order.cancelled");
    assert_eq!(
        app.storefront.events.relay_events().await.expect("relay"),
        0,
        "published once"
    );
}
