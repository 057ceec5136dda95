//! Committed events on NATS JetStream, against a real NATS server and a
//! real PostgreSQL: the relay publishes every outbox row once (two relays
//! racing included), nothing is lost while NATS is down, a poison message
//! ends in the dead letters, and a catalogue change made through one
//! instance reaches another instance's cache within the bound.
//!
//! `HOTDEAL_TEST_NATS_URL` and `HOTDEAL_TEST_DATABASE_URL` name the
//! servers; unset, each test prints a notice and passes, except under
//! `CI=true`. Each test has its own schema and its own NATS prefix (so its
//! own stream), and deletes the stream at the end.

use crate::support::{postgres_or_skip, t0};
use futures_util::StreamExt;
use hotdeal::adapters::argon2::Argon2Hasher;
use hotdeal::adapters::memory_admission::MemoryAdmission;
use hotdeal::adapters::memory_queue::MemoryQueue;
use hotdeal::adapters::nats::{NatsBus, StreamLimits};
use hotdeal::adapters::postgres::{PgSettings, PgStore};
use hotdeal::config::Roles;
use hotdeal::config::Secret;
use hotdeal::model::{DiscountType, ProductPatch, User};
use hotdeal::ports::{EventSink, ManualClock, Outbox, UserStore};
use hotdeal::services::tokens::TokenKeys;
use hotdeal::services::{
    Catalogue, Coupons, Engines, Error, NewCoupon, NewDeal, NewProduct, QueueSettings, StoreParts,
    Storefront, WritePath, RELAY_EVERY,
};
use hotdeal_domain::{DealWindow, ProductId, UserId};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a catalogue change may take to reach another instance. The relay
/// looks every 50 ms; the rest is a publish, a delivery and a read.
const BOUND: Duration = Duration::from_millis(1000);

/// The NATS server the tests use, or `None` after a notice.
fn nats_or_skip(test: &str) -> Option<String> {
    match std::env::var("HOTDEAL_TEST_NATS_URL") {
        Ok(url) if !url.is_empty() => return Some(url),
        _ => {}
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        return Some("nats://127.0.0.1:4222".into());
    }
    eprintln!("notice: {test} skipped: it needs NATS with JetStream (set HOTDEAL_TEST_NATS_URL)");
    None
}

/// Both servers, or `None` after a notice.
fn servers(test: &str) -> Option<(String, String)> {
    let pg = postgres_or_skip(test)?;
    let nats = nats_or_skip(test)?;
    Some((pg, nats))
}

/// A schema and a NATS prefix of this test's own.
fn names() -> (String, String) {
    let id = uuid::Uuid::new_v4().simple().to_string();
    (format!("hd_ev_{}", &id[..16]), format!("hdt{}", &id[..12]))
}

/// Small limits: many tests share one server's JetStream storage.
fn limits() -> StreamLimits {
    StreamLimits {
        max_age: Duration::from_secs(600),
        max_bytes: 8 << 20,
    }
}

/// One "instance": a storefront of every role on its own connection pool
/// to the shared schema, with its own catalogue cache.
struct Instance {
    app: Arc<Storefront>,
    store: Arc<PgStore>,
}

impl std::ops::Deref for Instance {
    type Target = Storefront;

    fn deref(&self) -> &Storefront {
        &self.app
    }
}

impl Instance {
    fn catalogue(&self) -> &Catalogue {
        self.app.catalogue.as_deref().expect("the product role")
    }

    fn coupons(&self) -> &Coupons {
        self.app.coupons.as_deref().expect("the coupon role")
    }
}

async fn instance(pg: &str, schema: &str) -> Instance {
    let store = Arc::new(
        PgStore::open_shared(&PgSettings {
            url: pg.to_owned(),
            schema: Some(schema.to_owned()),
            pool_size: 4,
        })
        .await
        .expect("open the store"),
    );
    let config = hotdeal::Config::for_tests(&std::env::temp_dir());
    let admission = Arc::new(MemoryAdmission::new());
    let engines = Engines {
        store: StoreParts::of(store.clone()),
        admission: admission.clone(),
        remote_catalogue: None,
        coupon_admission: admission,
        clock: Arc::new(ManualClock::new(t0())),
        hasher: Some(Arc::new(
            Argon2Hasher::new(config.argon2, 1, 8).expect("hasher"),
        )),
        queue: Arc::new(MemoryQueue::new(1000)),
        running: Arc::new(hotdeal::services::InFlight::default()),
    };
    let path = WritePath {
        queue: 100,
        max_batch: 32,
        payment_window: chrono::Duration::minutes(10),
        waiting_room: QueueSettings {
            admit_per_sec: 10,
            admitted_for: chrono::Duration::minutes(5),
            poll_min: chrono::Duration::seconds(1),
            poll_max: chrono::Duration::seconds(5),
        },
    };
    let app = Storefront::start(engines, TokenKeys::new(&[7u8; 48]), path, Roles::ALL)
        .await
        .expect("start");
    Instance {
        app: Arc::new(app),
        store,
    }
}

