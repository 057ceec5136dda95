//! What the storefront shows its operators: the live deals and coupons
//! with their remaining units, and the state of the batch writers. Read by
//! `/metrics` and the ops page, never on a request path.

use super::Storefront;
use crate::observability::metrics::WriterStats;
use chrono::{DateTime, Utc};
use hotdeal_domain::StockKey;

/// At most this many deals (and coupons) are listed, soonest-ending
/// first, so a scrape stays small whatever the catalogue holds.
pub const MAX_LIVE: usize = 1000;

/// A deal inside its window, with its live count.
#[derive(Clone, Debug)]
pub struct LiveDeal {
    pub id: uuid::Uuid,
    pub name: String,
    pub deal_stock: i64,
    pub remaining: i64,
    pub ends_at: DateTime<Utc>,
}

/// A coupon inside its window, with its live count.
#[derive(Clone, Debug)]
pub struct LiveCoupon {
    pub id: uuid::Uuid,
    pub name: String,
    pub total: i64,
    pub remaining: i64,
    pub ends_at: DateTime<Utc>,
}

/// One batch writer: its name, queue and measurements.
pub struct WriterView<'a> {
    pub name: &'static str,
    pub depth: usize,
    pub capacity: usize,
    pub stats: &'a WriterStats,
}

impl Storefront {
    /// The deals running now (at most [`MAX_LIVE`]), soonest end first,
    /// and how many are running in all.
    pub fn live_deals(&self) -> (Vec<LiveDeal>, usize) {
        let now = self.clock.now();
        let mut deals: Vec<LiveDeal> = self
            .catalog
            .deals_where(|d| d.settled_at.is_none() && d.window.is_running(now))
            .into_iter()
            .map(|(d, p)| LiveDeal {
                id: d.id.0,
                name: p.name.clone(),
                deal_stock: d.deal_stock,
                remaining: self
                    .admission
                    .available(StockKey::Deal(d.id))
                    .map_or(d.remaining_stock, |(n, _)| n),
                ends_at: d.window.ends_at,
            })
            .collect();
        let total = deals.len();
        deals.sort_by_key(|a| (a.ends_at, a.id));
        deals.truncate(MAX_LIVE);
        (deals, total)
    }

    /// The coupons that can be issued now (at most [`MAX_LIVE`]).
    pub fn live_coupons(&self) -> (Vec<LiveCoupon>, usize) {
        let now = self.clock.now();
        let mut out: Vec<LiveCoupon> = self
            .coupons
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|c| c.window.is_running(now))
            .map(|c| {
                let issued = self.coupon_admission.issued(c.id).unwrap_or(c.issued_count);
                LiveCoupon {
                    id: c.id,
                    name: c.name.clone(),
                    total: c.total_quantity,
                    remaining: (c.total_quantity - issued).max(0),
                    ends_at: c.window.ends_at,
                }
            })
            .collect();
        let total = out.len();
        out.sort_by_key(|a| (a.ends_at, a.id));
        out.truncate(MAX_LIVE);
        (out, total)
    }

    /// The order and coupon-issue writers.
    pub fn writers(&self) -> [WriterView<'_>; 2] {
        [
            WriterView {
                name: "orders",
                depth: self.orders.depth(),
                capacity: self.orders.capacity(),
                stats: self.orders.stats(),
            },
            WriterView {
                name: "coupon_issues",
                depth: self.issues.depth(),
                capacity: self.issues.capacity(),
                stats: self.issues.stats(),
            },
        ]
    }
}
