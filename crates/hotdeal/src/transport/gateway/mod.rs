//! The gateway role: the public API's front door in the split deployment.
//! It holds no store; it routes each request to the role that serves it
//! ([`routes`]), over HTTP/2 to a healthy address of that role
//! ([`upstream`]).
//!
//! On the way it:
//! - answers `GET /health` itself, and unknown paths with the contract's
//!   404 (wrong methods with its 405), without bothering a service;
//! - checks the Bearer token of protected routes with the shared JWT
//!   secret, answering the contract's 401 itself. The token is forwarded
//!   as it came and each service verifies it again (one HMAC): no service
//!   trusts an identity header a client could forge, even when reached
//!   without the gateway;
//! - passes an incoming sane `x-request-id` on, or makes one, and returns
//!   it with the answer;
//! - limits rates per user and per client IP ([`rate_limit`]): 429
//!   `RATE_LIMITED` with `Retry-After` (the client IP is the peer's, or
//!   what a trusted proxy says in `X-Forwarded-For`, see [`client_ip`]);
//! - carries the W3C trace on as a hop of its own (`traceparent`);
//! - bounds every upstream call by `gateway_timeout_ms` (then 503
//!   `OVERLOADED`, fast), and retries — on another address — only a call
//!   that is idempotent (GET, HEAD, or carrying an `Idempotency-Key`) and
//!   that was never delivered (the connection could not be opened).
//!
//! The listener is the services' own (`http::server`): the same connection
//! cap, header, body and idle timeouts, HTTP/1.1 and h2c, graceful drain;
//! past `max_in_flight` requests it answers 503 at once (health routes
//! exempt). Counters are on `/metrics` of the admin listener ([`metrics`]).

pub mod cache;
pub mod metrics;
pub mod rate_limit;
pub mod routes;
pub mod upstream;

use crate::adapters::redis::RedisRateLimit;
use crate::config::{Cidr, Config, Role};
use crate::observability::trace_context::TraceParent;
use crate::ports::{Clock, SystemClock};
use crate::services::tokens::TokenKeys;
use crate::services::Error as ServiceError;
use crate::transport::http::dto::HealthOut;
use crate::transport::http::error::ApiError;
use crate::transport::http::{self, HttpLimits};
use anyhow::{bail, Context};
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::Router;
use cache::{Lookup, MicroCache};
use http_body_util::{BodyExt, Full, Limited};
use rate_limit::{Gcra, Memory, RateLimiter, Scope, Store};
use routes::{Access, Found};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::Instrument;
use upstream::{H2Client, Pools};

/// The request id header, read and answered.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The largest answer taken from a service (the OpenAPI document is the
/// largest, far below it); past it the call fails like a broken one.
const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;

/// A bound, ready-to-serve gateway.
pub struct Gateway {
    listener: TcpListener,
    /// `/metrics`, when enabled (`admin_listen`).
    admin: Option<TcpListener>,
    limits: HttpLimits,
    edge: Arc<Edge>,
}

/// What every request needs.
pub struct Edge {
    pools: Pools,
    client: H2Client,
    keys: TokenKeys,
    /// Token expiry is checked on this clock (tests move it by hand).
    clock: Arc<dyn Clock>,
    limiter: RateLimiter,
    /// The most one upstream call may take, answer included.
    timeout: Duration,
    /// Requests being handled (`max_in_flight`); past it, 503 at once
    /// rather than a queue of calls waiting on slow services.
    in_flight: Semaphore,
    /// Peers whose `X-Forwarded-For` names the client (see [`client_ip`]).
    trusted_proxies: Vec<Cidr>,
    /// The catalogue reads answered from memory for a few milliseconds.
    cache: MicroCache,
    pub counters: Counters,
}

/// What went wrong with upstreams, for operators and tests.
#[derive(Default)]
pub struct Counters {
    /// Calls forwarded (each try counts).
    pub forwarded: AtomicU64,
    /// Tries whose connection could not be opened.
    pub connect_failures: AtomicU64,
    /// Calls that took longer than the timeout.
    pub timeouts: AtomicU64,
    /// Calls whose connection broke after the request was sent.
    pub broken: AtomicU64,
    /// Requests answered 503 because every address was cooling down.
    pub all_down: AtomicU64,
}

