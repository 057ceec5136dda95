//! Idempotency keys on orders, payments and charges.

use crate::points::charge;
use crate::support::{spawn_app, spawn_app_in};
use hyper::{Method, StatusCode};
use serde_json::json;
use std::sync::Arc;

#[tokio::test]
async fn a_repeat_returns_the_first_answer_and_changes_nothing() {
    let app = spawn_app().await;
    let (_, seller) = app.user("s@x.co").await;
    let (_, buyer) = app.user("b@x.co").await;
    let p = app.product(&seller, 1000, 10).await;
    let body = json!({"items": [{"product_id": p, "quantity": 1}]}).to_string();
    let auth = format!("Bearer {buyer}");
    let send = |key: &'static str, body: String| {
        let (app, auth) = (&app, auth.clone());
        async move {
            app.raw(
                Method::POST,
                "/orders",
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                    ("idempotency-key", key),
                ],
                body,
            )
            .await
        }
    };
    let first = send("order-1", body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = send("order-1", body.clone()).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body, first.body, "the same answer");
    assert_eq!(app.stock(&p).await, 9, "one order only");
    let other = json!({"items": [{"product_id": p, "quantity": 2}]}).to_string();
    let r = send("order-1", other).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "IDEMPOTENCY_KEY_REUSED")
    );
    // Keys are per user.
    let (_, other_buyer) = app.user("o@x.co").await;
    let r = app
        .raw(
            Method::POST,
            "/orders",
            &[
                ("authorization", &format!("Bearer {other_buyer}")),
                ("content-type", "application/json"),
                ("idempotency-key", "order-1"),
            ],
            body.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_ne!(r.body["id"], first.body["id"]);
    // A bad key.
    let long = "k".repeat(256);
    let r = app
        .raw(
            Method::POST,
            "/orders",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
                ("idempotency-key", &long),
            ],
            body,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Charges and payments too.
    let charge_with = |key: &'static str, amount: i64| {
        let (app, auth) = (&app, auth.clone());
        async move {
            app.raw(
                Method::POST,
                "/points/charges",
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                    ("idempotency-key", key),
                ],
                json!({"amount": amount}).to_string(),
            )
            .await
        }
    };
    let c1 = charge_with("charge-1", 5000).await;
    let c2 = charge_with("charge-1", 5000).await;
    assert_eq!(
        (c1.status, c2.status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert_eq!(c1.body, c2.body);
    assert_eq!(app.get("/points", Some(&buyer)).await.body["balance"], 5000);
    let id = first.body["id"].as_str().expect("id");
    let pay_path = format!("/orders/{id}/payments");
    let pay_headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
        ("idempotency-key", "pay-1"),
    ];
    let pay = || {
        app.raw(
            Method::POST,
            &pay_path,
            &pay_headers,
            json!({"method": "points"}).to_string(),
        )
    };
    let p1 = pay().await;
    let p2 = pay().await;
    assert_eq!((p1.status, p2.status), (StatusCode::OK, StatusCode::OK));
    assert_eq!(p1.body, p2.body);
    assert_eq!(
        app.get("/points", Some(&buyer)).await.body["balance"],
        4000,
        "charged once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_repeat_during_the_first_is_told_to_wait() {
    let app = Arc::new(spawn_app().await);
    let (_, buyer) = app.user("b@x.co").await;
    // Stall the writer so the first request stays in flight.
    let mut side = app.probe().await;
    side.stall_writes().await;
    let auth = format!("Bearer {buyer}");
    let first = {
        let (app, auth) = (app.clone(), auth.clone());
        tokio::spawn(async move {
            app.raw(
                Method::POST,
                "/points/charges",
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                    ("idempotency-key", "k"),
                ],
                json!({"amount": 100}).to_string(),
            )
            .await
        })
    };
    let user = app.storefront.auth.authenticate(&buyer).expect("token");
    while !app.storefront.idempotency.is_running(user, "k").await {
        tokio::task::yield_now().await;
    }
    let second = app
        .raw(
            Method::POST,
            "/points/charges",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
                ("idempotency-key", "k"),
            ],
            json!({"amount": 100}).to_string(),
        )
        .await;
    assert_eq!(
        (second.status, second.code()),
        (StatusCode::CONFLICT, "REQUEST_IN_PROGRESS")
    );
    side.release().await;
    assert_eq!(first.await.expect("join").status, StatusCode::CREATED);
    assert_eq!(app.get("/points", Some(&buyer)).await.body["balance"], 100);
}

