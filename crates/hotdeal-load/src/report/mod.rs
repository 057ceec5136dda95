//! The end-of-run [`Summary`]: one serialisable value holding every figure,
//! from which the k6-style text (`text`), `summary.json` and the offline
//! `report.html` (`html`) are rendered. Building it once keeps the three
//! outputs consistent by construction.

pub mod format;
pub mod html;
pub mod k6;
pub mod text;

use std::path::Path;

use serde::Serialize;

use crate::books::Books;
use crate::config::{fmt_duration_short, Stage};
use crate::executor::Plan;
use crate::metrics::{ratio, PassFail, Trend};
use crate::proc::{CpuUse, Machine};
use crate::scenarios::{Ctx, Info, Outcome};
use crate::thresholds::ThresholdResult;

#[derive(Debug, Clone, Serialize)]
pub struct Counter {
    pub count: u64,
    pub per_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RateFigure {
    pub rate: f64,
    pub hits: u64,
    pub total: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusLine {
    /// `2xx`, `201`, `409 COUPON_SOLD_OUT`, `timeouts`, …
    pub label: String,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Statuses {
    pub s2xx: u64,
    pub s3xx: u64,
    pub s4xx: u64,
    pub s5xx: u64,
    pub timeouts: u64,
    pub conn_errors: u64,
    /// Each status, with the body's error code for 4xx/5xx.
    pub detail: Vec<StatusLine>,
}

/// Requests to one base URL (one instance of a scaled deployment).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaseUrlLine {
    pub url: String,
    pub requests: u64,
    pub failed: u64,
    /// Of the failed: timeouts and refused or broken connections.
    pub no_answer: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerCpu {
    #[serde(flatten)]
    pub cpu: CpuUse,
    pub cpu_ms_per_ok_request: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Vus {
    pub min: u32,
    pub max: u32,
    pub max_allocated: u32,
}

/// One second of the run.
#[derive(Debug, Clone, Serialize)]
pub struct SecondPoint {
    pub t: u64,
    pub requests: u64,
    pub failed: u64,
    pub iterations: u64,
    pub dropped: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub vus: u32,
}

/// The traffic shape as configured.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigEcho {
    pub executor: &'static str,
    pub shape: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stages: Option<Vec<Stage>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vus: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre_vus: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_vus: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iterations: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap_ms: Option<f64>,
    pub planned_duration_s: f64,
    /// Iterations the open-model schedule starts (k6 counts the same).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planned_iterations: Option<u64>,
    pub think_ms: f64,
    pub timeout_ms: f64,
    pub graceful_stop_ms: f64,
    pub seed: u64,
    pub generator_threads: usize,
    pub params: serde_json::Value,
}

impl ConfigEcho {
    fn of(plan: &Plan, m: &crate::scenarios::Measured, params: serde_json::Value) -> Self {
        let mut c = Self {
            executor: plan.executor_name(),
            shape: describe(plan),
            stages: None,
            start: None,
            vus: None,
            rate: None,
            pre_vus: None,
            max_vus: None,
            iterations: None,
            gap_ms: None,
            planned_duration_s: plan.duration().as_secs_f64(),
            planned_iterations: None,
            think_ms: m.exec.think.as_secs_f64() * 1000.0,
            timeout_ms: m.exec.timeout.as_secs_f64() * 1000.0,
            graceful_stop_ms: m.exec.graceful_stop.as_secs_f64() * 1000.0,
            seed: m.exec.seed,
            generator_threads: m.exec.threads,
            params,
        };
        match plan {
            Plan::RampingVus { start, stages } => {
                c.start = Some(f64::from(*start));
                c.stages = Some(stages.clone());
            }
            Plan::ConstantVus { vus, .. } => c.vus = Some(*vus),
            Plan::RampingArrivalRate {
                start_rate,
                stages,
                pre_vus,
                max_vus,
            } => {
                c.start = Some(*start_rate);
                c.stages = Some(stages.clone());
                c.planned_iterations = Some(crate::executor::arrival::RampingArrivals::planned(
                    *start_rate,
                    stages,
                ));
                c.pre_vus = Some(*pre_vus);
                c.max_vus = Some(*max_vus);
            }
            Plan::ConstantArrivalRate {
                rate,
                duration,
                pre_vus,
                max_vus,
            } => {
                c.planned_iterations = Some(
                    crate::executor::arrival::ConstantArrivals::new(*rate, *duration).count()
                        as u64,
                );
                c.rate = Some(*rate);
                c.pre_vus = Some(*pre_vus);
                c.max_vus = Some(*max_vus);
            }
            Plan::PerVuIterations {
                vus,
                iterations,
                ordered_gap,
                ..
            } => {
                c.vus = Some(*vus);
                c.iterations = Some(*iterations);
                c.gap_ms = ordered_gap.map(|g| g.as_secs_f64() * 1000.0);
            }
        }
        c
    }
}

/// A one-line description of a plan: `ramping-vus 1→50 (30s), 50 (1m), 0 (10s)`.
pub fn describe(plan: &Plan) -> String {
    let stages = |start: f64, stages: &[Stage], unit: &str| {
        let list: Vec<String> = stages
            .iter()
            .map(|s| format!("{}{unit} ({})", s.target, fmt_duration_short(s.duration)))
            .collect();
        format!("from {start}{unit}: {}", list.join(" → "))
    };
    match plan {
        Plan::RampingVus { start, stages: s } => {
            format!("ramping-vus {}", stages(f64::from(*start), s, " VUs"))
        }
        Plan::ConstantVus { vus, duration } => format!(
            "constant-vus {vus} VUs for {}",
            fmt_duration_short(*duration)
        ),
        Plan::RampingArrivalRate {
            start_rate,
            stages: s,
            max_vus,
            ..
        } => {
            format!(
                "ramping-arrival-rate {}, max {max_vus} VUs",
                stages(*start_rate, s, "/s")
            )
        }
        Plan::ConstantArrivalRate {
            rate,
            duration,
            max_vus,
            ..
        } => {
            format!(
                "constant-arrival-rate {rate}/s for {}, max {max_vus} VUs",
                fmt_duration_short(*duration)
            )
        }
        Plan::PerVuIterations {
            vus,
            iterations,
            ordered_gap,
            ..
        } => format!(
            "per-vu-iterations {vus} VUs × {iterations}{}",
            ordered_gap.map_or(String::new(), |g| format!(
                ", in VU order ({} apart)",
                fmt_duration_short(g)
            ))
        ),
    }
}

/// Everything a run reports.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub scenario: String,
    pub info: Info,
    pub command_line: String,
    pub started_at: String,
    /// Every base URL, comma-separated as on the command line.
    pub base_url: String,
    /// The measured requests per base URL, in the order given.
    pub base_urls: Vec<BaseUrlLine>,
    pub machine: Machine,
    pub config: ConfigEcho,
    pub setup_s: f64,
    pub duration_s: f64,
    pub http_reqs: Counter,
    pub http_req_failed: RateFigure,
    pub http_req_duration: Trend,
    pub iteration_duration: Trend,
    pub iterations: Counter,
    pub dropped_iterations: Counter,
    pub interrupted_iterations: u64,
    pub vus: Vus,
    pub checks: Vec<PassFail>,
    pub checks_total: Counter,
    pub checks_succeeded: RateFigure,
    pub rates: Vec<PassFail>,
    pub status_codes: Statuses,
    pub server_cpu: Option<ServerCpu>,
    pub server_cpu_note: Option<String>,
    pub generator_cpu: Option<CpuUse>,
    pub thresholds: Vec<ThresholdResult>,
    pub books: Option<Books>,
    pub notes: Vec<String>,
    pub timeseries: Vec<SecondPoint>,
    pub passed: bool,
    pub exit_code: i32,
}

fn per_s(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

impl Summary {
    pub fn build(ctx: &Ctx, o: Outcome) -> Self {
        let m = &o.measured;
        let t = &m.totals;
        let secs = m.elapsed.as_secs_f64();
        let ok_requests = t.requests - t.failed;
        let mut detail: Vec<StatusLine> = t
            .statuses
            .by_status
            .iter()
            .map(|e| StatusLine {
                label: if e.code.is_empty() {
                    e.status.to_string()
                } else {
                    format!("{} {}", e.status, e.code)
                },
                count: e.count,
            })
            .collect();
        detail.sort_by(|a, b| a.label.cmp(&b.label));
        let checks_pass: u64 = t.checks.iter().map(|c| c.passes).sum();
        let checks_total: u64 = t.checks.iter().map(PassFail::total).sum();
        let timeseries = t
            .seconds
            .iter()
            .enumerate()
            .map(|(i, s)| SecondPoint {
                t: i as u64,
                requests: s.requests,
                failed: s.failed,
                iterations: s.iterations,
                dropped: s.dropped,
                p50_ms: Trend::percentile(s.hist.as_ref(), 50.0),
                p95_ms: Trend::percentile(s.hist.as_ref(), 95.0),
                p99_ms: Trend::percentile(s.hist.as_ref(), 99.0),
                vus: t.vus_per_second.get(i).copied().unwrap_or(0),
            })
            .collect();
        let passed = o.thresholds.iter().all(|r| r.pass) && o.books.as_ref().is_none_or(Books::ok);
        Summary {
            scenario: ctx.args.scenario.as_str().to_string(),
            info: o.info,
            command_line: ctx.command_line.clone(),
            started_at: ctx.started_at.clone(),
            base_url: ctx.targets.base_urls(),
            base_urls: ctx
                .targets
                .iter()
                .map(|target| {
                    let c = t.targets.get(target.index).copied().unwrap_or_default();
                    BaseUrlLine {
                        url: target.base_url.clone(),
                        requests: c.requests,
                        failed: c.failed,
                        no_answer: c.no_answer,
                    }
                })
                .collect(),
            machine: crate::proc::machine(),
            config: ConfigEcho::of(&m.exec.plan, m, o.params),
            setup_s: o.setup.as_secs_f64(),
            duration_s: secs,
            http_reqs: Counter {
                count: t.requests,
                per_s: per_s(t.requests, secs),
            },
            http_req_failed: RateFigure {
                rate: ratio(t.failed, t.requests),
                hits: t.failed,
                total: t.requests,
            },
            http_req_duration: Trend::of(t.req.as_ref()),
            iteration_duration: Trend::of(t.iter.as_ref()),
            iterations: Counter {
                count: t.iterations,
                per_s: per_s(t.iterations, secs),
            },
            dropped_iterations: Counter {
                count: t.dropped,
                per_s: per_s(t.dropped, secs),
            },
            interrupted_iterations: t.interrupted,
            vus: Vus {
                min: t.vus_min,
                max: t.vus_max,
                max_allocated: t.vus_allocated,
            },
            // A check no iteration reached (e.g. `login 200` on a server
            // whose sign-up already returns tokens) is left out, as in k6.
            checks: t.checks.iter().filter(|c| c.total() > 0).cloned().collect(),
            checks_total: Counter {
                count: checks_total,
                per_s: per_s(checks_total, secs),
            },
            checks_succeeded: RateFigure {
                rate: ratio(checks_pass, checks_total),
                hits: checks_pass,
                total: checks_total,
            },
            rates: t.rates.clone(),
            status_codes: Statuses {
                s2xx: t.statuses.class(2),
                s3xx: t.statuses.class(3),
                s4xx: t.statuses.class(4),
                s5xx: t.statuses.class(5),
                timeouts: t.statuses.timeouts,
                conn_errors: t.statuses.conn_errors,
                detail,
            },
            server_cpu: m.server_cpu.clone().map(|cpu| ServerCpu {
                cpu_ms_per_ok_request: cpu.ms_per(ok_requests),
                cpu,
            }),
            server_cpu_note: m.server_note.clone(),
            generator_cpu: m.generator_cpu.clone(),
            thresholds: o.thresholds,
            books: o.books,
            notes: o.notes,
            timeseries,
            passed,
            exit_code: if passed { 0 } else { 1 },
        }
    }
}

/// Writes `summary.json` and `report.html` into `dir` (created if needed).
pub fn write(dir: &Path, summary: &Summary) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_vec_pretty(summary)?,
    )?;
    std::fs::write(dir.join("report.html"), html::render(summary))?;
    Ok(())
}

#[cfg(test)]
pub mod tests;
