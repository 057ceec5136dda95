//! Rendered JSON pages kept in memory, so a burst of identical reads costs
//! one serialisation, not one per request.
//!
//! A page is rebuilt when the catalogue's epoch moved (a deal was created
//! or settled, a product edited), when the clock passed a deal's start or
//! end, or when stock counts changed and the page is older than `max_age`
//! (100 ms by default). Statuses are therefore exact, and the live counts
//! (`remaining_stock`, `sold_out`) lag the truth by at most `max_age`.

use crate::observability::Metrics;
use axum::body::Bytes;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Pages kept at most. When full the cache starts over: cheap, rare, and
/// odd query strings or id scans cannot grow memory.
const MAX_PAGES: usize = 4096;

/// What a page shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PageKey {
    /// `GET /products/deals?page&size`
    Deals { page: i64, size: i64 },
    /// `GET /products/deals/{id}`
    Deal(uuid::Uuid),
    /// `GET /products/{id}`
    Product(uuid::Uuid),
    /// `GET /products/{id}/stock`
    Stock(uuid::Uuid),
}

/// What a page was rendered from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// The catalogue's epoch (deals created or settled, products edited).
    pub epoch: u64,
    /// The admission tier's version (any stock count changed).
    pub stock: u64,
    /// The server's clock.
    pub now: DateTime<Utc>,
}

struct Page {
    stamp: Stamp,
    built: Instant,
    /// The next instant a deal starts or ends: statuses change then.
    valid_until: Option<DateTime<Utc>>,
    body: Bytes,
}

pub struct PageCache {
    /// How long a page may show stale stock counts.
    max_age: Duration,
    // A std Mutex: held to look up or store a page, never while rendering.
    pages: Mutex<HashMap<PageKey, Page>>,
    /// Where hits and misses are counted, if anywhere.
    metrics: Option<Arc<Metrics>>,
}

impl PageCache {
    pub fn new(max_age: Duration) -> Self {
        Self {
            max_age,
            pages: Mutex::default(),
            metrics: None,
        }
    }

    /// Counts hits and misses into `metrics`.
    pub fn counting(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The page for `key`, rendered by `build` (body, next window change)
    /// unless a fresh enough one is kept.
    pub fn get_or_build(
        &self,
        key: PageKey,
        stamp: Stamp,
        build: impl FnOnce() -> (Bytes, Option<DateTime<Utc>>),
    ) -> Bytes {
        {
            let pages = self.pages.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(p) = pages.get(&key) {
                let same_deals = p.stamp.epoch == stamp.epoch
                    && stamp.now >= p.stamp.now
                    && p.valid_until.is_none_or(|t| stamp.now < t);
                let counts_fresh = p.stamp.stock == stamp.stock || p.built.elapsed() < self.max_age;
                if same_deals && counts_fresh {
                    if let Some(m) = &self.metrics {
                        m.page(true);
                    }
                    return p.body.clone();
                }
            }
        }
        if let Some(m) = &self.metrics {
            m.page(false);
        }
        let (body, valid_until) = build();
        let mut pages = self.pages.lock().unwrap_or_else(|e| e.into_inner());
        if pages.len() < MAX_PAGES || pages.contains_key(&key) {
            let page = Page {
                stamp,
                built: Instant::now(),
                valid_until,
                body: body.clone(),
            };
            pages.insert(key, page);
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEALS: PageKey = PageKey::Deals { page: 1, size: 20 };

    fn stamp(epoch: u64, stock: u64, now: DateTime<Utc>) -> Stamp {
        Stamp { epoch, stock, now }
    }

    #[test]
    fn a_page_is_rendered_once_per_change() {
        let cache = PageCache::new(Duration::ZERO);
        let now = Utc::now();
        let mut renders = 0;
        for _ in 0..5 {
            cache.get_or_build(DEALS, stamp(7, 1, now), || {
                renders += 1;
                (Bytes::from_static(b"a"), None)
            });
        }
        assert_eq!(renders, 1);
        let body = cache.get_or_build(DEALS, stamp(8, 1, now), || (Bytes::from_static(b"b"), None));
        assert_eq!(body, Bytes::from_static(b"b"), "a new epoch re-renders");
        let body = cache.get_or_build(DEALS, stamp(8, 2, now), || (Bytes::from_static(b"c"), None));
        assert_eq!(
            body,
            Bytes::from_static(b"c"),
            "new counts re-render when no staleness is allowed"
        );
    }

    #[test]
    fn stale_counts_are_served_only_within_max_age() {
        let cache = PageCache::new(Duration::from_secs(60));
        let now = Utc::now();
        cache.get_or_build(DEALS, stamp(1, 1, now), || (Bytes::from_static(b"a"), None));
        let body = cache.get_or_build(DEALS, stamp(1, 2, now), || (Bytes::from_static(b"b"), None));
        assert_eq!(body, Bytes::from_static(b"a"));
    }

    #[test]
    fn a_deal_window_boundary_re_renders() {
        let cache = PageCache::new(Duration::from_secs(60));
        let now = Utc::now();
        let boundary = now + chrono::Duration::seconds(5);
        cache.get_or_build(DEALS, stamp(1, 1, now), || {
            (Bytes::from_static(b"a"), Some(boundary))
        });
        let later = stamp(1, 1, boundary);
        let body = cache.get_or_build(DEALS, later, || (Bytes::from_static(b"b"), None));
        assert_eq!(body, Bytes::from_static(b"b"));
    }

    #[test]
    fn the_number_of_pages_is_bounded() {
        let cache = PageCache::new(Duration::from_secs(1));
        for i in 0..(MAX_PAGES as i64 + 10) {
            let key = PageKey::Deals { page: i, size: 20 };
            cache.get_or_build(key, stamp(0, 0, Utc::now()), || {
                (Bytes::from_static(b"x"), None)
            });
        }
        assert!(cache.pages.lock().expect("lock").len() <= MAX_PAGES);
    }
}
