//! Bad input of every kind gets a 4xx with an error body and changes nothing.

use crate::support::spawn_app;
use hyper::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn bodies_that_are_not_json_or_not_declared_json() {
    let app = spawn_app().await;
    let (_, token) = app.user("m@x.co").await;
    let auth = format!("Bearer {token}");
    let posts = [
        "/auth/register",
        "/auth/login",
        "/auth/refresh",
        "/products",
        "/products/deals",
        "/orders",
    ];
    for path in posts {
        let r = app
            .raw(
                Method::POST,
                path,
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                "{not json",
            )
            .await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, "BAD_REQUEST"),
            "{path}"
        );
        let r = app
            .raw(
                Method::POST,
                path,
                &[("authorization", &auth), ("content-type", "text/plain")],
                "{}",
            )
            .await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, "BAD_REQUEST"),
            "{path} text/plain"
        );
        let r = app
            .raw(Method::POST, path, &[("authorization", &auth)], "{}")
            .await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{path} without content-type"
        );
        let r = app
            .raw(
                Method::POST,
                path,
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                "",
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path} empty body");
    }
    let p = app.product(&token, 100, 1).await;
    for path in [format!("/products/{p}"), format!("/products/{p}/stock")] {
        let r = app
            .raw(
                Method::PATCH,
                &path,
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                "[1,",
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}");
    }
    assert_eq!(app.get("/products", None).await.body["total"], 1);
}

#[tokio::test]
async fn huge_bodies_are_refused() {
    let app = spawn_app().await;
    let big = format!(
        r#"{{"email":"a@b.co","password":"password123","name":"{}"}}"#,
        "x".repeat(200_000)
    );
    let r = app
        .raw(
            Method::POST,
            "/auth/register",
            &[("content-type", "application/json")],
            big,
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE")
    );
}

