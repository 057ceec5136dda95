//! The waiting room's state: who waits for which deal, in which order, and
//! who was admitted when.
//!
//! The services own everything else — signing and checking tokens, the
//! deal's window, the estimates shown to the user — so an adapter only
//! keeps the queue. Tokens are signed and carry their deal, user and join
//! number, so no adapter stores tokens: it keeps one small entry per join.
//!
//! The embedded mode keeps the queue in process memory
//! (`adapters::memory_queue`); a restart forgets it and every token reads
//! `expired` (the user joins again). The scaled mode keeps it in Redis
//! (`adapters::redis::queue`: per deal a hash from user to entry and the
//! admission times of its places, each operation one Lua script), so the
//! queue survives an instance and is shared by all of them. The trait is async for that
//! reason, and no method relies on its callers being serialised.

#[cfg(test)]
pub(crate) mod contract;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use hotdeal_domain::{DealId, UserId};

/// The queue rules of one deal, from the deal and the server's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QueueDeal {
    pub id: DealId,
    /// When the deal opens: joins before it are shuffled once at this time,
    /// and admission starts.
    pub opens_at: DateTime<Utc>,
    /// Users admitted per second while someone waits.
    pub admit_per_sec: u32,
    /// How long an admitted token may be used for an order.
    pub admitted_for: Duration,
    /// Fastest and slowest poll interval the answers may ask for.
    pub poll_min: Duration,
    pub poll_max: Duration,
}

/// Where one join stands.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ticket {
    /// The join's number in its deal's queue; with the deal and the user it
    /// names the token. A user who joins again after an expired or used
    /// token gets a new number.
    pub seq: u32,
    pub state: TicketState,
    /// Users admitted per second, as measured over the last seconds while
    /// users waited (the configured rate until there is a measurement).
    pub rate: f64,
    /// How long the client should wait before asking again.
    pub poll_after: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TicketState {
    /// Joined before the opening: the place is drawn at opening among
    /// `pool` early joiners (the user's place is at most `pool`).
    Drawing { pool: u64 },
    /// Waiting behind `ahead` users who are not admitted yet.
    Waiting { ahead: u64 },
    /// May order until `until`, once.
    Admitted { until: DateTime<Utc> },
    /// Used for an order, past `admitted_until`, replaced by a newer join,
    /// or unknown to the queue (its deal ended, or the queue was lost).
    Expired { until: Option<DateTime<Utc>> },
}

impl Ticket {
    /// The answer for a join the queue does not know (its deal ended, the
    /// queue was lost, or the user joined again since).
    pub fn expired(seq: u32, deal: &QueueDeal) -> Self {
        Self {
            seq,
            state: TicketState::Expired { until: None },
            rate: f64::from(deal.admit_per_sec),
            poll_after: deal.poll_max,
        }
    }

    /// Live: waiting, or admitted and still usable.
    pub fn is_live(&self) -> bool {
        !matches!(self.state, TicketState::Expired { .. })
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueueError {
    /// Polled sooner than the last answer's `poll_after`.
    #[error("polled too soon; retry in {retry_in}")]
    TooSoon { retry_in: Duration },
    /// The queue holds as many users as it may.
    #[error("the waiting room is full")]
    Full,
    /// The queue's engine failed.
    #[error("queue backend: {0}")]
    Backend(String),
}

/// Why an order may not use a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAdmitted {
    /// Still waiting (or drawing).
    Waiting,
    /// Used, lapsed, replaced, or unknown.
    Expired,
    /// Another order with this token is being placed right now.
    InUse,
    /// The queue's engine failed; the client may retry.
    Unavailable,
}

/// One deal's queue at a glance, for metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueStats {
    pub deal: DealId,
    /// Joined and not admitted yet.
    pub waiting: u64,
    /// Admitted so far.
    pub admitted: u64,
    /// Users admitted per second, as measured while users waited.
    pub admit_per_sec: f64,
}

#[async_trait]
pub trait QueueStore: Send + Sync + 'static {
    /// Adds `user` to the deal's queue, or returns the user's live ticket
    /// when there is one (the same token again). Admission up to `now` is
    /// applied first.
    async fn join(
        &self,
        deal: &QueueDeal,
        user: UserId,
        now: DateTime<Utc>,
    ) -> Result<Ticket, QueueError>;

    /// The ticket `seq` of `user`. A poll sooner than the previous
    /// answer's `poll_after` is refused with [`QueueError::TooSoon`].
    async fn poll(
        &self,
        deal: &QueueDeal,
        user: UserId,
        seq: u32,
        now: DateTime<Utc>,
    ) -> Result<Ticket, QueueError>;

    /// Takes the admitted ticket `seq` for one order. Until
    /// [`settle`](Self::settle), no other order can take it.
    async fn claim(
        &self,
        deal: &QueueDeal,
        user: UserId,
        seq: u32,
        now: DateTime<Utc>,
    ) -> Result<(), NotAdmitted>;

    /// Ends a claim: `used` when the order committed (the token is spent),
    /// else the token is admitted again as before.
    async fn settle(&self, deal: DealId, user: UserId, seq: u32, used: bool);

    /// Deals that have a queue.
    async fn deals(&self) -> Vec<DealId>;

    /// Every deal's queue at a glance (as of its last join or poll).
    async fn stats(&self) -> Vec<QueueStats>;

    /// Drops a deal's queue (the deal ended).
    async fn forget(&self, deal: DealId);
}

/// The poll interval a ticket asks for: until the opening before it,
/// half the estimated wait while waiting (so the client sees its admission
/// soon after it happens), the slowest interval once there is nothing to
/// wait for. Always within `[poll_min, poll_max]`.
pub fn poll_after(
    deal: &QueueDeal,
    state: &TicketState,
    rate: f64,
    now: DateTime<Utc>,
) -> Duration {
    let wanted = match *state {
        TicketState::Drawing { .. } => deal.opens_at - now,
        TicketState::Waiting { ahead } => {
            let ms = (ahead as f64 + 1.0) / rate.max(0.001) * 1000.0 / 2.0;
            Duration::milliseconds(ms.min(1e12) as i64)
        }
        TicketState::Admitted { .. } | TicketState::Expired { .. } => deal.poll_max,
    };
    wanted.clamp(deal.poll_min, deal.poll_max.max(deal.poll_min))
}
