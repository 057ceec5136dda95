//! ramping-arrival-rate and constant-arrival-rate: the open model.
//!
//! One dispatcher sleeps to each scheduled start and hands the iteration to
//! an idle VU (a task per iteration — spawning is ~1 µs — with the VU and its
//! connection moved in and back out). With no idle VU, a new one is made
//! while fewer than `max_vus` exist; beyond that the iteration is dropped
//! and counted, as k6 does. If the dispatcher itself runs late (the machine
//! is saturated), it starts the overdue iterations at once and their latency
//! still runs from the scheduled instant: lateness is measured, not hidden.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::sleep_until;

use super::{graceful_stop, Shared, Vu, Workload};

pub(super) async fn run<W: Workload, I: Iterator<Item = Duration>>(
    shared: Shared<W>,
    schedule: I,
    total: Duration,
    pre_vus: u32,
    max_vus: u32,
) {
    let shared = Arc::new(shared);
    let origin = shared.metrics.origin();
    let max_vus = max_vus.max(1);
    let pre_vus = pre_vus.min(max_vus);
    // The idle pool is touched twice per iteration for nanoseconds.
    let idle: Arc<Mutex<Vec<Vu>>> = Arc::new(Mutex::new(
        (0..pre_vus).rev().map(|i| shared.vu(i)).collect(),
    ));
    let busy = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let mut allocated = pre_vus;
    shared.metrics.set_allocated_vus(allocated);
    shared.metrics.set_active_vus(0);
    let dispatcher = shared.metrics.recorder(0);
    let mut set = JoinSet::new();

    for offset in schedule {
        let due = origin + offset;
        sleep_until(due).await;
        let pooled = idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut vu = match pooled {
            Some(vu) => vu,
            None if allocated < max_vus => {
                allocated += 1;
                shared.metrics.set_allocated_vus(allocated);
                shared.vu(allocated - 1)
            }
            None => {
                dispatcher.dropped(due);
                continue;
            }
        };
        let n = busy.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        shared.metrics.set_active_vus(n);
        let (shared2, idle2, busy2) = (shared.clone(), idle.clone(), busy.clone());
        set.spawn(async move {
            vu.scheduled = Some(due);
            shared2.workload.iteration(&mut vu).await;
            vu.scheduled = None;
            vu.finish_iteration(due);
            idle2.lock().unwrap_or_else(|e| e.into_inner()).push(vu);
            let n = busy2.fetch_sub(1, std::sync::atomic::Ordering::Relaxed) - 1;
            shared2.metrics.set_active_vus(n);
        });
        // Reap finished iterations so the set stays as small as the
        // in-flight count.
        while set.try_join_next().is_some() {}
    }
    sleep_until(origin + total).await;
    graceful_stop(&mut set, shared.exec.graceful_stop, &dispatcher).await;
    shared.metrics.end_vus();
}