#[tokio::test]
async fn wrong_types_unknown_fields_and_absurd_values() {
    let app = spawn_app().await;
    let (_, token) = app.user("m@x.co").await;
    let t = Some(token.as_str());
    let p = app.product(&token, 100, 10).await;
    let deal = app.deal(&token, &p, 50, 5, None).await;
    let now = app.clock_now();
    let cases = vec![
        (
            "/auth/register",
            json!({"email": 1, "password": "password123", "name": "Kim"}),
            "email",
        ),
        (
            "/auth/register",
            json!({"email": "a@b.co", "password": "password123"}),
            "name",
        ),
        (
            "/auth/register",
            json!({"email": "a@b.co", "password": "password123", "name": "Kim", "admin": true}),
            "admin",
        ),
        ("/auth/login", json!({"email": "a@b.co"}), "password"),
        (
            "/auth/refresh",
            json!({"refresh_token": 5}),
            "refresh_token",
        ),
        (
            "/products",
            json!({"name": "", "price": 1, "stock": 1}),
            "name",
        ),
        (
            "/products",
            json!({"name": "x", "price": -1, "stock": 1}),
            "price",
        ),
        (
            "/products",
            json!({"name": "x", "price": 1, "stock": -5}),
            "stock",
        ),
        (
            "/products",
            json!({"name": "x", "price": "free", "stock": 1}),
            "price",
        ),
        (
            "/products",
            json!({"name": "x", "price": 1e30, "stock": 1}),
            "price",
        ),
        (
            "/products",
            json!({"name": "x".repeat(201), "price": 1, "stock": 1}),
            "name",
        ),
        (
            "/products",
            json!({"name": "x", "price": 1, "stock": 1, "category": "c".repeat(51)}),
            "category",
        ),
        (
            "/products",
            json!({"name": "x", "price": 1, "stock": 1, "description": "d".repeat(5001)}),
            "description",
        ),
        (
            "/products/deals",
            json!({"product_id": "nope", "deal_price": 1, "deal_stock": 1, "starts_at": now, "ends_at": now}),
            "product_id",
        ),
        (
            "/products/deals",
            json!({"product_id": p, "deal_price": 1, "deal_stock": 1, "starts_at": "yesterday", "ends_at": now}),
            "starts_at",
        ),
        (
            "/products/deals",
            json!({"product_id": p, "deal_price": 1, "deal_stock": 1, "per_user_limit": 0, "starts_at": now, "ends_at": now + chrono::Duration::hours(1)}),
            "per_user_limit",
        ),
        ("/orders", json!({"items": []}), "items"),
        (
            "/orders",
            json!({"items": [{"product_id": p, "quantity": 0}]}),
            "items[0].quantity",
        ),
        (
            "/orders",
            json!({"items": [{"product_id": p, "quantity": 11}]}),
            "items[0].quantity",
        ),
        (
            "/orders",
            json!({"items": [{"product_id": p, "quantity": -3}]}),
            "items[0].quantity",
        ),
        (
            "/orders",
            json!({"items": [{"product_id": p, "quantity": 99999999999999999999u128 as f64}]}),
            "items[0].quantity",
        ),
        (
            "/orders",
            json!({"items": [{"product_id": p, "quantity": "1"}]}),
            "items[0].quantity",
        ),
        (
            "/orders",
            json!({"items": [{"product_id": "x", "quantity": 1}]}),
            "items[0].product_id",
        ),
        (
            "/orders",
            json!({"items": [{"product_id": p, "deal_id": 7, "quantity": 1}]}),
            "items[0].deal_id",
        ),
        (
            "/orders",
            json!({"items": [{"product_id": p, "quantity": 1, "unit_price": 1}]}),
            "items[0].unit_price",
        ),
        (
            "/orders",
            json!({"items": vec![json!({"product_id": p, "quantity": 1}); 11]}),
            "items",
        ),
        (
            "/orders",
            json!({"items": [{"product_id": p, "quantity": 1}], "shipping_address": {"recipient_name": "Kim", "phone": "02-123-4567", "address": "Seoul", "postal_code": "06234"}}),
            "shipping_address.phone",
        ),
        (
            "/orders",
            json!({"items": [{"product_id": p, "quantity": 1}], "shipping_address": {"recipient_name": "Kim", "phone": "010-1234-5678", "address": "Seoul", "postal_code": "6234"}}),
            "shipping_address.postal_code",
        ),
        (
            "/orders",
            json!({"items": [{"product_id": p, "quantity": 1}], "shipping_address": {"recipient_name": "Kim", "phone": "010-1234-5678", "postal_code": "06234"}}),
            "shipping_address.address",
        ),
        ("/orders", json!({"items": {"product_id": p}}), "items"),
        ("/orders", json!([1, 2]), "body"),
    ];
    for (path, body, field) in cases {
        let r = app.post(path, t, body.clone()).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR"),
            "{path} {body}"
        );
        assert!(
            r.body["details"].get(field).is_some(),
            "{path} {body}: {field} not named in {}",
            r.body
        );
    }
    let patches = vec![
        (format!("/products/{p}"), json!({"price": "x"}), "price"),
        (format!("/products/{p}"), json!({"name": null}), "name"),
        (format!("/products/{p}"), json!({"stock": 5}), "stock"),
        (
            format!("/products/{p}/stock"),
            json!({"delta": 1.5}),
            "delta",
        ),
        (format!("/products/{p}/stock"), json!({}), "delta"),
        (
            format!("/products/{p}/stock"),
            json!({"delta": 9_000_000_000_000_000i64}),
            "delta",
        ),
    ];
    for (path, body, field) in patches {
        let r = app.patch(&path, t, body.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{path} {body}");
        assert!(
            r.body["details"].get(field).is_some(),
            "{path} {body}: {field} not named in {}",
            r.body
        );
    }
    let r = app
        .post(
            &format!("/orders/{}/cancel", uuid::Uuid::new_v4()),
            t,
            json!({"reason": "r".repeat(501)}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Nothing changed.
    assert_eq!((app.stock(&p).await, app.remaining(&deal).await), (5, 5));
    assert_eq!(app.get("/orders", t).await.body["total"], 0);
    assert_eq!(app.get("/products", None).await.body["total"], 1);
    let r = app.get(&format!("/products/{p}"), None).await;
    assert_eq!(r.body["price"], 100);
}