async fn bus(nats: &str, prefix: &str) -> NatsBus {
    let bus = NatsBus::connect(&Secret::new(nats), prefix)
        .await
        .expect("connect to NATS");
    bus.ensure_stream(limits()).await.expect("stream");
    bus
}

async fn seller(app: &Instance) -> UserId {
    let id = UserId::new();
    app.store
        .insert_user(&User {
            id,
            email: format!("{}@example.com", id.0),
            name: "seller".into(),
            password_hash: "x".into(),
            created_at: t0(),
        })
        .await
        .expect("user");
    id
}

fn new_product(price: i64) -> NewProduct {
    NewProduct {
        name: "Kettle".into(),
        description: None,
        price,
        stock: 100,
        category: None,
        image_url: None,
    }
}

/// Every message of the stream: (subject, Nats-Msg-Id).
async fn stream_messages(bus: &NatsBus) -> Vec<(String, String)> {
    let last = bus.position().await.expect("position");
    let stream = bus
        .jetstream()
        .get_stream(bus.stream_name())
        .await
        .expect("stream");
    let mut out = Vec::new();
    for seq in 1..=last {
        let m = stream.get_raw_message(seq).await.expect("message");
        let id = m
            .headers
            .get("Nats-Msg-Id")
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        out.push((m.subject.to_string(), id));
    }
    out
}

async fn cleanup(bus: &NatsBus, pg: &str, schema: &str) {
    let _ = bus.delete_stream().await;
    use sqlx::Connection;
    if let Ok(mut c) = sqlx::PgConnection::connect(pg).await {
        let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .execute(&mut c)
            .await;
    }
}

#[tokio::test]
async fn every_committed_event_is_published_once_even_with_two_relays_racing() {
    let Some((pg, nats)) = servers("every_committed_event_is_published_once") else {
        return;
    };
    let (schema, prefix) = names();
    let (a, b) = (instance(&pg, &schema).await, instance(&pg, &schema).await);
    let (bus_a, bus_b) = (bus(&nats, &prefix).await, bus(&nats, &prefix).await);
    let user = seller(&a).await;
    let mut products = Vec::new();
    for i in 0..30 {
        let p = a
            .catalogue()
            .create_product(user, new_product(1000 + i))
            .await
            .expect("product");
        products.push(p.id);
    }
    for id in &products[..10] {
        let patch = ProductPatch {
            price: Some(5),
            ..Default::default()
        };
        b.catalogue()
            .update_product(user, *id, patch)
            .await
            .expect("edit");
    }
    // Two relays on two instances, racing over the same rows.
    let (ra, rb) = tokio::join!(
        async {
            let mut n = 0;
            for _ in 0..5 {
                n += a.events.relay_to(&bus_a).await.expect("relay a");
            }
            n
        },
        async {
            let mut n = 0;
            for _ in 0..5 {
                n += b.events.relay_to(&bus_b).await.expect("relay b");
            }
            n
        },
    );
    assert_eq!(ra + rb, 40, "every row relayed once between them");
    assert!(a.store.unpublished(10).await.expect("read").is_empty());

    // A relay that died after publishing and before marking publishes the
    // same rows again: the stream drops them by their ids.
    let rows: Vec<_> = sqlx_outbox(&pg, &schema).await;
    let (acked, failed) = bus_a.publish(&rows).await;
    assert!(failed.is_none());
    assert_eq!(acked, rows.len());

    let messages = stream_messages(&bus_a).await;
    assert_eq!(messages.len(), 40, "once each in the stream");
    let ids: HashSet<_> = messages.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(ids.len(), 40, "distinct ids");
    for row in &rows {
        let id = format!("{prefix}-{}", row.seq);
        let payload: serde_json::Value = serde_json::from_str(&row.payload).expect("json");
        let subject = format!(
            "{prefix}.{}.{}",
            row.topic,
            payload["product_id"].as_str().expect("product_id")
        );
        assert!(
            messages.contains(&(subject.clone(), id.clone())),
            "{subject} with id {id} in the stream"
        );
    }
    let created = messages
        .iter()
        .filter(|(s, _)| s.starts_with(&format!("{prefix}.product.created.")))
        .count();
    assert_eq!(created, 30);
    cleanup(&bus_a, &pg, &schema).await;
}

