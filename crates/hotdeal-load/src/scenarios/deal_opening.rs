//! `deal-opening`: a deal behind a waiting room opens. `--users` (default
//! 20,000) users, a fifth of them joining in the last three seconds before
//! the opening and the rest arriving evenly over `--spread` (default 10 s)
//! after it; each polls `GET /queue/{token}` as the answers ask
//! (`poll_after_ms`), and orders one unit with its `Queue-Token` once
//! admitted. The deal has `--stock` units (default 1,000) and admits
//! `--admit-rate` users per second (default 1,000; 0 = the server's
//! default).
//!
//! The users share a pool of `--vus` connections (default 256): each VU
//! takes the next user whose step is due, so 20,000 users need no 20,000
//! sockets. The run ends when every user has ordered (or given up).
//!
//! It reports time to admission (from sending the join to the first answer
//! saying `admitted`; early joiners separately), fairness (Kendall's tau-b
//! between the join order of the users who arrived after the opening and
//! their admission order, read from `admitted_until`), the load on the
//! queue routes (requests/s, p50/p99), and the books: every admitted user
//! who orders gets 201 or a clean `INSUFFICIENT_STOCK`, no 5xx, and the
//! deal's units add up.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use hyper::Method;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::common::{created_id, deal_state_everywhere, order_outcome_unknown, shipping_address};
use super::{Ctx, Info, Outcome};
use crate::books::{verify_orders, Books, Ledger};
use crate::client::{Reply, ReqHead, Targets};
use crate::executor::{Plan, Vu, Workload};
use crate::setup::{self, Api, SetupError};
use crate::thresholds::ThresholdResult;
use crate::time::{parse_rfc3339_micros, rfc3339, unix_now_micros};

pub const INFO: Info = Info {
    description:
        "a waiting-room deal opens: users join before and after, poll, order when admitted",
    seed: "—",
    seed_figure: "— (fair admission: post-opening arrivals admitted in join order)",
};

/// Fraction of the users who join before the opening.
const EARLY_SHARE: f64 = 0.2;
/// Early joins happen in this window before the opening.
const EARLY_WINDOW: Duration = Duration::from_millis(2_900);
/// Setup time between creating the deal and its opening.
const LEAD: Duration = Duration::from_secs(5);

/// Where a user is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Join,
    Poll,
    Order,
    Done,
}

#[derive(Debug, Clone)]
struct UserRun {
    step: Step,
    early: bool,
    queue_token: Option<String>,
    join_sent: Option<Instant>,
    join_done: Option<Instant>,
    admitted_seen: Option<Instant>,
    /// Server time of admission order (µs): `admitted_until` orders it.
    admitted_until_us: Option<i64>,
    /// How the user ended: `201`, `400 INSUFFICIENT_STOCK`, …
    ended: Option<String>,
}

struct Schedule {
    due: BinaryHeap<Reverse<(Instant, u32)>>,
    users: Vec<UserRun>,
    in_flight: u32,
}

#[derive(Default)]
struct Counts {
    queue_requests: AtomicU64,
    rate_limited: AtomicU64,
    expired: AtomicU64,
    retried: AtomicU64,
    server_errors: AtomicU64,
    unexpected: AtomicU64,
}

struct Opening {
    target: Arc<Targets>,
    join_heads: Vec<ReqHead>,
    bearer: Vec<String>,
    order_body: Bytes,
    schedule: Mutex<Schedule>,
    /// Latency of the queue routes (µs).
    queue_latency: Mutex<Histogram<u64>>,
    counts: Counts,
    ledger: Ledger,
}

#[derive(serde::Deserialize)]
struct QueueBody {
    token: String,
    status: String,
    poll_after_ms: u64,
    admitted_until: Option<String>,
}

fn expected(status: u16, code: Option<&str>) -> bool {
    status == 200 || status == 201 || (status == 400 && code == Some("INSUFFICIENT_STOCK"))
}

