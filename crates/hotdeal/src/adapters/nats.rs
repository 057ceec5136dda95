//! Committed events on NATS JetStream, for the scaled mode.
//!
//! One stream, `<PREFIX>_EVENTS`, holds every event under `<prefix>.>`: a
//! relay publishes the outbox into it ([`EventSink`]), each message with
//! `Nats-Msg-Id: <prefix>-<outbox seq>`, so a relay that publishes a row
//! again (it died before marking it) is dropped as a duplicate inside the
//! stream's window. Subjects name the kind and the aggregate
//! (`<prefix>.order.placed.<order_id>`), so a consumer can follow one
//! aggregate in order. `docs/events.md` is the contract for outside readers.
//!
//! [`NatsBus::follow`] is the inside reader: every instance runs one
//! consumer on the catalogue's subjects and hands each message to an
//! [`EventHandler`]. A payload the handler refuses as malformed is retried
//! a few times, then copied to `<prefix>.dead.<original subject>` (stored in
//! the same stream, so nothing is lost) and terminated.
//!
//! The server URL may carry credentials: it appears in no message.

use crate::config::Secret;
use crate::ports::events::{EventHandler, EventSink, HandleError, SinkError};
use crate::ports::OutboxEntry;
use async_nats::jetstream::{self, consumer, stream, AckKind};
use async_trait::async_trait;
use futures_util::StreamExt;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// How long the stream remembers message ids to drop duplicates: longer
/// than a relay round can take (an acknowledgement waits at most
/// [`ACK_TIMEOUT`]) plus a restart, so a republished row is caught.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// How long a publish waits for the stream's acknowledgement.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);
/// Deliveries of a malformed message before it is dead-lettered.
pub const MAX_DELIVER: i64 = 3;
/// How long a message that failed waits before it is delivered again.
const RETRY_MALFORMED: Duration = Duration::from_millis(50);
const RETRY_TRANSIENT: Duration = Duration::from_secs(1);
/// A consumer whose instance went away (a crash, a long partition) is
/// deleted by the server after this long without a pull.
const CONSUMER_IDLE: Duration = Duration::from_secs(60);

/// How much the stream keeps. Old messages are discarded first; the
/// outbox stays the record of what happened, the stream is the way out.
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    pub max_age: Duration,
    pub max_bytes: i64,
}

impl Default for StreamLimits {
    /// A week (an outside consumer down over a long weekend still catches
    /// up) and 1 GiB (about four million events of ~250 bytes: far beyond a
    /// week of a flash-sale shop, and a bound on the broker's disk).
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: 1 << 30,
        }
    }
}

/// Why NATS could not be used, without the URL.
#[derive(Debug, thiserror::Error)]
#[error("NATS: {0}")]
pub struct NatsError(String);

/// A connection to NATS and the names of this deployment's stream.
#[derive(Clone)]
pub struct NatsBus {
    client: async_nats::Client,
    js: jetstream::Context,
    prefix: String,
    stream: String,
}

