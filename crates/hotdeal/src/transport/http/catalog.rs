//! `/products/*`: the catalogue, stock and deals.

use super::dto::{
    page_of, DealIn, DealOut, HotOut, ListOf, PageQuery, ProductIn, ProductOut, ProductPatchIn,
    StockDeltaIn, StockOut,
};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{AuthUser, JsonBody, PathId, QueryMap};
use super::page_cache::{PageKey, Stamp};
use super::Ctx;
use crate::services::Catalogue;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use hotdeal_domain::{DealId, ProductId};

/// Serves `key` from the page cache, rendering it with `render` when the
/// cached copy is out of date. Only for resources known to exist.
fn cached_json<T: serde::Serialize>(
    app: &Ctx<Catalogue>,
    key: PageKey,
    render: impl FnOnce(DateTime<Utc>) -> T,
) -> Response {
    let stamp = Stamp {
        epoch: app.catalog.epoch(),
        stock: app.admission.version(),
        now: app.now(),
    };
    let body = app.pages.get_or_build(key, stamp, || {
        let body = serde_json::to_vec(&render(stamp.now))
            .map(Bytes::from)
            .unwrap_or_default();
        (body, app.catalog.next_window_change(stamp.now))
    });
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// List products, newest first.
#[utoipa::path(get, path = "/products", tag = "products",
    params(
        PageQuery,
        ("category" = Option<String>, Query, description = "only products of exactly this category"),
    ),
    responses(
        (status = 200, body = ListOf<ProductOut>, description = "A page of products"),
        (status = 422, body = ErrorBody, description = "VALIDATION_ERROR: bad page or size"),
    ))]
pub async fn list_products(
    State(app): State<Ctx<Catalogue>>,
    QueryMap(q): QueryMap,
) -> ApiResult<Json<ListOf<ProductOut>>> {
    let page = page_of(&q).map_err(ApiError::validation)?;
    let products = app
        .products(q.get("category").map(String::as_str), page)
        .await?;
    Ok(Json(ListOf::from_paged(products, ProductOut::from)))
}

/// List a product for sale; the caller becomes its seller.
#[utoipa::path(post, path = "/products", tag = "products", request_body = ProductIn,
    security(("bearer" = [])),
    responses(
        (status = 201, body = ProductOut, description = "Created"),
        (status = 400, body = ErrorBody, description = "BAD_REQUEST"),
        (status = 401, body = ErrorBody, description = "UNAUTHORIZED / INVALID_TOKEN"),
        (status = 422, body = ErrorBody, description = "VALIDATION_ERROR"),
    ))]
pub async fn create_product(
    State(app): State<Ctx<Catalogue>>,
    AuthUser(seller): AuthUser,
    JsonBody(body): JsonBody<ProductIn>,
) -> ApiResult<(StatusCode, Json<ProductOut>)> {
    let p = body.parse().map_err(ApiError::validation)?;
    let product = app.create_product(seller, p).await?;
    Ok((StatusCode::CREATED, Json(product.into())))
}

/// One product.
#[utoipa::path(get, path = "/products/{product_id}", tag = "products",
    params(("product_id" = String, Path)),
    responses(
        (status = 200, body = ProductOut, description = "The product"),
        (status = 404, body = ErrorBody, description = "NOT_FOUND"),
    ))]
pub async fn get_product(
    State(app): State<Ctx<Catalogue>>,
    PathId(id): PathId<ProductId>,
) -> ApiResult<Response> {
    let product = app.product(id).await?;
    Ok(cached_json(&app, PageKey::Product(id.0), |_| {
        ProductOut::from(product)
    }))
}

/// Change a product (its seller only).
#[utoipa::path(patch, path = "/products/{product_id}", tag = "products",
    params(("product_id" = String, Path)), request_body = ProductPatchIn,
    security(("bearer" = [])),
    responses(
        (status = 200, body = ProductOut, description = "Updated"),
        (status = 401, body = ErrorBody, description = "UNAUTHORIZED / INVALID_TOKEN"),
        (status = 403, body = ErrorBody, description = "FORBIDDEN: not the seller"),
        (status = 404, body = ErrorBody, description = "NOT_FOUND"),
        (status = 422, body = ErrorBody, description = "VALIDATION_ERROR"),
    ))]
pub async fn update_product(
    State(app): State<Ctx<Catalogue>>,
    AuthUser(seller): AuthUser,
    PathId(id): PathId<ProductId>,
    JsonBody(body): JsonBody<ProductPatchIn>,
) -> ApiResult<Json<ProductOut>> {
    let patch = body.parse().map_err(ApiError::validation)?;
    Ok(Json(app.update_product(seller, id, patch).await?.into()))
}

/// A product's free stock.
#[utoipa::path(get, path = "/products/{product_id}/stock", tag = "products",
    params(("product_id" = String, Path)),
    responses(
        (status = 200, body = StockOut, description = "Units on hand (excluding units set aside for deals)"),
        (status = 404, body = ErrorBody, description = "NOT_FOUND"),
    ))]
pub async fn get_stock(
    State(app): State<Ctx<Catalogue>>,
    PathId(id): PathId<ProductId>,
) -> ApiResult<Response> {
    let product = app.product(id).await?;
    Ok(cached_json(&app, PageKey::Stock(id.0), |_| {
        StockOut::from(product)
    }))
}