impl Opening {
    fn lock(&self) -> std::sync::MutexGuard<'_, Schedule> {
        self.schedule.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends `user`'s current step: the next one due at `at` (or done).
    fn next(&self, user: u32, step: Step, at: Instant) {
        let mut s = self.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
        if let Some(u) = s.users.get_mut(user as usize) {
            u.step = step;
        }
        if step != Step::Done {
            s.due.push(Reverse((at, user)));
        }
    }

    fn done(&self, user: u32, how: String) {
        {
            let mut s = self.lock();
            if let Some(u) = s.users.get_mut(user as usize) {
                u.ended = Some(how);
            }
        }
        self.next(user, Step::Done, Instant::now());
    }

    fn record_queue(&self, r: &Reply) {
        self.counts.queue_requests.fetch_add(1, Ordering::Relaxed);
        let us = r.latency.as_micros().max(1) as u64;
        let _ = self
            .queue_latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(us.min(60_000_000));
    }

    /// A join or poll answer: what the user does next.
    fn on_queue_answer(&self, user: u32, r: &Reply) {
        self.record_queue(r);
        let now = Instant::now();
        match (r.status, r.error_code()) {
            (200, _) => {
                let Some(body) = r.json::<QueueBody>() else {
                    self.counts.unexpected.fetch_add(1, Ordering::Relaxed);
                    return self.done(user, "unreadable queue answer".into());
                };
                let wait = Duration::from_millis(body.poll_after_ms);
                match body.status.as_str() {
                    "admitted" => {
                        {
                            let mut s = self.lock();
                            if let Some(u) = s.users.get_mut(user as usize) {
                                u.queue_token = Some(body.token);
                                u.admitted_seen.get_or_insert(r.done);
                                u.admitted_until_us = body
                                    .admitted_until
                                    .as_deref()
                                    .and_then(parse_rfc3339_micros);
                            }
                        }
                        self.next(user, Step::Order, now);
                    }
                    "waiting" => {
                        {
                            let mut s = self.lock();
                            if let Some(u) = s.users.get_mut(user as usize) {
                                u.queue_token = Some(body.token);
                            }
                        }
                        self.next(user, Step::Poll, now + wait);
                    }
                    _ => {
                        self.counts.expired.fetch_add(1, Ordering::Relaxed);
                        self.done(user, "token expired before ordering".into());
                    }
                }
            }
            (429, _) => {
                self.counts.rate_limited.fetch_add(1, Ordering::Relaxed);
                let ms = r
                    .json::<Value>()
                    .and_then(|v| v["details"]["retry_after_ms"].as_u64())
                    .unwrap_or(1000);
                self.next(user, Step::Poll, now + Duration::from_millis(ms));
            }
            (503, _) | (0, _) => {
                if r.status == 0 {
                    self.counts.server_errors.fetch_add(1, Ordering::Relaxed);
                }
                self.counts.retried.fetch_add(1, Ordering::Relaxed);
                let step = self.step_of(user);
                self.next(user, step, now + Duration::from_secs(1));
            }
            (s, code) => {
                if s >= 500 {
                    self.counts.server_errors.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.counts.unexpected.fetch_add(1, Ordering::Relaxed);
                }
                self.done(user, format!("queue {s} {}", code.unwrap_or("")));
            }
        }
    }

    fn step_of(&self, user: u32) -> Step {
        self.lock()
            .users
            .get(user as usize)
            .map_or(Step::Done, |u| u.step)
    }

    fn on_order_answer(&self, user: u32, r: &Reply) {
        match (r.status, r.error_code()) {
            (201, _) => {
                self.ledger.confirmed(created_id(r), user, &[(0, 1)]);
                self.done(user, "201".into());
            }
            (400, Some("INSUFFICIENT_STOCK")) => {
                self.done(user, "400 INSUFFICIENT_STOCK".into());
            }
            (503, _) => {
                self.counts.retried.fetch_add(1, Ordering::Relaxed);
                self.next(user, Step::Order, Instant::now() + Duration::from_secs(1));
            }
            (s, code) => {
                if order_outcome_unknown(r) {
                    self.ledger.unknown(&[(0, 1)]);
                }
                if s >= 500 || s == 0 {
                    self.counts.server_errors.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.counts.unexpected.fetch_add(1, Ordering::Relaxed);
                }
                self.done(user, format!("order {s} {}", code.unwrap_or("")));
            }
        }
    }

