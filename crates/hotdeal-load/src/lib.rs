//! `hotdeal load`: replays the seed reports' traffic shapes against a
//! running hotdeal and prints the figures they print.
//!
//! The crate is a library with one entry point, [`run`], taking
//! [`LoadArgs`] — the server binary embeds the args as its `load`
//! subcommand. Its parts:
//!
//! * `executor` — k6's executors (ramping/constant VUs, ramping/constant
//!   arrival rate, per-VU iterations) driving a scenario's iteration;
//! * `client` — a lean HTTP/1.1 client, one keep-alive connection per VU;
//! * `scenarios` — one module per seed scenario: setup through the public
//!   API, the iteration, the thresholds and the books check;
//! * `metrics` — HDR histograms, status counts, checks, 1-second buckets;
//! * `report` — the k6-style text summary, `summary.json`, `report.html`;
//! * `books` — the invariants checked after a run (stock, coupons, orders);
//! * `proc` — server CPU from `/proc`, found by pid or by listening port.

#![forbid(unsafe_code)]

mod args;
mod books;
mod client;
mod config;
mod executor;
mod metrics;
mod proc;
mod report;
mod rng;
mod scenarios;
mod setup;
#[cfg(test)]
mod testing;
mod thresholds;
mod time;

pub use args::{ExecutorKind, LoadArgs, ScenarioName};
pub use client::BaseUrls;

/// Runs one scenario; returns the process exit code (0 = all thresholds
/// passed and books balanced, 1 = a threshold failed or the books did not
/// balance, 2 = the server lacks a route the scenario needs).
pub async fn run(args: LoadArgs) -> anyhow::Result<i32> {
    scenarios::run(args).await
}
