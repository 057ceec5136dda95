//! The in-process event bus, fed from the outbox.
//!
//! Every change writes its events to the outbox table in its own
//! transaction. The relay reads what is unpublished, in order, publishes it
//! to in-process subscribers (a broadcast channel) and marks it. A process
//! that dies between publishing and marking publishes those events again
//! after the restart: delivery is at least once, and never of anything
//! that was not committed. A NATS JetStream publisher takes the same place
//! in a scaled-out deployment.

use super::{Result, Storefront};
use crate::model::Event;
use chrono::Duration;

/// Most events relayed per round.
const RELAY_BATCH: i64 = 1000;
/// Events are kept this long (published, or with nobody to publish to)
/// before pruning.
const KEEP_PUBLISHED: i64 = 3600;

impl Storefront {
    /// Publishes unpublished outbox events; returns how many. With nobody
    /// subscribed there is nobody to publish to, and reading the events
    /// back would only cost the writer time: they wait in the outbox (for
    /// an hour, see [`Storefront::prune`]) for a subscriber or a broker
    /// adapter to relay them.
    pub async fn relay_events(&self) -> Result<usize> {
        if self.events.receiver_count() == 0 {
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

    /// Forgets idempotency answers older than two days (the contract keeps
    /// them at least 24 hours) and long-published events.
    pub async fn prune(&self) -> Result<()> {
        let now = self.clock.now();
        self.ledger
            .prune_idempotency(now - Duration::days(2))
            .await?;
        // With nobody subscribed, unpublished events are not waited for.
        let unread = self.events.receiver_count() == 0;
        self.ledger
            .prune_outbox(now - Duration::seconds(KEEP_PUBLISHED), unread)
            .await?;
        Ok(())
    }
}
