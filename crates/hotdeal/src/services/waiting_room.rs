//! The waiting room in front of a deal: join, poll, and order with an
//! admitted token.
//!
//! Fair order: users who join before the deal opens are shuffled once at
//! the opening (arriving a millisecond early, or scripting the join, earns
//! nothing); after that, admission follows join order at the deal's rate
//! (`queue_admit_per_sec`, else the server's `queue_admit_per_sec`
//! setting). A user holds one live token per deal: joining again returns
//! it. An admitted token is good for `admitted_until` and for one order
//! that commits; a refused order does not spend it.
//!
//! Tokens are `base64url(deal ‖ user ‖ join number) "." base64url(mac)`,
//! the MAC a truncated HMAC-SHA256 under a key derived from the server's
//! JWT secret. The server never stores a token: it checks the MAC, then
//! looks the join up in the [`QueueStore`] — which is where the queue's
//! state lives, in memory in the embedded mode and in Redis in the scaled
//! mode.

use super::{Error, Ordering, Result};
use super::{IdempotencyKey, PlaceOrder, RenderOrder};
use crate::model::{Deal, Order};
use crate::ports::queue::{
    NotAdmitted, QueueDeal, QueueError, QueueStats, QueueStore, Ticket, TicketState,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use hotdeal_domain::{DealId, UserId};
use sha2::Sha256;
use std::sync::Arc;
use uuid::Uuid;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the MAC kept in a token (128 bits).
const MAC_BYTES: usize = 16;
/// Bytes of a token's payload: deal, user, join number.
const PAYLOAD_BYTES: usize = 16 + 16 + 4;

/// Server-wide rules of the waiting rooms.
#[derive(Clone, Copy, Debug)]
pub struct QueueSettings {
    /// Users admitted per second from a deal's queue unless the deal sets
    /// its own rate.
    pub admit_per_sec: u32,
    /// How long an admitted token may be used.
    pub admitted_for: Duration,
    /// The fastest a client is asked to poll.
    pub poll_min: Duration,
    /// The slowest a client is asked to poll.
    pub poll_max: Duration,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            admit_per_sec: 10_000,
            admitted_for: Duration::minutes(5),
            poll_min: Duration::milliseconds(500),
            poll_max: Duration::seconds(5),
        }
    }
}

/// The waiting rooms: their state (a port) and the token key.
pub struct WaitingRoom {
    store: Arc<dyn QueueStore>,
    /// The queues at a glance, refreshed by the housekeeping task, so a
    /// metrics scrape reads memory instead of asking the queue's engine. A
    /// std RwLock: held to copy or replace the list.
    stats: std::sync::RwLock<Vec<QueueStats>>,
    /// Keyed once with the derived key; cloned per use.
    mac: HmacSha256,
    settings: QueueSettings,
}

/// A token's content, once its MAC checked out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueClaims {
    pub deal: DealId,
    pub user: UserId,
    pub seq: u32,
}

/// A queue token's standing, as the API answers it.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueView {
    pub token: String,
    pub deal_id: DealId,
    /// `waiting`, `admitted` or `expired`.
    pub status: &'static str,
    /// 1-based place among those not admitted yet; 0 once admitted or
    /// expired. Before the opening: how many draw for places (an upper
    /// bound of the place).
    pub position: u64,
    pub estimated_wait_s: u64,
    pub poll_after_ms: u64,
    pub admitted_until: Option<DateTime<Utc>>,
}

impl WaitingRoom {
    pub fn new(store: Arc<dyn QueueStore>, key: &[u8], settings: QueueSettings) -> Self {
        // HMAC accepts keys of any length.
        let mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
        Self {
            store,
            stats: Default::default(),
            mac,
            settings,
        }
    }

    /// The queues as of the last housekeeping round (at most `limit`).
    pub fn stats(&self, limit: usize) -> Vec<QueueStats> {
        let stats = self.stats.read().unwrap_or_else(|e| e.into_inner());
        stats.iter().take(limit).copied().collect()
    }

    pub fn settings(&self) -> QueueSettings {
        self.settings
    }

