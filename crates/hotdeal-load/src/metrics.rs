//! What a run measures: HDR histograms of request and iteration durations
//! (microsecond resolution), status counts keyed by the body's error code,
//! k6-style checks and rates, and 1-second buckets for the report's charts.
//!
//! Recording is sharded: each VU records into shard `vu % shards`, each a
//! `std::sync::Mutex` held for the few hundred nanoseconds an HDR record and
//! a counter bump take — never across an `.await` — so VUs on different
//! worker threads rarely meet. The shards are merged once, at the end.
//! A `std` mutex rather than tokio's because the critical section is short
//! and synchronous; tokio's would add an allocation-free but slower path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

/// Largest duration a histogram holds (10 minutes); longer values are
/// clamped, which no timeout allows anyway.
const MAX_US: u64 = 600_000_000;

/// How a request ended, for the status table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<'a> {
    Http(u16, Option<&'a str>),
    Timeout,
    ConnError,
}

/// The names of a scenario's checks and rates; recorders refer to them by
/// index so recording never hashes or allocates a string.
#[derive(Debug, Clone, Default)]
pub struct Names {
    pub checks: Vec<&'static str>,
    pub rates: Vec<&'static str>,
}

/// Pass/fail counts of one check or rate.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PassFail {
    pub name: String,
    pub passes: u64,
    pub fails: u64,
}

impl PassFail {
    pub fn total(&self) -> u64 {
        self.passes + self.fails
    }

    pub fn rate(&self) -> f64 {
        ratio(self.passes, self.total())
    }
}

pub fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Count of one (status, error code) pair; status 0 is never stored here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCount {
    pub status: u16,
    pub code: Box<str>,
    pub count: u64,
}

/// Per-status counts plus the transport failures.
#[derive(Debug, Clone, Default)]
pub struct StatusCounts {
    pub by_status: Vec<StatusCount>,
    pub timeouts: u64,
    pub conn_errors: u64,
}

impl StatusCounts {
    fn add(&mut self, status: Status<'_>, n: u64) {
        match status {
            Status::Timeout => self.timeouts += n,
            Status::ConnError => self.conn_errors += n,
            Status::Http(s, code) => {
                let code = code.unwrap_or("");
                // A handful of distinct pairs per run: a linear scan beats
                // hashing and allocates only the first time a pair is seen.
                if let Some(e) = self
                    .by_status
                    .iter_mut()
                    .find(|e| e.status == s && &*e.code == code)
                {
                    e.count += n;
                } else {
                    self.by_status.push(StatusCount {
                        status: s,
                        code: code.into(),
                        count: n,
                    });
                }
            }
        }
    }

    fn merge(&mut self, other: &StatusCounts) {
        for e in &other.by_status {
            self.add(Status::Http(e.status, Some(&e.code)), e.count);
        }
        self.timeouts += other.timeouts;
        self.conn_errors += other.conn_errors;
    }

    pub fn class(&self, hundreds: u16) -> u64 {
        self.by_status
            .iter()
            .filter(|e| e.status / 100 == hundreds)
            .map(|e| e.count)
            .sum()
    }
}

/// Requests sent to one base URL, for the per-URL lines of the report: an
/// instance that answers worse than its peers, or died, shows here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TargetCount {
    pub requests: u64,
    /// Failed by the scenario's expectation (`http_req_failed`).
    pub failed: u64,
    /// Of the failed: no answer at all (timeout, refused or broken
    /// connection) — what a killed instance produces.
    pub no_answer: u64,
}

impl TargetCount {
    fn merge(&mut self, other: &TargetCount) {
        self.requests += other.requests;
        self.failed += other.failed;
        self.no_answer += other.no_answer;
    }
}

/// One second of the run, for the time-series charts.
#[derive(Debug, Clone, Default)]
pub struct Second {
    pub requests: u64,
    pub failed: u64,
    pub iterations: u64,
    pub dropped: u64,
    /// Latencies finished in this second (2 significant digits: percentile
    /// curves, not the headline figures).
    pub hist: Option<Histogram<u64>>,
}

impl Second {
    fn merge(&mut self, other: &Second) {
        self.requests += other.requests;
        self.failed += other.failed;
        self.iterations += other.iterations;
        self.dropped += other.dropped;
        match (&mut self.hist, &other.hist) {
            (Some(a), Some(b)) => {
                // Same bounds by construction: cannot fail.
                let _ = a.add(b);
            }
            (None, Some(b)) => self.hist = Some(b.clone()),
            _ => {}
        }
    }
}

