//! `auth-stress` (seed 001): token verification under load — ramping VUs
//! 1→100 in 30 s, hold 30 s; `GET /auth/users/me` with a bearer token.
//! Threshold: p95 < 1000 ms. Read-only: no books.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Method;
use serde_json::json;

use super::{evaluate, Ctx, Info, Outcome};
use crate::client::ReqHead;
use crate::config::Stage;
use crate::executor::{expect_ok, Plan, Vu, Workload};
use crate::metrics::Names;
use crate::setup::{self, Api};
use crate::thresholds::{Cmp, Threshold};

pub const INFO: Info = Info {
    description: "seed 001: GET /auth/users/me with a bearer token, ramping VUs 1→100, hold",
    seed: "001",
    seed_figure: "11,337 req/s, p95 20ms (Kong JWT + cache)",
};

struct Me {
    heads: Vec<ReqHead>,
}

impl Workload for Me {
    async fn iteration(&self, vu: &mut Vu) {
        let head = &self.heads[vu.id as usize % self.heads.len()];
        let r = vu.send(head, Bytes::new(), expect_ok).await;
        vu.check(0, r.status == 200);
    }
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let plan = ctx.plan(Plan::RampingVus {
        start: 1,
        stages: vec![Stage::secs(30, 100.0), Stage::secs(30, 100.0)],
    })?;
    let users = ctx.users_or(1).max(1);

    let t0 = Instant::now();
    let signed = if users == 1 {
        vec![
            setup::sign_up(
                &mut Api::new(&ctx.targets),
                &format!("me-{}@load.example.com", ctx.tag),
                "token holder",
            )
            .await?,
        ]
    } else {
        setup::sign_up_many(
            &ctx.targets,
            users,
            "me",
            &ctx.tag,
            ctx.concurrency(),
            ctx.quiet(),
        )
        .await?
    };
    let heads = signed
        .iter()
        .map(|u| {
            ctx.targets
                .head(Method::GET, "/auth/users/me", Some(&u.token), false)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let setup = t0.elapsed();

    let names = Names {
        checks: vec!["status is 200"],
        rates: vec![],
    };
    let measured = ctx
        .measure(
            Arc::new(Me { heads }),
            plan,
            names,
            ctx.think_or(Duration::ZERO),
            ctx.timeout_or(Duration::from_secs(60)),
        )
        .await?;
    let thresholds = evaluate(
        &[Threshold::Duration {
            q: 95.0,
            cmp: Cmp::Lt,
            ms: 1000.0,
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
        params: json!({"users": users}),
    })
}
