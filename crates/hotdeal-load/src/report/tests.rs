//! Rendering of a known summary: the text lines k6 readers expect, and an
//! HTML page whose charts carry the data.

use super::*;
use crate::books::Books;
use crate::metrics::PassFail;
use crate::scenarios::Info;
use crate::thresholds::ThresholdResult;

pub fn fixture() -> Summary {
    let trend = Trend {
        count: 7500,
        avg_ms: 9.23,
        min_ms: 0.81,
        med_ms: 8.0,
        max_ms: 1520.0,
        p90_ms: 15.0,
        p95_ms: 20.0,
        p99_ms: 120.5,
    };
    let mut books = Books::default();
    books.stock("deal product", 1000, 900, 100, 0);
    Summary {
        scenario: "order-stress".into(),
        info: Info {
            description: "test fixture",
            seed: "000",
            seed_figure: "295 req/s",
        },
        command_line: "hotdeal load order-stress --stages 3s:20".into(),
        started_at: "2025-01-01T00:00:00Z".into(),
        base_url: "http://127.0.0.1:8080".into(),
        base_urls: vec![BaseUrlLine {
            url: "http://127.0.0.1:8080".into(),
            requests: 7500,
            failed: 0,
            no_answer: 0,
        }],
        machine: crate::proc::Machine {
            cores: 2,
            ram_mb: 24000,
            cpu_model: None,
            kernel: None,
        },
        config: ConfigEcho {
            executor: "ramping-vus",
            shape: "ramping-vus from 1 VUs: 20 VUs (3s)".into(),
            stages: None,
            start: Some(1.0),
            vus: None,
            rate: None,
            pre_vus: None,
            max_vus: None,
            iterations: None,
            gap_ms: None,
            planned_duration_s: 3.0,
            planned_iterations: None,
            think_ms: 100.0,
            timeout_ms: 60_000.0,
            graceful_stop_ms: 30_000.0,
            seed: 1,
            generator_threads: 1,
            params: serde_json::json!({"users": 50}),
        },
        setup_s: 1.5,
        duration_s: 5.0,
        http_reqs: Counter {
            count: 7500,
            per_s: 1500.0,
        },
        http_req_failed: RateFigure {
            rate: 0.0016,
            hits: 12,
            total: 7500,
        },
        http_req_duration: trend,
        iteration_duration: trend,
        iterations: Counter {
            count: 7500,
            per_s: 1500.0,
        },
        dropped_iterations: Counter {
            count: 0,
            per_s: 0.0,
        },
        interrupted_iterations: 0,
        vus: Vus {
            min: 1,
            max: 20,
            max_allocated: 20,
        },
        checks: vec![
            PassFail {
                name: "order 201".into(),
                passes: 7488,
                fails: 12,
            },
            PassFail {
                name: "other".into(),
                passes: 5,
                fails: 0,
            },
        ],
        checks_total: Counter {
            count: 7505,
            per_s: 1501.0,
        },
        checks_succeeded: RateFigure {
            rate: 7493.0 / 7505.0,
            hits: 7493,
            total: 7505,
        },
        rates: vec![],
        status_codes: Statuses {
            s2xx: 7488,
            s3xx: 0,
            s4xx: 12,
            s5xx: 0,
            timeouts: 0,
            conn_errors: 0,
            detail: vec![
                StatusLine {
                    label: "201".into(),
                    count: 7488,
                },
                StatusLine {
                    label: "400 INSUFFICIENT_STOCK".into(),
                    count: 12,
                },
            ],
        },
        server_cpu: None,
        server_cpu_note: Some("server process not found".into()),
        generator_cpu: None,
        thresholds: vec![
            ThresholdResult {
                metric: "http_req_duration".into(),
                expr: "p(95)<2000".into(),
                actual: "p(95)=20ms".into(),
                pass: true,
            },
            ThresholdResult {
                metric: "http_req_failed".into(),
                expr: "rate<0.001".into(),
                actual: "rate=0.16%".into(),
                pass: false,
            },
        ],
        books: Some(books),
        notes: vec!["a note <b>".into()],
        timeseries: (0..5)
            .map(|t| SecondPoint {
                t,
                requests: 1500,
                failed: 2,
                iterations: 1500,
                dropped: 0,
                p50_ms: 8.0,
                p95_ms: 20.0 + t as f64,
                p99_ms: 100.0,
                vus: 4 * t as u32,
            })
            .collect(),
        passed: false,
        exit_code: 1,
    }
}

