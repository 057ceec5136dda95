//! Health routes: one per service of the split deployment, all answered by
//! the all-in-one process.

use super::dto::HealthOut;
use axum::Json;

macro_rules! health_route {
    ($fn:ident, $path:literal, $service:literal) => {
        #[utoipa::path(get, path = $path, tag = "health",
                    responses((status = 200, body = HealthOut, description = "The service is up")))]
        pub async fn $fn() -> Json<HealthOut> {
            Json(HealthOut {
                status: "healthy",
                service: $service,
            })
        }
    };
}

health_route!(gateway, "/health", "gateway");
health_route!(auth, "/auth/health", "auth-service");
health_route!(products, "/products/health", "product-service");
health_route!(orders, "/orders/health", "order-service");
health_route!(coupons, "/coupons/health", "coupon-service");
health_route!(points, "/points/health", "point-service");
