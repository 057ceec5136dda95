//! `--summary-export FILE`: the run's figures in the JSON shape of k6's
//! `--summary-export`, so CI parsers written for k6 read hotdeal's runs
//! unchanged: a `metrics` object keyed by metric name (trends carry
//! `avg`, `min`, `med`, `max`, `p(90)`, `p(95)`; rates `passes`, `fails`,
//! `value`; counters `count`, `rate`; gauges `value`, `min`, `max`), with
//! the thresholds of a metric under its `thresholds` (`true` = failed, as
//! k6 writes it), and the `root_group` with the checks keyed by name.

use serde_json::{json, Map, Value};

use super::Summary;
use crate::metrics::Trend;

/// k6's id of the root group: the MD5 of its empty path.
const ROOT_GROUP_ID: &str = "d41d8cd98f00b204e9800998ecf8427e";

fn trend(t: &Trend) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("avg".into(), json!(t.avg_ms));
    m.insert("min".into(), json!(t.min_ms));
    m.insert("med".into(), json!(t.med_ms));
    m.insert("max".into(), json!(t.max_ms));
    m.insert("p(90)".into(), json!(t.p90_ms));
    m.insert("p(95)".into(), json!(t.p95_ms));
    m
}

fn rate(passes: u64, fails: u64) -> Map<String, Value> {
    let total = passes + fails;
    let mut m = Map::new();
    m.insert("passes".into(), json!(passes));
    m.insert("fails".into(), json!(fails));
    m.insert(
        "value".into(),
        json!(if total == 0 {
            0.0
        } else {
            passes as f64 / total as f64
        }),
    );
    m
}

fn counter(count: u64, per_s: f64) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("count".into(), json!(count));
    m.insert("rate".into(), json!(per_s));
    m
}

/// The k6 summary-export document of a run.
pub fn render(s: &Summary) -> Value {
    let mut metrics: std::collections::BTreeMap<String, Map<String, Value>> = Default::default();
    metrics.insert(
        "http_reqs".into(),
        counter(s.http_reqs.count, s.http_reqs.per_s),
    );
    metrics.insert("http_req_duration".into(), trend(&s.http_req_duration));
    // k6's http_req_failed is a rate of "failed = true": its passes are the
    // failed requests.
    metrics.insert(
        "http_req_failed".into(),
        rate(
            s.http_req_failed.hits,
            s.http_req_failed.total - s.http_req_failed.hits,
        ),
    );
    metrics.insert(
        "iterations".into(),
        counter(s.iterations.count, s.iterations.per_s),
    );
    metrics.insert("iteration_duration".into(), trend(&s.iteration_duration));
    if s.dropped_iterations.count > 0 {
        metrics.insert(
            "dropped_iterations".into(),
            counter(s.dropped_iterations.count, s.dropped_iterations.per_s),
        );
    }
    let gauge = |value: u32, min: u32, max: u32| {
        let mut m = Map::new();
        m.insert("value".into(), json!(value));
        m.insert("min".into(), json!(min));
        m.insert("max".into(), json!(max));
        m
    };
    metrics.insert("vus".into(), gauge(s.vus.min, s.vus.min, s.vus.max));
    metrics.insert(
        "vus_max".into(),
        gauge(
            s.vus.max_allocated,
            s.vus.max_allocated,
            s.vus.max_allocated,
        ),
    );
    let passes = s.checks_succeeded.hits;
    metrics.insert(
        "checks".into(),
        rate(passes, s.checks_succeeded.total - passes),
    );
    for r in &s.rates {
        metrics.insert(r.name.clone(), rate(r.passes, r.fails));
    }
    for t in &s.thresholds {
        if let Some(m) = metrics.get_mut(&t.metric) {
            let th = m
                .entry("thresholds")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(th) = th {
                th.insert(t.expr.clone(), json!(!t.pass));
            }
        }
    }
    let checks: Map<String, Value> = s
        .checks
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                json!({
                    "name": c.name,
                    "path": format!("::{}", c.name),
                    "passes": c.passes,
                    "fails": c.fails,
                }),
            )
        })
        .collect();
    json!({
        "root_group": {
            "name": "",
            "path": "",
            "id": ROOT_GROUP_ID,
            "groups": {},
            "checks": checks,
        },
        "metrics": metrics
            .into_iter()
            .map(|(k, v)| (k, Value::Object(v)))
            .collect::<Map<String, Value>>(),
        "state": {
            "testRunDurationMs": s.duration_s * 1000.0,
        },
    })
}

/// Writes the document to `path`.
pub fn write(path: &std::path::Path, s: &Summary) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_vec_pretty(&render(s))?)?;
    Ok(())
}
