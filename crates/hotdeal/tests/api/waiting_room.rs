//! The waiting room: joining, polling, fair admission and the
//! `Queue-Token` gate on orders. The clock is moved by hand, so admission
//! (a rate per second) is exact.

use crate::support::{spawn_app, Res, TestApp};
use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

/// A waiting-room deal on a fresh product: `rate` users/s, opening in
/// `opens_in`, lasting a day... minus what the tokens allow (an hour).
async fn wr_deal(
    app: &TestApp,
    seller: &str,
    stock: i64,
    rate: i64,
    opens_in: Duration,
    limit: Option<i64>,
) -> (String, String) {
    let product = app.product(seller, 10_000, stock).await;
    let starts = app.clock_now() + opens_in;
    let r = app
        .post(
            "/products/deals",
            Some(seller),
            json!({
                "product_id": product, "deal_price": 5000, "deal_stock": stock,
                "per_user_limit": limit,
                "starts_at": starts, "ends_at": starts + Duration::minutes(50),
                "waiting_room": true, "queue_admit_per_sec": rate,
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["waiting_room"], true);
    assert_eq!(r.body["queue_admit_per_sec"], rate);
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

async fn order(
    app: &TestApp,
    token: &str,
    product: &str,
    deal: &str,
    quantity: i64,
    queue_token: Option<&str>,
) -> Res {
    let auth = format!("Bearer {token}");
    let mut headers = vec![
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    if let Some(q) = queue_token {
        headers.push(("queue-token", q));
    }
    let body = json!({"items": [{"product_id": product, "deal_id": deal, "quantity": quantity}]});
    app.raw(
        Method::POST,
        "/orders",
        &headers,
        Bytes::from(body.to_string()),
    )
    .await
}

fn qtoken(v: &Value) -> String {
    v["token"].as_str().expect("token").to_owned()
}

async fn users(app: &TestApp, prefix: &str, n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(app.user(&format!("{prefix}{i}@x.co")).await.1);
    }
    out
}

fn admitted_at(v: &Value) -> DateTime<Utc> {
    let until: DateTime<Utc> = v["admitted_until"]
        .as_str()
        .expect("admitted_until")
        .parse()
        .expect("time");
    until - Duration::minutes(5)
}

#[tokio::test]
async fn join_answers_every_contract_code() {
    let app = spawn_app().await;
    let (_, seller) = app.user("s@x.co").await;
    let (_, buyer) = app.user("b@x.co").await;

    let r = join(&app, &buyer, &uuid::Uuid::new_v4().to_string()).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::NOT_FOUND, "DEAL_NOT_FOUND")
    );
    let r = join(&app, &buyer, "not-a-uuid").await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "NOT_FOUND"));

    // A deal without a waiting room (the default) is ordered directly.
    let product = app.product(&seller, 10_000, 10).await;
    let plain = app.deal(&seller, &product, 5000, 5, None).await;
    let r = app.get(&format!("/products/deals/{plain}"), None).await;
    assert_eq!(r.body["waiting_room"], false);
    assert_eq!(r.body["queue_admit_per_sec"], Value::Null);
    let r = join(&app, &buyer, &plain).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "NO_WAITING_ROOM")
    );

    let (_, deal) = wr_deal(&app, &seller, 10, 100, Duration::zero(), None).await;
    let r = app
        .send(Method::POST, &format!("/deals/{deal}/queue"), None, None)
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
    );
    let r = join(&app, &buyer, &deal).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let keys: Vec<&str> = r
        .body
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    for k in [
        "token",
        "deal_id",
        "status",
        "position",
        "estimated_wait_s",
        "poll_after_ms",
        "admitted_until",
    ] {
        assert!(keys.contains(&k), "{k} missing from {:?}", r.body);
    }
    assert_eq!(r.body["deal_id"], deal.as_str());
    assert_eq!(r.body["status"], "waiting");
    assert_eq!(r.body["position"], 1);
    assert_eq!(r.body["estimated_wait_s"], 1);
    assert!(r.body["poll_after_ms"].as_u64().expect("ms") >= 1);

    // A rate without a waiting room is a field error.
    let now = app.clock_now();
    let r = app
        .post(
            "/products/deals",
            Some(&seller),
            json!({"product_id": product, "deal_price": 1, "deal_stock": 1,
                   "starts_at": now, "ends_at": now + Duration::hours(1),
                   "queue_admit_per_sec": 5}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.body["details"]["queue_admit_per_sec"].is_string(),
        "{:?}",
        r.body
    );

    // Ended: no more joins; a token of it reads expired.
    let token = qtoken(&r_body(join(&app, &buyer, &deal).await));
    app.clock.advance(Duration::minutes(50));
    let r = join(&app, &buyer, &deal).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "DEAL_NOT_ACTIVE")
    );
    let r = poll(&app, &buyer, &token).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["status"], "expired");
    assert_eq!(r.body["position"], 0);
}

