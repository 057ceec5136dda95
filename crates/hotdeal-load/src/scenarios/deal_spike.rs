//! `deal-spike` (seed 001): the deal page at opening time — ramping VUs
//! 1→100 in 30 s, hold 30 s, →0 in 10 s; one signed-in user lists the
//! running deals (`GET /products/deals` with the bearer token); 20 deals
//! are active. Thresholds: p95 < 1000 ms, errors < 5 %. Read-only: no books.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Method;
use serde_json::{json, Value};

use super::{evaluate, Ctx, Info, Outcome};
use crate::client::ReqHead;
use crate::config::Stage;
use crate::executor::{expect_ok, Plan, Vu, Workload};
use crate::metrics::Names;
use crate::setup::{self, Api};
use crate::thresholds::{Cmp, Threshold};

pub const INFO: Info = Info {
    description: "seed 001: GET /products/deals signed in, ramping VUs 1→100→0, 20 active deals",
    seed: "001",
    seed_figure: "982 req/s, p95 129ms, avg 23ms, 0% errors (Kong, 100 VUs)",
};

struct ListDeals {
    head: ReqHead,
}

impl Workload for ListDeals {
    async fn iteration(&self, vu: &mut Vu) {
        let r = vu.send(&self.head, Bytes::new(), expect_ok).await;
        vu.check(0, r.status == 200);
    }
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let plan = ctx.plan(Plan::RampingVus {
        start: 1,
        stages: vec![
            Stage::secs(30, 100.0),
            Stage::secs(30, 100.0),
            Stage::secs(10, 0.0),
        ],
    })?;
    let deals = ctx.args.quantity.unwrap_or(20).max(1) as usize;

    let t0 = Instant::now();
    let mut api = Api::new(&ctx.targets);
    let user = setup::sign_up(
        &mut api,
        &format!("deals-{}@load.example.com", ctx.tag),
        "deal watcher",
    )
    .await?;
    let mut seeded = Vec::with_capacity(deals);
    for i in 0..deals {
        let product = setup::create_product(
            &mut api,
            &user,
            &format!("deal-spike {} #{i}", ctx.tag),
            20_000,
            1_000,
        )
        .await?;
        let deal = setup::create_deal(&mut api, &user, &product, 9_900, 100, Some(2)).await?;
        seeded.push(format!("/products/deals/{}", deal.id));
    }
    ctx.wait_visible(&seeded).await?;
    let listed = api
        .call(Method::GET, "/products/deals", Some(&user.token), None)
        .await?
        .json::<Value>()
        .and_then(|v| v.get("total").and_then(Value::as_u64))
        .unwrap_or(0);
    ctx.log(format!(
        "{deals} deals opened; GET /products/deals reports {listed} running"
    ));
    let workload = Arc::new(ListDeals {
        head: ctx
            .targets
            .head(Method::GET, "/products/deals", Some(&user.token), false)?,
    });
    let setup = t0.elapsed();

    let names = Names {
        checks: vec!["status is 200"],
        rates: vec![],
    };
    let measured = ctx
        .measure(
            workload,
            plan,
            names,
            ctx.think_or(Duration::ZERO),
            ctx.timeout_or(Duration::from_secs(60)),
        )
        .await?;
    let thresholds = evaluate(
        &[
            Threshold::Duration {
                q: 95.0,
                cmp: Cmp::Lt,
                ms: 1000.0,
            },
            Threshold::Failed {
                cmp: Cmp::Lt,
                rate: 0.05,
            },
        ],
        &measured.totals,
    );
    let mut notes = vec![];
    if (listed as usize) < deals {
        notes.push(format!(
            "warning: only {listed} running deals listed after opening {deals}"
        ));
    }
    Ok(Outcome {
        info: INFO,
        measured,
        thresholds,
        books: None,
        notes,
        setup,
        params: json!({"deals": deals, "listed": listed}),
    })
}
