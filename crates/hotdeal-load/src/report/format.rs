//! k6's text conventions: dotted metric lines, durations like `9.23ms` /
//! `1.52s` / `1m3.5s`, percentages with two decimals.

use crate::metrics::Trend;

/// Width of the dotted name column, as in k6's end-of-test summary.
pub const NAME_WIDTH: usize = 31;

/// `name.....: value` with the name padded by dots to `width`.
pub fn line(name: &str, value: &str, width: usize) -> String {
    format!("{name:.<width$}: {value}")
}

/// `12345  2468.9/s`
pub fn count_rate(count: u64, per_s: f64) -> String {
    format!("{count:<6} {}", fmt_rate(per_s))
}

pub fn fmt_rate(per_s: f64) -> String {
    if per_s >= 100.0 {
        format!("{per_s:.1}/s")
    } else {
        format!("{per_s:.2}/s")
    }
}

/// `0.16%  12 out of 7500`
pub fn rate_of(rate: f64, hits: u64, total: u64) -> String {
    format!("{:<6} {hits} out of {total}", fmt_pct(rate))
}

pub fn fmt_pct(rate: f64) -> String {
    format!("{:.2}%", rate * 100.0)
}

fn trim(x: f64) -> String {
    let s = format!("{x:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() {
        "0".into()
    } else {
        s.to_string()
    }
}

/// A duration given in milliseconds, the way k6 (Go) prints it.
pub fn fmt_ms(ms: f64) -> String {
    if !ms.is_finite() || ms <= 0.0 {
        return "0s".into();
    }
    if ms < 1.0 {
        format!("{}µs", trim(ms * 1000.0))
    } else if ms < 1000.0 {
        format!("{}ms", trim(ms))
    } else if ms < 60_000.0 {
        format!("{}s", trim(ms / 1000.0))
    } else {
        let total_s = ms / 1000.0;
        let m = (total_s / 60.0).floor();
        format!("{}m{}s", m as u64, trim(total_s - m * 60.0))
    }
}

/// `avg=… min=… med=… max=… p(90)=… p(95)=… p(99)=…`
pub fn trend(t: &Trend) -> String {
    format!(
        "avg={} min={} med={} max={} p(90)={} p(95)={} p(99)={}",
        fmt_ms(t.avg_ms),
        fmt_ms(t.min_ms),
        fmt_ms(t.med_ms),
        fmt_ms(t.max_ms),
        fmt_ms(t.p90_ms),
        fmt_ms(t.p95_ms),
        fmt_ms(t.p99_ms)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k6_lines() {
        assert_eq!(
            line("http_reqs", &count_rate(12345, 2468.9), NAME_WIDTH),
            "http_reqs......................: 12345  2468.9/s"
        );
        assert_eq!(
            line("http_req_duration", "avg=9ms", NAME_WIDTH),
            "http_req_duration..............: avg=9ms"
        );
        assert_eq!(
            line("http_req_failed", &rate_of(0.0016, 12, 7500), NAME_WIDTH),
            "http_req_failed................: 0.16%  12 out of 7500"
        );
        assert_eq!(
            line("iterations", &count_rate(1287, 25.604375), NAME_WIDTH),
            "iterations.....................: 1287   25.60/s"
        );
        // a name longer than the column is never cut
        assert_eq!(
            line("a_very_long_metric_name_indeed_xx", "1", 10),
            "a_very_long_metric_name_indeed_xx: 1"
        );
    }

    #[test]
    fn durations_like_k6() {
        assert_eq!(fmt_ms(9.23), "9.23ms");
        assert_eq!(fmt_ms(9.0), "9ms");
        assert_eq!(fmt_ms(0.8125), "812.5µs");
        assert_eq!(fmt_ms(82.84), "82.84ms");
        assert_eq!(fmt_ms(1520.0), "1.52s");
        assert_eq!(fmt_ms(23_220.0), "23.22s");
        assert_eq!(fmt_ms(63_500.0), "1m3.5s");
        assert_eq!(fmt_ms(0.0), "0s");
        assert_eq!(fmt_pct(0.3644), "36.44%");
        assert_eq!(fmt_rate(2468.94), "2468.9/s");
        assert_eq!(fmt_rate(66.956413), "66.96/s");
    }

    #[test]
    fn trend_line() {
        let t = Trend {
            count: 3,
            avg_ms: 9.23,
            min_ms: 1.2,
            med_ms: 8.0,
            max_ms: 1520.0,
            p90_ms: 15.0,
            p95_ms: 20.0,
            p99_ms: 120.5,
        };
        assert_eq!(
            trend(&t),
            "avg=9.23ms min=1.2ms med=8ms max=1.52s p(90)=15ms p(95)=20ms p(99)=120.5ms"
        );
    }
}
