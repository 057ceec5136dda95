//! The HTTP API (axum): routes, the error body, extractors and the
//! generated OpenAPI document.

mod auth;
mod catalog;
pub mod dto;
pub mod error;
mod extract;
mod health;
mod openapi;
mod orders;

use crate::services::Storefront;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use error::ApiError;
use std::sync::Arc;

/// What every handler gets.
pub type AppState = Arc<Storefront>;

/// Request bodies above this are refused with 413: the largest legitimate
/// body (an order of 10 lines with an address) is about 2 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The whole API.
pub fn router(app: AppState) -> Router {
    let openapi = openapi::document();
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
        .with_state(app)
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