impl Gateway {
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// As [`Gateway::build`], with the clock tokens are checked on.
    pub async fn build_with_clock(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        // A secret generated here would differ from the services': every
        // token would be refused. The gateway takes only a given one.
        if config.jwt_secret.is_none() && config.jwt_secret_file.is_none() {
            bail!(
                "the gateway needs the services' JWT secret to check tokens at the edge \
                 (--jwt-secret-file or HOTDEAL_JWT_SECRET)"
            );
        }
        let secret = crate::app::jwt_secret(config)?;
        let pools = Pools::new(
            &config.upstreams,
            Duration::from_millis(config.gateway_cooldown_ms),
        )
        .map_err(|missing| {
            anyhow::anyhow!(
                "the gateway has no upstream for {}: set --upstream ROLE=http://HOST:PORT \
                 (or all=… for all-in-one processes), HOTDEAL_UPSTREAM_<ROLE> or [upstream] \
                 in hotdeal.toml",
                missing.join(", ")
            )
        })?;
        let store = match &config.redis_url {
            None => Store::Memory(Memory::default()),
            Some(url) => {
                if !url.expose().starts_with("redis://") {
                    bail!("the Redis URL must start with redis:// (not shown: it may hold a password)");
                }
                let redis = RedisRateLimit::open(url, &config.redis_prefix)
                    .await
                    .context("connecting to Redis for the rate limits")?;
                tracing::info!(prefix = %config.redis_prefix, "rate limits: Redis (shared by the gateways)");
                Store::Redis(redis)
            }
        };
        let limiter = RateLimiter::new(
            Gcra::new(config.rate_limit_user_per_sec, config.rate_limit_user_burst),
            Gcra::new(config.rate_limit_ip_per_sec, config.rate_limit_ip_burst),
            store,
        );
        // Host names to addresses before the first request (and again
        // while serving).
        pools.refresh().await;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let admin = match config.admin_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding the admin listener {addr}"))?,
            ),
            None => None,
        };
        let edge = Edge {
            pools,
            client: upstream::h2_client(Duration::from_millis(config.gateway_connect_timeout_ms)),
            keys: TokenKeys::new(&secret),
            clock,
            limiter,
            timeout: Duration::from_millis(config.gateway_timeout_ms),
            in_flight: Semaphore::new(config.max_in_flight.max(1)),
            trusted_proxies: config.trusted_proxies.clone(),
            cache: MicroCache::new(Duration::from_millis(config.gateway_cache_ms)),
            counters: Counters::default(),
        };
        Ok(Self {
            listener,
            admin,
            edge: Arc::new(edge),
            limits: HttpLimits {
                max_in_flight: config.max_in_flight,
                read_cache_max_age: Duration::ZERO,
                max_connections: config.max_connections,
                header_timeout: Duration::from_millis(config.header_timeout_ms),
                body_timeout: Duration::from_millis(config.body_timeout_ms),
                idle_timeout: Duration::from_millis(config.idle_timeout_ms),
            },
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The admin listener's address (`/metrics`), if enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The shared state, for its counters.
    pub fn edge(&self) -> Arc<Edge> {
        self.edge.clone()
    }

    /// Serves until `shutdown` resolves, then drains.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let router = Router::new()
            .fallback(edge)
            // The body is read whole first (408/413 as in the services):
            // a call that may be retried must be sent again byte for byte.
            .layer(from_fn_with_state(
                self.limits.body_timeout,
                http::buffer_body,
            ))
            .with_state(self.edge.clone());
        let (admin_stop, admin_stopping) = tokio::sync::oneshot::channel::<()>();
        let admin = self.admin.map(|listener| {
            let stopping = async {
                let _ = admin_stopping.await;
            };
            let router = metrics::router(self.edge.clone());
            tokio::spawn(http::server::serve(listener, router, self.limits, stopping))
        });
        let resolver = tokio::spawn(resolve_names(Arc::downgrade(&self.edge)));
        let served = http::server::serve(self.listener, router, self.limits, shutdown).await;
        resolver.abort();
        let _ = admin_stop.send(());
        if let Some(task) = admin {
            if let Ok(Err(e)) = task.await {
                tracing::warn!(error = %e, "the admin listener failed");
            }
        }
        served.context("serving HTTP")
    }
}

