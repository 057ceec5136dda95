//! `spawn_app()` and a small HTTP client for the tests, on the store the
//! environment names: `HOTDEAL_TEST_DATABASE_URL=postgres://…` runs every
//! test on PostgreSQL, each in its own schema (so they run in parallel on
//! one server); unset, each test has its own SQLite file.

use bytes::Bytes;
use chrono::{DateTime, Duration, SubsecRound, Utc};
use hotdeal::ports::ManualClock;
use hotdeal::services::{Accounts, Catalogue, Coupons, Ordering, Storefront};
use hotdeal::{App, Config};
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderValue;
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client as HyperClient};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct TestApp {
    pub base: String,
    /// The server's own address: `base` too, unless a gateway is in front
    /// (`HOTDEAL_TEST_VIA_GATEWAY=1`), for tests of what the server itself
    /// answers or counts.
    pub direct: String,
    /// The admin listener (`/metrics`, `/ops`), e.g. `http://127.0.0.1:PORT`.
    pub admin: String,
    /// The product service's gRPC address, in a process with that role
    /// and a gRPC listener.
    pub grpc: Option<std::net::SocketAddr>,
    pub client: HyperClient<HttpConnector, Full<Bytes>>,
    pub storefront: Arc<Storefront>,
    /// The store the server opened (the services hold only their parts).
    pub store: hotdeal::app::OpenStore,
    pub clock: Arc<ManualClock>,
    pub dir: PathBuf,
    /// The configuration it runs with (its store, its prefixes).
    pub config: Config,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    /// With `HOTDEAL_TEST_VIA_GATEWAY=1`, the gateway `base` points at.
    gateway: Option<oneshot::Sender<()>>,
}

pub struct Res {
    pub status: StatusCode,
    pub body: Value,
    #[allow(dead_code)] // read by tests that check Retry-After
    pub headers: HeaderMap,
}

