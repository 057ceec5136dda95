//! The gateway role in front of real all-in-one servers: routing, tokens
//! checked at the edge and again by the services, request ids, rate limits
//! (in memory, and shared through Redis), passive health checks and
//! timeouts — all over real sockets, the gateway speaking HTTP/2 (h2c) to
//! the services.

use crate::support::{env_url, spawn_app, Res};
use bytes::Bytes;
use hotdeal::config::{Config, Upstreams};
use hotdeal::services::tokens::TokenKeys;
use hotdeal::transport::gateway::{Edge, Gateway};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A gateway served in this process on port 0.
pub struct TestGateway {
    pub base: String,
    /// The admin listener (`/metrics`), when the test turned it on.
    admin: Option<String>,
    http: Client<HttpConnector, Full<Bytes>>,
    edge: Arc<Edge>,
    dir: std::path::PathBuf,
    _stop: oneshot::Sender<()>,
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

/// A gateway whose every role goes to `all`, after `tune`.
pub async fn spawn_gateway(all: &[&str], tune: impl FnOnce(&mut Config)) -> TestGateway {
    let dir = std::env::temp_dir().join(format!("hotdeal-gw-{}", uuid::Uuid::new_v4()));
    let mut config = Config::for_tests(&dir);
    config.admin_listen = None;
    config.upstreams = Upstreams::default()
        .with("all", all.iter().copied())
        .expect("upstreams");
    tune(&mut config);
    let gateway = Gateway::build(&config).await.expect("build gateway");
    let base = format!("http://{}", gateway.local_addr());
    let admin = gateway.admin_addr().map(|a| format!("http://{a}"));
    let edge = gateway.edge();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(gateway.serve(async {
        let _ = rx.await;
    }));
    TestGateway {
        base,
        admin,
        http: Client::builder(TokioExecutor::new()).build_http(),
        edge,
        dir,
        _stop: tx,
    }
}

impl TestGateway {
    async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Res {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let bytes = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Bytes::from(serde_json::to_vec(&b).expect("json"))
            }
            None => Bytes::new(),
        };
        let res = self
            .http
            .request(req.body(Full::new(bytes)).expect("request"))
            .await
            .expect("send");
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.expect("body").to_bytes();
        Res {
            status,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            headers,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Res {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<_> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
        self.call(Method::GET, path, &headers, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Res {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<_> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
        self.call(Method::POST, path, &headers, Some(body)).await
    }

    /// A product of `seller`'s created through the gateway; its id.
    async fn product(&self, seller: &str, price: i64, stock: i64) -> String {
        let r = self
            .post(
                "/products",
                Some(seller),
                json!({"name": "Widget", "price": price, "stock": stock, "category": "test"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["id"].as_str().expect("id").to_owned()
    }

    /// Signs up and logs in through the gateway: (user id, access token).
    async fn user(&self, email: &str) -> (String, String) {
        let r = self
            .post(
                "/auth/register",
                None,
                json!({"email": email, "password": "password123", "name": "Test User"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let r = self
            .post(
                "/auth/login",
                None,
                json!({"email": email, "password": "password123"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let id = r.body["access_token"].as_str().expect("token").to_owned();
        let me = self.get("/auth/users/me", Some(&id)).await;
        assert_eq!(me.status, StatusCode::OK, "{}", me.body);
        (me.body["id"].as_str().expect("id").to_owned(), id)
    }
}

/// Calls `call` until it is refused, at most `n` times; the refusal.
async fn refused_within<F, Fut>(n: usize, mut call: F) -> Res
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Res>,
{
    for _ in 0..n {
        let r = call().await;
        if r.status != StatusCode::OK {
            return r;
        }
    }
    panic!("still allowed after {n} calls");
}

/// A listener that accepts connections and never answers, counting them:
/// an upstream that hangs, or proof that nothing was forwarded.
async fn silent_upstream() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = format!("http://{}", listener.local_addr().expect("addr"));
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (addr, accepted)
}

/// An address where nothing listens (bound, then closed).
async fn dead_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    format!("http://{}", listener.local_addr().expect("addr"))
}

#[tokio::test]
async fn a_user_signs_up_and_orders_through_the_gateway() {
    let app = spawn_app().await;
    let gw = spawn_gateway(&[&app.base], |_| {}).await;
    let health = gw.get("/health", None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(
        health.body,
        json!({"status": "healthy", "service": "gateway"})
    );
    let orders = gw.get("/orders/health", None).await;
    assert_eq!(orders.body["service"], "order-service");

    let (_, seller) = gw.user("seller@gw.test").await;
    let (buyer_id, buyer) = gw.user("buyer@gw.test").await;
    let product = gw.product(&seller, 1000, 5).await;
    let order = gw
        .post(
            "/orders",
            Some(&buyer),
            json!({"items": [{"product_id": product, "quantity": 2}]}),
        )
        .await;
    assert_eq!(order.status, StatusCode::CREATED, "{}", order.body);
    assert_eq!(order.body["user_id"], buyer_id.as_str());
    assert_eq!(app.stock(&product).await, 3, "the service took the stock");
    let list = gw.get("/orders", Some(&buyer)).await;
    assert_eq!(list.body["total"], 1);
    // The service's own errors come back as they were.
    let missing = gw
        .get(&format!("/products/{}", uuid::Uuid::new_v4()), None)
        .await;
    assert_eq!(
        (missing.status, missing.code()),
        (StatusCode::NOT_FOUND, "NOT_FOUND")
    );
}

#[tokio::test]
async fn request_ids_are_passed_on_or_made() {
    let app = spawn_app().await;
    let gw = spawn_gateway(&[&app.base], |_| {}).await;
    let r = gw
        .call(
            Method::GET,
            "/products",
            &[("x-request-id", "abc-123.x")],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["x-request-id"], "abc-123.x");
    // Not sane (spaces, too long): replaced by a fresh id.
    let long = "a".repeat(200);
    for bad in ["has space", long.as_str()] {
        let r = gw
            .call(Method::GET, "/products", &[("x-request-id", bad)], None)
            .await;
        let id = r.headers["x-request-id"].to_str().expect("ascii");
        assert!(id != bad && uuid::Uuid::parse_str(id).is_ok(), "{id}");
    }
    // Answers made at the edge carry one too.
    let r = gw.get("/nowhere", None).await;
    assert!(r.headers.contains_key("x-request-id"));
}

#[tokio::test]
async fn the_edge_refuses_missing_and_bad_tokens_and_unknown_paths_itself() {
    let (upstream, accepted) = silent_upstream().await;
    let gw = spawn_gateway(&[&upstream], |_| {}).await;
    let none = gw.get("/orders", None).await;
    assert_eq!(
        (none.status, none.code()),
        (StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
    );
    let basic = gw
        .call(
            Method::GET,
            "/points",
            &[("authorization", "Basic dTpw")],
            None,
        )
        .await;
    assert_eq!(basic.code(), "UNAUTHORIZED");
    let bad = gw.get("/users/me/coupons", Some("not.a.token")).await;
    assert_eq!(
        (bad.status, bad.code()),
        (StatusCode::UNAUTHORIZED, "INVALID_TOKEN")
    );
    let forged = TokenKeys::new(b"some-other-secret-of-32-bytes-or-more")
        .issue(hotdeal_domain::UserId::new(), chrono::Utc::now());
    let r = gw
        .post("/orders", Some(&forged), json!({"items": []}))
        .await;
    assert_eq!(r.code(), "INVALID_TOKEN");
    let unknown = gw.get("/admin/secrets", None).await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (StatusCode::NOT_FOUND, "NOT_FOUND")
    );
    assert!(unknown.body["message"].is_string());
    let wrong = gw.call(Method::DELETE, "/orders", &[], None).await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "nothing reached the upstream"
    );
}

#[tokio::test]
async fn a_forged_token_sent_straight_to_a_service_is_refused() {
    let app = spawn_app().await;
    let (user, token) = app.user("victim@gw.test").await;
    // The same user id, signed with a key that is not the shared secret.
    let user_id = hotdeal_domain::UserId::parse(&user).expect("uuid");
    let forged =
        TokenKeys::new(b"an-attacker-key-of-at-least-32-bytes").issue(user_id, app.clock_now());
    let direct = app.get("/points", Some(&forged)).await;
    assert_eq!(
        (direct.status, direct.code()),
        (StatusCode::UNAUTHORIZED, "INVALID_TOKEN")
    );
    // An identity header is not an identity: only the token is.
    let header = app
        .raw(
            Method::GET,
            "/points",
            &[("x-user-id", user.as_str())],
            Bytes::new(),
        )
        .await;
    assert_eq!(header.code(), "UNAUTHORIZED");
    assert_eq!(
        app.get("/points", Some(&token)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_services_speak_http2_without_tls() {
    let app = spawn_app().await;
    let h2: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let req = Request::get(format!("{}/products/health", app.base))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let res = h2.request(req).await.expect("h2c");
    assert_eq!(res.version(), hyper::Version::HTTP_2);
    assert_eq!(res.status(), StatusCode::OK);
    // HTTP/1.1 on the same listener, as before.
    assert_eq!(
        app.get("/products/health", None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_like_an_http1_one() {
    let dir = std::env::temp_dir().join(format!("hotdeal-test-{}", uuid::Uuid::new_v4()));
    let clock = Arc::new(hotdeal::ports::ManualClock::new(crate::support::t0()));
    let app = crate::support::spawn_app_with(dir, clock, |c| c.idle_timeout_ms = 200).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2 handshake");
    let conn = tokio::spawn(conn);
    let req = Request::get(format!("{}/health", app.base))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let res = send.send_request(req).await.expect("answer");
    assert_eq!(res.status(), StatusCode::OK);
    // No request running, nothing moving: the watchdog closes it.
    tokio::time::timeout(Duration::from_secs(3), conn)
        .await
        .expect("the idle h2 connection was closed")
        .expect("join")
        .ok();
}

#[tokio::test]
async fn a_user_over_the_limit_gets_429_while_others_pass() {
    let app = spawn_app().await;
    let gw = spawn_gateway(&[&app.base], |c| {
        c.rate_limit_user_per_sec = 1;
        c.rate_limit_user_burst = 3;
    })
    .await;
    let (_, greedy) = gw.user("greedy@gw.test").await;
    let (_, calm) = gw.user("calm@gw.test").await;
    // The burst passes (one a second may come back while this runs),
    // then the limit holds.
    let refused = refused_within(4, || gw.get("/points", Some(&greedy))).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED")
    );
    let wait: u64 = refused.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=2).contains(&wait), "{wait}");
    assert!(refused.body["message"].is_string());
    assert_eq!(gw.get("/points", Some(&calm)).await.status, StatusCode::OK);
    assert_eq!(gw.edge.rate_limit_counts().0, 1);
}

#[tokio::test]
async fn a_client_ip_over_its_limit_gets_429() {
    let app = spawn_app().await;
    let gw = spawn_gateway(&[&app.base], |c| {
        c.rate_limit_ip_per_sec = 1;
        c.rate_limit_ip_burst = 2;
    })
    .await;
    let r = refused_within(3, || gw.get("/products", None)).await;
    assert_eq!(r.code(), "RATE_LIMITED");
    assert!(r.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn a_stopped_upstream_is_skipped_and_the_other_serves() {
    let a = spawn_app().await;
    let b = spawn_app().await;
    let gw = spawn_gateway(&[&a.base, &b.base], |c| c.gateway_cooldown_ms = 60_000).await;
    for _ in 0..4 {
        assert_eq!(gw.get("/products", None).await.status, StatusCode::OK);
    }
    b.stop().await;
    for _ in 0..6 {
        let r = gw.get("/products", None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    // Once the dead one is cooling down, calls that may not be retried
    // go to the live one too.
    let r = gw
        .post(
            "/auth/register",
            None,
            json!({"email": "late@gw.test", "password": "password123", "name": "Late"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    a.stop().await;
    let started = Instant::now();
    let r = gw.get("/products", None).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "OVERLOADED")
    );
    assert!(r.headers.contains_key("retry-after"));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_unreachable_address_is_retried_elsewhere_for_idempotent_calls_only() {
    let app = spawn_app().await;
    let dead = dead_address().await;
    let gw = spawn_gateway(&[&dead, &app.base], |c| c.gateway_cooldown_ms = 60_000).await;
    // Whichever address the round robin starts on, every GET succeeds.
    for _ in 0..3 {
        assert_eq!(gw.get("/products", None).await.status, StatusCode::OK);
    }
    assert_eq!(gw.edge.counters.connect_failures.load(Ordering::Relaxed), 1);

    // A POST with an Idempotency-Key may be sent again: the first try
    // goes to the dead address (a fresh gateway starts its round robin
    // there), the second to the live one.
    let (_, token) = app.user("keyed@gw.test").await;
    let gw = spawn_gateway(&[&dead_address().await, &app.base], |_| {}).await;
    let auth = format!("Bearer {token}");
    let r = gw
        .call(
            Method::POST,
            "/points/charges",
            &[("authorization", &auth), ("idempotency-key", "charge-1")],
            Some(json!({"amount": 500})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(gw.edge.counters.connect_failures.load(Ordering::Relaxed), 1);

    // A POST without an Idempotency-Key that meets a dead address is not
    // sent again: 503, and nothing happened.
    let dead2 = dead_address().await;
    let gw = spawn_gateway(&[&dead2], |_| {}).await;
    let r = gw
        .post(
            "/auth/register",
            None,
            json!({"email": "x@gw.test", "password": "password123", "name": "Xx"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "OVERLOADED")
    );
    assert!(r.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn an_upstream_that_hangs_is_answered_fast() {
    let (upstream, accepted) = silent_upstream().await;
    let gw = spawn_gateway(&[&upstream], |c| c.gateway_timeout_ms = 300).await;
    let started = Instant::now();
    let r = gw.get("/products", None).await;
    let took = started.elapsed();
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "OVERLOADED")
    );
    assert!(r.headers.contains_key("retry-after"));
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(accepted.load(Ordering::SeqCst) >= 1);
    // It is cooling down now: the next call does not wait at all.
    let started = Instant::now();
    let r = gw.get("/products", None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < Duration::from_millis(200));
}

#[tokio::test]
async fn the_gateway_refuses_to_start_without_upstreams_or_a_secret() {
    let dir = std::env::temp_dir().join(format!("hotdeal-gw-{}", uuid::Uuid::new_v4()));
    let mut config = Config::for_tests(&dir);
    config.upstreams = Upstreams::parse_entry("order=http://127.0.0.1:1").expect("entry");
    let e = Gateway::build(&config)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("auth, product, coupon, point") && !e.contains("order"),
        "{e}"
    );
    config.upstreams = Upstreams::parse_entry("all=http://127.0.0.1:1").expect("entry");
    config.jwt_secret = None;
    let e = Gateway::build(&config)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("JWT secret"), "{e}");
    std::fs::remove_dir_all(dir).ok();
}

/// Redis for the shared limiter: from the environment; under `CI=true` the
/// local one (missing, the test fails); else `None` after a notice.
fn redis_or_skip(test: &str) -> Option<String> {
    if let Some(url) = env_url("HOTDEAL_TEST_REDIS_URL") {
        return Some(url);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        return Some("redis://127.0.0.1:6379".into());
    }
    eprintln!("notice: {test} skipped: it needs Redis (set HOTDEAL_TEST_REDIS_URL)");
    None
}

#[tokio::test]
async fn two_gateways_share_one_users_limit_through_redis() {
    let Some(redis) = redis_or_skip("two_gateways_share_one_users_limit_through_redis") else {
        return;
    };
    let app = spawn_app().await;
    let prefix = format!("hdgw-{}", uuid::Uuid::new_v4().simple());
    let tune = |c: &mut Config| {
        c.redis_url = Some(hotdeal::config::Secret::new(redis.clone()));
        c.redis_prefix = prefix.clone();
        c.rate_limit_user_per_sec = 1;
        c.rate_limit_user_burst = 4;
    };
    let one = spawn_gateway(&[&app.base], tune).await;
    let two = spawn_gateway(&[&app.base], tune).await;
    // One request of each budget goes to /auth/users/me in `user()`.
    let (_, token) = one.user("shared@gw.test").await;
    let (_, other) = two.user("other@gw.test").await;
    // Alternating between the gateways, the user gets one budget, not
    // one per gateway (which would let 7 or more through).
    let mut turn = 0;
    let r = refused_within(4, || {
        turn += 1;
        [&one, &two][turn % 2].get("/points", Some(&token))
    })
    .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    for gw in [&one, &two] {
        let r = gw.get("/points", Some(&token)).await;
        assert_eq!(r.code(), "RATE_LIMITED", "{}", r.body);
        assert!(r.headers.contains_key("retry-after"));
    }
    assert_eq!(
        one.get("/points", Some(&other)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        one.edge.rate_limit_counts().1,
        0,
        "Redis answered every check"
    );
}

/// A TCP proxy to `target` that the test can take away: aborting the
/// returned task drops the listener and every proxied connection.
async fn proxy_to(target: String) -> (u16, tokio::task::JoinHandle<()>) {
    let (port, task, _) = counting_proxy_to(target).await;
    (port, task)
}

/// As [`proxy_to`], counting the connections it accepted.
async fn counting_proxy_to(target: String) -> (u16, tokio::task::JoinHandle<()>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((mut inbound, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let target = target.clone();
            connections.spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (port, task, accepted)
}

#[tokio::test]
async fn many_calls_share_one_http2_connection_per_address() {
    let app = spawn_app().await;
    let target = app.base.trim_start_matches("http://").to_owned();
    let (port, _proxy, accepted) = counting_proxy_to(target).await;
    let upstream = format!("http://127.0.0.1:{port}");
    let gw = Arc::new(spawn_gateway(&[&upstream], |_| {}).await);
    // More at once than hyper's default of 200 streams per connection.
    let calls: Vec<_> = (0..300)
        .map(|_| {
            let gw = gw.clone();
            tokio::spawn(async move { gw.get("/products", None).await.status })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.expect("join"), StatusCode::OK);
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one connection, multiplexed"
    );
}

#[tokio::test]
async fn with_redis_gone_the_limiter_fails_open_and_counts_it() {
    let Some(redis) = redis_or_skip("with_redis_gone_the_limiter_fails_open_and_counts_it") else {
        return;
    };
    // redis://[user:password@]host:port[/db]: the same URL through a proxy.
    let rest = redis.strip_prefix("redis://").expect("a redis:// URL");
    let (creds, rest) = rest.rsplit_once('@').map_or(("", rest), |(c, r)| (c, r));
    let (hostport, db) = rest.split_once('/').map_or((rest, ""), |(h, d)| (h, d));
    let (port, proxy) = proxy_to(hostport.to_owned()).await;
    let at = if creds.is_empty() {
        String::new()
    } else {
        format!("{creds}@")
    };
    let through = format!("redis://{at}127.0.0.1:{port}/{db}");
    let app = spawn_app().await;
    let gw = spawn_gateway(&[&app.base], |c| {
        c.redis_url = Some(hotdeal::config::Secret::new(through));
        c.redis_prefix = format!("hdgw-{}", uuid::Uuid::new_v4().simple());
        c.rate_limit_user_per_sec = 1;
        c.rate_limit_user_burst = 2;
        c.admin_listen = Some("127.0.0.1:0".parse().expect("addr"));
    })
    .await;
    let (_, token) = gw.user("open@gw.test").await;
    proxy.abort();
    let _ = proxy.await;
    // Far past the limit, and every request passes: the limiter is
    // protection, not correctness.
    for _ in 0..5 {
        let started = Instant::now();
        let r = gw.get("/points", Some(&token)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
    let (refused, failures) = gw.edge.rate_limit_counts();
    assert_eq!((refused, failures), (0, 5));
    let admin = gw.admin.clone().expect("admin listener");
    let text = gw
        .http
        .request(
            Request::get(format!("{admin}/metrics"))
                .body(Full::new(Bytes::new()))
                .expect("request"),
        )
        .await
        .expect("scrape")
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let text = String::from_utf8_lossy(&text);
    assert!(
        text.contains("hotdeal_gateway_rate_limit_store_errors_total 5"),
        "{text}"
    );
    assert!(
        !text.contains(&port.to_string()),
        "no Redis address in the metrics"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn split_services_behind_the_gateway_serve_the_whole_api() {
    let Some(split) =
        crate::split::Split::new("split_services_behind_the_gateway_serve_the_whole_api")
    else {
        return;
    };
    let clock = split.clock.clone();
    let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let shop = split
        .start("auth,product,coupon,point", Some(any), None)
        .await;
    let grpc = shop.grpc.expect("the product role serves gRPC");
    let order = split.start("order", None, Some(grpc)).await;
    // Without HOTDEAL_TEST_VIA_GATEWAY, `base` is the server itself.
    let gw = spawn_gateway(&[&shop.base], |c| {
        c.upstreams = Upstreams::default()
            .with("all", [shop.base.as_str()])
            .and_then(|u| u.with("order", [order.base.as_str()]))
            .expect("upstreams");
    })
    .await;
    assert_eq!(
        gw.get("/orders/health", None).await.body["service"],
        "order-service"
    );
    let (_, seller) = gw.user("seller@split.gw").await;
    let (_, buyer) = gw.user("buyer@split.gw").await;
    let product = gw.product(&seller, 700, 4).await;
    let placed = gw
        .post(
            "/orders",
            Some(&buyer),
            json!({"items": [{"product_id": product, "quantity": 3}]}),
        )
        .await;
    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.body);
    assert_eq!(gw.get("/orders", Some(&buyer)).await.body["total"], 1);
    assert_eq!(gw.get("/points", Some(&buyer)).await.status, StatusCode::OK);
    assert_eq!(
        gw.get("/users/me/coupons", Some(&buyer)).await.status,
        StatusCode::OK
    );
    // Stock moved through the order service's gRPC call; pages may trail
    // orders by the read cache's age.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let stock = gw.get(&format!("/products/{product}/stock"), None).await;
        if stock.body["stock"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "{}", stock.body);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The waiting room, split: the deal is the product role's, its queue
    // the order role's (in Redis), the token checked where the order goes.
    let now = hotdeal::ports::Clock::now(clock.as_ref());
    let deal = gw
        .post(
            "/products/deals",
            Some(&seller),
            json!({
                "product_id": product, "deal_price": 500, "deal_stock": 1, "per_user_limit": 1,
                "starts_at": now, "ends_at": now + chrono::Duration::hours(1), "waiting_room": true,
            }),
        )
        .await;
    assert_eq!(deal.status, StatusCode::CREATED, "{}", deal.body);
    let deal = deal.body["id"].as_str().expect("deal id").to_owned();
    let line = json!({"items": [{"product_id": product, "deal_id": deal, "quantity": 1}]});
    let refused = gw.post("/orders", Some(&buyer), line.clone()).await;
    assert_eq!(refused.code(), "QUEUE_REQUIRED", "{}", refused.body);
    let joined = gw
        .post(&format!("/deals/{deal}/queue"), Some(&buyer), json!({}))
        .await;
    assert_eq!(joined.status, StatusCode::OK, "{}", joined.body);
    let token = joined.body["token"].as_str().expect("token").to_owned();
    clock.advance(chrono::Duration::seconds(1));
    let polled = gw.get(&format!("/queue/{token}"), Some(&buyer)).await;
    assert_eq!(polled.body["status"], "admitted", "{}", polled.body);
    let auth = format!("Bearer {buyer}");
    let placed = gw
        .call(
            Method::POST,
            "/orders",
            &[
                ("authorization", auth.as_str()),
                ("queue-token", token.as_str()),
            ],
            Some(line),
        )
        .await;
    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.body);
}

#[tokio::test]
async fn catalogue_reads_are_cached_at_the_edge_until_a_write_passes() {
    let app = spawn_app().await;
    // An age long enough to see: the default is 50 ms.
    let gw = spawn_gateway(&[&app.base], |c| c.gateway_cache_ms = 60_000).await;
    let (_, seller) = gw.user("seller@cache.test").await;
    let (_, buyer) = gw.user("buyer@cache.test").await;
    let product = gw.product(&seller, 1000, 5).await;
    let stock = format!("/products/{product}/stock");
    assert_eq!(gw.get(&stock, None).await.body["stock"], 5);

    // An order's stock may trail (the contract's 100 ms): the page stays.
    let order = gw
        .post(
            "/orders",
            Some(&buyer),
            json!({"items": [{"product_id": product, "quantity": 2}]}),
        )
        .await;
    assert_eq!(order.status, StatusCode::CREATED, "{}", order.body);
    assert_eq!(app.stock(&product).await, 3);
    assert_eq!(
        gw.get(&stock, None).await.body["stock"],
        5,
        "served from the edge"
    );
    // A cancel through this gateway is seen by the next read.
    let id = order.body["id"].as_str().expect("order id");
    let cancel = gw
        .post(&format!("/orders/{id}/cancel"), Some(&buyer), json!({}))
        .await;
    assert_eq!(cancel.status, StatusCode::OK, "{}", cancel.body);
    assert_eq!(gw.get(&stock, None).await.body["stock"], 5);
    gw.post(
        "/orders",
        Some(&buyer),
        json!({"items": [{"product_id": product, "quantity": 1}]}),
    )
    .await;
    // So is a product edit.
    let edit = gw
        .call(
            Method::PATCH,
            &format!("/products/{product}"),
            &[("authorization", &format!("Bearer {seller}"))],
            Some(json!({"price": 1200})),
        )
        .await;
    assert_eq!(edit.status, StatusCode::OK, "{}", edit.body);
    assert_eq!(gw.get(&stock, None).await.body["stock"], 4);
    let page = gw.get(&format!("/products/{product}"), None).await;
    assert_eq!(page.body["price"], 1200);
    // Private reads are never cached.
    let mine = gw.get("/orders", Some(&buyer)).await;
    assert_eq!(mine.body["total"], 2);
}
