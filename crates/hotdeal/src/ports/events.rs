//! Committed events on their way out of the outbox, and back in.
//!
//! The outbox row is the record: a change writes its event in its own
//! transaction, a relay hands unpublished rows to an [`EventSink`] (a
//! broker) and marks only what the sink acknowledged. The catalogue's
//! events are defined here once, so both stores write the same topics and
//! payloads and the subscriber reads exactly what they wrote.

use super::ledger::OutboxEntry;
use async_trait::async_trait;
use hotdeal_domain::{DealId, ProductId};
use serde_json::json;
use uuid::Uuid;

/// Why a broker did not take an event.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

/// Where committed events go: a broker that stores them durably.
#[async_trait]
pub trait EventSink: Send + Sync {
    /// Publishes `events` in order and waits for the broker to store them.
    /// Answers how many, from the first, were acknowledged: all of them, or
    /// those before the first failure (which is returned too). Publishing
    /// an event twice must be harmless (the broker drops duplicates by the
    /// event's id), because a relay that dies between this call and marking
    /// the rows publishes them again.
    async fn publish(&self, events: &[OutboxEntry]) -> (usize, Option<SinkError>);
}

/// Why a consumer could not handle an event.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// The payload is not what the writers write: retrying cannot help,
    /// it goes to the dead letters after a few deliveries.
    #[error(transparent)]
    Malformed(#[from] Malformed),
    /// Something it needs failed (the store): try again later.
    #[error("{0}")]
    Transient(String),
}

/// What a consumer does with each event it receives.
#[async_trait]
pub trait EventHandler: Send + Sync {
    /// Handles one event of `topic` (e.g. `product.updated`). Called again
    /// for the same event after a failure, and maybe after a success (a
    /// broker delivers at least once): handling must be idempotent.
    async fn handle(&self, topic: &str, payload: &[u8]) -> Result<(), HandleError>;
}

/// A change of the catalogue, as the outbox and the stream carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogueEvent {
    ProductCreated(ProductId),
    /// Any edit of a product's fields (a price edit included).
    ProductUpdated(ProductId),
    DealCreated {
        deal: DealId,
        product: ProductId,
    },
    /// An ended deal gave its unsold units back to its product.
    DealSettled {
        deal: DealId,
        product: ProductId,
        returned: i64,
    },
    /// A seller's stock edit.
    /// `delta` units, `stock` free after the edit.
    StockAdjusted {
        product: ProductId,
        delta: i64,
        stock: i64,
    },
    CouponCreated(Uuid),
}

/// What a catalogue event asks a cache to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    Product(ProductId),
    Deal { deal: DealId, product: ProductId },
    Coupon(Uuid),
}

/// A message whose topic is a catalogue topic but whose payload is not
/// what the stores write. Retrying cannot help it: it is a dead letter.
#[derive(Debug, thiserror::Error)]
#[error("malformed {topic} payload: {why}")]
pub struct Malformed {
    pub topic: String,
    pub why: String,
}

impl CatalogueEvent {
    /// The outbox row: topic and JSON payload.
    pub fn outbox_row(&self) -> (&'static str, String) {
        let (topic, payload) = match *self {
            Self::ProductCreated(p) => ("product.created", json!({ "product_id": p })),
            Self::ProductUpdated(p) => ("product.updated", json!({ "product_id": p })),
            Self::DealCreated { deal, product } => (
                "deal.created",
                json!({ "deal_id": deal, "product_id": product }),
            ),
            Self::DealSettled {
                deal,
                product,
                returned,
            } => (
                "deal.settled",
                json!({ "deal_id": deal, "product_id": product, "returned": returned }),
            ),
            Self::StockAdjusted {
                product,
                delta,
                stock,
            } => (
                "stock.adjusted",
                json!({ "product_id": product, "delta": delta, "stock": stock }),
            ),
            Self::CouponCreated(c) => ("coupon.created", json!({ "coupon_id": c })),
        };
        (topic, payload.to_string())
    }
}

/// Whether a topic changes the catalogue (the subscriber's filter).
pub fn is_catalogue_topic(topic: &str) -> bool {
    topic.starts_with("product.")
        || topic.starts_with("deal.")
        || topic.starts_with("stock.")
        || topic == "coupon.created"
}

/// What a catalogue event asks a cache to reload; `Ok(None)` for a topic
/// that is not the catalogue's. Extra payload fields are ignored, so the
/// writers may add some (`deal.settled` carries `returned`,
/// `stock.adjusted` `delta` and `stock`).
pub fn reload_for(topic: &str, payload: &[u8]) -> Result<Option<Reload>, Malformed> {
    if !is_catalogue_topic(topic) {
        return Ok(None);
    }
    let malformed = |why: &str| Malformed {
        topic: topic.to_owned(),
        why: why.to_owned(),
    };
    let value: serde_json::Value =
        serde_json::from_slice(payload).map_err(|_| malformed("not JSON"))?;
    let id = |key: &str| -> Result<Uuid, Malformed> {
        value
            .get(key)
            .and_then(|v| v.as_str())
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or_else(|| malformed(&format!("no {key}")))
    };
    Ok(Some(if topic == "coupon.created" {
        Reload::Coupon(id("coupon_id")?)
    } else if topic.starts_with("deal.") {
        Reload::Deal {
            deal: DealId(id("deal_id")?),
            product: ProductId(id("product_id")?),
        }
    } else {
        Reload::Product(ProductId(id("product_id")?))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogue_event_reads_back_as_its_reload() {
        let (p, d, c) = (ProductId::new(), DealId::new(), Uuid::now_v7());
        let cases = [
            (CatalogueEvent::ProductCreated(p), Reload::Product(p)),
            (CatalogueEvent::ProductUpdated(p), Reload::Product(p)),
            (
                CatalogueEvent::StockAdjusted {
                    product: p,
                    delta: -2,
                    stock: 5,
                },
                Reload::Product(p),
            ),
            (
                CatalogueEvent::DealCreated {
                    deal: d,
                    product: p,
                },
                Reload::Deal {
                    deal: d,
                    product: p,
                },
            ),
            (
                CatalogueEvent::DealSettled {
                    deal: d,
                    product: p,
                    returned: 3,
                },
                Reload::Deal {
                    deal: d,
                    product: p,
                },
            ),
            (CatalogueEvent::CouponCreated(c), Reload::Coupon(c)),
        ];
        for (event, reload) in cases {
            let (topic, payload) = event.outbox_row();
            assert_eq!(
                reload_for(topic, payload.as_bytes()).expect("parses"),
                Some(reload)
            );
        }
    }

    #[test]
    fn other_topics_are_ignored_and_bad_payloads_refused() {
        assert_eq!(reload_for("order.placed", b"not json").expect("ok"), None);
        assert_eq!(reload_for("coupon.issued", b"{}").expect("ok"), None);
        assert!(reload_for("product.updated", b"not json").is_err());
        assert!(reload_for("deal.created", br#"{"deal_id":"x"}"#).is_err());
    }
}
