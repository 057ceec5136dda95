//! `/metrics`: the server's measurements in the Prometheus / OpenMetrics
//! text format, encoded by `prometheus-client`.
//!
//! Nothing here runs on a request path. The hot path writes atomics
//! ([`super::metrics`]); a scrape reads them, together with the gauges
//! that only exist at the moment of asking (writer queues, Argon2 slots,
//! the live deals and coupons), through one [`Collector`].
//!
//! Label sets are closed: route templates, methods, status classes and
//! named reasons, plus the ids of deals and coupons that are running now
//! (at most [`MAX_LIVE`](crate::services::observe::MAX_LIVE) of each).

use super::metrics::HistogramSnapshot;
use crate::services::Storefront;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The registry of one server.
pub struct Exposition {
    registry: Registry,
}

impl Exposition {
    pub fn new(app: Arc<Storefront>) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(StorefrontCollector(app)));
        Self { registry }
    }

    /// The whole exposition, as text.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(64 * 1024);
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        out
    }
}

struct StorefrontCollector(Arc<Storefront>);

impl std::fmt::Debug for StorefrontCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StorefrontCollector")
    }
}

type Fmt = Result<(), std::fmt::Error>;

fn counters<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, u64)>,
) -> Fmt {
    let mut family = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in series {
        family
            .encode_family(&labels)?
            .encode_counter::<NoLabelSet, _, u64>(&v, None)?;
    }
    Ok(())
}

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> Fmt {
    enc.encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&v, None)
}

fn gauges<L: EncodeLabelSet, V: EncodeGaugeValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, V)>,
) -> Fmt {
    let mut family = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in series {
        family.encode_family(&labels)?.encode_gauge(&v)?;
    }
    Ok(())
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> Fmt {
    enc.encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&v)
}

fn histograms<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, HistogramSnapshot)>,
) -> Fmt {
    let mut family = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in series {
        family
            .encode_family(&labels)?
            .encode_histogram::<NoLabelSet>(h.sum, h.count(), &h.buckets(), None)?;
    }
    Ok(())
}

