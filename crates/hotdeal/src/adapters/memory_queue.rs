//! The waiting room in process memory (the embedded mode).
//!
//! Per deal, one `Vec` of 32-byte entries in admission order and one hash
//! index from user to the user's latest entry — about 60–110 bytes per
//! waiting user, however long the queue (see `footprint` and the test that
//! queues a million users). Tokens are signed by the service, so none is
//! stored here.
//!
//! Admission is computed, not scheduled: each deal has a credit that grows
//! at its rate while someone waits, and every operation first turns the
//! credit earned since the last one into admissions, each stamped with the
//! exact moment its unit of credit was earned. So no timer task runs, the
//! answer does not depend on how often clients poll, and a manual clock
//! drives it in tests.
//!
//! Joins before the opening are shuffled once, by the first operation at
//! or after `opens_at`; credit starts at the opening, so no one is
//! admitted before it. A restart loses every queue: tokens then read
//! `expired` and their users join again (the scaled mode's Redis adapter
//! keeps the queue across instances).

use crate::ports::queue::{
    poll_after, NotAdmitted, QueueDeal, QueueError, QueueStats, QueueStore, Ticket, TicketState,
};
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use hotdeal_domain::{DealId, UserId};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use uuid::Uuid;

/// `admitted_at` of an entry not admitted yet.
const WAITING: i64 = i64::MIN;
/// `admitted_at` of an entry whose token bought something.
const USED: i64 = i64::MAX;
/// Seconds of admission a deal may bank while nobody waits: a user who
/// arrives at an idle queue goes straight in, a crowd arriving at once
/// after a lull gets at most one second's worth.
const BURST_SECS: u64 = 1;
/// One admission, in the credit's unit.
const UNIT: u64 = 1_000_000;
/// How far back the admission rate is measured.
const RATE_WINDOW_US: i64 = 10_000_000;

/// One join. 32 bytes: the size of the queue is mostly the count of these.
#[derive(Clone, Copy, Debug)]
struct Entry {
    user: Uuid,
    seq: u32,
    /// Milliseconds after the queue's creation before which a poll is too
    /// soon (saturates after 49 days: past that polls are not limited).
    poll_ok_ms: u32,
    /// Microseconds since the Unix epoch; or [`WAITING`] / [`USED`].
    admitted_at: i64,
}

/// The queue of one deal.
struct DealQueue {
    rules: QueueDeal,
    /// Time base of `Entry::poll_ok_ms` (µs since the Unix epoch).
    created_us: i64,
    /// Before the opening: joins in arrival order. After: admission order
    /// (the early joins shuffled, then the rest in arrival order).
    entries: Vec<Entry>,
    /// Each user's latest entry (an index into `entries`).
    index: HashMap<Uuid, u32>,
    /// `entries[..admitted]` are admitted.
    admitted: usize,
    opened: bool,
    /// Admissions earned and not yet given, in millionths (integer, so
    /// admission times are exact however often the queue is touched).
    credit: u64,
    /// Credit is earned up to here (µs).
    earned_to_us: i64,
    next_seq: u32,
    /// Entries taken by an order being placed.
    claimed: HashSet<u32>,
    /// `(time µs, admissions so far)` once a second while users wait: the
    /// measured rate.
    samples: VecDeque<(i64, u64)>,
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

impl DealQueue {
    fn new(rules: QueueDeal, now: DateTime<Utc>, first_seq: u32) -> Self {
        Self {
            rules,
            created_us: micros(now),
            entries: Vec::new(),
            index: HashMap::new(),
            admitted: 0,
            opened: false,
            credit: 0,
            earned_to_us: micros(rules.opens_at),
            next_seq: first_seq,
            claimed: HashSet::new(),
            samples: VecDeque::new(),
        }
    }

    fn rate(&self) -> f64 {
        f64::from(self.rules.admit_per_sec.max(1))
    }

    fn rate_u64(&self) -> u64 {
        u64::from(self.rules.admit_per_sec.max(1))
    }

