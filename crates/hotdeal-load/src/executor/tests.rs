//! Executors against the counting stub: what the metrics say was sent must
//! be what the server received, and the schedules must hold.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;

use super::*;
use crate::metrics::Names;
use crate::testing::start_stub;

/// Sends `GET {path}?vu=N` once per iteration.
struct Hit {
    heads: Vec<ReqHead>,
}

impl Hit {
    fn new(target: &Targets, path: &str, vus: u32) -> Self {
        let heads = (0..vus.max(1))
            .map(|i| {
                target
                    .head(Method::GET, &format!("{path}?vu={i}"), None, false)
                    .expect("head")
            })
            .collect();
        Self { heads }
    }
}

impl Workload for Hit {
    async fn iteration(&self, vu: &mut Vu) {
        let head = &self.heads[vu.id as usize % self.heads.len()];
        let r = vu.send(head, Bytes::new(), expect_ok).await;
        vu.check(0, r.status == 200);
    }
}

struct Run {
    totals: crate::metrics::Totals,
    served: u64,
    paths: Vec<String>,
}

async fn run(plan: Plan, path: &str, slow: Duration, think: Duration) -> Run {
    let (addr, stub) = start_stub(slow).await.expect("stub");
    let target = Arc::new(
        Targets::resolve(&[format!("http://{addr}")])
            .await
            .expect("target"),
    );
    let workload = Arc::new(Hit::new(&target, path, plan.max_vus()));
    let metrics = Arc::new(
        Metrics::new(
            Names {
                checks: vec!["status is 200"],
                rates: vec![],
            },
            2,
        )
        .expect("metrics"),
    );
    let exec = Exec {
        plan,
        think,
        timeout: Duration::from_secs(5),
        graceful_stop: Duration::from_secs(5),
        seed: 1,
        threads: 1,
    };
    execute(workload, target, metrics.clone(), exec)
        .await
        .expect("execute");
    Run {
        totals: metrics.totals(),
        served: stub.count(),
        paths: stub.paths(),
    }
}

#[tokio::test]
async fn constant_vus_counts_match_the_server() {
    let r = run(
        Plan::ConstantVus {
            vus: 4,
            duration: Duration::from_millis(800),
        },
        "/health",
        Duration::ZERO,
        Duration::ZERO,
    )
    .await;
    assert!(r.served > 20, "served {}", r.served);
    assert_eq!(r.totals.requests, r.served);
    assert_eq!(r.totals.iterations, r.served);
    assert_eq!(r.totals.checks[0].passes, r.served);
    assert_eq!(r.totals.failed, 0);
    assert_eq!(r.totals.vus_allocated, 4);
}

#[tokio::test]
async fn think_time_paces_a_closed_loop() {
    // 2 VUs × (1 s / 100 ms) ≈ 20 iterations, certainly not hundreds.
    let r = run(
        Plan::ConstantVus {
            vus: 2,
            duration: Duration::from_secs(1),
        },
        "/health",
        Duration::ZERO,
        Duration::from_millis(100),
    )
    .await;
    assert_eq!(r.totals.requests, r.served);
    assert!((16..=24).contains(&r.served), "served {}", r.served);
    let iter = crate::metrics::Trend::of(r.totals.iter.as_ref());
    assert!(
        iter.avg_ms >= 95.0,
        "think time is part of the iteration: {iter:?}"
    );
}

#[tokio::test]
async fn ramping_vus_counts_match_the_server() {
    let stages = vec![
        Stage::new(Duration::from_millis(400), 4.0),
        Stage::new(Duration::from_millis(400), 0.0),
    ];
    let r = run(
        Plan::RampingVus { start: 0, stages },
        "/health",
        Duration::ZERO,
        Duration::ZERO,
    )
    .await;
    assert!(r.served > 0);
    assert_eq!(r.totals.requests, r.served);
    assert_eq!(r.totals.vus_max, 4);
    assert_eq!(r.totals.interrupted, 0);
}