    /// Takes the next due user, or tells how long to wait; `None` when
    /// every user is done.
    fn take(&self) -> Option<Result<(u32, Step), Duration>> {
        let mut s = self.lock();
        let now = Instant::now();
        match s.due.peek() {
            Some(&Reverse((at, user))) if at <= now => {
                s.due.pop();
                s.in_flight += 1;
                let step = s.users.get(user as usize).map_or(Step::Done, |u| u.step);
                if step == Step::Join {
                    if let Some(u) = s.users.get_mut(user as usize) {
                        u.join_sent = Some(now);
                    }
                }
                Some(Ok((user, step)))
            }
            Some(&Reverse((at, _))) => Some(Err((at - now).min(Duration::from_millis(20)))),
            None if s.in_flight > 0 => Some(Err(Duration::from_millis(5))),
            None => None,
        }
    }
}

impl Workload for Opening {
    async fn iteration(&self, vu: &mut Vu) {
        while let Some(next) = self.take() {
            let (user, step) = match next {
                Ok(x) => x,
                Err(wait) => {
                    tokio::time::sleep(wait).await;
                    continue;
                }
            };
            let i = user as usize;
            match step {
                Step::Join => {
                    let r = vu.send(&self.join_heads[i], Bytes::new(), expected).await;
                    if r.status == 200 {
                        let mut s = self.lock();
                        if let Some(u) = s.users.get_mut(i) {
                            u.join_done = Some(r.done);
                        }
                    }
                    self.on_queue_answer(user, &r);
                }
                Step::Poll => {
                    let token = self.lock().users[i].queue_token.clone().unwrap_or_default();
                    let head = match self.target.head(
                        Method::GET,
                        &format!("/queue/{token}"),
                        Some(&self.bearer[i]),
                        false,
                    ) {
                        Ok(h) => h,
                        Err(e) => {
                            self.done(user, format!("bad poll request: {e}"));
                            continue;
                        }
                    };
                    let r = vu.send(&head, Bytes::new(), expected).await;
                    self.on_queue_answer(user, &r);
                }
                Step::Order => {
                    let token = self.lock().users[i].queue_token.clone().unwrap_or_default();
                    let head = self
                        .target
                        .head(Method::POST, "/orders", Some(&self.bearer[i]), true)
                        .and_then(|h| h.with_header("queue-token", &token));
                    let head = match head {
                        Ok(h) => h,
                        Err(e) => {
                            self.done(user, format!("bad order request: {e}"));
                            continue;
                        }
                    };
                    let r = vu.send(&head, self.order_body.clone(), expected).await;
                    vu.check(0, expected(r.status, r.error_code()));
                    self.on_order_answer(user, &r);
                }
                Step::Done => self.next(user, Step::Done, Instant::now()),
            }
        }
    }
}

/// Kendall's tau-b of paired observations (ties allowed); 1 when the two
/// orders agree, -1 when reversed. O(n²): fine for tens of thousands.
pub fn kendall_tau_b(pairs: &[(i64, i64)]) -> f64 {
    let (mut concordant, mut discordant, mut ties_x, mut ties_y) = (0i64, 0i64, 0i64, 0i64);
    for (i, a) in pairs.iter().enumerate() {
        for b in &pairs[i + 1..] {
            let dx = (a.0 - b.0).signum();
            let dy = (a.1 - b.1).signum();
            match (dx, dy) {
                (0, 0) => {}
                (0, _) => ties_x += 1,
                (_, 0) => ties_y += 1,
                _ if dx == dy => concordant += 1,
                _ => discordant += 1,
            }
        }
    }
    let n1 = (concordant + discordant + ties_x) as f64;
    let n2 = (concordant + discordant + ties_y) as f64;
    if n1 == 0.0 || n2 == 0.0 {
        return 1.0;
    }
    (concordant - discordant) as f64 / (n1 * n2).sqrt()
}

