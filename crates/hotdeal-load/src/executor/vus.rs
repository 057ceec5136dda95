//! ramping-vus and constant-vus: the closed model.
//!
//! The controller sleeps to each instant the whole-VU count changes
//! ([`Ramp::vu_changes`]) and publishes the new count on a `watch` channel.
//! VU *i* (0-based) runs while the count is above *i*. A VU is spawned the
//! first time it is needed and then kept, so a later ramp-up reuses it and
//! its keep-alive connection, as k6 reuses its VUs. A VU removed by a
//! ramp-down finishes the iteration it is in (k6's graceful ramp-down) and
//! then waits, costing nothing.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{sleep_until, Instant};

use super::ramp::Ramp;
use super::{graceful_stop, Shared, Workload};

#[derive(Debug, Clone, Copy)]
struct Target {
    active: u32,
    done: bool,
}

pub(super) async fn run<W: Workload>(shared: Shared<W>, ramp: Ramp) {
    let shared = Arc::new(shared);
    let origin = shared.metrics.origin();
    let changes = ramp.vu_changes();
    shared.metrics.set_allocated_vus(ramp.max_vus());
    let (tx, rx) = watch::channel(Target {
        active: 0,
        done: false,
    });
    let mut set = JoinSet::new();
    let mut spawned = 0u32;
    for (at, n) in changes {
        sleep_until(origin + at).await;
        while spawned < n {
            set.spawn(vu_loop(shared.clone(), spawned, rx.clone()));
            spawned += 1;
        }
        tx.send_replace(Target {
            active: n,
            done: false,
        });
        shared.metrics.set_active_vus(n);
    }
    sleep_until(origin + ramp.total()).await;
    tx.send_replace(Target {
        active: 0,
        done: true,
    });
    shared.metrics.end_vus();
    graceful_stop(
        &mut set,
        shared.exec.graceful_stop,
        &shared.metrics.recorder(0),
    )
    .await;
}

async fn vu_loop<W: Workload>(shared: Arc<Shared<W>>, id: u32, mut rx: watch::Receiver<Target>) {
    let mut vu = shared.vu(id);
    let think = shared.exec.think;
    loop {
        // Park until this VU is among the active ones, or the test ends.
        loop {
            let t = *rx.borrow_and_update();
            if t.done {
                return;
            }
            if t.active > id {
                break;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
        let started = Instant::now();
        shared.workload.iteration(&mut vu).await;
        if !think.is_zero() {
            // k6's `sleep()` is part of the iteration. It is not cut short
            // at the end of the test: like any iteration, it gets the
            // graceful stop to finish.
            tokio::time::sleep(think).await;
        }
        vu.finish_iteration(started);
    }
}
