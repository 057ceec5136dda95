//! `order-stress` (seed 000): ramping VUs 1→50 in 30 s, hold 60 s, →0 in
//! 10 s; 50 users order one unit of one product (price 10,000, stock
//! 1,000,000) with a shipping address, then think 0.1 s (`--think 0` for a
//! saturation run). Thresholds: p95 < 2000 ms, errors < 10 %.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::common::{seller_and_buyers, single_product_books, SingleProductOrders};
use super::{evaluate, Ctx, Info, Outcome};
use crate::config::Stage;
use crate::executor::Plan;
use crate::metrics::Names;
use crate::setup::{self, Api};
use crate::thresholds::{Cmp, Threshold};

pub const INFO: Info = Info {
    description: "seed 000: POST /orders, 1 unit, ramping VUs 1→50→0, 0.1s think time",
    seed: "000",
    seed_figure: "295 req/s, p95 20ms, avg 9ms, 0% errors (Go + gRPC, 50 VUs)",
};

pub async fn run(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let plan = ctx.plan(Plan::RampingVus {
        start: 1,
        stages: vec![
            Stage::secs(30, 50.0),
            Stage::secs(60, 50.0),
            Stage::secs(10, 0.0),
        ],
    })?;
    let users = ctx.users_or(50).max(1);
    let stock = ctx.stock_or(1_000_000);
    let price = 10_000;

    let t0 = Instant::now();
    let (seller, buyers) = seller_and_buyers(ctx, users).await?;
    let product = setup::create_product(
        &mut Api::new(&ctx.target),
        &seller,
        &format!("order-stress {}", ctx.tag),
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
    let think = ctx.think_or(Duration::from_millis(100));
    let measured = ctx
        .measure(
            workload.clone(),
            plan,
            names,
            think,
            ctx.timeout_or(Duration::from_secs(60)),
        )
        .await?;

    let books = single_product_books(ctx, &product, &workload.ledger, &buyers).await?;
    let thresholds = evaluate(
        &[
            Threshold::Duration {
                q: 95.0,
                cmp: Cmp::Lt,
                ms: 2000.0,
            },
            Threshold::Failed {
                cmp: Cmp::Lt,
                rate: 0.10,
            },
        ],
        &measured.totals,
    );
    Ok(Outcome {
        info: INFO,
        measured,
        thresholds,
        books: Some(books),
        notes: vec![],
        setup,
        params: json!({"users": users, "stock": product.initial_stock, "price": price, "product_id": product.id}),
    })
}