/// Every outbox row, published or not, as the relay reads them.
async fn sqlx_outbox(pg: &str, schema: &str) -> Vec<hotdeal::ports::OutboxEntry> {
    use sqlx::{Connection, Row};
    let mut c = sqlx::PgConnection::connect(pg).await.expect("connect");
    sqlx::query(&format!(
        "SELECT seq, topic, payload FROM {schema}.outbox ORDER BY seq"
    ))
    .fetch_all(&mut c)
    .await
    .expect("outbox")
    .iter()
    .map(|r| hotdeal::ports::OutboxEntry {
        seq: r.get("seq"),
        topic: r.get("topic"),
        payload: r.get("payload"),
    })
    .collect()
}

#[tokio::test]
async fn an_event_written_while_nats_is_unreachable_is_published_later() {
    let Some((pg, nats)) = servers("an_event_written_while_nats_is_unreachable") else {
        return;
    };
    let (schema, prefix) = names();
    let a = instance(&pg, &schema).await;
    let good = bus(&nats, &prefix).await;
    // Nothing listens on port 1: every publish through this one fails.
    let down = NatsBus::connect_in_background(&Secret::new("nats://127.0.0.1:1"), &prefix)
        .await
        .expect("a client that keeps trying");
    let user = seller(&a).await;
    let p = a
        .catalogue()
        .create_product(user, new_product(700))
        .await
        .expect("product");

    let err = a.events.relay_to(&down).await.expect_err("NATS is down");
    assert!(!err.to_string().contains("127.0.0.1:1"), "no URL: {err}");
    assert_eq!(
        a.store.unpublished(10).await.expect("read").len(),
        1,
        "kept"
    );

    assert_eq!(a.events.relay_to(&good).await.expect("relay"), 1);
    let messages = stream_messages(&good).await;
    assert_eq!(
        messages,
        vec![(
            format!("{prefix}.product.created.{}", p.id.0),
            format!("{prefix}-1")
        )]
    );
    cleanup(&good, &pg, &schema).await;
}

#[tokio::test]
async fn a_poison_message_ends_in_the_dead_letters() {
    let Some((pg, nats)) = servers("a_poison_message_ends_in_the_dead_letters") else {
        return;
    };
    let (schema, prefix) = names();
    let a = instance(&pg, &schema).await;
    let bus = bus(&nats, &prefix).await;
    let mut dead = bus
        .client()
        .subscribe(format!("{prefix}.dead.>"))
        .await
        .expect("subscribe");
    let follower = bus.follow(bus.catalogue_subjects(), 0, a.app.clone());
    let subject = format!("{prefix}.product.updated.{}", ProductId::new().0);
    bus.jetstream()
        .publish(subject.clone(), "not json".into())
        .await
        .expect("publish")
        .await
        .expect("stored");
    let copy = tokio::time::timeout(Duration::from_secs(10), dead.next())
        .await
        .expect("dead-lettered in time")
        .expect("a message");
    assert_eq!(copy.subject.as_str(), format!("{prefix}.dead.{subject}"));
    assert_eq!(&copy.payload[..], b"not json");
    // The original stays in the stream beside its dead letter.
    let messages = stream_messages(&bus).await;
    assert_eq!(messages.len(), 2, "the original and its dead letter");
    follower.abort();
    cleanup(&bus, &pg, &schema).await;
}

