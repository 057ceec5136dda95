//! `GET /openapi.json`, generated from the handlers' annotations and the
//! DTO types, so the document cannot drift from the code.

use super::{auth, catalog, coupons, dto, error, health, orders, points, queue};
use axum::body::Bytes;
use utoipa::openapi::header::Header;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hotdeal",
        description = "Flash-sale storefront API. Errors are `{error, message, details?}` with a stable code; \
            a body that is not JSON is 400 BAD_REQUEST, a field rule broken is 422 VALIDATION_ERROR, an unknown \
            path or a non-UUID id is 404 NOT_FOUND, a wrong method 405 METHOD_NOT_ALLOWED, a body over 64 KiB \
            413 PAYLOAD_TOO_LARGE, a body that does not arrive in time 408 REQUEST_TIMEOUT. Overload answers \
            503 OVERLOADED with Retry-After. Behind the gateway (the split deployment) any route may also answer \
            429 RATE_LIMITED with Retry-After (per-user and per-IP limits), and 503 OVERLOADED with Retry-After when \
            the service behind it is down or does not answer in time (never 502/504); every answer carries an \
            x-request-id. A human-readable rendering of this document is served at /docs."
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
        queue::join, queue::status,
    ),
    components(schemas(error::ErrorBody, dto::ShippingAddressOut)),
    modifiers(&BearerAuth, &CommonResponses, &ResponsesComplete)
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

/// Adds the answers that come from the shared layers rather than from the
/// handler, to every operation they apply to, so no route can forget one:
/// the load shedder (503, any route), the bearer extractor (401), path ids
/// (404), JSON bodies (400, 408, 413, 422) and query strings (400, 422).
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        for (path, item) in doc.paths.paths.iter_mut() {
            let has_path_id = path.contains('{');
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in operations.into_iter().flatten() {
                add_common(op, has_path_id);
            }
        }
    }
}

fn add_common(op: &mut Operation, has_path_id: bool) {
    let protected = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let has_body = op.request_body.is_some();
    let has_query = op
        .parameters
        .iter()
        .flatten()
        .any(|p| matches!(p.parameter_in, ParameterIn::Query));
    let mut add = |status: &str, code: &str, text: &str| {
        let responses = &mut op.responses.responses;
        match responses.get_mut(status) {
            Some(RefOr::T(res)) => {
                if !res.description.contains(code) {
                    res.description = format!("{} / {code}: {text}", res.description);
                }
            }
            Some(RefOr::Ref(_)) => {}
            None => {
                responses.insert(
                    status.to_owned(),
                    RefOr::T(error_response(status, code, text)),
                );
            }
        }
    };
    if has_body {
        add(
            "400",
            "BAD_REQUEST",
            "the body is not JSON, or Content-Type is not application/json",
        );
        add("408", "REQUEST_TIMEOUT", "the body did not arrive in time");
        add("413", "PAYLOAD_TOO_LARGE", "the body is over 64 KiB");
        add(
            "422",
            "VALIDATION_ERROR",
            "a field breaks its rule; `details` names each field",
        );
    }
    if has_query {
        add("400", "BAD_REQUEST", "the query string is malformed");
        add(
            "422",
            "VALIDATION_ERROR",
            "a query parameter breaks its rule; `details` names it",
        );
    }
    if protected {
        add(
            "401",
            "UNAUTHORIZED",
            "no Bearer token / INVALID_TOKEN: bad signature, malformed or expired",
        );
    }
    if has_path_id {
        add(
            "404",
            "NOT_FOUND",
            "no such resource (an id that is not a UUID included)",
        );
    }
    add(
        "503",
        "OVERLOADED",
        "shed by admission control; retry after Retry-After seconds",
    );
}

fn error_response(status: &str, code: &str, text: &str) -> Response {
    let mut res = ResponseBuilder::new()
        .description(format!("{code}: {text}"))
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        );
    if status == "503" || status == "429" {
        res = res.header(
            "Retry-After",
            Header::new(ObjectBuilder::new().schema_type(Type::Integer)),
        );
    }
    res.build()
}

/// Every field of a resource the API answers with is always present (an
/// absent value is `null`), so each `*Out` schema requires all its
/// properties.
struct ResponsesComplete;

impl Modify for ResponsesComplete {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let Some(components) = doc.components.as_mut() else {
            return;
        };
        for (name, schema) in components.schemas.iter_mut() {
            let answered = name.ends_with("Out") || name.starts_with("ListOf");
            if let (true, RefOr::T(Schema::Object(obj))) = (answered, schema) {
                obj.required = obj.properties.keys().cloned().collect();
            }
        }
    }
}

/// `GET /docs`: a small hand-written page, embedded in the binary, that
/// fetches `/openapi.json` and renders every operation (no CDN, no bundle).
pub async fn docs_page() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("docs.html"),
    )
}
