//! The server's own measurements: plain atomics written on the hot path,
//! read and encoded only when `/metrics` is scraped or the ops page ticks.
//!
//! Recording never allocates and never takes a lock that a writer holds:
//! a request adds to one bucket of a pre-built histogram, an admission
//! outcome to one counter of a fixed array. Every label value comes from a
//! closed set (route templates, status classes, named reasons) or from the
//! live deals, so the number of series is bounded whatever clients send.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Bounds of the latency histograms, in seconds: 0.5 ms .. 10 s.
pub const LATENCY_BOUNDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Bounds of the batch-size histograms, in writes per commit.
pub const BATCH_BOUNDS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// A histogram of fixed buckets, lock-free to record into.
///
/// Values are recorded in integer units (nanoseconds for latencies, items
/// for sizes), so the sum is an exact integer too; `scale` turns units
/// into what the exposition shows (seconds).
pub struct Histogram {
    bounds: &'static [f64],
    /// `bounds` in recording units, for the comparison on the hot path.
    limits: Box<[u64]>,
    /// Per bucket, not cumulative; the last one is `+Inf`.
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
    scale: f64,
}

impl Histogram {
    /// A latency histogram: record [`Duration`]s, shown in seconds.
    pub fn latency() -> Self {
        Self::new(LATENCY_BOUNDS, 1e-9)
    }

    /// A size histogram: record counts.
    pub fn sizes() -> Self {
        Self::new(BATCH_BOUNDS, 1.0)
    }

    fn new(bounds: &'static [f64], scale: f64) -> Self {
        Self {
            bounds,
            limits: bounds.iter().map(|b| (b / scale).round() as u64).collect(),
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            scale,
        }
    }

    /// Records one value in recording units.
    #[inline]
    pub fn record(&self, units: u64) {
        let i = self.limits.partition_point(|&l| l < units);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(units, Ordering::Relaxed);
    }

    #[inline]
    pub fn record_duration(&self, d: Duration) {
        self.record(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// A consistent-enough copy (each bucket read once, relaxed).
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds: self.bounds,
            counts: self
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
            sum: self.sum.load(Ordering::Relaxed) as f64 * self.scale,
        }
    }

    /// Values recorded so far.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// A histogram read at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSnapshot {
    pub bounds: &'static [f64],
    /// Per bucket, not cumulative; the last is `+Inf`.
    pub counts: Vec<u64>,
    pub sum: f64,
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// `(upper bound, count)` per bucket, not cumulative (the encoder
    /// accumulates).
    pub fn buckets(&self) -> Vec<(f64, u64)> {
        self.counts
            .iter()
            .enumerate()
            .map(|(i, c)| (self.bounds.get(i).copied().unwrap_or(f64::INFINITY), *c))
            .collect()
    }

    /// Cumulative `(upper bound, count)` pairs, as Prometheus shows them.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut acc = 0;
        self.counts
            .iter()
            .enumerate()
            .map(|(i, c)| {
                acc += c;
                (self.bounds.get(i).copied().unwrap_or(f64::INFINITY), acc)
            })
            .collect()
    }

    /// What was recorded between `earlier` and `self`.
    pub fn since(&self, earlier: &HistogramSnapshot) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds: self.bounds,
            counts: self
                .counts
                .iter()
                .zip(earlier.counts.iter().chain(std::iter::repeat(&0)))
                .map(|(a, b)| a.saturating_sub(*b))
                .collect(),
            sum: (self.sum - earlier.sum).max(0.0),
        }
    }

    /// The `q` quantile (0..1), interpolated linearly inside its bucket as
    /// Prometheus' `histogram_quantile` does; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            if c > 0 && (below + c) as f64 >= rank {
                let lower = if i == 0 { 0.0 } else { self.bounds[i - 1] };
                let Some(&upper) = self.bounds.get(i) else {
                    // +Inf bucket: the largest finite bound is all we know.
                    return self.bounds.last().copied();
                };
                let into = (rank - below as f64) / c as f64;
                return Some(lower + (upper - lower) * into);
            }
            below += c;
        }
        self.bounds.last().copied()
    }
}

/// HTTP methods as a label: a closed set.
pub const METHODS: [&str; 6] = ["GET", "POST", "PATCH", "PUT", "DELETE", "other"];

