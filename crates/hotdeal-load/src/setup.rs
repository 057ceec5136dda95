//! Setup and inspection through the public API: users, products, stock,
//! deals, coupons, points. Never measured; run with bounded concurrency
//! (`--setup-concurrency`) because sign-up hashes Argon2 on the server.
//!
//! A route the server does not have answers `404 NOT_FOUND` (or 405);
//! setup turns that into [`SetupError::RouteMissing`], which `run` reports
//! as "route POST /coupons not available on this server" and exit code 2.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Method;
use serde_json::{json, Value};

use crate::client::{Conn, Outcome, Reply, Target, Targets};
use crate::time::rfc3339_from_now;

/// Why setup could not proceed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("route {method} {path} not available on this server")]
    RouteMissing { method: Method, path: String },
    #[error("{what}: expected HTTP {expected}, got {status}: {body}")]
    Unexpected {
        what: String,
        expected: String,
        status: u16,
        body: String,
    },
    #[error("{what}: no response from the server ({outcome:?})")]
    NoResponse { what: String, outcome: Outcome },
    #[error("{what}: unexpected response body: {body}")]
    BadBody { what: String, body: String },
}

/// Setup requests get a generous timeout: the server may be busy hashing.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A keep-alive API connection for setup and books.
///
/// With several base URLs it talks to one of them and moves to the next
/// only when a connection is refused — the request never left, so sending
/// it elsewhere is safe even for a `POST`. That keeps setup and the books
/// working when an instance was killed during the run; any other failure
/// is reported, never retried.
pub struct Api {
    targets: Arc<Targets>,
    current: usize,
    /// Whether a refused connection moves on to the next target; off for
    /// reads that must come from one instance (comparing instances).
    failover: bool,
    conn: Conn,
}

fn short(body: &Bytes) -> String {
    let s = String::from_utf8_lossy(body);
    let mut out: String = s.chars().take(300).collect();
    if s.chars().count() > 300 {
        out.push('…');
    }
    out
}

impl Api {
    /// Starts at the first base URL.
    pub fn new(targets: &Arc<Targets>) -> Self {
        Self::starting_at(targets, 0)
    }

    /// Starts at target `i` (wrapping), failing over to the next ones.
    pub fn starting_at(targets: &Arc<Targets>, i: usize) -> Self {
        let target = targets.get(i);
        Self {
            current: target.index,
            conn: Conn::new(target),
            targets: targets.clone(),
            failover: true,
        }
    }

    /// Talks to target `i` only: a refused connection is an error.
    pub fn only(targets: &Arc<Targets>, i: usize) -> Self {
        Self {
            failover: false,
            ..Self::starting_at(targets, i)
        }
    }

    /// The target this connection talks to now.
    pub fn target(&self) -> &Arc<Target> {
        self.targets.get(self.current)
    }

    /// One request; any HTTP status is a reply, only transport failures
    /// are errors.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Reply, SetupError> {
        let what = || format!("{method} {path}");
        let bytes = match body {
            Some(v) => Bytes::from(v.to_string()),
            None => Bytes::new(),
        };
        let tries = if self.failover { self.targets.len() } else { 1 };
        let mut reply = None;
        for _ in 0..tries {
            let head = self
                .target()
                .head(method.clone(), path, token, body.is_some())
                .map_err(|e| SetupError::BadBody {
                    what: what(),
                    body: e.to_string(),
                })?;
            let r = self
                .conn
                .send(&head, bytes.clone(), SETUP_TIMEOUT, None)
                .await;
            if r.outcome != Outcome::ConnectFailed || !self.failover {
                reply = Some(r);
                break;
            }
            self.current = (self.current + 1) % self.targets.len();
            self.conn = Conn::new(self.targets.get(self.current));
            reply = Some(r);
        }
        let Some(reply) = reply else {
            return Err(SetupError::NoResponse {
                what: what(),
                outcome: Outcome::ConnectFailed,
            });
        };
        if reply.outcome != Outcome::Response {
            return Err(SetupError::NoResponse {
                what: what(),
                outcome: reply.outcome,
            });
        }
        Ok(reply)
    }

    /// A call that must answer one of `ok`; `route` is the path template
    /// for the "not available" message (e.g. `/products/{id}/stock`).
    pub async fn expect(
        &mut self,
        method: Method,
        path: &str,
        route: &str,
        token: Option<&str>,
        body: Option<&Value>,
        ok: &[u16],
    ) -> Result<Reply, SetupError> {
        let reply = self.call(method.clone(), path, token, body).await?;
        if ok.contains(&reply.status) {
            return Ok(reply);
        }
        if route_missing(&reply, route) {
            return Err(SetupError::RouteMissing {
                method,
                path: route.to_string(),
            });
        }
        Err(SetupError::Unexpected {
            what: format!("{method} {path}"),
            expected: ok.iter().map(u16::to_string).collect::<Vec<_>>().join("/"),
            status: reply.status,
            body: short(&reply.body),
        })
    }
}

