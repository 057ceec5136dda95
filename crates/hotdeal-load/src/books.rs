//! The books: invariants checked through the public API after a run that
//! changed state. A run that breaks one fails, whatever its speed.
//!
//! * stock: units sold (in orders answered 201) + units remaining = the
//!   initial stock. A request that timed out or lost its connection may or
//!   may not have been applied; its units are the only slack allowed:
//!   `remaining + sold ≤ initial ≤ remaining + sold + unknown`.
//! * coupons: issued ≤ quantity, one per user, and the count the server
//!   reports equals the 201s we saw (same slack for unknown outcomes).
//! * orders: every order answered 201 can be fetched back by its buyer
//!   (all of them, or an even sample of `--verify-orders` for big runs),
//!   with the status and the units it was created with.
//!
//! With several base URLs (instances of one deployment) nothing above is
//! per instance: the 201s, units and coupons seen are summed over every
//! answer whichever instance gave it, and an answer lost with a killed
//! instance is an unknown outcome, never a sale. The final counts are
//! read through every instance ([`read_everywhere`]): they must agree —
//! one shared store seen through any door — and an instance that no
//! longer accepts connections is named, not counted. Orders are fetched
//! back spread over the instances, so each must find orders others took.

use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::Method;
use uuid::Uuid;

use crate::client::{Outcome, Targets};
use crate::setup::{par_map, Api, BoxFuture, SetupError};

/// One verified invariant.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BookCheck {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// All invariants of a run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Books {
    pub checks: Vec<BookCheck>,
}

impl Books {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    pub fn push(&mut self, name: impl Into<String>, ok: bool, detail: impl Into<String>) {
        self.checks.push(BookCheck {
            name: name.into(),
            ok,
            detail: detail.into(),
        });
    }

    /// A check over many items: passes when `wrong` is empty, and names the
    /// first failure otherwise.
    pub fn all(&mut self, name: &str, wrong: &[String], checked: String) {
        let detail = match wrong.first() {
            None => checked,
            Some(first) => format!("{} wrong; first: {first}", wrong.len()),
        };
        self.push(name, wrong.is_empty(), detail);
    }

    /// `remaining + sold (+ unknown) = initial` for one stock.
    pub fn stock(&mut self, name: &str, initial: i64, remaining: i64, sold: u64, unknown: u64) {
        let (sold, unknown) = (sold as i64, unknown as i64);
        let ok =
            remaining >= 0 && remaining + sold <= initial && initial <= remaining + sold + unknown;
        let slack = if unknown > 0 {
            format!(" (+ up to {unknown} units of unanswered orders)")
        } else {
            String::new()
        };
        let verdict = if ok { "=" } else { "≠" };
        self.push(
            format!("stock {name}"),
            ok,
            format!("sold {sold} + remaining {remaining}{slack} {verdict} initial {initial}"),
        );
    }

    /// With several base URLs: every instance that answered gave the same
    /// figure. Nothing is pushed for a single base URL, whose report stays
    /// as it always was.
    pub fn agreement<T: PartialEq + Debug>(&mut self, what: &str, reading: &Reading<T>) {
        let asked = reading.answers.len() + reading.unreachable.len();
        if asked < 2 {
            return;
        }
        let mut detail = if reading.agreed() {
            format!(
                "{} of {asked} instances answered {:?}",
                reading.answers.len(),
                reading.value
            )
        } else {
            let each: Vec<String> = reading
                .answers
                .iter()
                .map(|(url, v)| format!("{url}: {v:?}"))
                .collect();
            format!("instances differ: {}", each.join("; "))
        };
        if !reading.unreachable.is_empty() {
            detail.push_str(&format!(
                " ({} refused the connection: {})",
                reading.unreachable.len(),
                reading.unreachable.join(", ")
            ));
        }
        self.push(
            format!("instances agree on {what}"),
            reading.agreed(),
            detail,
        );
    }

    /// A first-come coupon that more users asked for than it has must end
    /// sold out: `issued ≥ quantity − unknown` (a coupon held for an
    /// answer lost with its instance may be released too late for anyone
    /// else to take it).
    pub fn coupon_sold_out(&mut self, total: i64, issued: i64, users_answered: u64, unknown: u64) {
        if users_answered as i64 <= total {
            return;
        }
        let ok = issued >= total - unknown as i64;
        self.push(
            "coupon sold out",
            ok,
            format!(
                "{users_answered} users answered for {total} coupons; issued {issued}{}",
                if unknown > 0 {
                    format!(" (up to {unknown} may be held by lost answers)")
                } else {
                    String::new()
                }
            ),
        );
    }

