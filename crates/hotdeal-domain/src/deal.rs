//! A deal's window and the status the API shows for it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// When a deal runs: `[starts_at, ends_at)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DealWindow {
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

/// What a deal is doing at a given instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DealStatus {
    /// Before `starts_at`.
    Scheduled,
    /// Inside the window with units left.
    Active,
    /// Inside the window with no unit left.
    SoldOut,
    /// At or after `ends_at`.
    Ended,
}

impl DealWindow {
    /// A window whose end is not after its start is rejected.
    pub fn new(starts_at: DateTime<Utc>, ends_at: DateTime<Utc>) -> Option<Self> {
        (ends_at > starts_at).then_some(Self { starts_at, ends_at })
    }

    /// Whether `now` lies inside the window.
    pub fn is_running(&self, now: DateTime<Utc>) -> bool {
        self.starts_at <= now && now < self.ends_at
    }

    /// The status shown to clients. It is computed from the clock on every
    /// read rather than stored, so it can never go stale.
    pub fn status(&self, now: DateTime<Utc>, remaining: i64) -> DealStatus {
        if now < self.starts_at {
            DealStatus::Scheduled
        } else if now >= self.ends_at {
            DealStatus::Ended
        } else if remaining <= 0 {
            DealStatus::SoldOut
        } else {
            DealStatus::Active
        }
    }
}

impl DealStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Active => "active",
            Self::SoldOut => "sold_out",
            Self::Ended => "ended",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn status_follows_the_clock_and_the_stock() {
        let t0 = Utc::now();
        let w = DealWindow::new(t0, t0 + Duration::hours(1)).expect("valid window");
        assert_eq!(
            w.status(t0 - Duration::seconds(1), 5),
            DealStatus::Scheduled
        );
        assert_eq!(w.status(t0, 5), DealStatus::Active);
        assert_eq!(w.status(t0, 0), DealStatus::SoldOut);
        assert_eq!(w.status(t0 + Duration::hours(1), 5), DealStatus::Ended);
        assert_eq!(w.status(t0 + Duration::hours(1), 0), DealStatus::Ended);
    }

    #[test]
    fn empty_or_inverted_windows_are_rejected() {
        let t0 = Utc::now();
        assert!(DealWindow::new(t0, t0).is_none());
        assert!(DealWindow::new(t0, t0 - Duration::seconds(1)).is_none());
    }
}
