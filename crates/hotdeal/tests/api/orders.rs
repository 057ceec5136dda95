use crate::support::spawn_app;
use hyper::StatusCode;
use serde_json::json;

fn address() -> serde_json::Value {
    json!({"recipient_name": "Kim", "phone": "010-1234-5678", "address": "1 Teheran-ro, Seoul",
           "address_detail": "3F", "postal_code": "06234"})
}

#[tokio::test]
async fn an_order_is_priced_by_the_server_and_all_or_nothing() {
    let app = spawn_app().await;
    let (_, seller) = app.user("s@x.co").await;
    let (buyer_id, buyer) = app.user("b@x.co").await;
    let a = app.product(&seller, 10_000, 5).await;
    let b = app.product(&seller, 2_500, 1).await;
    let deal = app.deal(&seller, &a, 8_000, 2, None).await;

    let r = app
        .post(
            "/orders",
            Some(&buyer),
            json!({"items": [
                {"product_id": a, "quantity": 2},
                {"product_id": a, "deal_id": deal, "quantity": 1},
                {"product_id": b, "quantity": 1}],
              "shipping_address": address()}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let o = &r.body;
    assert_eq!(o["status"], "confirmed");
    assert_eq!(o["payment_status"], "unpaid");
    assert_eq!(o["user_id"], buyer_id.as_str());
    assert_eq!(o["total_amount"], 2 * 10_000 + 8_000 + 2_500);
    assert_eq!(o["discount_amount"], 0);
    assert!(
        o["coupon_id"].is_null() && o["cancel_reason"].is_null() && o["cancelled_at"].is_null()
    );
    assert_eq!(o["shipping_address"]["postal_code"], "06234");
    let items = o["items"].as_array().expect("items");
    assert_eq!(items.len(), 3);
    assert_eq!(
        (
            items[1]["unit_price"].as_i64(),
            items[1]["subtotal"].as_i64()
        ),
        (Some(8_000), Some(8_000))
    );
    assert_eq!(items[0]["product_name"], "Widget");
    for field in [
        "id",
        "product_id",
        "deal_id",
        "product_name",
        "quantity",
        "unit_price",
        "subtotal",
    ] {
        assert!(items[0].get(field).is_some(), "{field}");
    }
    assert_eq!(
        (
            app.stock(&a).await,
            app.stock(&b).await,
            app.remaining(&deal).await
        ),
        (1, 0, 1)
    );

    // b is gone: the whole order is refused and nothing moves.
    let r = app
        .order(
            &buyer,
            json!([{"product_id": a, "quantity": 1}, {"product_id": b, "quantity": 1}]),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "INSUFFICIENT_STOCK")
    );
    assert_eq!(r.body["details"]["product_id"], b.as_str());
    assert_eq!(app.stock(&a).await, 1);

    // Lines on the same stock are summed: 1 + 1 > 1 left.
    let r = app
        .order(
            &buyer,
            json!([{"product_id": a, "quantity": 1}, {"product_id": a, "quantity": 1}]),
        )
        .await;
    assert_eq!(r.code(), "INSUFFICIENT_STOCK");
    assert_eq!(app.stock(&a).await, 1);
}

#[tokio::test]
async fn order_lookup_errors() {
    let app = spawn_app().await;
    let (_, seller) = app.user("s@x.co").await;
    let (_, buyer) = app.user("b@x.co").await;
    let p = app.product(&seller, 100, 5).await;
    let other_p = app.product(&seller, 100, 5).await;
    let deal = app.deal(&seller, &p, 50, 2, None).await;
    let missing = uuid::Uuid::new_v4().to_string();

    let r = app
        .order(&buyer, json!([{"product_id": missing, "quantity": 1}]))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::NOT_FOUND, "PRODUCT_NOT_FOUND")
    );
    let r = app
        .order(
            &buyer,
            json!([{"product_id": p, "deal_id": missing, "quantity": 1}]),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::NOT_FOUND, "DEAL_NOT_FOUND")
    );
    let r = app
        .order(
            &buyer,
            json!([{"product_id": other_p, "deal_id": deal, "quantity": 1}]),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::NOT_FOUND, "DEAL_NOT_FOUND"),
        "a deal of another product"
    );
    let r = app
        .post(
            "/orders",
            None,
            json!({"items": [{"product_id": p, "quantity": 1}]}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
    );
    assert_eq!((app.stock(&p).await, app.stock(&other_p).await), (3, 5));
}