fn int(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Collector for StorefrontCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Fmt {
        let app = &self.0;
        let m = &app.metrics;

        // HTTP, per route template, method and status class.
        let series = m.http.series();
        counters(
            &mut enc,
            "hotdeal_http_requests",
            "HTTP requests answered, by route template, method and status class.",
            series.iter().map(|(route, method, class, h)| {
                (
                    [
                        ("route", &**route),
                        ("method", *method),
                        ("status_class", *class),
                    ],
                    h.count(),
                )
            }),
        )?;
        histograms(
            &mut enc,
            "hotdeal_http_request_duration_seconds",
            "Time from the request's head to its answer, by route template, method and status class.",
            series.iter().map(|(route, method, class, h)| {
                (
                    [("route", &**route), ("method", *method), ("status_class", *class)],
                    h.clone(),
                )
            }),
        )?;

        // Admission and shedding.
        counters(
            &mut enc,
            "hotdeal_admission",
            "Admission decisions of orders and coupon issues, by outcome.",
            m.admissions()
                .filter(|(flow, outcome, _)| {
                    // Only the outcomes a flow can have.
                    !matches!(
                        (*flow, *outcome),
                        ("order", "already_issued") | ("coupon", "over_limit")
                    )
                })
                .map(|(flow, outcome, n)| ([("flow", flow), ("outcome", outcome)], n)),
        )?;
        let hasher = app.hasher_stats();
        let hash_shed = hasher.map_or(0, |h| h.shed);
        counters(
            &mut enc,
            "hotdeal_shed",
            "Requests refused with 503 before doing their work, by reason.",
            m.sheds().map(|(reason, n)| {
                let n = if reason == "hash_queue" {
                    n + hash_shed
                } else {
                    n
                };
                ([("reason", reason)], n)
            }),
        )?;
        counter(
            &mut enc,
            "hotdeal_orders_placed",
            "Orders committed and answered 201.",
            m.orders_placed.load(Relaxed),
        )?;
        counter(
            &mut enc,
            "hotdeal_coupons_issued",
            "Coupons issued and answered 201.",
            m.coupons_issued.load(Relaxed),
        )?;
        gauges(
            &mut enc,
            "hotdeal_tier_drift",
            "Last audit of the shared admission tier against the store: keys compared, keys \
             whose units plus reservations differ from the store's count, and by how many units \
             in all (writes committing during the audit show as brief drift).",
            [
                (
                    [("measure", "keys_checked")],
                    int(m.drift_keys_checked.load(Relaxed) as usize),
                ),
                (
                    [("measure", "keys_drifting")],
                    int(m.drift_keys.load(Relaxed) as usize),
                ),
                (
                    [("measure", "units")],
                    int(m.drift_units.load(Relaxed) as usize),
                ),
            ],
        )?;

        // The batch writers.
        let writers = app.writers();
        gauges(
            &mut enc,
            "hotdeal_writer_queue_depth",
            "Admitted changes waiting for the batch writer.",
            writers.iter().map(|w| ([("writer", w.name)], int(w.depth))),
        )?;
        gauges(
            &mut enc,
            "hotdeal_writer_queue_capacity",
            "Changes that may wait before new ones are shed.",
            writers
                .iter()
                .map(|w| ([("writer", w.name)], int(w.capacity))),
        )?;
        histograms(
            &mut enc,
            "hotdeal_writer_batch_size",
            "Changes committed per transaction.",
            writers
                .iter()
                .map(|w| ([("writer", w.name)], w.stats.batch_sizes.snapshot())),
        )?;
        histograms(
            &mut enc,
            "hotdeal_writer_commit_duration_seconds",
            "Time to commit one batch.",
            writers
                .iter()
                .map(|w| ([("writer", w.name)], w.stats.commit_seconds.snapshot())),
        )?;

        // Password hashing.
        if let Some(h) = hasher {
            gauge(
                &mut enc,
                "hotdeal_argon2_running",
                "Hashes running now.",
                int(h.running),
            )?;
            gauge(
                &mut enc,
                "hotdeal_argon2_waiting",
                "Hashes waiting for a slot.",
                int(h.waiting),
            )?;
            gauge(
                &mut enc,
                "hotdeal_argon2_workers",
                "Hashing slots.",
                int(h.workers),
            )?;
            gauge(
                &mut enc,
                "hotdeal_argon2_queue_capacity",
                "Hashes that may wait before sign-ups and logins are shed.",
                int(h.queue),
            )?;
            counter(
                &mut enc,
                "hotdeal_argon2_shed",
                "Hashes refused because every slot and the queue were taken.",
                h.shed,
            )?;
        }

        // The live deals and coupons (bounded: running now only).
        let (deals, live_deals) = app.live_deals();
        gauge(
            &mut enc,
            "hotdeal_live_deals",
            "Deals running now.",
            int(live_deals),
        )?;
        gauges(
            &mut enc,
            "hotdeal_deal_remaining_units",
            "Units left of each running deal.",
            deals
                .iter()
                .map(|d| ([("deal_id", d.id.to_string())], d.remaining)),
        )?;
        let (coupons, live_coupons) = app.live_coupons();
        gauge(
            &mut enc,
            "hotdeal_live_coupons",
            "Coupons that can be issued now.",
            int(live_coupons),
        )?;
        gauges(
            &mut enc,
            "hotdeal_coupon_remaining",
            "Coupons left to issue, per running coupon.",
            coupons
                .iter()
                .map(|c| ([("coupon_id", c.id.to_string())], c.remaining)),
        )?;

        // Waiting rooms (bounded like the live deals).
        let queues = app.queue_stats(crate::services::MAX_LIVE);
        gauges(
            &mut enc,
            "hotdeal_waiting_room_waiting",
            "Users waiting in a deal's waiting room.",
            queues
                .iter()
                .map(|q| ([("deal_id", q.deal.0.to_string())], q.waiting as i64)),
        )?;
        gauges(
            &mut enc,
            "hotdeal_waiting_room_admitted",
            "Users admitted from a deal's waiting room so far.",
            queues
                .iter()
                .map(|q| ([("deal_id", q.deal.0.to_string())], q.admitted as i64)),
        )?;
        gauges(
            &mut enc,
            "hotdeal_waiting_room_admit_rate",
            "Users admitted per second from a deal's waiting room, as measured.",
            queues
                .iter()
                .map(|q| ([("deal_id", q.deal.0.to_string())], q.admit_per_sec)),
        )?;

        // Reads served from the page cache.
        counters(
            &mut enc,
            "hotdeal_page_cache_requests",
            "Cached page reads, by whether a kept page was served (hit) or rendered (miss).",
            [
                ([("result", "hit")], m.page_hits.load(Relaxed)),
                ([("result", "miss")], m.page_misses.load(Relaxed)),
            ],
        )?;
        gauge(
            &mut enc,
            "hotdeal_ops_stream_clients",
            "Ops pages following the live stream.",
            i64::try_from(m.ops_clients.load(Relaxed)).unwrap_or(i64::MAX),
        )?;
        // Scaled-out mode will add `hotdeal_instance_up{instance}` here.
        Ok(())
    }
}
