//! `order-stress` (seed 000): ramping VUs 1→50 in 30 s, hold 60 s, →0 in
//! 10 s; 50 users order one unit of one product (price 10,000, stock
//! 1,000,000) with a shipping address, then think 0.1 s (`--think 0` for a
//! saturation run). Thresholds: p95 < 2000 ms, errors < 10 %.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::common::{product_paths, seller_and_buyers, single_product_books, SingleProductOrders};
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
    let thresholds = [
        Threshold::Duration {
            q: 95.0,
            cmp: Cmp::Lt,
            ms: 2000.0,
        },
        Threshold::Failed {
            cmp: Cmp::Lt,
            rate: 0.10,
        },
    ];
    run_single_product(
        ctx,
        SingleProduct {
            info: INFO,
            name: "order-stress",
            start: 1,
            stages: vec![
                Stage::secs(30, 50.0),
                Stage::secs(60, 50.0),
                Stage::secs(10, 0.0),
            ],
            users: 50,
            stock: 1_000_000,
            think: Duration::from_millis(100),
            timeout: Duration::from_secs(60),
            thresholds: &thresholds,
            notes: vec![],
        },
    )
    .await
}

/// The shape shared by `order-stress` and `order-overload`: many buyers
/// ordering one unit of one product in a closed loop.
pub struct SingleProduct<'a> {
    pub info: Info,
    pub name: &'static str,
    pub start: u32,
    pub stages: Vec<Stage>,
    pub users: usize,
    pub stock: u64,
    pub think: Duration,
    pub timeout: Duration,
    pub thresholds: &'a [Threshold],
    pub notes: Vec<String>,
}

pub async fn run_single_product(ctx: &Ctx, s: SingleProduct<'_>) -> anyhow::Result<Outcome> {
    let plan = ctx.plan(Plan::RampingVus {
        start: s.start,
        stages: s.stages,
    })?;
    let users = ctx.users_or(s.users).max(1);
    let stock = ctx.stock_or(s.stock);
    let price = 10_000;

    let t0 = Instant::now();
    let (seller, buyers) = seller_and_buyers(ctx, users).await?;
    let product = setup::create_product(
        &mut Api::new(&ctx.targets),
        &seller,
        &format!("{} {}", s.name, ctx.tag),
        price,
        stock,
    )
    .await?;
    ctx.wait_visible(&product_paths(std::slice::from_ref(&product)))
        .await?;
    let workload = Arc::new(SingleProductOrders::new(&ctx.targets, &buyers, &product)?);
    let setup = t0.elapsed();

    let names = Names {
        checks: vec!["order 201"],
        rates: vec![],
    };
    let measured = ctx
        .measure(
            workload.clone(),
            plan,
            names,
            ctx.think_or(s.think),
            ctx.timeout_or(s.timeout),
        )
        .await?;

    let books = single_product_books(ctx, &product, &workload.ledger, &buyers).await?;
    let thresholds = evaluate(s.thresholds, &measured.totals);
    Ok(Outcome {
        info: s.info,
        measured,
        thresholds,
        books: Some(books),
        notes: s.notes,
        setup,
        params: json!({"users": users, "stock": product.initial_stock, "price": price, "product_id": product.id}),
    })
}
