//! `coupon-rush` (seed 003): first-come coupons — constant VUs (100, 1000
//! or 2000 with `--vus`) for 5 minutes (`--duration`), one coupon, a
//! distinct user per VU, each VU calling `POST /coupons/{id}/issue` in a
//! loop like the seed's nGrinder script. After a user's first answer every
//! call is a duplicate, so the run mostly measures the dedup path.
//!
//! Expected answers are 201 and 409 `COUPON_ALREADY_ISSUED` /
//! `COUPON_SOLD_OUT`; anything else is an error, and the threshold is zero
//! errors. Books: issued ≤ quantity, issued = 201s seen, one per user —
//! also read back per user from `GET /users/me/coupons` for a sample.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Method;
use serde_json::{json, Value};

use super::common::heads_per_user;
use super::{evaluate, Ctx, Info, Outcome};
use crate::books::{sample, Books};
use crate::client::ReqHead;
use crate::executor::{Plan, Vu, Workload};
use crate::setup::{self, Api};
use crate::thresholds::{Cmp, Threshold};

pub const INFO: Info = Info {
    description: "seed 003: POST /coupons/{id}/issue, one coupon, a distinct user per VU, constant VUs for 5 min",
    seed: "003",
    seed_figure: "5,166 TPS at 100 vusers, 18.99ms (3 instances); 4,148 TPS, 239.83ms at 1000 (lock + async Kafka); 0 errors",
};

fn expected(status: u16, code: Option<&str>) -> bool {
    status == 201
        || (status == 409 && matches!(code, Some("COUPON_ALREADY_ISSUED" | "COUPON_SOLD_OUT")))
}

struct Issue {
    heads: Vec<ReqHead>,
    issued: Vec<AtomicU32>,
    /// Users who got any answer: with more of them than coupons, the
    /// coupon must end sold out.
    answered: Vec<AtomicBool>,
    unknown: AtomicU64,
}