/// Resolves the upstreams' host names every [`upstream::RESOLVE_EVERY`]
/// while the gateway lives.
async fn resolve_names(edge: std::sync::Weak<Edge>) {
    let mut tick = tokio::time::interval(upstream::RESOLVE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(edge) = edge.upgrade() else { return };
        edge.pools.refresh().await;
    }
}

impl Edge {
    /// Requests refused with 429, and limiter checks Redis could not answer.
    pub fn rate_limit_counts(&self) -> (u64, u64) {
        (
            self.limiter.refused.load(Ordering::Relaxed),
            self.limiter.store_errors.load(Ordering::Relaxed),
        )
    }
}

/// Every request: its id, its trace hop, its span, and the answer. The
/// W3C trace is continued as in the services: the gateway is one hop, the
/// service it calls is a child of it, and the answer names the gateway's.
async fn edge(State(edge): State<Arc<Edge>>, mut req: Request) -> Response {
    let id = request_id(req.headers());
    let hop = req
        .headers()
        .get(TRACEPARENT)
        .and_then(|v| TraceParent::parse(v.as_bytes()))
        .map_or_else(TraceParent::start, |parent| parent.child());
    req.headers_mut().insert(TRACEPARENT, hop.header_value());
    let span = tracing::debug_span!(
        "gateway",
        method = %req.method(),
        request_id = ?id,
        trace_id = tracing::field::Empty,
    );
    if !span.is_disabled() {
        span.record("trace_id", hop.trace_id_hex());
    }
    let mut res = handle(&edge, req, &id).instrument(span).await;
    res.headers_mut().insert(REQUEST_ID, id);
    res.headers_mut().insert(TRACEPARENT, hop.header_value());
    res
}

async fn handle(edge: &Edge, req: Request, id: &HeaderValue) -> Response {
    let path = req.uri().path();
    if path == "/health" {
        if matches!(*req.method(), Method::GET | Method::HEAD) {
            return axum::Json(HealthOut {
                status: "healthy",
                service: "gateway",
            })
            .into_response();
        }
        return wrong_method();
    }
    let (route, access) = match routes::find(req.method(), path) {
        Found::Route(route, access) => (route, access),
        Found::WrongMethod => return wrong_method(),
        Found::NotFound => return ApiError::not_found().into_response(),
    };
    // Health checks take no slot, as in the services: they answer however
    // busy the gateway is.
    let _slot = if route.template.ends_with("/health") {
        None
    } else {
        match edge.in_flight.try_acquire() {
            Ok(slot) => Some(slot),
            Err(_) => return ApiError::from(ServiceError::Overloaded).into_response(),
        }
    };
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(peer) = peer.filter(|_| edge.limiter.limits(Scope::Ip)) {
        let client = client_ip(peer, req.headers(), &edge.trusted_proxies);
        if let Some(wait) = edge.limiter.check(Scope::Ip, &client.to_string()).await {
            return rate_limited(wait);
        }
    }
    if access == Access::Bearer {
        let user = match bearer(req.headers()) {
            None => return ApiError::from(ServiceError::Unauthorized).into_response(),
            Some(token) => match edge.keys.verify(token, edge.clock.now()) {
                None => return ApiError::from(ServiceError::InvalidToken).into_response(),
                Some(user) => user,
            },
        };
        if let Some(wait) = edge.limiter.check(Scope::User, &user.to_string()).await {
            return rate_limited(wait);
        }
    }
    let method = req.method().clone();
    let path_and_query = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let (key, generation) = match edge.cache.lookup(&method, route.template, path_and_query) {
        Lookup::Hit(res) => return res,
        Lookup::Miss { key, generation } => (Some(key), generation),
        Lookup::Pass => (None, 0),
    };
    let res = forward(edge, route.role, req, id, peer).await;
    if let Some(key) = key {
        // The answer is in memory already (`exchange` read it whole).
        let (parts, body) = res.into_parts();
        let bytes = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let res = Response::from_parts(parts, Body::from(bytes.clone()));
        edge.cache.keep(key, generation, res.status(), &res, &bytes);
        return res;
    }
    if MicroCache::invalidated_by(&method, route.template, res.status()) {
        edge.cache.invalidate();
    }
    res
}

