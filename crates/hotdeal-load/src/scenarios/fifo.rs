//! `fifo`: first come, first served. A deal of 10 units (`--stock`), 20
//! users (`--users`), each ordering one unit once, started strictly in user
//! order (per-vu-iterations, ordered: user *i*'s request is written only
//! after user *i−1*'s was, plus `--gap`). The verdict: users 1..10 win
//! (201) and users 11..20 get 400 `INSUFFICIENT_STOCK`. Books: the deal's
//! remaining + sold = its stock, the product gave exactly the deal's stock
//! to it, every 201 order is retrievable.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Method;
use serde_json::json;

use super::common::{
    created_id, deal_state_everywhere, heads_per_user, order_outcome_unknown,
    product_stock_everywhere, shipping_address,
};
use super::{Ctx, Info, Outcome};
use crate::books::{verify_orders, Books, Ledger};
use crate::client::ReqHead;
use crate::executor::{Plan, Vu, Workload};
use crate::setup::{self, Api};
use crate::thresholds::ThresholdResult;

pub const INFO: Info = Info {
    description: "first come, first served: users in order, one unit each, on a deal of 10 units",
    seed: "000/001",
    seed_figure: "— (a correctness scenario: the first N users win)",
};

fn expected(status: u16, code: Option<&str>) -> bool {
    status == 201 || (status == 400 && code == Some("INSUFFICIENT_STOCK"))
}

struct InOrder {
    heads: Vec<ReqHead>,
    body: Bytes,
    ledger: Ledger,
    /// Per user: the answer (`201`, `400 INSUFFICIENT_STOCK`, `timeout`…).
    answers: Mutex<Vec<Option<String>>>,
}

impl Workload for InOrder {
    async fn iteration(&self, vu: &mut Vu) {
        let user = vu.id as usize % self.heads.len();
        let r = vu
            .send(&self.heads[user], self.body.clone(), expected)
            .await;
        vu.check(0, expected(r.status, r.error_code()));
        let label = match (r.status, r.error_code()) {
            (0, _) => format!("{:?}", r.outcome).to_lowercase(),
            (s, Some(code)) => format!("{s} {code}"),
            (s, None) => s.to_string(),
        };
        if r.status == 201 {
            self.ledger
                .confirmed(created_id(&r), user as u32, &[(0, 1)]);
        } else if order_outcome_unknown(&r) {
            self.ledger.unknown(&[(0, 1)]);
        }
        if let Some(slot) = self
            .answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(user)
        {
            *slot = Some(label);
        }
    }
}

/// The verdict: the first `stock` users won, the rest were told the stock
/// ran out. Users are numbered from 1 as in the scenario table.
pub fn verdict(answers: &[Option<String>], stock: usize) -> ThresholdResult {
    let winners: Vec<usize> = answers
        .iter()
        .enumerate()
        .filter(|(_, a)| a.as_deref() == Some("201"))
        .map(|(i, _)| i + 1)
        .collect();
    let losers_ok = answers
        .iter()
        .skip(stock)
        .all(|a| a.as_deref() == Some("400 INSUFFICIENT_STOCK"));
    let expected_winners: Vec<usize> = (1..=stock.min(answers.len())).collect();
    let pass = winners == expected_winners && losers_ok;
    let mut actual = format!("winners {}", ranges(&winners));
    if !losers_ok {
        let odd: Vec<String> = answers
            .iter()
            .enumerate()
            .skip(stock)
            .filter(|(_, a)| a.as_deref() != Some("400 INSUFFICIENT_STOCK"))
            .map(|(i, a)| format!("{}: {}", i + 1, a.as_deref().unwrap_or("no answer")))
            .collect();
        actual.push_str(&format!("; late users not refused: {}", odd.join(", ")));
    }
    let n = answers.len();
    let expr = if stock < n {
        format!(
            "users 1..{stock} win, {}..{n} get INSUFFICIENT_STOCK",
            stock + 1
        )
    } else {
        format!("users 1..{n} win")
    };
    ThresholdResult {
        metric: "fifo".into(),
        expr,
        actual,
        pass,
    }
}