    /// Opens the queue if `now` is past the opening (shuffling the early
    /// joins), then admits what the credit earned until `now` allows.
    fn catch_up(&mut self, now_us: i64, rng: &Mutex<StdRng>) {
        if !self.opened {
            if now_us < micros(self.rules.opens_at) {
                return;
            }
            self.entries
                .shuffle(&mut *rng.lock().unwrap_or_else(|e| e.into_inner()));
            for (i, e) in self.entries.iter().enumerate() {
                self.index.insert(e.user, i as u32);
            }
            self.opened = true;
        }
        let from = self.earned_to_us;
        if now_us <= from {
            return;
        }
        self.earned_to_us = now_us;
        let rate = self.rate_u64();
        let before = self.credit;
        // µs × admissions/s = millionths of an admission.
        self.credit = self.credit.saturating_add((now_us - from) as u64 * rate);
        let waiting = self.entries.len() - self.admitted;
        let n = usize::try_from(self.credit / UNIT)
            .unwrap_or(usize::MAX)
            .min(waiting);
        for k in 0..n {
            // The moment the (k+1)-th whole admission was earned.
            let need = ((k as u64 + 1) * UNIT).saturating_sub(before);
            let earned = from.saturating_add(need.div_ceil(rate) as i64);
            self.entries[self.admitted + k].admitted_at = earned.clamp(from, now_us);
        }
        self.admitted += n;
        self.credit -= n as u64 * UNIT;
        if self.admitted == self.entries.len() {
            self.credit = self.credit.min(rate * BURST_SECS * UNIT);
            self.samples.clear();
        } else if self
            .samples
            .back()
            .is_none_or(|&(t, _)| now_us - t >= 1_000_000)
        {
            self.samples.push_back((now_us, self.admitted as u64));
            while self
                .samples
                .front()
                .is_some_and(|&(t, _)| now_us - t > RATE_WINDOW_US)
            {
                self.samples.pop_front();
            }
        }
    }

    /// Admissions per second over the window while users waited.
    fn measured_rate(&self) -> f64 {
        match (self.samples.front(), self.samples.back()) {
            (Some(&(t0, a0)), Some(&(t1, a1))) if t1 - t0 >= 1_000_000 => {
                (a1 - a0) as f64 * 1e6 / (t1 - t0) as f64
            }
            _ => self.rate(),
        }
    }

    fn state_of(&self, slot: usize, now_us: i64) -> TicketState {
        let e = &self.entries[slot];
        if !self.opened {
            return TicketState::Drawing {
                pool: self.entries.len() as u64,
            };
        }
        match e.admitted_at {
            WAITING => TicketState::Waiting {
                ahead: (slot - self.admitted) as u64,
            },
            USED => TicketState::Expired { until: None },
            at => {
                let until =
                    at.saturating_add(self.rules.admitted_for.num_microseconds().unwrap_or(0));
                let claimed = self.claimed.contains(&e.seq);
                if now_us < until || claimed {
                    TicketState::Admitted {
                        until: from_micros(until),
                    }
                } else {
                    TicketState::Expired {
                        until: Some(from_micros(until)),
                    }
                }
            }
        }
    }

    /// The ticket of `slot` as answered now; arms the poll limit.
    fn answer(&mut self, slot: usize, now: DateTime<Utc>) -> Ticket {
        let now_us = micros(now);
        let state = self.state_of(slot, now_us);
        let rate = self.measured_rate();
        let wait = poll_after(&self.rules, &state, rate, now);
        let ok_ms = (now_us - self.created_us) / 1000 + wait.num_milliseconds();
        let e = &mut self.entries[slot];
        e.poll_ok_ms = u32::try_from(ok_ms.max(0)).unwrap_or(0);
        Ticket {
            seq: e.seq,
            state,
            rate,
            poll_after: wait,
        }
    }

    /// The slot of `user`'s entry `seq`, if it is the user's latest.
    fn slot_of(&self, user: Uuid, seq: u32) -> Option<usize> {
        let slot = *self.index.get(&user)? as usize;
        (self.entries.get(slot)?.seq == seq).then_some(slot)
    }

