//! Random interleavings of charges, paid and unpaid orders with coupons,
//! payments, cancels and expiries keep every book balanced: balance =
//! Σ history ≥ 0, a coupon is used exactly while a live order holds it, and
//! units are conserved.

use crate::support::{spawn_app, TestApp};
use chrono::Duration;
use hotdeal_domain::UserId;
use hyper::StatusCode;
use proptest::prelude::*;
use serde_json::{json, Value};

#[derive(Clone, Debug)]
enum Op {
    Charge {
        user: usize,
        amount: i64,
    },
    Order {
        user: usize,
        qty: i64,
        deal: bool,
        pay: bool,
        coupon: bool,
    },
    Pay {
        pick: usize,
    },
    Cancel {
        pick: usize,
    },
    Expire,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0usize..2, 1i64..5).prop_map(|(user, k)| Op::Charge { user, amount: k * 1000 }),
        4 => (0usize..2, 1i64..4, any::<bool>(), any::<bool>(), any::<bool>())
            .prop_map(|(user, qty, deal, pay, coupon)| Op::Order { user, qty, deal, pay, coupon }),
        2 => any::<usize>().prop_map(|pick| Op::Pay { pick }),
        2 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        1 => Just(Op::Expire),
    ]
}

async fn books(app: &TestApp, users: &[UserId], coupon: &str, product: &str, deal: &str) {
    let mut sold = 0;
    for &u in users {
        let t = app.storefront.auth.tokens.issue(u, app.clock_now());
        let balance = app.get("/points", Some(&t)).await.body["balance"]
            .as_i64()
            .expect("balance");
        let history = app.get("/points/history?size=100", Some(&t)).await;
        let sum: i64 = history.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|e| {
                let a = e["amount"].as_i64().expect("amount");
                if e["kind"] == "payment" {
                    -a
                } else {
                    a
                }
            })
            .sum();
        assert!(balance >= 0);
        assert_eq!(balance, sum, "balance = Σ history");
        let orders = app.get("/orders?size=100", Some(&t)).await;
        let live: Vec<&Value> = orders.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|o| o["status"] != "cancelled")
            .collect();
        sold += live
            .iter()
            .flat_map(|o| o["items"].as_array().expect("lines"))
            .map(|l| l["quantity"].as_i64().expect("q"))
            .sum::<i64>();
        let holding = live.iter().filter(|o| o["coupon_id"] == coupon).count();
        let mine = app.get("/users/me/coupons", Some(&t)).await;
        let used = mine.body["items"][0]["status"] == "used";
        assert!(holding <= 1);
        assert_eq!(
            used,
            holding == 1,
            "a coupon is used exactly while a live order holds it"
        );
    }
    let stock = app.stock(product).await;
    let remaining = app.remaining(deal).await;
    assert_eq!(stock + remaining + sold, 80, "units are conserved");
}

async fn run(ops: Vec<Op>) {
    let app = spawn_app().await;
    let (_, seller) = app.user("s@x.co").await;
    let product = app.product(&seller, 1000, 80).await;
    let deal = app.deal(&seller, &product, 500, 20, None).await;
    let now = app.clock_now();
    let c = app
        .post(
            "/coupons",
            Some(&seller),
            json!({"name": "c", "discount_type": "fixed", "discount_value": 300, "total_quantity": 2,
                   "starts_at": now, "ends_at": now + Duration::days(30)}),
        )
        .await;
    let coupon = c.body["id"].as_str().expect("id").to_owned();
    let mut users = Vec::new();
    for i in 0..2 {
        let (id, t) = app.user(&format!("u{i}@x.co")).await;
        app.post(&format!("/coupons/{coupon}/issue"), Some(&t), json!({}))
            .await;
        users.push(UserId::parse(&id).expect("id"));
    }
    let mut orders: Vec<(String, usize)> = Vec::new();
    for op in ops {
        let token = |u: usize| app.storefront.auth.tokens.issue(users[u], app.clock_now());
        match op {
            Op::Charge { user, amount } => {
                let r = app
                    .post(
                        "/points/charges",
                        Some(&token(user)),
                        json!({"amount": amount}),
                    )
                    .await;
                assert_eq!(r.status, StatusCode::CREATED);
            }
            Op::Order {
                user,
                qty,
                deal: on_deal,
                pay,
                coupon: with_coupon,
            } => {
                let mut line = json!({"product_id": product, "quantity": qty});
                if on_deal {
                    line["deal_id"] = json!(deal);
                }
                let mut body = json!({"items": [line]});
                if pay {
                    body["payment"] = json!({"method": "points"});
                }
                if with_coupon {
                    body["coupon_id"] = json!(coupon);
                }
                let r = app.post("/orders", Some(&token(user)), body).await;
                match (r.status, r.code()) {
                    (StatusCode::CREATED, _) => {
                        orders.push((r.body["id"].as_str().expect("id").to_owned(), user))
                    }
                    (
                        StatusCode::BAD_REQUEST,
                        "INSUFFICIENT_POINTS"
                        | "COUPON_NOT_USABLE"
                        | "INSUFFICIENT_STOCK"
                        | "DEAL_NOT_ACTIVE",
                    ) => {}
                    other => panic!("unexpected {other:?}: {}", r.body),
                }
            }
            Op::Pay { pick } if !orders.is_empty() => {
                let (id, user) = orders[pick % orders.len()].clone();
                let r = app
                    .post(
                        &format!("/orders/{id}/payments"),
                        Some(&token(user)),
                        json!({"method": "points"}),
                    )
                    .await;
                match (r.status, r.code()) {
                    (StatusCode::OK, _) => assert_eq!(r.body["payment_status"], "paid"),
                    (StatusCode::BAD_REQUEST, "INSUFFICIENT_POINTS" | "INVALID_STATE")
                    | (StatusCode::CONFLICT, "ORDER_EXPIRED") => {}
                    other => panic!("unexpected {other:?}: {}", r.body),
                }
            }
            Op::Cancel { pick } if !orders.is_empty() => {
                let (id, user) = orders[pick % orders.len()].clone();
                let r = app
                    .post(
                        &format!("/orders/{id}/cancel"),
                        Some(&token(user)),
                        json!({}),
                    )
                    .await;
                assert!(
                    r.status == StatusCode::OK || r.code() == "INVALID_STATE",
                    "{}",
                    r.body
                );
            }
            Op::Expire => {
                app.clock.advance(Duration::minutes(11));
                app.ordering().expire_due_orders().await.expect("expire");
                app.catalogue().settle_ended_deals().await.expect("settle");
            }
            Op::Pay { .. } | Op::Cancel { .. } => {}
        }
        books(&app, &users, &coupon, &product, &deal).await;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]
    #[test]
    fn interleavings_keep_the_books(ops in proptest::collection::vec(op(), 1..25)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        rt.block_on(run(ops));
    }
}
