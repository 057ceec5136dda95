//! `report.html`: one self-contained page, readable offline — inline CSS,
//! charts drawn here as inline SVG (no script, no network): requests/s,
//! latency p50/p95/p99 and VUs per 1-second bucket, then the thresholds,
//! figures, status codes, books and configuration tables.

use std::fmt::Write;

use super::format::{fmt_ms, fmt_pct, fmt_rate, trend};
use super::Summary;

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A series of a chart.
pub struct Series<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub values: Vec<f64>,
}

/// The smallest 1/2/5×10ᵏ at or above `x` (axis maximum).
pub fn nice_ceil(x: f64) -> f64 {
    if !(x.is_finite() && x > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(x.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * p >= x * (1.0 - 1e-12) {
            return m * p;
        }
    }
    10.0 * p
}

fn axis_label(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// An SVG line chart over seconds 0..n.
pub fn line_chart(id: &str, title: &str, unit: &str, series: &[Series<'_>]) -> String {
    const W: f64 = 880.0;
    const H: f64 = 260.0;
    const L: f64 = 64.0;
    const R: f64 = 16.0;
    const T: f64 = 34.0;
    const B: f64 = 36.0;
    let n = series
        .iter()
        .map(|s| s.values.len())
        .max()
        .unwrap_or(0)
        .max(2);
    let ymax = nice_ceil(
        series
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .fold(0.0, f64::max),
    );
    let x = |i: usize| L + (W - L - R) * i as f64 / (n - 1) as f64;
    let y = |v: f64| T + (H - T - B) * (1.0 - (v / ymax).clamp(0.0, 1.0));
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<svg id="{id}" class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{t}">"#,
        t = escape(title)
    );
    let _ = write!(
        o,
        r#"<text x="{L}" y="18" class="title">{}</text>"#,
        escape(title)
    );
    // horizontal grid + y labels
    for k in 0..=4 {
        let v = ymax * f64::from(k) / 4.0;
        let yy = y(v);
        let _ = write!(
            o,
            r#"<line x1="{L}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" class="grid"/>"#,
            W - R
        );
        let _ = write!(
            o,
            r#"<text x="{:.1}" y="{:.1}" class="ylab">{}</text>"#,
            L - 6.0,
            yy + 4.0,
            axis_label(v)
        );
    }
    let _ = write!(
        o,
        r#"<text x="12" y="{:.1}" class="unit" transform="rotate(-90 12 {:.1})">{}</text>"#,
        T + (H - T - B) / 2.0,
        T + (H - T - B) / 2.0,
        escape(unit)
    );
    // x ticks at a round step
    let step = [1usize, 2, 5, 10, 15, 30, 60, 120, 300, 600]
        .into_iter()
        .find(|s| (n - 1) / s <= 10)
        .unwrap_or(1200);
    let mut i = 0;
    while i < n {
        let xx = x(i);
        let _ = write!(
            o,
            r#"<line x1="{xx:.1}" y1="{:.1}" x2="{xx:.1}" y2="{:.1}" class="tick"/>"#,
            H - B,
            H - B + 4.0
        );
        let _ = write!(
            o,
            r#"<text x="{xx:.1}" y="{:.1}" class="xlab">{i}s</text>"#,
            H - B + 16.0
        );
        i += step;
    }
    let _ = write!(
        o,
        r#"<line x1="{L}" y1="{:.1}" x2="{:.1}" y2="{:.1}" class="axis"/>"#,
        H - B,
        W - R,
        H - B
    );
    // series
    let mut lx = L + 260.0;
    for s in series {
        let pts: Vec<String> = s
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        let _ = write!(
            o,
            r#"<polyline class="series" data-series="{}" fill="none" stroke="{}" stroke-width="1.8" points="{}"/>"#,
            escape(s.name),
            s.color,
            pts.join(" ")
        );
        let _ = write!(
            o,
            r#"<rect x="{lx:.1}" y="10" width="12" height="4" fill="{}"/>"#,
            s.color
        );
        let _ = write!(
            o,
            r#"<text x="{:.1}" y="16" class="legend">{}</text>"#,
            lx + 16.0,
            escape(s.name)
        );
        lx += 30.0 + 7.5 * s.name.chars().count() as f64;
    }
    o.push_str("</svg>");
    o
}

const CSS: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:960px;color:#1d2330;background:#fbfbfd}
h1{font-size:22px;margin:0 0 4px} h2{font-size:16px;margin:28px 0 8px;border-bottom:1px solid #dde;padding-bottom:4px}
.sub{color:#5a6275;margin:2px 0} table{border-collapse:collapse;width:100%;margin:6px 0 12px;background:#fff}
td,th{border:1px solid #e2e4ec;padding:5px 8px;text-align:left;vertical-align:top} th{background:#f1f3f8;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums} .pass{color:#137333;font-weight:600} .fail{color:#c5221f;font-weight:600}
.verdict{font-size:17px;margin:14px 0;padding:10px 14px;border-radius:6px} .verdict.pass{background:#e6f4ea} .verdict.fail{background:#fce8e6}
svg.chart{background:#fff;border:1px solid #e2e4ec;border-radius:6px;margin:6px 0;max-width:100%;height:auto}
svg .grid{stroke:#eceef4} svg .axis{stroke:#9aa0ad} svg .tick{stroke:#9aa0ad}
svg text{font:11px system-ui,sans-serif;fill:#5a6275} svg .title{font-size:13px;font-weight:600;fill:#1d2330}
svg .ylab{text-anchor:end} svg .xlab{text-anchor:middle} svg .unit{text-anchor:middle}
code{background:#f1f3f8;padding:1px 4px;border-radius:3px;word-break:break-all}
"#;

fn row(o: &mut String, k: &str, v: &str) {
    let _ = write!(o, "<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(v));
}

pub fn render(s: &Summary) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>hotdeal load — {}</title><style>{CSS}</style></head><body>",
        escape(&s.scenario)
    );
    let _ = write!(o, "<h1>hotdeal load — {}</h1>", escape(&s.scenario));
    let _ = write!(o, "<p class=\"sub\">{}</p>", escape(s.info.description));
    let _ = write!(
        o,
        "<p class=\"sub\">{} · {} · started {} · measured {:.1}s</p>",
        escape(&s.config.shape),
        escape(&s.base_url),
        escape(&s.started_at),
        s.duration_s
    );
    if s.base_urls.len() > 1 {
        let each: Vec<String> = s
            .base_urls
            .iter()
            .map(|b| {
                format!(
                    "{}: {} requests, {} failed ({} no answer)",
                    escape(&b.url),
                    b.requests,
                    b.failed,
                    b.no_answer
                )
            })
            .collect();
        let _ = write!(
            o,
            "<p class=\"sub\">round robin over {} base URLs — {}</p>",
            s.base_urls.len(),
            each.join(" · ")
        );
    }
    let (cls, text) = if s.passed {
        (
            "pass",
            "✓ passed: every threshold met".to_string()
                + if s.books.is_some() {
                    ", books balanced"
                } else {
                    ""
                },
        )
    } else {
        ("fail", "✗ failed: a threshold or the books".to_string())
    };
    let _ = write!(o, "<div class=\"verdict {cls}\">{}</div>", escape(&text));

    // headline figures
    let _ = write!(o, "<h2>Figures</h2><table>");
    row(
        &mut o,
        "http_reqs",
        &format!("{}  ({})", s.http_reqs.count, fmt_rate(s.http_reqs.per_s)),
    );
    row(&mut o, "http_req_duration", &trend(&s.http_req_duration));
    row(
        &mut o,
        "http_req_failed",
        &format!(
            "{} ({} of {})",
            fmt_pct(s.http_req_failed.rate),
            s.http_req_failed.hits,
            s.http_req_failed.total
        ),
    );
    row(
        &mut o,
        "iterations",
        &format!("{}  ({})", s.iterations.count, fmt_rate(s.iterations.per_s)),
    );
    row(&mut o, "iteration_duration", &trend(&s.iteration_duration));
    row(
        &mut o,
        "dropped_iterations",
        &s.dropped_iterations.count.to_string(),
    );
    row(
        &mut o,
        "vus",
        &format!(
            "min {} · max {} · allocated {}",
            s.vus.min, s.vus.max, s.vus.max_allocated
        ),
    );
    if s.checks_total.count > 0 {
        row(
            &mut o,
            "checks",
            &format!(
                "{} ({} of {})",
                fmt_pct(s.checks_succeeded.rate),
                s.checks_succeeded.hits,
                s.checks_succeeded.total
            ),
        );
    }
    for r in &s.rates {
        row(
            &mut o,
            &r.name,
            &format!("{} ({} of {})", fmt_pct(r.rate()), r.passes, r.total()),
        );
    }
    match (&s.server_cpu, &s.server_cpu_note) {
        (Some(c), _) => {
            row(
                &mut o,
                "server CPU",
                &format!(
                    "{:.1}% of one core (pid {}), {:.0} CPU-ms",
                    c.cpu.percent_of_one_core, c.cpu.pid, c.cpu.cpu_ms
                ),
            );
            row(
                &mut o,
                "server CPU per successful request",
                &c.cpu_ms_per_ok_request
                    .map_or("n/a".into(), |v| format!("{v:.3} CPU-ms")),
            );
        }
        (None, Some(n)) => row(&mut o, "server CPU", n),
        _ => {}
    }
    if let Some(g) = &s.generator_cpu {
        row(
            &mut o,
            "generator CPU",
            &format!("{:.1}% of one core", g.percent_of_one_core),
        );
    }
    row(
        &mut o,
        "seed's figure",
        &format!("seed {}: {}", s.info.seed, s.info.seed_figure),
    );
    o.push_str("</table>");

    // charts
    let ts = &s.timeseries;
    let _ = write!(o, "<h2>Over time (1-second buckets)</h2>");
    o.push_str(&line_chart(
        "chart-rps",
        "Requests per second",
        "req/s",
        &[
            Series {
                name: "requests/s",
                color: "#1a73e8",
                values: ts.iter().map(|p| p.requests as f64).collect(),
            },
            Series {
                name: "failed/s",
                color: "#d93025",
                values: ts.iter().map(|p| p.failed as f64).collect(),
            },
        ],
    ));
    o.push_str(&line_chart(
        "chart-latency",
        "Latency percentiles",
        "ms",
        &[
            Series {
                name: "p50",
                color: "#188038",
                values: ts.iter().map(|p| p.p50_ms).collect(),
            },
            Series {
                name: "p95",
                color: "#f29900",
                values: ts.iter().map(|p| p.p95_ms).collect(),
            },
            Series {
                name: "p99",
                color: "#d93025",
                values: ts.iter().map(|p| p.p99_ms).collect(),
            },
        ],
    ));
    o.push_str(&line_chart(
        "chart-vus",
        "Virtual users",
        "VUs",
        &[Series {
            name: "VUs",
            color: "#9334e6",
            values: ts.iter().map(|p| f64::from(p.vus)).collect(),
        }],
    ));

    // thresholds
    let _ = write!(o, "<h2>Thresholds</h2>");
    if s.thresholds.is_empty() {
        o.push_str("<p>None: this scenario reports figures only.</p>");
    } else {
        o.push_str("<table id=\"thresholds\"><tr><th></th><th>metric</th><th>threshold</th><th>actual</th></tr>");
        for t in &s.thresholds {
            let (c, m) = if t.pass {
                ("pass", "✓")
            } else {
                ("fail", "✗")
            };
            let _ = write!(
                o,
                "<tr><td class=\"{c}\">{m}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                escape(&t.metric),
                escape(&t.expr),
                escape(&t.actual)
            );
        }
        o.push_str("</table>");
    }

    // checks
    if !s.checks.is_empty() {
        o.push_str(
            "<h2>Checks</h2><table><tr><th></th><th>check</th><th>passed</th><th>failed</th></tr>",
        );
        for c in &s.checks {
            let (cl, m) = if c.fails == 0 {
                ("pass", "✓")
            } else {
                ("fail", "✗")
            };
            let _ = write!(
                o,
                "<tr><td class=\"{cl}\">{m}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                escape(&c.name),
                c.passes,
                c.fails
            );
        }
        o.push_str("</table>");
    }

    // status codes
    let sc = &s.status_codes;
    o.push_str("<h2>Status codes</h2><table><tr><th>status</th><th>count</th></tr>");
    for d in &sc.detail {
        let _ = write!(
            o,
            "<tr><td>{}</td><td class=\"num\">{}</td></tr>",
            escape(&d.label),
            d.count
        );
    }
    let _ = write!(
        o,
        "<tr><td>timeouts</td><td class=\"num\">{}</td></tr>",
        sc.timeouts
    );
    let _ = write!(
        o,
        "<tr><td>connection errors</td><td class=\"num\">{}</td></tr></table>",
        sc.conn_errors
    );

    // books
    if let Some(b) = &s.books {
        o.push_str("<h2>Books</h2><table><tr><th></th><th>invariant</th><th>detail</th></tr>");
        for c in &b.checks {
            let (cl, m) = if c.ok {
                ("pass", "✓")
            } else {
                ("fail", "✗")
            };
            let _ = write!(
                o,
                "<tr><td class=\"{cl}\">{m}</td><td>{}</td><td>{}</td></tr>",
                escape(&c.name),
                escape(&c.detail)
            );
        }
        o.push_str("</table>");
    }
    if !s.notes.is_empty() {
        o.push_str("<h2>Notes</h2><ul>");
        for n in &s.notes {
            let _ = write!(o, "<li>{}</li>", escape(n));
        }
        o.push_str("</ul>");
    }

    // configuration
    o.push_str("<h2>Configuration</h2><table>");
    row(&mut o, "command line", &s.command_line);
    row(&mut o, "executor", &s.config.shape);
    row(&mut o, "think time", &fmt_ms(s.config.think_ms));
    row(&mut o, "timeout", &fmt_ms(s.config.timeout_ms));
    row(&mut o, "parameters", &s.config.params.to_string());
    row(&mut o, "setup", &format!("{:.1}s", s.setup_s));
    row(
        &mut o,
        "machine",
        &format!(
            "{} cores, {} MB RAM{}{}",
            s.machine.cores,
            s.machine.ram_mb,
            s.machine
                .cpu_model
                .as_deref()
                .map(|m| format!(", {m}"))
                .unwrap_or_default(),
            s.machine
                .kernel
                .as_deref()
                .map(|k| format!(", Linux {k}"))
                .unwrap_or_default()
        ),
    );
    o.push_str("</table></body></html>\n");
    o
}
