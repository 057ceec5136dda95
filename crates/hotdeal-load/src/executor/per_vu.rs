//! per-vu-iterations: every VU runs its iterations once, then stops.
//!
//! The ordered form exists for the fifo scenario, whose verdict is "users
//! 1..N win": that is only meaningful if user *i*'s request reaches the
//! server after user *i−1*'s. So every VU connects first (connecting must
//! not reorder them), then VU *i* is released only once VU *i−1*'s request
//! has been completely written to its socket (the connection's write
//! signal) and a small gap has passed, which lets the server read it first.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{graceful_stop, Shared, Vu, Workload};
use crate::client::Conn;

pub(super) async fn run<W: Workload>(
    shared: Shared<W>,
    vus: u32,
    iterations: u32,
    ordered_gap: Option<Duration>,
    max_duration: Duration,
) {
    let shared = Arc::new(shared);
    let origin = shared.metrics.origin();
    shared.metrics.set_allocated_vus(vus);
    shared.metrics.set_active_vus(vus);
    let mut set = JoinSet::new();

    match ordered_gap {
        None => {
            for id in 0..vus {
                let s = shared.clone();
                set.spawn(async move {
                    let mut vu = s.vu(id);
                    for _ in 0..iterations {
                        let started = Instant::now();
                        s.workload.iteration(&mut vu).await;
                        vu.finish_iteration(started);
                    }
                });
            }
        }
        Some(gap) => {
            let mut gates = Vec::with_capacity(vus as usize);
            let mut signals = Vec::with_capacity(vus as usize);
            let mut conns = Vec::with_capacity(vus as usize);
            for _ in 0..vus {
                let signal = Arc::new(Notify::new());
                let mut vu_conns = Vec::with_capacity(shared.targets.len());
                for target in shared.targets.iter() {
                    let mut conn = Conn::with_write_signal(target, signal.clone());
                    // A failure here shows up as that VU's failed request.
                    let _ = conn.connect().await;
                    vu_conns.push(conn);
                }
                conns.push(vu_conns);
                signals.push(signal);
            }
            for (id, conn) in (0..vus).zip(conns) {
                let (tx, rx) = oneshot::channel::<()>();
                gates.push(tx);
                let s = shared.clone();
                set.spawn(async move {
                    if rx.await.is_err() {
                        return;
                    }
                    let mut vu = Vu::new(
                        id,
                        conn,
                        s.metrics.recorder(id),
                        s.exec.timeout,
                        s.exec.seed,
                    );
                    for _ in 0..iterations {
                        let started = Instant::now();
                        s.workload.iteration(&mut vu).await;
                        vu.finish_iteration(started);
                    }
                });
            }
            for (gate, signal) in gates.into_iter().zip(signals) {
                let _ = gate.send(());
                // Bounded: a VU whose connection failed never writes.
                let _ = tokio::time::timeout(Duration::from_secs(2), signal.notified()).await;
                tokio::time::sleep(gap).await;
            }
        }
    }

    // Like k6's maxDuration: iterations still running then are cut.
    let deadline = origin + max_duration;
    while let Ok(Some(_)) = tokio::time::timeout_at(deadline, set.join_next()).await {}
    graceful_stop(
        &mut set,
        shared.exec.graceful_stop,
        &shared.metrics.recorder(0),
    )
    .await;
    shared.metrics.end_vus();
}
