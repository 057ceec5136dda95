//! The books balance under concurrency and under random sequences of
//! orders, cancels, stock changes and deal endings.

use crate::support::{spawn_app, TestApp};
use chrono::Duration;
use hotdeal_domain::{StockKey, UserId};
use hyper::StatusCode;
use proptest::prelude::*;
use serde_json::json;
use std::sync::Arc;

/// `buyers` users race for `stock` units of `lines`; returns (wins, sold-out refusals).
async fn race(app: &Arc<TestApp>, buyers: usize, line: serde_json::Value) -> (usize, usize) {
    let mut users = Vec::new();
    for i in 0..buyers {
        users.push(app.accounts().register(hotdeal::services::Registration {
            email: format!("buyer{i}@x.co"),
            password: "password123".into(),
            name: "Buyer".into(),
        }));
    }
    let mut tokens = Vec::new();
    for u in users {
        let user = u.await.expect("register");
        tokens.push(app.storefront.auth.tokens.issue(user.id, app.clock_now()));
    }
    let tasks: Vec<_> = tokens
        .into_iter()
        .map(|t| {
            let app = app.clone();
            let line = line.clone();
            tokio::spawn(async move { app.order(&t, json!([line])).await })
        })
        .collect();
    let (mut won, mut refused) = (0, 0);
    for t in tasks {
        let r = t.await.expect("join");
        match (r.status, r.code()) {
            (StatusCode::CREATED, _) => won += 1,
            (StatusCode::BAD_REQUEST, "INSUFFICIENT_STOCK") => refused += 1,
            other => panic!("unexpected answer {other:?}: {}", r.body),
        }
    }
    (won, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_buyers_fifty_deal_units() {
    let app = Arc::new(spawn_app().await);
    let (_, seller) = app.user("s@x.co").await;
    let product = app.product(&seller, 10_000, 80).await;
    let deal = app.deal(&seller, &product, 5_000, 50, None).await;
    let (won, refused) = race(
        &app,
        200,
        json!({"product_id": product, "deal_id": deal, "quantity": 1}),
    )
    .await;
    assert_eq!((won, refused), (50, 150));
    let d = app.get(&format!("/products/deals/{deal}"), None).await;
    assert_eq!(d.body["remaining_stock"], 0);
    assert_eq!(d.body["status"], "sold_out");
    assert_eq!(
        app.stock(&product).await,
        30,
        "the product's own stock is untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_buyers_fifty_product_units() {
    let app = Arc::new(spawn_app().await);
    let (_, seller) = app.user("s@x.co").await;
    let product = app.product(&seller, 10_000, 50).await;
    let (won, refused) = race(&app, 200, json!({"product_id": product, "quantity": 1})).await;
    assert_eq!((won, refused), (50, 150));
    assert_eq!(app.stock(&product).await, 0);
}

// ------------------------------------------------------------ proptest

#[derive(Clone, Debug)]
enum Op {
    /// A buyer orders `qty_product` plain units and `qty_deal` deal units.
    Order {
        buyer: usize,
        qty_product: i64,
        qty_deal: i64,
    },
    Cancel {
        pick: usize,
    },
    Delta(i64),
    EndDeal,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..3, 0i64..4, 0i64..4)
            .prop_filter("a line at least", |(_, p, d)| p + d > 0)
            .prop_map(|(buyer, qty_product, qty_deal)| Op::Order { buyer, qty_product, qty_deal }),
        3 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        2 => (-6i64..6).prop_map(Op::Delta),
        1 => Just(Op::EndDeal),
    ]
}

/// What the books should say.
#[derive(Debug)]
struct Model {
    stock: i64,
    remaining: i64,
    ended: bool,
    /// (order id, buyer, product units, deal units, cancelled)
    orders: Vec<(String, usize, i64, i64, bool)>,
    total: i64,
}

async fn run_ops(ops: Vec<Op>) {
    let app = spawn_app().await;
    let (seller_id, seller) = app.user("s@x.co").await;
    let seller_id = UserId::parse(&seller_id).expect("id");
    let product = app.product(&seller, 1_000, 30).await;
    let deal = app.deal(&seller, &product, 500, 12, None).await;
    let mut buyers = Vec::new();
    for i in 0..3 {
        buyers.push(UserId::parse(&app.user(&format!("b{i}@x.co")).await.0).expect("id"));
    }
    let token =
        |app: &TestApp, i: usize| app.storefront.auth.tokens.issue(buyers[i], app.clock_now());
    let mut m = Model {
        stock: 18,
        remaining: 12,
        ended: false,
        orders: vec![],
        total: 30,
    };

    for op in ops {
        match op {
            Op::Order {
                buyer,
                qty_product,
                qty_deal,
            } => {
                let mut lines = vec![];
                if qty_product > 0 {
                    lines.push(json!({"product_id": product, "quantity": qty_product}));
                }
                if qty_deal > 0 {
                    lines.push(
                        json!({"product_id": product, "deal_id": deal, "quantity": qty_deal}),
                    );
                }
                let r = app.order(&token(&app, buyer), json!(lines)).await;
                let expect = if qty_deal > 0 && m.ended {
                    "DEAL_NOT_ACTIVE"
                } else if qty_product > m.stock || qty_deal > m.remaining {
                    "INSUFFICIENT_STOCK"
                } else {
                    ""
                };
                if expect.is_empty() {
                    assert_eq!(r.status, StatusCode::CREATED, "{op:?} {m:?} {}", r.body);
                    m.stock -= qty_product;
                    m.remaining -= qty_deal;
                    let id = r.body["id"].as_str().expect("id").to_owned();
                    m.orders.push((id, buyer, qty_product, qty_deal, false));
                } else {
                    assert_eq!(r.code(), expect, "{op:?} {m:?}");
                }
            }
            Op::Cancel { pick } => {
                if m.orders.is_empty() {
                    continue;
                }
                let i = pick % m.orders.len();
                let (id, buyer, qp, qd, cancelled) = m.orders[i].clone();
                let r = app
                    .post(
                        &format!("/orders/{id}/cancel"),
                        Some(&token(&app, buyer)),
                        json!({}),
                    )
                    .await;
                if cancelled {
                    assert_eq!(r.code(), "INVALID_STATE");
                } else {
                    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
                    m.orders[i].4 = true;
                    m.stock += qp;
                    if m.ended {
                        m.stock += qd;
                    } else {
                        m.remaining += qd;
                    }
                }
            }
            Op::Delta(delta) => {
                let seller = app.storefront.auth.tokens.issue(seller_id, app.clock_now());
                let r = app
                    .patch(
                        &format!("/products/{product}/stock"),
                        Some(&seller),
                        json!({"delta": delta}),
                    )
                    .await;
                if m.stock + delta < 0 {
                    assert_eq!(r.code(), "INSUFFICIENT_STOCK");
                } else {
                    assert_eq!(r.status, StatusCode::OK);
                    m.stock += delta;
                    m.total += delta;
                }
            }
            Op::EndDeal => {
                if !m.ended {
                    app.clock.advance(Duration::hours(2));
                    app.catalogue().settle_ended_deals().await.expect("settle");
                    m.stock += m.remaining;
                    m.remaining = 0;
                    m.ended = true;
                }
            }
        }
        // The books after every step.
        let stock = app.stock(&product).await;
        let remaining = app.remaining(&deal).await;
        assert_eq!((stock, remaining), (m.stock, m.remaining), "{m:?}");
        let sold: i64 = m.orders.iter().filter(|o| !o.4).map(|o| o.2 + o.3).sum();
        assert_eq!(stock + remaining + sold, m.total, "units are conserved");
        assert!(stock >= 0 && remaining >= 0);
        // The admission tier agrees with the store.
        let tier = &app.catalogue().admission;
        let product_id = hotdeal_domain::ProductId::parse(&product).expect("id");
        let deal_id = hotdeal_domain::DealId::parse(&deal).expect("id");
        assert_eq!(
            tier.available(StockKey::Product(product_id)).map(|a| a.0),
            Some(stock)
        );
        let expected_deal = if m.ended { None } else { Some(remaining) };
        assert_eq!(
            tier.available(StockKey::Deal(deal_id)).map(|a| a.0),
            expected_deal
        );
    }
    // Every order the model holds is as the server says.
    for (id, buyer, ..) in &m.orders {
        let r = app
            .get(&format!("/orders/{id}"), Some(&token(&app, *buyer)))
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn random_sequences_keep_the_books(ops in proptest::collection::vec(op(), 1..30)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        rt.block_on(run_ops(ops));
    }
}
