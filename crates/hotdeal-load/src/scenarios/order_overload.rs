//! `order-overload` (seeds 000/001): far past saturation — ramping VUs
//! 10→500 in 10 s, hold 30 s, →0 in 5 s; 100 users; stock 10,000,000; no
//! think time; 5 s timeout. Report only: no thresholds, but the books must
//! still balance (overload must be refused, never half-done).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::common::{seller_and_buyers, single_product_books, SingleProductOrders};
use super::{Ctx, Info, Outcome};
use crate::config::Stage;
use crate::executor::Plan;
use crate::metrics::Names;
use crate::setup::{self, Api};

pub const INFO: Info = Info {
    description: "seeds 000/001: POST /orders with no think time, ramping VUs 10→500→0, 5s timeout (report only)",
    seed: "000/001",
    seed_figure: "2,668 req/s, p95 162ms (async Redis queue, 500 VUs)",
};

pub async fn run(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let plan = ctx.plan(Plan::RampingVus {
        start: 10,
        stages: vec![
            Stage::secs(10, 500.0),
            Stage::secs(30, 500.0),
            Stage::secs(5, 0.0),
        ],
    })?;
    let users = ctx.users_or(100).max(1);
    let stock = ctx.stock_or(10_000_000);
    let price = 10_000;

    let t0 = Instant::now();
    let (seller, buyers) = seller_and_buyers(ctx, users).await?;
    let product = setup::create_product(
        &mut Api::new(&ctx.target),
        &seller,
        &format!("order-overload {}", ctx.tag),
        price,
        stock,
    )
    .await?;
    let workload = Arc::new(SingleProductOrders::new(&ctx.target, &buyers, &product)?);
    let setup = t0.elapsed();

    let names = Names {
        checks: vec!["order 201"],
        rates: vec![],
    };
    let think = ctx.think_or(Duration::ZERO);
    let measured = ctx
        .measure(
            workload.clone(),
            plan,
            names,
            think,
            ctx.timeout_or(Duration::from_secs(5)),
        )
        .await?;

    let books = single_product_books(ctx, &product, &workload.ledger, &buyers).await?;
    Ok(Outcome {
        info: INFO,
        measured,
        thresholds: vec![],
        books: Some(books),
        notes: vec![
            "report only: overload figures have no thresholds; the books still must balance".into(),
        ],
        setup,
        params: json!({"users": users, "stock": product.initial_stock, "price": price, "product_id": product.id}),
    })
}