#[tokio::test]
async fn list_get_and_cancel() {
    let app = spawn_app().await;
    let (_, seller) = app.user("s@x.co").await;
    let (_, buyer) = app.user("b@x.co").await;
    let (_, stranger) = app.user("x@x.co").await;
    let p = app.product(&seller, 1000, 10).await;
    let deal = app.deal(&seller, &p, 500, 5, None).await;
    let first = app
        .order(&buyer, json!([{"product_id": p, "quantity": 2}]))
        .await
        .body["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let second = app
        .order(
            &buyer,
            json!([{"product_id": p, "deal_id": deal, "quantity": 3}]),
        )
        .await
        .body["id"]
        .as_str()
        .expect("id")
        .to_owned();

    let r = app.get("/orders", Some(&buyer)).await;
    assert_eq!(r.body["total"], 2);
    assert_eq!(r.body["items"][0]["id"], second.as_str(), "newest first");
    assert_eq!(app.get("/orders", Some(&stranger)).await.body["total"], 0);
    assert_eq!(
        app.get(&format!("/orders/{first}"), Some(&buyer))
            .await
            .status,
        StatusCode::OK
    );
    let r = app.get(&format!("/orders/{first}"), Some(&stranger)).await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "FORBIDDEN"));
    let r = app
        .get(&format!("/orders/{}", uuid::Uuid::new_v4()), Some(&buyer))
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "NOT_FOUND"));
    assert_eq!(
        app.get("/orders/nope", Some(&buyer)).await.status,
        StatusCode::NOT_FOUND
    );

    let r = app
        .post(
            &format!("/orders/{second}/cancel"),
            Some(&stranger),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .post(
            &format!("/orders/{second}/cancel"),
            Some(&buyer),
            json!({"reason": "changed my mind"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["status"], "cancelled");
    assert_eq!(r.body["cancel_reason"], "changed my mind");
    assert!(r.body["cancelled_at"].is_string());
    assert_eq!(app.remaining(&deal).await, 5, "deal units came back");
    let r = app
        .post(&format!("/orders/{second}/cancel"), Some(&buyer), json!({}))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "INVALID_STATE")
    );

    // A cancel with no body at all.
    let r = app
        .send(
            hyper::Method::POST,
            &format!("/orders/{first}/cancel"),
            Some(&buyer),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body["cancel_reason"].is_null());
    assert_eq!(app.stock(&p).await, 5);

    let r = app.get("/orders?status=cancelled", Some(&buyer)).await;
    assert_eq!(r.body["total"], 2);
    assert_eq!(
        app.get("/orders?status=confirmed", Some(&buyer)).await.body["total"],
        0
    );
    let r = app.get("/orders?status=lost", Some(&buyer)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
    );
}

#[tokio::test]
async fn per_user_limit_is_enforced_and_freed_by_cancel() {
    let app = spawn_app().await;
    let (_, seller) = app.user("s@x.co").await;
    let (_, buyer) = app.user("b@x.co").await;
    let (_, other) = app.user("o@x.co").await;
    let p = app.product(&seller, 1000, 100).await;
    let deal = app.deal(&seller, &p, 500, 50, Some(2)).await;
    let line = |q: i64| json!([{"product_id": p, "deal_id": deal, "quantity": q}]);
    let first = app.order(&buyer, line(2)).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let r = app.order(&buyer, line(1)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "PURCHASE_LIMIT_EXCEEDED")
    );
    assert_eq!(
        app.order(&other, line(2)).await.status,
        StatusCode::CREATED,
        "the limit is per user"
    );
    assert_eq!(app.remaining(&deal).await, 46);
    let id = first.body["id"].as_str().expect("id");
    app.post(&format!("/orders/{id}/cancel"), Some(&buyer), json!({}))
        .await;
    assert_eq!(
        app.order(&buyer, line(2)).await.status,
        StatusCode::CREATED,
        "a cancel frees the limit"
    );
}

/// Racing cancels of one due order (the buyer's and two expiry sweeps at
/// once, as several instances would run them): it is cancelled once and
/// its units come back once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_cancels_and_expiries_return_units_once() {
    let app = std::sync::Arc::new(spawn_app().await);
    let (_, seller) = app.user("s@x.co").await;
    let p = app.product(&seller, 3000, 50).await;
    let deal = app.deal(&seller, &p, 1000, 40, None).await;
    let mut buyers = Vec::new();
    let mut orders = Vec::new();
    for i in 0..8 {
        let (_, token) = app.user(&format!("b{i}@x.co")).await;
        let r = app
            .order(
                &token,
                json!([{"product_id": p, "deal_id": deal, "quantity": 2}]),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        orders.push(r.body["id"].as_str().expect("id").to_owned());
        buyers.push(token);
    }
    assert_eq!(app.remaining(&deal).await, 24);
    // Past the payment window: every order is due.
    app.clock
        .advance(chrono::Duration::hours(1) - chrono::Duration::seconds(1));
    let mut tasks = Vec::new();
    for (token, id) in buyers.iter().zip(&orders) {
        let (app, token, id) = (app.clone(), token.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let r = app
                .post(&format!("/orders/{id}/cancel"), Some(&token), json!({}))
                .await;
            usize::from(r.status == StatusCode::OK)
        }));
    }
    for _ in 0..2 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.ordering().expire_due_orders().await.expect("expire")
        }));
    }
    let mut cancelled = 0;
    for t in tasks {
        cancelled += t.await.expect("join");
    }
    assert_eq!(cancelled, 8, "each order cancelled exactly once");
    assert_eq!(app.remaining(&deal).await, 40, "units returned once each");
    for (token, id) in buyers.iter().zip(&orders) {
        let r = app.get(&format!("/orders/{id}"), Some(token)).await;
        assert_eq!(r.body["status"], "cancelled");
    }
}