fn percentiles(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "none".into();
    }
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    format!(
        "p50 {:.1}ms, p90 {:.1}ms, p99 {:.1}ms, max {:.1}ms",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        h.max() as f64 / 1000.0
    )
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 3_600_000_000, 3)?)
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let users = ctx.users_or(20_000).max(2);
    let stock = ctx.stock_or(1_000);
    let admit_rate = ctx.args.admit_rate;
    let spread = ctx.args.spread;
    let plan = ctx.plan(Plan::PerVuIterations {
        vus: 256,
        iterations: 1,
        ordered_gap: None,
        max_duration: Duration::from_secs(600),
    })?;
    setup::require_routes(&ctx.targets, &[(Method::POST, "/orders")]).await?;

    let t0 = std::time::Instant::now();
    let mut api = Api::new(&ctx.targets);
    let seller = setup::sign_up(
        &mut api,
        &format!("opening-seller-{}@load.example.com", ctx.tag),
        "opening seller",
    )
    .await?;
    let buyers = setup::sign_up_many(
        &ctx.targets,
        users,
        "opening",
        &ctx.tag,
        ctx.concurrency(),
        ctx.quiet(),
    )
    .await?;
    // A fresh connection: the first one may have idled out during sign-up.
    let mut api = Api::new(&ctx.targets);
    let product = setup::create_product(
        &mut api,
        &seller,
        &format!("opening {}", ctx.tag),
        10_000,
        stock,
    )
    .await?;
    // The opening: whole seconds, LEAD from now.
    let now_us = unix_now_micros();
    let opens_unix = now_us / 1_000_000 + LEAD.as_secs() as i64 + 1;
    let opens_at = Instant::now() + Duration::from_micros((opens_unix * 1_000_000 - now_us) as u64);
    let mut body = json!({
        "product_id": product.id,
        "deal_price": 5_000,
        "deal_stock": stock,
        "per_user_limit": 1,
        "starts_at": rfc3339(opens_unix),
        "ends_at": rfc3339(opens_unix + 3 * 3600),
        "waiting_room": true,
    });
    if admit_rate > 0 {
        body["queue_admit_per_sec"] = json!(admit_rate);
    }
    let reply = api
        .expect(
            Method::POST,
            "/products/deals",
            "/products/deals",
            Some(&seller.token),
            Some(&body),
            &[201],
        )
        .await?;
    let deal_id = reply
        .json::<Value>()
        .and_then(|v| v["id"].as_str().map(str::to_string))
        .ok_or_else(|| SetupError::BadBody {
            what: "POST /products/deals".into(),
            body: String::from_utf8_lossy(&reply.body).into_owned(),
        })?;
    let join_path = format!("/deals/{deal_id}/queue");
    let join_heads = buyers
        .iter()
        .map(|u| {
            ctx.targets
                .head(Method::POST, &join_path, Some(&u.token), false)
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Does the server have the waiting room at all?
    let probe = api
        .call(Method::POST, &join_path, Some(&seller.token), None)
        .await?;
    if probe.status == 404 && probe.error_code() == Some("NOT_FOUND") {
        return Err(SetupError::RouteMissing {
            method: Method::POST,
            path: "/deals/{deal_id}/queue".into(),
        }
        .into());
    }

    // Inside the lead time: the early joiners' schedule starts about two
    // seconds from here, ample for an instance to learn of a new deal.
    ctx.wait_visible(&[
        format!("/products/{}", product.id),
        format!("/products/deals/{deal_id}"),
    ])
    .await?;

    // The schedule: early joiners spread over the last seconds before the
    // opening, the rest evenly over `spread` after it.
    let early = ((users as f64) * EARLY_SHARE).round() as usize;
    let late = users - early;
    let mut due = BinaryHeap::with_capacity(users);
    let mut runs = Vec::with_capacity(users);
    for i in 0..users {
        let (is_early, at) = if i < early {
            let f = (i as f64 + 0.5) / early.max(1) as f64;
            (true, opens_at - EARLY_WINDOW + EARLY_WINDOW.mul_f64(f))
        } else {
            let f = (i - early) as f64 / late.max(1) as f64;
            (false, opens_at + spread.mul_f64(f))
        };
        due.push(Reverse((at, i as u32)));
        runs.push(UserRun {
            step: Step::Join,
            early: is_early,
            queue_token: None,
            join_sent: None,
            join_done: None,
            admitted_seen: None,
            admitted_until_us: None,
            ended: None,
        });
    }
    let order_body = json!({
        "items": [{"product_id": product.id, "deal_id": deal_id, "quantity": 1}],
        "shipping_address": shipping_address(),
    });
    let workload = Arc::new(Opening {
        target: ctx.targets.clone(),
        join_heads,
        bearer: buyers.iter().map(|u| u.token.clone()).collect(),
        order_body: Bytes::from(order_body.to_string()),
        schedule: Mutex::new(Schedule {
            due,
            users: runs,
            in_flight: 0,
        }),
        queue_latency: Mutex::new(histogram()?),
        counts: Counts::default(),
        ledger: Ledger::new(1),
    });
    let setup = t0.elapsed();
    // Start the measured phase shortly before the first early join.
    let start = opens_at - EARLY_WINDOW - Duration::from_millis(200);
    tokio::time::sleep_until(start).await;

    let measured = ctx
        .measure_one_check(workload.clone(), plan, "order 201 or INSUFFICIENT_STOCK")
        .await?;
    let elapsed = measured.elapsed.as_secs_f64().max(1e-9);

    // Figures.
    let runs = std::mem::take(&mut workload.lock().users);
    let mut tta_early = histogram()?;
    let mut tta_late = histogram()?;
    let mut fair = Vec::new();
    let mut outcomes: std::collections::BTreeMap<String, u64> = Default::default();
    let mut never = 0u64;
    for u in &runs {
        *outcomes
            .entry(u.ended.clone().unwrap_or_else(|| "unfinished".into()))
            .or_default() += 1;
        match (u.join_sent, u.admitted_seen) {
            (Some(sent), Some(seen)) => {
                let us = (seen - sent).as_micros().max(1) as u64;
                let h = if u.early {
                    &mut tta_early
                } else {
                    &mut tta_late
                };
                let _ = h.record(us.min(3_600_000_000));
            }
            _ => never += 1,
        }
        if let (false, Some(joined), Some(until)) = (u.early, u.join_done, u.admitted_until_us) {
            let since = joined.saturating_duration_since(opens_at).as_micros() as i64;
            fair.push((since, until));
        }
    }
    let tau = kendall_tau_b(&fair);
    let queue_requests = workload.counts.queue_requests.load(Ordering::Relaxed);
    let queue_hist = workload
        .queue_latency
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let queue_p99_ms = if queue_hist.is_empty() {
        0.0
    } else {
        queue_hist.value_at_quantile(0.99) as f64 / 1000.0
    };
    let c = &workload.counts;
    let server_errors = c.server_errors.load(Ordering::Relaxed);
    let unexpected = c.unexpected.load(Ordering::Relaxed);
    let ordered_ok = outcomes.get("201").copied().unwrap_or(0)
        + outcomes.get("400 INSUFFICIENT_STOCK").copied().unwrap_or(0);
    let mut notes = vec![
        format!(
            "users: {users} ({early} joined in the {:.1} s before the opening, {late} over {:.1} s after); deal of {stock} units, admit rate {}",
            EARLY_WINDOW.as_secs_f64(),
            spread.as_secs_f64(),
            if admit_rate > 0 { format!("{admit_rate}/s") } else { "server default".into() }
        ),
        format!("time to admission, early joiners: {}", percentiles(&tta_early)),
        format!("time to admission, after the opening: {}", percentiles(&tta_late)),
        format!(
            "fairness: Kendall tau-b {tau:.4} between join and admission order of {} post-opening arrivals",
            fair.len()
        ),
        format!(
            "queue routes: {queue_requests} requests, {:.0} req/s over the run, {}",
            queue_requests as f64 / elapsed,
            percentiles(&queue_hist)
        ),
        format!(
            "429 RATE_LIMITED {}, retried after 503/no answer {}, expired tokens {}, never admitted {never}",
            c.rate_limited.load(Ordering::Relaxed),
            c.retried.load(Ordering::Relaxed),
            c.expired.load(Ordering::Relaxed),
        ),
    ];
    notes.push(format!(
        "user outcomes: {}",
        outcomes
            .iter()
            .map(|(k, v)| format!("{k} × {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));

    // Books, through every base URL.
    let mut books = Books::default();
    let state = deal_state_everywhere(ctx, &deal_id).await?;
    books.agreement(&format!("deal {deal_id} stock"), &state);
    let (deal_stock, remaining) = state.value;
    books.stock(
        &format!("deal {deal_id}"),
        deal_stock,
        remaining,
        workload.ledger.sold(0),
        workload.ledger.unknown_units(0),
    );
    books.push(
        "every admitted user who ordered got 201 or INSUFFICIENT_STOCK",
        ordered_ok == users as u64,
        format!("{ordered_ok} of {users}"),
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

    let thresholds = vec![
        ThresholdResult {
            metric: "server_errors".into(),
            expr: "count == 0".into(),
            actual: format!("{server_errors} (5xx or no answer)"),
            pass: server_errors == 0,
        },
        ThresholdResult {
            metric: "unexpected_answers".into(),
            expr: "count == 0".into(),
            actual: unexpected.to_string(),
            pass: unexpected == 0,
        },
        ThresholdResult {
            metric: "fairness_tau".into(),
            expr: "tau-b >= 0.99".into(),
            actual: format!("{tau:.4}"),
            pass: tau >= 0.99,
        },
        ThresholdResult {
            metric: "queue_p99".into(),
            expr: "p(99) < 20ms".into(),
            actual: format!("{queue_p99_ms:.2}ms"),
            pass: queue_p99_ms < 20.0,
        },
    ];
    Ok(Outcome {
        info: INFO,
        measured,
        thresholds,
        books: Some(books),
        notes,
        setup,
        params: json!({
            "users": users, "early": early, "stock": stock, "admit_rate": admit_rate,
            "spread_s": spread.as_secs_f64(), "deal_id": deal_id, "product_id": product.id,
            "tau": tau, "queue_requests": queue_requests,
            "queue_req_per_s": queue_requests as f64 / elapsed, "queue_p99_ms": queue_p99_ms,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tau_is_one_for_the_same_order_and_minus_one_reversed() {
        let same: Vec<(i64, i64)> = (0..100).map(|i| (i, i * 3)).collect();
        assert!((kendall_tau_b(&same) - 1.0).abs() < 1e-12);
        let rev: Vec<(i64, i64)> = (0..100).map(|i| (i, -i)).collect();
        assert!((kendall_tau_b(&rev) + 1.0).abs() < 1e-12);
        // One adjacent swap in 100: 1 discordant pair of 4950.
        let mut one = same.clone();
        one.swap(10, 11);
        let one: Vec<(i64, i64)> = one
            .iter()
            .enumerate()
            .map(|(i, p)| (i as i64, p.1))
            .collect();
        let t = kendall_tau_b(&one);
        assert!((t - (4948.0 / 4950.0)).abs() < 1e-9, "{t}");
        assert_eq!(kendall_tau_b(&[]), 1.0);
    }
}
