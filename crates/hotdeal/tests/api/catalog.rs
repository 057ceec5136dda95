use crate::support::spawn_app;
use hyper::StatusCode;
use serde_json::json;

#[tokio::test]
async fn products_create_read_list_and_filter() {
    let app = spawn_app().await;
    let (_, seller) = app.user("s@x.co").await;
    let r = app
        .post(
            "/products",
            Some(&seller),
            json!({"name": "Earbuds", "description": "Wireless", "price": 129000, "stock": 5,
                   "category": "electronics", "image_url": "https://img/1.jpg"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = r.body["id"].as_str().expect("id").to_owned();
    for field in [
        "id",
        "name",
        "description",
        "price",
        "stock",
        "category",
        "image_url",
        "created_at",
        "updated_at",
    ] {
        assert!(r.body.get(field).is_some(), "{field}");
    }
    app.post(
        "/products",
        Some(&seller),
        json!({"name": "Kettle", "price": 39000, "stock": 1, "category": "home"}),
    )
    .await;
    app.post(
        "/products",
        Some(&seller),
        json!({"name": "Lamp", "price": 45000, "stock": 1, "category": "home"}),
    )
    .await;

    let r = app.get(&format!("/products/{id}"), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["name"], "Earbuds");

    let r = app.get("/products?category=home", None).await;
    assert_eq!(r.body["total"], 2);
    assert_eq!(r.body["items"].as_array().expect("items").len(), 2);
    let r = app.get("/products?category=hom", None).await;
    assert_eq!(r.body["total"], 0, "the category filter is exact");

    let r = app.get("/products?page=2&size=2", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        (
            r.body["total"].as_i64(),
            r.body["page"].as_i64(),
            r.body["size"].as_i64()
        ),
        (Some(3), Some(2), Some(2))
    );
    assert_eq!(r.body["items"].as_array().expect("items").len(), 1);
    let r = app.get("/products", None).await;
    assert_eq!(
        (r.body["page"].as_i64(), r.body["size"].as_i64()),
        (Some(1), Some(20))
    );

    for bad in ["page=0", "size=0", "size=101", "page=abc", "size=-1"] {
        let r = app.get(&format!("/products?{bad}"), None).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR"),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn unknown_and_non_uuid_ids_are_not_found() {
    let app = spawn_app().await;
    for path in [
        "/products/not-a-uuid".to_owned(),
        format!("/products/{}", uuid::Uuid::new_v4()),
        format!("/products/{}/stock", uuid::Uuid::new_v4()),
        "/products/deals/123".to_owned(),
        format!("/products/deals/{}", uuid::Uuid::new_v4()),
    ] {
        let r = app.get(&path, None).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::NOT_FOUND, "NOT_FOUND"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn only_the_seller_changes_a_product() {
    let app = spawn_app().await;
    let (_, seller) = app.user("s@x.co").await;
    let (_, other) = app.user("o@x.co").await;
    let id = app.product(&seller, 1000, 10).await;

    let r = app
        .patch(
            &format!("/products/{id}"),
            Some(&other),
            json!({"price": 1}),
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "FORBIDDEN"));
    let r = app
        .patch(
            &format!("/products/{id}/stock"),
            Some(&other),
            json!({"delta": 5}),
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "FORBIDDEN"));
    let r = app
        .patch(&format!("/products/{id}"), None, json!({"price": 1}))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
    );

    let r = app
        .patch(
            &format!("/products/{id}"),
            Some(&seller),
            json!({"price": 900, "name": "Gadget", "category": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        (r.body["price"].as_i64(), r.body["name"].as_str()),
        (Some(900), Some("Gadget"))
    );
    assert!(r.body["category"].is_null());
    assert_eq!(r.body["stock"], 10, "PATCH does not touch stock");

    let r = app
        .patch(
            &format!("/products/{}", uuid::Uuid::new_v4()),
            Some(&seller),
            json!({"price": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .patch(
            &format!("/products/{id}"),
            Some(&seller),
            json!({"price": -1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body["details"]["price"].is_string());
}

#[tokio::test]
async fn stock_deltas_never_go_below_zero() {
    let app = spawn_app().await;
    let (_, seller) = app.user("s@x.co").await;
    let id = app.product(&seller, 1000, 10).await;
    let r = app
        .patch(
            &format!("/products/{id}/stock"),
            Some(&seller),
            json!({"delta": 5}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        (r.body["product_id"].as_str(), r.body["stock"].as_i64()),
        (Some(id.as_str()), Some(15))
    );
    assert!(r.body["updated_at"].is_string());
    let r = app
        .patch(
            &format!("/products/{id}/stock"),
            Some(&seller),
            json!({"delta": -16}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "INSUFFICIENT_STOCK")
    );
    assert_eq!(app.stock(&id).await, 15, "a refused delta changes nothing");
    let r = app
        .patch(
            &format!("/products/{id}/stock"),
            Some(&seller),
            json!({"delta": -15}),
        )
        .await;
    assert_eq!(r.body["stock"], 0);
    let r = app.get(&format!("/products/{id}/stock"), None).await;
    assert_eq!(r.body["stock"], 0);
}
