//! `order-load` and `order-spike` (seed 002): users 1..500, each with a
//! pre-charged points balance; 5 products. Each iteration picks a random
//! user and orders 1–3 random products × 1–5 units, paying with points.
//! Load: ramping VUs 0→100 in 1 m, hold 2 m, →0 in 1 m. Spike: 0→10 in
//! 30 s, →100 in 30 s, →0 in 30 s. Thresholds: p99 < 200 ms, failed < 1 %.
//!
//! Like the seed, a product may appear on two lines of one order (the API
//! sums them), and two VUs may order for the same user at once — the seed's
//! failures came from exactly that, under optimistic locking without retry.
//!
//! Bodies are drawn from a pool built at setup (seeded), so the hot path
//! never serialises JSON. Books: per-product stock, orders, and a sample
//! of point balances (charged − spent).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hyper::Method;
use serde_json::json;

use super::common::{
    created_id, heads_per_user, order_outcome_unknown, product_paths, product_stock_everywhere,
    seller_and_buyers,
};
use super::{evaluate, Ctx, Info, Outcome};
use crate::books::{sample, verify_orders, Books, Ledger};
use crate::client::ReqHead;
use crate::config::Stage;
use crate::executor::{expect_ok, Plan, Vu, Workload};
use crate::rng::Rng;
use crate::setup::{self, par_map, Api, Product};
use crate::thresholds::{Cmp, Threshold};

pub const LOAD: Info = Info {
    description: "seed 002 load test: random 1–3 products × 1–5 units paid with points, ramping VUs 0→100 (1m), hold 2m, →0 (1m)",
    seed: "002",
    seed_figure: "29.9 req/s, p95 6.25s, avg 1.52s, 0.16% failed (100 VUs)",
};

pub const SPIKE: Info = Info {
    description: "seed 002 spike test: same orders, ramping VUs 0→10 (30s) →100 (30s) →0 (30s)",
    seed: "002",
    seed_figure: "17.5 req/s, p95 6.56s, avg 1.16s, 0.18% failed (100 VUs)",
};

/// Points charged to each user up front: more than 240 orders of the
/// dearest body could spend, and within the API's 10,000,000 per charge.
const CHARGE: u64 = 10_000_000;
const POOL: usize = 512;
const PRICES: [u64; 5] = [100, 200, 300, 400, 500];

struct Body {
    bytes: Bytes,
    lines: Vec<(usize, u32)>,
    amount: u64,
}

/// Builds `POOL` random order bodies over `products`.
fn bodies(products: &[Product], seed: u64) -> Vec<Body> {
    let mut rng = Rng::new(seed ^ 0x0002);
    (0..POOL)
        .map(|_| {
            let n = rng.range(1, 3);
            let lines: Vec<(usize, u32)> = (0..n)
                .map(|_| (rng.below(products.len()), rng.range(1, 5) as u32))
                .collect();
            let items: Vec<_> = lines
                .iter()
                .map(|&(p, q)| json!({"product_id": products[p].id, "quantity": q}))
                .collect();
            let amount = lines
                .iter()
                .map(|&(p, q)| products[p].price * u64::from(q))
                .sum();
            let body = json!({"items": items, "payment": {"method": "points"}});
            Body {
                bytes: Bytes::from(body.to_string()),
                lines,
                amount,
            }
        })
        .collect()
}

struct MixedOrders {
    heads: Vec<ReqHead>,
    bodies: Vec<Body>,
    ledger: Ledger,
    spent: Vec<AtomicU64>,
    unknown: Vec<AtomicBool>,
}

impl Workload for MixedOrders {
    async fn iteration(&self, vu: &mut Vu) {
        let user = vu.rng.below(self.heads.len());
        let body = &self.bodies[vu.rng.below(self.bodies.len())];
        let r = vu
            .send(&self.heads[user], body.bytes.clone(), expect_ok)
            .await;
        if vu.check(0, r.status == 201) {
            self.ledger
                .confirmed(created_id(&r), user as u32, &body.lines);
            self.spent[user].fetch_add(body.amount, Ordering::Relaxed);
        } else if order_outcome_unknown(&r) {
            self.ledger.unknown(&body.lines);
            self.unknown[user].store(true, Ordering::Relaxed);
        }
    }
}

