//! The order path's failure modes: a failing commit, a full writer queue,
//! first-come-first-served admission.

use crate::support::{spawn_app_with, t0, TestApp};
use hotdeal::ports::ManualClock;
use hotdeal_domain::{ProductId, StockKey};
use hyper::StatusCode;
use serde_json::json;
use std::sync::Arc;

async fn app_with(tune: impl FnOnce(&mut hotdeal::Config)) -> Arc<TestApp> {
    let dir = std::env::temp_dir().join(format!("hotdeal-test-{}", uuid::Uuid::new_v4()));
    Arc::new(spawn_app_with(dir, Arc::new(ManualClock::new(t0())), tune).await)
}

fn tier_units(app: &TestApp, product: &str) -> Option<i64> {
    let id = ProductId::parse(product).expect("id");
    app.catalogue()
        .admission
        .available(StockKey::Product(id))
        .map(|a| a.0)
}

/// `n` buyers each place one order of `line` at once.
async fn rush(
    app: &Arc<TestApp>,
    tokens: &[String],
    line: serde_json::Value,
) -> Vec<crate::support::Res> {
    let tasks: Vec<_> = tokens
        .iter()
        .map(|t| {
            let (app, t, line) = (app.clone(), t.clone(), line.clone());
            tokio::spawn(async move { app.order(&t, json!([line])).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("join"));
    }
    out
}

async fn buyers(app: &TestApp, n: usize) -> Vec<String> {
    let mut tokens = Vec::new();
    for i in 0..n {
        tokens.push(app.user(&format!("buyer{i}@x.co")).await.1);
    }
    tokens
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_order_in_a_batch_fails_alone_and_leaves_nothing() {
    let app = app_with(|_| {}).await;
    let (_, seller) = app.user("s@x.co").await;
    let good = app.product(&seller, 1_000, 100).await;
    let poison = app.product(&seller, 4_242, 100).await;
    // The store refuses any order of exactly 4,242 won.
    let mut side = app.probe().await;
    side.poison_orders_of(4242).await;
    let tokens = buyers(&app, 30).await;
    let mut tasks = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let product = if i % 10 == 0 { &poison } else { &good };
        let (app, t, line) = (
            app.clone(),
            t.clone(),
            json!([{"product_id": product, "quantity": 1}]),
        );
        tasks.push(tokio::spawn(async move { (i, app.order(&t, line).await) }));
    }
    for task in tasks {
        let (i, r) = task.await.expect("join");
        if i % 10 == 0 {
            assert_eq!(
                (r.status, r.code()),
                (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL")
            );
            assert_eq!(r.body["message"], "internal error", "no internals leak");
        } else {
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        }
    }
    assert_eq!(
        (app.stock(&good).await, app.stock(&poison).await),
        (73, 100)
    );
    assert_eq!(
        (tier_units(&app, &good), tier_units(&app, &poison)),
        (Some(73), Some(100))
    );
    let orders = side.count("orders").await;
    assert_eq!(orders, 27, "only the answered orders exist");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_every_commit_fails_nothing_is_written_and_stock_returns() {
    let app = app_with(|_| {}).await;
    let (_, seller) = app.user("s@x.co").await;
    let product = app.product(&seller, 1_000, 50).await;
    let deal = app.deal(&seller, &product, 500, 20, Some(1)).await;
    let mut side = app.probe().await;
    side.break_order_inserts().await;
    let tokens = buyers(&app, 20).await;
    let answers = rush(
        &app,
        &tokens,
        json!({"product_id": product, "deal_id": deal, "quantity": 1}),
    )
    .await;
    assert!(answers
        .iter()
        .all(|r| r.status == StatusCode::INTERNAL_SERVER_ERROR));
    assert_eq!(app.remaining(&deal).await, 20);
    let held = side.count("deal_purchases").await;
    assert_eq!(held, 0, "no purchase was recorded");
    // Once the store works again, the same buyers can buy: their per-user
    // claims were given back.
    side.heal().await;
    let answers = rush(
        &app,
        &tokens,
        json!({"product_id": product, "deal_id": deal, "quantity": 1}),
    )
    .await;
    assert!(answers.iter().all(|r| r.status == StatusCode::CREATED));
    assert_eq!(app.remaining(&deal).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_writer_queue_is_refused_at_once_with_retry_after() {
    let app = app_with(|c| {
        c.order_queue = 2;
        c.max_batch = 1;
    })
    .await;
    let (_, seller) = app.user("s@x.co").await;
    let product = app.product(&seller, 1_000, 1_000).await;
    let tokens = buyers(&app, 24).await;
    // Another connection holds the store's write locks: the writer stalls.
    let mut side = app.probe().await;
    side.stall_writes().await;
    let started = std::time::Instant::now();
    let tasks: Vec<_> = tokens
        .iter()
        .map(|t| {
            let (app, t) = (app.clone(), t.clone());
            let line = json!([{"product_id": product, "quantity": 1}]);
            tokio::spawn(async move {
                let r = app.order(&t, line).await;
                (r, started.elapsed())
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    side.release().await;
    let (mut created, mut refused) = (0, 0);
    for t in tasks {
        let (r, took) = t.await.expect("join");
        match r.status {
            StatusCode::CREATED => created += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                refused += 1;
                assert_eq!(r.code(), "OVERLOADED");
                assert!(r.headers.contains_key("retry-after"));
                assert!(
                    took < std::time::Duration::from_millis(400),
                    "refused while the writer stalled"
                );
            }
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    // One order in the stalled batch and two queued; the rest refused.
    assert_eq!((created, refused), (3, 21));
    assert_eq!(app.stock(&product).await, 997);
    assert_eq!(tier_units(&app, &product), Some(997));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn first_come_first_served() {
    let app = app_with(|_| {}).await;
    let (_, seller) = app.user("s@x.co").await;
    let product = app.product(&seller, 1_000, 100).await;
    let deal = app.deal(&seller, &product, 500, 10, None).await;
    let deal_key = StockKey::Deal(hotdeal_domain::DealId::parse(&deal).expect("id"));
    let tokens = buyers(&app, 20).await;
    // The writer is stalled, so admitted orders stay in flight together
    // while later ones arrive; each request arrives only after the one
    // before it was admitted or refused.
    let mut side = app.probe().await;
    side.stall_writes().await;
    let mut tasks = Vec::new();
    for t in &tokens {
        let before = app.catalogue().admission.available(deal_key).map(|a| a.0);
        let (app2, t) = (app.clone(), t.clone());
        let line = json!([{"product_id": product, "deal_id": deal, "quantity": 1}]);
        let task = tokio::spawn(async move { app2.order(&t, line).await });
        while !task.is_finished()
            && app.catalogue().admission.available(deal_key).map(|a| a.0) == before
        {
            tokio::task::yield_now().await;
        }
        tasks.push(task);
    }
    side.release().await;
    for (i, t) in tasks.into_iter().enumerate() {
        let r = t.await.expect("join");
        if i < 10 {
            assert_eq!(r.status, StatusCode::CREATED, "user {} should win", i + 1);
        } else {
            assert_eq!(r.code(), "INSUFFICIENT_STOCK", "user {} should lose", i + 1);
        }
    }
    assert_eq!(app.remaining(&deal).await, 0);
}
