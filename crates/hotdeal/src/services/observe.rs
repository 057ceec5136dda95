//! What the storefront shows its operators: the live deals and coupons
//! with their remaining units, and the state of the batch writers. Read by
//! `/metrics` and the ops page, never on a request path.
//!
//! Each context shows its own part ([`Catalogue::live_deals`],
//! [`Coupons::live_coupons`], the writers of orders and coupon issues);
//! [`Storefront`] gathers the parts of the roles a process runs, so the
//! ops page of a split process shows what that process serves.

use super::{Catalogue, Coupons, Storefront};
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

impl Catalogue {
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
}

impl Coupons {
    /// The coupons that can be issued now (at most [`MAX_LIVE`]).
    pub fn live_coupons(&self) -> (Vec<LiveCoupon>, usize) {
        let now = self.clock.now();
        let mut out: Vec<LiveCoupon> = self
            .definitions()
            .into_iter()
            .filter(|c| c.window.is_running(now))
            .map(|c| {
                let issued = self.admission.issued(c.id).unwrap_or(c.issued_count);
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
}

impl Storefront {
    /// The deals running now, if this process keeps a catalogue.
    pub fn live_deals(&self) -> (Vec<LiveDeal>, usize) {
        self.catalogue
            .as_ref()
            .map_or_else(Default::default, |c| c.live_deals())
    }

    /// The coupons that can be issued now, if this process issues them.
    pub fn live_coupons(&self) -> (Vec<LiveCoupon>, usize) {
        self.coupons
            .as_ref()
            .map_or_else(Default::default, |c| c.live_coupons())
    }

    /// The batch writers this process runs: orders, coupon issues.
    pub fn writers(&self) -> Vec<WriterView<'_>> {
        let mut writers = Vec::with_capacity(2);
        if let Some(o) = &self.ordering {
            let w = o.writer();
            writers.push(WriterView {
                name: "orders",
                depth: w.depth(),
                capacity: w.capacity(),
                stats: w.stats(),
            });
        }
        if let Some(c) = &self.coupons {
            let w = c.writer();
            writers.push(WriterView {
                name: "coupon_issues",
                depth: w.depth(),
                capacity: w.capacity(),
                stats: w.stats(),
            });
        }
        writers
    }

    /// The waiting rooms at a glance (at most `limit`), if this process
    /// runs them.
    pub fn queue_stats(&self, limit: usize) -> Vec<crate::ports::queue::QueueStats> {
        self.ordering
            .as_ref()
            .map(|o| o.waiting_room.stats(limit))
            .unwrap_or_default()
    }
}
