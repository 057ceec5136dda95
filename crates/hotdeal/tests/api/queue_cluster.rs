//! The waiting room on several instances of one deployment (the scaled
//! mode): one queue in Redis for all of them, kept across restarts.
//! Skipped unless the tests run scaled (under `CI=true` they must).

use crate::support::{scaled, scaled_or_skip, spawn_app_with, spawn_cluster, Res, TestApp};
use bytes::Bytes;
use chrono::Duration;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;

/// A waiting-room deal on a fresh product, made on `app`: `rate` users a
/// second, opening in `opens_in`.
async fn wr_deal(app: &TestApp, seller: &str, rate: i64, opens_in: Duration) -> (String, String) {
    let product = app.product(seller, 10_000, 100).await;
    let starts = app.clock_now() + opens_in;
    let r = app
        .post(
            "/products/deals",
            Some(seller),
            json!({
                "product_id": product, "deal_price": 5000, "deal_stock": 100,
                "starts_at": starts, "ends_at": starts + Duration::minutes(50),
                "waiting_room": true, "queue_admit_per_sec": rate,
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    (product, r.body["id"].as_str().expect("id").to_owned())
}

async fn join(app: &TestApp, token: &str, deal: &str) -> Res {
    app.send(
        Method::POST,
        &format!("/deals/{deal}/queue"),
        Some(token),
        None,
    )
    .await
}

async fn joined(app: &TestApp, token: &str, deal: &str) -> Value {
    let r = join(app, token, deal).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body
}

async fn poll(app: &TestApp, token: &str, queue_token: &str) -> Res {
    app.get(&format!("/queue/{queue_token}"), Some(token)).await
}

async fn polled(app: &TestApp, token: &str, queue_token: &str) -> Value {
    let r = poll(app, token, queue_token).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body
}

async fn order(app: &TestApp, token: &str, product: &str, deal: &str, queue_token: &str) -> Res {
    let auth = format!("Bearer {token}");
    let body = json!({"items": [{"product_id": product, "deal_id": deal, "quantity": 1}]});
    app.raw(
        Method::POST,
        "/orders",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
            ("queue-token", queue_token),
        ],
        Bytes::from(body.to_string()),
    )
    .await
}

fn qtoken(v: &Value) -> String {
    v["token"].as_str().expect("token").to_owned()
}

/// Joined on one instance, polled on another, ordered on a third: one
/// queue, one token, spent once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_join_on_one_instance_is_polled_and_used_on_the_others() {
    let Some(apps) = spawn_cluster("queue cluster: one queue", 3).await else {
        return;
    };
    let (_, seller) = apps[0].user("s@x.co").await;
    let (_, first) = apps[1].user("f@x.co").await;
    let (_, second) = apps[2].user("b@x.co").await;
    // Made on one instance and joined on the others at once: they read it
    // through before their catalogue hears of it.
    let (product, deal) = wr_deal(&apps[0], &seller, 1, Duration::zero()).await;
    let a = joined(&apps[1], &first, &deal).await;
    let b = joined(&apps[2], &second, &deal).await;
    assert_eq!(
        (a["position"].clone(), b["position"].clone()),
        (json!(1), json!(2))
    );
    let again = joined(&apps[0], &second, &deal).await;
    assert_eq!(
        again["token"], b["token"],
        "the same token on another instance"
    );
    assert_eq!(again["position"], 2);

    // Past poll_after_ms, on the third instance: the same place.
    apps[0].clock.advance(Duration::milliseconds(
        again["poll_after_ms"].as_i64().expect("ms"),
    ));
    let seen = polled(&apps[1], &second, &qtoken(&b)).await;
    assert_eq!(seen["status"], "waiting");
    // A second at 1/s: the first is in, whichever instance is asked.
    apps[0].clock.advance(Duration::seconds(1));
    let in_ = polled(&apps[2], &first, &qtoken(&a)).await;
    assert_eq!(in_["status"], "admitted", "{in_:?}");
    let r = order(&apps[0], &first, &product, &deal, &qtoken(&a)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    // Spent, for every instance.
    let r = order(&apps[1], &first, &product, &deal, &qtoken(&a)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::PRECONDITION_REQUIRED, "QUEUE_REQUIRED")
    );
    apps[0].clock.advance(Duration::seconds(5));
    assert_eq!(
        polled(&apps[2], &first, &qtoken(&a)).await["status"],
        "expired"
    );
}

/// A user joining on every instance at once holds one token.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_live_token_per_user_across_instances() {
    let Some(apps) = spawn_cluster("queue cluster: one token", 3).await else {
        return;
    };
    let (_, seller) = apps[0].user("s@x.co").await;
    let (_, deal) = wr_deal(&apps[0], &seller, 1, Duration::zero()).await;
    for i in 0..10 {
        let (_, buyer) = apps[i % 3].user(&format!("b{i}@x.co")).await;
        let (a, b, c) = tokio::join!(
            join(&apps[0], &buyer, &deal),
            join(&apps[1], &buyer, &deal),
            join(&apps[2], &buyer, &deal),
        );
        let tokens: Vec<Value> = [a, b, c]
            .into_iter()
            .map(|r| {
                assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
                r.body["token"].clone()
            })
            .collect();
        assert!(tokens.iter().all(|t| *t == tokens[0]), "{tokens:?}");
    }
    let r = joined(&apps[1], &seller, &deal).await;
    assert_eq!(r["position"], 11, "ten in the queue before the seller");
}

