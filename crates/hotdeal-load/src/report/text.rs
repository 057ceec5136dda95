//! The end-of-test summary in k6's text layout (v1 style: THRESHOLDS, then
//! TOTAL RESULTS grouped in sections, dotted metric lines), so it can be
//! read side by side with the seed reports; plus hotdeal's additions:
//! status codes by error code, server CPU, and the books.

use std::fmt::Write;

use super::format::{count_rate, fmt_ms, fmt_pct, line, rate_of, trend, NAME_WIDTH};
use super::Summary;

const IND: &str = "    ";

fn metric(out: &mut String, name: &str, value: &str) {
    let _ = writeln!(out, "{IND}{}", line(name, value, NAME_WIDTH));
}

pub fn render(s: &Summary) -> String {
    let mut o = String::new();
    let _ = writeln!(o);
    let _ = writeln!(o, "  scenario: {} — {}", s.scenario, s.info.description);
    let _ = writeln!(o, "  executor: {}", s.config.shape);
    let target = if s.base_urls.len() > 1 {
        format!("{} base URLs, round robin", s.base_urls.len())
    } else {
        s.base_url.clone()
    };
    let _ = writeln!(
        o,
        "  target:   {target}   setup {:.1}s, measured {:.1}s, think {}, timeout {}",
        s.setup_s,
        s.duration_s,
        fmt_ms(s.config.think_ms),
        fmt_ms(s.config.timeout_ms)
    );
    if s.base_urls.len() > 1 {
        let width = s.base_urls.iter().map(|b| b.url.len()).max().unwrap_or(0);
        for b in &s.base_urls {
            let _ = writeln!(
                o,
                "            {:<width$}  {} requests, {} failed ({} no answer)",
                b.url, b.requests, b.failed, b.no_answer
            );
        }
    }
    let _ = writeln!(o);

    if !s.thresholds.is_empty() {
        let _ = writeln!(o, "  █ THRESHOLDS");
        let mut last_metric = "";
        for t in &s.thresholds {
            if t.metric != last_metric {
                let _ = writeln!(o);
                let _ = writeln!(o, "{IND}{}", t.metric);
                last_metric = &t.metric;
            }
            let mark = if t.pass { "✓" } else { "✗" };
            let _ = writeln!(o, "{IND}{mark} '{}' {}", t.expr, t.actual);
        }
        let _ = writeln!(o);
        let _ = writeln!(o);
    }

    let _ = writeln!(o, "  █ TOTAL RESULTS");
    let _ = writeln!(o);
    if s.checks_total.count > 0 || !s.checks.is_empty() {
        let c = &s.checks_succeeded;
        metric(&mut o, "checks", &rate_of(c.rate, c.hits, c.total));
        metric(
            &mut o,
            "checks_total",
            &count_rate(s.checks_total.count, s.checks_total.per_s),
        );
        metric(
            &mut o,
            "checks_succeeded",
            &rate_of(c.rate, c.hits, c.total),
        );
        metric(
            &mut o,
            "checks_failed",
            &rate_of(1.0 - c.rate, c.total - c.hits, c.total),
        );
        let _ = writeln!(o);
        for c in &s.checks {
            if c.fails == 0 {
                let _ = writeln!(o, "{IND}✓ {}", c.name);
            } else {
                let _ = writeln!(o, "{IND}✗ {}", c.name);
                let _ = writeln!(
                    o,
                    "{IND}  ↳  {:.0}% — ✓ {} / ✗ {}",
                    c.rate() * 100.0,
                    c.passes,
                    c.fails
                );
            }
        }
        let _ = writeln!(o);
    }
    if !s.rates.is_empty() {
        let _ = writeln!(o, "{IND}CUSTOM");
        for r in &s.rates {
            metric(&mut o, &r.name, &rate_of(r.rate(), r.passes, r.total()));
        }
        let _ = writeln!(o);
    }

    let _ = writeln!(o, "{IND}HTTP");
    metric(&mut o, "http_req_duration", &trend(&s.http_req_duration));
    let f = &s.http_req_failed;
    metric(&mut o, "http_req_failed", &rate_of(f.rate, f.hits, f.total));
    metric(
        &mut o,
        "http_reqs",
        &count_rate(s.http_reqs.count, s.http_reqs.per_s),
    );
    let _ = writeln!(o);

    let _ = writeln!(o, "{IND}EXECUTION");
    metric(
        &mut o,
        "dropped_iterations",
        &count_rate(s.dropped_iterations.count, s.dropped_iterations.per_s),
    );
    if s.interrupted_iterations > 0 {
        metric(
            &mut o,
            "interrupted_iterations",
            &s.interrupted_iterations.to_string(),
        );
    }
    metric(&mut o, "iteration_duration", &trend(&s.iteration_duration));
    metric(
        &mut o,
        "iterations",
        &count_rate(s.iterations.count, s.iterations.per_s),
    );
    if let Some(p) = s.config.planned_iterations {
        metric(&mut o, "iterations_planned", &p.to_string());
    }
    metric(
        &mut o,
        "vus",
        &format!("min={:<6} max={}", s.vus.min, s.vus.max),
    );
    metric(
        &mut o,
        "vus_max",
        &format!("{:<6} (allocated)", s.vus.max_allocated),
    );
    let _ = writeln!(o);

    let _ = writeln!(o, "{IND}STATUS CODES");
    let sc = &s.status_codes;
    for (class, count) in [(2u16, sc.s2xx), (3, sc.s3xx), (4, sc.s4xx), (5, sc.s5xx)] {
        if count == 0 && class != 2 && class != 5 {
            continue;
        }
        metric(&mut o, &format!("{class}xx"), &count.to_string());
        for d in sc
            .detail
            .iter()
            .filter(|d| d.label.starts_with(&class.to_string()))
        {
            metric(&mut o, &format!("  {}", d.label), &d.count.to_string());
        }
    }
    metric(&mut o, "timeouts", &sc.timeouts.to_string());
    metric(&mut o, "connection errors", &sc.conn_errors.to_string());
    let _ = writeln!(o);

    let _ = writeln!(o, "{IND}COST");
    match (&s.server_cpu, &s.server_cpu_note) {
        (Some(c), _) => {
            let who = c.cpu.process.as_deref().unwrap_or("?");
            metric(
                &mut o,
                "server_cpu",
                &format!(
                    "{:.1}% of one core (pid {} {who}, {:.0} CPU-ms)",
                    c.cpu.percent_of_one_core, c.cpu.pid, c.cpu.cpu_ms
                ),
            );
            let per = c
                .cpu_ms_per_ok_request
                .map_or("n/a (no successful request)".to_string(), |v| {
                    format!("{v:.3} CPU-ms")
                });
            metric(&mut o, "server_cpu_per_ok_request", &per);
        }
        (None, Some(note)) => metric(&mut o, "server_cpu", note),
        (None, None) => metric(&mut o, "server_cpu", "not measured"),
    }
    if let Some(g) = &s.generator_cpu {
        metric(
            &mut o,
            "generator_cpu",
            &format!("{:.1}% of one core", g.percent_of_one_core),
        );
    }
    let _ = writeln!(o);

    if let Some(b) = &s.books {
        let _ = writeln!(o, "  █ BOOKS");
        let _ = writeln!(o);
        for c in &b.checks {
            let mark = if c.ok { "✓" } else { "✗" };
            let _ = writeln!(o, "{IND}{mark} {}: {}", c.name, c.detail);
        }
        if !b.ok() {
            let _ = writeln!(
                o,
                "{IND}BROKEN INVARIANT: this run fails whatever its speed"
            );
        }
        let _ = writeln!(o);
    }
    if !s.notes.is_empty() {
        for n in &s.notes {
            let _ = writeln!(o, "  {n}");
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(o, "  seed {}: {}", s.info.seed, s.info.seed_figure);
    let _ = writeln!(
        o,
        "  ours:     {:.1} req/s, p95 {}, avg {}, {} failed",
        s.http_reqs.per_s,
        fmt_ms(s.http_req_duration.p95_ms),
        fmt_ms(s.http_req_duration.avg_ms),
        fmt_pct(s.http_req_failed.rate)
    );
    let _ = writeln!(o);
    let verdict = match (
        s.passed,
        s.thresholds.iter().any(|t| !t.pass),
        s.books.as_ref().is_some_and(|b| !b.ok()),
    ) {
        (true, _, _) => {
            "✓ PASSED: every threshold met".to_string()
                + if s.books.is_some() {
                    ", books balanced"
                } else {
                    ""
                }
        }
        (false, t, b) => {
            let mut why = Vec::new();
            if t {
                why.push("a threshold failed");
            }
            if b {
                why.push("the books do not balance");
            }
            format!("✗ FAILED: {}", why.join(" and "))
        }
    };
    let _ = writeln!(o, "  {verdict}");
    o
}