/// Whether a reply says the route itself does not exist: 405 always; 404
/// `NOT_FOUND` only for a route without ids (with ids it may be the entity
/// that is missing).
fn route_missing(reply: &Reply, route: &str) -> bool {
    reply.status == 405
        || (reply.status == 404
            && !route.contains('{')
            && matches!(reply.error_code(), Some("NOT_FOUND") | None))
}

/// Checks up front, before any expensive setup, that the server has the
/// routes a scenario needs. Probes are sent without a token and with an
/// empty JSON body: an existing route answers 401/400/422, a missing one 404.
pub async fn require_routes(
    targets: &Arc<Targets>,
    routes: &[(Method, &str)],
) -> Result<(), SetupError> {
    let mut api = Api::new(targets);
    for (method, path) in routes {
        let reply = api
            .call(method.clone(), path, None, Some(&json!({})))
            .await?;
        if route_missing(&reply, path) {
            return Err(SetupError::RouteMissing {
                method: method.clone(),
                path: path.to_string(),
            });
        }
    }
    Ok(())
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs `f(api, i)` for `i in 0..n` on `concurrency` connections and
/// returns the results in order. The first error stops the rest. Worker
/// *w* starts at base URL *w mod n*, so setup and the books' reads are
/// spread over every instance (each worker's own requests stay on one).
pub async fn par_map<T, F>(
    targets: &Arc<Targets>,
    n: usize,
    concurrency: usize,
    f: F,
) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    F: for<'a> Fn(&'a mut Api, usize) -> BoxFuture<'a, anyhow::Result<T>> + Send + Sync + 'static,
{
    let f = Arc::new(f);
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let results: Arc<Mutex<Vec<Option<T>>>> = Arc::new(Mutex::new((0..n).map(|_| None).collect()));
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..concurrency.clamp(1, n.max(1)) {
        let (f, next, failed, results, targets) = (
            f.clone(),
            next.clone(),
            failed.clone(),
            results.clone(),
            targets.clone(),
        );
        workers.spawn(async move {
            let mut api = Api::starting_at(&targets, worker);
            loop {
                if failed.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok(());
                }
                match f(&mut api, i).await {
                    Ok(v) => {
                        results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(v);
                    }
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                }
            }
        });
    }
    let mut first_error = None;
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(anyhow::anyhow!("setup worker failed: {e}"));
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let mut guard = results.lock().unwrap_or_else(|e| e.into_inner());
    guard
        .drain(..)
        .enumerate()
        .map(|(i, v)| v.ok_or_else(|| anyhow::anyhow!("setup item {i} produced nothing")))
        .collect()
}

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct User {
    pub token: String,
}

pub const PASSWORD: &str = "LoadTest-pass-2024";