/// The client a request comes from: the TCP peer, unless the peer is a
/// trusted proxy; then the right-most `X-Forwarded-For` address that is not
/// a trusted proxy (addresses left of it were written by the client itself
/// and prove nothing).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let mut forwarded: Vec<&str> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(text) = value.to_str() else {
            return peer;
        };
        forwarded.extend(text.split(',').map(str::trim));
    }
    let mut client = peer;
    for hop in forwarded.iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>() else {
            // Garbage (or `host:port`): stop at the last address known good.
            return client;
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

/// The token of `Authorization: Bearer <token>`, read as the services read it.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The incoming id if it is sane (1–128 characters of `[A-Za-z0-9._:-]`,
/// so it is safe in logs and headers), else a new one.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(REQUEST_ID)
        .filter(|v| {
            let b = v.as_bytes();
            (1..=128).contains(&b.len())
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || b"._:-".contains(c))
        })
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
                .unwrap_or(HeaderValue::from_static("unknown"))
        })
}

fn wrong_method() -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "this path does not take that method",
    )
    .into_response()
}

/// 429 with `Retry-After` (whole seconds, rounded up, from the details).
fn rate_limited(wait: Duration) -> Response {
    let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "RATE_LIMITED",
        "too many requests; retry after Retry-After seconds",
    )
    .with_details(serde_json::json!({ "retry_after_ms": ms }))
    .into_response()
}

/// 503 `OVERLOADED` with `Retry-After`: the service is down or too slow.
fn unavailable(message: &'static str, retry_after: Duration) -> Response {
    let ms = u64::try_from(retry_after.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "OVERLOADED", message)
        .with_details(serde_json::json!({ "retry_after_ms": ms }))
        .into_response()
}

/// How one try ended.
enum Failure {
    /// The connection could not be opened: nothing was sent.
    Connect,
    /// Sent, and then the connection broke or the answer was unreadable.
    Broken,
}

/// Sends the request to an address of `role`, retrying elsewhere only what
/// is safe to send twice and was not delivered.
async fn forward(
    edge: &Edge,
    role: Role,
    req: Request,
    id: &HeaderValue,
    peer: Option<IpAddr>,
) -> Response {
    let Some(pool) = edge.pools.pool(role) else {
        // Every service role has a pool (checked at build); never reached.
        return ApiError::not_found().into_response();
    };
    let (parts, body) = req.into_parts();
    // Already in memory (`buffer_body`): this only takes it out.
    let Ok(body) = body.collect().await.map(|c| c.to_bytes()) else {
        return ApiError::bad_request("the body could not be read").into_response();
    };
    let retryable = matches!(parts.method, Method::GET | Method::HEAD)
        || parts.headers.contains_key("idempotency-key");
    let deadline = tokio::time::Instant::now() + edge.timeout;
    let mut tried = Vec::with_capacity(2);
    loop {
        let endpoint = match edge.pools.pick(pool, &tried) {
            Ok(endpoint) => endpoint,
            Err(down) => {
                edge.counters.all_down.fetch_add(1, Ordering::Relaxed);
                return unavailable(
                    "the service is unavailable; retry shortly",
                    down.retry_after,
                );
            }
        };
        tried.push(endpoint.clone());
        let Some(upstream_req) = outgoing(&parts, body.clone(), endpoint.authority(), id, peer)
        else {
            return ApiError::bad_request("the request cannot be forwarded").into_response();
        };
        edge.counters.forwarded.fetch_add(1, Ordering::Relaxed);
        let failure = match tokio::time::timeout_at(deadline, exchange(edge, upstream_req)).await {
            Ok(Ok(res)) => return res,
            Ok(Err(failure)) => failure,
            Err(_elapsed) => {
                edge.counters.timeouts.fetch_add(1, Ordering::Relaxed);
                edge.pools.cool_down(pool, &endpoint, "timeout");
                return unavailable(
                    "the service did not answer in time; retry shortly",
                    Duration::from_secs(1),
                );
            }
        };
        match failure {
            Failure::Connect => {
                edge.counters
                    .connect_failures
                    .fetch_add(1, Ordering::Relaxed);
                edge.pools.cool_down(pool, &endpoint, "connect failed");
                if retryable && tried.len() < pool.endpoints().len() {
                    continue;
                }
            }
            Failure::Broken => {
                edge.counters.broken.fetch_add(1, Ordering::Relaxed);
                edge.pools.cool_down(pool, &endpoint, "connection broke");
            }
        }
        return unavailable(
            "the service could not be reached; retry shortly",
            Duration::from_secs(1),
        );
    }
}