fn r_body(r: Res) -> Value {
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body
}

#[tokio::test]
async fn poll_answers_404_403_and_429_with_retry_after() {
    let app = spawn_app().await;
    let (_, seller) = app.user("s@x.co").await;
    let (_, buyer) = app.user("b@x.co").await;
    let (_, other) = app.user("o@x.co").await;
    let (_, deal) = wr_deal(&app, &seller, 10, 1, Duration::zero(), None).await;
    // Two ahead, so the buyer waits a while.
    joined(&app, &seller, &deal).await;
    joined(&app, &other, &deal).await;
    let first = joined(&app, &buyer, &deal).await;
    let token = qtoken(&first);
    assert_eq!(first["position"], 3);
    assert_eq!(first["estimated_wait_s"], 3);

    for junk in [
        "garbage",
        "a.b",
        &token[..token.len() - 1],
        &format!(
            "{}{}",
            if token.starts_with('A') { "B" } else { "A" },
            &token[1..]
        ),
    ] {
        let r = poll(&app, &buyer, junk).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::NOT_FOUND, "NOT_FOUND"),
            "{junk}"
        );
    }
    let r = poll(&app, &other, &token).await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "FORBIDDEN"));
    let r = app.get(&format!("/queue/{token}"), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Faster than poll_after_ms: 429 with the time left.
    let wait = first["poll_after_ms"].as_i64().expect("ms");
    assert_eq!(wait, 1500, "half the estimated wait");
    let r = poll(&app, &buyer, &token).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED")
    );
    assert_eq!(r.headers["retry-after"], "2");
    assert_eq!(r.body["details"]["retry_after_ms"], wait);
    app.clock.advance(Duration::milliseconds(wait - 1));
    let r = poll(&app, &buyer, &token).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers["retry-after"], "1");
    app.clock.advance(Duration::milliseconds(1));
    let r = r_body(poll(&app, &buyer, &token).await);
    assert_eq!(r["status"], "waiting");
    assert_eq!(r["position"], 2, "one admitted after 1.5 s at 1/s");
    // Joining again is the same token, not a way around the limit's state.
    let again = joined(&app, &buyer, &deal).await;
    assert_eq!(again["token"], token.as_str());
    app.clock.advance(Duration::seconds(2));
    let r = r_body(poll(&app, &buyer, &token).await);
    assert_eq!(r["status"], "admitted");
    assert_eq!(r["position"], 0);
    assert_eq!(r["estimated_wait_s"], 0);
    assert_eq!(
        admitted_at(&r),
        app.clock_now() - Duration::milliseconds(500)
    );
}

#[tokio::test]
async fn after_the_opening_admission_follows_join_order_at_the_rate() {
    let app = spawn_app().await;
    let (_, seller) = app.user("s@x.co").await;
    let buyers = users(&app, "b", 8).await;
    let (_, deal) = wr_deal(&app, &seller, 100, 2, Duration::zero(), None).await;
    let mut tokens = Vec::new();
    for (i, b) in buyers.iter().enumerate() {
        let v = joined(&app, b, &deal).await;
        assert_eq!(v["position"], i + 1);
        assert_eq!(v["estimated_wait_s"], (i as u64 + 2) / 2);
        tokens.push(qtoken(&v));
        app.clock.advance(Duration::milliseconds(10));
    }
    // 2/s: 2.1 s after the opening (and past everyone's poll_after_ms),
    // the first four are in.
    app.clock.advance(Duration::milliseconds(2100 - 80));
    let mut admitted = Vec::new();
    for (i, (b, t)) in buyers.iter().zip(&tokens).enumerate() {
        let v = r_body(poll(&app, b, t).await);
        if i < 4 {
            assert_eq!(v["status"], "admitted", "user {i}");
            admitted.push(admitted_at(&v));
        } else {
            assert_eq!(v["status"], "waiting", "user {i}");
            assert_eq!(v["position"], i - 3);
        }
    }
    let open = app.clock_now() - Duration::milliseconds(2100);
    let expected: Vec<_> = (1..=4)
        .map(|k| open + Duration::milliseconds(500 * k))
        .collect();
    assert_eq!(admitted, expected, "one every 500 ms, in join order");
}