/// Tokens in a register answer, when the server includes them (a later
/// release adds `access_token` to `POST /auth/register`).
fn token_in(v: &Value) -> Option<String> {
    v.get("access_token")
        .or_else(|| v.get("tokens").and_then(|t| t.get("access_token")))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Registers `email` and signs in (skipping the login when the register
/// answer already carries a token). An existing email just signs in.
pub async fn sign_up(api: &mut Api, email: &str, name: &str) -> Result<User, SetupError> {
    let body = json!({"email": email, "password": PASSWORD, "name": name});
    let reply = api
        .expect(
            Method::POST,
            "/auth/register",
            "/auth/register",
            None,
            Some(&body),
            &[200, 201, 409],
        )
        .await?;
    if reply.status != 409 {
        if let Some(token) = reply.json::<Value>().as_ref().and_then(token_in) {
            return Ok(User { token });
        }
    }
    login(api, email).await
}

pub async fn login(api: &mut Api, email: &str) -> Result<User, SetupError> {
    let body = json!({"email": email, "password": PASSWORD});
    let reply = api
        .expect(
            Method::POST,
            "/auth/login",
            "/auth/login",
            None,
            Some(&body),
            &[200],
        )
        .await?;
    let token = reply
        .json::<Value>()
        .as_ref()
        .and_then(token_in)
        .ok_or_else(|| SetupError::BadBody {
            what: "POST /auth/login".into(),
            body: short(&reply.body),
        })?;
    Ok(User { token })
}

/// Signs up `n` users `{prefix}-{tag}-{i}@load.example.com`, printing
/// progress unless `quiet`.
pub async fn sign_up_many(
    targets: &Arc<Targets>,
    n: usize,
    prefix: &str,
    tag: &str,
    concurrency: usize,
    quiet: bool,
) -> anyhow::Result<Vec<User>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let started = Instant::now();
    let done = Arc::new(AtomicUsize::new(0));
    let (prefix, tag) = (prefix.to_string(), tag.to_string());
    let d2 = done.clone();
    let step = (n / 10).max(50);
    let users = par_map(targets, n, concurrency, move |api: &mut Api, i| {
        let email = format!("{prefix}-{tag}-{i}@load.example.com");
        let name = format!("load user {i}");
        let done = d2.clone();
        Box::pin(async move {
            let u = sign_up(api, &email, &name).await?;
            let k = done.fetch_add(1, Ordering::Relaxed) + 1;
            if !quiet && k.checked_rem(step) == Some(0) && k < n {
                eprintln!("setup: {k}/{n} users signed up");
            }
            Ok(u)
        })
    })
    .await?;
    if !quiet {
        eprintln!(
            "setup: {n} users signed up in {:.1}s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(users)
}

fn id_of(reply: &Reply, what: &str) -> Result<String, SetupError> {
    reply
        .json::<Value>()
        .as_ref()
        .and_then(|v| v.get("id"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| SetupError::BadBody {
            what: what.to_string(),
            body: short(&reply.body),
        })
}

fn int_field(reply: &Reply, field: &str, what: &str) -> Result<i64, SetupError> {
    reply
        .json::<Value>()
        .as_ref()
        .and_then(|v| v.get(field))
        .and_then(Value::as_i64)
        .ok_or_else(|| SetupError::BadBody {
            what: what.to_string(),
            body: short(&reply.body),
        })
}

/// A product listed for the run, with the stock the server confirmed.
#[derive(Debug, Clone)]
pub struct Product {
    pub id: String,
    pub price: u64,
    pub initial_stock: i64,
}

/// Lists a product (stock 0), then adds its stock with `PATCH …/stock`, so
/// the initial stock in the books is the one the server answered.
pub async fn create_product(
    api: &mut Api,
    seller: &User,
    name: &str,
    price: u64,
    stock: u64,
) -> Result<Product, SetupError> {
    let body = json!({
        "name": name,
        "description": "listed by the hotdeal load test",
        "price": price,
        "stock": 0,
        "category": "load-test",
    });
    let reply = api
        .expect(
            Method::POST,
            "/products",
            "/products",
            Some(&seller.token),
            Some(&body),
            &[201, 200],
        )
        .await?;
    let id = id_of(&reply, "POST /products")?;
    let mut initial = 0;
    if stock > 0 {
        let path = format!("/products/{id}/stock");
        let reply = api
            .expect(
                Method::PATCH,
                &path,
                "/products/{id}/stock",
                Some(&seller.token),
                Some(&json!({"delta": stock})),
                &[200],
            )
            .await?;
        initial = int_field(&reply, "stock", "PATCH /products/{id}/stock")?;
    }
    Ok(Product {
        id,
        price,
        initial_stock: initial,
    })
}

pub async fn product_stock(api: &mut Api, product_id: &str) -> Result<i64, SetupError> {
    let path = format!("/products/{product_id}/stock");
    let reply = api
        .expect(
            Method::GET,
            &path,
            "/products/{id}/stock",
            None,
            None,
            &[200],
        )
        .await?;
    int_field(&reply, "stock", &path)
}

/// A running deal.
#[derive(Debug, Clone)]
pub struct Deal {
    pub id: String,
    pub deal_stock: i64,
}

/// Opens a deal running from a minute ago for three hours. A server that
/// refuses a start in the past (422) gets one two seconds ahead, and we
/// wait for it to start.
pub async fn create_deal(
    api: &mut Api,
    seller: &User,
    product: &Product,
    deal_price: u64,
    deal_stock: u64,
    per_user_limit: Option<u32>,
) -> Result<Deal, SetupError> {
    let mut body = json!({
        "product_id": product.id,
        "deal_price": deal_price,
        "deal_stock": deal_stock,
        "starts_at": rfc3339_from_now(-60),
        "ends_at": rfc3339_from_now(3 * 3600),
    });
    if let Some(l) = per_user_limit {
        body["per_user_limit"] = json!(l);
    }
    let mut reply = api
        .expect(
            Method::POST,
            "/products/deals",
            "/products/deals",
            Some(&seller.token),
            Some(&body),
            &[200, 201, 422],
        )
        .await?;
    if reply.status == 422 {
        body["starts_at"] = json!(rfc3339_from_now(2));
        reply = api
            .expect(
                Method::POST,
                "/products/deals",
                "/products/deals",
                Some(&seller.token),
                Some(&body),
                &[200, 201],
            )
            .await?;
        tokio::time::sleep(Duration::from_millis(3000)).await;
    }
    let id = id_of(&reply, "POST /products/deals")?;
    Ok(Deal {
        id,
        deal_stock: deal_stock as i64,
    })
}

/// `(deal_stock, remaining_stock)` of a deal.
pub async fn deal_state(api: &mut Api, deal_id: &str) -> Result<(i64, i64), SetupError> {
    let path = format!("/products/deals/{deal_id}");
    let reply = api
        .expect(
            Method::GET,
            &path,
            "/products/deals/{id}",
            None,
            None,
            &[200],
        )
        .await?;
    Ok((
        int_field(&reply, "deal_stock", &path)?,
        int_field(&reply, "remaining_stock", &path)?,
    ))
}

/// Creates a fixed-discount coupon of `quantity`, valid from a minute ago.
pub async fn create_coupon(
    api: &mut Api,
    owner: &User,
    quantity: u64,
) -> Result<String, SetupError> {
    let body = json!({
        "name": "load-test first come coupon",
        "discount_type": "fixed",
        "discount_value": 1000,
        "min_order_amount": 0,
        "total_quantity": quantity,
        "starts_at": rfc3339_from_now(-60),
        "ends_at": rfc3339_from_now(3 * 3600),
    });
    let reply = api
        .expect(
            Method::POST,
            "/coupons",
            "/coupons",
            Some(&owner.token),
            Some(&body),
            &[200, 201],
        )
        .await?;
    id_of(&reply, "POST /coupons")
}

/// `(total_quantity, issued_count, remaining)` of a coupon.
pub async fn coupon_state(
    api: &mut Api,
    coupon_id: &str,
) -> Result<(i64, i64, Option<i64>), SetupError> {
    let path = format!("/coupons/{coupon_id}");
    let reply = api
        .expect(Method::GET, &path, "/coupons/{id}", None, None, &[200])
        .await?;
    let remaining = reply
        .json::<Value>()
        .as_ref()
        .and_then(|v| v.get("remaining"))
        .and_then(Value::as_i64);
    Ok((
        int_field(&reply, "total_quantity", &path)?,
        int_field(&reply, "issued_count", &path)?,
        remaining,
    ))
}

/// Adds points to a user's balance.
pub async fn charge_points(api: &mut Api, user: &User, amount: u64) -> Result<(), SetupError> {
    api.expect(
        Method::POST,
        "/points/charges",
        "/points/charges",
        Some(&user.token),
        Some(&json!({"amount": amount})),
        &[200, 201],
    )
    .await
    .map(|_| ())
}

pub async fn points_balance(api: &mut Api, token: &str) -> Result<i64, SetupError> {
    let reply = api
        .expect(Method::GET, "/points", "/points", Some(token), None, &[200])
        .await?;
    int_field(&reply, "balance", "GET /points")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_answers_with_or_without_tokens() {
        assert_eq!(token_in(&json!({"id": "x", "email": "e"})), None);
        assert_eq!(
            token_in(&json!({"id": "x", "access_token": "t"})),
            Some("t".into())
        );
        assert_eq!(
            token_in(&json!({"user": {}, "tokens": {"access_token": "u"}})),
            Some("u".into())
        );
    }
}