pub async fn run(ctx: &Ctx, spike: bool) -> anyhow::Result<Outcome> {
    let info = if spike { SPIKE } else { LOAD };
    let stages = if spike {
        vec![
            Stage::secs(30, 10.0),
            Stage::secs(30, 100.0),
            Stage::secs(30, 0.0),
        ]
    } else {
        vec![
            Stage::secs(60, 100.0),
            Stage::secs(120, 100.0),
            Stage::secs(60, 0.0),
        ]
    };
    let plan = ctx.plan(Plan::RampingVus { start: 0, stages })?;
    let users = ctx.users_or(500).max(1);
    let stock = ctx.stock_or(10_000_000);
    setup::require_routes(&ctx.targets, &[(Method::POST, "/points/charges")]).await?;

    let t0 = Instant::now();
    let (seller, buyers) = seller_and_buyers(ctx, users).await?;
    let mut api = Api::new(&ctx.targets);
    let mut products = Vec::new();
    for (i, price) in PRICES.iter().enumerate() {
        products.push(
            setup::create_product(
                &mut api,
                &seller,
                &format!("order-load {} #{i}", ctx.tag),
                *price,
                stock,
            )
            .await?,
        );
    }
    let b2 = Arc::new(buyers.clone());
    par_map(
        &ctx.targets,
        users,
        ctx.concurrency(),
        move |api: &mut Api, i| {
            let b = b2.clone();
            Box::pin(async move { Ok(setup::charge_points(api, &b[i], CHARGE).await?) })
        },
    )
    .await?;
    ctx.log(format!(
        "{users} users charged {CHARGE} points each; 5 products of stock {stock}"
    ));
    ctx.wait_visible(&product_paths(&products)).await?;
    let workload = Arc::new(MixedOrders {
        heads: heads_per_user(&ctx.targets, Method::POST, "/orders", &buyers, true)?,
        bodies: bodies(&products, ctx.args.seed),
        ledger: Ledger::new(products.len()),
        spent: (0..users).map(|_| AtomicU64::new(0)).collect(),
        unknown: (0..users).map(|_| AtomicBool::new(false)).collect(),
    });
    let setup = t0.elapsed();

    let measured = ctx
        .measure_one_check(workload.clone(), plan, "status is 201")
        .await?;

    // Books: stock per product, orders, balances.
    let mut books = Books::default();
    for (i, p) in products.iter().enumerate() {
        let remaining = product_stock_everywhere(ctx, &p.id).await?;
        let name = format!("product #{i} {}", p.id);
        books.agreement(&format!("stock of {name}"), &remaining);
        books.stock(
            &name,
            p.initial_stock,
            remaining.value,
            workload.ledger.sold(i),
            workload.ledger.unknown_units(i),
        );
    }
    let tokens = Arc::new(buyers.iter().map(|u| u.token.clone()).collect::<Vec<_>>());
    verify_orders(
        &ctx.targets,
        &workload.ledger,
        tokens,
        ctx.args.verify_orders,
        ctx.concurrency(),
        &mut books,
    )
    .await?;
    let checked: Vec<usize> = sample(&(0..users).collect::<Vec<_>>(), 200);
    let mut wrong = Vec::new();
    for &u in &checked {
        let balance = setup::points_balance(&mut api, &buyers[u].token).await?;
        let expected = CHARGE as i64 - workload.spent[u].load(Ordering::Relaxed) as i64;
        let unknown = workload.unknown[u].load(Ordering::Relaxed);
        if balance < 0 || (!unknown && balance != expected) || (unknown && balance > expected) {
            wrong.push(format!("user {u}: balance {balance}, expected {expected}"));
        }
    }
    books.all(
        "points balance = charged − spent",
        &wrong,
        format!("{} users checked", checked.len()),
    );

    let thresholds = evaluate(
        &[
            Threshold::Duration {
                q: 99.0,
                cmp: Cmp::Lt,
                ms: 200.0,
            },
            Threshold::Failed {
                cmp: Cmp::Lt,
                rate: 0.01,
            },
        ],
        &measured.totals,
    );
    Ok(Outcome {
        info,
        measured,
        thresholds,
        books: Some(books),
        notes: vec![],
        setup,
        params: json!({"users": users, "products": PRICES.len(), "prices": PRICES, "stock": stock, "points_per_user": CHARGE}),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_pool_matches_the_seed_shape() {
        let products: Vec<Product> = PRICES
            .iter()
            .enumerate()
            .map(|(i, &price)| Product {
                id: format!("00000000-0000-0000-0000-00000000000{i}"),
                price,
                initial_stock: 0,
            })
            .collect();
        let pool = bodies(&products, 1);
        assert_eq!(pool.len(), POOL);
        for b in &pool {
            assert!((1..=3).contains(&b.lines.len()));
            assert!(b.lines.iter().all(|&(p, q)| p < 5 && (1..=5).contains(&q)));
            let v: serde_json::Value = serde_json::from_slice(&b.bytes).expect("json");
            assert_eq!(v["items"].as_array().map(Vec::len), Some(b.lines.len()));
            assert_eq!(v["payment"]["method"], "points");
            let amount: u64 = b.lines.iter().map(|&(p, q)| PRICES[p] * u64::from(q)).sum();
            assert_eq!(b.amount, amount);
        }
        // every product and quantity occurs
        assert!((0..5).all(|p| pool.iter().any(|b| b.lines.iter().any(|l| l.0 == p))));
        assert!((1..=5).all(|q| pool.iter().any(|b| b.lines.iter().any(|l| l.1 == q))));
    }
}