    fn tag(&self, payload: &[u8]) -> [u8; MAC_BYTES] {
        let mut mac = self.mac.clone();
        mac.update(payload);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; MAC_BYTES];
        tag.copy_from_slice(&full[..MAC_BYTES]);
        tag
    }

    /// The token of one join (the same inputs give the same token).
    pub fn sign(&self, c: QueueClaims) -> String {
        let mut payload = [0u8; PAYLOAD_BYTES];
        payload[..16].copy_from_slice(c.deal.0.as_bytes());
        payload[16..32].copy_from_slice(c.user.0.as_bytes());
        payload[32..].copy_from_slice(&c.seq.to_be_bytes());
        format!("{}.{}", B64.encode(payload), B64.encode(self.tag(&payload)))
    }

    /// The content of a token this server signed; `None` for anything else.
    pub fn open(&self, token: &str) -> Option<QueueClaims> {
        let (payload_b64, tag_b64) = token.split_once('.')?;
        if payload_b64.len() != 48 || tag_b64.len() != 22 {
            return None;
        }
        let payload = B64.decode(payload_b64).ok()?;
        let tag = B64.decode(tag_b64).ok()?;
        let mut mac = self.mac.clone();
        mac.update(&payload);
        // Constant-time comparison of the truncated MAC.
        mac.verify_truncated_left(&tag).ok()?;
        let deal = Uuid::from_slice(&payload[..16]).ok()?;
        let user = Uuid::from_slice(&payload[16..32]).ok()?;
        let seq = u32::from_be_bytes(payload[32..36].try_into().ok()?);
        Some(QueueClaims {
            deal: DealId(deal),
            user: UserId(user),
            seq,
        })
    }

    /// The queue rules of `deal`.
    fn rules(&self, deal: &Deal) -> QueueDeal {
        let rate = deal
            .queue_admit_per_sec
            .and_then(|r| u32::try_from(r).ok())
            .unwrap_or(self.settings.admit_per_sec)
            .max(1);
        QueueDeal {
            id: deal.id,
            opens_at: deal.window.starts_at,
            admit_per_sec: rate,
            admitted_for: self.settings.admitted_for,
            poll_min: self.settings.poll_min,
            poll_max: self.settings.poll_max,
        }
    }

    fn view(
        &self,
        claims: QueueClaims,
        rules: &QueueDeal,
        t: &Ticket,
        now: DateTime<Utc>,
    ) -> QueueView {
        let rate = t.rate.max(0.001);
        let (status, position, wait_s, until) = match t.state {
            TicketState::Drawing { pool } => {
                let to_open = (rules.opens_at - now).num_milliseconds().max(0) as f64 / 1000.0;
                ("waiting", pool, to_open + pool as f64 / 2.0 / rate, None)
            }
            TicketState::Waiting { ahead } => {
                ("waiting", ahead + 1, (ahead + 1) as f64 / rate, None)
            }
            TicketState::Admitted { until } => ("admitted", 0, 0.0, Some(until)),
            TicketState::Expired { until } => ("expired", 0, 0.0, until),
        };
        QueueView {
            token: self.sign(claims),
            deal_id: claims.deal,
            status,
            position,
            estimated_wait_s: wait_s.ceil().min(1e12) as u64,
            poll_after_ms: t.poll_after.num_milliseconds().max(0) as u64,
            admitted_until: until,
        }
    }
}

fn queue_error(e: QueueError) -> Error {
    match e {
        QueueError::TooSoon { retry_in } => Error::RateLimited {
            retry_after_ms: retry_in.num_milliseconds().max(1),
        },
        QueueError::Full => Error::Overloaded,
        // Logged by the adapter; the client retries, as for the tier.
        QueueError::Backend(_) => Error::Overloaded,
    }
}

fn ended(deal: &Deal, now: DateTime<Utc>) -> bool {
    deal.settled_at.is_some() || now >= deal.window.ends_at
}

fn queue_required(reason: &'static str) -> Error {
    Error::QueueRequired { reason }
}

/// Gives a claimed token back if the order is abandoned midway (the
/// request dropped while it awaited the writer).
struct ClaimGuard {
    store: Arc<dyn QueueStore>,
    claims: QueueClaims,
    armed: bool,
}

impl ClaimGuard {
    async fn settle(mut self, used: bool) {
        self.armed = false;
        let c = self.claims;
        self.store.settle(c.deal, c.user, c.seq, used).await;
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if self.armed {
            let store = self.store.clone();
            let c = self.claims;
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { store.settle(c.deal, c.user, c.seq, false).await });
            }
        }
    }
}

impl Ordering {
    /// `POST /deals/{deal_id}/queue`: joins the deal's waiting room, or
    /// returns the caller's live token again.
    pub async fn join_queue(&self, user: UserId, deal_id: DealId) -> Result<QueueView> {
        let now = self.clock.now();
        let deal = self
            .catalogue()
            .catalog_deal(deal_id)
            .await?
            .ok_or(Error::DealNotFound)?;
        if !deal.waiting_room {
            return Err(Error::NoWaitingRoom);
        }
        if ended(&deal, now) {
            return Err(Error::DealNotActive {
                deal: deal.id,
                status: hotdeal_domain::DealStatus::Ended,
            });
        }
        let room = &self.waiting_room;
        let rules = room.rules(&deal);
        let ticket = room
            .store
            .join(&rules, user, now)
            .await
            .map_err(queue_error)?;
        let claims = QueueClaims {
            deal: deal.id,
            user,
            seq: ticket.seq,
        };
        Ok(room.view(claims, &rules, &ticket, now))
    }

