//! The gateway's `/metrics` on its admin listener (`--admin-listen`, as
//! the services'): counters of what it forwarded, refused and could not
//! reach, in the Prometheus text format. A handful of atomics, written by
//! hand: no labels beyond a fixed set, so no cardinality to guard.

use super::Edge;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`; anything else is the contract's 404.
pub fn router(edge: Arc<Edge>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .fallback(|| async { crate::transport::http::error::ApiError::not_found() })
        .with_state(edge)
}

async fn metrics(State(edge): State<Arc<Edge>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], render(&edge))
}

/// The exposition text.
pub fn render(edge: &Edge) -> String {
    let c = &edge.counters;
    let (refused, store_errors) = edge.rate_limit_counts();
    let mut out = String::with_capacity(1024);
    let mut counter = |name: &str, help: &str, samples: &[(&str, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    counter(
        "hotdeal_gateway_forwarded_total",
        "Calls sent to an upstream (each try counts).",
        &[("", c.forwarded.load(Relaxed))],
    );
    counter(
        "hotdeal_gateway_upstream_failures_total",
        "Upstream tries that failed, by how: connect (nothing sent), timeout, broken (after sending).",
        &[
            ("{kind=\"connect\"}", c.connect_failures.load(Relaxed)),
            ("{kind=\"timeout\"}", c.timeouts.load(Relaxed)),
            ("{kind=\"broken\"}", c.broken.load(Relaxed)),
        ],
    );
    counter(
        "hotdeal_gateway_unavailable_total",
        "Requests answered 503 at once because every address of the role was cooling down.",
        &[("", c.all_down.load(Relaxed))],
    );
    counter(
        "hotdeal_gateway_rate_limited_total",
        "Requests refused with 429 RATE_LIMITED.",
        &[("", refused)],
    );
    counter(
        "hotdeal_gateway_rate_limit_store_errors_total",
        "Rate limit checks Redis did not answer; the requests were let through (fail open).",
        &[("", store_errors)],
    );
    out
}
