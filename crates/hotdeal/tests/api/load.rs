//! The load tool against a real server: its summary must agree with what
//! the server stored.

use crate::support::{config_for, drop_schema_of, Probe};
use clap::Parser;
use hotdeal::{App, Config};
use serde_json::Value;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    load: hotdeal_load::LoadArgs,
}

/// Runs `scenario` with `flags` against a fresh server; returns the exit
/// code, the summary and a connection to the server's database.
async fn run(scenario: &str, flags: &[&str]) -> (i32, Value, Store) {
    let dir = std::env::temp_dir().join(format!("hotdeal-load-{}", uuid::Uuid::new_v4()));
    let config: Config = config_for(&dir);
    let app = App::build(&config).await.expect("build");
    let base = format!("http://{}", app.local_addr());
    let server = tokio::spawn(app.serve(std::future::pending()));
    let out = dir.join("report");
    let mut argv = vec!["load", scenario, "--base-url", &base, "--out"];
    let out_s = out.display().to_string();
    argv.push(&out_s);
    argv.extend_from_slice(flags);
    let code = hotdeal_load::run(Cli::parse_from(argv).load)
        .await
        .expect("load run");
    let summary: Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).expect("summary"))
            .expect("json");
    let probe = Probe::connect(&config).await;
    server.abort();
    (code, summary, Store { probe, dir })
}

/// The server's store, dropped (schema and files) with the test.
struct Store {
    probe: Probe,
    dir: std::path::PathBuf,
}

impl Drop for Store {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
        drop_schema_of(&self.dir);
    }
}

/// The run's books balanced and no request failed. (Latency thresholds
/// are not asserted: this is a debug build sharing the machine with other
/// tests.)
fn sound(summary: &Value) -> bool {
    let books = summary["books"]["checks"].as_array().expect("books");
    !books.is_empty()
        && books.iter().all(|c| c["ok"] == true)
        && summary["http_req_failed"]["hits"].as_i64() == Some(0)
}

fn count_of(summary: &Value, label: &str) -> i64 {
    summary["status_codes"]["detail"]
        .as_array()
        .expect("detail")
        .iter()
        .filter(|d| d["label"] == label)
        .map(|d| d["count"].as_i64().expect("count"))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_stress_counts_match_the_stored_orders() {
    let (code, summary, mut db) = run(
        "order-stress",
        &["--stages", "1s:10,2s:10", "--think", "0", "--quiet"],
    )
    .await;
    assert!(
        code <= 1 && sound(&summary),
        "books balance, nothing failed: {}",
        summary["books"]
    );
    let created = count_of(&summary, "201");
    assert!(created > 0);
    let stored = db.probe.count("orders").await;
    assert_eq!(
        created, stored,
        "every 201 the tool counted is an order the server stored"
    );
    assert_eq!(
        summary["http_reqs"]["count"].as_i64(),
        Some(created),
        "no other answers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coupon_rush_counts_match_the_stored_issues() {
    let (code, summary, mut db) = run(
        "coupon-rush",
        &["--vus", "30", "--duration", "2s", "--quiet"],
    )
    .await;
    assert_eq!(code, 0);
    let issued = count_of(&summary, "201");
    let stored = db.probe.count("user_coupons").await;
    assert_eq!(issued, stored);
    assert!(issued <= 30, "one per user");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_winners_are_the_first_ten() {
    let (code, summary, _) = run("fifo", &["--quiet"]).await;
    assert_eq!(code, 0, "users 1..10 won");
    assert_eq!(
        (
            count_of(&summary, "201"),
            count_of(&summary, "400 INSUFFICIENT_STOCK")
        ),
        (10, 10)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paid_orders_balance_the_points() {
    let (code, summary, mut db) = run(
        "order-load",
        &["--stages", "1s:5,2s:5", "--users", "20", "--quiet"],
    )
    .await;
    assert!(
        code <= 1 && sound(&summary),
        "books balance, nothing failed: {}",
        summary["books"]
    );
    let created = count_of(&summary, "201");
    let paid = db
        .probe
        .int("SELECT COUNT(*) FROM orders WHERE payment_status = 'paid'")
        .await;
    assert_eq!(created, paid);
    let balances = db
        .probe
        .int("SELECT CAST(SUM(balance) AS BIGINT) FROM point_accounts")
        .await;
    let history = db
        .probe
        .int(
            "SELECT CAST(SUM(CASE kind WHEN 'payment' THEN -amount ELSE amount END) AS BIGINT) \
             FROM point_history",
        )
        .await;
    assert_eq!(balances, history, "Σ balances = Σ history");
}
