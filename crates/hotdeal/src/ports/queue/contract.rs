//! What every [`QueueStore`] owes the waiting room, as scenarios each
//! adapter's tests run: the memory queue always, the Redis queue where a
//! server is at hand. Each scenario uses deals of its own, so one store
//! may run them all.

use super::{poll_after, NotAdmitted, QueueDeal, QueueError, QueueStore, Ticket, TicketState};
use chrono::{DateTime, Duration, Utc};
use hotdeal_domain::{DealId, UserId};

pub fn t(secs: f64) -> DateTime<Utc> {
    let base = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
    base + Duration::microseconds((secs * 1e6) as i64)
}

/// A deal opening at `t(10.0)`, admitting `rate` users a second.
pub fn deal(rate: u32) -> QueueDeal {
    QueueDeal {
        id: DealId::new(),
        opens_at: t(10.0),
        admit_per_sec: rate,
        admitted_for: Duration::minutes(5),
        poll_min: Duration::milliseconds(500),
        poll_max: Duration::seconds(5),
    }
}

/// The ticket, after checking it asks for the poll interval the port's
/// rule gives (to the millisecond, what clients see).
fn checked(tk: Ticket, d: &QueueDeal, now: DateTime<Utc>) -> Ticket {
    let wanted = poll_after(d, &tk.state, tk.rate, now);
    assert_eq!(
        tk.poll_after.num_milliseconds(),
        wanted.num_milliseconds(),
        "{tk:?}"
    );
    tk
}

async fn join(q: &dyn QueueStore, d: &QueueDeal, u: UserId, now: DateTime<Utc>) -> Ticket {
    let tk = q.join(d, u, now).await.expect("join");
    checked(tk, d, now)
}

pub async fn admission_follows_join_order_at_the_rate(q: &dyn QueueStore) {
    let d = deal(10);
    let users: Vec<UserId> = (0..30).map(|_| UserId::new()).collect();
    for (i, u) in users.iter().enumerate() {
        let tk = join(q, &d, *u, t(10.0)).await;
        assert_eq!(tk.state, TicketState::Waiting { ahead: i as u64 });
    }
    // One second at 10/s: the first ten, each at its own moment.
    let mut seen = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let tk = join(q, &d, *u, t(11.0)).await;
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
    assert_eq!(seen[9], t(11.0) + Duration::minutes(5));
}

/// Early joiners draw for places once, at the opening: the places are a
/// permutation far from the join order, asking again does not draw again,
/// and later joiners queue behind.
pub async fn early_joins_are_drawn_once_at_the_opening(q: &dyn QueueStore) {
    let n = 300;
    let d = deal(1_000_000);
    let users: Vec<UserId> = (0..n).map(|_| UserId::new()).collect();
    for (i, u) in users.iter().enumerate() {
        let tk = join(q, &d, *u, t(1.0)).await;
        assert_eq!(tk.state, TicketState::Drawing { pool: i as u64 + 1 });
    }
    let places = |tks: Vec<Ticket>| -> Vec<u64> {
        tks.iter()
            .map(|tk| match tk.state {
                TicketState::Waiting { ahead } => ahead,
                other => panic!("{other:?}"),
            })
            .collect()
    };
    // At the opening exactly: drawn, nobody admitted yet.
    let mut first = Vec::new();
    for u in &users {
        first.push(join(q, &d, *u, t(10.0)).await);
    }
    let first = places(first);
    let mut sorted = first.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..n as u64).collect::<Vec<_>>(), "a permutation");
    let in_place = first.iter().enumerate().filter(|(i, p)| *i as u64 == **p);
    assert!(in_place.count() < 20, "early joiners kept their place");
    let late = join(q, &d, UserId::new(), t(10.0)).await;
    assert_eq!(late.state, TicketState::Waiting { ahead: n as u64 });
    let mut again = Vec::new();
    for u in &users {
        again.push(join(q, &d, *u, t(10.0)).await);
    }
    assert_eq!(places(again), first, "drawn once");
}