    fn bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry>()
            // hashbrown: one (key, value) and one control byte per bucket;
            // buckets = capacity / 7 * 8 once past 8.
            + (self.index.capacity() * 8 / 7 + 1) * (std::mem::size_of::<(Uuid, u32)>() + 1)
            + self.claimed.capacity() * 5
            + std::mem::size_of::<Self>()
    }
}

/// Every deal's queue, in memory.
pub struct MemoryQueue {
    /// Deals by id. A std RwLock: held for a lookup or an insert, never
    /// across an await; each deal then has its own lock, so two deals'
    /// rushes do not contend.
    deals: RwLock<HashMap<DealId, Arc<Mutex<DealQueue>>>>,
    /// Entries across all deals, and the most there may be.
    total: AtomicU64,
    max_total: u64,
    /// The shuffle's randomness (seedable for tests).
    rng: Mutex<StdRng>,
}

impl MemoryQueue {
    /// At most `max_total` joins across all deals (then 503).
    pub fn new(max_total: u64) -> Self {
        Self::with_rng(max_total, StdRng::from_entropy())
    }

    /// A queue whose opening shuffles are reproducible.
    pub fn with_seed(max_total: u64, seed: u64) -> Self {
        Self::with_rng(max_total, StdRng::seed_from_u64(seed))
    }

    fn with_rng(max_total: u64, rng: StdRng) -> Self {
        Self {
            deals: RwLock::new(HashMap::new()),
            total: AtomicU64::new(0),
            max_total,
            rng: Mutex::new(rng),
        }
    }

    /// Bytes held by the queues (their tables, by capacity).
    pub fn footprint(&self) -> usize {
        let deals = self.deals.read().unwrap_or_else(|e| e.into_inner());
        deals
            .values()
            .map(|q| q.lock().unwrap_or_else(|e| e.into_inner()).bytes())
            .sum()
    }

    /// Entries held across all deals.
    pub fn len(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn queue(&self, deal: &QueueDeal, now: DateTime<Utc>) -> Arc<Mutex<DealQueue>> {
        if let Some(q) = self
            .deals
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&deal.id)
        {
            return q.clone();
        }
        self.deals
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(deal.id)
            .or_insert_with(|| {
                // Join numbers start anywhere, so a token from before a
                // restart rarely names a join made after it.
                let first_seq = self.rng.lock().unwrap_or_else(|e| e.into_inner()).gen();
                Arc::new(Mutex::new(DealQueue::new(*deal, now, first_seq)))
            })
            .clone()
    }

    fn existing(&self, deal: DealId) -> Option<Arc<Mutex<DealQueue>>> {
        self.deals
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&deal)
            .cloned()
    }

    /// Runs `f` on the deal's queue, caught up to `now`.
    fn with<T>(
        &self,
        q: &Mutex<DealQueue>,
        deal: &QueueDeal,
        now: DateTime<Utc>,
        f: impl FnOnce(&mut DealQueue) -> T,
    ) -> T {
        let mut q = q.lock().unwrap_or_else(|e| e.into_inner());
        // The deal's rate or window may have changed since the queue began.
        q.rules = *deal;
        if !q.opened {
            q.earned_to_us = micros(deal.opens_at);
        }
        q.catch_up(micros(now), &self.rng);
        f(&mut q)
    }
}

#[async_trait]
impl QueueStore for MemoryQueue {
    async fn join(
        &self,
        deal: &QueueDeal,
        user: UserId,
        now: DateTime<Utc>,
    ) -> Result<Ticket, QueueError> {
        let q = self.queue(deal, now);
        self.with(&q, deal, now, |q| {
            let now_us = micros(now);
            if let Some(&slot) = q.index.get(&user.0) {
                let slot = slot as usize;
                if !matches!(q.state_of(slot, now_us), TicketState::Expired { .. }) {
                    return Ok(q.answer(slot, now));
                }
            }
            if self.total.fetch_add(1, Ordering::Relaxed) >= self.max_total {
                self.total.fetch_sub(1, Ordering::Relaxed);
                return Err(QueueError::Full);
            }
            let slot = q.entries.len();
            let Ok(slot32) = u32::try_from(slot) else {
                self.total.fetch_sub(1, Ordering::Relaxed);
                return Err(QueueError::Full);
            };
            let seq = q.next_seq;
            q.next_seq = q.next_seq.wrapping_add(1);
            q.entries.push(Entry {
                user: user.0,
                seq,
                poll_ok_ms: 0,
                admitted_at: WAITING,
            });
            q.index.insert(user.0, slot32);
            // A user joining an idle queue with banked credit goes in now.
            if q.opened && q.admitted == slot && q.credit >= UNIT {
                q.entries[slot].admitted_at = now_us;
                q.admitted += 1;
                q.credit -= UNIT;
            }
            Ok(q.answer(slot, now))
        })
    }