/// Every instance stopped, a new one started: the queue and its tokens
/// are where they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_queue_outlives_every_instance() {
    let Some((pg, redis, nats)) = scaled_or_skip("queue cluster: restart") else {
        return;
    };
    let Some(apps) = spawn_cluster("queue cluster: restart", 2).await else {
        return;
    };
    let (_, seller) = apps[0].user("s@x.co").await;
    let (_, first) = apps[0].user("f@x.co").await;
    let (_, second) = apps[1].user("b@x.co").await;
    let (product, deal) = wr_deal(&apps[0], &seller, 1, Duration::zero()).await;
    let a = qtoken(&joined(&apps[0], &first, &deal).await);
    let b = qtoken(&joined(&apps[1], &second, &deal).await);
    let name = apps[0].config.redis_prefix.clone();
    let mut clock = None;
    for app in apps {
        clock = Some(app.stop().await.1);
    }
    let clock = clock.expect("a clock");
    clock.advance(Duration::milliseconds(1500));
    let dir = std::env::temp_dir().join(format!("hotdeal-test-{}", uuid::Uuid::new_v4()));
    let app = spawn_app_with(dir, clock, move |c| scaled(c, &pg, &redis, &nats, &name)).await;
    let v = polled(&app, &second, &b).await;
    assert_eq!(
        (v["status"].clone(), v["position"].clone()),
        (json!("waiting"), json!(1))
    );
    assert_eq!(polled(&app, &first, &a).await["status"], "admitted");
    let r = order(&app, &first, &product, &deal, &a).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
}

/// Joins before the opening, spread over the instances, draw for places
/// once: asked at the opening on any instance, at once, every early
/// joiner has one place, the same on every instance, and later joiners
/// queue behind them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn early_joiners_are_drawn_once_for_every_instance() {
    let Some(apps) = spawn_cluster("queue cluster: the draw", 3).await else {
        return;
    };
    let apps = Arc::new(apps);
    let (_, seller) = apps[0].user("s@x.co").await;
    let (_, deal) = wr_deal(&apps[0], &seller, 1, Duration::minutes(10)).await;
    let mut buyers = Vec::new();
    for i in 0..30 {
        let (_, buyer) = apps[i % 3].user(&format!("e{i}@x.co")).await;
        let v = joined(&apps[(i + 1) % 3], &buyer, &deal).await;
        assert_eq!(v["position"], i + 1, "the pool so far");
        buyers.push(buyer);
    }
    apps[0].clock.advance(Duration::minutes(10));
    let asks: Vec<_> = buyers
        .iter()
        .enumerate()
        .map(|(i, buyer)| {
            let (apps, buyer, deal) = (apps.clone(), buyer.clone(), deal.clone());
            tokio::spawn(async move { joined(&apps[i % 3], &buyer, &deal).await })
        })
        .collect();
    let mut places = Vec::new();
    for ask in asks {
        places.push(
            ask.await.expect("task")["position"]
                .as_u64()
                .expect("place"),
        );
    }
    let mut sorted = places.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=30).collect::<Vec<u64>>(), "one place each");
    assert_ne!(
        places, sorted,
        "drawn, not in join order (1 in 30! to fail)"
    );
    for (i, buyer) in buyers.iter().enumerate() {
        let v = joined(&apps[(i + 2) % 3], buyer, &deal).await;
        assert_eq!(v["position"], places[i], "the same on every instance");
    }
    let (_, late) = apps[1].user("late@x.co").await;
    assert_eq!(joined(&apps[2], &late, &deal).await["position"], 31);
}

/// A queue Redis cannot serve is a 503 to retry, on every route, never a
/// 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_queue_redis_cannot_serve_answers_503() {
    let Some(apps) = spawn_cluster("queue cluster: Redis failing", 1).await else {
        return;
    };
    let app = &apps[0];
    let (_, seller) = app.user("s@x.co").await;
    let (_, buyer) = app.user("b@x.co").await;
    let (product, deal) = wr_deal(app, &seller, 100, Duration::zero()).await;
    let token = qtoken(&joined(app, &buyer, &deal).await);
    app.clock.advance(Duration::seconds(5));
    // The queue's counters replaced by a string: every script on it fails.
    let url = app.config.redis_url.as_ref().expect("redis").expose();
    let mut conn = redis::Client::open(url)
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let meta = format!("{}:{{q:{deal}}}:meta", app.config.redis_prefix);
    let _: () = redis::cmd("SET")
        .arg(&meta)
        .arg("x")
        .query_async(&mut conn)
        .await
        .expect("SET");
    for r in [
        join(app, &buyer, &deal).await,
        poll(app, &buyer, &token).await,
        order(app, &buyer, &product, &deal, &token).await,
    ] {
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::SERVICE_UNAVAILABLE, "OVERLOADED"),
            "{:?}",
            r.body
        );
        assert!(r.headers.contains_key("retry-after"));
    }
    // Redis whole again (the queue lost): the token reads expired.
    let _: () = redis::cmd("DEL")
        .arg(&meta)
        .query_async(&mut conn)
        .await
        .expect("DEL");
    assert_eq!(polled(app, &buyer, &token).await["status"], "expired");
}
