//! `e2e` (seed 004): a whole customer per iteration — sign up a new user,
//! charge points, order the popular product paying with points — on a
//! ramping arrival rate starting from 0 (the seed's iteration counts, 312
//! and ~430, pin that down). The three cases (`--case`):
//!
//! 1. 20→40→80→160→320→160 it/s, 5 s each (the seed collapsed: 36 % failed);
//! 2. 5→10→15 it/s 10 s each, then 20 it/s for 5 s;
//! 3. 6→8→10→12→14 it/s, 10 s each (the seed's stable case).
//!
//! Checks as the seed names them (`register 201`, `charge 200/201`,
//! `order 200/201`), a rate `order_success` over the iterations that
//! reached the order, and thresholds p95 < 800 ms, failed < 2 %,
//! order_success > 98 %. Sign-up is Argon2 on the server: it dominates.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Method;
use serde_json::{json, Value};

use super::common::{created_id, order_outcome_unknown, product_paths, product_stock_everywhere};
use super::{evaluate, Ctx, Info, Outcome};
use crate::books::{sample, verify_orders, Books, Ledger};
use crate::client::{ReqHead, Targets};
use crate::config::Stage;
use crate::executor::{expect_ok, Plan, Vu, Workload};
use crate::metrics::Names;
use crate::setup::{self, Api, Product, PASSWORD};
use crate::thresholds::{Cmp, Threshold};

const INFO: [Info; 3] = [
    Info {
        description: "seed 004 case 1: sign up → charge → order, arrival rate 20→40→80→160→320→160/s, 5s each",
        seed: "004",
        seed_figure: "case 1: p95 23.22s, 36.44% failed (sign-up collapsed), order_success 100%",
    },
    Info {
        description: "seed 004 case 2: sign up → charge → order, arrival rate 5→10→15/s (10s each), 20/s (5s)",
        seed: "004",
        seed_figure: "case 2: p95 1.59s, 0% failed, 312 iterations",
    },
    Info {
        description: "seed 004 case 3: sign up → charge → order, arrival rate 6→8→10→12→14/s, 10s each",
        seed: "004",
        seed_figure: "case 3: p95 82.84ms, 0% failed at 14 it/s, 429 iterations",
    },
];

pub fn case_stages(case: u8) -> Vec<Stage> {
    let rates: &[(u64, f64)] = match case {
        1 => &[
            (5, 20.0),
            (5, 40.0),
            (5, 80.0),
            (5, 160.0),
            (5, 320.0),
            (5, 160.0),
        ],
        2 => &[(10, 5.0), (10, 10.0), (10, 15.0), (5, 20.0)],
        _ => &[(10, 6.0), (10, 8.0), (10, 10.0), (10, 12.0), (10, 14.0)],
    };
    rates.iter().map(|&(d, r)| Stage::secs(d, r)).collect()
}

const CHARGE: u64 = 10_000;
const PRICE: u64 = 5_000;

const REGISTER: usize = 0;
const LOGIN: usize = 1;
const CHARGED: usize = 2;
const ORDERED: usize = 3;

/// A customer created by an iteration, for the books.
struct Customer {
    token: String,
    charged: bool,
    spent: u64,
    unknown: bool,
}

struct Journey {
    target: Arc<Targets>,
    tag: String,
    register: ReqHead,
    login: ReqHead,
    charge_body: Bytes,
    order_body: Bytes,
    ledger: Ledger,
    customers: Mutex<Vec<Customer>>,
    serial: AtomicU64,
}

impl Journey {
    fn remember(&self, c: Customer) -> u32 {
        let mut v = self.customers.lock().unwrap_or_else(|e| e.into_inner());
        v.push(c);
        (v.len() - 1) as u32
    }
}