impl std::fmt::Debug for NatsBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBus")
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl NatsBus {
    /// Connects, failing at once if the server cannot be reached.
    pub async fn connect(url: &Secret, prefix: &str) -> Result<Self, NatsError> {
        Self::connect_with(url, prefix, false).await
    }

    /// Returns at once and keeps trying to reach the server in the
    /// background; publishing fails until it is reached.
    pub async fn connect_in_background(url: &Secret, prefix: &str) -> Result<Self, NatsError> {
        Self::connect_with(url, prefix, true).await
    }

    async fn connect_with(url: &Secret, prefix: &str, wait: bool) -> Result<Self, NatsError> {
        let mut options = async_nats::ConnectOptions::new()
            .name("hotdeal")
            .connection_timeout(Duration::from_secs(2));
        if wait {
            options = options.retry_on_initial_connect();
        }
        let client = options.connect(url.expose()).await.map_err(|e| {
            // The error's text may quote the address; its kind does not.
            NatsError(format!("connecting to the server failed ({:?})", e.kind()))
        })?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(ACK_TIMEOUT);
        Ok(Self {
            client,
            js,
            prefix: prefix.to_owned(),
            stream: format!("{}_EVENTS", prefix.to_ascii_uppercase()),
        })
    }

    pub fn stream_name(&self) -> &str {
        &self.stream
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The underlying client (tests and tools subscribe with it).
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The JetStream context.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// Creates the stream, or brings an existing one to this configuration.
    pub async fn ensure_stream(&self, limits: StreamLimits) -> Result<(), NatsError> {
        let config = stream::Config {
            name: self.stream.clone(),
            subjects: vec![format!("{}.>", self.prefix)],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            duplicate_window: DUPLICATE_WINDOW,
            max_age: limits.max_age,
            max_bytes: limits.max_bytes,
            // Payloads are a few hundred bytes; a megabyte one is a bug.
            max_message_size: 1 << 20,
            ..Default::default()
        };
        self.js
            .create_or_update_stream(config)
            .await
            .map(drop)
            .map_err(|e| NatsError(format!("creating the stream {}: {e}", self.stream)))
    }

    /// Deletes the stream (tests clean up after themselves).
    pub async fn delete_stream(&self) -> Result<(), NatsError> {
        self.js
            .delete_stream(&self.stream)
            .await
            .map(drop)
            .map_err(|e| NatsError(format!("deleting the stream {}: {e}", self.stream)))
    }

    /// The stream's last sequence number: a consumer started from the
    /// next one sees every event published after this call.
    pub async fn position(&self) -> Result<u64, NatsError> {
        let mut stream = self
            .js
            .get_stream(&self.stream)
            .await
            .map_err(|e| NatsError(format!("reading the stream {}: {e}", self.stream)))?;
        let info = stream
            .info()
            .await
            .map_err(|e| NatsError(format!("reading the stream {}: {e}", self.stream)))?;
        Ok(info.state.last_sequence)
    }

    /// The subject of an outbox event: `<prefix>.<topic>.<aggregate id>`,
    /// or `<prefix>.<topic>` if its payload names no aggregate.
    pub fn subject_of(&self, e: &OutboxEntry) -> String {
        match aggregate_of(&e.topic, &e.payload) {
            Some(id) => format!("{}.{}.{id}", self.prefix, e.topic),
            None => format!("{}.{}", self.prefix, e.topic),
        }
    }

    /// The event's id, stable across relays: `<prefix>-<outbox seq>`.
    pub fn msg_id(&self, seq: i64) -> String {
        format!("{}-{seq}", self.prefix)
    }

    /// The subjects a catalogue cache follows.
    pub fn catalogue_subjects(&self) -> Vec<String> {
        ["product.>", "deal.>", "stock.>", "coupon.created.>"]
            .iter()
            .map(|s| format!("{}.{s}", self.prefix))
            .collect()
    }

    /// Follows `subjects` from stream sequence `after + 1` (see
    /// [`NatsBus::position`]) until the task is aborted, handing every
    /// message to `handler` in stream order.
    ///
    /// The consumer is ephemeral: each instance has its own, because each
    /// must see every catalogue change (a shared durable would hand each
    /// message to one instance only), and one whose instance died is
    /// removed by the server after [`CONSUMER_IDLE`]. An instance starting
    /// builds its cache from the store, so it needs the changes from then
    /// on, not the history; if its consumer is lost (the server restarted,
    /// a partition outlived the idle limit) a new one starts where the
    /// last one stopped.
    pub fn follow(
        &self,
        subjects: Vec<String>,
        after: u64,
        handler: Arc<dyn EventHandler>,
    ) -> tokio::task::JoinHandle<()> {
        let bus = self.clone();
        tokio::spawn(async move {
            let mut resume = after + 1;
            loop {
                match bus.consume(&subjects, resume, &*handler).await {
                    Ok(next) => resume = next,
                    Err((next, e)) => {
                        tracing::warn!(error = %e, "following the event stream failed; will retry");
                        resume = next;
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    }

    /// One consumer's life: returns the sequence to resume from.
    async fn consume(
        &self,
        subjects: &[String],
        from: u64,
        handler: &dyn EventHandler,
    ) -> Result<u64, (u64, NatsError)> {
        let failed = |e: String| (from, NatsError(e));
        let stream = self
            .js
            .get_stream_no_info(&self.stream)
            .await
            .map_err(|e| failed(format!("reading the stream: {e}")))?;
        let consumer = stream
            .create_consumer(consumer::pull::Config {
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: from.max(1),
                },
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(10),
                // Counted here, not by the server: a malformed message is
                // dead-lettered after MAX_DELIVER, a transient failure (the
                // store down) is retried until it passes.
                max_deliver: -1,
                filter_subjects: subjects.to_vec(),
                inactive_threshold: CONSUMER_IDLE,
                ..Default::default()
            })
            .await
            .map_err(|e| failed(format!("creating a consumer: {e}")))?;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| failed(format!("pulling: {e}")))?;
        // Sequences handed back for redelivery: a new consumer must start
        // at the oldest of them, not after the newest message seen.
        let mut retrying = BTreeSet::new();
        let mut next = from;
        let resume = |next: u64, retrying: &BTreeSet<u64>| {
            retrying.first().copied().unwrap_or(next).min(next)
        };
        while let Some(message) = messages.next().await {
            let message = match message {
                Ok(m) => m,
                Err(e) => {
                    let at = resume(next, &retrying);
                    return Err((at, NatsError(format!("pulling: {e}"))));
                }
            };
            let Ok(info) = message.info() else {
                continue;
            };
            let (seq, delivered) = (info.stream_sequence, info.delivered);
            let subject = message.subject.as_str().to_owned();
            let topic = topic_of(&self.prefix, &subject);
            let ack = match handler.handle(&topic, &message.payload).await {
                Ok(()) => AckKind::Ack,
                Err(HandleError::Malformed(why)) if delivered >= MAX_DELIVER => {
                    tracing::warn!(%subject, error = %why, "dead-lettering an event");
                    match self.dead_letter(&subject, &message, seq).await {
                        Ok(()) => AckKind::Term,
                        // Not stored elsewhere yet: keep it here.
                        Err(_) => AckKind::Nak(Some(RETRY_TRANSIENT)),
                    }
                }
                Err(HandleError::Malformed(_)) => AckKind::Nak(Some(RETRY_MALFORMED)),
                Err(HandleError::Transient(why)) => {
                    tracing::warn!(%subject, error = %why, "handling an event failed; will retry");
                    AckKind::Nak(Some(RETRY_TRANSIENT))
                }
            };
            if matches!(ack, AckKind::Nak(_)) {
                retrying.insert(seq);
            } else {
                retrying.remove(&seq);
            }
            next = next.max(seq + 1);
            if let Err(e) = message.ack_with(ack).await {
                let at = resume(next, &retrying).min(seq);
                return Err((at, NatsError(format!("acknowledging: {e}"))));
            }
        }
        Ok(resume(next, &retrying))
    }

    /// Copies a message to `<prefix>.dead.<its subject>` and waits until the
    /// stream stored it.
    async fn dead_letter(
        &self,
        subject: &str,
        m: &jetstream::Message,
        seq: u64,
    ) -> Result<(), NatsError> {
        // An id of its own (the original's would be dropped as a duplicate
        // inside the window), stable, so a copy made twice is stored once.
        let publish = jetstream::message::PublishMessage::build()
            .payload(m.payload.clone())
            .message_id(format!("{}-dead-{seq}", self.prefix))
            .header("Hotdeal-Stream-Seq", seq.to_string().as_str());
        let dead = format!("{}.dead.{subject}", self.prefix);
        let ack = self
            .js
            .send_publish(dead, publish)
            .await
            .map_err(|e| NatsError(format!("dead-lettering: {e}")))?;
        ack.await
            .map(drop)
            .map_err(|e| NatsError(format!("dead-lettering: {e}")))
    }
}

#[async_trait]
impl EventSink for NatsBus {
    /// Sends every event before waiting for the first acknowledgement, so
    /// a round costs one round trip, not one per event.
    async fn publish(&self, events: &[OutboxEntry]) -> (usize, Option<SinkError>) {
        let mut pending = Vec::with_capacity(events.len());
        let mut failed = None;
        for e in events {
            let publish = jetstream::message::PublishMessage::build()
                .payload(e.payload.clone().into())
                .message_id(self.msg_id(e.seq));
            match self.js.send_publish(self.subject_of(e), publish).await {
                Ok(ack) => pending.push(ack),
                Err(err) => {
                    failed = Some(SinkError(format!("publishing to NATS: {err}")));
                    break;
                }
            }
        }
        let mut acked = 0;
        for ack in pending {
            match ack.await {
                Ok(_) => acked += 1,
                Err(err) => {
                    failed = Some(SinkError(format!("publishing to NATS: {err}")));
                    break;
                }
            }
        }
        (acked, failed)
    }
}

/// The payload key that names an event's aggregate.
fn aggregate_key(topic: &str) -> Option<&'static str> {
    match topic.split('.').next()? {
        "order" => Some("order_id"),
        "deal" => Some("deal_id"),
        "coupon" => Some("coupon_id"),
        "product" | "stock" => Some("product_id"),
        _ => None,
    }
}

/// The aggregate's id, if it is one token of a subject (a UUID is).
fn aggregate_of(topic: &str, payload: &str) -> Option<String> {
    let key = aggregate_key(topic)?;
    let value: serde_json::Value = serde_json::from_str(payload).ok()?;
    let id = value.get(key)?.as_str()?;
    let token_safe = !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    token_safe.then(|| id.to_owned())
}

/// The topic of a subject: the two tokens after the prefix.
fn topic_of(prefix: &str, subject: &str) -> String {
    let rest = subject
        .strip_prefix(prefix)
        .and_then(|s| s.strip_prefix('.'))
        .unwrap_or(subject);
    rest.splitn(3, '.').take(2).collect::<Vec<_>>().join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_carry_the_kind_and_the_aggregate() {
        assert_eq!(
            aggregate_of("order.placed", r#"{"order_id":"0190-ab","user_id":"x"}"#).as_deref(),
            Some("0190-ab")
        );
        assert_eq!(
            aggregate_of("stock.adjusted", r#"{"product_id":"p1"}"#).as_deref(),
            Some("p1")
        );
        // Anything that is not one subject token is left out.
        assert_eq!(aggregate_of("order.placed", r#"{"order_id":"a.b"}"#), None);
        assert_eq!(aggregate_of("order.placed", "not json"), None);
        assert_eq!(topic_of("hd", "hd.product.updated.abc"), "product.updated");
        assert_eq!(topic_of("hd", "hd.deal.settled"), "deal.settled");
    }
}
