//! The command line of `hotdeal load <scenario> [flags]`.
//!
//! Every traffic parameter of a scenario has a default taken from its seed
//! report and a flag to override it, following k6's own overrides: `--stages`
//! replaces the stage list, `--vus`/`--duration` turn a VU scenario into
//! constant-vus, `--rate` turns an arrival-rate scenario into
//! constant-arrival-rate, and `--executor` picks any executor explicitly.
//! So a 10-second smoke run and the full run are the same scenario.

use std::path::PathBuf;
use std::time::Duration;

use crate::client::{parse_base_urls, BaseUrls};
use crate::config::{parse_duration, parse_stages, StageList};

/// The scenarios of docs/scenarios.md, plus `health` for calibration.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScenarioName {
    /// Seed 000: ramping VUs 1→50, POST /orders with think time.
    OrderStress,
    /// Seed 001: ramping VUs 1→100, GET /products/deals (signed in).
    DealSpike,
    /// Seed 002 load test: 0→100 VUs over 4 min, random multi-line orders paid with points.
    OrderLoad,
    /// Seed 002 spike test: 0→10→100→0 VUs, same orders.
    OrderSpike,
    /// Seed 003: constant VUs issuing one first-come coupon.
    CouponRush,
    /// Seed 004: arrival rate, sign up → charge points → order (`--case 1|2|3`).
    E2e,
    /// Seeds 000/001 overload: 10→500 VUs, no think time, 5 s timeout.
    OrderOverload,
    /// First come, first served: 20 users in order on a deal of 10 units.
    Fifo,
    /// Seed 001: ramping VUs on GET /auth/users/me.
    AuthStress,
    /// Calibration: constant VUs on GET /health.
    Health,
    /// A waiting-room deal opens: users join, poll, order when admitted.
    DealOpening,
}

impl ScenarioName {
    pub fn as_str(self) -> &'static str {
        match self {
            ScenarioName::OrderStress => "order-stress",
            ScenarioName::DealSpike => "deal-spike",
            ScenarioName::OrderLoad => "order-load",
            ScenarioName::OrderSpike => "order-spike",
            ScenarioName::CouponRush => "coupon-rush",
            ScenarioName::E2e => "e2e",
            ScenarioName::OrderOverload => "order-overload",
            ScenarioName::Fifo => "fifo",
            ScenarioName::AuthStress => "auth-stress",
            ScenarioName::Health => "health",
            ScenarioName::DealOpening => "deal-opening",
        }
    }
}

/// k6 executor names, for `--executor`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutorKind {
    RampingVus,
    ConstantVus,
    RampingArrivalRate,
    ConstantArrivalRate,
    PerVuIterations,
}

/// Arguments of `hotdeal load`.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadArgs {
    /// The scenario to run.
    #[arg(value_enum)]
    pub scenario: ScenarioName,

    /// The hotdeal server(s) to load (http only; a path prefix is
    /// allowed). Several instances of one deployment: a comma-separated
    /// list, or the flag repeated; requests go round robin over them.
    #[arg(
        long,
        env = "HOTDEAL_LOAD_BASE_URL",
        default_value = "http://127.0.0.1:8080",
        value_parser = parse_base_urls,
        action = clap::ArgAction::Append
    )]
    pub base_url: Vec<BaseUrls>,

    /// Stage list `DURATION:TARGET,…` (VUs, or iterations/s for arrival-rate
    /// scenarios), e.g. `30s:50,60s:50,10s:0`.
    #[arg(long, value_parser = parse_stages)]
    pub stages: Option<StageList>,

    /// Start value of the stages: VUs (ramping-vus) or iterations/s
    /// (ramping-arrival-rate).
    #[arg(long)]
    pub start: Option<f64>,

    /// VUs: constant-vus count, per-vu-iterations count. Given alone on a
    /// ramping-vus scenario it switches to constant-vus (as k6's `--vus`).
    #[arg(long)]
    pub vus: Option<u32>,

    /// Iterations per second: switches the scenario to constant-arrival-rate
    /// (open model) for `--duration`.
    #[arg(long)]
    pub rate: Option<f64>,

    /// Duration of constant-vus / constant-arrival-rate runs (`10s`, `5m`).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Iterations per VU (per-vu-iterations).
    #[arg(long)]
    pub iterations: Option<u32>,

    /// Use this executor instead of the scenario's own.
    #[arg(long, value_enum)]
    pub executor: Option<ExecutorKind>,

    /// Think time after each closed-model iteration (`--think 0` for a
    /// saturation run).
    #[arg(long, value_parser = parse_duration)]
    pub think: Option<Duration>,

    /// Per-request timeout (default 60s as k6; 5s for order-overload).
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,

    /// Time running iterations get to finish at the end (k6's gracefulStop).
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub graceful_stop: Duration,

    /// Arrival-rate executors: VUs allocated up front.
    #[arg(long)]
    pub pre_vus: Option<u32>,

    /// Arrival-rate executors: cap on VUs, i.e. on iterations in flight;
    /// an iteration due when all are busy is dropped.
    #[arg(long)]
    pub max_vus: Option<u32>,

    /// Number of users signed up for the scenario (where it has users).
    #[arg(long)]
    pub users: Option<usize>,

    /// Units of stock of the scenario's product or deal.
    #[arg(long)]
    pub stock: Option<u64>,

    /// coupon-rush: coupons available (default: half the users).
    #[arg(long)]
    pub quantity: Option<u64>,

    /// e2e: which of the seed's three cases.
    #[arg(long = "case", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=3))]
    pub case: u8,

    /// fifo: pause between one user's request being written and the next
    /// user's.
    #[arg(long, value_parser = parse_duration, default_value = "2ms")]
    pub gap: Duration,

    /// deal-opening: users admitted per second by the deal's waiting room
    /// (0 = the server's default).
    #[arg(long, default_value_t = 1_000)]
    pub admit_rate: u32,

    /// deal-opening: arrivals after the opening are spread over this long.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub spread: Duration,

    /// Several base URLs: how long the items setup created may take to be
    /// visible on every instance, and the final counts to agree on all of
    /// them, before either is an error.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub settle: Duration,

    /// Seed of the random choices (users, products, quantities).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Concurrent requests during setup (sign-up hashes Argon2 on the
    /// server, so a few are plenty).
    #[arg(long, default_value_t = 8)]
    pub setup_concurrency: usize,

    /// Books: at most this many recorded orders are fetched back (all when
    /// fewer; an even sample otherwise).
    #[arg(long, default_value_t = 10_000)]
    pub verify_orders: usize,

    /// Worker threads of the load generator (0 = share the caller's runtime).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,

    /// Directory for summary.json and report.html.
    #[arg(long)]
    pub out: Option<PathBuf>,

    /// Server process for the CPU figures (default: whoever listens on the
    /// target port on this machine).
    #[arg(long)]
    pub server_pid: Option<u32>,

    /// Also write the run's figures in the JSON shape of k6's
    /// `--summary-export` to this file.
    #[arg(long)]
    pub summary_export: Option<PathBuf>,

    /// No live progress line on stderr (it is off anyway when stderr is
    /// not a terminal).
    #[arg(long)]
    pub quiet: bool,
}

