//! `health`: calibration of the generator itself — constant VUs on
//! `GET /health`, the cheapest route, so the figure is bounded by the
//! generator and the HTTP stack rather than by business logic. Compared
//! with wrk on the same route by bench/calibrate.sh.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Method;
use serde_json::json;

use super::{evaluate, Ctx, Info, Outcome};
use crate::client::ReqHead;
use crate::executor::{expect_ok, Plan, Vu, Workload};
use crate::metrics::Names;
use crate::thresholds::{Cmp, Threshold};

pub const INFO: Info = Info {
    description: "calibration: GET /health with constant VUs",
    seed: "—",
    seed_figure: "none (compare with wrk on the same route: bench/calibrate.sh)",
};

struct Health {
    head: ReqHead,
}

impl Workload for Health {
    async fn iteration(&self, vu: &mut Vu) {
        let r = vu.send(&self.head, Bytes::new(), expect_ok).await;
        vu.check(0, r.status == 200);
    }
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let plan = ctx.plan(Plan::ConstantVus {
        vus: 100,
        duration: Duration::from_secs(10),
    })?;
    let t0 = Instant::now();
    let workload = Arc::new(Health {
        head: ctx.targets.head(Method::GET, "/health", None, false)?,
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
        &[Threshold::Failed {
            cmp: Cmp::Lt,
            rate: 0.01,
        }],
        &measured.totals,
    );
    Ok(Outcome {
        info: INFO,
        measured,
        thresholds,
        books: None,
        notes: vec![],
        setup,
        params: json!({}),
    })
}