#[tokio::test]
async fn answers_survive_a_restart() {
    let app = spawn_app().await;
    let (_, buyer) = app.user("b@x.co").await;
    charge(&app, &buyer, 1).await;
    let auth = format!("Bearer {buyer}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
        ("idempotency-key", "restart-1"),
    ];
    let body = json!({"amount": 700}).to_string();
    let first = app
        .raw(Method::POST, "/points/charges", &headers, body.clone())
        .await;
    let (dir, clock) = app.stop().await;
    let app = spawn_app_in(dir, clock).await;
    let again = app
        .raw(Method::POST, "/points/charges", &headers, body)
        .await;
    assert_eq!((again.status, &again.body), (first.status, &first.body));
    assert_eq!(
        again
            .headers
            .get("idempotent-replayed")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    assert_eq!(app.get("/points", Some(&buyer)).await.body["balance"], 701);
}

/// A keyed order runs without reading its key first; a repeat the server
/// does not remember (it restarted) is refused by the store or fails on
/// its own, and either way gets the first answer.
#[tokio::test]
async fn an_order_repeated_after_a_restart_gets_its_first_answer() {
    let app = spawn_app().await;
    let (_, seller) = app.user("s@x.co").await;
    let (_, buyer) = app.user("b@x.co").await;
    charge(&app, &buyer, 10_000).await;
    let plenty = app.product(&seller, 1000, 10).await;
    let last = app.product(&seller, 500, 1).await;
    let auth = format!("Bearer {buyer}");
    let paid = |p: &str, qty: i64| {
        json!({"items": [{"product_id": p, "quantity": qty}], "payment": {"method": "points"}})
            .to_string()
    };
    async fn order(
        app: &crate::support::TestApp,
        auth: &str,
        key: &str,
        body: String,
    ) -> crate::support::Res {
        app.raw(
            Method::POST,
            "/orders",
            &[
                ("authorization", auth),
                ("content-type", "application/json"),
                ("idempotency-key", key),
            ],
            body,
        )
        .await
    }
    let first = order(&app, &auth, "o-plenty", paid(&plenty, 2)).await;
    let last_one = order(&app, &auth, "o-last", paid(&last, 1)).await;
    assert_eq!(
        (first.status, last_one.status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    let (dir, clock) = app.stop().await;
    let app = spawn_app_in(dir, clock).await;
    // The store refuses the repeat: nothing taken, the first answer.
    let again = order(&app, &auth, "o-plenty", paid(&plenty, 2)).await;
    assert_eq!((again.status, &again.body), (first.status, &first.body));
    assert_eq!(
        again
            .headers
            .get("idempotent-replayed")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    assert_eq!(app.stock(&plenty).await, 8, "one order only");
    // Sold out since: the repeat still gets its first answer.
    let again = order(&app, &auth, "o-last", paid(&last, 1)).await;
    assert_eq!(
        (again.status, &again.body),
        (last_one.status, &last_one.body)
    );
    // Another request under an answered key, stock or not: 422.
    for body in [paid(&plenty, 1), paid(&last, 1)] {
        let r = order(&app, &auth, "o-plenty", body).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "IDEMPOTENCY_KEY_REUSED")
        );
    }
    assert_eq!(app.stock(&plenty).await, 8);
    assert_eq!(
        app.get("/points", Some(&buyer)).await.body["balance"],
        10_000 - 2000 - 500,
        "paid once each"
    );
    // A new key still orders.
    let fresh = order(&app, &auth, "o-new", paid(&plenty, 1)).await;
    assert_eq!(fresh.status, StatusCode::CREATED);
    assert_eq!(app.stock(&plenty).await, 7);
}