struct Shard {
    req: Histogram<u64>,
    iter: Histogram<u64>,
    statuses: StatusCounts,
    requests: u64,
    failed: u64,
    iterations: u64,
    dropped: u64,
    interrupted: u64,
    checks: Vec<[u64; 2]>,
    rates: Vec<[u64; 2]>,
    /// Indexed by target (base URL); grown on first use.
    targets: Vec<TargetCount>,
    seconds: Vec<Second>,
    second_template: Histogram<u64>,
}

impl Shard {
    fn second(&mut self, idx: usize) -> &mut Second {
        if self.seconds.len() <= idx {
            self.seconds.resize_with(idx + 1, Second::default);
        }
        &mut self.seconds[idx]
    }
}

/// VUs over time: current, extremes, and the per-second maximum.
#[derive(Debug, Default)]
struct VuGauge {
    active: u32,
    min_active: Option<u32>,
    max_active: u32,
    allocated: u32,
    /// (max in that second, value at the end of it) for seconds with a change.
    per_second: Vec<Option<(u32, u32)>>,
}

/// Shared metrics of one measured phase.
pub struct Metrics {
    origin: Instant,
    shards: Box<[Mutex<Shard>]>,
    vus: Mutex<VuGauge>,
    names: Names,
    /// Live counters for the progress line (relaxed atomics, read rarely).
    live_requests: AtomicU64,
    live_iterations: AtomicU64,
    live_failed: AtomicU64,
}

fn histogram(sigfig: u8) -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_US, sigfig).map_err(|e| anyhow::anyhow!("histogram: {e}"))
}

fn micros(d: Duration) -> u64 {
    (d.as_micros().min(MAX_US as u128) as u64).max(1)
}