#[tokio::test]
async fn early_joiners_are_shuffled_at_the_opening_and_go_before_later_ones() {
    let app = spawn_app().await;
    let (_, seller) = app.user("s@x.co").await;
    let early = users(&app, "e", 24).await;
    let late = users(&app, "l", 4).await;
    let (_, deal) = wr_deal(&app, &seller, 100, 1000, Duration::minutes(10), None).await;
    let mut early_tokens = Vec::new();
    for (i, u) in early.iter().enumerate() {
        let v = joined(&app, u, &deal).await;
        assert_eq!(v["status"], "waiting");
        // Before the opening: the pool drawing for places so far.
        assert_eq!(v["position"], i + 1);
        assert!(v["estimated_wait_s"].as_u64().expect("s") >= 600 - 24);
        early_tokens.push(qtoken(&v));
        app.clock.advance(Duration::seconds(1));
    }
    // To the opening exactly (24 s went by while the early ones joined).
    app.clock
        .advance(Duration::minutes(10) - Duration::seconds(24));
    let mut late_tokens = Vec::new();
    for u in &late {
        let v = joined(&app, u, &deal).await;
        late_tokens.push(qtoken(&v));
        app.clock.advance(Duration::milliseconds(1));
    }
    app.clock.advance(Duration::seconds(5));
    let mut early_at = Vec::new();
    for (u, t) in early.iter().zip(&early_tokens) {
        early_at.push(admitted_at(&r_body(poll(&app, u, t).await)));
    }
    let mut late_at = Vec::new();
    for (u, t) in late.iter().zip(&late_tokens) {
        late_at.push(admitted_at(&r_body(poll(&app, u, t).await)));
    }
    let opening = early_at.iter().min().copied().expect("some");
    // All early joiners were admitted in the first 24 ms after the
    // opening, the late ones after them, in their join order.
    assert!(early_at.iter().all(|t| *t < late_at[0]));
    assert!(late_at.windows(2).all(|w| w[0] < w[1]), "{late_at:?}");
    // Shuffled: joining first earned nothing. (The chance that 24 users
    // keep their join order is 1/24!.)
    let mut order: Vec<usize> = (0..early.len()).collect();
    order.sort_by_key(|&i| early_at[i]);
    assert_ne!(order, (0..early.len()).collect::<Vec<_>>());
    assert!(early_at
        .iter()
        .all(|t| *t - opening < Duration::milliseconds(24)));
}

