use crate::support::spawn_app;
use chrono::Duration;
use hyper::StatusCode;
use serde_json::json;

#[tokio::test]
async fn a_deal_sets_stock_aside_and_gives_back_what_it_did_not_sell() {
    let app = spawn_app().await;
    let (_, seller) = app.user("s@x.co").await;
    let (_, buyer) = app.user("b@x.co").await;
    let product = app.product(&seller, 10_000, 100).await;
    let now = app.clock_now();
    let r = app
        .post(
            "/products/deals",
            Some(&seller),
            json!({"product_id": product, "deal_price": 7000, "deal_stock": 30, "per_user_limit": 5,
                   "starts_at": now, "ends_at": now + Duration::hours(1)}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let deal = r.body["id"].as_str().expect("id").to_owned();
    assert_eq!(r.body["original_price"], 10_000);
    assert_eq!(r.body["deal_price"], 7000);
    assert_eq!(r.body["remaining_stock"], 30);
    assert_eq!(r.body["deal_stock"], 30);
    assert_eq!(r.body["per_user_limit"], 5);
    assert_eq!(r.body["status"], "active");
    assert_eq!(r.body["product"]["id"], product.as_str());
    assert_eq!(r.body["product"]["stock"], 70);
    assert_eq!(app.stock(&product).await, 70);

    let r = app
        .order(
            &buyer,
            json!([{"product_id": product, "deal_id": deal, "quantity": 4}]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["items"][0]["unit_price"], 7000);
    assert_eq!(app.remaining(&deal).await, 26);

    let listed = app.get("/products/deals", None).await;
    assert_eq!(listed.body["total"], 1);
    assert_eq!(listed.body["items"][0]["id"], deal.as_str());

    // The deal ends: its 26 unsold units go back to the product.
    app.clock.advance(Duration::hours(1));
    let r = app.get(&format!("/products/deals/{deal}"), None).await;
    assert_eq!(r.body["status"], "ended");
    assert_eq!(app.get("/products/deals", None).await.body["total"], 0);
    app.catalogue().settle_ended_deals().await.expect("settle");
    assert_eq!(app.stock(&product).await, 96);
    let r = app
        .post(
            "/auth/login",
            None,
            json!({"email": "b@x.co", "password": "password123"}),
        )
        .await;
    let buyer = r.body["access_token"]
        .as_str()
        .expect("fresh token")
        .to_owned();
    let r = app
        .order(
            &buyer,
            json!([{"product_id": product, "deal_id": deal, "quantity": 1}]),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "DEAL_NOT_ACTIVE")
    );
}

#[tokio::test]
async fn status_follows_the_clock() {
    let app = spawn_app().await;
    let (_, seller) = app.user("s@x.co").await;
    let (_, buyer) = app.user("b@x.co").await;
    let product = app.product(&seller, 1000, 10).await;
    let now = app.clock_now();
    let r = app
        .post(
            "/products/deals",
            Some(&seller),
            json!({"product_id": product, "deal_price": 500, "deal_stock": 2,
                   "starts_at": now + Duration::minutes(10), "ends_at": now + Duration::minutes(20)}),
        )
        .await;
    let deal = r.body["id"].as_str().expect("id").to_owned();
    assert_eq!(r.body["status"], "scheduled");
    assert!(r.body["per_user_limit"].is_null());
    assert_eq!(
        app.get("/products/deals", None).await.body["total"],
        0,
        "scheduled deals are not listed"
    );
    let r = app
        .order(
            &buyer,
            json!([{"product_id": product, "deal_id": deal, "quantity": 1}]),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "DEAL_NOT_ACTIVE")
    );

    app.clock.advance(Duration::minutes(10));
    assert_eq!(
        app.get(&format!("/products/deals/{deal}"), None).await.body["status"],
        "active"
    );
    let r = app
        .order(
            &buyer,
            json!([{"product_id": product, "deal_id": deal, "quantity": 2}]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = app.get(&format!("/products/deals/{deal}"), None).await;
    assert_eq!(
        (
            r.body["status"].as_str(),
            r.body["remaining_stock"].as_i64()
        ),
        (Some("sold_out"), Some(0))
    );
    let listed = app.get("/products/deals", None).await;
    assert_eq!(
        listed.body["items"][0]["status"], "sold_out",
        "sold-out deals stay listed while running"
    );
    let r = app
        .order(
            &buyer,
            json!([{"product_id": product, "deal_id": deal, "quantity": 1}]),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "INSUFFICIENT_STOCK")
    );
}

#[tokio::test]
async fn deal_creation_errors() {
    let app = spawn_app().await;
    let (_, seller) = app.user("s@x.co").await;
    let (_, other) = app.user("o@x.co").await;
    let product = app.product(&seller, 1000, 10).await;
    let now = app.clock_now();
    let body = |product: &str, stock: i64, ends: chrono::DateTime<chrono::Utc>| json!({"product_id": product, "deal_price": 500, "deal_stock": stock, "starts_at": now, "ends_at": ends});
    let later = now + Duration::hours(1);
    let r = app
        .post("/products/deals", Some(&seller), body(&product, 11, later))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "INSUFFICIENT_STOCK")
    );
    let r = app
        .post(
            "/products/deals",
            Some(&seller),
            body(&uuid::Uuid::new_v4().to_string(), 1, later),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::NOT_FOUND, "PRODUCT_NOT_FOUND")
    );
    let r = app
        .post("/products/deals", Some(&other), body(&product, 1, later))
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "FORBIDDEN"));
    let r = app
        .post("/products/deals", Some(&seller), body(&product, 1, now))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
    );
    assert!(r.body["details"]["ends_at"].is_string());
    let r = app
        .post("/products/deals", Some(&seller), body(&product, 0, later))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = app
        .post("/products/deals", None, body(&product, 1, later))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.stock(&product).await,
        10,
        "refused deals set nothing aside"
    );
}

#[tokio::test]
async fn hotdeal_hints() {
    let app = spawn_app().await;
    let (_, seller) = app.user("s@x.co").await;
    let (_, other) = app.user("o@x.co").await;
    let product = app.product(&seller, 1000, 10).await;
    let r = app
        .post(
            &format!("/products/{product}/hotdeal/start"),
            Some(&seller),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, json!({"product_id": product, "hot": true}));
    let r = app
        .post(
            &format!("/products/{product}/hotdeal/end"),
            Some(&seller),
            json!({}),
        )
        .await;
    assert_eq!(r.body, json!({"product_id": product, "hot": false}));
    let r = app
        .post(
            &format!("/products/{product}/hotdeal/start"),
            Some(&other),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .post(
            &format!("/products/{}/hotdeal/start", uuid::Uuid::new_v4()),
            Some(&seller),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}