impl Workload for Journey {
    async fn iteration(&self, vu: &mut Vu) {
        // A unique e-mail per iteration: the body must be built here.
        let n = self.serial.fetch_add(1, Ordering::Relaxed);
        let email = format!("e2e-{}-{n}@load.example.com", self.tag);
        let body =
            format!(r#"{{"email":"{email}","password":"{PASSWORD}","name":"e2e customer"}}"#);
        let r = vu.send(&self.register, Bytes::from(body), expect_ok).await;
        if !vu.check(REGISTER, r.status == 201) {
            return;
        }
        let token = match r
            .json::<Value>()
            .as_ref()
            .and_then(|v| v.get("access_token"))
            .and_then(Value::as_str)
        {
            Some(t) => t.to_string(),
            None => {
                let body = format!(r#"{{"email":"{email}","password":"{PASSWORD}"}}"#);
                let r = vu.send(&self.login, Bytes::from(body), expect_ok).await;
                let token = r
                    .json::<Value>()
                    .as_ref()
                    .and_then(|v| v.get("access_token"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                match (vu.check(LOGIN, r.status == 200), token) {
                    (true, Some(t)) => t,
                    _ => return,
                }
            }
        };
        let (Ok(charge), Ok(order)) = (
            self.target
                .head(Method::POST, "/points/charges", Some(&token), true),
            self.target
                .head(Method::POST, "/orders", Some(&token), true),
        ) else {
            return;
        };
        let r = vu.send(&charge, self.charge_body.clone(), expect_ok).await;
        let charged = vu.check(CHARGED, r.status == 200 || r.status == 201);
        if !charged {
            if r.outcome_unknown() {
                self.remember(Customer {
                    token,
                    charged: false,
                    spent: 0,
                    unknown: true,
                });
            }
            return;
        }
        let r = vu.send(&order, self.order_body.clone(), expect_ok).await;
        let ok = vu.check(ORDERED, r.status == 200 || r.status == 201);
        vu.rate(0, ok);
        let unknown = !ok && order_outcome_unknown(&r);
        let idx = self.remember(Customer {
            token,
            charged: true,
            spent: if ok { PRICE } else { 0 },
            unknown,
        });
        if ok {
            self.ledger.confirmed(created_id(&r), idx, &[(0, 1)]);
        } else if unknown {
            self.ledger.unknown(&[(0, 1)]);
        }
    }
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let case = ctx.args.case.clamp(1, 3);
    let plan = ctx.plan(Plan::RampingArrivalRate {
        start_rate: 0.0,
        stages: case_stages(case),
        pre_vus: 50,
        max_vus: 400,
    })?;
    let stock = ctx.stock_or(1_000_000);
    setup::require_routes(&ctx.targets, &[(Method::POST, "/points/charges")]).await?;

    let t0 = Instant::now();
    let mut api = Api::new(&ctx.targets);
    let seller = setup::sign_up(
        &mut api,
        &format!("e2e-seller-{}@load.example.com", ctx.tag),
        "e2e seller",
    )
    .await?;
    let product: Product = setup::create_product(
        &mut api,
        &seller,
        &format!("e2e popular {}", ctx.tag),
        PRICE,
        stock,
    )
    .await?;
    ctx.wait_visible(&product_paths(std::slice::from_ref(&product)))
        .await?;
    let order_body = json!({"items": [{"product_id": product.id, "quantity": 1}], "payment": {"method": "points"}});
    let workload = Arc::new(Journey {
        target: ctx.targets.clone(),
        tag: ctx.tag.clone(),
        register: ctx
            .targets
            .head(Method::POST, "/auth/register", None, true)?,
        login: ctx.targets.head(Method::POST, "/auth/login", None, true)?,
        charge_body: Bytes::from(json!({"amount": CHARGE}).to_string()),
        order_body: Bytes::from(order_body.to_string()),
        ledger: Ledger::new(1),
        customers: Mutex::new(Vec::new()),
        serial: AtomicU64::new(0),
    });
    let setup = t0.elapsed();

    let names = Names {
        checks: vec![
            "register 201",
            "login 200",
            "charge 200/201",
            "order 200/201",
        ],
        rates: vec!["order_success"],
    };
    let measured = ctx
        .measure(
            workload.clone(),
            plan,
            names,
            ctx.think_or(Duration::ZERO),
            ctx.timeout_or(Duration::from_secs(60)),
        )
        .await?;

    let mut books = Books::default();
    let remaining = product_stock_everywhere(ctx, &product.id).await?;
    let name = format!("product {}", product.id);
    books.agreement(&format!("stock of {name}"), &remaining);
    books.stock(
        &name,
        product.initial_stock,
        remaining.value,
        workload.ledger.sold(0),
        workload.ledger.unknown_units(0),
    );
    let customers: Vec<(String, bool, u64, bool)> = workload
        .customers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|c| (c.token.clone(), c.charged, c.spent, c.unknown))
        .collect();
    let tokens = Arc::new(customers.iter().map(|c| c.0.clone()).collect::<Vec<_>>());
    verify_orders(
        &ctx.targets,
        &workload.ledger,
        tokens,
        ctx.args.verify_orders,
        ctx.concurrency(),
        &mut books,
    )
    .await?;
    let mut wrong = Vec::new();
    let picked = sample(&(0..customers.len()).collect::<Vec<_>>(), 200);
    for &i in &picked {
        let (token, charged, spent, unknown) = &customers[i];
        let balance = setup::points_balance(&mut api, token).await?;
        let expected = if *charged {
            CHARGE as i64 - *spent as i64
        } else {
            0
        };
        let fine = if *unknown {
            balance >= 0 && balance <= CHARGE as i64
        } else {
            balance == expected
        };
        if !fine {
            wrong.push(format!(
                "customer {i}: balance {balance}, expected {expected}"
            ));
        }
    }
    books.all(
        "points balance = charged − spent",
        &wrong,
        format!("{} customers checked", picked.len()),
    );

    let thresholds = evaluate(
        &[
            Threshold::Duration {
                q: 95.0,
                cmp: Cmp::Lt,
                ms: 800.0,
            },
            Threshold::Failed {
                cmp: Cmp::Lt,
                rate: 0.02,
            },
            Threshold::Rate {
                name: "order_success",
                cmp: Cmp::Gt,
                rate: 0.98,
            },
        ],
        &measured.totals,
    );
    Ok(Outcome {
        info: INFO[usize::from(case) - 1],
        measured,
        thresholds,
        books: Some(books),
        notes: vec![],
        setup,
        params: json!({"case": case, "price": PRICE, "charge": CHARGE, "stock": product.initial_stock, "product_id": product.id}),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::arrival::RampingArrivals;

    #[test]
    fn cases_plan_the_seed_iteration_counts() {
        assert_eq!(RampingArrivals::planned(0.0, &case_stages(1)), 3500);
        assert_eq!(RampingArrivals::planned(0.0, &case_stages(2)), 312);
        assert_eq!(RampingArrivals::planned(0.0, &case_stages(3)), 430);
    }
}