#[tokio::test]
async fn one_live_token_per_user_and_deal() {
    let app = spawn_app().await;
    let (_, seller) = app.user("s@x.co").await;
    let (_, buyer) = app.user("b@x.co").await;
    let (product, deal) = wr_deal(&app, &seller, 10, 10, Duration::zero(), None).await;
    let (_, other) = wr_deal(&app, &seller, 10, 10, Duration::zero(), None).await;
    let a = qtoken(&joined(&app, &buyer, &deal).await);
    let b = qtoken(&joined(&app, &buyer, &deal).await);
    assert_eq!(a, b);
    let c = qtoken(&joined(&app, &buyer, &other).await);
    assert_ne!(a, c, "one per deal");
    app.clock.advance(Duration::seconds(1));
    assert_eq!(
        qtoken(&joined(&app, &buyer, &deal).await),
        a,
        "admitted is still live"
    );
    // Spent on an order: joining again is a new token, at the back.
    let r = order(&app, &buyer, &product, &deal, 1, Some(&a)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let d = joined(&app, &buyer, &deal).await;
    assert_ne!(qtoken(&d), a);
    app.clock.advance(Duration::seconds(1));
    let old = r_body(poll(&app, &buyer, &a).await);
    assert_eq!(old["status"], "expired");
    // Lapsed: joining again is a new token as well.
    let e = qtoken(&d);
    app.clock.advance(Duration::minutes(6));
    assert_eq!(r_body(poll(&app, &buyer, &e).await)["status"], "expired");
    assert_ne!(qtoken(&joined(&app, &buyer, &deal).await), e);
}

#[tokio::test]
async fn orders_on_a_waiting_room_deal_need_an_admitted_token_of_that_user_and_deal() {
    let app = spawn_app().await;
    let (_, seller) = app.user("s@x.co").await;
    let (_, buyer) = app.user("b@x.co").await;
    let (_, other) = app.user("o@x.co").await;
    let (product, deal) = wr_deal(&app, &seller, 10, 1, Duration::zero(), None).await;
    let (product2, deal2) = wr_deal(&app, &seller, 10, 100, Duration::zero(), None).await;
    let required = |r: &Res, why: &str| {
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::PRECONDITION_REQUIRED, "QUEUE_REQUIRED"),
            "{why}: {:?}",
            r.body
        );
    };

    let r = order(&app, &buyer, &product, &deal, 1, None).await;
    required(&r, "no token");
    let r = order(&app, &buyer, &product, &deal, 1, Some("junk")).await;
    required(&r, "not a token");

    let other_t = qtoken(&joined(&app, &other, &deal).await);
    let mine = qtoken(&joined(&app, &buyer, &deal).await);
    let r = order(&app, &buyer, &product, &deal, 1, Some(&mine)).await;
    required(&r, "still waiting");
    app.clock.advance(Duration::seconds(2));
    let r = order(&app, &buyer, &product, &deal, 1, Some(&other_t)).await;
    required(&r, "another user's token");
    let mine2 = qtoken(&joined(&app, &buyer, &deal2).await);
    app.clock.advance(Duration::seconds(1));
    let r = order(&app, &buyer, &product, &deal, 1, Some(&mine2)).await;
    required(&r, "another deal's token");
    // Lines of two waiting-room deals cannot share one token.
    let auth = format!("Bearer {buyer}");
    let body = json!({"items": [
        {"product_id": product, "deal_id": deal, "quantity": 1},
        {"product_id": product2, "deal_id": deal2, "quantity": 1}]});
    let r = app
        .raw(
            Method::POST,
            "/orders",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
                ("queue-token", &mine),
            ],
            Bytes::from(body.to_string()),
        )
        .await;
    required(&r, "two waiting-room deals");

    // Expired: past admitted_until.
    app.clock.advance(Duration::minutes(5));
    let r = order(&app, &buyer, &product, &deal, 1, Some(&mine)).await;
    required(&r, "expired");
    // A deal without a waiting room needs no token.
    let plain_product = app.product(&seller, 10_000, 5).await;
    let plain = app.deal(&seller, &plain_product, 5000, 5, None).await;
    let r = order(&app, &buyer, &plain_product, &plain, 1, None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(
        app.remaining(&deal).await,
        10,
        "nothing sold without a token"
    );
}

#[tokio::test]
async fn an_admitted_token_buys_once_and_a_refused_order_does_not_spend_it() {
    let app = spawn_app().await;
    let (_, seller) = app.user("s@x.co").await;
    let (_, buyer) = app.user("b@x.co").await;
    let (product, deal) = wr_deal(&app, &seller, 3, 100, Duration::zero(), None).await;
    let t = qtoken(&joined(&app, &buyer, &deal).await);
    app.clock.advance(Duration::seconds(1));

    let r = order(&app, &buyer, &product, &deal, 4, Some(&t)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "INSUFFICIENT_STOCK")
    );
    let r = order(&app, &buyer, &product, &deal, 2, Some(&t)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = order(&app, &buyer, &product, &deal, 1, Some(&t)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::PRECONDITION_REQUIRED, "QUEUE_REQUIRED")
    );
    assert_eq!(app.remaining(&deal).await, 1);
    let v = r_body(poll(&app, &buyer, &t).await);
    assert_eq!(v["status"], "expired");
}

#[tokio::test]
async fn the_document_lists_the_waiting_room() {
    let app = spawn_app().await;
    let doc = app.get("/openapi.json", None).await.body;
    let join = &doc["paths"]["/deals/{deal_id}/queue"]["post"]["responses"];
    for s in ["200", "400", "401", "404", "409", "503"] {
        assert!(join.get(s).is_some(), "join lacks {s}");
    }
    let status = &doc["paths"]["/queue/{token}"]["get"]["responses"];
    for s in ["200", "401", "403", "404", "429"] {
        assert!(status.get(s).is_some(), "poll lacks {s}");
    }
    assert!(status["429"]["headers"].get("Retry-After").is_some());
    assert!(doc["paths"]["/orders"]["post"]["responses"]
        .get("428")
        .is_some());
    let out = &doc["components"]["schemas"]["QueueOut"];
    assert_eq!(out["required"].as_array().map(Vec::len), Some(7));
}