#[tokio::test]
async fn constant_arrival_rate_starts_exactly_rate_times_duration() {
    let plan = Plan::ConstantArrivalRate {
        rate: 50.0,
        duration: Duration::from_secs(1),
        pre_vus: 2,
        max_vus: 20,
    };
    let r = run(plan, "/health", Duration::ZERO, Duration::ZERO).await;
    assert_eq!(r.served, 50);
    assert_eq!(r.totals.requests, 50);
    assert_eq!(r.totals.iterations, 50);
    assert_eq!(r.totals.dropped, 0);
}

#[tokio::test]
async fn ramping_arrival_rate_follows_the_schedule() {
    // 0→20/s over 2 s: area 20 ⇒ 20 iterations.
    let plan = Plan::RampingArrivalRate {
        start_rate: 0.0,
        stages: vec![Stage::secs(2, 20.0)],
        pre_vus: 1,
        max_vus: 10,
    };
    let r = run(plan, "/health", Duration::ZERO, Duration::ZERO).await;
    assert_eq!(r.served, 20);
    assert_eq!(r.totals.iterations, 20);
    assert_eq!(r.totals.dropped, 0);
}

#[tokio::test]
async fn a_full_vu_pool_drops_iterations() {
    // One VU, 150 ms per request, 20 starts in 1 s: most must be dropped,
    // and every planned iteration is either run or dropped.
    let plan = Plan::ConstantArrivalRate {
        rate: 20.0,
        duration: Duration::from_secs(1),
        pre_vus: 1,
        max_vus: 1,
    };
    let r = run(plan, "/slow", Duration::from_millis(150), Duration::ZERO).await;
    assert_eq!(r.totals.requests, r.served);
    assert_eq!(r.totals.iterations + r.totals.dropped, 20);
    assert!(r.totals.dropped >= 10, "dropped {}", r.totals.dropped);
}

#[tokio::test]
async fn open_model_latency_includes_the_wait_for_a_late_start() {
    // The server holds each request 100 ms; with one VU the next scheduled
    // iteration (every 50 ms) is dropped, but a run iteration's latency is
    // still ≥ the server time.
    let plan = Plan::ConstantArrivalRate {
        rate: 20.0,
        duration: Duration::from_millis(500),
        pre_vus: 1,
        max_vus: 1,
    };
    let r = run(plan, "/slow", Duration::from_millis(100), Duration::ZERO).await;
    let t = crate::metrics::Trend::of(r.totals.req.as_ref());
    assert!(t.min_ms >= 99.0, "{t:?}");
}

#[tokio::test]
async fn ordered_per_vu_iterations_arrive_in_user_order() {
    let plan = Plan::PerVuIterations {
        vus: 12,
        iterations: 1,
        ordered_gap: Some(Duration::from_millis(3)),
        max_duration: Duration::from_secs(10),
    };
    let r = run(plan, "/health", Duration::ZERO, Duration::ZERO).await;
    assert_eq!(r.served, 12);
    let expected: Vec<String> = (0..12).map(|i| format!("/health?vu={i}")).collect();
    assert_eq!(r.paths, expected);
}

#[tokio::test]
async fn unordered_per_vu_iterations_run_each_vu_n_times() {
    let plan = Plan::PerVuIterations {
        vus: 5,
        iterations: 3,
        ordered_gap: None,
        max_duration: Duration::from_secs(10),
    };
    let r = run(plan, "/health", Duration::ZERO, Duration::ZERO).await;
    assert_eq!(r.served, 15);
    assert_eq!(r.totals.iterations, 15);
}