/// Over many draws of three early joiners, the first to join is as likely
/// to get each place (300 draws: 100 expected per place, the bounds are
/// about five standard deviations away).
pub async fn the_draw_favours_no_one(q: &dyn QueueStore) {
    let mut first_places = [0u32; 3];
    for _ in 0..300 {
        let d = deal(1);
        let users: Vec<UserId> = (0..3).map(|_| UserId::new()).collect();
        for (i, u) in users.iter().enumerate() {
            let tk = join(q, &d, *u, t(1.0 + i as f64)).await;
            assert_eq!(tk.state, TicketState::Drawing { pool: i as u64 + 1 });
        }
        match join(q, &d, users[0], t(10.0)).await.state {
            TicketState::Waiting { ahead } if ahead < 3 => first_places[ahead as usize] += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(
        first_places.iter().all(|n| (60..=140).contains(n)),
        "{first_places:?}"
    );
}

pub async fn a_user_holds_one_live_token_and_spends_it_once(q: &dyn QueueStore) {
    let d = deal(100);
    let u = UserId::new();
    let a = join(q, &d, u, t(10.0)).await;
    let b = join(q, &d, u, t(10.5)).await;
    assert_eq!(a.seq, b.seq);
    assert!(matches!(b.state, TicketState::Admitted { .. }));
    assert_eq!(
        q.claim(&d, UserId::new(), a.seq, t(11.0)).await,
        Err(NotAdmitted::Expired),
        "another user's"
    );
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
    let spent = q.poll(&d, u, a.seq, t(16.0)).await.expect("poll");
    assert_eq!(spent.state, TicketState::Expired { until: None });
    let c = join(q, &d, u, t(16.0)).await;
    assert_ne!(c.seq, a.seq);
    // The old join is no longer the user's.
    let old = q.poll(&d, u, a.seq, t(30.0)).await.expect("poll");
    assert_eq!(old.state, TicketState::Expired { until: None });
    // Lapsed: past admitted_until, unclaimed.
    let lapsed = q.poll(&d, u, c.seq, t(16.0 + 301.0)).await.expect("poll");
    assert!(
        matches!(lapsed.state, TicketState::Expired { until: Some(_) }),
        "{lapsed:?}"
    );
    assert_eq!(
        q.claim(&d, u, c.seq, t(16.0 + 302.0)).await,
        Err(NotAdmitted::Expired)
    );
}

pub async fn a_waiting_token_cannot_order(q: &dyn QueueStore) {
    let d = deal(1);
    let early = UserId::new();
    let tk = join(q, &d, early, t(5.0)).await;
    assert_eq!(
        q.claim(&d, early, tk.seq, t(6.0)).await,
        Err(NotAdmitted::Waiting),
        "drawing"
    );
    join(q, &d, UserId::new(), t(10.0)).await;
    let u = UserId::new();
    let tk = join(q, &d, u, t(10.0)).await;
    assert_eq!(tk.state, TicketState::Waiting { ahead: 2 });
    assert_eq!(
        q.claim(&d, u, tk.seq, t(10.5)).await,
        Err(NotAdmitted::Waiting)
    );
    let unknown = DealId::new();
    q.settle(unknown, u, tk.seq, true).await;
    assert_eq!(
        q.claim(&deal(1), u, tk.seq, t(10.5)).await,
        Err(NotAdmitted::Expired),
        "no queue"
    );
}

pub async fn polling_too_soon_is_refused(q: &dyn QueueStore) {
    let d = deal(1);
    let u = UserId::new();
    join(q, &d, UserId::new(), t(10.0)).await;
    join(q, &d, UserId::new(), t(10.0)).await;
    let tk = join(q, &d, u, t(10.0)).await;
    assert_eq!(tk.poll_after, Duration::milliseconds(1500));
    let early = t(10.0) + tk.poll_after - Duration::milliseconds(1);
    assert_eq!(
        q.poll(&d, u, tk.seq, early).await,
        Err(QueueError::TooSoon {
            retry_in: Duration::milliseconds(1)
        })
    );
    let now = t(10.0) + tk.poll_after;
    let on_time = q.poll(&d, u, tk.seq, now).await.expect("on time");
    let on_time = checked(on_time, &d, now);
    assert_eq!(on_time.state, TicketState::Waiting { ahead: 1 });
    // Joining again answers (and re-arms the limit), it is not a way round.
    let again = join(q, &d, u, now).await;
    assert_eq!(again.seq, tk.seq);
    assert!(matches!(
        q.poll(&d, u, tk.seq, now).await,
        Err(QueueError::TooSoon { .. })
    ));
    // Unknown joins are not limited.
    let none = q.poll(&d, UserId::new(), 7, now).await.expect("unknown");
    assert_eq!(none, Ticket::expired(7, &d));
}

/// `q` must hold at most 3 users.
pub async fn joins_are_refused_at_the_cap(q: &dyn QueueStore) {
    let d = deal(1);
    let users: Vec<UserId> = (0..3).map(|_| UserId::new()).collect();
    for u in &users {
        join(q, &d, *u, t(10.0)).await;
    }
    assert_eq!(
        q.join(&d, UserId::new(), t(10.0)).await,
        Err(QueueError::Full)
    );
    // A user already in holds their ticket.
    join(q, &d, users[2], t(10.0)).await;
    q.forget(d.id).await;
    join(q, &deal(1), UserId::new(), t(10.0)).await;
}

pub async fn deals_stats_and_forget(q: &dyn QueueStore) {
    let d = deal(1);
    let users: Vec<UserId> = (0..3).map(|_| UserId::new()).collect();
    let mut seqs = Vec::new();
    for u in &users {
        seqs.push(join(q, &d, *u, t(10.0)).await.seq);
    }
    join(q, &d, UserId::new(), t(11.5)).await;
    assert!(q.deals().await.contains(&d.id));
    let stats = q.stats().await;
    let s = stats.iter().find(|s| s.deal == d.id).expect("stats");
    assert_eq!((s.waiting, s.admitted), (3, 1));
    assert_eq!(s.admit_per_sec, 1.0);
    q.forget(d.id).await;
    assert!(!q.deals().await.contains(&d.id));
    assert!(!q.stats().await.iter().any(|s| s.deal == d.id));
    let gone = q.poll(&d, users[0], seqs[0], t(20.0)).await.expect("poll");
    assert_eq!(gone, Ticket::expired(seqs[0], &d));
    assert_eq!(
        q.claim(&d, users[0], seqs[0], t(20.0)).await,
        Err(NotAdmitted::Expired)
    );
}

/// The rate answered is the one measured while users wait, once there
/// is a measurement.
pub async fn the_rate_is_measured_while_users_wait(q: &dyn QueueStore) {
    let mut d = deal(10);
    for _ in 0..100 {
        let tk = join(q, &d, UserId::new(), t(10.0)).await;
        assert_eq!(tk.rate, 10.0, "the set rate before a measurement");
    }
    for at in [11.0, 12.0, 13.0] {
        join(q, &d, UserId::new(), t(at)).await;
    }
    // The seller raises the rate: the answers show what was measured.
    d.admit_per_sec = 40;
    let tk = join(q, &d, UserId::new(), t(13.5)).await;
    assert_eq!(tk.rate, 10.0);
    let stats = q.stats().await;
    let s = stats.iter().find(|s| s.deal == d.id).expect("stats");
    assert_eq!((s.admitted, s.admit_per_sec), (50, 10.0));
}

/// Whatever the arrival times and however often the queue is touched,
/// users who join after the opening are admitted in join order, and never
/// before they joined.
pub async fn admission_after_the_opening_is_in_join_order(
    q: &dyn QueueStore,
    rate: u32,
    gaps_ms: Vec<u32>,
    mut touches: Vec<u32>,
) {
    let d = deal(rate);
    let mut now = t(10.0);
    touches.sort_unstable();
    let mut joins = Vec::new();
    for g in gaps_ms {
        now += Duration::milliseconds(i64::from(g));
        let u = UserId::new();
        let tk = join(q, &d, u, now).await;
        joins.push((u, tk.seq, now));
        // A bystander's join touches the queue at odd times.
        if let Some(&at) = touches.first() {
            if t(10.0) + Duration::milliseconds(i64::from(at)) <= now {
                touches.remove(0);
                join(q, &d, UserId::new(), now).await;
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
}