    /// Coupons: issued ≤ quantity, issued = the 201s seen, one per user.
    pub fn coupon(
        &mut self,
        total: i64,
        issued: i64,
        remaining: Option<i64>,
        seen_201: u64,
        unknown: u64,
        doubles: u64,
    ) {
        let seen = seen_201 as i64;
        self.push(
            "coupon issued ≤ quantity",
            issued <= total,
            format!("issued {issued} of {total}"),
        );
        self.push(
            "coupon issued = 201s seen",
            seen <= issued && issued <= seen + unknown as i64,
            if unknown > 0 {
                format!("server {issued}, seen {seen} (+ up to {unknown} unanswered)")
            } else {
                format!("server {issued}, seen {seen}")
            },
        );
        if let Some(rem) = remaining {
            self.push(
                "coupon remaining = quantity − issued",
                rem == total - issued,
                format!("remaining {rem}"),
            );
        }
        self.push(
            "coupon one per user",
            doubles == 0,
            format!("{doubles} users got a second coupon"),
        );
    }
}

/// An order answered 201 during the run.
#[derive(Debug, Clone, Copy)]
pub struct OrderRecord {
    pub id: Uuid,
    /// Index of the buyer in the scenario's token list.
    pub buyer: u32,
    /// Units over all lines, as sent.
    pub units: u32,
}

/// What a scenario keeps during the run to check the books afterwards:
/// orders answered 201, and units sold / of unknown outcome per product.
/// Appends take a `std` mutex for nanoseconds, per created order only.
pub struct Ledger {
    orders: Mutex<Vec<OrderRecord>>,
    sold: Vec<AtomicU64>,
    unknown: Vec<AtomicU64>,
    /// Whether the 201 body could not be parsed (an order we cannot verify).
    unparsed: AtomicU64,
    any_unknown: AtomicBool,
}

impl Ledger {
    pub fn new(products: usize) -> Self {
        Self {
            orders: Mutex::new(Vec::new()),
            sold: (0..products).map(|_| AtomicU64::new(0)).collect(),
            unknown: (0..products).map(|_| AtomicU64::new(0)).collect(),
            unparsed: AtomicU64::new(0),
            any_unknown: AtomicBool::new(false),
        }
    }

