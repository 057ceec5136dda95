//! Several instances of one deployment (the scaled mode: PostgreSQL,
//! Redis, NATS JetStream) racing, crashing and losing Redis, then the
//! books. Skipped unless the tests run scaled.

use crate::support::{scaled, scaled_or_skip, spawn_cluster, Res, TestApp};
use chrono::Duration;
use hyper::{Method, StatusCode};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;

/// Signs up `n` buyers, spread over the instances.
async fn buyers(apps: &[TestApp], n: usize) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(apps[i % apps.len()].user(&format!("b{i}@x.co")).await);
    }
    out
}

/// Waits up to 2 s for every instance to show `deal` with `units` left.
async fn remaining_everywhere(apps: &[TestApp], deal: &str, units: i64) {
    let mut seen = Vec::new();
    for _ in 0..40 {
        seen.clear();
        for app in apps {
            seen.push(app.remaining(deal).await);
        }
        if seen.iter().all(|&n| n == units) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("instances show {seen:?} left, not {units}, after 2 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_race_for_one_deal_and_one_coupon() {
    let Some(apps) = spawn_cluster("cluster race", 3).await else {
        return;
    };
    let apps = Arc::new(apps);
    let (_, seller) = apps[0].user("s@x.co").await;
    let product = apps[0].product(&seller, 1000, 500).await;
    let deal = apps[1].deal(&seller, &product, 500, 40, Some(1)).await;
    let now = apps[0].clock_now();
    let coupon = apps[2]
        .post(
            "/coupons",
            Some(&seller),
            json!({"name": "Rush", "discount_type": "fixed", "discount_value": 100,
                   "min_order_amount": 0, "total_quantity": 30,
                   "starts_at": now, "ends_at": now + Duration::days(1)}),
        )
        .await;
    assert_eq!(coupon.status, StatusCode::CREATED, "{}", coupon.body);
    let coupon = coupon.body["id"].as_str().expect("id").to_owned();
    let buyers = buyers(&apps, 90).await;

    // Every buyer orders twice (the limit is one) and asks for the coupon
    // twice, each request on another instance, all at once.
    let mut tasks = Vec::new();
    for (i, (user, token)) in buyers.iter().enumerate() {
        for round in 0..2 {
            let (apps, token, deal, product, coupon, user) = (
                apps.clone(),
                token.clone(),
                deal.clone(),
                product.clone(),
                coupon.clone(),
                user.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let a = &apps[(i + round) % 3];
                let order = a
                    .order(
                        &token,
                        json!([{"product_id": product, "deal_id": deal, "quantity": 1}]),
                    )
                    .await;
                let b = &apps[(i + round + 1) % 3];
                let issue = b
                    .post(&format!("/coupons/{coupon}/issue"), Some(&token), json!({}))
                    .await;
                (user, order, issue)
            }));
        }
    }
    let mut ordered: Vec<String> = Vec::new();
    let mut issued: Vec<String> = Vec::new();
    for t in tasks {
        let (user, order, issue): (String, Res, Res) = t.await.expect("join");
        match (order.status, order.code()) {
            (StatusCode::CREATED, _) => ordered.push(user.clone()),
            (_, "INSUFFICIENT_STOCK" | "PURCHASE_LIMIT_EXCEEDED") => {}
            other => panic!("order: unexpected {other:?}: {}", order.body),
        }
        match (issue.status, issue.code()) {
            (StatusCode::CREATED, _) => issued.push(user),
            (StatusCode::CONFLICT, "COUPON_ALREADY_ISSUED" | "COUPON_SOLD_OUT") => {}
            other => panic!("issue: unexpected {other:?}: {}", issue.body),
        }
    }
    assert_eq!(ordered.len(), 40, "every unit sold, none twice");
    assert_eq!(
        ordered.iter().collect::<HashSet<_>>().len(),
        40,
        "one unit per user (limit 1) across instances"
    );
    assert_eq!(issued.len(), 30, "every coupon issued, none more");
    assert_eq!(
        issued.iter().collect::<HashSet<_>>().len(),
        30,
        "one coupon per user across instances"
    );
    let mut probe = apps[0].probe().await;
    assert_eq!(probe.count("orders").await, 40);
    assert_eq!(probe.count("user_coupons").await, 30);
    assert_eq!(
        probe.int("SELECT remaining_stock FROM deals").await,
        0,
        "the store agrees"
    );
    remaining_everywhere(&apps, &deal, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_product_made_on_one_instance_is_ordered_and_repriced_on_others() {
    let Some(apps) = spawn_cluster("cluster catalogue", 3).await else {
        return;
    };
    let (_, seller) = apps[0].user("s@x.co").await;
    let (_, buyer) = apps[1].user("b@x.co").await;
    let product = apps[0].product(&seller, 1000, 10).await;
    // Ordered on B at once: a catalogue miss reads through the store.
    let r = apps[1]
        .order(&buyer, json!([{"product_id": product, "quantity": 2}]))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["total_amount"], 2000);
    // A price edit on A is charged on C.
    let r = apps[0]
        .patch(
            &format!("/products/{product}"),
            Some(&seller),
            json!({"price": 700}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mut charged = 0;
    for _ in 0..40 {
        let r = apps[2]
            .order(&buyer, json!([{"product_id": product, "quantity": 1}]))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        charged = r.body["total_amount"].as_i64().expect("total");
        if charged == 700 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        charged, 700,
        "the new price reached the other instance within 2 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idempotent_retry_on_another_instance_waits_then_replays() {
    let Some(apps) = spawn_cluster("cluster idempotency", 2).await else {
        return;
    };
    let (_, seller) = apps[0].user("s@x.co").await;
    let (buyer_id, buyer) = apps[0].user("b@x.co").await;
    let product = apps[0].product(&seller, 1000, 10).await;
    let body = json!({"items": [{"product_id": product, "quantity": 1}]}).to_string();
    let auth = format!("Bearer {buyer}");
    let send = |app: &TestApp, body: String| {
        let auth = auth.clone();
        let base = app.base.clone();
        let client = app.client.clone();
        async move {
            let req = hyper::Request::builder()
                .method(Method::POST)
                .uri(format!("{base}/orders"))
                .header("authorization", auth)
                .header("content-type", "application/json")
                .header("idempotency-key", "retry-1")
                .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                .expect("request");
            let res = client.request(req).await.expect("send");
            let status = res.status();
            let bytes = http_body_util::BodyExt::collect(res.into_body())
                .await
                .expect("body")
                .to_bytes();
            (status, bytes)
        }
    };
    // While the key runs on A (held as a request in flight holds it),
    // B answers 409.
    let user = hotdeal_domain::UserId(buyer_id.parse().expect("uuid"));
    let key = hotdeal::services::IdempotencyKey {
        key: "retry-1".into(),
        request_hash: [0; 32],
    };
    let Ok(running) = apps[0]
        .storefront
        .idempotency
        .begin_idempotent(user, &key)
        .await
    else {
        panic!("the key is free");
    };
    let (status, _) = send(&apps[1], body.clone()).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "in progress on another instance"
    );
    drop(running);
    // Once free, A runs it and B replays the same answer.
    let mut first = None;
    for _ in 0..40 {
        let (status, bytes) = send(&apps[0], body.clone()).await;
        if status == StatusCode::CREATED {
            first = Some(bytes);
            break;
        }
        // The mark's release is on its way to Redis.
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let first = first.expect("A placed the order");
    let (status, again) = send(&apps[1], body.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(again, first, "the same answer, from the other instance");
    assert_eq!(
        apps[0].probe().await.count("orders").await,
        1,
        "one order only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instance_that_dies_holding_units_strands_none_after_reconciling() {
    let Some(apps) = spawn_cluster("cluster reconcile", 2).await else {
        return;
    };
    let (_, seller) = apps[0].user("s@x.co").await;
    let (_, buyer) = apps[0].user("b@x.co").await;
    let product = apps[0].product(&seller, 1000, 100).await;
    let deal = apps[0].deal(&seller, &product, 500, 10, None).await;
    // Holds taken by an instance that dies before it writes: straight
    // through the tier, as the order path does before the writer.
    let tier = &apps[1].catalogue().admission;
    let user = hotdeal_domain::UserId::new();
    let key = hotdeal_domain::StockKey::Deal(hotdeal_domain::DealId(deal.parse().expect("uuid")));
    let demand = std::collections::BTreeMap::from([(key, 3)]);
    for _ in 0..2 {
        tier.hold(uuid::Uuid::now_v7(), user, &demand, &[])
            .await
            .expect("held");
    }
    // A committed order whose settling never happened: also overdue.
    let r = apps[0]
        .order(
            &buyer,
            json!([{"product_id": product, "deal_id": deal, "quantity": 1}]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    remaining_everywhere(&apps[..1], &deal, 3).await;
    // Before the deadline nothing moves; after it, the reconciler gives
    // the dead instance's six units back, once, whichever instance runs it.
    assert_eq!(apps[0].reconcile().await.expect("reconcile"), 0);
    apps[0].clock.advance(Duration::minutes(5));
    let (a, b) = tokio::join!(apps[0].reconcile(), apps[1].reconcile());
    assert!(a.expect("reconcile") + b.expect("reconcile") >= 2);
    remaining_everywhere(&apps, &deal, 9).await;
    let mut probe = apps[0].probe().await;
    assert_eq!(probe.int("SELECT remaining_stock FROM deals").await, 9);
    assert_eq!(
        probe.count("orders").await,
        1,
        "the acknowledged order stands"
    );
    // Nothing is left to reconcile.
    assert_eq!(apps[1].reconcile().await.expect("reconcile"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_losing_its_data_mid_rush_is_rebuilt_from_the_store() {
    let Some(apps) = spawn_cluster("cluster redis loss", 2).await else {
        return;
    };
    let apps = Arc::new(apps);
    let (_, seller) = apps[0].user("s@x.co").await;
    let product = apps[0].product(&seller, 1000, 100).await;
    let deal = apps[0].deal(&seller, &product, 500, 60, None).await;
    let buyers = buyers(&apps, 100).await;
    let rush = |range: std::ops::Range<usize>| {
        let tasks: Vec<_> = buyers[range]
            .iter()
            .enumerate()
            .map(|(i, (_, token))| {
                let (apps, token, deal, product) =
                    (apps.clone(), token.clone(), deal.clone(), product.clone());
                tokio::spawn(async move {
                    apps[i % 2]
                        .order(
                            &token,
                            json!([{"product_id": product, "deal_id": deal, "quantity": 1}]),
                        )
                        .await
                })
            })
            .collect();
        async move {
            let mut created = 0;
            for t in tasks {
                let r = t.await.expect("join");
                match (r.status, r.code()) {
                    (StatusCode::CREATED, _) => created += 1,
                    // Sold out, or a fast 503 while a key is rebuilt.
                    (_, "INSUFFICIENT_STOCK") | (StatusCode::SERVICE_UNAVAILABLE, _) => {}
                    other => panic!("unexpected {other:?}: {}", r.body),
                }
            }
            created
        }
    };
    let first = rush(0..30).await;
    // Redis loses everything of this deployment.
    wipe_redis_prefix(&apps[0]).await;
    let second = rush(30..100).await;
    let mut probe = apps[0].probe().await;
    let orders = probe.count("orders").await;
    assert_eq!(orders, first + second, "every 201 is stored, nothing else");
    assert!(orders <= 60, "never oversold: {orders}");
    let remaining = probe.int("SELECT remaining_stock FROM deals").await;
    assert_eq!(remaining + orders, 60, "the store's books");
    assert_eq!(remaining, 0, "70 buyers after the loss emptied it");

    // The audit compares the rebuilt tier with the store: they agree, and
    // a count set wrong by hand shows as drift.
    use std::sync::atomic::Ordering::Relaxed;
    let m = &apps[0].storefront.metrics;
    apps[0].catalogue().audit_tier().await.expect("audit");
    assert_eq!(m.drift_keys_checked.load(Relaxed), 1);
    assert_eq!(
        m.drift_units.load(Relaxed),
        0,
        "the tier came back to the store"
    );
    let url = apps[0].config.redis_url.as_ref().expect("redis").expose();
    let mut conn = redis::Client::open(url)
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let units = format!("{}:{{d:{deal}}}:units", apps[0].config.redis_prefix);
    let _: () = redis::cmd("SET")
        .arg(&units)
        .arg(5)
        .query_async(&mut conn)
        .await
        .expect("set");
    apps[0].catalogue().audit_tier().await.expect("audit");
    assert_eq!(
        (m.drift_keys.load(Relaxed), m.drift_units.load(Relaxed)),
        (1, 5)
    );
}

/// Deletes every Redis key of the deployment `app` belongs to.
async fn wipe_redis_prefix(app: &TestApp) {
    let url = app.config.redis_url.as_ref().expect("redis").expose();
    let client = redis::Client::open(url).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let prefix = &app.config.redis_prefix;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .expect("keys");
    assert!(!keys.is_empty(), "the tier had keys");
    let _: () = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .expect("del");
}

/// A TCP proxy to PostgreSQL that can drop every connection and refuse new
/// ones: the store's network going away, for one test only.
struct Proxy {
    port: u16,
    up: Arc<std::sync::atomic::AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Proxy {
    async fn to(target: std::net::SocketAddr) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, cuts) = tokio::sync::watch::channel(0u64);
        let accepting = up.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !accepting.load(Ordering::Acquire) {
                    continue; // dropped: the client sees the connection close
                }
                let mut cuts = cuts.clone();
                // Only cuts from now on close this connection.
                cuts.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Self { port, up, cut }
    }

    fn down(&self) {
        self.up.store(false, std::sync::atomic::Ordering::Release);
        self.cut.send_modify(|n| *n += 1);
    }

    fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::Release);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_going_away_answers_fast_503s_then_recovers() {
    let Some((pg, redis, nats)) = scaled_or_skip("cluster postgres loss") else {
        return;
    };
    let target = {
        use std::str::FromStr;
        let opts = sqlx::postgres::PgConnectOptions::from_str(&pg).expect("url");
        let host = match opts.get_host() {
            h if h.starts_with('/') => "127.0.0.1".to_owned(),
            h => h.to_owned(),
        };
        let found = tokio::net::lookup_host((host, opts.get_port()))
            .await
            .expect("resolve")
            .next()
            .expect("address");
        found
    };
    let proxy = Proxy::to(target).await;
    let through_proxy = format!("postgres://postgres@127.0.0.1:{}/postgres", proxy.port);
    let dir = std::env::temp_dir().join(format!("hotdeal-test-{}", uuid::Uuid::new_v4()));
    let name = crate::support::schema_for(&dir);
    let app = crate::support::spawn_app_with(
        dir,
        Arc::new(hotdeal::ports::ManualClock::new(crate::support::t0())),
        move |c| scaled(c, &through_proxy, &redis, &nats, &name),
    )
    .await;
    let (_, seller) = app.user("s@x.co").await;
    let (_, buyer) = app.user("b@x.co").await;
    let product = app.product(&seller, 1000, 100).await;
    let deal = app.deal(&seller, &product, 500, 50, None).await;
    let line = json!([{"product_id": product, "deal_id": deal, "quantity": 1}]);
    for _ in 0..5 {
        assert_eq!(
            app.order(&buyer, line.clone()).await.status,
            StatusCode::CREATED
        );
    }

    proxy.down();
    for attempt in 0..20 {
        let started = std::time::Instant::now();
        let r = app.order(&buyer, line.clone()).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
        assert_eq!(r.code(), "OVERLOADED");
        // The first may wait for its connection to fail; then at once
        // (well under the pool's 5 s wait for a connection, with room for
        // a busy test machine).
        if attempt > 0 {
            assert!(
                started.elapsed() < std::time::Duration::from_millis(250),
                "a fast 503, not {:?}",
                started.elapsed()
            );
        }
    }
    assert_eq!(
        app.get("/orders/health", None).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    proxy.restore();
    let mut placed = 0;
    let mut last = None;
    for _ in 0..100 {
        let r = app.order(&buyer, line.clone()).await;
        last = Some(r.body.clone());
        if r.status == StatusCode::CREATED {
            placed += 1;
            if placed == 5 {
                break;
            }
        } else {
            assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    assert_eq!(placed, 5, "writes resumed without a restart: {last:?}");
    // The refused orders' units went back: 10 sold, 40 left, everywhere.
    let mut probe = app.probe().await;
    assert_eq!(probe.count("orders").await, 10);
    assert_eq!(probe.int("SELECT remaining_stock FROM deals").await, 40);
    remaining_everywhere(std::slice::from_ref(&app), &deal, 40).await;
}

/// A NATS server of this test's own (the `nats-server` binary on a free
/// port), so it can be killed and restarted without touching the shared
/// one the other tests use.
struct OwnNats {
    child: Option<std::process::Child>,
    port: u16,
    dir: std::path::PathBuf,
}

impl OwnNats {
    fn binary() -> Option<&'static str> {
        [
            "/usr/sbin/nats-server",
            "/usr/bin/nats-server",
            "/usr/local/bin/nats-server",
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    }

    async fn start(binary: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let dir = std::env::temp_dir().join(format!("hotdeal-nats-{}", uuid::Uuid::new_v4()));
        let mut nats = Self {
            child: None,
            port,
            dir,
        };
        nats.run(binary).await;
        nats
    }

    async fn run(&mut self, binary: &str) {
        let child = std::process::Command::new(binary)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("nats-server did not listen");
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_killed_and_restarted_mid_rush_gets_every_committed_event_once() {
    let Some((pg, redis, _)) = scaled_or_skip("cluster nats restart") else {
        return;
    };
    let Some(binary) = OwnNats::binary() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "cluster nats restart: nats-server is required in CI"
        );
        eprintln!("notice: cluster nats restart skipped: no nats-server binary");
        return;
    };
    let mut nats = OwnNats::start(binary).await;
    let dir = std::env::temp_dir().join(format!("hotdeal-test-{}", uuid::Uuid::new_v4()));
    let name = crate::support::schema_for(&dir);
    let url = nats.url();
    let app = crate::support::spawn_app_with(
        dir,
        Arc::new(hotdeal::ports::ManualClock::new(crate::support::t0())),
        {
            let name = name.clone();
            move |c| scaled(c, &pg, &redis, &url, &name)
        },
    )
    .await;
    let (_, seller) = app.user("s@x.co").await;
    let (_, buyer) = app.user("b@x.co").await;
    let product = app.product(&seller, 1000, 1000).await;
    let line = json!([{"product_id": product, "quantity": 1}]);
    let mut placed = 0;
    for round in 0..3 {
        for _ in 0..20 {
            let r = app.order(&buyer, line.clone()).await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
            placed += 1;
        }
        match round {
            // Killed mid-rush: orders go on, their events wait in the outbox.
            0 => nats.kill(),
            1 => nats.run(binary).await,
            _ => {}
        }
    }
    // Everything committed reaches the stream once the broker is back;
    // what the stream acknowledged leaves the outbox.
    let mut probe = app.probe().await;
    let mut unpublished = -1;
    for _ in 0..100 {
        unpublished = probe.count("outbox").await;
        if unpublished == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(unpublished, 0, "the outbox drained after the restart");
    // The orders and the product.
    let events = placed + 1;
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    let mut stream = js
        .get_stream(format!("{}_EVENTS", name.to_ascii_uppercase()))
        .await
        .expect("stream");
    let last = stream.info().await.expect("info").state.last_sequence;
    let mut ids = HashSet::new();
    let mut messages = 0;
    for seq in 1..=last {
        let Ok(m) = stream.get_raw_message(seq).await else {
            continue;
        };
        messages += 1;
        let id = m
            .headers
            .get("Nats-Msg-Id")
            .map(|v| v.to_string())
            .expect("every event carries its id");
        assert!(ids.insert(id.clone()), "event {id} published twice");
    }
    assert_eq!(messages, events, "every committed event, once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_one_of_three_instances_loses_and_strands_nothing() {
    use crate::support::Client;
    let Some((pg, redis, nats)) = scaled_or_skip("cluster kill -9") else {
        return;
    };
    let first = std::env::temp_dir().join(format!("hotdeal-test-{}", uuid::Uuid::new_v4()));
    let name = crate::support::schema_for(&first);
    let env = || {
        vec![
            ("HOTDEAL_DATABASE_URL", pg.clone()),
            ("HOTDEAL_DATABASE_SCHEMA", name.clone()),
            ("HOTDEAL_REDIS_URL", redis.clone()),
            ("HOTDEAL_REDIS_PREFIX", name.clone()),
            ("HOTDEAL_NATS_URL", nats.clone()),
            ("HOTDEAL_NATS_PREFIX", name.clone()),
            ("HOTDEAL_NATS_STREAM_MAX_BYTES", (1 << 20).to_string()),
            // A dead instance's reservations are overdue a second later.
            ("HOTDEAL_RESERVATION_TTL_SECS", "1".to_owned()),
        ]
    };
    let mut dirs = vec![first.clone()];
    dirs.extend(
        (1..3).map(|_| std::env::temp_dir().join(format!("hotdeal-test-{}", uuid::Uuid::new_v4()))),
    );
    let mut servers: Vec<_> = dirs
        .iter()
        .map(|d| crate::crash::start_with(d, env()))
        .collect();
    let clients: Arc<Vec<Client>> =
        Arc::new(servers.iter().map(|s| Client::new(&s.base)).collect());

    let c = &clients[0];
    let login = |email: String| async move {
        c.ok(
            "POST",
            "/auth/register",
            None,
            Some(json!({"email": email, "password": "password123", "name": "Kill"})),
        )
        .await;
        c.ok(
            "POST",
            "/auth/login",
            None,
            Some(json!({"email": email, "password": "password123"})),
        )
        .await["access_token"]
            .as_str()
            .expect("token")
            .to_owned()
    };
    let seller = login("seller@x.co".into()).await;
    let product = c
        .ok(
            "POST",
            "/products",
            Some(&seller),
            Some(json!({"name": "P", "price": 100, "stock": 100_000})),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let now = chrono::Utc::now();
    let deal = c
        .ok(
            "POST",
            "/products/deals",
            Some(&seller),
            Some(json!({
            "product_id": product, "deal_price": 50, "deal_stock": 20_000,
            "starts_at": now - Duration::minutes(1), "ends_at": now + Duration::hours(1)})),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let mut buyers = Vec::new();
    for i in 0..12 {
        buyers.push(login(format!("buyer{i}@x.co")).await);
    }

    // Every buyer orders in a loop, each order on the next instance.
    let acked: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let unanswered = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loops: Vec<_> = buyers
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let (clients, t, acked, deal, product) = (
                clients.clone(),
                t.clone(),
                acked.clone(),
                deal.clone(),
                product.clone(),
            );
            let (unanswered, stop) = (unanswered.clone(), stop.clone());
            tokio::spawn(async move {
                let line =
                    json!({"items": [{"product_id": product, "deal_id": deal, "quantity": 1}]});
                let mut n = i;
                while !stop.load(std::sync::atomic::Ordering::Acquire) {
                    n += 1;
                    match clients[n % 3]
                        .send("POST", "/orders", Some(&t), Some(line.clone()))
                        .await
                    {
                        Some(r) if r.status == StatusCode::CREATED => {
                            let id = r.body["id"].as_str().expect("id").to_owned();
                            acked.lock().expect("lock").push(id);
                        }
                        Some(r) => panic!("unexpected {}: {}", r.status, r.body),
                        // The killed instance: no answer.
                        None => {
                            unanswered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    servers[2].child.kill().expect("SIGKILL");
    servers[2].child.wait().expect("reap");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Release);
    for l in loops {
        l.await.expect("loop");
    }
    let acked = acked.lock().expect("lock").clone();
    let unanswered = unanswered.load(std::sync::atomic::Ordering::Relaxed);
    assert!(acked.len() > 20, "the rush placed orders ({})", acked.len());

    // The survivors reconcile the dead instance's reservations (overdue
    // after 1 s, swept every second).
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let config = {
        let mut c = crate::support::config_for(&first);
        scaled(&mut c, &pg, &redis, &nats, &name);
        c
    };
    let mut probe = crate::support::Probe::connect(&config).await;
    let stored = probe.count("orders").await;
    for id in &acked {
        let found = probe
            .int(&format!("SELECT count(*) FROM orders WHERE id = '{id}'"))
            .await;
        assert_eq!(found, 1, "acknowledged order {id} lost");
    }
    assert!(
        stored >= acked.len() as i64 && stored <= acked.len() as i64 + unanswered,
        "{stored} stored, {} acknowledged, {unanswered} unanswered",
        acked.len()
    );
    let remaining = probe.int("SELECT remaining_stock FROM deals").await;
    assert_eq!(remaining + stored, 20_000, "nothing oversold, nothing lost");
    // Nothing stranded: the tier counts what the store has, and holds no
    // reservation any more.
    let mut conn = redis::Client::open(redis.as_str())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let tag = format!("{name}:{{d:{deal}}}");
    let tier: i64 = redis::cmd("GET")
        .arg(format!("{tag}:units"))
        .query_async(&mut conn)
        .await
        .expect("units");
    let held: i64 = redis::cmd("HLEN")
        .arg(format!("{tag}:resv"))
        .query_async(&mut conn)
        .await
        .expect("resv");
    assert_eq!(
        (tier, held),
        (remaining, 0),
        "the tier agrees with the store"
    );
    for s in &mut servers {
        s.child.kill().ok();
        s.child.wait().ok();
    }
    for d in &dirs {
        std::fs::remove_dir_all(d).ok();
    }
    crate::support::drop_backend(&config);
}
