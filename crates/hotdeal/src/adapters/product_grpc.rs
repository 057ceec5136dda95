//! The product service in another process, reached over gRPC: the order
//! role of a split deployment reads products and deals and admits its
//! orders through this client, which implements the same ports as the
//! store (`CatalogReads`) and the in-process and Redis tiers
//! (`StockAdmission`). One HTTP/2 connection carries every call (multiplexed),
//! each call has a deadline, and a product service that cannot be reached
//! reads as [`Refused::Unavailable`]: a fast 503, nothing taken.

use crate::model::{Deal, Product};
use crate::ports::{
    CatalogReads, Hold, Increase, LimitClaim, Refused, StockAdmission, StoreError, StoreResult,
    Verdict,
};
use crate::transport::grpc::convert::{self, Malformed};
use crate::transport::grpc::proto::{self, product_service_client::ProductServiceClient};
use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hotdeal_domain::{DealId, ProductId, StockKey, UserId};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};
use uuid::Uuid;

/// A connection attempt to a product service gives up after this: an
/// order waits no longer than this for a host that does not answer.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(250);

/// The product service's stock tier, as a client.
pub struct ProductTierClient {
    client: ProductServiceClient<Channel>,
    /// Bumped by every change this process asks for (see `version`).
    changes: AtomicU64,
}

impl ProductTierClient {
    /// A client of the product service at `url` (`http://host:port`). It
    /// connects on first use and reconnects by itself after a failure, so
    /// a product service started later or restarted is picked up without
    /// restarting this process.
    pub fn new(url: &str, deadline: Duration) -> anyhow::Result<Self> {
        let endpoint = Endpoint::from_shared(url.to_owned())
            .context("the product service URL is not a valid http:// URL")?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(deadline)
            .tcp_nodelay(true)
            // Finds a dead peer on an idle connection before an order does.
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true);
        Ok(Self {
            client: ProductServiceClient::new(endpoint.connect_lazy()),
            changes: AtomicU64::new(0),
        })
    }

    fn client(&self) -> ProductServiceClient<Channel> {
        self.changes.fetch_add(1, Ordering::Relaxed);
        self.client.clone()
    }
}

/// The catalogue as the product service has it: an order role without
/// the product role reads products and deals here, not in the store.
#[async_trait]
impl CatalogReads for ProductTierClient {
    /// One product as the product service has it now; `None` if it has
    /// no such product.
    async fn product(&self, id: ProductId) -> StoreResult<Option<Product>> {
        let request = proto::GetProductRequest {
            product_id: id.0.to_string(),
        };
        let reply = self.client.clone().get_product(request).await;
        found("GetProduct", reply, convert::product_from)
    }

    /// One deal as the product service has it now, its remaining units
    /// those of the tier; `None` if it has no such deal.
    async fn deal(&self, id: DealId) -> StoreResult<Option<Deal>> {
        let request = proto::GetDealRequest {
            deal_id: id.0.to_string(),
        };
        let reply = self.client.clone().get_deal(request).await;
        found("GetDeal", reply, convert::deal_from)
    }
}

/// The answer of a catalogue read: what it found, `None` for NOT_FOUND,
/// and any other failure or a reply that does not parse as unavailable.
fn found<M, T>(
    what: &'static str,
    reply: Result<tonic::Response<M>, tonic::Status>,
    read: fn(M) -> Result<T, Malformed>,
) -> StoreResult<Option<T>> {
    match reply {
        Ok(reply) => read(reply.into_inner())
            .map(Some)
            .map_err(|e| read_failed(what, e)),
        Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
        Err(status) => Err(read_failed(what, status)),
    }
}

/// A catalogue read that got no usable answer: the catalogue cannot be
/// read now (a 503 to the client), as when a store is unreachable.
fn read_failed(what: &'static str, e: impl std::fmt::Display) -> StoreError {
    tracing::debug!(call = what, error = %e, "the product service did not answer");
    StoreError::Unavailable(format!("{what}: the product service did not answer").into())
}

/// A call that failed, or an answer that did not parse: the tier cannot
/// decide now.
fn unavailable(what: &'static str, e: impl std::fmt::Display) -> Refused {
    tracing::debug!(call = what, error = %e, "the product service did not answer");
    Refused::Unavailable
}

fn malformed(what: &'static str) -> impl Fn(Malformed) -> Refused {
    move |e| {
        tracing::warn!(call = what, error = %e, "the product service sent a malformed answer");
        Refused::Unavailable
    }
}