    async fn poll(
        &self,
        deal: &QueueDeal,
        user: UserId,
        seq: u32,
        now: DateTime<Utc>,
    ) -> Result<Ticket, QueueError> {
        let Some(q) = self.existing(deal.id) else {
            return Ok(Ticket::expired(seq, deal));
        };
        self.with(&q, deal, now, |q| {
            let Some(slot) = q.slot_of(user.0, seq) else {
                return Ok(Ticket::expired(seq, deal));
            };
            let since_ms = (micros(now) - q.created_us) / 1000;
            let ok_ms = i64::from(q.entries[slot].poll_ok_ms);
            if since_ms < ok_ms {
                return Err(QueueError::TooSoon {
                    retry_in: Duration::milliseconds(ok_ms - since_ms),
                });
            }
            Ok(q.answer(slot, now))
        })
    }

    async fn claim(
        &self,
        deal: &QueueDeal,
        user: UserId,
        seq: u32,
        now: DateTime<Utc>,
    ) -> Result<(), NotAdmitted> {
        let q = self.existing(deal.id).ok_or(NotAdmitted::Expired)?;
        self.with(&q, deal, now, |q| {
            let slot = q.slot_of(user.0, seq).ok_or(NotAdmitted::Expired)?;
            if q.claimed.contains(&seq) {
                return Err(NotAdmitted::InUse);
            }
            match q.state_of(slot, micros(now)) {
                TicketState::Admitted { .. } => {
                    q.claimed.insert(seq);
                    Ok(())
                }
                TicketState::Drawing { .. } | TicketState::Waiting { .. } => {
                    Err(NotAdmitted::Waiting)
                }
                TicketState::Expired { .. } => Err(NotAdmitted::Expired),
            }
        })
    }

    async fn settle(&self, deal: DealId, user: UserId, seq: u32, used: bool) {
        let Some(q) = self.existing(deal) else { return };
        let mut q = q.lock().unwrap_or_else(|e| e.into_inner());
        if !q.claimed.remove(&seq) {
            return;
        }
        if used {
            if let Some(slot) = q.slot_of(user.0, seq) {
                q.entries[slot].admitted_at = USED;
            }
        }
    }

    async fn deals(&self) -> Vec<DealId> {
        let deals = self.deals.read().unwrap_or_else(|e| e.into_inner());
        deals.keys().copied().collect()
    }

    async fn stats(&self) -> Vec<QueueStats> {
        let deals = self.deals.read().unwrap_or_else(|e| e.into_inner());
        deals
            .iter()
            .map(|(&deal, q)| {
                let q = q.lock().unwrap_or_else(|e| e.into_inner());
                QueueStats {
                    deal,
                    waiting: (q.entries.len() - q.admitted) as u64,
                    admitted: q.admitted as u64,
                    admit_per_sec: q.measured_rate(),
                }
            })
            .collect()
    }