/// `1..10, 12` from a sorted list.
fn ranges(xs: &[usize]) -> String {
    if xs.is_empty() {
        return "none".into();
    }
    let mut parts = Vec::new();
    let mut start = xs[0];
    let mut prev = xs[0];
    for &x in &xs[1..] {
        if x != prev + 1 {
            parts.push(if start == prev {
                start.to_string()
            } else {
                format!("{start}..{prev}")
            });
            start = x;
        }
        prev = x;
    }
    parts.push(if start == prev {
        start.to_string()
    } else {
        format!("{start}..{prev}")
    });
    parts.join(", ")
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let users = ctx
        .args
        .users
        .or(ctx.args.vus.map(|v| v as usize))
        .unwrap_or(20)
        .max(1);
    let plan = ctx.plan(Plan::PerVuIterations {
        vus: users as u32,
        iterations: 1,
        ordered_gap: Some(ctx.args.gap),
        max_duration: Duration::from_secs(60),
    })?;
    let stock = ctx.stock_or(10);

    let t0 = Instant::now();
    let mut api = Api::new(&ctx.targets);
    let seller = setup::sign_up(
        &mut api,
        &format!("fifo-seller-{}@load.example.com", ctx.tag),
        "fifo seller",
    )
    .await?;
    let buyers = setup::sign_up_many(
        &ctx.targets,
        users,
        "fifo",
        &ctx.tag,
        ctx.concurrency(),
        ctx.quiet(),
    )
    .await?;
    let product = setup::create_product(
        &mut api,
        &seller,
        &format!("fifo {}", ctx.tag),
        10_000,
        stock,
    )
    .await?;
    let deal = setup::create_deal(&mut api, &seller, &product, 5_000, stock, Some(1)).await?;
    let product_after_deal = setup::product_stock(&mut api, &product.id).await?;
    let body = json!({
        "items": [{"product_id": product.id, "deal_id": deal.id, "quantity": 1}],
        "shipping_address": shipping_address(),
    });
    ctx.wait_visible(&[
        format!("/products/{}", product.id),
        format!("/products/deals/{}", deal.id),
    ])
    .await?;
    let workload = Arc::new(InOrder {
        heads: heads_per_user(&ctx.targets, Method::POST, "/orders", &buyers, true)?,
        body: Bytes::from(body.to_string()),
        ledger: Ledger::new(1),
        answers: Mutex::new(vec![None; users]),
    });
    let setup = t0.elapsed();

    let measured = ctx
        .measure_one_check(workload.clone(), plan, "201 or INSUFFICIENT_STOCK")
        .await?;

    let answers = workload
        .answers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut books = Books::default();
    let state = deal_state_everywhere(ctx, &deal.id).await?;
    books.agreement(&format!("deal {} stock", deal.id), &state);
    let (deal_stock, remaining) = state.value;
    books.stock(
        &format!("deal {}", deal.id),
        deal_stock,
        remaining,
        workload.ledger.sold(0),
        workload.ledger.unknown_units(0),
    );
    books.push(
        "deal stock set aside from the product",
        product_after_deal == product.initial_stock - deal.deal_stock,
        format!(
            "product stock {} before the deal, {product_after_deal} after opening a deal of {}",
            product.initial_stock, deal.deal_stock
        ),
    );
    let product_now = product_stock_everywhere(ctx, &product.id).await?;
    books.agreement(&format!("stock of product {}", product.id), &product_now);
    let product_now = product_now.value;
    books.push(
        "product stock untouched by deal orders",
        product_now == product_after_deal,
        format!("product stock {product_now} after the run, {product_after_deal} before"),
    );
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

    let notes = answers
        .iter()
        .enumerate()
        .map(|(i, a)| format!("user {:>2}: {}", i + 1, a.as_deref().unwrap_or("no answer")))
        .collect();
    let thresholds = vec![verdict(&answers, stock as usize)];
    Ok(Outcome {
        info: INFO,
        measured,
        thresholds,
        books: Some(books),
        notes,
        setup,
        params: json!({"users": users, "stock": stock, "deal_id": deal.id, "product_id": product.id, "gap_ms": ctx.args.gap.as_secs_f64() * 1000.0}),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(winners: &[usize], n: usize) -> Vec<Option<String>> {
        (1..=n)
            .map(|u| {
                Some(if winners.contains(&u) {
                    "201".to_string()
                } else {
                    "400 INSUFFICIENT_STOCK".to_string()
                })
            })
            .collect()
    }

    #[test]
    fn the_first_users_must_win() {
        let ok = verdict(&answers(&(1..=10).collect::<Vec<_>>(), 20), 10);
        assert!(ok.pass, "{ok:?}");
        assert_eq!(ok.expr, "users 1..10 win, 11..20 get INSUFFICIENT_STOCK");
        assert_eq!(ok.actual, "winners 1..10");

        let mut w: Vec<usize> = (1..=9).collect();
        w.push(12);
        let bad = verdict(&answers(&w, 20), 10);
        assert!(!bad.pass);
        assert!(bad.actual.starts_with("winners 1..9, 12"), "{}", bad.actual);

        let mut a = answers(&(1..=10).collect::<Vec<_>>(), 20);
        a[15] = Some("503 OVERLOADED".into());
        let bad = verdict(&a, 10);
        assert!(!bad.pass);
        assert!(bad.actual.contains("16: 503 OVERLOADED"));
    }

    #[test]
    fn ranges_are_compact() {
        assert_eq!(ranges(&[1, 2, 3, 5, 7, 8]), "1..3, 5, 7..8");
        assert_eq!(ranges(&[]), "none");
    }
}