#[async_trait]
impl StockAdmission for ProductTierClient {
    async fn open(&self, key: StockKey, units: i64, held: &[(UserId, i64)]) -> Result<(), Refused> {
        let reply = self
            .client()
            .open(proto::OpenRequest {
                key: Some(convert::key_to(key)),
                units,
                held: convert::user_units_to(held),
            })
            .await
            .map_err(|e| unavailable("Open", e))?;
        convert::outcome_from(reply.get_ref().refused.as_ref()).map_err(malformed("Open"))?
    }

    async fn close(&self, key: StockKey) {
        let request = proto::CloseRequest {
            key: Some(convert::key_to(key)),
        };
        if let Err(e) = self.client().close(request).await {
            // The deal is settled in the store; its count in the tier only
            // refuses orders the store would refuse too.
            tracing::warn!(error = %e, "closing a stock key on the product service failed");
        }
    }

    async fn hold(
        &self,
        id: Uuid,
        user: UserId,
        demand: &BTreeMap<StockKey, i64>,
        limits: &[LimitClaim],
    ) -> Result<Hold, Refused> {
        let reply = self
            .client()
            .reserve(proto::ReserveRequest {
                id: id.to_string(),
                user_id: user.0.to_string(),
                demand: convert::units_to(demand.iter().map(|(k, u)| (*k, *u))),
                limits: convert::limits_to(limits),
            })
            .await
            .map_err(|e| unavailable("Reserve", e))?;
        match &reply.get_ref().outcome {
            Some(proto::reserve_reply::Outcome::Hold(h)) => {
                convert::hold_from(Some(h)).map_err(malformed("Reserve"))
            }
            Some(proto::reserve_reply::Outcome::Refused(r)) => {
                Err(convert::refusal_from(Some(r)).map_err(malformed("Reserve"))?)
            }
            None => Err(malformed("Reserve")(Malformed("reserve outcome"))),
        }
    }

    async fn settle(&self, done: Vec<(Hold, Verdict)>) {
        if done.is_empty() {
            return;
        }
        let request = proto::ReleaseRequest {
            settled: done.iter().map(convert::settlement_to).collect(),
        };
        if let Err(e) = self.client().release(request).await {
            // Each reservation keeps its deadline in the tier; the
            // reconciler settles it from the store's fence.
            tracing::warn!(reservations = done.len(), error = %e, "releasing reservations failed; the reconciler will settle them");
        }
    }

    async fn give_back(&self, event: &str, increases: &[Increase]) -> Result<(), Refused> {
        let reply = self
            .client()
            .give_back(proto::GiveBackRequest {
                event: event.to_owned(),
                increases: convert::increases_to(increases),
            })
            .await
            .map_err(|e| unavailable("GiveBack", e))?;
        convert::outcome_from(reply.get_ref().refused.as_ref()).map_err(malformed("GiveBack"))?
    }

    async fn overdue(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Hold>, Refused> {
        let reply = self
            .client
            .clone()
            .overdue(proto::OverdueRequest {
                now_ms: now.timestamp_millis(),
                limit: u32::try_from(limit).unwrap_or(u32::MAX),
            })
            .await
            .map_err(|e| unavailable("Overdue", e))?;
        let reply = reply.get_ref();
        if let Some(r) = &reply.refused {
            return Err(convert::refusal_from(Some(r)).map_err(malformed("Overdue"))?);
        }
        reply
            .holds
            .iter()
            .map(|h| convert::hold_from(Some(h)))
            .collect::<Result<_, _>>()
            .map_err(malformed("Overdue"))
    }

    async fn audit(&self, keys: &[StockKey]) -> Result<Vec<(StockKey, i64, i64)>, Refused> {
        let reply = self
            .client
            .clone()
            .audit(proto::AuditRequest {
                keys: keys.iter().map(|k| convert::key_to(*k)).collect(),
            })
            .await
            .map_err(|e| unavailable("Audit", e))?;
        let reply = reply.get_ref();
        if let Some(r) = &reply.refused {
            return Err(convert::refusal_from(Some(r)).map_err(malformed("Audit"))?);
        }
        reply
            .counted
            .iter()
            .map(|c| Ok((convert::key_from(c.key.as_ref())?, c.units, c.reserved)))
            .collect::<Result<_, Malformed>>()
            .map_err(malformed("Audit"))
    }

    /// Counts live in the product service; this process serves no page
    /// that shows them, so it keeps no copy (callers fall back to the
    /// store's count).
    fn available(&self, _key: StockKey) -> Option<(i64, DateTime<Utc>)> {
        None
    }

    fn version(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }
}