#[tokio::test]
async fn a_dead_server_is_a_connection_error_not_a_hang() {
    // Bind and drop a listener to get a port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let target = Arc::new(
        Targets::resolve(&[format!("http://127.0.0.1:{port}")])
            .await
            .expect("target"),
    );
    let workload = Arc::new(Hit::new(&target, "/health", 1));
    let metrics = Arc::new(
        Metrics::new(
            Names {
                checks: vec!["status is 200"],
                rates: vec![],
            },
            1,
        )
        .expect("metrics"),
    );
    let exec = Exec {
        plan: Plan::ConstantVus {
            vus: 1,
            duration: Duration::from_millis(300),
        },
        think: Duration::ZERO,
        timeout: Duration::from_secs(1),
        graceful_stop: Duration::from_secs(1),
        seed: 1,
        threads: 0,
    };
    execute(workload, target, metrics.clone(), exec)
        .await
        .expect("execute");
    let t = metrics.totals();
    assert!(
        t.requests >= 1 && t.requests <= 10,
        "paced by the back-off: {}",
        t.requests
    );
    assert_eq!(t.statuses.conn_errors, t.requests);
    assert_eq!(t.failed, t.requests);
}

fn one_check() -> Names {
    Names {
        checks: vec!["status is 200"],
        rates: vec![],
    }
}

fn constant(vus: u32, ms: u64) -> Exec {
    Exec {
        plan: Plan::ConstantVus {
            vus,
            duration: Duration::from_millis(ms),
        },
        think: Duration::ZERO,
        timeout: Duration::from_secs(2),
        graceful_stop: Duration::from_secs(2),
        seed: 1,
        threads: 0,
    }
}

/// Three base URLs (two servers, the first listed twice, as a balancer
/// would see one instance with double weight): requests go round robin,
/// so each URL gets a third, and what the report counts per URL is what
/// each server received.
#[tokio::test]
async fn requests_go_round_robin_over_the_base_urls() {
    let (a, stub_a) = start_stub(Duration::ZERO).await.expect("stub a");
    let (b, stub_b) = start_stub(Duration::ZERO).await.expect("stub b");
    let urls = [
        format!("http://{a}"),
        format!("http://{b}"),
        format!("http://{a}"),
    ];
    let targets = Arc::new(Targets::resolve(&urls).await.expect("targets"));
    let workload = Arc::new(Hit::new(&targets, "/health", 5));
    let metrics = Arc::new(Metrics::new(one_check(), 2).expect("metrics"));
    execute(workload, targets, metrics.clone(), constant(5, 400))
        .await
        .expect("execute");
    let t = metrics.totals();
    assert_eq!(t.failed, 0);
    assert_eq!(t.targets.len(), 3);
    let per: Vec<u64> = t.targets.iter().map(|c| c.requests).collect();
    assert_eq!(per.iter().sum::<u64>(), t.requests);
    assert_eq!(per[0] + per[2], stub_a.count(), "{per:?}");
    assert_eq!(per[1], stub_b.count(), "{per:?}");
    // Each VU alternates, starting at its own offset: no URL is more than
    // one request per VU away from a fair third.
    let (lo, hi) = (
        per.iter().copied().min().unwrap_or(0),
        per.iter().copied().max().unwrap_or(0),
    );
    assert!(hi - lo <= 5, "{per:?}");
    assert!(lo > 0, "{per:?}");
}

/// One of two instances is gone (killed mid-run, say): its share of the
/// requests fails as connection errors, counted against its URL, and the
/// other keeps answering — the run goes on and reports both.
#[tokio::test]
async fn a_dead_instance_fails_its_share_and_the_run_goes_on() {
    let (live, stub) = start_stub(Duration::ZERO).await.expect("stub");
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let urls = [format!("http://{live}"), format!("http://{dead}")];
    let targets = Arc::new(Targets::resolve(&urls).await.expect("targets"));
    let workload = Arc::new(Hit::new(&targets, "/health", 2));
    let metrics = Arc::new(Metrics::new(one_check(), 1).expect("metrics"));
    execute(workload, targets, metrics.clone(), constant(2, 300))
        .await
        .expect("execute");
    let t = metrics.totals();
    assert_eq!(t.targets[0].requests, stub.count());
    assert_eq!(t.targets[0].failed, 0);
    assert!(t.targets[1].requests > 0);
    assert_eq!(t.targets[1].failed, t.targets[1].requests);
    assert_eq!(t.targets[1].no_answer, t.targets[1].requests);
    assert_eq!(t.statuses.conn_errors, t.targets[1].requests);
}
