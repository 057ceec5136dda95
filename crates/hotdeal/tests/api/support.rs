//! `spawn_app()` and a small HTTP client for the tests.

use bytes::Bytes;
use chrono::{DateTime, Duration, SubsecRound, Utc};
use hotdeal::ports::ManualClock;
use hotdeal::services::Storefront;
use hotdeal::{App, Config};
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderValue;
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct TestApp {
    pub base: String,
    /// The admin listener (`/metrics`, `/ops`), e.g. `http://127.0.0.1:PORT`.
    pub admin: String,
    pub client: Client<HttpConnector, Full<Bytes>>,
    pub storefront: Arc<Storefront>,
    pub clock: Arc<ManualClock>,
    pub dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
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

pub async fn spawn_app_in(dir: PathBuf, clock: Arc<ManualClock>) -> TestApp {
    spawn_app_with(dir, clock, |_| {}).await
}

/// A server whose test configuration `tune` may change first.
pub async fn spawn_app_with(
    dir: PathBuf,
    clock: Arc<ManualClock>,
    tune: impl FnOnce(&mut Config),
) -> TestApp {
    let mut config = Config::for_tests(&dir);
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
    let (tx, rx) = oneshot::channel();
    let server = tokio::spawn(app.serve(async {
        let _ = rx.await;
    }));
    let client = Client::builder(TokioExecutor::new()).build_http();
    TestApp {
        base,
        admin,
        client,
        storefront,
        clock,
        dir,
        stop: Some(tx),
        server: Some(server),
    }
}

impl TestApp {
    /// Stops the server gracefully and waits until the store is closed.
    pub async fn stop(mut self) -> (PathBuf, Arc<ManualClock>) {
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
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        for (k, v) in headers {
            req = req.header(*k, HeaderValue::from_str(v).expect("header"));
        }
        let req = req.body(Full::new(body.into())).expect("request");
        let res = self.client.request(req).await.expect("send");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
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
        Res {
            status,
            body,
            headers,
        }
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

    /// The SQLite file of this server, for tests that reach under the API.
    pub fn db_url(&self) -> String {
        format!("sqlite://{}", self.dir.join("hotdeal.db").display())
    }

    pub fn clock_now(&self) -> DateTime<Utc> {
        hotdeal::ports::Clock::now(&*self.clock)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if self.stop.is_some() {
            std::fs::remove_dir_all(&self.dir).ok();
        }
    }
}
