//! First-come-first-served coupons, and coupons on orders.

use crate::points::charge;
use crate::support::{spawn_app, TestApp};
use chrono::Duration;
use hotdeal::model::User;
use hotdeal_domain::UserId;
use hyper::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;

async fn coupon(app: &TestApp, token: &str, body: Value) -> String {
    let r = app.post("/coupons", Some(token), body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["id"].as_str().expect("id").to_owned()
}

fn fixed(app: &TestApp, value: i64, quantity: i64, min: i64) -> Value {
    let now = app.clock_now();
    json!({"name": "Welcome", "discount_type": "fixed", "discount_value": value, "min_order_amount": min,
           "total_quantity": quantity, "starts_at": now, "ends_at": now + Duration::days(1)})
}

#[tokio::test]
async fn create_issue_and_list() {
    let app = spawn_app().await;
    let (_, admin) = app.user("a@x.co").await;
    let (uid, u) = app.user("u@x.co").await;
    let (_, v) = app.user("v@x.co").await;
    let id = coupon(&app, &admin, fixed(&app, 3000, 1, 0)).await;
    let r = app.get(&format!("/coupons/{id}"), None).await;
    assert_eq!(r.status, StatusCode::OK);
    for f in [
        "id",
        "name",
        "discount_type",
        "discount_value",
        "max_discount",
        "min_order_amount",
        "total_quantity",
        "issued_count",
        "remaining",
        "starts_at",
        "ends_at",
        "created_at",
    ] {
        assert!(r.body.get(f).is_some(), "{f}");
    }
    assert_eq!(
        (
            r.body["issued_count"].as_i64(),
            r.body["remaining"].as_i64()
        ),
        (Some(0), Some(1))
    );

    let r = app
        .post(&format!("/coupons/{id}/issue"), Some(&u), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        (r.body["status"].as_str(), r.body["user_id"].as_str()),
        (Some("issued"), Some(uid.as_str()))
    );
    assert!(r.body["used_at"].is_null() && r.body["order_id"].is_null());
    let r = app
        .post(&format!("/coupons/{id}/issue"), Some(&u), json!({}))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "COUPON_ALREADY_ISSUED")
    );
    let r = app
        .post(&format!("/coupons/{id}/issue"), Some(&v), json!({}))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "COUPON_SOLD_OUT")
    );
    let r = app.get(&format!("/coupons/{id}"), None).await;
    assert_eq!(
        (
            r.body["issued_count"].as_i64(),
            r.body["remaining"].as_i64()
        ),
        (Some(1), Some(0))
    );

    let mine = app.get("/users/me/coupons", Some(&u)).await;
    assert_eq!(mine.body["total"], 1);
    assert_eq!(mine.body["items"][0]["coupon_id"], id.as_str());
    assert_eq!(
        app.get("/users/me/coupons", Some(&v)).await.body["total"],
        0
    );
    assert_eq!(
        app.get("/users/me/coupons", None).await.status,
        StatusCode::UNAUTHORIZED
    );

    let r = app
        .post(
            &format!("/coupons/{}/issue", uuid::Uuid::new_v4()),
            Some(&u),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get("/coupons/nope", None).await.status,
        StatusCode::NOT_FOUND
    );

    // Outside its window.
    let now = app.clock_now();
    let later = coupon(&app, &admin, json!({"name": "Later", "discount_type": "percent", "discount_value": 10,
        "total_quantity": 5, "starts_at": now + Duration::hours(1), "ends_at": now + Duration::hours(2)})).await;
    let r = app
        .post(&format!("/coupons/{later}/issue"), Some(&u), json!({}))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "COUPON_NOT_ACTIVE")
    );

    for bad in [
        json!({"name": "x", "discount_type": "bogus", "discount_value": 1, "total_quantity": 1, "starts_at": now, "ends_at": now + Duration::hours(1)}),
        json!({"name": "x", "discount_type": "percent", "discount_value": 101, "total_quantity": 1, "starts_at": now, "ends_at": now + Duration::hours(1)}),
        json!({"name": "x", "discount_type": "fixed", "discount_value": 1, "total_quantity": 0, "starts_at": now, "ends_at": now + Duration::hours(1)}),
        json!({"name": "x", "discount_type": "fixed", "discount_value": 1, "total_quantity": 1, "starts_at": now, "ends_at": now}),
    ] {
        let r = app.post("/coupons", Some(&admin), bad.clone()).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR"),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn a_coupon_discounts_an_order_once_and_comes_back_on_cancel() {
    let app = spawn_app().await;
    let (_, admin) = app.user("a@x.co").await;
    let (_, u) = app.user("u@x.co").await;
    let (_, v) = app.user("v@x.co").await;
    let p = app.product(&admin, 10_000, 10).await;
    let pct = coupon(
        &app,
        &admin,
        json!({"name": "10%", "discount_type": "percent", "discount_value": 10,
        "max_discount": 1500, "min_order_amount": 15_000, "total_quantity": 10,
        "starts_at": app.clock_now(), "ends_at": app.clock_now() + Duration::days(1)}),
    )
    .await;
    app.post(&format!("/coupons/{pct}/issue"), Some(&u), json!({}))
        .await;
    let order = |token: String, qty: i64, coupon: &str, pay: bool| {
        let mut body = json!({"items": [{"product_id": p, "quantity": qty}], "coupon_id": coupon});
        if pay {
            body["payment"] = json!({"method": "points"});
        }
        let app = &app;
        async move { app.post("/orders", Some(&token), body).await }
    };
    let r = order(u.clone(), 1, &pct, false).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "COUPON_NOT_USABLE"),
        "below the minimum"
    );
    let r = order(v.clone(), 2, &pct, false).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "COUPON_NOT_USABLE"),
        "not v's coupon"
    );
    // Short of points: the coupon stays unused.
    let r = order(u.clone(), 2, &pct, true).await;
    assert_eq!(r.code(), "INSUFFICIENT_POINTS");
    assert_eq!(
        app.get("/users/me/coupons", Some(&u)).await.body["items"][0]["status"],
        "issued"
    );

    let r = order(u.clone(), 2, &pct, false).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        (
            r.body["discount_amount"].as_i64(),
            r.body["total_amount"].as_i64()
        ),
        (Some(1500), Some(18_500))
    );
    assert_eq!(r.body["coupon_id"], pct.as_str());
    let id = r.body["id"].as_str().expect("id").to_owned();
    let mine = app.get("/users/me/coupons", Some(&u)).await;
    assert_eq!(
        (
            mine.body["items"][0]["status"].as_str(),
            mine.body["items"][0]["order_id"].as_str()
        ),
        (Some("used"), Some(id.as_str()))
    );
    let r = order(u.clone(), 2, &pct, false).await;
    assert_eq!(r.code(), "COUPON_NOT_USABLE", "used once");
    assert_eq!(app.stock(&p).await, 8, "refused orders took nothing");

    app.post(&format!("/orders/{id}/cancel"), Some(&u), json!({}))
        .await;
    assert_eq!(
        app.get("/users/me/coupons", Some(&u)).await.body["items"][0]["status"],
        "issued"
    );
    charge(&app, &u, 18_500).await;
    let r = order(u.clone(), 2, &pct, true).await;
    assert_eq!(
        (r.status, r.body["payment_status"].as_str()),
        (StatusCode::CREATED, Some("paid"))
    );
    assert_eq!(app.get("/points", Some(&u)).await.body["balance"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_thousand_users_race_for_five_hundred_coupons() {
    let app = Arc::new(spawn_app().await);
    let (_, admin) = app.user("a@x.co").await;
    let id = coupon(&app, &admin, fixed(&app, 1000, 500, 0)).await;
    // Users straight into the store: this test is about the rush, not sign-up.
    let mut users = Vec::new();
    for i in 0..2000 {
        let user = User {
            id: UserId::new(),
            email: format!("rush{i}@x.co"),
            name: "Rush".into(),
            password_hash: "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into(),
            created_at: app.clock_now(),
        };
        app.accounts()
            .store()
            .insert_user(&user)
            .await
            .expect("user");
        let token = app.storefront.auth.tokens.issue(user.id, app.clock_now());
        users.push((user.id, token));
    }
    // Every user tries twice, at once, and goes on until the answer is
    // final, as the contract tells clients to: after a 503 OVERLOADED
    // (nothing issued), and after a connection that failed before its
    // answer came (issued or not: the next try says which). An issue is
    // one per user, so trying again is safe.
    let tasks: Vec<_> = users
        .iter()
        .chain(users.iter())
        .map(|(user, t)| {
            let (app, user, t, id) = (app.clone(), *user, t.clone(), id.clone());
            tokio::spawn(async move {
                let auth = format!("Bearer {t}");
                let headers = [
                    ("authorization", auth.as_str()),
                    ("content-type", "application/json"),
                ];
                let mut lost = false;
                loop {
                    let path = format!("/coupons/{id}/issue");
                    match app
                        .try_raw(hyper::Method::POST, &path, &headers, "{}")
                        .await
                    {
                        Ok(r)
                            if (r.status, r.code())
                                != (StatusCode::SERVICE_UNAVAILABLE, "OVERLOADED") =>
                        {
                            return (user, r, lost);
                        }
                        Ok(_) => {}
                        Err(_) => lost = true,
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            })
        })
        .collect();
    let (mut issued, mut dup, mut sold_out) = (0, 0, 0);
    // Who holds the coupon by the answers: a 201, or "already issued"
    // after an answer that was lost on the way.
    let mut holders = std::collections::HashSet::new();
    let mut answered_201 = std::collections::HashSet::new();
    for t in tasks {
        let (user, r, lost) = t.await.expect("join");
        match (r.status, r.code()) {
            (StatusCode::CREATED, _) => {
                issued += 1;
                assert!(answered_201.insert(user.0), "a second 201 for one user");
                holders.insert(user.0);
            }
            (StatusCode::CONFLICT, "COUPON_ALREADY_ISSUED") => {
                dup += 1;
                if lost {
                    holders.insert(user.0);
                }
            }
            (StatusCode::CONFLICT, "COUPON_SOLD_OUT") => sold_out += 1,
            other => panic!("unexpected {other:?}: {}", r.body),
        }
    }
    assert!(issued <= 500, "{issued} coupons answered 201");
    assert_eq!(
        holders.len(),
        500,
        "every coupon went to a user who was told"
    );
    assert_eq!(issued + dup + sold_out, 4000);
    let c = app.get(&format!("/coupons/{id}"), None).await;
    assert_eq!(
        (
            c.body["issued_count"].as_i64(),
            c.body["remaining"].as_i64()
        ),
        (Some(500), Some(0))
    );
    // The store agrees: 500 rows, one per user.
    let mut side = app.probe().await;
    let rows = side.count("user_coupons").await;
    let users = side
        .int("SELECT COUNT(DISTINCT user_id) FROM user_coupons")
        .await;
    assert_eq!((rows, users), (500, 500));
    let count = side.int("SELECT issued_count FROM coupons").await;
    assert_eq!(count, 500);
}

/// A coupon is its creator's: it discounts only their products, on the
/// subtotal of those lines, and an order with none of them is refused.
#[tokio::test]
async fn a_coupon_discounts_only_its_sellers_products() {
    let app = spawn_app().await;
    let (_, seller) = app.user("seller@x.co").await;
    let (_, other) = app.user("other@x.co").await;
    let (_, buyer) = app.user("buyer@x.co").await;
    let mine = app.product(&seller, 10_000, 10).await;
    let theirs = app.product(&other, 50_000, 10).await;
    // A buyer's own 100 % coupon on someone else's product: the probe's attack.
    let free = coupon(
        &app,
        &buyer,
        json!({"name": "Free", "discount_type": "percent", "discount_value": 100,
        "min_order_amount": 0, "total_quantity": 1,
        "starts_at": app.clock_now(), "ends_at": app.clock_now() + Duration::days(1)}),
    )
    .await;
    app.post(&format!("/coupons/{free}/issue"), Some(&buyer), json!({}))
        .await;
    let r = app
        .post(
            "/orders",
            Some(&buyer),
            json!({"items": [{"product_id": theirs, "quantity": 1}], "coupon_id": free,
                   "payment": {"method": "points"}}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "COUPON_NOT_USABLE"),
        "{}",
        r.body
    );
    assert_eq!(app.stock(&theirs).await, 10, "nothing taken");

    // The seller's 20 % coupon, min 15,000 won of the seller's products:
    // the other seller's line counts toward neither.
    let pct = coupon(
        &app,
        &seller,
        json!({"name": "20%", "discount_type": "percent", "discount_value": 20,
        "min_order_amount": 15_000, "total_quantity": 10,
        "starts_at": app.clock_now(), "ends_at": app.clock_now() + Duration::days(1)}),
    )
    .await;
    app.post(&format!("/coupons/{pct}/issue"), Some(&buyer), json!({}))
        .await;
    let mixed = |qty: i64| {
        json!({"items": [{"product_id": mine, "quantity": qty}, {"product_id": theirs, "quantity": 1}],
               "coupon_id": pct})
    };
    let r = app.post("/orders", Some(&buyer), mixed(1)).await;
    assert_eq!(
        r.code(),
        "COUPON_NOT_USABLE",
        "10,000 of the seller's < 15,000"
    );
    let r = app.post("/orders", Some(&buyer), mixed(2)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        r.body["discount_amount"], 4_000,
        "20 % of 20,000, not of 70,000"
    );
    assert_eq!(r.body["total_amount"], 66_000);
}

/// `coupon_id` on an order takes the user-coupon id that
/// `GET /users/me/coupons` shows as well as the coupon's id, and only the
/// caller's.
#[tokio::test]
async fn an_order_takes_the_user_coupon_id() {
    let app = spawn_app().await;
    let (_, seller) = app.user("seller@x.co").await;
    let (_, buyer) = app.user("buyer@x.co").await;
    let (_, thief) = app.user("thief@x.co").await;
    let p = app.product(&seller, 10_000, 10).await;
    let id = coupon(&app, &seller, fixed(&app, 3000, 5, 0)).await;
    app.post(&format!("/coupons/{id}/issue"), Some(&buyer), json!({}))
        .await;
    let mine = app.get("/users/me/coupons", Some(&buyer)).await;
    let user_coupon = mine.body["items"][0]["id"].as_str().expect("id").to_owned();
    assert_ne!(user_coupon, id);
    let body = json!({"items": [{"product_id": p, "quantity": 1}], "coupon_id": user_coupon});
    let r = app.post("/orders", Some(&thief), body.clone()).await;
    assert_eq!(r.code(), "COUPON_NOT_USABLE", "someone else's copy");
    let r = app.post("/orders", Some(&buyer), body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["discount_amount"], 3000);
    assert_eq!(
        r.body["coupon_id"],
        id.as_str(),
        "the order names the coupon"
    );
    let mine = app.get("/users/me/coupons", Some(&buyer)).await;
    assert_eq!(mine.body["items"][0]["status"], "used");
}
