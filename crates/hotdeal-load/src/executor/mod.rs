//! Executors with k6's semantics: they decide *when* iterations run; a
//! scenario's [`Workload`] decides *what* one iteration does.
//!
//! * [`Plan::RampingVus`] / [`Plan::ConstantVus`] — closed model: each VU
//!   loops its iteration (then thinks), VUs join and leave as the stage
//!   targets ramp linearly ([`ramp`]).
//! * [`Plan::RampingArrivalRate`] / [`Plan::ConstantArrivalRate`] — open
//!   model: iterations start on the schedule of [`arrival`] whatever the
//!   server does, each on a free VU; when all `max_vus` are busy the
//!   iteration is dropped and counted (`dropped_iterations`), as k6 does.
//!   Latency runs from the scheduled start, so a stall shows as latency.
//! * [`Plan::PerVuIterations`] — each VU runs its iterations once; in the
//!   ordered form (fifo) VU *i* starts only after VU *i−1*'s request was
//!   written to its socket, plus a small gap.
//!
//! All executors end with k6's graceful stop: iterations still running get
//! `graceful_stop` to finish, then they are cut and counted as interrupted.
//!
//! The executors run on a runtime of their own (`--threads`, default one
//! thread): the generator then competes with the server for at most that
//! many cores, and setup/reporting never share its event loop.

pub mod arrival;
mod per_vu;
pub mod ramp;
mod rate;
mod vus;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::client::{Conn, Outcome, Reply, ReqHead, Targets};
use crate::config::Stage;
use crate::metrics::{Metrics, Recorder, Status};
use crate::rng::Rng;

/// What one iteration of a scenario does. Implementations are shared by
/// every VU (`&self`); per-VU state lives in [`Vu`].
pub trait Workload: Send + Sync + 'static {
    fn iteration(&self, vu: &mut Vu) -> impl Future<Output = ()> + Send;
}

/// Decides whether a response counts as a success for `http_req_failed`
/// (k6's `expectedStatuses`): given the status and the body's error code.
pub type Expect = fn(u16, Option<&str>) -> bool;

/// k6's default: 2xx and 3xx are expected.
pub fn expect_ok(status: u16, _code: Option<&str>) -> bool {
    (200..400).contains(&status)
}

/// One virtual user: its connections, its random stream and its recorder.
pub struct Vu {
    pub id: u32,
    /// Iterations this VU has completed.
    pub iteration: u64,
    pub rng: Rng,
    /// One keep-alive connection per base URL, in the targets' order.
    conns: Vec<Conn>,
    /// Which connection the next request takes.
    ///
    /// Round robin *per request*, not per VU: a load balancer in front of
    /// the instances (nginx, HAProxy with keep-alive upstreams) spreads
    /// requests, not users, and a multi-step iteration (sign up → charge →
    /// order; join → poll → order) then crosses instances, which is what
    /// a scaled deployment must survive. The counter is the VU's own — no
    /// shared atomic for VUs on different threads to fight over — and
    /// starts at `id mod n`, so at any instant the VUs' requests are spread
    /// evenly, like one global round robin.
    next: usize,
    rec: Recorder,
    timeout: Duration,
    /// Scheduled start of the current iteration (open model): the first
    /// request's latency runs from it.
    scheduled: Option<Instant>,
}

impl Vu {
    pub(crate) fn new(
        id: u32,
        conns: Vec<Conn>,
        rec: Recorder,
        timeout: Duration,
        seed: u64,
    ) -> Self {
        let next = id as usize % conns.len().max(1);
        Self {
            id,
            iteration: 0,
            rng: Rng::for_vu(seed, id),
            conns,
            next,
            rec,
            timeout,
            scheduled: None,
        }
    }