impl Res {
    /// The error code of an error body.
    pub fn code(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
}

/// A fixed, whole-second start time keeps timestamps readable in failures.
pub fn t0() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

pub async fn spawn_app() -> TestApp {
    let dir = std::env::temp_dir().join(format!("hotdeal-test-{}", uuid::Uuid::new_v4()));
    spawn_app_in(dir, Arc::new(ManualClock::new(t0()))).await
}

/// `n` servers of one deployment in the scaled mode: one PostgreSQL
/// schema, one Redis key prefix, one NATS subject prefix, one JWT secret
/// and one clock. `None` (with a notice) unless the tests run scaled; under
/// `CI=true` that is a failure.
pub async fn spawn_cluster(test: &str, n: usize) -> Option<Vec<TestApp>> {
    let (pg, redis, nats) = scaled_or_skip(test)?;
    let clock = Arc::new(ManualClock::new(t0()));
    let first = std::env::temp_dir().join(format!("hotdeal-test-{}", uuid::Uuid::new_v4()));
    let shared = schema_for(&first);
    let mut apps = Vec::with_capacity(n);
    for i in 0..n {
        let dir = if i == 0 {
            first.clone()
        } else {
            std::env::temp_dir().join(format!("hotdeal-test-{}", uuid::Uuid::new_v4()))
        };
        let (pg, redis, nats, shared) = (pg.clone(), redis.clone(), nats.clone(), shared.clone());
        let app = spawn_app_with(dir, clock.clone(), move |c| {
            scaled(c, &pg, &redis, &nats, &shared)
        })
        .await;
        apps.push(app);
    }
    Some(apps)
}

/// The scaled mode's services: from the environment, or under `CI=true`
/// the local ones (a missing service then fails the test); else `None`
/// after a notice.
pub fn scaled_or_skip(test: &str) -> Option<(String, String, String)> {
    let from_env = (
        postgres_url(),
        env_url("HOTDEAL_TEST_REDIS_URL"),
        env_url("HOTDEAL_TEST_NATS_URL"),
    );
    if let (Some(pg), Some(redis), Some(nats)) = from_env {
        return Some((pg, redis, nats));
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        return Some((
            "postgres://postgres@127.0.0.1:5432/postgres".into(),
            "redis://127.0.0.1:6379".into(),
            "nats://127.0.0.1:4222".into(),
        ));
    }
    eprintln!("notice: {test} skipped: it needs PostgreSQL, Redis and NATS (set HOTDEAL_TEST_DATABASE_URL, HOTDEAL_TEST_REDIS_URL and HOTDEAL_TEST_NATS_URL)");
    None
}

/// Points `c` at the scaled backend under `name` (schema and prefixes).
pub fn scaled(c: &mut Config, pg: &str, redis: &str, nats: &str, name: &str) {
    c.database_url = hotdeal::config::Secret::new(pg);
    c.database_schema = Some(name.to_owned());
    c.database_pool = 4;
    c.redis_url = Some(hotdeal::config::Secret::new(redis));
    c.nats_url = Some(hotdeal::config::Secret::new(nats));
    c.redis_prefix = name.to_owned();
    c.nats_prefix = name.to_owned();
    // JetStream reserves a stream's bytes on its disk up front.
    c.nats_stream_max_bytes = 1 << 20;
}

pub async fn spawn_app_in(dir: PathBuf, clock: Arc<ManualClock>) -> TestApp {
    spawn_app_with(dir, clock, |_| {}).await
}

/// A server whose test configuration `tune` may change first.
pub async fn spawn_app_with(
    dir: PathBuf,
    clock: Arc<ManualClock>,
    tune: impl FnOnce(&mut Config),
) -> TestApp {
    let mut config = config_for(&dir);
    // Tests settle deals explicitly after moving the clock.
    config.deal_sweep_ms = 3_600_000;
    tune(&mut config);
    let app = App::build_with_clock(&config, clock.clone())
        .await
        .expect("build app");
    let base = format!("http://{}", app.local_addr());
    let admin = app
        .admin_addr()
        .map(|a| format!("http://{a}"))
        .unwrap_or_default();
    let storefront = app.storefront();
    let store = app.store().clone();
    let grpc = app.grpc_addr();
    let (tx, rx) = oneshot::channel();
    let server = tokio::spawn(app.serve(async {
        let _ = rx.await;
    }));
    let client = http_client();
    let direct = base.clone();
    let (base, gateway) = match via_gateway(&base, &config, &clock).await {
        Some((gateway_base, stop)) => (gateway_base, Some(stop)),
        None => (base, None),
    };
    TestApp {
        base,
        direct,
        admin,
        grpc,
        client,
        storefront,
        store,
        clock,
        dir,
        config,
        stop: Some(tx),
        server: Some(server),
        gateway,
    }
}

/// The tests' HTTP client. It lets a pooled connection go after 2 s idle,
/// well before the server's idle timeout closes it: a request sent on a
/// connection the server is closing at that moment is reset, and a client
/// cannot tell whether a reset POST was taken. Any client of a server with
/// an idle timeout should do the same.
fn http_client() -> HyperClient<HttpConnector, Full<Bytes>> {
    HyperClient::builder(TokioExecutor::new())
        .pool_idle_timeout(std::time::Duration::from_secs(2))
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .build_http()
}

/// With `HOTDEAL_TEST_VIA_GATEWAY=1`, a gateway in front of the server at
/// `app` (same JWT secret and clock, no rate limits): the suite then runs
/// through it. Its base URL and its stop switch. A server whose secret was
/// generated in its data dir is reached directly (the gateway takes only a
/// given secret).
async fn via_gateway(
    app: &str,
    app_config: &Config,
    clock: &Arc<ManualClock>,
) -> Option<(String, oneshot::Sender<()>)> {
    if std::env::var("HOTDEAL_TEST_VIA_GATEWAY").as_deref() != Ok("1") {
        return None;
    }
    if app_config.jwt_secret.is_none() && app_config.jwt_secret_file.is_none() {
        return None;
    }
    let mut config = Config::for_tests(&app_config.data_dir);
    config.jwt_secret = app_config.jwt_secret.clone();
    config.jwt_secret_file = app_config.jwt_secret_file.clone();
    config.admin_listen = None;
    // The listener's limits are the server's: the edge tests then check
    // the gateway's own listener (the same accept loop).
    config.max_connections = app_config.max_connections;
    config.max_in_flight = app_config.max_in_flight;
    config.header_timeout_ms = app_config.header_timeout_ms;
    config.body_timeout_ms = app_config.body_timeout_ms;
    config.idle_timeout_ms = app_config.idle_timeout_ms;
    config.upstreams = hotdeal::config::Upstreams::default()
        .with("all", [app])
        .expect("upstream");
    config.rate_limit_user_per_sec = 0;
    config.rate_limit_ip_per_sec = 0;
    // A debug build under a rush of thousands of requests can take longer
    // than the production timeout; a timed-out call's 503 would not say
    // whether the service took it, and the tests count every answer.
    config.gateway_timeout_ms = 60_000;
    let gateway = hotdeal::transport::gateway::Gateway::build_with_clock(&config, clock.clone())
        .await
        .expect("build gateway");
    let base = format!("http://{}", gateway.local_addr());
    let (tx, rx) = oneshot::channel();
    tokio::spawn(gateway.serve(async {
        let _ = rx.await;
    }));
    Some((base, tx))
}

impl TestApp {
    /// Stops the server gracefully and waits until the store is closed.
    pub async fn stop(mut self) -> (PathBuf, Arc<ManualClock>) {
        if let Some(tx) = self.gateway.take() {
            let _ = tx.send(());
        }
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            h.await.expect("join").expect("serve");
        }
        (self.dir.clone(), self.clock.clone())
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Res {
        self.try_raw(method, path, headers, body)
            .await
            .unwrap_or_else(|e| panic!("send: {e}"))
    }