#[tokio::test]
async fn a_catalogue_change_on_one_instance_reaches_the_other_within_the_bound() {
    let Some((pg, nats)) = servers("a_catalogue_change_reaches_the_other_instance") else {
        return;
    };
    let (schema, prefix) = names();
    let a = instance(&pg, &schema).await;
    let bus_a = bus(&nats, &prefix).await;
    let bus_b = bus(&nats, &prefix).await;
    // B: starts following where the stream is now, then loads.
    let after = bus_b.position().await.expect("position");
    let b = instance(&pg, &schema).await;
    let follower = bus_b.follow(bus_b.catalogue_subjects(), after, b.app.clone());
    let relay = a.events.spawn_relay(Arc::new(bus_a.clone()), RELAY_EVERY);
    let user = seller(&a).await;

    // Waits until B's cache (not a read-through) shows what `seen` wants.
    async fn within<T>(what: &str, seen: impl Fn() -> Option<T>) -> (T, Duration) {
        let start = Instant::now();
        loop {
            if let Some(v) = seen() {
                return (v, start.elapsed());
            }
            assert!(start.elapsed() < BOUND, "{what} not seen within {BOUND:?}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    let epoch = b.catalogue().catalog.epoch();
    let p = a
        .catalogue()
        .create_product(user, new_product(1200))
        .await
        .expect("product");
    let (_, created) = within("a new product", || b.catalogue().catalog.product(p.id)).await;
    assert!(
        b.catalogue().catalog.epoch() > epoch,
        "B's pages invalidated"
    );

    let patch = ProductPatch {
        price: Some(990),
        ..Default::default()
    };
    a.catalogue()
        .update_product(user, p.id, patch)
        .await
        .expect("edit");
    let (_, edited) = within("a price edit", || {
        b.catalogue()
            .catalog
            .product(p.id)
            .filter(|q| q.price == 990)
    })
    .await;

    let now = a.catalogue().now();
    let window = DealWindow::new(
        now - chrono::Duration::minutes(1),
        now + chrono::Duration::hours(1),
    )
    .expect("window");
    let deal = a
        .catalogue()
        .create_deal(
            user,
            NewDeal {
                product_id: p.id,
                deal_price: 500,
                deal_stock: 10,
                per_user_limit: None,
                window,
                waiting_room: false,
                queue_admit_per_sec: None,
            },
        )
        .await
        .expect("deal");
    let (_, dealt) = within("a new deal", || b.catalogue().catalog.deal(deal.deal.id)).await;
    let listed = b
        .catalogue()
        .running_deals(hotdeal::model::Page { page: 1, size: 10 });
    assert_eq!(
        listed.items.len(),
        1,
        "listed on B without any read-through"
    );

    eprintln!(
        "catalogue propagation to another instance: created {created:?}, edited {edited:?}, deal {dealt:?} (bound {BOUND:?})"
    );
    relay.abort();
    follower.abort();
    cleanup(&bus_a, &pg, &schema).await;
}

#[tokio::test]
async fn a_catalogue_miss_reads_through_and_a_real_404_stays_a_404() {
    let Some(pg) = postgres_or_skip("a_catalogue_miss_reads_through") else {
        return;
    };
    let (schema, _) = names();
    let a = instance(&pg, &schema).await;
    // B follows nothing: what it knows of A's changes it reads through.
    let b = instance(&pg, &schema).await;
    let user = seller(&a).await;
    let p = a
        .catalogue()
        .create_product(user, new_product(300))
        .await
        .expect("product");
    let now = a.catalogue().now();
    let window = DealWindow::new(
        now - chrono::Duration::minutes(1),
        now + chrono::Duration::hours(1),
    )
    .expect("window");
    let deal = a
        .catalogue()
        .create_deal(
            user,
            NewDeal {
                product_id: p.id,
                deal_price: 200,
                deal_stock: 5,
                per_user_limit: None,
                window,
                waiting_room: false,
                queue_admit_per_sec: None,
            },
        )
        .await
        .expect("deal");
    let coupon = a
        .coupons()
        .create_coupon(
            user,
            NewCoupon {
                name: "ten".into(),
                discount_type: DiscountType::Fixed,
                discount_value: 10,
                max_discount: None,
                min_order_amount: 0,
                total_quantity: 5,
                window,
            },
        )
        .await
        .expect("coupon");

    assert!(
        b.catalogue().catalog.product(p.id).is_none(),
        "not followed"
    );
    assert_eq!(
        b.catalogue()
            .product(p.id)
            .await
            .expect("read through")
            .price,
        300
    );
    assert!(b.catalogue().catalog.product(p.id).is_some(), "and cached");
    let view = b
        .catalogue()
        .deal(deal.deal.id)
        .await
        .expect("read through");
    assert_eq!(view.deal.deal_price, 200);
    assert!(b.catalogue().catalog.deal(deal.deal.id).is_some());
    assert_eq!(
        b.coupons()
            .coupon(coupon.id)
            .await
            .expect("read through")
            .name,
        "ten"
    );

    let missing = ProductId::new();
    assert!(matches!(
        b.catalogue().product(missing).await,
        Err(Error::NotFound)
    ));
    assert!(
        b.catalogue().catalog.product(missing).is_none(),
        "a 404 caches nothing"
    );
    assert!(matches!(
        b.coupons().coupon(uuid::Uuid::now_v7()).await,
        Err(Error::NotFound)
    ));
    use sqlx::Connection;
    if let Ok(mut c) = sqlx::PgConnection::connect(&pg).await {
        let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .execute(&mut c)
            .await;
    }
}