/// Headers that describe one connection, not the request: never forwarded
/// (HTTP/2 forbids them), and `host` becomes the upstream's `:authority`.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
    )
}

/// The request as sent to `authority`: same method, path, query, headers
/// (the Bearer token included) and body, plus the request id and the
/// client's address in `x-forwarded-for`.
fn outgoing(
    parts: &axum::http::request::Parts,
    body: Bytes,
    authority: &str,
    id: &HeaderValue,
    peer: Option<IpAddr>,
) -> Option<hyper::Request<Full<Bytes>>> {
    let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let uri: Uri = format!("http://{authority}{path}").parse().ok()?;
    let mut req = hyper::Request::new(Full::new(body));
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_2;
    let headers = req.headers_mut();
    for (name, value) in &parts.headers {
        if !hop_by_hop(name) && name != REQUEST_ID {
            headers.append(name.clone(), value.clone());
        }
    }
    headers.insert(REQUEST_ID, id.clone());
    if let Some(ip) = peer {
        let forwarded = match parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
        {
            Some(earlier) => format!("{earlier}, {ip}"),
            None => ip.to_string(),
        };
        if let Ok(v) = HeaderValue::from_str(&forwarded) {
            headers.insert("x-forwarded-for", v);
        }
    }
    Some(req)
}

/// One try: the answer read whole, or how it failed.
async fn exchange(edge: &Edge, req: hyper::Request<Full<Bytes>>) -> Result<Response, Failure> {
    let res = edge.client.request(req).await.map_err(|e| {
        if e.is_connect() {
            Failure::Connect
        } else {
            tracing::debug!(error = %e, "upstream call failed");
            Failure::Broken
        }
    })?;
    let (parts, body) = res.into_parts();
    let bytes = Limited::new(body, MAX_ANSWER_BYTES)
        .collect()
        .await
        .map_err(|_| Failure::Broken)?
        .to_bytes();
    let mut answer = Response::new(Body::from(bytes));
    *answer.status_mut() = parts.status;
    let headers = answer.headers_mut();
    for (name, value) in &parts.headers {
        if !hop_by_hop(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn the_client_is_named_only_by_a_trusted_proxy() {
        let trusted: Vec<Cidr> = vec!["10.0.0.0/8".parse().expect("cidr")];
        let h = forwarded(&["6.6.6.6, 1.2.3.4", "10.0.0.7"]);
        // From the proxy: the right-most address it did not add itself.
        assert_eq!(client_ip(ip("10.0.0.2"), &h, &trusted), ip("1.2.3.4"));
        // From anyone else: the header is theirs, the peer is the client.
        assert_eq!(client_ip(ip("5.5.5.5"), &h, &trusted), ip("5.5.5.5"));
        assert_eq!(client_ip(ip("10.0.0.2"), &h, &[]), ip("10.0.0.2"));
        // Nothing forwarded, or garbage: the last good address.
        assert_eq!(
            client_ip(ip("10.0.0.2"), &HeaderMap::new(), &trusted),
            ip("10.0.0.2")
        );
        let junk = forwarded(&["1.2.3.4, junk"]);
        assert_eq!(client_ip(ip("10.0.0.2"), &junk, &trusted), ip("10.0.0.2"));
    }

    #[test]
    fn request_ids_are_kept_only_when_sane() {
        let mut h = HeaderMap::new();
        h.insert(REQUEST_ID, HeaderValue::from_static("req-1:a.b_c"));
        assert_eq!(request_id(&h), "req-1:a.b_c");
        h.insert(REQUEST_ID, HeaderValue::from_static("a b"));
        assert_ne!(request_id(&h), "a b");
    }
}
