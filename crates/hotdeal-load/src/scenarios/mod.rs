//! The scenarios of docs/scenarios.md, one module each, and what they share:
//! the run context, the measured phase (executor + CPU sampling + progress),
//! and the k6-style resolution of the traffic-shape flags.
//!
//! A scenario module does its whole story top to bottom — check routes,
//! set up data through the API, build pre-serialised requests, run the
//! executor on its [`Workload`], check the books, evaluate thresholds —
//! and returns an [`Outcome`] that `report` turns into text, JSON and HTML.

mod auth_stress;
mod common;
mod coupon_rush;
mod deal_opening;
mod deal_spike;
mod e2e;
mod fifo;
mod health;
mod order_load;
mod order_overload;
mod order_stress;

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper::Method;

use crate::args::{ExecutorKind, LoadArgs, ScenarioName};
use crate::books::Books;
use crate::books::{read_everywhere, Reading};
use crate::client::{Conn, Outcome as NetOutcome, Targets};
use crate::config::Stage;
use crate::executor::{execute, Exec, Plan, Workload};
use crate::metrics::{Metrics, Names, Totals};
use crate::proc::{self, CpuUse};
use crate::report;
use crate::setup::{Api, BoxFuture, SetupError};
use crate::thresholds::{Threshold, ThresholdResult};

/// What the seed report measured, printed beside our figures.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Info {
    pub description: &'static str,
    pub seed: &'static str,
    pub seed_figure: &'static str,
}

/// The run as a whole: arguments, targets (one per base URL), and a tag
/// that makes this run's e-mails and names unique on a server that has
/// seen earlier runs.
pub struct Ctx {
    pub args: LoadArgs,
    pub targets: Arc<Targets>,
    pub tag: String,
    pub started_at: String,
    pub command_line: String,
}

/// The measured phase.
pub struct Measured {
    pub totals: Totals,
    pub elapsed: Duration,
    pub exec: Exec,
    pub server_cpu: Option<CpuUse>,
    pub server_note: Option<String>,
    pub generator_cpu: Option<CpuUse>,
}

/// Everything a scenario hands to the report.
pub struct Outcome {
    pub info: Info,
    pub measured: Measured,
    pub thresholds: Vec<ThresholdResult>,
    pub books: Option<Books>,
    /// Scenario-specific lines for the summary (e.g. fifo's winners).
    pub notes: Vec<String>,
    pub setup: Duration,
    /// Data parameters (users, stock, …) echoed in summary.json.
    pub params: serde_json::Value,
}

/// Entry point behind [`crate::run`].
pub async fn run(args: LoadArgs) -> anyhow::Result<i32> {
    let targets = Arc::new(Targets::resolve(&args.base_urls()).await?);
    let ctx = Ctx {
        tag: uuid::Uuid::new_v4().simple().to_string()[..10].to_string(),
        started_at: crate::time::rfc3339(crate::time::unix_now()),
        command_line: command_line(),
        targets,
        args,
    };
    ctx.check_reachable().await?;
    let result = match ctx.args.scenario {
        ScenarioName::OrderStress => order_stress::run(&ctx).await,
        ScenarioName::DealSpike => deal_spike::run(&ctx).await,
        ScenarioName::OrderLoad => order_load::run(&ctx, false).await,
        ScenarioName::OrderSpike => order_load::run(&ctx, true).await,
        ScenarioName::CouponRush => coupon_rush::run(&ctx).await,
        ScenarioName::E2e => e2e::run(&ctx).await,
        ScenarioName::OrderOverload => order_overload::run(&ctx).await,
        ScenarioName::Fifo => fifo::run(&ctx).await,
        ScenarioName::AuthStress => auth_stress::run(&ctx).await,
        ScenarioName::Health => health::run(&ctx).await,
        ScenarioName::DealOpening => deal_opening::run(&ctx).await,
    };
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            if let Some(missing @ SetupError::RouteMissing { .. }) =
                e.chain().find_map(|c| c.downcast_ref::<SetupError>())
            {
                println!("{}: cannot run: {missing}", ctx.args.scenario.as_str());
                return Ok(2);
            }
            return Err(e);
        }
    };
    let summary = report::Summary::build(&ctx, outcome);
    print!("{}", report::text::render(&summary));
    if let Some(path) = &ctx.args.summary_export {
        report::k6::write(path, &summary)
            .with_context(|| format!("writing the summary export {}", path.display()))?;
    }
    if let Some(dir) = &ctx.args.out {
        report::write(dir, &summary)
            .with_context(|| format!("writing the report to {}", dir.display()))?;
        if !ctx.args.quiet {
            eprintln!(
                "report: {}/summary.json, {}/report.html",
                dir.display(),
                dir.display()
            );
        }
    }
    Ok(summary.exit_code)
}

