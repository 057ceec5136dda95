//! Committed events: the in-process bus, the relay to a broker, and the
//! catalogue following the broker.
//!
//! Every change writes its events to the outbox table in its own
//! transaction. In the embedded mode the relay reads what is unpublished,
//! in order, publishes it to in-process subscribers (a broadcast channel)
//! and marks it. A process that dies between publishing and marking
//! publishes those events again after the restart: delivery is at least
//! once, and never of anything that was not committed.
//!
//! In the scaled mode a broker relay ([`Storefront::relay_to`], any
//! instance, every [`RELAY_EVERY`]) hands the outbox to an [`EventSink`]
//! (NATS JetStream) instead, and every instance follows the catalogue's
//! events ([`EventHandler`] below): a product, deal or coupon changed on
//! one instance is reloaded from the store on every other.

use super::{Error, Result, Storefront};
use crate::model::Event;
use crate::ports::events::{reload_for, EventHandler, EventSink, HandleError, Reload, SinkError};
use async_trait::async_trait;
use chrono::Duration;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Most events relayed per round.
const RELAY_BATCH: i64 = 1000;
/// Events are kept this long (published, or with nobody to publish to)
/// before pruning.
const KEEP_PUBLISHED: i64 = 3600;
/// How often the broker relay looks for new events. Idle, a look is one
/// index probe; it bounds how late another instance hears of a change.
pub const RELAY_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

impl Storefront {
    /// Publishes unpublished outbox events; returns how many. With nobody
    /// subscribed there is nobody to publish to, and reading the events
    /// back would only cost the writer time: they wait in the outbox (for
    /// an hour, see [`Storefront::prune`]) for a subscriber or a broker
    /// adapter to relay them. Once a broker relay runs, it owns the outbox.
    pub async fn relay_events(&self) -> Result<usize> {
        if self.events.receiver_count() == 0 || self.broker_relay.load(Ordering::Acquire) {
            return Ok(0);
        }
        let mut relayed = 0;
        loop {
            let entries = self.ledger.unpublished(RELAY_BATCH).await?;
            let Some(last) = entries.last().map(|e| e.seq) else {
                return Ok(relayed);
            };
            for e in &entries {
                let payload = serde_json::from_str(&e.payload).unwrap_or(serde_json::Value::Null);
                // No subscriber is not an error: the outbox is the record.
                let _ = self.events.send(Event {
                    topic: e.topic.clone(),
                    payload,
                });
            }
            self.ledger.mark_published(last, self.clock.now()).await?;
            relayed += entries.len();
            if entries.len() < RELAY_BATCH as usize {
                return Ok(relayed);
            }
        }
    }

    /// Hands unpublished events to `sink` until none is left; returns how
    /// many it took. A failure leaves the rest unpublished for the next
    /// call: nothing is lost, nothing is marked that the sink did not take.
    pub async fn relay_to(&self, sink: &dyn EventSink) -> Result<usize> {
        self.broker_relay.store(true, Ordering::Release);
        let mut relayed = 0;
        let sink = TierThen { app: self, sink };
        loop {
            let (published, failed) = self
                .ledger
                .relay_outbox(RELAY_BATCH, &sink, self.clock.now())
                .await?;
            relayed += published;
            if let Some(e) = failed {
                return Err(Error::Internal(Box::new(e)));
            }
            if published < RELAY_BATCH as usize {
                return Ok(relayed);
            }
        }
    }

    /// Runs [`Storefront::relay_to`] every `every` until aborted. A failure
    /// is logged once until relaying works again, not every round.
    pub fn spawn_relay(
        self: &Arc<Self>,
        sink: Arc<dyn EventSink>,
        every: std::time::Duration,
    ) -> tokio::task::JoinHandle<()> {
        self.broker_relay.store(true, Ordering::Release);
        let app = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                tick.tick().await;
                match app.relay_to(&*sink).await {
                    Ok(_) if failing => {
                        failing = false;
                        tracing::info!("relaying events works again");
                    }
                    Ok(_) => {}
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "relaying events failed; will retry");
                    }
                    Err(_) => {}
                }
            }
        })
    }

    /// Forgets idempotency answers older than two days (the contract keeps
    /// them at least 24 hours) and long-published events.
    pub async fn prune(&self) -> Result<()> {
        let now = self.clock.now();
        self.ledger
            .prune_idempotency(now - Duration::days(2))
            .await?;
        // With nobody subscribed in process and no broker relay, unpublished
        // events are not waited for; a broker relay publishes every one.
        let unread =
            self.events.receiver_count() == 0 && !self.broker_relay.load(Ordering::Acquire);
        self.ledger
            .prune_outbox(now - Duration::seconds(KEEP_PUBLISHED), unread)
            .await?;
        Ok(())
    }
}

/// The catalogue following the event stream: each change is read again
/// from the store (the event says what changed, the store what it is now),
/// which is idempotent, so redelivery or replay is harmless.
#[async_trait]
impl EventHandler for Storefront {
    async fn handle(&self, topic: &str, payload: &[u8]) -> std::result::Result<(), HandleError> {
        let transient = |e: Error| HandleError::Transient(e.to_string());
        match reload_for(topic, payload)? {
            None => {}
            Some(Reload::Product(id)) => {
                self.reload_product(id).await.map_err(transient)?;
                // Stock figures live outside the entry: pages showing them
                // must be rendered again even if no field changed.
                self.catalog.touch();
            }
            Some(Reload::Deal { deal, product }) => {
                if self.reload_deal(deal).await.map_err(transient)?.is_none() {
                    self.reload_product(product).await.map_err(transient)?;
                }
                self.catalog.touch();
            }
            Some(Reload::Coupon(id)) => {
                self.reload_coupon(id).await.map_err(transient)?;
            }
        }
        Ok(())
    }
}

/// Applies the tier increases an event carries before handing it on: an
/// event is marked published only after its increase reached the tier, so
/// an instance that died between committing a cancel and giving its units
/// back leaves the increase to the relay. Each increase is applied once
/// (by its event's name), however often the event is relayed.
struct TierThen<'a> {
    app: &'a Storefront,
    sink: &'a dyn EventSink,
}

#[async_trait]
impl EventSink for TierThen<'_> {
    async fn publish(&self, events: &[crate::ports::OutboxEntry]) -> (usize, Option<SinkError>) {
        for (applied, e) in events.iter().enumerate() {
            if let Err(err) = self.app.apply_committed_event(&e.topic, &e.payload).await {
                // Publish those before it; the rest wait for the tier.
                let (published, failed) = self.sink.publish(&events[..applied]).await;
                let why = SinkError(format!("the admission tier: {err}"));
                return (published, failed.or(Some(why)));
            }
        }
        self.sink.publish(events).await
    }
}
