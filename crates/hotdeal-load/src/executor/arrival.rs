//! When the open-model executors start iterations.
//!
//! * ramping-arrival-rate follows k6's `cal`: the rate moves linearly over
//!   each stage, and iteration *k* (k = 1, 2, …) starts at the instant the
//!   area under the rate curve reaches *k*. So 0→10/s over 10 s starts 50
//!   iterations, the first at √2 s and the last at 10 s; the seed's e2e case 2
//!   (0→5→10→15→20/s) starts 312 of them.
//! * constant-arrival-rate starts one iteration every `1/rate` from t = 0 while
//!   t < duration, i.e. `rate × duration` iterations, like k6's.
//!
//! Both are plain iterators of offsets from the start of the measured phase,
//! so the executor only sleeps to the next offset, and the tests check the
//! schedule without any clock.

use std::time::Duration;

use crate::config::Stage;

/// Iteration start offsets of a ramping-arrival-rate executor.
#[derive(Debug, Clone)]
pub struct RampingArrivals {
    stages: Vec<Stage>,
    /// Index of the stage the next iteration falls in.
    stage: usize,
    /// Rate at the beginning of `stage` (iterations/s).
    from: f64,
    /// Area (iterations) accumulated before `stage`.
    done_before: f64,
    /// Offset at which `stage` begins.
    stage_start: Duration,
    /// The area value of the next iteration to emit.
    next: f64,
}

/// Float slack so an area that is 50 in exact arithmetic is not 49.999…
const EPS: f64 = 1e-9;

impl RampingArrivals {
    pub fn new(start_rate: f64, stages: Vec<Stage>) -> Self {
        Self {
            stages,
            stage: 0,
            from: start_rate,
            done_before: 0.0,
            stage_start: Duration::ZERO,
            next: 1.0,
        }
    }

    /// Total iterations the schedule will start.
    pub fn planned(start_rate: f64, stages: &[Stage]) -> u64 {
        let mut from = start_rate;
        let mut area = 0.0;
        for s in stages {
            area += (from + s.target) / 2.0 * s.duration.as_secs_f64();
            from = s.target;
        }
        (area + EPS).floor() as u64
    }
}

impl Iterator for RampingArrivals {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        loop {
            let s = *self.stages.get(self.stage)?;
            let d = s.duration.as_secs_f64();
            let to = s.target;
            let end_area = self.done_before + (self.from + to) / 2.0 * d;
            if self.next <= end_area + EPS && d > 0.0 {
                // Solve  from·τ + (to−from)/(2d)·τ² = x  for τ ≥ 0, in the
                // form that stays exact when the rate is flat (a = 0) and
                // never divides by zero when it starts at 0 (b = 0).
                let x = self.next - self.done_before;
                let a = (to - self.from) / (2.0 * d);
                let b = self.from;
                let disc = (b * b + 4.0 * a * x).max(0.0);
                let denom = b + disc.sqrt();
                let tau = if x <= 0.0 {
                    0.0
                } else if denom > 0.0 {
                    (2.0 * x / denom).min(d)
                } else {
                    d
                };
                self.next += 1.0;
                return Some(self.stage_start + Duration::from_secs_f64(tau));
            }
            self.done_before = end_area;
            self.from = to;
            self.stage_start += s.duration;
            self.stage += 1;
        }
    }
}

/// Iteration start offsets of a constant-arrival-rate executor.
#[derive(Debug, Clone)]
pub struct ConstantArrivals {
    period: f64,
    duration: Duration,
    k: u64,
}

impl ConstantArrivals {
    pub fn new(rate: f64, duration: Duration) -> Self {
        let period = if rate > 0.0 {
            1.0 / rate
        } else {
            f64::INFINITY
        };
        Self {
            period,
            duration,
            k: 0,
        }
    }
}

impl Iterator for ConstantArrivals {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let t = self.k as f64 * self.period;
        if !t.is_finite() || t + EPS >= self.duration.as_secs_f64() {
            return None;
        }
        self.k += 1;
        Some(Duration::from_secs_f64(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Duration, b: f64) -> bool {
        (a.as_secs_f64() - b).abs() < 1e-6
    }

    #[test]
    fn zero_to_ten_over_ten_seconds_starts_fifty() {
        let starts: Vec<_> = RampingArrivals::new(0.0, vec![Stage::secs(10, 10.0)]).collect();
        assert_eq!(starts.len(), 50);
        assert_eq!(RampingArrivals::planned(0.0, &[Stage::secs(10, 10.0)]), 50);
        // area t²/2 = k  ⇒  t = √(2k)
        assert!(close(starts[0], 2f64.sqrt()));
        assert!(close(starts[7], 4.0));
        assert!(close(starts[49], 10.0));
        assert!(starts.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn flat_and_falling_stages() {
        // 5/s flat for 2 s, then 5→0 over 2 s: 10 + 5 = 15 iterations.
        let starts: Vec<_> =
            RampingArrivals::new(5.0, vec![Stage::secs(2, 5.0), Stage::secs(2, 0.0)]).collect();
        assert_eq!(starts.len(), 15);
        assert!(close(starts[0], 0.2));
        assert!(close(starts[9], 2.0));
        // falling: area 5τ − 1.25τ² = 1  ⇒  τ = (5 − √20)/2.5
        assert!(close(starts[10], 2.0 + (5.0 - 20f64.sqrt()) / 2.5));
        assert!(close(starts[14], 4.0));
    }

    #[test]
    fn seed_004_e2e_cases() {
        let case = |rates: &[(u64, f64)]| -> u64 {
            let stages: Vec<_> = rates.iter().map(|&(d, r)| Stage::secs(d, r)).collect();
            let n = RampingArrivals::new(0.0, stages.clone()).count() as u64;
            assert_eq!(n, RampingArrivals::planned(0.0, &stages));
            n
        };
        // 936 checks / 3 per iteration in the seed
        assert_eq!(case(&[(10, 5.0), (10, 10.0), (10, 15.0), (5, 20.0)]), 312);
        // the seed counted 429: its last iteration falls exactly on the end
        assert_eq!(
            case(&[(10, 6.0), (10, 8.0), (10, 10.0), (10, 12.0), (10, 14.0)]),
            430
        );
        assert_eq!(
            case(&[
                (5, 20.0),
                (5, 40.0),
                (5, 80.0),
                (5, 160.0),
                (5, 320.0),
                (5, 160.0)
            ]),
            3500
        );
    }

    #[test]
    fn constant_rate_starts_at_zero() {
        let starts: Vec<_> = ConstantArrivals::new(5.0, Duration::from_secs(10)).collect();
        assert_eq!(starts.len(), 50);
        assert_eq!(starts[0], Duration::ZERO);
        assert!(close(starts[1], 0.2));
        assert!(close(starts[49], 9.8));
        assert_eq!(
            ConstantArrivals::new(0.0, Duration::from_secs(10)).count(),
            0
        );
    }
}
