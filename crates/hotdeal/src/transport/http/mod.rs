//! The HTTP API (axum): routes, the error body, extractors and the
//! generated OpenAPI document.

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

use crate::services::Storefront;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use error::ApiError;
use page_cache::PageCache;
use std::ops::Deref;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Bounds of the HTTP layer.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Requests handled at once; past it, 503 at once.
    pub max_in_flight: usize,
    /// How long a cached page may show stale stock counts.
    pub read_cache_max_age: std::time::Duration,
}

/// What every handler gets: the services, and the HTTP layer's own cache.
#[derive(Clone)]
pub struct AppState {
    app: Arc<Storefront>,
    pages: Arc<PageCache>,
}

impl Deref for AppState {
    type Target = Storefront;

    fn deref(&self) -> &Storefront {
        &self.app
    }
}

/// Request bodies above this are refused with 413: the largest legitimate
/// body (an order of 10 lines with an address) is about 2 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The whole API. At most `max_in_flight` requests are handled at once;
/// past that, requests are refused at once with 503 `OVERLOADED` rather
/// than queued.
pub fn router(app: Arc<Storefront>, limits: HttpLimits) -> Router {
    let openapi = openapi::document();
    let pages = Arc::new(PageCache::new(limits.read_cache_max_age));
    let state = AppState { app, pages };
    let in_flight = Arc::new(Semaphore::new(limits.max_in_flight.max(1)));
    Router::new()
        .route("/health", get(health::gateway))
        .route("/auth/health", get(health::auth))
        .route("/products/health", get(health::products))
        .route("/orders/health", get(health::orders))
        .route("/coupons/health", get(health::coupons))
        .route("/points/health", get(health::points))
        .route("/auth/register", post(auth::register))
        .route("/auth/login", post(auth::login))
        .route("/auth/refresh", post(auth::refresh))
        .route("/auth/verify", get(auth::verify))
        .route("/auth/users/me", get(auth::me))
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
        .route("/orders", get(orders::list).post(orders::place))
        .route("/orders/{order_id}", get(orders::get))
        .route("/orders/{order_id}/cancel", post(orders::cancel))
        .route("/orders/{order_id}/payments", post(orders::pay))
        .route("/points", get(points::balance))
        .route("/points/charges", post(points::charge))
        .route("/points/history", get(points::history))
        .route("/coupons", post(coupons::create))
        .route("/coupons/{coupon_id}", get(coupons::get))
        .route("/coupons/{coupon_id}/issue", post(coupons::issue))
        .route("/users/me/coupons", get(coupons::mine))
        .route("/docs", get(openapi::docs_page))
        .route(
            "/openapi.json",
            get(move || {
                let doc = openapi.clone();
                async move { ([("content-type", "application/json")], doc) }
            }),
        )
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "this path does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(trace_request))
        .layer(axum::middleware::from_fn_with_state(in_flight, shed_load))
        .with_state(state)
}

/// Refuses a request at once when `max_in_flight` are already running.
async fn shed_load(
    State(in_flight): State<Arc<Semaphore>>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    match in_flight.try_acquire() {
        Ok(_permit) => next.run(req).await,
        Err(_) => ApiError::from(crate::services::Error::Overloaded).into_response(),
    }
}

/// One span per request, named by the route template (not the raw path, so
/// ids do not explode the cardinality of logs and metrics).
async fn trace_request(req: Request, next: axum::middleware::Next) -> axum::response::Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::debug_span!("request", method = %req.method(), route = %route);
    let _enter = span.enter();
    let res = next.run(req).await;
    tracing::debug!(status = res.status().as_u16(), "answered");
    res
}
