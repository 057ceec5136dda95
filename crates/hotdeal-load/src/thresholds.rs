//! k6-style thresholds: a metric, an expression like `p(95)<2000` or
//! `rate<0.01`, evaluated on the final figures. Scenarios may add verdicts
//! of their own (fifo's "users 1..10 win") as already-evaluated results.

use crate::metrics::{PassFail, Totals, Trend};
use crate::report::format::{fmt_ms, fmt_pct};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cmp {
    Lt,
    Gt,
    Eq,
}

impl Cmp {
    fn holds(self, actual: f64, limit: f64) -> bool {
        match self {
            Cmp::Lt => actual < limit,
            Cmp::Gt => actual > limit,
            Cmp::Eq => (actual - limit).abs() < 1e-12,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Cmp::Lt => "<",
            Cmp::Gt => ">",
            Cmp::Eq => "==",
        }
    }
}

/// A threshold of the scenario table.
#[derive(Debug, Clone, PartialEq)]
pub enum Threshold {
    /// `http_req_duration: p(Q) < MS`
    Duration { q: f64, cmp: Cmp, ms: f64 },
    /// `http_req_failed: rate < R`
    Failed { cmp: Cmp, rate: f64 },
    /// A rate metric of the scenario (e.g. `order_success: rate > 0.98`).
    Rate {
        name: &'static str,
        cmp: Cmp,
        rate: f64,
    },
}

/// A threshold with its verdict.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ThresholdResult {
    pub metric: String,
    pub expr: String,
    pub actual: String,
    pub pass: bool,
}

fn num(x: f64) -> String {
    // `2000`, `0.1`, `0.98` — as one would write them in a k6 script.
    let s = format!("{x}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

impl Threshold {
    pub fn evaluate(&self, totals: &Totals) -> ThresholdResult {
        match self {
            Threshold::Duration { q, cmp, ms } => {
                let actual = Trend::percentile(totals.req.as_ref(), *q);
                let p = format!("p({})", num(*q));
                ThresholdResult {
                    metric: "http_req_duration".into(),
                    expr: format!("{p}{}{}", cmp.symbol(), num(*ms)),
                    actual: format!("{p}={}", fmt_ms(actual)),
                    // No request at all is not a pass.
                    pass: totals.requests > 0 && cmp.holds(actual, *ms),
                }
            }
            Threshold::Failed { cmp, rate } => {
                let actual = crate::metrics::ratio(totals.failed, totals.requests);
                ThresholdResult {
                    metric: "http_req_failed".into(),
                    expr: format!("rate{}{}", cmp.symbol(), num(*rate)),
                    actual: format!("rate={}", fmt_pct(actual)),
                    pass: totals.requests > 0 && cmp.holds(actual, *rate),
                }
            }
            Threshold::Rate { name, cmp, rate } => {
                let pf = totals
                    .rates
                    .iter()
                    .find(|r| r.name == *name)
                    .cloned()
                    .unwrap_or_else(|| PassFail {
                        name: name.to_string(),
                        ..Default::default()
                    });
                ThresholdResult {
                    metric: name.to_string(),
                    expr: format!("rate{}{}", cmp.symbol(), num(*rate)),
                    actual: format!("rate={}", fmt_pct(pf.rate())),
                    pass: pf.total() > 0 && cmp.holds(pf.rate(), *rate),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Metrics, Names, Status};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn thresholds_in_k6_notation() {
        let m = Arc::new(
            Metrics::new(
                Names {
                    checks: vec![],
                    rates: vec!["order_success"],
                },
                1,
            )
            .expect("m"),
        );
        let r = m.recorder(0);
        let now = m.origin();
        for i in 0..100u64 {
            r.request(
                0,
                now,
                Duration::from_millis(10 + i),
                Status::Http(201, None),
                i >= 98,
            );
            r.rate(0, i != 0);
        }
        let t = m.totals();
        let p95 = Threshold::Duration {
            q: 95.0,
            cmp: Cmp::Lt,
            ms: 2000.0,
        }
        .evaluate(&t);
        assert_eq!(p95.metric, "http_req_duration");
        assert_eq!(p95.expr, "p(95)<2000");
        assert!(p95.pass);
        assert!(p95.actual.starts_with("p(95)=104"), "{}", p95.actual);
        let p99 = Threshold::Duration {
            q: 99.0,
            cmp: Cmp::Lt,
            ms: 100.0,
        }
        .evaluate(&t);
        assert!(!p99.pass);
        let failed = Threshold::Failed {
            cmp: Cmp::Lt,
            rate: 0.01,
        }
        .evaluate(&t);
        assert_eq!(failed.expr, "rate<0.01");
        assert_eq!(failed.actual, "rate=2.00%");
        assert!(!failed.pass);
        assert!(
            Threshold::Failed {
                cmp: Cmp::Lt,
                rate: 0.1
            }
            .evaluate(&t)
            .pass
        );
        let ok = Threshold::Rate {
            name: "order_success",
            cmp: Cmp::Gt,
            rate: 0.98,
        }
        .evaluate(&t);
        assert_eq!(ok.actual, "rate=99.00%");
        assert!(ok.pass);
        assert!(
            !Threshold::Failed {
                cmp: Cmp::Eq,
                rate: 0.0
            }
            .evaluate(&t)
            .pass
        );
    }
}