    /// An order answered 201: `lines` are (product index, units).
    pub fn confirmed(&self, id: Option<Uuid>, buyer: u32, lines: &[(usize, u32)]) {
        let mut units = 0;
        for &(p, q) in lines {
            if let Some(s) = self.sold.get(p) {
                s.fetch_add(u64::from(q), Ordering::Relaxed);
            }
            units += q;
        }
        match id {
            Some(id) => self
                .orders
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(OrderRecord { id, buyer, units }),
            None => {
                self.unparsed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// An order request whose outcome we could not see.
    pub fn unknown(&self, lines: &[(usize, u32)]) {
        self.any_unknown.store(true, Ordering::Relaxed);
        for &(p, q) in lines {
            if let Some(s) = self.unknown.get(p) {
                s.fetch_add(u64::from(q), Ordering::Relaxed);
            }
        }
    }

    pub fn sold(&self, product: usize) -> u64 {
        self.sold
            .get(product)
            .map_or(0, |s| s.load(Ordering::Relaxed))
    }

    pub fn unknown_units(&self, product: usize) -> u64 {
        self.unknown
            .get(product)
            .map_or(0, |s| s.load(Ordering::Relaxed))
    }

    pub fn orders(&self) -> Vec<OrderRecord> {
        self.orders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn unparsed(&self) -> u64 {
        self.unparsed.load(Ordering::Relaxed)
    }
}

/// Picks all records, or `max` spread evenly over the run.
pub fn sample<T: Copy>(all: &[T], max: usize) -> Vec<T> {
    if all.len() <= max {
        return all.to_vec();
    }
    if max == 0 {
        return Vec::new();
    }
    (0..max).map(|i| all[i * all.len() / max]).collect()
}

/// A figure read after the run through every base URL.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading<T> {
    /// The first answer, in the order of the base URLs.
    pub value: T,
    /// `(base URL, value)` of every instance that answered.
    pub answers: Vec<(String, T)>,
    /// Base URLs that refused the connection (an instance killed on
    /// purpose, or down).
    pub unreachable: Vec<String>,
}

impl<T: PartialEq> Reading<T> {
    pub fn agreed(&self) -> bool {
        self.answers.iter().all(|(_, v)| *v == self.value)
    }
}

/// Reads one figure through every base URL, each on its own connection
/// (no failover: the point is to hear every instance). While the answers
/// differ it asks again, for up to `settle`: an instance may serve an item
/// from its own cache for a moment after another changed it, and that is
/// allowed; still differing after `settle` is reported by
/// [`Books::agreement`]. A refused connection puts the URL on the
/// unreachable list; only when no instance answers is it an error.
pub async fn read_everywhere<T, F>(
    targets: &Arc<Targets>,
    settle: Duration,
    read: F,
) -> Result<Reading<T>, SetupError>
where
    T: PartialEq + Clone,
    F: for<'a> Fn(&'a mut Api) -> BoxFuture<'a, Result<T, SetupError>>,
{
    let deadline = tokio::time::Instant::now() + settle;
    loop {
        let mut answers = Vec::with_capacity(targets.len());
        let mut unreachable = Vec::new();
        let mut refused = None;
        for i in 0..targets.len() {
            let mut api = Api::only(targets, i);
            let url = api.target().base_url.clone();
            match read(&mut api).await {
                Ok(v) => answers.push((url, v)),
                Err(
                    e @ SetupError::NoResponse {
                        outcome: Outcome::ConnectFailed,
                        ..
                    },
                ) => {
                    unreachable.push(url);
                    refused.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        let Some(value) = answers.first().map(|(_, v)| v.clone()) else {
            return Err(refused.unwrap_or(SetupError::NoResponse {
                what: "every base URL".into(),
                outcome: Outcome::ConnectFailed,
            }));
        };
        let reading = Reading {
            value,
            answers,
            unreachable,
        };
        if reading.agreed() || tokio::time::Instant::now() >= deadline {
            return Ok(reading);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Fetches the orders back with their buyers' tokens and checks each.
pub async fn verify_orders(
    targets: &Arc<Targets>,
    ledger: &Ledger,
    tokens: Arc<Vec<String>>,
    max: usize,
    concurrency: usize,
    books: &mut Books,
) -> anyhow::Result<()> {
    let all = ledger.orders();
    let picked = Arc::new(sample(&all, max));
    let n = picked.len();
    let problems: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let (p2, pr2) = (picked.clone(), problems.clone());
    par_map(targets, n, concurrency, move |api: &mut Api, i| {
        let rec = p2[i];
        let token = tokens.get(rec.buyer as usize).cloned().unwrap_or_default();
        let problems = pr2.clone();
        Box::pin(async move {
            if let Some(problem) = check_order(api, rec, &token).await {
                problems
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(problem);
            }
            Ok(())
        })
    })
    .await?;
    let problems = problems.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let scope = if n == all.len() {
        format!("all {n}")
    } else {
        format!("{n} of {} (even sample)", all.len())
    };
    let mut detail = format!("{scope} orders answered 201 fetched back");
    if !problems.is_empty() {
        detail = format!(
            "{} of {scope} failed; first: {}",
            problems.len(),
            problems[0]
        );
    }
    books.push("orders retrievable", problems.is_empty(), detail);
    if ledger.unparsed() > 0 {
        books.push(
            "order bodies",
            false,
            format!("{} responses 201 without an order id", ledger.unparsed()),
        );
    }
    Ok(())
}

async fn check_order(api: &mut Api, rec: OrderRecord, token: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Item {
        quantity: u32,
    }
    #[derive(serde::Deserialize)]
    struct Order {
        id: Uuid,
        status: String,
        #[serde(default)]
        items: Vec<Item>,
    }
    let path = format!("/orders/{}", rec.id);
    let reply = match api.call(Method::GET, &path, Some(token), None).await {
        Ok(r) => r,
        Err(e) => return Some(format!("GET {path}: {e}")),
    };
    if reply.status != 200 {
        return Some(format!(
            "GET {path}: {} {}",
            reply.status,
            reply.error_code().unwrap_or("")
        ));
    }
    let Some(order) = reply.json::<Order>() else {
        return Some(format!("GET {path}: unparsable order"));
    };
    let units: u32 = order.items.iter().map(|i| i.quantity).sum();
    if order.id != rec.id {
        Some(format!("GET {path}: answered order {}", order.id))
    } else if order.status == "cancelled" {
        Some(format!("order {} was cancelled", rec.id))
    } else if units != rec.units {
        Some(format!(
            "order {} has {units} units, created with {}",
            rec.id, rec.units
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stock_equation_with_slack() {
        let mut b = Books::default();
        b.stock("p", 1000, 900, 100, 0);
        assert!(b.ok());
        b.stock("q", 1000, 895, 100, 10); // 5 of 10 unanswered units were applied
        assert!(b.ok(), "{:?}", b.checks);
        b.stock("r", 1000, 901, 100, 0); // a unit came from nowhere
        assert!(!b.ok());
        assert!(b.checks[2].detail.contains('≠'));
        let mut b = Books::default();
        b.stock("oversold", 10, -1, 11, 0);
        assert!(!b.ok());
    }

    #[test]
    fn coupon_rules() {
        let mut b = Books::default();
        b.coupon(50, 50, Some(0), 50, 0, 0);
        assert!(b.ok());
        let mut b = Books::default();
        b.coupon(50, 51, None, 51, 0, 0);
        assert!(!b.ok());
        let mut b = Books::default();
        b.coupon(50, 40, Some(10), 40, 0, 1);
        assert!(!b.ok());
    }

    fn reading(answers: &[(&str, i64)], unreachable: &[&str]) -> Reading<i64> {
        Reading {
            value: answers.first().map_or(0, |a| a.1),
            answers: answers.iter().map(|(u, v)| (u.to_string(), *v)).collect(),
            unreachable: unreachable.iter().map(|u| u.to_string()).collect(),
        }
    }

    #[test]
    fn instances_must_agree_on_the_final_counts() {
        // One base URL: no agreement line, the report stays as it was.
        let mut b = Books::default();
        b.agreement("stock", &reading(&[("http://a", 5)], &[]));
        assert!(b.checks.is_empty());

        let mut b = Books::default();
        b.agreement("stock", &reading(&[("http://a", 5), ("http://b", 5)], &[]));
        assert!(b.ok(), "{:?}", b.checks);
        assert_eq!(b.checks[0].detail, "2 of 2 instances answered 5");

        // A killed instance is named, not counted against the books.
        let mut b = Books::default();
        b.agreement(
            "stock",
            &reading(&[("http://a", 5), ("http://c", 5)], &["http://b"]),
        );
        assert!(b.ok(), "{:?}", b.checks);
        assert!(b.checks[0].detail.contains("2 of 3"));
        assert!(b.checks[0]
            .detail
            .contains("refused the connection: http://b"));

        let mut b = Books::default();
        b.agreement("stock", &reading(&[("http://a", 5), ("http://b", 6)], &[]));
        assert!(!b.ok());
        assert!(b.checks[0].detail.contains("http://b: 6"), "{:?}", b.checks);
    }

    /// The books of a run over three instances, from what each VU saw,
    /// whichever instance answered: the sums are per run, not per
    /// instance, and answers lost with a killed instance are slack, never
    /// sales.
    #[test]
    fn books_across_instances_sum_every_answer() {
        let ledger = Ledger::new(1);
        // 201s from instances A, B and C.
        for buyer in 0..30u32 {
            ledger.confirmed(Some(Uuid::now_v7()), buyer, &[(0, 1)]);
        }
        // Two orders in flight on the instance that was killed: unknown.
        ledger.unknown(&[(0, 1)]);
        ledger.unknown(&[(0, 1)]);
        assert_eq!(ledger.sold(0), 30);
        // The store applied one of the two lost orders.
        let mut b = Books::default();
        let stock = reading(&[("http://a", 69), ("http://c", 69)], &["http://b"]);
        b.agreement("stock", &stock);
        b.stock(
            "p",
            100,
            stock.value,
            ledger.sold(0),
            ledger.unknown_units(0),
        );
        assert!(b.ok(), "{:?}", b.checks);
        // Had an instance counted a sale nobody was answered 201 for,
        // beyond the lost answers, the books would not balance.
        let mut b = Books::default();
        b.stock("p", 100, 67, ledger.sold(0), ledger.unknown_units(0));
        assert!(!b.ok());
    }

    #[test]
    fn a_rushed_coupon_ends_sold_out() {
        let mut b = Books::default();
        b.coupon_sold_out(50, 50, 100, 0);
        assert!(b.ok());
        b.coupon_sold_out(50, 48, 100, 2);
        assert!(b.ok(), "two lost answers may hold two coupons");
        b.coupon_sold_out(50, 47, 100, 2);
        assert!(!b.ok());
        // Fewer users than coupons: nothing to say.
        let mut b = Books::default();
        b.coupon_sold_out(50, 10, 10, 0);
        assert!(b.checks.is_empty());
    }

    #[test]
    fn sampling_is_even_and_bounded() {
        let all: Vec<u32> = (0..100).collect();
        assert_eq!(sample(&all, 200).len(), 100);
        let s = sample(&all, 10);
        assert_eq!(s, vec![0, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
        assert!(sample(&all, 0).is_empty());
    }

    #[test]
    fn ledger_accounts_per_product() {
        let l = Ledger::new(2);
        l.confirmed(Some(Uuid::nil()), 0, &[(0, 2), (1, 3), (0, 1)]);
        l.confirmed(None, 1, &[(1, 1)]);
        l.unknown(&[(0, 5)]);
        assert_eq!(l.sold(0), 3);
        assert_eq!(l.sold(1), 4);
        assert_eq!(l.unknown_units(0), 5);
        assert_eq!(l.orders().len(), 1);
        assert_eq!(l.orders()[0].units, 6);
        assert_eq!(l.unparsed(), 1);
    }
}
