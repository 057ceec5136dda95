//! Pieces several scenarios share: the order body, the single-product order
//! workload of order-stress and order-overload, the response helpers, and
//! the seller + buyers setup.

use std::sync::Arc;

use bytes::Bytes;
use hyper::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use super::Ctx;
use crate::books::{verify_orders, Books, Ledger, Reading};
use crate::client::{Reply, ReqHead, Targets};
use crate::executor::{expect_ok, Vu, Workload};
use crate::setup::{self, Api, Product, SetupError, User};

/// A valid shipping address of the contract (phone and postal code
/// patterns included).
pub fn shipping_address() -> Value {
    json!({
        "recipient_name": "Load Tester",
        "phone": "010-1234-5678",
        "address": "1 Teheran-ro, Gangnam-gu, Seoul",
        "address_detail": "3F",
        "postal_code": "06236",
    })
}

/// The id of a created resource, from a 201 body.
pub fn created_id(reply: &Reply) -> Option<Uuid> {
    #[derive(serde::Deserialize)]
    struct Created {
        id: Uuid,
    }
    reply.json::<Created>().map(|c| c.id)
}

/// Whether the server may have created the order although we did not see a
/// 201: no answer, or a 5xx other than the fast refusals (503/429 are by
/// contract refused before any change).
pub fn order_outcome_unknown(reply: &Reply) -> bool {
    reply.outcome_unknown() || (reply.status >= 500 && reply.status != 503)
}

/// One head per user: `method path` with that user's bearer token.
pub fn heads_per_user(
    target: &Targets,
    method: Method,
    path: &str,
    users: &[User],
    json: bool,
) -> anyhow::Result<Vec<ReqHead>> {
    users
        .iter()
        .map(|u| {
            target
                .head(method.clone(), path, Some(&u.token), json)
                .map_err(anyhow::Error::from)
        })
        .collect()
}

/// A seller (who lists the products) and `n` buyers.
pub async fn seller_and_buyers(ctx: &Ctx, n: usize) -> anyhow::Result<(User, Vec<User>)> {
    let mut api = Api::new(&ctx.targets);
    let seller = setup::sign_up(
        &mut api,
        &format!("seller-{}@load.example.com", ctx.tag),
        "load seller",
    )
    .await?;
    let buyers = setup::sign_up_many(
        &ctx.targets,
        n,
        "buyer",
        &ctx.tag,
        ctx.concurrency(),
        ctx.quiet(),
    )
    .await?;
    Ok((seller, buyers))
}

/// order-stress / order-overload: each VU orders one unit of one product as
/// its user (VU *i* is user *i mod users*), body and heads pre-built.
pub struct SingleProductOrders {
    heads: Vec<ReqHead>,
    body: Bytes,
    pub ledger: Ledger,
}

pub const CHECK_ORDER_201: usize = 0;

impl SingleProductOrders {
    pub fn new(target: &Targets, buyers: &[User], product: &Product) -> anyhow::Result<Self> {
        let body = json!({
            "items": [{"product_id": product.id, "quantity": 1}],
            "shipping_address": shipping_address(),
        });
        Ok(Self {
            heads: heads_per_user(target, Method::POST, "/orders", buyers, true)?,
            body: Bytes::from(body.to_string()),
            ledger: Ledger::new(1),
        })
    }
}

impl Workload for SingleProductOrders {
    async fn iteration(&self, vu: &mut Vu) {
        let user = vu.id as usize % self.heads.len();
        let r = vu
            .send(&self.heads[user], self.body.clone(), expect_ok)
            .await;
        if vu.check(CHECK_ORDER_201, r.status == 201) {
            self.ledger
                .confirmed(created_id(&r), user as u32, &[(0, 1)]);
        } else if order_outcome_unknown(&r) {
            self.ledger.unknown(&[(0, 1)]);
        }
    }
}

/// The books of a single-product run: stock equation and orders.
pub async fn single_product_books(
    ctx: &Ctx,
    product: &Product,
    ledger: &Ledger,
    buyers: &[User],
) -> anyhow::Result<Books> {
    let mut books = Books::default();
    let remaining = product_stock_everywhere(ctx, &product.id).await?;
    let name = format!("product {}", product.id);
    books.agreement(&format!("stock of {name}"), &remaining);
    books.stock(
        &name,
        product.initial_stock,
        remaining.value,
        ledger.sold(0),
        ledger.unknown_units(0),
    );
    let tokens = Arc::new(buyers.iter().map(|u| u.token.clone()).collect::<Vec<_>>());
    verify_orders(
        &ctx.targets,
        ledger,
        tokens,
        ctx.args.verify_orders,
        ctx.concurrency(),
        &mut books,
    )
    .await?;
    Ok(books)
}

/// A product's remaining stock, read through every base URL.
pub async fn product_stock_everywhere(
    ctx: &Ctx,
    product_id: &str,
) -> Result<Reading<i64>, SetupError> {
    let id = product_id.to_string();
    ctx.read_everywhere(move |api: &mut Api| {
        let id = id.clone();
        Box::pin(async move { setup::product_stock(api, &id).await })
    })
    .await
}

/// A deal's `(deal_stock, remaining_stock)`, read through every base URL.
pub async fn deal_state_everywhere(
    ctx: &Ctx,
    deal_id: &str,
) -> Result<Reading<(i64, i64)>, SetupError> {
    let id = deal_id.to_string();
    ctx.read_everywhere(move |api: &mut Api| {
        let id = id.clone();
        Box::pin(async move { setup::deal_state(api, &id).await })
    })
    .await
}

/// Paths that answer 200 once an instance knows a product.
pub fn product_paths(products: &[Product]) -> Vec<String> {
    products
        .iter()
        .map(|p| format!("/products/{}", p.id))
        .collect()
}