    /// Sends a request, records it, and returns the reply.
    pub async fn send(&mut self, head: &ReqHead, body: Bytes, expect: Expect) -> Reply {
        let scheduled = self.scheduled.take();
        let n = self.conns.len();
        let target = self.next;
        self.next = (target + 1) % n.max(1);
        let reply = match self.conns.get_mut(target) {
            Some(conn) => conn.send(head, body, self.timeout, scheduled).await,
            // A VU without connections (never built so): nothing can leave.
            None => Reply::failed(
                Outcome::ConnectFailed,
                scheduled.unwrap_or_else(Instant::now),
            ),
        };
        let (status, ok) = match reply.outcome {
            Outcome::Response => {
                let code = reply.error_code();
                (Status::Http(reply.status, code), expect(reply.status, code))
            }
            Outcome::Timeout => (Status::Timeout, false),
            Outcome::ConnectFailed | Outcome::Broken => (Status::ConnError, false),
        };
        self.rec
            .request(target, reply.done, reply.latency, status, !ok);
        if reply.outcome == Outcome::ConnectFailed {
            // A refused connection fails in microseconds; without a pause a
            // VU would spin and starve the (recovering) server of CPU. With
            // several targets and one of them down, this also means the VU
            // spends less of its time on the dead one, as a balancer that
            // marks a backend down would.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        reply
    }

    /// Records a k6 check; returns `ok` for chaining.
    pub fn check(&self, id: usize, ok: bool) -> bool {
        self.rec.check(id, ok);
        ok
    }

    /// Records one sample of a rate metric (e.g. `order_success`).
    pub fn rate(&self, id: usize, ok: bool) {
        self.rec.rate(id, ok);
    }

    fn finish_iteration(&mut self, started: Instant) {
        let done = Instant::now();
        self.rec.iteration(done, done - started);
        self.iteration += 1;
    }
}

/// The traffic shape of a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    RampingVus {
        start: u32,
        stages: Vec<Stage>,
    },
    ConstantVus {
        vus: u32,
        duration: Duration,
    },
    RampingArrivalRate {
        start_rate: f64,
        stages: Vec<Stage>,
        pre_vus: u32,
        max_vus: u32,
    },
    ConstantArrivalRate {
        rate: f64,
        duration: Duration,
        pre_vus: u32,
        max_vus: u32,
    },
    PerVuIterations {
        vus: u32,
        iterations: u32,
        ordered_gap: Option<Duration>,
        max_duration: Duration,
    },
}

impl Plan {
    pub fn executor_name(&self) -> &'static str {
        match self {
            Plan::RampingVus { .. } => "ramping-vus",
            Plan::ConstantVus { .. } => "constant-vus",
            Plan::RampingArrivalRate { .. } => "ramping-arrival-rate",
            Plan::ConstantArrivalRate { .. } => "constant-arrival-rate",
            Plan::PerVuIterations { .. } => "per-vu-iterations",
        }
    }

    /// Planned length of the run, without the graceful stop.
    pub fn duration(&self) -> Duration {
        match self {
            Plan::RampingVus { stages, .. } | Plan::RampingArrivalRate { stages, .. } => {
                stages.iter().map(|s| s.duration).sum()
            }
            Plan::ConstantVus { duration, .. } | Plan::ConstantArrivalRate { duration, .. } => {
                *duration
            }
            Plan::PerVuIterations { max_duration, .. } => *max_duration,
        }
    }

    /// The most VUs the plan can use (k6's `vus_max`).
    pub fn max_vus(&self) -> u32 {
        match self {
            Plan::RampingVus { start, stages } => {
                ramp::Ramp::new(f64::from(*start), stages.clone()).max_vus()
            }
            Plan::ConstantVus { vus, .. } | Plan::PerVuIterations { vus, .. } => *vus,
            Plan::RampingArrivalRate { max_vus, .. }
            | Plan::ConstantArrivalRate { max_vus, .. } => *max_vus,
        }
    }
}

