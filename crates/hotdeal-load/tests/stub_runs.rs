//! `run` end to end against a counting stub (no hotdeal server needed):
//! every executor's reported request count must equal what the server
//! received, and a missing route must end with exit code 2.

mod common;

use common::{args, start, summary, temp_dir};

async fn health_run(extra: &[&str]) -> (i32, serde_json::Value, u64) {
    let (addr, stub) = start().await;
    let out = temp_dir("stub");
    let base = format!("http://{addr}");
    let out_s = out.to_string_lossy().to_string();
    let mut list = vec![
        "health",
        "--base-url",
        &base,
        "--out",
        &out_s,
        "--quiet",
        "--graceful-stop",
        "5s",
    ];
    list.extend_from_slice(extra);
    let code = hotdeal_load::run(args(&list)).await.expect("run");
    let s = summary(&out);
    // `run` probes GET /health once before the measured phase.
    let served = stub.health() - 1;
    let _ = std::fs::remove_dir_all(&out);
    (code, s, served)
}

#[tokio::test]
async fn constant_vus() {
    let (code, s, served) = health_run(&["--vus", "5", "--duration", "1s"]).await;
    assert_eq!(code, 0);
    assert!(served > 10, "served {served}");
    assert_eq!(s["http_reqs"]["count"], served);
    assert_eq!(s["iterations"]["count"], served);
    assert_eq!(s["http_req_failed"]["hits"], 0);
    assert_eq!(s["config"]["executor"], "constant-vus");
    assert_eq!(s["vus"]["max"], 5);
    assert_eq!(s["thresholds"][0]["pass"], true);
}

#[tokio::test]
async fn summary_export_is_written_in_k6_shape() {
    let dir = temp_dir("k6-export");
    let file = dir.join("nested").join("k6.json");
    let file_s = file.to_string_lossy().to_string();
    let (code, s, served) = health_run(&[
        "--vus",
        "3",
        "--duration",
        "1s",
        "--summary-export",
        &file_s,
    ])
    .await;
    assert_eq!(code, 0);
    let k6: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).expect("export written")).expect("json");
    let m = &k6["metrics"];
    assert_eq!(m["http_reqs"]["count"], served);
    assert_eq!(m["iterations"]["count"], s["iterations"]["count"]);
    assert_eq!(m["http_req_failed"]["passes"], 0);
    assert_eq!(m["http_req_failed"]["value"], 0.0);
    for stat in ["avg", "min", "med", "max", "p(90)", "p(95)"] {
        assert!(m["http_req_duration"][stat].is_number(), "{stat}");
    }
    assert_eq!(m["vus"]["max"], 3);
    assert!(k6["root_group"]["checks"].is_object());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn ramping_vus() {
    let (code, s, served) = health_run(&["--stages", "500ms:4,500ms:0"]).await;
    assert_eq!(code, 0);
    assert_eq!(s["http_reqs"]["count"], served);
    assert_eq!(s["config"]["executor"], "ramping-vus");
}

#[tokio::test]
async fn constant_arrival_rate() {
    let (code, s, served) =
        health_run(&["--rate", "40", "--duration", "1s", "--max-vus", "10"]).await;
    assert_eq!(code, 0);
    assert_eq!(served, 40);
    assert_eq!(s["http_reqs"]["count"], 40);
    assert_eq!(s["config"]["planned_iterations"], 40);
    assert_eq!(s["dropped_iterations"]["count"], 0);
}

#[tokio::test]
async fn ramping_arrival_rate() {
    let (code, s, served) = health_run(&[
        "--executor",
        "ramping-arrival-rate",
        "--stages",
        "1s:20,1s:20",
    ])
    .await;
    assert_eq!(code, 0);
    // area 10 + 20 = 30
    assert_eq!(served, 30);
    assert_eq!(s["http_reqs"]["count"], 30);
}

#[tokio::test]
async fn per_vu_iterations() {
    let (code, s, served) = health_run(&[
        "--executor",
        "per-vu-iterations",
        "--vus",
        "7",
        "--iterations",
        "3",
    ])
    .await;
    assert_eq!(code, 0);
    assert_eq!(served, 21);
    assert_eq!(s["iterations"]["count"], 21);
    assert_eq!(s["http_reqs"]["count"], 21);
}

#[tokio::test]
async fn missing_routes_exit_2() {
    let (addr, stub) = start().await;
    let base = format!("http://{addr}");
    // The stub has no coupon (nor any business) route.
    for scenario in ["coupon-rush", "order-stress", "e2e", "order-load"] {
        let code = hotdeal_load::run(args(&[scenario, "--base-url", &base, "--quiet"]))
            .await
            .expect("run");
        assert_eq!(code, 2, "{scenario}");
    }
    assert!(stub.other.load(std::sync::atomic::Ordering::SeqCst) >= 4);
}

#[tokio::test]
async fn no_server_is_an_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let err = hotdeal_load::run(args(&["health", "--base-url", &base, "--quiet"]))
        .await
        .expect_err("must fail");
    assert!(
        err.to_string().contains("no hotdeal server answers"),
        "{err}"
    );
}
