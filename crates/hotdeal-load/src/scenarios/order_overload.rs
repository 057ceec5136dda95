//! `order-overload` (seeds 000/001): far past saturation — ramping VUs
//! 10→500 in 10 s, hold 30 s, →0 in 5 s; 100 users; stock 10,000,000; no
//! think time; 5 s timeout. Report only: no thresholds, but the books must
//! still balance (overload must be refused, never half-done).

use std::time::Duration;

use super::order_stress::{run_single_product, SingleProduct};
use super::{Ctx, Info, Outcome};
use crate::config::Stage;

pub const INFO: Info = Info {
    description: "seeds 000/001: POST /orders with no think time, ramping VUs 10→500→0, 5s timeout (report only)",
    seed: "000/001",
    seed_figure: "2,668 req/s, p95 162ms (async Redis queue, 500 VUs)",
};

pub async fn run(ctx: &Ctx) -> anyhow::Result<Outcome> {
    run_single_product(
        ctx,
        SingleProduct {
            info: INFO,
            name: "order-overload",
            start: 10,
            stages: vec![
                Stage::secs(10, 500.0),
                Stage::secs(30, 500.0),
                Stage::secs(5, 0.0),
            ],
            users: 100,
            stock: 10_000_000,
            think: Duration::ZERO,
            timeout: Duration::from_secs(5),
            thresholds: &[],
            notes: vec![
                "report only: overload figures have no thresholds; the books still must balance"
                    .into(),
            ],
        },
    )
    .await
}
