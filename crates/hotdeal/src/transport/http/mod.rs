//! The HTTP API (axum): routes, the error body, extractors and the
//! generated OpenAPI document.
//!
//! Each role's routes get their own state, [`Ctx`] over the one service
//! they call (`Ctx<Ordering>` for `/orders/*`), plus what every route
//! shares: the token check and the idempotency keys. A handler cannot
//! reach a context its role does not serve.

mod auth;
mod catalog;
mod coupons;
pub mod dto;
pub mod error;
mod extract;
mod health;
mod idempotent;
mod openapi;
mod orders;
mod page_cache;
mod points;
mod queue;
pub mod server;
mod user_cache;

use crate::config::{Role, Roles};
use crate::observability::metrics::{Metrics, Shed, UNMATCHED};
use crate::observability::trace_context::TraceParent;
use crate::services::{Authenticator, Idempotency, Storefront};
use axum::body::{Body, HttpBody as _};
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use error::ApiError;
use http_body_util::BodyExt;
use page_cache::PageCache;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tracing::Instrument;

/// Bounds of the HTTP layer.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Requests handled at once; past it, 503 at once.
    pub max_in_flight: usize,
    /// How long a cached page may show stale stock counts.
    pub read_cache_max_age: Duration,
    /// Open connections; past it new ones are refused at once.
    pub max_connections: usize,
    /// Time to send a request head (hyper's header read timeout).
    pub header_timeout: Duration,
    /// Time to send a request body once the head is in; past it, 408.
    pub body_timeout: Duration,
    /// A connection with no request running and nothing moving for this
    /// long is closed.
    pub idle_timeout: Duration,
}

/// What a handler of one context gets: that context's service (`Deref`
/// to it, through [`CtxParts`]), the token check, the idempotency keys and
/// the HTTP layer's own caches. axum clones a route's state for every
/// request: one shared `Arc` makes that one count instead of one per part.
pub struct Ctx<T>(Arc<CtxParts<T>>);

pub struct CtxParts<T> {
    svc: Arc<T>,
    auth: Arc<Authenticator>,
    idempotency: Arc<Idempotency>,
    /// Rendered catalogue pages (`/products/*`).
    pages: Arc<PageCache>,
    /// Rendered `GET /auth/users/me` answers.
    users: Arc<user_cache::UserCache>,
}

impl<T> Clone for Ctx<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Deref for Ctx<T> {
    type Target = CtxParts<T>;

    fn deref(&self) -> &CtxParts<T> {
        &self.0
    }
}

impl<T> Deref for CtxParts<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.svc
    }
}

/// Request bodies above this are refused with 413: the largest legitimate
/// body (an order of 10 lines with an address) is about 2 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The API of `roles` (the whole API in the all-in-one process). A request is read whole first — its body within
/// `body_timeout` (408) and at most [`MAX_BODY_BYTES`] (413) — and only then
/// takes one of `max_in_flight` slots, so clients that send slowly hold a
/// connection, never a slot. Past `max_in_flight`, requests are refused at
/// once with 503 `OVERLOADED` rather than queued. The health routes take no
/// slot: they answer however busy the server is.
pub fn router(app: Arc<Storefront>, limits: HttpLimits, roles: Roles) -> Router {
    let openapi = openapi::document();
    let metrics = app.metrics.clone();
    let pages = Arc::new(PageCache::new(limits.read_cache_max_age).counting(metrics.clone()));
    let shared = Shared {
        auth: app.auth.clone(),
        idempotency: app.idempotency.clone(),
        pages,
        users: Arc::default(),
    };
    let in_flight = (
        Arc::new(Semaphore::new(limits.max_in_flight.max(1))),
        metrics.clone(),
    );
    // Each role serves its own part of the API (and its health route); the
    // all-in-one process serves all of them and the gateway's `/health`.
    let mut health = Router::new();
    let mut api = Router::new();
    if roles.is_all() {
        health = health.route("/health", get(health::gateway));
    }
    if let Some(accounts) = app.accounts.as_ref().filter(|_| roles.contains(Role::Auth)) {
        health = health.route("/auth/health", get(health::auth));
        api = api.merge(
            Router::new()
                .route("/auth/register", post(auth::register))
                .route("/auth/login", post(auth::login))
                .route("/auth/refresh", post(auth::refresh))
                .route("/auth/logout", post(auth::logout))
                .route("/auth/verify", get(auth::verify))
                .route("/auth/users/me", get(auth::me))
                .with_state(shared.ctx(accounts)),
        );
    }
    // An order process keeps a catalogue too, to read: only the product
    // role serves it.
    if let Some(catalogue) = app
        .catalogue
        .as_ref()
        .filter(|_| roles.contains(Role::Product))
    {
        health = health.route("/products/health", get(health::products));
        api = api.merge(
            Router::new()
                .route(
                    "/products",
                    get(catalog::list_products).post(catalog::create_product),
                )
                .route(
                    "/products/deals",
                    get(catalog::list_deals).post(catalog::create_deal),
                )
                .route("/products/deals/{deal_id}", get(catalog::get_deal))
                .route(
                    "/products/{product_id}",
                    get(catalog::get_product).patch(catalog::update_product),
                )
                .route(
                    "/products/{product_id}/stock",
                    get(catalog::get_stock).patch(catalog::adjust_stock),
                )
                .route(
                    "/products/{product_id}/hotdeal/start",
                    post(catalog::hot_start),
                )
                .route("/products/{product_id}/hotdeal/end", post(catalog::hot_end))
                .with_state(shared.ctx(catalogue)),
        );
    }
    if let Some(ordering) = app
        .ordering
        .as_ref()
        .filter(|_| roles.contains(Role::Order))
    {
        health = health.route("/orders/health", get(health::orders));
        api = api.merge(
            Router::new()
                .route("/orders", get(orders::list).post(orders::place))
                .route("/orders/{order_id}", get(orders::get))
                .route("/orders/{order_id}/cancel", post(orders::cancel))
                .route("/orders/{order_id}/payments", post(orders::pay))
                .route("/deals/{deal_id}/queue", post(queue::join))
                .route("/queue/{token}", get(queue::status))
                .with_state(shared.ctx(ordering)),
        );
    }
    if let Some(points) = app.points.as_ref().filter(|_| roles.contains(Role::Point)) {
        health = health.route("/points/health", get(health::points));
        api = api.merge(
            Router::new()
                .route("/points", get(points::balance))
                .route("/points/charges", post(points::charge))
                .route("/points/history", get(points::history))
                .with_state(shared.ctx(points)),
        );
    }
    if let Some(coupons) = app
        .coupons
        .as_ref()
        .filter(|_| roles.contains(Role::Coupon))
    {
        health = health.route("/coupons/health", get(health::coupons));
        api = api.merge(
            Router::new()
                .route("/coupons", post(coupons::create))
                .route("/coupons/{coupon_id}", get(coupons::get))
                .route("/coupons/{coupon_id}/issue", post(coupons::issue))
                .route("/users/me/coupons", get(coupons::mine))
                .with_state(shared.ctx(coupons)),
        );
    }
    let health = health.with_state(app.health.clone());
    let api = api
        .route("/docs", get(openapi::docs_page))
        .route(
            "/openapi.json",
            get(move || {
                let doc = openapi.clone();
                async move { ([("content-type", "application/json")], doc) }
            }),
        )
        .layer(from_fn_with_state(in_flight, shed_load));
    Router::new()
        .merge(health)
        .merge(api)
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "this path does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(from_fn_with_state(limits.body_timeout, buffer_body))
        .layer(from_fn_with_state(metrics, trace_request))
}