/// Status classes as a label.
pub const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn method_index(m: &axum::http::Method) -> usize {
    match *m {
        axum::http::Method::GET => 0,
        axum::http::Method::POST => 1,
        axum::http::Method::PATCH => 2,
        axum::http::Method::PUT => 3,
        axum::http::Method::DELETE => 4,
        _ => 5,
    }
}

fn class_index(status: u16) -> usize {
    usize::from((status / 100).clamp(1, 5) - 1)
}

/// The requests of one route template, by method and status class.
pub struct RouteStats {
    /// `[method][class]`, built up front so recording never allocates.
    by: [[Histogram; 5]; 6],
}

impl RouteStats {
    fn new() -> Self {
        Self {
            by: std::array::from_fn(|_| std::array::from_fn(|_| Histogram::latency())),
        }
    }
}

/// The route label of a request that matched no route: raw paths never
/// become label values.
pub const UNMATCHED: &str = "unmatched";

/// Request counts and durations per route template.
#[derive(Default)]
pub struct HttpMetrics {
    /// Route template → its stats. Templates are a closed set (the
    /// router's), so the map stops growing after each route's first
    /// request; later requests take only the read lock.
    routes: RwLock<HashMap<Box<str>, Arc<RouteStats>>>,
    /// Every request, for the ops page's percentiles.
    all: OnceHistogram,
    /// Exact 503 and 429 answers, for the ops page's rates.
    pub status_503: AtomicU64,
    pub status_429: AtomicU64,
}

/// A latency histogram that defaults to the latency bounds.
pub struct OnceHistogram(pub Histogram);

impl Default for OnceHistogram {
    fn default() -> Self {
        Self(Histogram::latency())
    }
}

