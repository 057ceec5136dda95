//! The admin listener: what operators and Prometheus read, kept off the
//! public port (`--admin-listen`, default 127.0.0.1:9090).
//!
//! - `GET /metrics`: the Prometheus exposition (see
//!   [`crate::observability::exposition`]);
//! - `GET /ops`: a self-contained live page (no CDN, no build step);
//! - `GET /ops/stream`: the figures the page shows, as server-sent events,
//!   one JSON object per tick.
//!
//! The stream ends when the server shuts down, so a browser left open
//! never holds the drain.

use crate::observability::exposition::{Exposition, CONTENT_TYPE};
use crate::observability::metrics::HistogramSnapshot;
use crate::services::Storefront;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The ops page, embedded in the binary.
const OPS_PAGE: &str = include_str!("ops.html");

/// Deals listed on the ops page (the soonest to end).
const PAGE_DEALS: usize = 50;

#[derive(Clone)]
struct AdminState {
    app: Arc<Storefront>,
    exposition: Arc<Exposition>,
    /// Flips to `true` at shutdown; live streams end on it.
    stopping: watch::Receiver<bool>,
}

/// The admin routes.
pub fn router(app: Arc<Storefront>, stopping: watch::Receiver<bool>) -> Router {
    let state = AdminState {
        exposition: Arc::new(Exposition::new(app.clone())),
        app,
        stopping,
    };
    Router::new()
        .route("/metrics", get(metrics))
        .route("/ops", get(|| async { Html(OPS_PAGE) }))
        .route("/ops/stream", get(stream))
        .fallback(|| async { crate::transport::http::error::ApiError::not_found() })
        .with_state(state)
}

/// Serves the admin routes on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    app: Arc<Storefront>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop, stopping) = watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        let _ = stop.send(true);
    };
    axum::serve(listener, router(app, stopping))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics(State(s): State<AdminState>) -> Response {
    // Encoding reads a few thousand atomics and the live deals: cheap, but
    // off the async workers all the same.
    let exposition = s.exposition.clone();
    match tokio::task::spawn_blocking(move || exposition.render()).await {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[derive(Deserialize)]
struct StreamQuery {
    /// Milliseconds between events (100..=10000, default 1000).
    interval_ms: Option<u64>,
}

/// One tick of the ops page.
#[derive(Serialize)]
struct Tick {
    /// The server's clock, Unix ms (countdowns count from it).
    now_ms: i64,
    live_deals: usize,
    deals: Vec<DealTick>,
    orders_total: u64,
    orders_per_s: f64,
    requests_per_s: f64,
    p95_ms: Option<f64>,
    p99_ms: Option<f64>,
    rate_503_per_s: f64,
    rate_429_per_s: f64,
    writers: Vec<WriterTick>,
    page_cache_hit_ratio: Option<f64>,
    /// Scaled-out mode will list its instances here.
    instances: Vec<()>,
}

#[derive(Serialize)]
struct DealTick {
    id: String,
    name: String,
    remaining: i64,
    deal_stock: i64,
    ends_at_ms: i64,
}

#[derive(Serialize)]
struct WriterTick {
    name: &'static str,
    depth: usize,
    capacity: usize,
}

/// What the previous tick saw, for rates.
struct Seen {
    at: Instant,
    orders: u64,
    s503: u64,
    s429: u64,
    requests: HistogramSnapshot,
}

fn seen(app: &Storefront) -> Seen {
    let m = &app.metrics;
    Seen {
        at: Instant::now(),
        orders: m.orders_placed.load(Relaxed),
        s503: m.http.status_503.load(Relaxed),
        s429: m.http.status_429.load(Relaxed),
        requests: m.http.all(),
    }
}

fn tick(app: &Storefront, before: &Seen) -> (Tick, Seen) {
    let now = seen(app);
    let secs = now.at.duration_since(before.at).as_secs_f64().max(1e-3);
    let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs;
    let window = now.requests.since(&before.requests);
    let (deals, live_deals) = app.live_deals();
    let m = &app.metrics;
    let (hits, misses) = (m.page_hits.load(Relaxed), m.page_misses.load(Relaxed));
    let tick = Tick {
        now_ms: app.clock.now().timestamp_millis(),
        live_deals,
        deals: deals
            .into_iter()
            .take(PAGE_DEALS)
            .map(|d| DealTick {
                id: d.id.to_string(),
                name: d.name,
                remaining: d.remaining,
                deal_stock: d.deal_stock,
                ends_at_ms: d.ends_at.timestamp_millis(),
            })
            .collect(),
        orders_total: now.orders,
        orders_per_s: rate(now.orders, before.orders),
        requests_per_s: window.count() as f64 / secs,
        p95_ms: window.quantile(0.95).map(|s| s * 1e3),
        p99_ms: window.quantile(0.99).map(|s| s * 1e3),
        rate_503_per_s: rate(now.s503, before.s503),
        rate_429_per_s: rate(now.s429, before.s429),
        writers: app
            .writers()
            .iter()
            .map(|w| WriterTick {
                name: w.name,
                depth: w.depth,
                capacity: w.capacity,
            })
            .collect(),
        page_cache_hit_ratio: (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64),
        instances: Vec::new(),
    };
    (tick, now)
}

/// Counts a stream client for as long as it lives.
struct Client(Arc<Storefront>);

impl Drop for Client {
    fn drop(&mut self) {
        self.0.metrics.ops_clients.fetch_sub(1, Relaxed);
    }
}

async fn stream(
    State(s): State<AdminState>,
    Query(q): Query<StreamQuery>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let every = Duration::from_millis(q.interval_ms.unwrap_or(1000).clamp(100, 10_000));
    s.app.metrics.ops_clients.fetch_add(1, Relaxed);
    let client = Client(s.app.clone());
    let first = seen(&s.app);
    let state = (client, first, s.stopping, true);
    let events = futures_util::stream::unfold(
        state,
        move |(client, before, mut stopping, first)| async move {
            if !first {
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    _ = stopping.wait_for(|stop| *stop) => return None,
                }
            }
            if *stopping.borrow() {
                return None;
            }
            let (tick, now) = tick(&client.0, &before);
            let event = Event::default()
                .event("tick")
                .json_data(&tick)
                .unwrap_or_else(|_| Event::default().comment("encoding failed"));
            Some((Ok(event), (client, now, stopping, false)))
        },
    );
    Sse::new(events).keep_alive(KeepAlive::default())
}
