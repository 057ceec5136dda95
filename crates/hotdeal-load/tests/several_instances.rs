//! Several base URLs, against the contract fake served on several
//! listeners over one shared state — the shape of a scaled deployment,
//! whose instances share one store. Requests spread round robin, the
//! report counts each URL, and the books, read through every URL, balance.
//! Two fakes that share nothing are refused before the measured phase:
//! their books could never balance, and the run says why.

mod common;
mod fake;

use common::{args, summary, temp_dir};

async fn run_on(
    urls: &[String],
    list: &[&str],
) -> (anyhow::Result<i32>, Option<serde_json::Value>) {
    let out = temp_dir("several");
    let base = urls.join(",");
    let out_s = out.to_string_lossy().to_string();
    let mut v = vec![list[0], "--base-url", &base, "--out", &out_s, "--quiet"];
    v.extend_from_slice(&list[1..]);
    let code = hotdeal_load::run(args(&v)).await;
    let s = out.join("summary.json").exists().then(|| summary(&out));
    let _ = std::fs::remove_dir_all(&out);
    (code, s)
}

fn urls(addrs: &[std::net::SocketAddr]) -> Vec<String> {
    addrs.iter().map(|a| format!("http://{a}")).collect()
}

fn check<'a>(s: &'a serde_json::Value, prefix: &str) -> Vec<&'a serde_json::Value> {
    s["books"]["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
        .collect()
}

fn books_ok(s: &serde_json::Value) {
    for c in s["books"]["checks"].as_array().expect("books") {
        assert_eq!(c["ok"], true, "book check failed: {c}");
    }
}

/// Every URL got about its share, and the per-URL counts add up to the
/// run's requests.
fn spread(s: &serde_json::Value, n: usize) {
    let lines = s["base_urls"].as_array().expect("base_urls");
    assert_eq!(lines.len(), n, "{s}");
    let per: Vec<u64> = lines
        .iter()
        .map(|l| l["requests"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(
        per.iter().sum::<u64>(),
        s["http_reqs"]["count"].as_u64().unwrap_or(0)
    );
    assert!(per.iter().all(|&p| p > 0), "{per:?}");
}

#[tokio::test]
async fn order_stress_over_three_instances_balances_the_books() {
    let addrs = fake::start_shared(3, false).await;
    let (code, s) = run_on(
        &urls(&addrs),
        &[
            "order-stress",
            "--stages",
            "500ms:6,500ms:6",
            "--users",
            "6",
            "--think",
            "0",
        ],
    )
    .await;
    let s = s.expect("summary");
    assert_eq!(code.expect("run"), 0, "{s}");
    books_ok(&s);
    spread(&s, 3);
    // The stock was read through all three and they agreed.
    let agree = check(&s, "instances agree on stock");
    assert_eq!(agree.len(), 1, "{s}");
    assert!(agree[0]["detail"]
        .as_str()
        .unwrap_or("")
        .starts_with("3 of 3"));
    assert!(!check(&s, "orders retrievable").is_empty());
}

#[tokio::test]
async fn coupon_rush_over_two_instances_issues_each_coupon_once() {
    let addrs = fake::start_shared(2, false).await;
    let (code, s) = run_on(
        &urls(&addrs),
        &[
            "coupon-rush",
            "--vus",
            "8",
            "--duration",
            "1s",
            "--quantity",
            "5",
        ],
    )
    .await;
    let s = s.expect("summary");
    assert_eq!(code.expect("run"), 0, "{s}");
    books_ok(&s);
    spread(&s, 2);
    assert_eq!(check(&s, "coupon sold out").len(), 1, "{s}");
    assert_eq!(check(&s, "instances agree on coupon").len(), 1, "{s}");
}

#[tokio::test]
async fn fifo_and_order_load_over_two_instances() {
    let addrs = fake::start_shared(2, true).await;
    let (code, s) = run_on(&urls(&addrs), &["fifo"]).await;
    let s = s.expect("summary");
    assert_eq!(code.expect("run"), 0, "{s}");
    books_ok(&s);
    assert_eq!(
        check(&s, "instances agree").len(),
        2,
        "deal and product: {s}"
    );
    let (code, s) = run_on(
        &urls(&addrs),
        &["order-load", "--stages", "1s:4", "--users", "6"],
    )
    .await;
    let s = s.expect("summary");
    assert_eq!(code.expect("run"), 0, "{s}");
    books_ok(&s);
    assert_eq!(check(&s, "instances agree on stock").len(), 5, "{s}");
}

#[tokio::test]
async fn instances_that_share_nothing_are_refused_before_the_run() {
    let a = fake::start(false).await;
    let b = fake::start(false).await;
    let (result, s) = run_on(
        &urls(&[a, b]),
        &[
            "order-stress",
            "--stages",
            "500ms:2",
            "--users",
            "2",
            "--settle",
            "300ms",
        ],
    )
    .await;
    assert!(s.is_none(), "no report for a run that never started");
    let err = format!("{:#}", result.expect_err("refused"));
    assert!(err.contains("share one store"), "{err}");
    assert!(err.contains(&format!("http://{b}")), "{err}");
}