/// What the contexts' states share.
struct Shared {
    auth: Arc<Authenticator>,
    idempotency: Arc<Idempotency>,
    pages: Arc<PageCache>,
    users: Arc<user_cache::UserCache>,
}

impl Shared {
    fn ctx<T>(&self, svc: &Arc<T>) -> Ctx<T> {
        Ctx(Arc::new(CtxParts {
            svc: svc.clone(),
            auth: self.auth.clone(),
            idempotency: self.idempotency.clone(),
            pages: self.pages.clone(),
            users: self.users.clone(),
        }))
    }
}

/// Reads the whole body within `timeout` before the request goes on, so
/// everything after this (the in-flight slot, the handler) works on a body
/// that is already in memory. A body too slow answers 408
/// `REQUEST_TIMEOUT` and the connection is closed (the rest of the body is
/// never read); a body over [`MAX_BODY_BYTES`] answers 413 — from its
/// `Content-Length` when it declares one, without reading it.
pub(crate) async fn buffer_body(
    State(timeout): State<Duration>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return closing(extract::too_large());
    }
    if body.is_end_stream() {
        // No body (most GETs): nothing to wait for.
        return next.run(Request::from_parts(parts, body)).await;
    }
    let limited = http_body_util::Limited::new(body, MAX_BODY_BYTES);
    let bytes = match tokio::time::timeout(timeout, limited.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return closing(extract::too_large())
        }
        Ok(Err(_)) => {
            return closing(ApiError::bad_request("the body could not be read"));
        }
        Err(_elapsed) => {
            return closing(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "REQUEST_TIMEOUT",
                "the request body was not received in time",
            ));
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// An error answer after which the connection is closed: the body that
/// was not read whole can't be skipped to find the next request.
fn closing(error: ApiError) -> Response {
    let mut res = error.into_response();
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

/// Refuses a request at once when `max_in_flight` are already running.
async fn shed_load(
    State((in_flight, metrics)): State<(Arc<Semaphore>, Arc<Metrics>)>,
    req: Request,
    next: Next,
) -> Response {
    match in_flight.try_acquire() {
        Ok(_permit) => next.run(req).await,
        Err(_) => {
            metrics.shed(Shed::InFlight);
            ApiError::from(crate::services::Error::Overloaded).into_response()
        }
    }
}

/// One span per request, named by the route template (not the raw path, so
/// ids do not explode the cardinality of logs and metrics), carrying the
/// W3C trace id: an incoming `traceparent` is continued, else a trace
/// starts here, and the answer's `traceparent` names this server's hop.
/// The request is counted and timed per route template, method and status
/// class ("unmatched" for paths no route takes).
async fn trace_request(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = req.method().clone();
    let incoming = req
        .headers()
        .get(TRACEPARENT)
        .and_then(|v| TraceParent::parse(v.as_bytes()));
    let hop = incoming.map_or_else(TraceParent::start, |parent| parent.child());
    let template = route.as_ref().map_or(UNMATCHED, |p| p.as_str());
    let span = tracing::debug_span!(
        "request",
        method = %method,
        route = %template,
        trace_id = tracing::field::Empty,
    );
    // Exported spans name this hop themselves (same trace, their own id).
    #[cfg(feature = "otlp")]
    let hop = crate::observability::otel::join(&span, incoming).unwrap_or(hop);
    if !span.is_disabled() {
        span.record("trace_id", hop.trace_id_hex());
    }
    let mut res = async move {
        let res = next.run(req).await;
        tracing::debug!(status = res.status().as_u16(), "answered");
        res
    }
    .instrument(span)
    .await;
    res.headers_mut().insert(TRACEPARENT, hop.header_value());
    metrics
        .http
        .record(&method, template, res.status().as_u16(), started.elapsed());
    res
}

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