#[test]
fn text_summary_has_the_k6_lines() {
    let s = fixture();
    let text = text::render(&s);
    let has = |needle: &str| assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    has("    http_reqs......................: 7500   1500.0/s");
    has("    http_req_duration..............: avg=9.23ms min=810µs med=8ms max=1.52s p(90)=15ms p(95)=20ms p(99)=120.5ms");
    has("    http_req_failed................: 0.16%  12 out of 7500");
    has("    iterations.....................: 7500   1500.0/s");
    has("    dropped_iterations.............: 0      0.00/s");
    has("    vus_max........................: 20");
    has("    checks.........................: 99.84% 7493 out of 7505");
    has("    ✓ other");
    has("    ✗ order 201");
    has("      ↳  100% — ✓ 7488 / ✗ 12");
    has("    ✓ 'p(95)<2000' p(95)=20ms");
    has("    ✗ 'rate<0.001' rate=0.16%");
    has("      201..........................: 7488");
    has("      400 INSUFFICIENT_STOCK.......: 12");
    has("    timeouts.......................: 0");
    has("    connection errors..............: 0");
    has("    server_cpu.....................: server process not found");
    has("✓ stock deal product: sold 100 + remaining 900 = initial 1000");
    has("✗ FAILED: a threshold failed");
}

#[test]
fn json_round_trips_the_figures() {
    let s = fixture();
    let v: serde_json::Value = serde_json::to_value(&s).expect("serialises");
    assert_eq!(v["http_reqs"]["count"], 7500);
    assert_eq!(v["http_req_duration"]["p95_ms"], 20.0);
    assert_eq!(v["thresholds"][1]["pass"], false);
    assert_eq!(v["books"]["checks"][0]["ok"], true);
    assert_eq!(v["machine"]["cores"], 2);
    assert_eq!(v["timeseries"].as_array().map(Vec::len), Some(5));
    assert_eq!(v["exit_code"], 1);
}

#[test]
fn summary_export_has_k6_shape() {
    let s = fixture();
    let v = super::k6::render(&s);
    let m = &v["metrics"];
    assert_eq!(m["http_reqs"]["count"], 7500);
    assert!(m["http_reqs"]["rate"].as_f64().is_some_and(|r| r > 0.0));
    for stat in ["avg", "min", "med", "max", "p(90)", "p(95)"] {
        assert!(m["http_req_duration"][stat].is_number(), "{stat}");
    }
    assert_eq!(m["http_req_duration"]["p(95)"], 20.0);
    // k6's http_req_failed: passes are the failed requests.
    assert_eq!(m["http_req_failed"]["passes"], s.http_req_failed.hits);
    assert_eq!(
        m["http_req_failed"]["fails"],
        s.http_req_failed.total - s.http_req_failed.hits
    );
    assert!(m["http_req_failed"]["value"].is_number());
    assert!(m["iterations"]["count"].is_number());
    assert!(m["vus"]["max"].is_number());
    assert!(m["checks"]["passes"].is_number());
    assert_eq!(v["root_group"]["path"], "");
    assert_eq!(v["root_group"]["id"], "d41d8cd98f00b204e9800998ecf8427e");
    for c in &s.checks {
        assert_eq!(v["root_group"]["checks"][&c.name]["passes"], c.passes);
    }
    // Thresholds sit on their metric, `true` when failed (as k6 writes).
    let failed: Vec<_> = s.thresholds.iter().filter(|t| !t.pass).collect();
    assert!(!failed.is_empty());
    for t in failed {
        assert_eq!(m[&t.metric]["thresholds"][&t.expr], true, "{}", t.expr);
    }
}

#[test]
fn html_report_is_self_contained_with_three_charts() {
    let s = fixture();
    let page = html::render(&s);
    for id in ["chart-rps", "chart-latency", "chart-vus"] {
        assert!(page.contains(&format!("<svg id=\"{id}\"")), "{id}");
    }
    assert_eq!(page.matches("<polyline").count(), 6);
    assert!(page.contains("<table id=\"thresholds\">"));
    assert!(page.contains("a note &lt;b&gt;"), "escaped");
    // Offline: nothing is fetched — no external scripts, styles or images.
    assert!(!page.contains("<script"));
    assert!(!page.contains("src=\"http"));
    assert!(!page.contains("href=\"http"));
}

#[test]
fn axis_maxima_are_round() {
    assert_eq!(html::nice_ceil(0.0), 1.0);
    assert_eq!(html::nice_ceil(7.0), 10.0);
    assert_eq!(html::nice_ceil(1500.0), 2000.0);
    assert_eq!(html::nice_ceil(2000.0), 2000.0);
    assert_eq!(html::nice_ceil(0.03), 0.05);
    assert_eq!(html::nice_ceil(240.0), 250.0);
}

#[test]
fn plans_are_described() {
    use crate::config::Stage;
    use std::time::Duration;
    let p = Plan::RampingVus {
        start: 1,
        stages: vec![
            Stage::secs(30, 50.0),
            Stage::secs(60, 50.0),
            Stage::secs(10, 0.0),
        ],
    };
    assert_eq!(
        describe(&p),
        "ramping-vus from 1 VUs: 50 VUs (30s) → 50 VUs (1m) → 0 VUs (10s)"
    );
    let p = Plan::ConstantArrivalRate {
        rate: 12.0,
        duration: Duration::from_secs(20),
        pre_vus: 5,
        max_vus: 50,
    };
    assert_eq!(
        describe(&p),
        "constant-arrival-rate 12/s for 20s, max 50 VUs"
    );
}
