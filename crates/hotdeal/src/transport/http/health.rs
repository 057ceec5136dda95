//! Health routes: one per service of the split deployment, all answered by
//! the all-in-one process.
//!
//! A process that cannot record changes (its store failed: a full disk, an
//! I/O error) answers 503 `unhealthy`, so a load balancer sends traffic to
//! an instance that can; it becomes healthy again on its own once a probe
//! write commits.

use super::dto::{HealthOut, UnhealthyBody};
use super::error::RETRY_AFTER_SECS;
use crate::ports::StoreHealth;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::sync::Arc;

fn answer(store: &dyn StoreHealth, service: &'static str) -> Response {
    if store.writable() {
        return Json(HealthOut {
            status: "healthy",
            service,
        })
        .into_response();
    }
    let body = UnhealthyBody {
        status: "unhealthy",
        service,
        reason: "the store cannot record changes",
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, RETRY_AFTER_SECS)],
        Json(body),
    )
        .into_response()
}

macro_rules! health_route {
    ($fn:ident, $path:literal, $service:literal) => {
        #[utoipa::path(get, path = $path, tag = "health",
                    responses(
                        (status = 200, body = HealthOut, description = "The service is up"),
                        (status = 503, body = UnhealthyBody, description = "`unhealthy`: the store cannot record changes; see Retry-After"),
                    ))]
        pub async fn $fn(State(store): State<Arc<dyn StoreHealth>>) -> Response {
            answer(&*store, $service)
        }
    };
}

health_route!(gateway, "/health", "gateway");
health_route!(auth, "/auth/health", "auth-service");
health_route!(products, "/products/health", "product-service");
health_route!(orders, "/orders/health", "order-service");
health_route!(coupons, "/coupons/health", "coupon-service");
health_route!(points, "/points/health", "point-service");
