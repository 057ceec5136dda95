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

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hyper::Method;
use uuid::Uuid;

use crate::client::Target;
use crate::setup::{par_map, Api};

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

/// Fetches the orders back with their buyers' tokens and checks each.
pub async fn verify_orders(
    target: &Arc<Target>,
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
    par_map(target, n, concurrency, move |api: &mut Api, i| {
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