impl HttpMetrics {
    /// Records one answered request. `route` is a template or
    /// [`UNMATCHED`].
    pub fn record(&self, method: &axum::http::Method, route: &str, status: u16, took: Duration) {
        let stats = self.route(route);
        stats.by[method_index(method)][class_index(status)].record_duration(took);
        self.all.0.record_duration(took);
        match status {
            503 => {
                self.status_503.fetch_add(1, Ordering::Relaxed);
            }
            429 => {
                self.status_429.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    fn route(&self, route: &str) -> Arc<RouteStats> {
        if let Some(s) = self
            .routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(route)
        {
            return s.clone();
        }
        self.routes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(route.into())
            .or_insert_with(|| Arc::new(RouteStats::new()))
            .clone()
    }

    /// Every request so far.
    pub fn all(&self) -> HistogramSnapshot {
        self.all.0.snapshot()
    }

    /// `(route, method, class, histogram)` for every series with data.
    pub fn series(&self) -> Vec<(Box<str>, &'static str, &'static str, HistogramSnapshot)> {
        let routes = self.routes.read().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (route, stats) in routes.iter() {
            for (m, row) in stats.by.iter().enumerate() {
                for (c, h) in row.iter().enumerate() {
                    if h.count() > 0 {
                        out.push((route.clone(), METHODS[m], CLASSES[c], h.snapshot()));
                    }
                }
            }
        }
        out.sort_by(|a, b| (&a.0, a.1, a.2).cmp(&(&b.0, b.1, b.2)));
        out
    }

    /// How many route labels exist (for tests of boundedness).
    pub fn route_count(&self) -> usize {
        self.routes.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Which admission path an outcome belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Order = 0,
    Coupon = 1,
}

pub const FLOWS: [&str; 2] = ["order", "coupon"];

/// What admission decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Admitted = 0,
    SoldOut = 1,
    OverLimit = 2,
    AlreadyIssued = 3,
    Shed = 4,
}

pub const OUTCOMES: [&str; 5] = [
    "admitted",
    "sold_out",
    "over_limit",
    "already_issued",
    "shed",
];

/// Why a request was refused with 503 before doing its work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shed {
    /// `max_in_flight` requests were already running.
    InFlight = 0,
    /// The order writer's queue was full.
    OrderQueue = 1,
    /// The coupon writer's queue was full.
    IssueQueue = 2,
    /// Argon2's slots and queue were full.
    HashQueue = 3,
    /// The waiting room turned the request away (hook; not wired yet).
    WaitingRoom = 4,
}

pub const SHED_REASONS: [&str; 5] = [
    "in_flight",
    "order_queue",
    "issue_queue",
    "hash_queue",
    "waiting_room",
];

/// Everything the server counts, one per [`App`](crate::App).
#[derive(Default)]
pub struct Metrics {
    pub http: HttpMetrics,
    admission: [[AtomicU64; 5]; 2],
    shed: [AtomicU64; 5],
    /// Orders committed (201).
    pub orders_placed: AtomicU64,
    /// Coupons issued (201).
    pub coupons_issued: AtomicU64,
    pub page_hits: AtomicU64,
    pub page_misses: AtomicU64,
    /// Clients on the ops page's live stream.
    pub ops_clients: AtomicU64,
    /// The last audit of a shared tier against the store: keys compared,
    /// keys that disagreed, and the units they disagreed by in all.
    pub drift_keys_checked: AtomicU64,
    pub drift_keys: AtomicU64,
    pub drift_units: AtomicU64,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    #[inline]
    pub fn admission(&self, flow: Flow, outcome: Outcome) {
        self.admission[flow as usize][outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub fn shed(&self, why: Shed) {
        self.shed[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn admission_count(&self, flow: Flow, outcome: Outcome) -> u64 {
        self.admission[flow as usize][outcome as usize].load(Ordering::Relaxed)
    }

    /// `(flow, outcome, count)` for every pair.
    pub fn admissions(&self) -> impl Iterator<Item = (&'static str, &'static str, u64)> + '_ {
        self.admission.iter().enumerate().flat_map(|(f, row)| {
            row.iter()
                .enumerate()
                .map(move |(o, c)| (FLOWS[f], OUTCOMES[o], c.load(Ordering::Relaxed)))
        })
    }

    pub fn sheds(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.shed
            .iter()
            .enumerate()
            .map(|(i, c)| (SHED_REASONS[i], c.load(Ordering::Relaxed)))
    }

    #[inline]
    pub fn page(&self, hit: bool) {
        let c = if hit {
            &self.page_hits
        } else {
            &self.page_misses
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// What a batch writer measures about itself.
pub struct WriterStats {
    pub batch_sizes: Histogram,
    pub commit_seconds: Histogram,
}

impl Default for WriterStats {
    fn default() -> Self {
        Self {
            batch_sizes: Histogram::sizes(),
            commit_seconds: Histogram::latency(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_and_quantiles() {
        let h = Histogram::latency();
        for _ in 0..90 {
            h.record_duration(Duration::from_micros(300)); // ≤ 0.5 ms
        }
        for _ in 0..10 {
            h.record_duration(Duration::from_millis(20)); // ≤ 25 ms
        }
        let s = h.snapshot();
        assert_eq!(s.count(), 100);
        assert_eq!(s.cumulative()[0], (0.0005, 90));
        assert_eq!(s.cumulative().last().map(|b| b.1), Some(100));
        assert!((s.sum - (0.027 + 0.2)).abs() < 1e-9, "{}", s.sum);
        let p50 = s.quantile(0.5).expect("p50");
        assert!(p50 <= 0.0005, "{p50}");
        let p99 = s.quantile(0.99).expect("p99");
        assert!(p99 > 0.01 && p99 <= 0.025, "{p99}");
        assert_eq!(s.since(&s).count(), 0);
        assert!(s.since(&s).quantile(0.9).is_none());
    }

    #[test]
    fn sizes_land_in_their_bucket() {
        let h = Histogram::sizes();
        h.record(1);
        h.record(3);
        h.record(10_000);
        let s = h.snapshot();
        assert_eq!(s.counts[0], 1);
        assert_eq!(s.counts[2], 1);
        assert_eq!(*s.counts.last().expect("inf"), 1);
    }

    #[test]
    fn routes_are_labelled_by_template_only() {
        let m = HttpMetrics::default();
        m.record(
            &axum::http::Method::GET,
            "/orders/{order_id}",
            200,
            Duration::ZERO,
        );
        m.record(
            &axum::http::Method::GET,
            "/orders/{order_id}",
            404,
            Duration::ZERO,
        );
        m.record(&axum::http::Method::GET, UNMATCHED, 404, Duration::ZERO);
        m.record(&axum::http::Method::OPTIONS, UNMATCHED, 503, Duration::ZERO);
        assert_eq!(m.route_count(), 2);
        assert_eq!(m.series().len(), 4);
        assert_eq!(m.status_503.load(Ordering::Relaxed), 1);
    }
}
