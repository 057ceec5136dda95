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
//! In the scaled mode a broker relay ([`Events::relay_to`], any
//! instance, every [`RELAY_EVERY`]) hands the outbox to an [`EventSink`]
//! (NATS JetStream) instead, and every instance follows the catalogue's
//! events ([`EventHandler`] on [`super::Storefront`]): a product, deal or
//! coupon changed on one instance is reloaded from the store on every
//! other.
//!
//! Every role writes events, so every process runs a relay. It holds the
//! outbox and the stock tier: an event that gives units back (a cancel, a
//! settlement, a restock) reaches the tier before it is marked published,
//! whichever role relays it.

use super::{tier, Error, Result};
use crate::model::Event;
use crate::ports::events::{EventSink, SinkError};
use crate::ports::{Clock, Outbox, StockAdmission};
use async_trait::async_trait;
use chrono::Duration;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Most events relayed per round.
const RELAY_BATCH: i64 = 1000;
/// Events are kept this long (published, or with nobody to publish to)
/// before pruning.
const KEEP_PUBLISHED: i64 = 3600;
/// How often the broker relay looks for new events. Idle, a look is one
/// index probe; it bounds how late another instance hears of a change.
pub const RELAY_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

/// The relay of committed events, and the in-process bus it feeds.
pub struct Events {
    outbox: Arc<dyn Outbox>,
    /// Where the increases of relayed events go.
    tier: Arc<dyn StockAdmission>,
    /// Published events, for in-process subscribers.
    bus: tokio::sync::broadcast::Sender<Event>,
    /// Set once a broker relay (NATS) owns the outbox: the in-process
    /// relay stands aside and unpublished events are never pruned.
    broker_relay: AtomicBool,
    clock: Arc<dyn Clock>,
}

impl Events {
    pub fn new(
        outbox: Arc<dyn Outbox>,
        tier: Arc<dyn StockAdmission>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            outbox,
            tier,
            bus: tokio::sync::broadcast::channel(1024).0,
            broker_relay: AtomicBool::new(false),
            clock,
        }
    }

    /// Follows the events this process relays in process.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.bus.subscribe()
    }

    /// Publishes unpublished outbox events; returns how many. With nobody
    /// subscribed there is nobody to publish to, and reading the events
    /// back would only cost the writer time: they wait in the outbox (for
    /// an hour, see [`Events::prune`]) for a subscriber or a broker
    /// adapter to relay them. Once a broker relay runs, it owns the outbox.
    pub async fn relay_events(&self) -> Result<usize> {
        if self.bus.receiver_count() == 0 || self.broker_relay.load(Ordering::Acquire) {
            return Ok(0);
        }
        let mut relayed = 0;
        loop {
            let entries = self.outbox.unpublished(RELAY_BATCH).await?;
            let Some(last) = entries.last().map(|e| e.seq) else {
                return Ok(relayed);
            };
            for e in &entries {
                let payload = serde_json::from_str(&e.payload).unwrap_or(serde_json::Value::Null);
                // No subscriber is not an error: the outbox is the record.
                let _ = self.bus.send(Event {
                    topic: e.topic.clone(),
                    payload,
                });
            }
            self.outbox.mark_published(last, self.clock.now()).await?;
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
                .outbox
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

    /// Runs [`Events::relay_to`] every `every` until aborted. A failure
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

    /// Forgets long-published events.
    pub async fn prune(&self) -> Result<()> {
        let now = self.clock.now();
        // With nobody subscribed in process and no broker relay, unpublished
        // events are not waited for; a broker relay publishes every one.
        let unread = self.bus.receiver_count() == 0 && !self.broker_relay.load(Ordering::Acquire);
        self.outbox
            .prune_outbox(now - Duration::seconds(KEEP_PUBLISHED), unread)
            .await?;
        Ok(())
    }
}

/// Applies the tier increases an event carries before handing it on: an
/// event is marked published only after its increase reached the tier, so
/// an instance that died between committing a cancel and giving its units
/// back leaves the increase to the relay. Each increase is applied once
/// (by its event's name), however often the event is relayed.
struct TierThen<'a> {
    app: &'a Events,
    sink: &'a dyn EventSink,
}

#[async_trait]
impl EventSink for TierThen<'_> {
    async fn publish(&self, events: &[crate::ports::OutboxEntry]) -> (usize, Option<SinkError>) {
        for (applied, e) in events.iter().enumerate() {
            if let Err(err) =
                tier::apply_committed_event(&*self.app.tier, &e.topic, &e.payload).await
            {
                // Publish those before it; the rest wait for the tier.
                let (published, failed) = self.sink.publish(&events[..applied]).await;
                let why = SinkError(format!("the admission tier: {err}"));
                return (published, failed.or(Some(why)));
            }
        }
        self.sink.publish(events).await
    }
}