    /// As [`TestApp::raw`], with a connection that failed before the whole
    /// answer came (reset, closed) as an error: the request may or may not
    /// have been taken, which a test of a rush may need to tell apart.
    pub async fn try_raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<Res, String> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        for (k, v) in headers {
            req = req.header(*k, HeaderValue::from_str(v).expect("header"));
        }
        let req = req.body(Full::new(body.into())).expect("request");
        let res = self
            .client
            .request(req)
            .await
            .map_err(|e| format!("{e:?}"))?;
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{e:?}"))?
            .to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!(
                    "non-JSON body ({status}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Ok(Res {
            status,
            body,
            headers,
        })
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Res {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![];
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        let bytes = match body {
            Some(b) => {
                headers.push(("content-type", "application/json"));
                Bytes::from(serde_json::to_vec(&b).expect("json"))
            }
            None => Bytes::new(),
        };
        self.raw(method, path, &headers, bytes).await
    }

    /// A GET of any content at `base` (the public or the admin listener):
    /// (status, content type, body as text).
    pub async fn get_text(&self, base: &str, path: &str) -> (StatusCode, String, String) {
        let req = Request::builder()
            .method(Method::GET)
            .uri(format!("{base}{path}"))
            .body(Full::new(Bytes::new()))
            .expect("request");
        let res = self.client.request(req).await.expect("send");
        let status = res.status();
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = res.into_body().collect().await.expect("body").to_bytes();
        (
            status,
            content_type,
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Res {
        self.send(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Res {
        self.send(Method::POST, path, token, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Res {
        self.send(Method::PATCH, path, token, Some(body)).await
    }

    /// Signs up and logs in a user; returns (user id, access token).
    pub async fn user(&self, email: &str) -> (String, String) {
        let r = self
            .post(
                "/auth/register",
                None,
                json!({"email": email, "password": "password123", "name": "Test User"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let id = r.body["id"].as_str().expect("id").to_owned();
        let r = self
            .post(
                "/auth/login",
                None,
                json!({"email": email, "password": "password123"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        (
            id,
            r.body["access_token"].as_str().expect("token").to_owned(),
        )
    }

    /// A seller with one product; returns (seller token, product id).
    pub async fn product(&self, token: &str, price: i64, stock: i64) -> String {
        let r = self
            .post(
                "/products",
                Some(token),
                json!({"name": "Widget", "price": price, "stock": stock, "category": "test"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["id"].as_str().expect("id").to_owned()
    }

    /// A deal on `product` running from now for an hour.
    pub async fn deal(
        &self,
        token: &str,
        product: &str,
        price: i64,
        stock: i64,
        limit: Option<i64>,
    ) -> String {
        let now = self.clock_now();
        let r = self
            .post(
                "/products/deals",
                Some(token),
                json!({
                    "product_id": product, "deal_price": price, "deal_stock": stock,
                    "per_user_limit": limit,
                    "starts_at": now, "ends_at": now + Duration::hours(1),
                }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["id"].as_str().expect("id").to_owned()
    }

    pub async fn order(&self, token: &str, lines: Value) -> Res {
        self.post("/orders", Some(token), json!({"items": lines}))
            .await
    }

    pub async fn stock(&self, product: &str) -> i64 {
        let r = self.get(&format!("/products/{product}/stock"), None).await;
        assert_eq!(r.status, StatusCode::OK);
        r.body["stock"].as_i64().expect("stock")
    }

    pub async fn remaining(&self, deal: &str) -> i64 {
        let r = self.get(&format!("/products/deals/{deal}"), None).await;
        assert_eq!(r.status, StatusCode::OK);
        r.body["remaining_stock"].as_i64().expect("remaining")
    }

    /// A probe of this server's store, for tests that reach under the API.
    pub async fn probe(&self) -> Probe {
        Probe::connect(&self.config).await
    }

    /// The auth service (the all-in-one process runs every role).
    pub fn accounts(&self) -> &Accounts {
        self.storefront.accounts.as_deref().expect("the auth role")
    }

    /// The catalogue service.
    pub fn catalogue(&self) -> &Catalogue {
        self.storefront
            .catalogue
            .as_deref()
            .expect("the product role")
    }

    /// The order service.
    pub fn ordering(&self) -> &Ordering {
        self.storefront.ordering.as_deref().expect("the order role")
    }

    /// The coupon service.
    pub fn coupons(&self) -> &Coupons {
        self.storefront.coupons.as_deref().expect("the coupon role")
    }

    /// Settles the overdue reservations of both tiers, as the
    /// housekeeping of the all-in-one process does; answers how many.
    pub async fn reconcile(&self) -> hotdeal::services::Result<usize> {
        Ok(self.catalogue().reconcile().await? + self.coupons().reconcile().await?)
    }

    pub fn clock_now(&self) -> DateTime<Utc> {
        hotdeal::ports::Clock::now(&*self.clock)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if self.stop.is_some() {
            std::fs::remove_dir_all(&self.dir).ok();
            drop_backend(&self.config);
        }
    }
}

/// A client of a server this test did not spawn in-process (the real
/// binary): `None` instead of a panic when the server is gone.
pub struct Client {
    base: String,
    http: HyperClient<HttpConnector, Full<Bytes>>,
}

impl Client {
    pub fn new(base: &str) -> Self {
        let http = http_client();
        Self {
            base: base.to_owned(),
            http,
        }
    }

    /// `None` when the server is gone.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Option<Res> {
        let bytes = body.map(|b| serde_json::to_vec(&b).expect("json"));
        self.send_bytes(method, path, token, bytes).await
    }

    /// As [`Client::send`], with a body of any bytes (sent as JSON).
    pub async fn send_bytes(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Option<Res> {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        self.request(method, path, &headers, body).await
    }

    /// A request without a body, with these headers (the OTLP test's
    /// `traceparent`).
    #[cfg(feature = "otlp")]
    pub async fn send_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Option<Res> {
        self.request(method, path, headers, None).await
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Option<Res> {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let bytes = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Bytes::from(b)
            }
            None => Bytes::new(),
        };
        let res = self
            .http
            .request(req.body(Full::new(bytes)).expect("req"))
            .await
            .ok()?;
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.ok()?.to_bytes();
        Some(Res {
            status,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            headers,
        })
    }

    pub async fn ok(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Value {
        let r = self
            .send(method, path, token, body)
            .await
            .expect("server up");
        assert!(
            r.status.is_success(),
            "{method} {path}: {} {}",
            r.status,
            r.body
        );
        r.body
    }
}

/// The PostgreSQL server the tests run on, if any. Under `CI=true` a
/// PostgreSQL-only test never skips: it uses the local server, and fails
/// if that is down.
pub fn postgres_url() -> Option<String> {
    match std::env::var("HOTDEAL_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => None,
    }
}

/// For PostgreSQL-only tests: the server's URL, or `None` after printing
/// why the test is skipped.
pub fn postgres_or_skip(test: &str) -> Option<String> {
    if let Some(url) = postgres_url() {
        return Some(url);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        return Some("postgres://postgres@127.0.0.1:5432/postgres".into());
    }
    eprintln!("notice: {test} skipped: it needs PostgreSQL (set HOTDEAL_TEST_DATABASE_URL)");
    None
}

/// For SQLite-only tests: true after printing why the test is skipped on
/// PostgreSQL.
pub fn skip_unless_sqlite(test: &str) -> bool {
    if postgres_url().is_some() {
        eprintln!("notice: {test} skipped: it tests the embedded SQLite store only");
        return true;
    }
    false
}

/// The schema of the store kept in `dir`: the same after a restart on the
/// same dir, different for every test.
pub fn schema_for(dir: &std::path::Path) -> String {
    // FNV-1a of the path: stable, no extra dependency.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in dir.as_os_str().as_encoded_bytes() {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("hd_{h:016x}")
}

/// The test configuration for a store kept in `dir`, on the backend the
/// environment names.
pub fn config_for(dir: &std::path::Path) -> Config {
    let mut config = Config::for_tests(dir);
    if let Some(url) = postgres_url() {
        config.database_url = hotdeal::config::Secret::new(url);
        config.database_schema = Some(schema_for(dir));
        config.database_pool = 4;
        // The scaled mode: the shared tier in Redis and events on NATS,
        // under the test's own key and subject prefix.
        if let (Some(redis), Some(nats)) = (
            env_url("HOTDEAL_TEST_REDIS_URL"),
            env_url("HOTDEAL_TEST_NATS_URL"),
        ) {
            config.redis_url = Some(hotdeal::config::Secret::new(redis));
            config.nats_url = Some(hotdeal::config::Secret::new(nats));
            config.redis_prefix = schema_for(dir);
            config.nats_prefix = schema_for(dir);
            // JetStream reserves a stream's bytes on its disk up front.
            config.nats_stream_max_bytes = 1 << 20;
        }
    }
    config
}

/// Whether the tests run in the scaled mode (Redis and NATS configured).
pub fn scaled_backend() -> bool {
    postgres_url().is_some()
        && env_url("HOTDEAL_TEST_REDIS_URL").is_some()
        && env_url("HOTDEAL_TEST_NATS_URL").is_some()
}

/// A service URL from the environment, if set and not empty.
pub fn env_url(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Drops the PostgreSQL schema of the store in `dir`, if the tests run
/// on PostgreSQL. Best effort: a schema left behind is dropped by the CI
/// script's next run.
pub fn drop_schema_of(dir: &std::path::Path) {
    drop_backend(&config_for(dir));
}

/// Drops what a test server of `config` kept outside its data dir: its
/// PostgreSQL schema, and in the scaled mode its NATS stream and Redis keys.
pub fn drop_backend(config: &Config) {
    let (Some(schema), url) = (
        config.database_schema.clone(),
        config.database_url.expose().to_owned(),
    ) else {
        return;
    };
    let nats = config.nats_url.as_ref().map(|u| u.expose().to_owned());
    let redis = config.redis_url.as_ref().map(|u| u.expose().to_owned());
    let (nats_prefix, redis_prefix) = (config.nats_prefix.clone(), config.redis_prefix.clone());
    // Its own thread and runtime: this runs from `Drop`, maybe inside the
    // test's runtime.
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            use sqlx::Connection;
            if let Ok(mut c) = sqlx::PgConnection::connect(&url).await {
                let _ = sqlx::query("SET lock_timeout = '3s'").execute(&mut c).await;
                let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .execute(&mut c)
                    .await;
                let _ = c.close().await;
            }
            if let Some(nats) = nats {
                if let Ok(client) = async_nats::connect(&nats).await {
                    let js = async_nats::jetstream::new(client);
                    let _ = js
                        .delete_stream(format!("{}_EVENTS", nats_prefix.to_ascii_uppercase()))
                        .await;
                }
            }
            if let Some(redis) = redis {
                drop_redis_keys(&redis, &redis_prefix).await;
            }
        });
    })
    .join();
}

/// A look under the API at the store of a test server, in either dialect:
/// count rows, break or stall writes the way a failing disk or a busy
/// database would.
pub enum Probe {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Probe {
    pub async fn connect(config: &Config) -> Self {
        use sqlx::Connection;
        match &config.database_schema {
            None => Probe::Sqlite(
                sqlx::SqliteConnection::connect(config.database_url.expose())
                    .await
                    .expect("probe connection"),
            ),
            Some(schema) => {
                use std::str::FromStr;
                let options =
                    sqlx::postgres::PgConnectOptions::from_str(config.database_url.expose())
                        .expect("postgres url")
                        .options([("search_path", schema.as_str())]);
                Probe::Postgres(
                    sqlx::PgConnection::connect_with(&options)
                        .await
                        .expect("probe connection"),
                )
            }
        }
    }

    async fn execute(&mut self, sql: &str) {
        match self {
            Probe::Sqlite(c) => sqlx::raw_sql(sql).execute(c).await.map(drop),
            Probe::Postgres(c) => sqlx::raw_sql(sql).execute(c).await.map(drop),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// One integer from a query both dialects read the same way (cast
    /// sums with `CAST(… AS BIGINT)`).
    pub async fn int(&mut self, sql: &str) -> i64 {
        match self {
            Probe::Sqlite(c) => sqlx::query_scalar(sql).fetch_one(c).await,
            Probe::Postgres(c) => sqlx::query_scalar(sql).fetch_one(c).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub async fn count(&mut self, table: &str) -> i64 {
        self.int(&format!("SELECT COUNT(*) FROM {table}")).await
    }

    /// From now on the store refuses to insert an order of exactly
    /// `total` won.
    pub async fn poison_orders_of(&mut self, total: i64) {
        let sql = match self {
            Probe::Sqlite(_) => format!(
                "CREATE TRIGGER poison BEFORE INSERT ON orders WHEN NEW.total_amount = {total} \
                 BEGIN SELECT RAISE(ABORT, 'poisoned'); END"
            ),
            Probe::Postgres(_) => format!(
                "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                   IF NEW.total_amount = {total} THEN RAISE EXCEPTION 'poisoned'; END IF; \
                   RETURN NEW; END $$; \
                 CREATE TRIGGER poison BEFORE INSERT ON orders \
                   FOR EACH ROW EXECUTE FUNCTION poison()"
            ),
        };
        self.execute(&sql).await;
    }

    /// Until [`Probe::heal`], every insert of an order fails.
    pub async fn break_order_inserts(&mut self) {
        let sql = match self {
            Probe::Sqlite(_) => {
                "CREATE TRIGGER broken BEFORE INSERT ON orders \
                 BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
            }
            Probe::Postgres(_) => {
                "CREATE FUNCTION broken() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                   RAISE EXCEPTION 'disk on fire'; END $$; \
                 CREATE TRIGGER broken BEFORE INSERT ON orders \
                   FOR EACH ROW EXECUTE FUNCTION broken()"
            }
        };
        self.execute(sql).await;
    }

    pub async fn heal(&mut self) {
        let sql = match self {
            Probe::Sqlite(_) => "DROP TRIGGER broken",
            Probe::Postgres(_) => "DROP TRIGGER broken ON orders",
        };
        self.execute(sql).await;
    }

    /// Until [`Probe::release`], every write waits (SQLite: another
    /// connection holds the write lock; PostgreSQL: the tables are locked
    /// against changes, reads still run).
    pub async fn stall_writes(&mut self) {
        let sql = match self {
            Probe::Sqlite(_) => "BEGIN IMMEDIATE",
            Probe::Postgres(_) => {
                "BEGIN; LOCK TABLE users, refresh_tokens, products, deals, orders, order_items, \
                 deal_purchases, point_accounts, point_history, coupons, user_coupons, \
                 idempotency_keys, outbox IN EXCLUSIVE MODE"
            }
        };
        self.execute(sql).await;
    }

    pub async fn release(&mut self) {
        self.execute("ROLLBACK").await;
    }
}

/// Headless Chromium, if installed. Without it the test is skipped with a
/// notice, except under `CI=true`, where a missing browser fails it.
pub fn chromium_or_skip(test: &str) -> Option<&'static str> {
    let found = ["chromium", "chromium-browser"].into_iter().find(|bin| {
        std::process::Command::new(bin)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "chromium (or chromium-browser) is not on PATH, and CI=true requires it"
        );
        eprintln!("SKIPPED {test}: no chromium on PATH");
    }
    found
}

/// Chromium loading `url` headless, with a fresh profile under `dir`, and
/// printing the page's DOM once `budget_ms` of virtual time has run. The
/// flags keep it off the network: this machine has none to offer.
pub fn chromium_dump_dom(
    bin: &str,
    dir: &std::path::Path,
    url: &str,
    budget_ms: u32,
) -> std::process::Command {
    let mut cmd = std::process::Command::new(bin);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
    ])
    .arg(format!("--virtual-time-budget={budget_ms}"))
    .arg(format!(
        "--user-data-dir={}",
        dir.join("chromium-profile").display()
    ))
    .args(["--dump-dom", url]);
    cmd
}

/// Deletes the Redis keys under `prefix` (a finished test's).
async fn drop_redis_keys(url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(url) else {
        return;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return;
    };
    let mut cursor: u64 = 0;
    loop {
        let page: redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await;
        let Ok((next, keys)) = page else { return };
        if !keys.is_empty() {
            let _: redis::RedisResult<()> =
                redis::cmd("DEL").arg(&keys).query_async(&mut conn).await;
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}