impl Workload for Issue {
    async fn iteration(&self, vu: &mut Vu) {
        let user = vu.id as usize % self.heads.len();
        let r = vu.send(&self.heads[user], Bytes::new(), expected).await;
        vu.check(0, expected(r.status, r.error_code()));
        if r.status != 0 {
            self.answered[user].store(true, Ordering::Relaxed);
        }
        if r.status == 201 {
            self.issued[user].fetch_add(1, Ordering::Relaxed);
        } else if r.outcome_unknown() || r.status >= 500 && r.status != 503 {
            self.unknown.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let plan = ctx.plan(Plan::ConstantVus {
        vus: 100,
        duration: Duration::from_secs(300),
    })?;
    let users = ctx.users_or(plan.max_vus() as usize).max(1);
    let quantity = ctx.args.quantity.unwrap_or((users as u64 / 2).max(1));
    setup::require_routes(&ctx.targets, &[(Method::POST, "/coupons")]).await?;

    let t0 = Instant::now();
    let mut api = Api::new(&ctx.targets);
    let owner = setup::sign_up(
        &mut api,
        &format!("coupon-owner-{}@load.example.com", ctx.tag),
        "coupon owner",
    )
    .await?;
    let coupon = setup::create_coupon(&mut api, &owner, quantity).await?;
    let buyers = setup::sign_up_many(
        &ctx.targets,
        users,
        "coupon",
        &ctx.tag,
        ctx.concurrency(),
        ctx.quiet(),
    )
    .await?;
    let workload = Arc::new(Issue {
        heads: heads_per_user(
            &ctx.targets,
            Method::POST,
            &format!("/coupons/{coupon}/issue"),
            &buyers,
            false,
        )?,
        issued: (0..users).map(|_| AtomicU32::new(0)).collect(),
        answered: (0..users).map(|_| AtomicBool::new(false)).collect(),
        unknown: AtomicU64::new(0),
    });
    ctx.wait_visible(&[format!("/coupons/{coupon}")]).await?;
    let setup = t0.elapsed();

    let measured = ctx
        .measure_one_check(workload.clone(), plan, "201 or expected 409")
        .await?;

    let mut books = Books::default();
    let id = coupon.clone();
    let state = ctx
        .read_everywhere(move |api: &mut Api| {
            let id = id.clone();
            Box::pin(async move { setup::coupon_state(api, &id).await })
        })
        .await?;
    books.agreement(&format!("coupon {coupon} counts"), &state);
    let (total, issued, remaining) = state.value;
    let seen: u64 = workload
        .issued
        .iter()
        .map(|c| u64::from(c.load(Ordering::Relaxed)))
        .sum();
    let doubles = workload
        .issued
        .iter()
        .filter(|c| c.load(Ordering::Relaxed) > 1)
        .count() as u64;
    let unknown = workload.unknown.load(Ordering::Relaxed);
    books.coupon(total, issued, remaining, seen, unknown, doubles);
    let answered = workload
        .answered
        .iter()
        .filter(|a| a.load(Ordering::Relaxed))
        .count() as u64;
    books.coupon_sold_out(total, issued, answered, unknown);
    let mut wrong = Vec::new();
    let checked = sample(
        &(0..users).collect::<Vec<_>>(),
        ctx.args.verify_orders.min(500),
    );
    for &u in &checked {
        let reply = api
            .expect(
                Method::GET,
                "/users/me/coupons",
                "/users/me/coupons",
                Some(&buyers[u].token),
                None,
                &[200],
            )
            .await?;
        let held = reply
            .json::<Value>()
            .map_or(0, |v| count_coupon(&v, &coupon));
        let ours = workload.issued[u].load(Ordering::Relaxed) as usize;
        if held > 1 || (held != ours.min(1) && workload.unknown.load(Ordering::Relaxed) == 0) {
            wrong.push(format!(
                "user {u} holds {held}, was answered 201 {ours} times"
            ));
        }
    }
    books.all(
        "coupons held per user (GET /users/me/coupons)",
        &wrong,
        format!("{} users checked", checked.len()),
    );

    let thresholds = evaluate(
        &[Threshold::Failed {
            cmp: Cmp::Eq,
            rate: 0.0,
        }],
        &measured.totals,
    );
    Ok(Outcome {
        info: INFO,
        measured,
        thresholds,
        books: Some(books),
        notes: vec![format!(
            "coupon {coupon}: {issued} issued of {total}; unexpected answers count as errors"
        )],
        setup,
        params: json!({"users": users, "quantity": quantity, "coupon_id": coupon}),
    })
}

/// Coupons of `coupon_id` in a `GET /users/me/coupons` answer (a list, or
/// a page `{items: [...]}`).
fn count_coupon(v: &Value, coupon_id: &str) -> usize {
    let items = v.get("items").unwrap_or(v);
    items.as_array().map_or(0, |a| {
        a.iter()
            .filter(|c| c.get("coupon_id").and_then(Value::as_str) == Some(coupon_id))
            .count()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_answers() {
        assert!(expected(201, None));
        assert!(expected(409, Some("COUPON_ALREADY_ISSUED")));
        assert!(expected(409, Some("COUPON_SOLD_OUT")));
        assert!(!expected(409, Some("REQUEST_IN_PROGRESS")));
        assert!(!expected(503, Some("OVERLOADED")));
        assert!(!expected(400, Some("COUPON_NOT_ACTIVE")));
    }

    #[test]
    fn coupons_in_list_or_page() {
        let list = json!([{"coupon_id": "a"}, {"coupon_id": "b"}]);
        assert_eq!(count_coupon(&list, "a"), 1);
        let page = json!({"items": [{"coupon_id": "a"}, {"coupon_id": "a"}], "total": 2});
        assert_eq!(count_coupon(&page, "a"), 2);
        assert_eq!(count_coupon(&json!({}), "a"), 0);
    }
}