/// Locks a shard; a poisoned lock only means a VU panicked mid-record, and
/// counters are still usable, so take them.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Metrics {
    pub fn new(names: Names, shards: usize) -> anyhow::Result<Self> {
        let req = histogram(3)?;
        let sec = histogram(2)?;
        let shards = (0..shards.max(1))
            .map(|_| {
                Mutex::new(Shard {
                    req: req.clone(),
                    iter: req.clone(),
                    statuses: StatusCounts::default(),
                    requests: 0,
                    failed: 0,
                    iterations: 0,
                    dropped: 0,
                    interrupted: 0,
                    checks: vec![[0; 2]; names.checks.len()],
                    rates: vec![[0; 2]; names.rates.len()],
                    targets: Vec::new(),
                    seconds: Vec::new(),
                    second_template: sec.clone(),
                })
            })
            .collect();
        Ok(Self {
            origin: Instant::now(),
            shards,
            vus: Mutex::new(VuGauge::default()),
            names,
            live_requests: AtomicU64::new(0),
            live_iterations: AtomicU64::new(0),
            live_failed: AtomicU64::new(0),
        })
    }

    /// Start of the measured phase; every offset is relative to it.
    pub fn origin(&self) -> Instant {
        self.origin
    }

    fn sec_index(&self, at: Instant) -> usize {
        at.saturating_duration_since(self.origin).as_secs() as usize
    }

    pub fn recorder(self: &std::sync::Arc<Self>, vu: u32) -> Recorder {
        Recorder {
            metrics: self.clone(),
            shard: vu as usize % self.shards.len(),
        }
    }

    pub fn live(&self) -> (u64, u64) {
        (
            self.live_requests.load(Ordering::Relaxed),
            self.live_iterations.load(Ordering::Relaxed),
        )
    }

    /// Failed requests so far, for the progress line.
    pub fn live_failed(&self) -> u64 {
        self.live_failed.load(Ordering::Relaxed)
    }

    /// Requests finished in second `sec` of the run and their p95 (ms),
    /// across shards; for the progress line, once a second.
    pub fn second_figures(&self, sec: usize) -> (u64, Option<f64>) {
        let mut requests = 0;
        let mut merged: Option<Histogram<u64>> = None;
        for shard in self.shards.iter() {
            let s = lock(shard);
            let Some(b) = s.seconds.get(sec) else {
                continue;
            };
            requests += b.requests;
            if let Some(h) = &b.hist {
                match &mut merged {
                    Some(m) => {
                        let _ = m.add(h);
                    }
                    None => merged = Some(h.clone()),
                }
            }
        }
        let p95 = merged
            .filter(|h| !h.is_empty())
            .map(|h| h.value_at_quantile(0.95) as f64 / 1000.0);
        (requests, p95)
    }

    pub fn set_active_vus(&self, n: u32) {
        self.gauge_vus(n, true);
    }

    /// The executor's final "all VUs stopped": it shows on the time series
    /// but, as in k6, not in the run's `vus` minimum.
    pub fn end_vus(&self) {
        self.gauge_vus(0, false);
    }

    fn gauge_vus(&self, n: u32, extremes: bool) {
        let sec = self.sec_index(Instant::now());
        let mut g = lock(&self.vus);
        g.active = n;
        if extremes {
            g.max_active = g.max_active.max(n);
            g.min_active = Some(g.min_active.map_or(n, |m| m.min(n)));
        }
        if g.per_second.len() <= sec {
            g.per_second.resize(sec + 1, None);
        }
        let slot = &mut g.per_second[sec];
        *slot = Some(match *slot {
            Some((max, _)) => (max.max(n), n),
            None => (n, n),
        });
    }

    /// VUs running now and VUs allocated, for the progress line.
    pub fn vus_now(&self) -> (u32, u32) {
        let g = lock(&self.vus);
        (g.active, g.allocated)
    }

    pub fn set_allocated_vus(&self, n: u32) {
        let mut g = lock(&self.vus);
        g.allocated = g.allocated.max(n);
    }

    /// Merges every shard into the final figures.
    pub fn totals(&self) -> Totals {
        let mut t = Totals {
            req: None,
            iter: None,
            statuses: StatusCounts::default(),
            requests: 0,
            failed: 0,
            iterations: 0,
            dropped: 0,
            interrupted: 0,
            checks: self
                .names
                .checks
                .iter()
                .map(|n| PassFail {
                    name: n.to_string(),
                    ..Default::default()
                })
                .collect(),
            rates: self
                .names
                .rates
                .iter()
                .map(|n| PassFail {
                    name: n.to_string(),
                    ..Default::default()
                })
                .collect(),
            targets: Vec::new(),
            seconds: Vec::new(),
            vus_per_second: Vec::new(),
            vus_min: 0,
            vus_max: 0,
            vus_allocated: 0,
        };
        for shard in self.shards.iter() {
            let s = lock(shard);
            merge_hist(&mut t.req, &s.req);
            merge_hist(&mut t.iter, &s.iter);
            t.statuses.merge(&s.statuses);
            t.requests += s.requests;
            t.failed += s.failed;
            t.iterations += s.iterations;
            t.dropped += s.dropped;
            t.interrupted += s.interrupted;
            for (dst, src) in t.checks.iter_mut().zip(&s.checks) {
                dst.passes += src[0];
                dst.fails += src[1];
            }
            for (dst, src) in t.rates.iter_mut().zip(&s.rates) {
                dst.passes += src[0];
                dst.fails += src[1];
            }
            if t.targets.len() < s.targets.len() {
                t.targets.resize(s.targets.len(), TargetCount::default());
            }
            for (dst, src) in t.targets.iter_mut().zip(&s.targets) {
                dst.merge(src);
            }
            if t.seconds.len() < s.seconds.len() {
                t.seconds.resize_with(s.seconds.len(), Second::default);
            }
            for (dst, src) in t.seconds.iter_mut().zip(&s.seconds) {
                dst.merge(src);
            }
        }
        let g = lock(&self.vus);
        let mut current = 0;
        let n = g.per_second.len().max(t.seconds.len());
        for i in 0..n {
            match g.per_second.get(i).copied().flatten() {
                Some((max, end)) => {
                    t.vus_per_second.push(max.max(current));
                    current = end;
                }
                None => t.vus_per_second.push(current),
            }
        }
        t.vus_min = g.min_active.unwrap_or(0);
        t.vus_max = g.max_active;
        t.vus_allocated = g.allocated.max(g.max_active);
        t
    }
}

fn merge_hist(dst: &mut Option<Histogram<u64>>, src: &Histogram<u64>) {
    match dst {
        Some(d) => {
            let _ = d.add(src);
        }
        None => *dst = Some(src.clone()),
    }
}

