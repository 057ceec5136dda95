//! Every scenario, end to end, against the in-memory contract fake: setup
//! through the API, a short run, the books and the thresholds must all
//! work, and the summary must agree with what the fake did. (The real
//! server is exercised by bench/run.sh; this guards the scenario code for
//! routes the server does not have yet.)

mod common;
mod fake;

use common::{args, summary, temp_dir};

async fn scenario(tokens_on_register: bool, list: &[&str]) -> (i32, serde_json::Value) {
    let addr = fake::start(tokens_on_register).await;
    let out = temp_dir("fake");
    let base = format!("http://{addr}");
    let out_s = out.to_string_lossy().to_string();
    let mut v = vec![list[0], "--base-url", &base, "--out", &out_s, "--quiet"];
    v.extend_from_slice(&list[1..]);
    let code = hotdeal_load::run(args(&v)).await.expect("run");
    let s = summary(&out);
    let _ = std::fs::remove_dir_all(&out);
    (code, s)
}

fn books_ok(s: &serde_json::Value) {
    let checks = s["books"]["checks"].as_array().expect("books");
    assert!(!checks.is_empty());
    for c in checks {
        assert_eq!(c["ok"], true, "book check failed: {c}");
    }
}

#[tokio::test]
async fn order_stress() {
    let (code, s) = scenario(
        false,
        &[
            "order-stress",
            "--stages",
            "500ms:5,500ms:5",
            "--users",
            "5",
        ],
    )
    .await;
    assert_eq!(code, 0, "{s}");
    assert!(s["http_reqs"]["count"].as_u64().unwrap_or(0) > 10);
    assert_eq!(s["checks"][0]["fails"], 0);
    books_ok(&s);
}

#[tokio::test]
async fn order_load_and_spike() {
    for name in ["order-load", "order-spike"] {
        let (code, s) = scenario(true, &[name, "--stages", "1s:4", "--users", "10"]).await;
        assert_eq!(code, 0, "{name}: {s}");
        books_ok(&s);
        let names: Vec<&str> = s["books"]["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert!(
            names
                .iter()
                .filter(|n| n.starts_with("stock product #"))
                .count()
                == 5,
            "{names:?}"
        );
        assert!(names.contains(&"points balance = charged − spent"));
    }
}

#[tokio::test]
async fn coupon_rush_counts_expected_conflicts_as_success() {
    let (code, s) = scenario(
        false,
        &[
            "coupon-rush",
            "--vus",
            "6",
            "--duration",
            "1s",
            "--quantity",
            "4",
        ],
    )
    .await;
    assert_eq!(code, 0, "{s}");
    books_ok(&s);
    // 4 issued, the rest sold out or already issued; none counted as failed.
    assert_eq!(s["http_req_failed"]["hits"], 0);
    let detail = s["status_codes"]["detail"].as_array().expect("detail");
    let count = |label: &str| {
        detail
            .iter()
            .find(|d| d["label"] == label)
            .and_then(|d| d["count"].as_u64())
            .unwrap_or(0)
    };
    assert_eq!(count("201"), 4);
    assert!(count("409 COUPON_ALREADY_ISSUED") > 0);
    assert_eq!(
        count("409 COUPON_SOLD_OUT") + count("409 COUPON_ALREADY_ISSUED") + 4,
        s["http_reqs"]["count"].as_u64().unwrap_or(0)
    );
}

#[tokio::test]
async fn e2e_journeys() {
    // With and without tokens in the register answer (login skipped or not).
    for tokens in [false, true] {
        let (code, s) = scenario(tokens, &["e2e", "--stages", "1s:10,1s:10"]).await;
        assert_eq!(code, 0, "{s}");
        books_ok(&s);
        assert_eq!(s["config"]["planned_iterations"], 15);
        assert_eq!(s["iterations"]["count"], 15);
        let per_iteration = if tokens { 3 } else { 4 };
        assert_eq!(s["http_reqs"]["count"], 15 * per_iteration);
        assert_eq!(s["rates"][0]["name"], "order_success");
        assert_eq!(s["rates"][0]["passes"], 15);
        let checks: Vec<&str> = s["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(checks.contains(&"login 200"), !tokens);
    }
}

#[tokio::test]
async fn fifo_winners_are_the_first_users() {
    let (code, s) = scenario(false, &["fifo"]).await;
    assert_eq!(code, 0, "{s}");
    books_ok(&s);
    assert_eq!(s["thresholds"][0]["metric"], "fifo");
    assert_eq!(s["thresholds"][0]["actual"], "winners 1..10");
    assert_eq!(s["http_reqs"]["count"], 20);
}

#[tokio::test]
async fn read_only_scenarios() {
    for list in [
        &["deal-spike", "--stages", "500ms:3", "--quantity", "2"][..],
        &["auth-stress", "--stages", "500ms:3"][..],
    ] {
        let (code, s) = scenario(false, list).await;
        assert_eq!(code, 0, "{s}");
        assert!(s["books"].is_null());
        assert!(s["http_reqs"]["count"].as_u64().unwrap_or(0) > 0);
    }
}

#[tokio::test]
async fn order_overload_reports_without_thresholds() {
    let (code, s) = scenario(
        false,
        &[
            "order-overload",
            "--stages",
            "500ms:20,500ms:0",
            "--users",
            "4",
        ],
    )
    .await;
    assert_eq!(code, 0, "{s}");
    assert_eq!(s["thresholds"].as_array().map(Vec::len), Some(0));
    assert_eq!(s["config"]["timeout_ms"], 5000.0);
    books_ok(&s);
}
