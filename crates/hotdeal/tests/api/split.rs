//! The seeds' topology from one binary: a product service and order
//! services as separate servers (each with only its roles), the order
//! path admitting every order through the product service over gRPC, on
//! the scaled mode's shared PostgreSQL, Redis and NATS. Skipped unless the
//! tests run scaled.

use crate::support::{scaled, scaled_or_skip, schema_for, spawn_app_with, t0, TestApp};
use hotdeal::config::Roles;
use hotdeal::ports::{Clock, ManualClock};
use hotdeal::transport::grpc::proto::product_service_client::ProductServiceClient;
use hotdeal::transport::grpc::proto::{GetDealRequest, GetProductRequest};
use hyper::StatusCode;
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One deployment's backends and clock, to start its roles from.
pub struct Split {
    pg: String,
    redis: String,
    nats: String,
    name: String,
    pub clock: Arc<ManualClock>,
}

impl Split {
    pub fn new(test: &str) -> Option<Self> {
        let (pg, redis, nats) = scaled_or_skip(test)?;
        Some(Self {
            pg,
            redis,
            nats,
            name: schema_for(&dir()),
            clock: Arc::new(ManualClock::new(t0())),
        })
    }

    /// A server of `roles`; `grpc` is the product role's gRPC address
    /// (port 0 for any), `product` the product service an order role uses.
    pub async fn start(
        &self,
        roles: &str,
        grpc: Option<SocketAddr>,
        product: Option<SocketAddr>,
    ) -> TestApp {
        let roles: Roles = roles.parse().expect("roles");
        spawn_app_with(dir(), self.clock.clone(), |c| {
            scaled(c, &self.pg, &self.redis, &self.nats, &self.name);
            c.roles = roles;
            c.grpc_listen = grpc;
            c.product_url = product.map(|a| format!("http://{a}"));
        })
        .await
    }

    /// The product service (with auth, so buyers can sign up) on a gRPC
    /// port of its own.
    pub async fn product(&self) -> TestApp {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        self.start("auth,product", Some(any), None).await
    }
}

fn dir() -> PathBuf {
    std::env::temp_dir().join(format!("hotdeal-test-{}", uuid::Uuid::new_v4()))
}