/// A VU's handle for recording (cheap to clone).
#[derive(Clone)]
pub struct Recorder {
    metrics: std::sync::Arc<Metrics>,
    shard: usize,
}

impl Recorder {
    fn shard(&self) -> MutexGuard<'_, Shard> {
        lock(&self.metrics.shards[self.shard])
    }

    /// One HTTP request to target `target` (index of its base URL) that
    /// ended at `done` after `latency`.
    pub fn request(
        &self,
        target: usize,
        done: Instant,
        latency: Duration,
        status: Status<'_>,
        failed: bool,
    ) {
        let us = micros(latency);
        let sec = self.metrics.sec_index(done);
        self.metrics.live_requests.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.metrics.live_failed.fetch_add(1, Ordering::Relaxed);
        }
        let mut guard = self.shard();
        // Reborrow once so the fields can be borrowed apart.
        let s = &mut *guard;
        s.req.saturating_record(us);
        s.statuses.add(status, 1);
        s.requests += 1;
        s.failed += u64::from(failed);
        if s.targets.len() <= target {
            s.targets.resize(target + 1, TargetCount::default());
        }
        let t = &mut s.targets[target];
        t.requests += 1;
        t.failed += u64::from(failed);
        t.no_answer += u64::from(matches!(status, Status::Timeout | Status::ConnError));
        if s.seconds.len() <= sec {
            s.seconds.resize_with(sec + 1, Second::default);
        }
        let b = &mut s.seconds[sec];
        b.requests += 1;
        b.failed += u64::from(failed);
        // The one allocation per shard per second: a fresh bucket histogram.
        b.hist
            .get_or_insert_with(|| s.second_template.clone())
            .saturating_record(us);
    }

    /// One finished iteration.
    pub fn iteration(&self, done: Instant, duration: Duration) {
        let sec = self.metrics.sec_index(done);
        self.metrics.live_iterations.fetch_add(1, Ordering::Relaxed);
        let mut s = self.shard();
        s.iter.saturating_record(micros(duration));
        s.iterations += 1;
        s.second(sec).iterations += 1;
    }

    /// An iteration the schedule wanted but no free VU could start.
    pub fn dropped(&self, at: Instant) {
        let sec = self.metrics.sec_index(at);
        let mut s = self.shard();
        s.dropped += 1;
        s.second(sec).dropped += 1;
    }

    /// Iterations cut off at the end of the graceful stop.
    pub fn interrupted(&self, n: u64) {
        self.shard().interrupted += n;
    }

    pub fn check(&self, id: usize, ok: bool) {
        if let Some(c) = self.shard().checks.get_mut(id) {
            c[usize::from(!ok)] += 1;
        }
    }

    pub fn rate(&self, id: usize, ok: bool) {
        if let Some(c) = self.shard().rates.get_mut(id) {
            c[usize::from(!ok)] += 1;
        }
    }
}

/// The merged figures of a run.
#[derive(Debug, Clone)]
pub struct Totals {
    pub req: Option<Histogram<u64>>,
    pub iter: Option<Histogram<u64>>,
    pub statuses: StatusCounts,
    pub requests: u64,
    pub failed: u64,
    pub iterations: u64,
    pub dropped: u64,
    pub interrupted: u64,
    pub checks: Vec<PassFail>,
    pub rates: Vec<PassFail>,
    /// Per base URL, in the order given; shorter when the last URLs got
    /// no request at all.
    pub targets: Vec<TargetCount>,
    pub seconds: Vec<Second>,
    pub vus_per_second: Vec<u32>,
    pub vus_min: u32,
    pub vus_max: u32,
    pub vus_allocated: u32,
}

/// avg / min / med / max / p90 / p95 / p99 of a duration histogram, in ms.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Trend {
    pub count: u64,
    pub avg_ms: f64,
    pub min_ms: f64,
    pub med_ms: f64,
    pub max_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

