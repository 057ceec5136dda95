//! The piecewise-linear target of k6's `stages`, and the exact instants at
//! which a ramping-vus executor must add or remove a VU.
//!
//! Computing the change instants up front (instead of polling the target on
//! a timer) makes the executor cheap — one timer wake per VU change — and
//! makes the schedule testable without running anything.

use std::time::Duration;

use crate::config::Stage;

/// A target that starts at `start` and moves linearly to each stage's
/// target over the stage's duration.
#[derive(Debug, Clone)]
pub struct Ramp {
    start: f64,
    stages: Vec<Stage>,
}

/// Slack for float comparisons: targets are whole numbers in practice and a
/// product like `49/49*30` must not land a hair below an integer.
const EPS: f64 = 1e-9;

impl Ramp {
    pub fn new(start: f64, stages: Vec<Stage>) -> Self {
        Self { start, stages }
    }

    pub fn total(&self) -> Duration {
        self.stages.iter().map(|s| s.duration).sum()
    }

    /// The stage containing `t`, as (from, to, stage start, stage duration).
    /// Past the end, the last stage's end value holds.
    fn segment(&self, t: Duration) -> (f64, f64, Duration, Duration) {
        let mut from = self.start;
        let mut begin = Duration::ZERO;
        for s in &self.stages {
            if t < begin + s.duration {
                return (from, s.target, begin, s.duration);
            }
            from = s.target;
            begin += s.duration;
        }
        (from, from, begin, Duration::ZERO)
    }

    /// The interpolated target at `t` (fractional).
    pub fn target_at(&self, t: Duration) -> f64 {
        let (from, to, begin, dur) = self.segment(t);
        if dur.is_zero() {
            return to;
        }
        let frac = (t - begin).as_secs_f64() / dur.as_secs_f64();
        from + (to - from) * frac
    }

    /// Whole VUs running at `t`. A VU joins when a rising target reaches its
    /// number and leaves when a falling target drops to the number below it:
    /// so a ramp-down keeps every VU at its start and reaches zero exactly at
    /// its end, like a ramp-up reaches its target exactly at its end.
    pub fn vus_at(&self, t: Duration) -> u32 {
        let (from, to, _, _) = self.segment(t);
        let v = self.target_at(t);
        let n = if to >= from {
            (v + EPS).floor()
        } else {
            (v - EPS).ceil()
        };
        n.max(0.0) as u32
    }

    /// Every instant the whole-VU count changes, with the new count, in
    /// time order; the first entry is `(0, vus at 0)`.
    pub fn vu_changes(&self) -> Vec<(Duration, u32)> {
        let mut out = vec![(Duration::ZERO, self.vus_at(Duration::ZERO))];
        let mut from = self.start;
        let mut begin = Duration::ZERO;
        for s in &self.stages {
            let to = s.target;
            let d = s.duration.as_secs_f64();
            let at = |v: f64| {
                begin + Duration::from_secs_f64(((v - from) / (to - from)).clamp(0.0, 1.0) * d)
            };
            if to > from {
                let first = (from + EPS).floor() as i64 + 1;
                let last = (to + EPS).floor() as i64;
                for n in first..=last {
                    out.push((at(n as f64), n as u32));
                }
            } else if to < from {
                let first = (from - EPS).ceil() as i64 - 1;
                let last = (to - EPS).ceil().max(0.0) as i64;
                let mut n = first;
                while n >= last {
                    out.push((at(n as f64), n as u32));
                    n -= 1;
                }
            }
            from = to;
            begin += s.duration;
        }
        // A zero-length stage can emit a change at the same instant as its
        // neighbour; keep the last count for each instant.
        out.dedup_by(|later, earlier| {
            if later.0 == earlier.0 {
                earlier.1 = later.1;
                true
            } else {
                false
            }
        });
        out
    }

    /// The largest whole-VU count over the ramp (k6's `vus_max` for it).
    pub fn max_vus(&self) -> u32 {
        self.vu_changes().iter().map(|c| c.1).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn order_stress_shape() {
        // 1→50 in 30s, hold 60s, →0 in 10s.
        let r = Ramp::new(
            1.0,
            vec![
                Stage::secs(30, 50.0),
                Stage::secs(60, 50.0),
                Stage::secs(10, 0.0),
            ],
        );
        assert_eq!(r.total(), secs(100.0));
        assert_eq!(r.vus_at(secs(0.0)), 1);
        assert!((r.target_at(secs(15.0)) - 25.5).abs() < 1e-9);
        assert_eq!(r.vus_at(secs(15.0)), 25);
        assert_eq!(r.vus_at(secs(30.0)), 50);
        assert_eq!(r.vus_at(secs(60.0)), 50);
        // Ramp-down: still 50 right after it starts, 25 at its middle.
        assert_eq!(r.vus_at(secs(90.001)), 50);
        assert_eq!(r.vus_at(secs(95.0)), 25);
        assert_eq!(r.vus_at(secs(99.99)), 1);
        assert_eq!(r.vus_at(secs(100.0)), 0);
        assert_eq!(r.max_vus(), 50);
    }

    #[test]
    fn change_instants_are_exact() {
        let r = Ramp::new(
            0.0,
            vec![
                Stage::secs(10, 10.0),
                Stage::secs(5, 10.0),
                Stage::secs(10, 0.0),
            ],
        );
        let c = r.vu_changes();
        // initial 0, ten adds, ten removals
        assert_eq!(c.len(), 21);
        assert_eq!(c[0], (Duration::ZERO, 0));
        assert_eq!(c[1], (secs(1.0), 1));
        assert_eq!(c[10], (secs(10.0), 10));
        // first removal one second into the ramp-down, last one at its end
        assert_eq!(c[11].1, 9);
        assert!((c[11].0.as_secs_f64() - 16.0).abs() < 1e-6);
        assert_eq!(c[20].1, 0);
        assert!((c[20].0.as_secs_f64() - 25.0).abs() < 1e-6);
        // the change list agrees with vus_at between changes
        for w in c.windows(2) {
            let mid = (w[0].0 + w[1].0) / 2;
            assert_eq!(r.vus_at(mid), w[0].1, "at {mid:?}");
        }
    }

    #[test]
    fn order_spike_shape() {
        // 0→10 in 30s, →100 in 30s, →0 in 30s
        let r = Ramp::new(
            0.0,
            vec![
                Stage::secs(30, 10.0),
                Stage::secs(30, 100.0),
                Stage::secs(30, 0.0),
            ],
        );
        assert_eq!(r.vus_at(secs(3.0)), 1);
        assert_eq!(r.vus_at(secs(45.0)), 55);
        assert_eq!(r.max_vus(), 100);
        let c = r.vu_changes();
        assert_eq!(c.first(), Some(&(Duration::ZERO, 0)));
        assert_eq!(c.last().map(|x| x.1), Some(0));
        assert!(c.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn constant_is_one_step() {
        let r = Ramp::new(100.0, vec![Stage::secs(300, 100.0)]);
        assert_eq!(r.vu_changes(), vec![(Duration::ZERO, 100)]);
        assert_eq!(r.vus_at(secs(299.0)), 100);
    }
}
