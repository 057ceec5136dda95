//! The HTML report in a real browser: rendered by a run against the stub,
//! opened by headless Chromium, whose DOM must contain the SVG charts.
//! Without Chromium the test is skipped with a notice — except in CI
//! (`CI=true`), where a missing browser is a failure.

mod common;

use std::process::Command;

use common::{args, start, summary, temp_dir};

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|bin| {
        Command::new(bin)
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    })
}

#[tokio::test]
async fn report_renders_charts_in_chromium() {
    let (addr, _stub) = start().await;
    let out = temp_dir("html");
    let base = format!("http://{addr}");
    let out_s = out.to_string_lossy().to_string();
    let code = hotdeal_load::run(args(&[
        "health",
        "--base-url",
        &base,
        "--vus",
        "3",
        "--duration",
        "2s",
        "--out",
        &out_s,
        "--quiet",
    ]))
    .await
    .expect("run");
    assert_eq!(code, 0);
    let s = summary(&out);
    assert!(s["timeseries"].as_array().is_some_and(|t| t.len() >= 2));
    let page = out.join("report.html");
    assert!(page.exists());

    let Some(bin) = chromium() else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("chromium (or chromium-browser) is not on PATH, and CI=true requires it");
        }
        eprintln!("SKIPPED report_renders_charts_in_chromium: no chromium on PATH");
        return;
    };
    let profile = temp_dir("chromium-profile");
    let url = format!("file://{}", page.canonicalize().expect("path").display());
    let output = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--disable-sync",
            &format!("--user-data-dir={}", profile.display()),
            "--dump-dom",
            &url,
        ])
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    for id in ["chart-rps", "chart-latency", "chart-vus"] {
        assert!(
            dom.contains(&format!("<svg id=\"{id}\"")),
            "chart {id} missing from the DOM"
        );
    }
    assert!(dom.matches("<polyline").count() >= 6, "series missing");
    assert!(dom.contains("id=\"thresholds\""));
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_dir_all(&profile);
}