fn command_line() -> String {
    std::env::args()
        .map(|a| {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$`\\".contains(c)) {
                format!("'{}'", a.replace('\'', "'\\''"))
            } else {
                a
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl Ctx {
    /// Fails early and clearly when nothing answers at a base URL: every
    /// instance must be up before a run starts.
    async fn check_reachable(&self) -> anyhow::Result<()> {
        for target in self.targets.iter() {
            let mut conn = Conn::new(target);
            let head = target.head(Method::GET, "/health", None, false)?;
            let reply = conn
                .send(&head, bytes::Bytes::new(), Duration::from_secs(10), None)
                .await;
            if reply.outcome != NetOutcome::Response {
                anyhow::bail!(
                    "no hotdeal server answers at {} ({:?} on GET /health)",
                    target.base_url,
                    reply.outcome
                );
            }
        }
        Ok(())
    }

    /// With several base URLs, waits until every one of them answers 200
    /// on each of `paths` (the items setup just created through one
    /// instance), for up to `--settle`. An instance learns of a new
    /// catalogue item by an event or by reading through the store on a
    /// miss; either way the measured phase must not start before every
    /// instance knows the item, or its first requests would fail for a
    /// reason that is not load. One base URL: nothing to wait for.
    pub async fn wait_visible(&self, paths: &[String]) -> anyhow::Result<()> {
        if self.targets.len() < 2 || paths.is_empty() {
            return Ok(());
        }
        let started = tokio::time::Instant::now();
        let deadline = started + self.args.settle;
        for i in 0..self.targets.len() {
            let mut api = Api::only(&self.targets, i);
            for path in paths {
                loop {
                    let reply = api.call(Method::GET, path, None, None).await?;
                    if reply.status == 200 {
                        break;
                    }
                    if tokio::time::Instant::now() >= deadline {
                        anyhow::bail!(
                            "GET {path} still answers {} at {} after {} (it answers 200 at {}): do these base URLs share one store?",
                            reply.status,
                            api.target().base_url,
                            crate::config::fmt_duration_short(self.args.settle),
                            self.targets.first().base_url,
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        self.log(format!(
            "{} items visible on all {} base URLs after {:.0} ms",
            paths.len(),
            self.targets.len(),
            started.elapsed().as_secs_f64() * 1000.0
        ));
        Ok(())
    }

    /// A figure of the books read through every base URL (see
    /// [`read_everywhere`]), given `--settle` to agree.
    pub async fn read_everywhere<T, F>(&self, read: F) -> Result<Reading<T>, SetupError>
    where
        T: PartialEq + Clone,
        F: for<'a> Fn(&'a mut Api) -> BoxFuture<'a, Result<T, SetupError>>,
    {
        read_everywhere(&self.targets, self.args.settle, read).await
    }

    pub fn quiet(&self) -> bool {
        self.args.quiet
    }

    pub fn log(&self, msg: impl AsRef<str>) {
        if !self.args.quiet {
            eprintln!("{}: {}", self.args.scenario.as_str(), msg.as_ref());
        }
    }

    pub fn concurrency(&self) -> usize {
        self.args.setup_concurrency.max(1)
    }

    pub fn users_or(&self, default: usize) -> usize {
        self.args.users.unwrap_or(default)
    }

    pub fn stock_or(&self, default: u64) -> u64 {
        self.args.stock.unwrap_or(default)
    }

    pub fn think_or(&self, default: Duration) -> Duration {
        self.args.think.unwrap_or(default)
    }

    pub fn timeout_or(&self, default: Duration) -> Duration {
        self.args.timeout.unwrap_or(default)
    }

    /// The scenario's plan with the command line's overrides applied.
    pub fn plan(&self, default: Plan) -> anyhow::Result<Plan> {
        resolve_plan(&self.args, default).map_err(anyhow::Error::msg)
    }

    /// Runs the measured phase: CPU samples around the executor, progress
    /// on stderr, metrics merged at the end.
    /// [`measure`](Self::measure) with one check, no think time and a
    /// 60 s timeout unless the command line says otherwise.
    pub async fn measure_one_check<W: Workload>(
        &self,
        workload: Arc<W>,
        plan: Plan,
        check: &'static str,
    ) -> anyhow::Result<Measured> {
        let names = Names {
            checks: vec![check],
            rates: vec![],
        };
        let think = self.think_or(Duration::ZERO);
        self.measure(
            workload,
            plan,
            names,
            think,
            self.timeout_or(Duration::from_secs(60)),
        )
        .await
    }

    pub async fn measure<W: Workload>(
        &self,
        workload: Arc<W>,
        plan: Plan,
        names: Names,
        think: Duration,
        timeout: Duration,
    ) -> anyhow::Result<Measured> {
        let exec = Exec {
            plan,
            think,
            timeout,
            graceful_stop: self.args.graceful_stop,
            seed: self.args.seed,
            threads: self.args.threads,
        };
        // The server processes: the one given, or whoever listens on each
        // base URL's port here (several instances, several processes; one
        // instance listed twice, once).
        let mut server_pids: Vec<u32> = Vec::new();
        let mut server_note = None;
        match self.args.server_pid {
            Some(pid) => server_pids.push(pid),
            None => {
                for target in self.targets.iter() {
                    match proc::find_listener(target.addr.port()) {
                        Some(pid) if !server_pids.contains(&pid) => server_pids.push(pid),
                        Some(_) => {}
                        None => {
                            server_note = Some(format!(
                                "server process not found (nothing on this machine visibly listens on port {}; pass --server-pid)",
                                target.addr.port()
                            ));
                        }
                    }
                }
            }
        }
        let server_before: Option<Vec<u64>> = server_pids
            .iter()
            .map(|&p| proc::read_ticks(p).ok())
            .collect();
        if !server_pids.is_empty() && server_before.is_none() {
            server_note = Some(format!("cannot read /proc/PID/stat of {server_pids:?}"));
        }
        let self_before = proc::self_ticks().ok();
        self.log(format!(
            "{} for {}{:.0}s, up to {} VUs, against {}{}",
            exec.plan.executor_name(),
            if matches!(exec.plan, Plan::PerVuIterations { .. }) {
                "at most "
            } else {
                ""
            },
            exec.plan.duration().as_secs_f64(),
            exec.plan.max_vus(),
            self.targets.base_urls(),
            if self.targets.len() > 1 {
                format!(" (round robin over {} base URLs)", self.targets.len())
            } else {
                String::new()
            }
        ));
        if let Some(limit) = proc::open_files_limit() {
            // One socket per VU and base URL, plus the runtime's own
            // descriptors.
            let sockets = u64::from(exec.plan.max_vus()) * self.targets.len() as u64;
            if sockets + 64 > limit {
                self.log(format!(
                    "warning: the open-files limit ({limit}) is below the VU count; raise it (ulimit -n) or expect connection errors"
                ));
            }
        }

        let shards = self.args.threads.max(1) * 2;
        let metrics = Arc::new(Metrics::new(names, shards)?);
        let progress = (!self.args.quiet && std::io::stderr().is_terminal())
            .then(|| tokio::spawn(progress(metrics.clone(), exec.plan.duration())));
        let report = execute(
            workload,
            self.targets.clone(),
            metrics.clone(),
            exec.clone(),
        )
        .await;
        if let Some(p) = progress {
            p.abort();
            eprintln!();
        }
        let report = report?;
        let wall = report.elapsed.as_secs_f64();

        let server_cpu = match server_before {
            Some(before) if !server_pids.is_empty() => {
                let (mut sum_before, mut sum_after, mut vanished) = (0, 0, Vec::new());
                for (&pid, b) in server_pids.iter().zip(before) {
                    match proc::read_ticks(pid) {
                        Ok(after) => {
                            sum_before += b;
                            sum_after += after;
                        }
                        Err(_) => vanished.push(pid),
                    }
                }
                if !vanished.is_empty() {
                    server_note = Some(format!(
                        "server process {vanished:?} vanished during the run; CPU of the others only"
                    ));
                }
                (vanished.len() < server_pids.len()).then(|| {
                    let mut cpu = CpuUse::from_ticks(
                        server_pids.first().copied().unwrap_or(0),
                        sum_before,
                        sum_after,
                        wall,
                    );
                    if server_pids.len() > 1 {
                        cpu.process = Some(format!(
                            "{} processes {server_pids:?}, summed",
                            server_pids.len()
                        ));
                    }
                    cpu
                })
            }
            _ => None,
        };
        let generator_cpu = match (self_before, proc::self_ticks().ok()) {
            (Some(b), Some(a)) => Some(CpuUse::from_ticks(std::process::id(), b, a, wall)),
            _ => None,
        };
        Ok(Measured {
            totals: metrics.totals(),
            elapsed: report.elapsed,
            exec,
            server_cpu,
            server_note,
            generator_cpu,
        })
    }
}

/// k6-like live progress on stderr, rewritten in place once a second:
/// elapsed, VUs, requests per second and p95 over the last full second,
/// and the errors so far. Only on a terminal (and not with `--quiet`).
async fn progress(metrics: Arc<Metrics>, planned: Duration) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        eprint!("\r{}   ", progress_line(&metrics, planned));
    }
}

/// One progress line, from the live counters and the last full second.
pub(crate) fn progress_line(metrics: &Metrics, planned: Duration) -> String {
    let elapsed = metrics.origin().elapsed();
    let (reqs, iters) = metrics.live();
    let failed = metrics.live_failed();
    let (active, allocated) = metrics.vus_now();
    let last = elapsed.as_secs().checked_sub(1);
    let (per_s, p95) = last.map_or((0, None), |s| metrics.second_figures(s as usize));
    let errors = if reqs == 0 {
        0.0
    } else {
        100.0 * failed as f64 / reqs as f64
    };
    format!(
        "running ({:.0}s/{:.0}s), {active}/{allocated} VUs, {per_s} req/s, p95 {}, errors {errors:.2}% ({failed}), {iters} iterations",
        elapsed.as_secs_f64(),
        planned.as_secs_f64(),
        p95.map_or("-".to_owned(), |ms| format!("{ms:.1}ms")),
    )
}

fn kind_of(plan: &Plan) -> ExecutorKind {
    match plan {
        Plan::RampingVus { .. } => ExecutorKind::RampingVus,
        Plan::ConstantVus { .. } => ExecutorKind::ConstantVus,
        Plan::RampingArrivalRate { .. } => ExecutorKind::RampingArrivalRate,
        Plan::ConstantArrivalRate { .. } => ExecutorKind::ConstantArrivalRate,
        Plan::PerVuIterations { .. } => ExecutorKind::PerVuIterations,
    }
}

/// Applies the k6-style overrides to a scenario's default plan:
/// `--stages` → the ramping executor of the scenario's model, `--vus` /
/// `--duration` → constant-vus, `--rate` → constant-arrival-rate, and
/// `--executor` → exactly that executor, its parameters taken from the
/// flags or, where they fit, from the default plan.
pub fn resolve_plan(args: &LoadArgs, default: Plan) -> Result<Plan, String> {
    let total = default.duration();
    let default_max = default.max_vus().max(1);
    let kind = args.executor.unwrap_or_else(|| match &default {
        Plan::RampingVus { .. } | Plan::ConstantVus { .. } => {
            if args.rate.is_some() {
                ExecutorKind::ConstantArrivalRate
            } else if args.stages.is_some() {
                ExecutorKind::RampingVus
            } else if args.vus.is_some() || args.duration.is_some() {
                ExecutorKind::ConstantVus
            } else {
                kind_of(&default)
            }
        }
        Plan::RampingArrivalRate { .. } | Plan::ConstantArrivalRate { .. } => {
            if args.stages.is_some() {
                ExecutorKind::RampingArrivalRate
            } else if args.rate.is_some() {
                ExecutorKind::ConstantArrivalRate
            } else {
                kind_of(&default)
            }
        }
        Plan::PerVuIterations { .. } => ExecutorKind::PerVuIterations,
    });
    let (default_pre, default_pool) = match &default {
        Plan::RampingArrivalRate {
            pre_vus, max_vus, ..
        }
        | Plan::ConstantArrivalRate {
            pre_vus, max_vus, ..
        } => (*pre_vus, *max_vus),
        _ => (default_max.min(50), default_max.max(100)),
    };
    let max_vus = args
        .max_vus
        .unwrap_or(default_pool)
        .max(args.pre_vus.unwrap_or(0))
        .max(1);
    let pre_vus = args.pre_vus.unwrap_or(default_pre).min(max_vus);
    let stages = |what: &str| -> Result<Vec<Stage>, String> {
        if let Some(s) = &args.stages {
            return Ok(s.0.clone());
        }
        match (&default, what) {
            (Plan::RampingVus { stages, .. }, "vus")
            | (Plan::RampingArrivalRate { stages, .. }, "rate") => Ok(stages.clone()),
            (Plan::ConstantVus { vus, duration }, "vus") => {
                Ok(vec![Stage::new(*duration, f64::from(*vus))])
            }
            (Plan::ConstantArrivalRate { rate, duration, .. }, "rate") => {
                Ok(vec![Stage::new(*duration, *rate)])
            }
            _ => Err(format!("this executor needs --stages (targets in {what})")),
        }
    };
    let plan = match kind {
        ExecutorKind::RampingVus => {
            let start = match (&default, args.start) {
                (_, Some(s)) => s.max(0.0).round() as u32,
                (Plan::RampingVus { start, .. }, None) => *start,
                (Plan::ConstantVus { vus, .. }, None) if args.stages.is_none() => *vus,
                _ => 0,
            };
            Plan::RampingVus {
                start,
                stages: stages("vus")?,
            }
        }
        ExecutorKind::ConstantVus => Plan::ConstantVus {
            vus: args.vus.unwrap_or(default_max),
            duration: args.duration.unwrap_or(total),
        },
        ExecutorKind::RampingArrivalRate => {
            let start_rate = match (&default, args.start) {
                (_, Some(s)) => s,
                (Plan::RampingArrivalRate { start_rate, .. }, None) => *start_rate,
                (Plan::ConstantArrivalRate { rate, .. }, None) if args.stages.is_none() => *rate,
                _ => 0.0,
            };
            Plan::RampingArrivalRate {
                start_rate,
                stages: stages("rate")?,
                pre_vus,
                max_vus,
            }
        }
        ExecutorKind::ConstantArrivalRate => {
            let rate = match (&default, args.rate) {
                (_, Some(r)) => r,
                (Plan::ConstantArrivalRate { rate, .. }, None) => *rate,
                _ => return Err("constant-arrival-rate needs --rate".into()),
            };
            Plan::ConstantArrivalRate {
                rate,
                duration: args.duration.unwrap_or(total),
                pre_vus,
                max_vus,
            }
        }
        ExecutorKind::PerVuIterations => {
            let (iterations, ordered_gap, max_duration) = match &default {
                Plan::PerVuIterations {
                    iterations,
                    ordered_gap,
                    max_duration,
                    ..
                } => (*iterations, ordered_gap.map(|_| args.gap), *max_duration),
                _ => (1, None, Duration::from_secs(600)),
            };
            Plan::PerVuIterations {
                vus: args.vus.unwrap_or(default_max),
                iterations: args.iterations.unwrap_or(iterations).max(1),
                ordered_gap,
                max_duration: args.duration.unwrap_or(max_duration),
            }
        }
    };
    if plan.duration().is_zero() {
        return Err("the plan lasts zero seconds".into());
    }
    Ok(plan)
}

/// Evaluates a scenario's thresholds.
pub fn evaluate(thresholds: &[Threshold], totals: &Totals) -> Vec<ThresholdResult> {
    thresholds.iter().map(|t| t.evaluate(totals)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: LoadArgs,
    }

    fn args(extra: &[&str]) -> LoadArgs {
        let mut v = vec!["hotdeal", "order-stress"];
        v.extend_from_slice(extra);
        Cli::try_parse_from(v).expect("parses").args
    }

    fn ramping() -> Plan {
        Plan::RampingVus {
            start: 1,
            stages: vec![
                Stage::secs(30, 50.0),
                Stage::secs(60, 50.0),
                Stage::secs(10, 0.0),
            ],
        }
    }

    #[test]
    fn defaults_stand_without_flags() {
        assert_eq!(resolve_plan(&args(&[]), ramping()), Ok(ramping()));
    }

    #[test]
    fn stages_replace_the_ramp() {
        let p = resolve_plan(&args(&["--stages", "3s:20,5s:20"]), ramping()).expect("plan");
        assert_eq!(
            p,
            Plan::RampingVus {
                start: 1,
                stages: vec![Stage::secs(3, 20.0), Stage::secs(5, 20.0)]
            }
        );
    }

    #[test]
    fn vus_and_duration_mean_constant_vus() {
        let p =
            resolve_plan(&args(&["--vus", "10", "--duration", "10s"]), ramping()).expect("plan");
        assert_eq!(
            p,
            Plan::ConstantVus {
                vus: 10,
                duration: Duration::from_secs(10)
            }
        );
        let p = resolve_plan(&args(&["--duration", "10s"]), ramping()).expect("plan");
        assert_eq!(
            p,
            Plan::ConstantVus {
                vus: 50,
                duration: Duration::from_secs(10)
            }
        );
    }

    #[test]
    fn arrival_overrides() {
        let e2e = Plan::RampingArrivalRate {
            start_rate: 0.0,
            stages: vec![Stage::secs(10, 6.0)],
            pre_vus: 50,
            max_vus: 300,
        };
        let p = resolve_plan(
            &args(&["--rate", "12", "--duration", "20s", "--max-vus", "40"]),
            e2e.clone(),
        )
        .expect("plan");
        assert_eq!(
            p,
            Plan::ConstantArrivalRate {
                rate: 12.0,
                duration: Duration::from_secs(20),
                pre_vus: 40,
                max_vus: 40
            }
        );
        let p = resolve_plan(&args(&["--stages", "2s:4"]), e2e).expect("plan");
        assert_eq!(
            p,
            Plan::RampingArrivalRate {
                start_rate: 0.0,
                stages: vec![Stage::secs(2, 4.0)],
                pre_vus: 50,
                max_vus: 300
            }
        );
        // a closed scenario driven at a rate
        let p =
            resolve_plan(&args(&["--rate", "100", "--duration", "5s"]), ramping()).expect("plan");
        assert!(matches!(p, Plan::ConstantArrivalRate { rate, .. } if rate == 100.0));
    }

    #[test]
    fn explicit_executor() {
        let p = resolve_plan(
            &args(&[
                "--executor",
                "per-vu-iterations",
                "--vus",
                "20",
                "--iterations",
                "3",
            ]),
            ramping(),
        )
        .expect("plan");
        assert_eq!(
            p,
            Plan::PerVuIterations {
                vus: 20,
                iterations: 3,
                ordered_gap: None,
                max_duration: Duration::from_secs(600)
            }
        );
        assert!(resolve_plan(&args(&["--executor", "ramping-arrival-rate"]), ramping()).is_err());
        assert!(resolve_plan(&args(&["--executor", "constant-arrival-rate"]), ramping()).is_err());
        let fifo = Plan::PerVuIterations {
            vus: 20,
            iterations: 1,
            ordered_gap: Some(Duration::from_millis(2)),
            max_duration: Duration::from_secs(60),
        };
        let p = resolve_plan(&args(&["--vus", "30", "--gap", "5ms"]), fifo).expect("plan");
        assert_eq!(
            p,
            Plan::PerVuIterations {
                vus: 30,
                iterations: 1,
                ordered_gap: Some(Duration::from_millis(5)),
                max_duration: Duration::from_secs(60)
            }
        );
    }
}

#[cfg(test)]
mod progress_tests {
    use super::*;
    use crate::metrics::{Names, Status};

    #[test]
    fn the_progress_line_shows_rate_p95_and_errors() {
        let metrics = Arc::new(Metrics::new(Names::default(), 2).expect("metrics"));
        let origin = metrics.origin();
        let rec = metrics.recorder(0);
        // Second 0 of the run: 9 fast answers and one failure.
        for i in 0..10 {
            let failed = i == 9;
            rec.request(
                0,
                origin + Duration::from_millis(10 * i),
                Duration::from_millis(if failed { 80 } else { 2 }),
                Status::Http(if failed { 503 } else { 200 }, None),
                failed,
            );
        }
        assert_eq!(metrics.second_figures(0).0, 10);
        let p95 = metrics.second_figures(0).1.expect("p95");
        assert!((79.0..=81.0).contains(&p95), "{p95}");
        let line = progress_line(&metrics, Duration::from_secs(20));
        assert!(line.starts_with("running ("), "{line}");
        assert!(line.contains("/20s), 0/0 VUs"), "{line}");
        assert!(line.contains("errors 10.00% (1)"), "{line}");
    }
}