    async fn forget(&self, deal: DealId) {
        let removed = self
            .deals
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&deal);
        if let Some(q) = removed {
            let n = q.lock().unwrap_or_else(|e| e.into_inner()).entries.len() as u64;
            self.total.fetch_sub(n, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: f64) -> DateTime<Utc> {
        let base = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        base + Duration::microseconds((secs * 1e6) as i64)
    }

    fn deal(rate: u32) -> QueueDeal {
        QueueDeal {
            id: DealId::new(),
            opens_at: t(10.0),
            admit_per_sec: rate,
            admitted_for: Duration::minutes(5),
            poll_min: Duration::milliseconds(500),
            poll_max: Duration::seconds(5),
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .map(|rt| rt.block_on(f))
            .unwrap_or_else(|e| panic!("runtime: {e}"))
    }

    #[test]
    fn keeps_the_port_contract() {
        use crate::ports::queue::contract;
        block_on(async {
            let q = MemoryQueue::new(100_000);
            contract::admission_follows_join_order_at_the_rate(&q).await;
            contract::early_joins_are_drawn_once_at_the_opening(&q).await;
            contract::the_draw_favours_no_one(&q).await;
            contract::a_user_holds_one_live_token_and_spends_it_once(&q).await;
            contract::a_waiting_token_cannot_order(&q).await;
            contract::polling_too_soon_is_refused(&q).await;
            contract::deals_stats_and_forget(&q).await;
            contract::the_rate_is_measured_while_users_wait(&q).await;
            contract::joins_are_refused_at_the_cap(&MemoryQueue::new(3)).await;
        });
    }

    #[test]
    fn admission_follows_join_order_at_the_rate() {
        block_on(async {
            let q = MemoryQueue::with_seed(1_000, 1);
            let d = deal(10);
            let users: Vec<UserId> = (0..30).map(|_| UserId::new()).collect();
            for (i, u) in users.iter().enumerate() {
                let tk = q.join(&d, *u, t(10.0)).await.expect("join");
                assert_eq!(tk.state, TicketState::Waiting { ahead: i as u64 });
            }
            // One second at 10/s: the first ten, each at its own moment.
            let mut seen = Vec::new();
            for (i, u) in users.iter().enumerate() {
                let tk = q.join(&d, *u, t(11.0)).await.expect("join");
                match tk.state {
                    TicketState::Admitted { until } => {
                        assert!(i < 10);
                        seen.push(until);
                    }
                    TicketState::Waiting { ahead } => {
                        assert!(i >= 10);
                        assert_eq!(ahead, (i - 10) as u64);
                    }
                    other => panic!("{other:?}"),
                }
            }
            assert_eq!(seen.len(), 10);
            assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
            assert_eq!(seen[0], t(10.1) + Duration::minutes(5));
        });
    }

    #[test]
    fn early_joins_are_shuffled_once_at_the_opening() {
        block_on(async {
            let q = MemoryQueue::with_seed(10_000, 7);
            let d = deal(1_000_000);
            let users: Vec<UserId> = (0..1000).map(|_| UserId::new()).collect();
            for u in &users {
                let tk = q.join(&d, *u, t(1.0)).await.expect("join");
                assert!(matches!(tk.state, TicketState::Drawing { .. }));
            }
            let late = UserId::new();
            let late_tk = q.join(&d, late, t(10.0)).await.expect("join");
            assert_eq!(late_tk.state, TicketState::Waiting { ahead: 1000 });
            let qq = q.existing(d.id).expect("queue");
            let order: Vec<usize> = {
                let g = qq.lock().expect("lock");
                g.entries
                    .iter()
                    .map(|e| users.iter().position(|u| u.0 == e.user).unwrap_or(1000))
                    .collect()
            };
            // Shuffled: far from the join order, and the late joiner last.
            let in_place = order.iter().enumerate().filter(|(i, p)| i == *p).count();
            assert!(in_place < 20, "{in_place} early joiners kept their place");
            assert_eq!(order[1000], 1000);
        });
    }

    #[test]
    fn a_user_holds_one_live_token_and_spends_it_once() {
        block_on(async {
            let q = MemoryQueue::with_seed(100, 1);
            let d = deal(100);
            let u = UserId::new();
            let a = q.join(&d, u, t(10.0)).await.expect("join");
            let b = q.join(&d, u, t(10.5)).await.expect("join");
            assert_eq!(a.seq, b.seq);
            assert!(matches!(b.state, TicketState::Admitted { .. }));
            q.claim(&d, u, a.seq, t(11.0)).await.expect("claim");
            assert_eq!(
                q.claim(&d, u, a.seq, t(11.0)).await,
                Err(NotAdmitted::InUse)
            );
            q.settle(d.id, u, a.seq, false).await;
            q.claim(&d, u, a.seq, t(11.0)).await.expect("again");
            q.settle(d.id, u, a.seq, true).await;
            assert_eq!(
                q.claim(&d, u, a.seq, t(11.0)).await,
                Err(NotAdmitted::Expired)
            );
            let c = q.join(&d, u, t(12.0)).await.expect("rejoin");
            assert_ne!(c.seq, a.seq);
        });
    }

    #[test]
    fn polling_too_soon_is_refused() {
        block_on(async {
            let q = MemoryQueue::with_seed(100, 1);
            let d = deal(1);
            let u = UserId::new();
            let _first = q.join(&d, UserId::new(), t(10.0)).await.expect("join");
            let _second = q.join(&d, UserId::new(), t(10.0)).await.expect("join");
            let tk = q.join(&d, u, t(10.0)).await.expect("join");
            let wait = tk.poll_after;
            let early = t(10.0) + wait - Duration::milliseconds(1);
            assert!(matches!(
                q.poll(&d, u, tk.seq, early).await,
                Err(QueueError::TooSoon { .. })
            ));
            q.poll(&d, u, tk.seq, t(10.0) + wait)
                .await
                .expect("on time");
        });
    }

    proptest::proptest! {
        /// Whatever the arrival times and however often the queue is
        /// touched, users who join after the opening are admitted in join
        /// order, and never before they joined.
        #[test]
        fn admission_after_the_opening_is_in_join_order(
            rate in 1u32..50,
            gaps_ms in proptest::collection::vec(0u32..400, 1..60),
            touches in proptest::collection::vec(0u32..4000, 0..20),
        ) {
            block_on(async {
                let q = MemoryQueue::with_seed(10_000, 3);
                let d = deal(rate);
                let mut now = t(10.0);
                let mut touches = touches;
                touches.sort_unstable();
                let mut joins = Vec::new();
                for g in gaps_ms {
                    now += Duration::milliseconds(i64::from(g));
                    let u = UserId::new();
                    let tk = q.join(&d, u, now).await.expect("join");
                    joins.push((u, tk.seq, now));
                    // A bystander's join touches the queue at odd times.
                    if let Some(&at) = touches.first() {
                        if t(10.0) + Duration::milliseconds(i64::from(at)) <= now {
                            touches.remove(0);
                            q.join(&d, UserId::new(), now).await.expect("touch");
                        }
                    }
                }
                let end = now + Duration::seconds(90);
                let mut last = None;
                for (u, seq, joined) in joins {
                    let tk = q.poll(&d, u, seq, end).await.expect("poll");
                    let TicketState::Admitted { until } = tk.state else {
                        panic!("not admitted after 90 s: {tk:?}");
                    };
                    let at = until - Duration::minutes(5);
                    assert!(at >= joined, "admitted before joining");
                    if let Some(prev) = last {
                        assert!(at >= prev, "out of join order");
                    }
                    last = Some(at);
                }
            });
        }
    }

    /// The memory bound: a million users waiting for one deal.
    #[test]
    fn a_million_waiting_users_fit_in_bounded_memory() {
        block_on(async {
            let q = MemoryQueue::with_seed(2_000_000, 1);
            let d = deal(1);
            let n = 1_000_000u64;
            for i in 0..n {
                let user = UserId(Uuid::from_u64_pair(0x0190_0000_0000_7000, i));
                q.join(&d, user, t(11.0)).await.expect("join");
            }
            let per_user = q.footprint() as f64 / n as f64;
            eprintln!("queue footprint: {per_user:.1} bytes per waiting user");
            assert!(per_user <= 200.0, "{per_user:.1} bytes per waiting user");
            assert_eq!(q.len(), n);
            q.forget(d.id).await;
            assert!(q.is_empty());
        });
    }
}
