//! `GET /openapi.json`, generated from the handlers' annotations and the
//! DTO types, so the document cannot drift from the code.

use super::{auth, catalog, coupons, dto, error, health, orders, points};
use axum::body::Bytes;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hotdeal",
        description = "Flash-sale storefront API. Errors are `{error, message, details?}` with a stable code; \
            a body that is not JSON is 400 BAD_REQUEST, a field rule broken is 422 VALIDATION_ERROR, an unknown \
            path or a non-UUID id is 404 NOT_FOUND, a wrong method 405 METHOD_NOT_ALLOWED, a body over 64 KiB \
            413 PAYLOAD_TOO_LARGE. Overload answers 503 OVERLOADED with Retry-After."
    ),
    paths(
        health::gateway, health::auth, health::products, health::orders, health::coupons, health::points,
        auth::register, auth::login, auth::refresh, auth::verify, auth::me, auth::logout,
        catalog::list_products, catalog::create_product, catalog::get_product, catalog::update_product,
        catalog::get_stock, catalog::adjust_stock,
        catalog::list_deals, catalog::create_deal, catalog::get_deal, catalog::hot_start, catalog::hot_end,
        orders::place, orders::list, orders::get, orders::cancel, orders::pay,
        points::balance, points::charge, points::history,
        coupons::create, coupons::get, coupons::issue, coupons::mine,
    ),
    components(schemas(error::ErrorBody, dto::ShippingAddressOut)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The document, serialised once.
pub fn document() -> Bytes {
    Bytes::from(ApiDoc::openapi().to_json().unwrap_or_default())
}