    /// `GET /queue/{token}`: where the caller's token stands.
    pub async fn queue_status(&self, user: UserId, token: &str) -> Result<QueueView> {
        let now = self.clock.now();
        let room = &self.waiting_room;
        let claims = room.open(token).ok_or(Error::NotFound)?;
        if claims.user != user {
            return Err(Error::Forbidden);
        }
        let deal = self
            .catalogue()
            .catalog_deal(claims.deal)
            .await?
            .ok_or(Error::NotFound)?;
        let rules = room.rules(&deal);
        let ticket = if ended(&deal, now) {
            Ticket::expired(claims.seq, &rules)
        } else {
            room.store
                .poll(&rules, user, claims.seq, now)
                .await
                .map_err(queue_error)?
        };
        Ok(room.view(claims, &rules, &ticket, now))
    }

    /// Places an order (as [`Ordering::place_order_answered`]); lines on
    /// a waiting-room deal need `queue_token`, admitted, of this user and
    /// that deal. The token is spent only when the order commits.
    pub async fn place_queued_order(
        &self,
        user: UserId,
        req: PlaceOrder,
        idempotency: Option<(&IdempotencyKey, RenderOrder)>,
        queue_token: Option<&str>,
    ) -> Result<(Order, Option<Vec<u8>>)> {
        let mut gated: Vec<Arc<Deal>> = Vec::new();
        for id in req.lines.iter().filter_map(|l| l.deal_id) {
            // Read through: another instance may have made the deal a
            // moment ago, before this one's catalogue heard of it.
            if let Some(deal) = self.catalogue().catalog_deal(id).await? {
                if deal.waiting_room && !gated.iter().any(|g| g.id == deal.id) {
                    gated.push(deal);
                }
            }
        }
        let [deal] = gated.as_slice() else {
            if gated.is_empty() {
                return self.place_order_answered(user, req, idempotency).await;
            }
            return Err(queue_required(
                "one order may hold lines of one waiting-room deal",
            ));
        };
        let room = &self.waiting_room;
        let token = queue_token.ok_or_else(|| queue_required("no Queue-Token header"))?;
        let claims = room
            .open(token)
            .ok_or_else(|| queue_required("the queue token is not valid"))?;
        if claims.user != user {
            return Err(queue_required("the queue token is another user's"));
        }
        if claims.deal != deal.id {
            return Err(queue_required("the queue token is for another deal"));
        }
        let rules = room.rules(deal);
        room.store
            .claim(&rules, user, claims.seq, self.clock.now())
            .await
            .map_err(|e| match e {
                NotAdmitted::Waiting => queue_required("the queue token is not admitted yet"),
                NotAdmitted::Expired => queue_required("the queue token has expired or was used"),
                NotAdmitted::InUse => {
                    queue_required("an order with this queue token is being placed")
                }
                NotAdmitted::Unavailable => Error::Overloaded,
            })?;
        let guard = ClaimGuard {
            store: room.store.clone(),
            claims,
            armed: true,
        };
        let placed = self.place_order_answered(user, req, idempotency).await;
        guard.settle(placed.is_ok()).await;
        placed
    }

    /// Drops the queues of deals that ended. Run by the housekeeping task.
    pub async fn sweep_queues(&self) {
        let now = self.clock.now();
        let store = &self.waiting_room.store;
        for id in store.deals().await {
            // Read through, so a queue is not dropped for a deal another
            // instance made before this one's catalogue heard of it; a
            // failed read drops nothing.
            let Ok(deal) = self.catalogue().catalog_deal(id).await else {
                continue;
            };
            if deal.is_none_or(|d| ended(&d, now)) {
                store.forget(id).await;
            }
        }
        let mut stats = store.stats().await;
        stats.sort_by_key(|s| s.deal);
        *self
            .waiting_room
            .stats
            .write()
            .unwrap_or_else(|e| e.into_inner()) = stats;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory_queue::MemoryQueue;

    fn room(key: &[u8]) -> WaitingRoom {
        WaitingRoom::new(
            Arc::new(MemoryQueue::new(10)),
            key,
            QueueSettings::default(),
        )
    }

    #[test]
    fn a_token_opens_only_under_its_key_and_unchanged() {
        let r = room(b"key-one");
        let c = QueueClaims {
            deal: DealId::new(),
            user: UserId::new(),
            seq: 42,
        };
        let t = r.sign(c);
        assert_eq!(r.sign(c), t, "deterministic");
        assert_eq!(r.open(&t), Some(c));
        assert_eq!(room(b"key-two").open(&t), None);
        let (payload, tag) = t.split_once('.').expect("two parts");
        let mut bytes = B64.decode(payload).expect("b64");
        bytes[35] ^= 1;
        assert_eq!(r.open(&format!("{}.{tag}", B64.encode(&bytes))), None);
        for junk in ["", ".", "a.b", &t[1..], &format!("{t}x")] {
            assert_eq!(r.open(junk), None, "{junk}");
        }
    }
}