fn grpc_of(app: &TestApp) -> SocketAddr {
    app.grpc.expect("the product role serves gRPC")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn order_services_admit_through_the_product_service_and_never_oversell() {
    let Some(split) = Split::new("split race") else {
        return;
    };
    let product = split.product().await;
    let grpc = grpc_of(&product);
    let orders = [
        split.start("order", None, Some(grpc)).await,
        split.start("order", None, Some(grpc)).await,
    ];
    // Each process serves its own part of the API only.
    assert_eq!(
        orders[0].get("/products", None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        orders[0].get("/orders/health", None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        product.get("/orders/health", None).await.status,
        StatusCode::NOT_FOUND
    );

    let (_, seller) = product.user("seller@x.co").await;
    let item = product.product(&seller, 10_000, 1_000).await;
    let deal = product.deal(&seller, &item, 5_000, 20, Some(1)).await;
    let mut buyers = Vec::new();
    for i in 0..60 {
        buyers.push(product.user(&format!("b{i}@x.co")).await.1);
    }
    let placed = futures_util::future::join_all(buyers.iter().enumerate().map(|(i, token)| {
        let (app, other) = (&orders[i % 2], &orders[(i + 1) % 2]);
        let (item, deal) = (item.clone(), deal.clone());
        async move {
            // A retry of the same click on the other service: the per-user
            // limit holds across them.
            let line = json!([{"product_id": item, "deal_id": deal, "quantity": 1}]);
            let first = app.order(token, line.clone()).await;
            let again = other.order(token, line).await;
            (first, again)
        }
    }))
    .await;
    let mut sold = 0;
    for (first, again) in &placed {
        for r in [first, again] {
            match (r.status, r.code()) {
                (StatusCode::CREATED, _) => sold += 1,
                (_, "INSUFFICIENT_STOCK" | "PURCHASE_LIMIT_EXCEEDED") => {}
                other => panic!("unexpected answer {other:?}: {:?}", r.body),
            }
        }
        assert!(
            !(first.status == StatusCode::CREATED && again.status == StatusCode::CREATED),
            "one buyer got two units of a deal limited to one"
        );
    }
    assert_eq!(sold, 20, "the deal's 20 units, sold once each");
    assert_eq!(product.remaining(&deal).await, 0);
    let mut probe = product.probe().await;
    assert_eq!(probe.count("orders").await, 20);

    // The catalogue over gRPC, as an outside client sees it.
    let mut client = ProductServiceClient::connect(format!("http://{grpc}"))
        .await
        .expect("connect");
    let p = client
        .get_product(GetProductRequest {
            product_id: item.clone(),
        })
        .await
        .expect("GetProduct")
        .into_inner();
    assert_eq!((p.id.as_str(), p.price), (item.as_str(), 10_000));
    let d = client
        .get_deal(GetDealRequest {
            deal_id: deal.clone(),
        })
        .await
        .expect("GetDeal")
        .into_inner();
    assert_eq!((d.remaining_stock, d.status.as_str()), (0, "sold_out"));
    // The whole deal, as an order service needs it to price and check one.
    assert_eq!((d.per_user_limit, d.settled_at_ms), (Some(1), None));
    assert_eq!(d.created_at_ms, split.clock.now().timestamp_millis());
    let missing = client
        .get_product(GetProductRequest {
            product_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .expect_err("no such product");
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let malformed = client
        .get_deal(GetDealRequest {
            deal_id: "not-an-id".into(),
        })
        .await
        .expect_err("a malformed id");
    assert_eq!(malformed.code(), tonic::Code::InvalidArgument);

    // The standard health service says the product service serves.
    let channel = tonic::transport::Channel::from_shared(format!("http://{grpc}"))
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "hotdeal.product.v1.ProductService".into(),
        })
        .await
        .expect("Check")
        .into_inner();
    assert_eq!(
        serving.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_service_prices_from_the_product_service_and_hears_of_edits() {
    let Some(split) = Split::new("split catalogue") else {
        return;
    };
    let product = split.product().await;
    let order = split.start("order", None, Some(grpc_of(&product))).await;
    let (_, seller) = product.user("seller@x.co").await;
    let (_, buyer) = product.user("buyer@x.co").await;
    let item = product.product(&seller, 1_000, 100).await;
    // Never seen by the order service: read from the product service.
    let line = json!([{"product_id": item, "quantity": 2}]);
    let r = order.order(&buyer, line).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["total_amount"], 2_000);
    // A price edit on the product service is charged by the order service
    // once its event arrives (it reads the product again over gRPC).
    let r = product
        .patch(
            &format!("/products/{item}"),
            Some(&seller),
            json!({"price": 700}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let line = json!([{"product_id": item, "quantity": 1}]);
    let mut charged = 0;
    for _ in 0..40 {
        let r = order.order(&buyer, line.clone()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        charged = r.body["total_amount"].as_i64().expect("total");
        if charged == 700 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(charged, 700, "the new price reached the order service");
    // An id the product service does not know is the contract's 404.
    let unknown = json!([{"product_id": uuid::Uuid::new_v4(), "quantity": 1}]);
    let r = order.order(&buyer, unknown).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::NOT_FOUND, "PRODUCT_NOT_FOUND"),
        "{}",
        r.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_get_a_fast_503_while_the_product_service_is_down_then_recover() {
    let Some(split) = Split::new("split outage") else {
        return;
    };
    let product = split.product().await;
    let grpc = grpc_of(&product);
    let order = split.start("order", None, Some(grpc)).await;
    let (_, seller) = product.user("seller@x.co").await;
    let item = product.product(&seller, 1_000, 100).await;
    let (_, buyer) = product.user("buyer@x.co").await;
    let line = json!([{"product_id": item, "quantity": 1}]);
    assert_eq!(
        order.order(&buyer, line.clone()).await.status,
        StatusCode::CREATED
    );

    product.stop().await;
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        let r = order.order(&buyer, line.clone()).await;
        slowest = slowest.max(started.elapsed());
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::SERVICE_UNAVAILABLE, "OVERLOADED")
        );
        assert!(r.headers.contains_key("retry-after"));
    }
    // Refused at once: a connection that is refused, not a deadline waited
    // out (generous for a debug build on a busy machine).
    assert!(
        slowest < Duration::from_millis(500),
        "slowest refusal took {slowest:?}"
    );

    // The product service comes back on its address; the order service
    // reconnects by itself.
    let product = split.start("auth,product", Some(grpc), None).await;
    let mut placed = false;
    for _ in 0..50 {
        if order.order(&buyer, line.clone()).await.status == StatusCode::CREATED {
            placed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        placed,
        "orders go through again once the product service is back"
    );
    assert_eq!(product.stock(&item).await, 98);
    let mut probe = product.probe().await;
    assert_eq!(probe.count("orders").await, 2);
}

#[test]
fn a_split_process_without_the_shared_services_says_what_it_needs() {
    let dir = dir();
    let mut config = crate::support::config_for(&dir);
    config.roles = "order".parse().expect("roles");
    (config.redis_url, config.nats_url) = (None, None);
    let e = config
        .check_roles()
        .expect_err("needs the scaled mode")
        .to_string();
    assert!(e.contains("--redis-url"), "{e}");
    scaled(
        &mut config,
        "postgres://postgres@127.0.0.1:5432/postgres",
        "redis://127.0.0.1:6379",
        "nats://127.0.0.1:4222",
        "hd_x",
    );
    let e = config
        .check_roles()
        .expect_err("needs the product service")
        .to_string();
    assert!(e.contains("--product-url"), "{e}");
    config.product_url = Some("http://127.0.0.1:50051".into());
    config.check_roles().expect("a complete order role");
}