/// Add or remove units (its seller only).
#[utoipa::path(patch, path = "/products/{product_id}/stock", tag = "products",
    params(("product_id" = String, Path)), request_body = StockDeltaIn,
    security(("bearer" = [])),
    responses(
        (status = 200, body = StockOut, description = "The new stock"),
        (status = 400, body = ErrorBody, description = "INSUFFICIENT_STOCK: would go below 0"),
        (status = 401, body = ErrorBody, description = "UNAUTHORIZED / INVALID_TOKEN"),
        (status = 403, body = ErrorBody, description = "FORBIDDEN"),
        (status = 404, body = ErrorBody, description = "NOT_FOUND"),
        (status = 422, body = ErrorBody, description = "VALIDATION_ERROR"),
    ))]
pub async fn adjust_stock(
    State(app): State<Ctx<Catalogue>>,
    AuthUser(seller): AuthUser,
    PathId(id): PathId<ProductId>,
    JsonBody(body): JsonBody<StockDeltaIn>,
) -> ApiResult<Json<StockOut>> {
    let delta = body.parse().map_err(ApiError::validation)?;
    Ok(Json(app.adjust_stock(seller, id, delta).await?.into()))
}

/// Deals running now (`active` and `sold_out`), soonest-ending first.
#[utoipa::path(get, path = "/products/deals", tag = "deals",
    params(
        PageQuery,
    ),
    responses(
        (status = 200, body = ListOf<DealOut>, description = "A page of running deals"),
        (status = 422, body = ErrorBody, description = "VALIDATION_ERROR"),
    ))]
pub async fn list_deals(
    State(app): State<Ctx<Catalogue>>,
    QueryMap(q): QueryMap,
) -> ApiResult<Response> {
    let page = page_of(&q).map_err(ApiError::validation)?;
    // The hottest read of a flash sale: rendered once per change and
    // served from memory (see `page_cache` for how fresh it stays).
    let key = PageKey::Deals {
        page: page.page,
        size: page.size,
    };
    Ok(cached_json(&app, key, |now| {
        ListOf::from_paged(app.running_deals(page), |d| DealOut::new(d, now))
    }))
}

/// Open a deal on one of the caller's products; sets `deal_stock` units aside.
#[utoipa::path(post, path = "/products/deals", tag = "deals", request_body = DealIn,
    security(("bearer" = [])),
    responses(
        (status = 201, body = DealOut, description = "Created"),
        (status = 400, body = ErrorBody, description = "INSUFFICIENT_STOCK: the product has fewer free units than deal_stock"),
        (status = 401, body = ErrorBody, description = "UNAUTHORIZED / INVALID_TOKEN"),
        (status = 403, body = ErrorBody, description = "FORBIDDEN: not the product's seller"),
        (status = 404, body = ErrorBody, description = "PRODUCT_NOT_FOUND"),
        (status = 422, body = ErrorBody, description = "VALIDATION_ERROR (e.g. ends_at not after starts_at)"),
    ))]
pub async fn create_deal(
    State(app): State<Ctx<Catalogue>>,
    AuthUser(seller): AuthUser,
    JsonBody(body): JsonBody<DealIn>,
) -> ApiResult<(StatusCode, Json<DealOut>)> {
    let d = body.parse().map_err(ApiError::validation)?;
    let deal = app.create_deal(seller, d).await?;
    Ok((StatusCode::CREATED, Json(DealOut::new(deal, app.now()))))
}

/// One deal with its product.
#[utoipa::path(get, path = "/products/deals/{deal_id}", tag = "deals",
    params(("deal_id" = String, Path)),
    responses(
        (status = 200, body = DealOut, description = "The deal"),
        (status = 404, body = ErrorBody, description = "NOT_FOUND"),
    ))]
pub async fn get_deal(
    State(app): State<Ctx<Catalogue>>,
    PathId(id): PathId<DealId>,
) -> ApiResult<Response> {
    let deal = app.deal(id).await?;
    Ok(cached_json(&app, PageKey::Deal(id.0), |now| {
        DealOut::new(deal, now)
    }))
}

async fn set_hot(
    app: Ctx<Catalogue>,
    seller: AuthUser,
    id: ProductId,
    hot: bool,
) -> ApiResult<Json<HotOut>> {
    let hot = app.set_hot(seller.0, id, hot).await?;
    Ok(Json(HotOut {
        product_id: id.0,
        hot,
    }))
}

/// Hint: pre-warm the product's stock in the fast admission tier.
#[utoipa::path(post, path = "/products/{product_id}/hotdeal/start", tag = "deals",
    params(("product_id" = String, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = HotOut, description = "`hot: true`"),
        (status = 401, body = ErrorBody, description = "UNAUTHORIZED / INVALID_TOKEN"),
        (status = 403, body = ErrorBody, description = "FORBIDDEN"),
        (status = 404, body = ErrorBody, description = "NOT_FOUND"),
    ))]
pub async fn hot_start(
    State(app): State<Ctx<Catalogue>>,
    seller: AuthUser,
    PathId(id): PathId<ProductId>,
) -> ApiResult<Json<HotOut>> {
    set_hot(app, seller, id, true).await
}

/// Hint: release the product from the fast admission tier.
#[utoipa::path(post, path = "/products/{product_id}/hotdeal/end", tag = "deals",
    params(("product_id" = String, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = HotOut, description = "`hot: false`"),
        (status = 401, body = ErrorBody, description = "UNAUTHORIZED / INVALID_TOKEN"),
        (status = 403, body = ErrorBody, description = "FORBIDDEN"),
        (status = 404, body = ErrorBody, description = "NOT_FOUND"),
    ))]
pub async fn hot_end(
    State(app): State<Ctx<Catalogue>>,
    seller: AuthUser,
    PathId(id): PathId<ProductId>,
) -> ApiResult<Json<HotOut>> {
    set_hot(app, seller, id, false).await
}