impl Trend {
    pub fn of(h: Option<&Histogram<u64>>) -> Self {
        let Some(h) = h.filter(|h| !h.is_empty()) else {
            return Self::default();
        };
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            avg_ms: h.mean() / 1000.0,
            min_ms: ms(h.min()),
            med_ms: ms(h.value_at_quantile(0.5)),
            max_ms: ms(h.max()),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
        }
    }

    /// The value of `p(q)` for the percentiles a threshold may name.
    pub fn percentile(h: Option<&Histogram<u64>>, q: f64) -> f64 {
        h.filter(|h| !h.is_empty())
            .map_or(0.0, |h| h.value_at_quantile(q / 100.0) as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn percentiles_of_known_inputs() {
        let mut h = histogram(3).expect("hist");
        // 1 ms, 2 ms, …, 1000 ms
        for ms in 1..=1000u64 {
            h.record(ms * 1000).expect("in range");
        }
        let t = Trend::of(Some(&h));
        let near = |a: f64, b: f64| (a - b).abs() <= b * 0.001 + 1e-9;
        assert_eq!(t.count, 1000);
        assert!(near(t.min_ms, 1.0), "{t:?}");
        assert!(near(t.max_ms, 1000.0), "{t:?}");
        assert!(near(t.avg_ms, 500.5), "{t:?}");
        assert!(near(t.med_ms, 500.0), "{t:?}");
        assert!(near(t.p90_ms, 900.0), "{t:?}");
        assert!(near(t.p95_ms, 950.0), "{t:?}");
        assert!(near(t.p99_ms, 990.0), "{t:?}");
        let p999 = Trend::percentile(Some(&h), 99.9);
        // the 999th or 1000th value, depending on float rounding of the rank
        assert!((999.0..=1001.0).contains(&p999), "p99.9 = {p999}");
        assert_eq!(Trend::of(None), Trend::default());
    }

    #[test]
    fn skewed_latencies() {
        // 990 fast (5 ms) and 10 slow (3 s) requests: p99 still fast, max slow.
        let mut h = histogram(3).expect("hist");
        h.record_n(5_000, 990).expect("ok");
        h.record_n(3_000_000, 10).expect("ok");
        let t = Trend::of(Some(&h));
        assert!((t.p99_ms - 5.0).abs() < 0.01, "{t:?}");
        assert!((t.max_ms - 3000.0).abs() < 3.0, "{t:?}");
        assert!(Trend::percentile(Some(&h), 99.5) > 2990.0);
    }

    #[test]
    fn shards_merge_into_totals() {
        let names = Names {
            checks: vec!["ok"],
            rates: vec!["r"],
        };
        let m = Arc::new(Metrics::new(names, 3).expect("metrics"));
        let now = m.origin();
        for vu in 0..6u32 {
            let r = m.recorder(vu);
            // Two base URLs: the first answers, the second refuses.
            r.request(
                0,
                now,
                Duration::from_millis(10),
                Status::Http(201, None),
                false,
            );
            r.request(
                1,
                now + Duration::from_millis(1500),
                Duration::from_millis(20),
                Status::Http(409, Some("COUPON_SOLD_OUT")),
                true,
            );
            r.check(0, vu % 2 == 0);
            r.rate(0, true);
            r.iteration(now, Duration::from_millis(30));
        }
        m.recorder(0)
            .request(1, now, Duration::from_secs(5), Status::Timeout, true);
        m.set_active_vus(6);
        let t = m.totals();
        assert_eq!(t.requests, 13);
        assert_eq!(t.failed, 7);
        assert_eq!(t.iterations, 6);
        assert_eq!(t.statuses.class(2), 6);
        assert_eq!(t.statuses.class(4), 6);
        assert_eq!(t.statuses.timeouts, 1);
        let sold_out = t
            .statuses
            .by_status
            .iter()
            .find(|e| e.status == 409)
            .expect("409");
        assert_eq!(&*sold_out.code, "COUPON_SOLD_OUT");
        assert_eq!(
            t.checks[0],
            PassFail {
                name: "ok".into(),
                passes: 3,
                fails: 3
            }
        );
        assert_eq!(t.rates[0].passes, 6);
        assert_eq!(
            t.targets,
            vec![
                TargetCount {
                    requests: 6,
                    failed: 0,
                    no_answer: 0
                },
                TargetCount {
                    requests: 7,
                    failed: 7,
                    no_answer: 1
                },
            ]
        );
        assert_eq!(t.seconds.len(), 2);
        assert_eq!(t.seconds[0].requests, 7);
        assert_eq!(t.seconds[1].requests, 6);
        assert_eq!(t.seconds[1].failed, 6);
        assert_eq!(t.vus_max, 6);
        assert_eq!(t.vus_per_second, vec![6, 6]);
        assert_eq!(t.req.as_ref().map(|h| h.len()), Some(13));
    }
}