/// Everything an executor needs besides the workload.
#[derive(Debug, Clone)]
pub struct Exec {
    pub plan: Plan,
    /// Pause after each iteration of the closed-model executors (k6 `sleep`),
    /// counted in the iteration's duration as in k6.
    pub think: Duration,
    pub timeout: Duration,
    pub graceful_stop: Duration,
    pub seed: u64,
    /// Worker threads of the executor's own runtime; 0 runs it on the
    /// caller's runtime.
    pub threads: usize,
}

/// What the executor reports besides the metrics.
#[derive(Debug, Clone, Copy)]
pub struct ExecReport {
    /// From the first scheduled instant to the last iteration's end.
    pub elapsed: Duration,
}

/// Shared inputs of the executor bodies.
pub(crate) struct Shared<W> {
    pub workload: Arc<W>,
    pub targets: Arc<Targets>,
    pub metrics: Arc<Metrics>,
    pub exec: Exec,
}

impl<W: Workload> Shared<W> {
    fn vu(&self, id: u32) -> Vu {
        Vu::new(
            id,
            self.targets.iter().map(|t| Conn::new(t)).collect(),
            self.metrics.recorder(id),
            self.exec.timeout,
            self.exec.seed,
        )
    }
}

/// Runs the plan to completion; metrics land in `metrics`.
pub async fn execute<W: Workload>(
    workload: Arc<W>,
    targets: Arc<Targets>,
    metrics: Arc<Metrics>,
    exec: Exec,
) -> anyhow::Result<ExecReport> {
    let threads = exec.threads;
    let shared = Shared {
        workload,
        targets,
        metrics,
        exec,
    };
    if threads == 0 {
        return Ok(run_plan(shared).await);
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("hotdeal-load".into())
        .spawn(move || {
            let rt = if threads == 1 {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
            } else {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(threads)
                    .enable_all()
                    .build()
            };
            let result = rt.map(|rt| rt.block_on(run_plan(shared)));
            let _ = tx.send(result);
        })?;
    let report = rx
        .await
        .map_err(|_| anyhow::anyhow!("the load runtime stopped unexpectedly"))??;
    Ok(report)
}

async fn run_plan<W: Workload>(shared: Shared<W>) -> ExecReport {
    let origin = shared.metrics.origin();
    match shared.exec.plan.clone() {
        Plan::RampingVus { start, stages } => {
            vus::run(shared, ramp::Ramp::new(f64::from(start), stages)).await
        }
        Plan::ConstantVus { vus, duration } => {
            let n = f64::from(vus);
            vus::run(shared, ramp::Ramp::new(n, vec![Stage::new(duration, n)])).await
        }
        Plan::RampingArrivalRate {
            start_rate,
            stages,
            pre_vus,
            max_vus,
        } => {
            let total = stages.iter().map(|s| s.duration).sum();
            rate::run(
                shared,
                arrival::RampingArrivals::new(start_rate, stages),
                total,
                pre_vus,
                max_vus,
            )
            .await
        }
        Plan::ConstantArrivalRate {
            rate: r,
            duration,
            pre_vus,
            max_vus,
        } => {
            rate::run(
                shared,
                arrival::ConstantArrivals::new(r, duration),
                duration,
                pre_vus,
                max_vus,
            )
            .await
        }
        Plan::PerVuIterations {
            vus,
            iterations,
            ordered_gap,
            max_duration,
        } => per_vu::run(shared, vus, iterations, ordered_gap, max_duration).await,
    }
    ExecReport {
        elapsed: origin.elapsed(),
    }
}

/// k6's graceful stop for a set of VU tasks: wait up to `grace` for them to
/// end by themselves, then abort the rest and count them as interrupted.
async fn graceful_stop(set: &mut tokio::task::JoinSet<()>, grace: Duration, rec: &Recorder) {
    let deadline = Instant::now() + grace;
    while let Ok(Some(_)) = tokio::time::timeout_at(deadline, set.join_next()).await {}
    let left = set.len() as u64;
    if left > 0 {
        set.abort_all();
        while set.join_next().await.is_some() {}
        rec.interrupted(left);
    }
}

#[cfg(test)]
mod tests;
