//! The fast admission tier: a counter of available units per stock key,
//! checked before the durable store is touched, so a sold-out request is
//! refused in microseconds.
//!
//! The tier mirrors the store: it is loaded from the store at start, and
//! every change of stock goes through it — decreases are taken here first
//! (and released if the store then refuses), increases are added after the
//! store committed them. A key the tier does not know (a settled deal, an
//! unknown id) passes through to the store, which stays the final judge.

use hotdeal_domain::StockKey;
use std::collections::BTreeMap;

/// Units taken from the tier for one request; give them back with
/// [`StockAdmission::release`] if the store refuses.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub taken: Vec<(StockKey, i64)>,
}

/// Why the tier refused: `key` has only `available` units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub key: StockKey,
    pub requested: i64,
    pub available: i64,
}

pub trait StockAdmission: Send + Sync + 'static {
    /// Starts tracking `key` with `units` available (replacing any count).
    fn open(&self, key: StockKey, units: i64);

    /// Stops tracking `key` (a deal that gave its units back).
    fn close(&self, key: StockKey);

    /// Takes every demand, or none. Keys the tier does not track are
    /// skipped (left to the store).
    fn admit(&self, demand: &BTreeMap<StockKey, i64>) -> Result<Admitted, Refused>;

    /// Gives back what [`admit`](Self::admit) took.
    fn release(&self, admitted: &Admitted);

    /// Adds units that the store committed (a cancel, a restock, a deal's
    /// unsold units going back). Ignored for untracked keys.
    fn restock(&self, key: StockKey, units: i64);

    /// The units available now, if tracked.
    fn available(&self, key: StockKey) -> Option<i64>;
}
