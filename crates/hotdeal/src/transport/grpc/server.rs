//! The product service over gRPC: catalogue reads from the storefront,
//! and the stock tier's port, served as it is (the tier this process runs:
//! Redis in a split deployment), with the standard health service and
//! server reflection beside it. It holds the [`Catalogue`] and nothing
//! else: the catalogue's reads and its stock tier are all it serves.

use super::convert::{self, uuid, Malformed};
use super::proto::product_service_server::{ProductService, ProductServiceServer};
use super::proto::{self, reserve_reply::Outcome};
use crate::ports::StockAdmission;
use crate::services::{Catalogue, Error};
use chrono::{TimeZone, Utc};
use hotdeal_domain::{DealId, ProductId, UserId};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

/// The product service of one process.
pub struct ProductGrpc {
    app: Arc<Catalogue>,
}

impl ProductGrpc {
    pub fn new(app: Arc<Catalogue>) -> Self {
        Self { app }
    }

    fn tier(&self) -> &dyn StockAdmission {
        self.app.admission.as_ref()
    }
}

/// Serves the product service, health and reflection on `listener` until
/// `shutdown` resolves, then lets running calls finish.
pub async fn serve(
    listener: TcpListener,
    app: Arc<Catalogue>,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<ProductServiceServer<ProductGrpc>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(super::DESCRIPTOR)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(ProductServiceServer::new(ProductGrpc::new(app)))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown,
        )
        .await?;
    Ok(())
}

/// A service error as a gRPC status: what was not found says so; anything
/// else is the server's trouble, told without its internals.
fn status(e: Error) -> Status {
    match e {
        Error::NotFound | Error::ProductNotFound | Error::DealNotFound => {
            Status::not_found("no such product or deal")
        }
        Error::Overloaded => Status::unavailable("overloaded; retry shortly"),
        _ => Status::internal("the product service failed"),
    }
}

#[tonic::async_trait]
impl ProductService for ProductGrpc {
    async fn get_product(
        &self,
        request: Request<proto::GetProductRequest>,
    ) -> Result<Response<proto::Product>, Status> {
        let id = ProductId(uuid(&request.get_ref().product_id, "product id")?);
        let p = self.app.fresh_product(id).await.map_err(status)?;
        Ok(Response::new(convert::product_to(p)))
    }

    async fn get_deal(
        &self,
        request: Request<proto::GetDealRequest>,
    ) -> Result<Response<proto::Deal>, Status> {
        let id = DealId(uuid(&request.get_ref().deal_id, "deal id")?);
        let d = self.app.fresh_deal(id).await.map_err(status)?;
        let status = serde_json::to_value(d.status(self.app.now()))
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        Ok(Response::new(convert::deal_to(d, status)))
    }

    async fn reserve(
        &self,
        request: Request<proto::ReserveRequest>,
    ) -> Result<Response<proto::ReserveReply>, Status> {
        let r = request.get_ref();
        let id = uuid(&r.id, "reservation id")?;
        let user = UserId(uuid(&r.user_id, "user id")?);
        let mut demand = BTreeMap::new();
        for (key, units) in convert::units_from(&r.demand)? {
            *demand.entry(key).or_insert(0) += units;
        }
        let limits = convert::limits_from(&r.limits)?;
        let outcome = match self.app.reserve(id, user, &demand, &limits).await {
            Ok(hold) => Outcome::Hold(convert::hold_to(&hold)),
            Err(refused) => Outcome::Refused(convert::refusal_to(refused)),
        };
        Ok(Response::new(proto::ReserveReply {
            outcome: Some(outcome),
        }))
    }

    async fn release(
        &self,
        request: Request<proto::ReleaseRequest>,
    ) -> Result<Response<proto::ReleaseReply>, Status> {
        let done = request
            .get_ref()
            .settled
            .iter()
            .map(convert::settlement_from)
            .collect::<Result<Vec<_>, Malformed>>()?;
        self.tier().settle(done).await;
        Ok(Response::new(proto::ReleaseReply {}))
    }

    async fn open(
        &self,
        request: Request<proto::OpenRequest>,
    ) -> Result<Response<proto::OpenReply>, Status> {
        let r = request.get_ref();
        let key = convert::key_from(r.key.as_ref())?;
        let held = convert::user_units_from(&r.held)?;
        let refused = self.tier().open(key, r.units, &held).await.err();
        Ok(Response::new(proto::OpenReply {
            refused: refused.map(convert::refusal_to),
        }))
    }

    async fn close(
        &self,
        request: Request<proto::CloseRequest>,
    ) -> Result<Response<proto::CloseReply>, Status> {
        let key = convert::key_from(request.get_ref().key.as_ref())?;
        self.tier().close(key).await;
        Ok(Response::new(proto::CloseReply {}))
    }

    async fn give_back(
        &self,
        request: Request<proto::GiveBackRequest>,
    ) -> Result<Response<proto::GiveBackReply>, Status> {
        let r = request.get_ref();
        let increases = convert::increases_from(&r.increases)?;
        let refused = self.tier().give_back(&r.event, &increases).await.err();
        Ok(Response::new(proto::GiveBackReply {
            refused: refused.map(convert::refusal_to),
        }))
    }

    async fn overdue(
        &self,
        request: Request<proto::OverdueRequest>,
    ) -> Result<Response<proto::OverdueReply>, Status> {
        let r = request.get_ref();
        let now = Utc
            .timestamp_millis_opt(r.now_ms)
            .single()
            .ok_or(Malformed("time"))?;
        let reply = match self.tier().overdue(now, r.limit as usize).await {
            Ok(holds) => proto::OverdueReply {
                holds: holds.iter().map(convert::hold_to).collect(),
                refused: None,
            },
            Err(refused) => proto::OverdueReply {
                holds: Vec::new(),
                refused: Some(convert::refusal_to(refused)),
            },
        };
        Ok(Response::new(reply))
    }

    async fn audit(
        &self,
        request: Request<proto::AuditRequest>,
    ) -> Result<Response<proto::AuditReply>, Status> {
        let keys = request
            .get_ref()
            .keys
            .iter()
            .map(|k| convert::key_from(Some(k)))
            .collect::<Result<Vec<_>, Malformed>>()?;
        let reply = match self.tier().audit(&keys).await {
            Ok(counted) => proto::AuditReply {
                counted: counted
                    .into_iter()
                    .map(|(key, units, reserved)| proto::Counted {
                        key: Some(convert::key_to(key)),
                        units,
                        reserved,
                    })
                    .collect(),
                refused: None,
            },
            Err(refused) => proto::AuditReply {
                counted: Vec::new(),
                refused: Some(convert::refusal_to(refused)),
            },
        };
        Ok(Response::new(reply))
    }
}