impl LoadArgs {
    /// Every base URL given, in order (at least one: the flag has a
    /// default and its parser refuses an empty list).
    pub fn base_urls(&self) -> Vec<String> {
        BaseUrls::flatten(&self.base_url)
    }
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

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from([
            "hotdeal",
            "order-stress",
            "--stages",
            "3s:20,5s:20",
            "--think",
            "0",
            "--base-url",
            "http://127.0.0.1:18080",
            "--out",
            "x",
        ])
        .expect("parses");
        assert_eq!(cli.args.scenario, ScenarioName::OrderStress);
        assert_eq!(cli.args.think, Some(Duration::ZERO));
        assert_eq!(cli.args.stages.map(|s| s.0.len()), Some(2));
        assert_eq!(cli.args.graceful_stop, Duration::from_secs(30));
        let cli = Cli::try_parse_from(["hotdeal", "e2e", "--case", "3", "--max-vus", "50"])
            .expect("parses");
        assert_eq!(cli.args.case, 3);
        assert!(Cli::try_parse_from(["hotdeal", "e2e", "--case", "4"]).is_err());
        assert!(Cli::try_parse_from(["hotdeal", "nope"]).is_err());
        for name in [
            "coupon-rush",
            "deal-spike",
            "order-load",
            "order-spike",
            "order-overload",
            "fifo",
            "auth-stress",
            "health",
            "deal-opening",
        ] {
            let cli = Cli::try_parse_from(["hotdeal", name]).expect("parses");
            assert_eq!(cli.args.scenario.as_str(), name);
        }
    }

    fn urls(list: &[&str]) -> Result<Vec<String>, String> {
        let mut v = vec!["hotdeal", "order-stress"];
        v.extend_from_slice(list);
        Cli::try_parse_from(v)
            .map(|c| c.args.base_urls())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn one_base_url_by_default() {
        assert_eq!(urls(&[]), Ok(vec!["http://127.0.0.1:8080".to_string()]));
    }

    #[test]
    fn several_base_urls_by_comma_or_repeated_flag() {
        let a = "http://127.0.0.1:18081";
        let b = "http://127.0.0.1:18082/";
        let c = "http://[::1]:18083/api";
        let want = vec![
            a.to_string(),
            "http://127.0.0.1:18082".to_string(),
            c.to_string(),
        ];
        assert_eq!(
            urls(&["--base-url", &format!("{a},{b}, {c}")]),
            Ok(want.clone())
        );
        assert_eq!(
            urls(&["--base-url", a, "--base-url", &format!("{b},{c}")]),
            Ok(want)
        );
        // One instance listed twice is two targets (a balancer's view).
        assert_eq!(
            urls(&["--base-url", &format!("{a},{a}")]).map(|u| u.len()),
            Ok(2)
        );
    }

    #[test]
    fn a_bad_base_url_is_refused_with_the_reason() {
        for (bad, why) in [
            ("https://127.0.0.1:8443", "only http://"),
            ("http://127.0.0.1:8080,127.0.0.1:8081", "only http://"),
            ("http://127.0.0.1:80x", "port"),
            ("http://127.0.0.1:0", "port"),
            ("http://:8080", "host is missing"),
            ("http://", "host is missing"),
            ("http://h:1/a?b=c", "query"),
            (",", "no base URL"),
        ] {
            let err = urls(&["--base-url", bad]).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
