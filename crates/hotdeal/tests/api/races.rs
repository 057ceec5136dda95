//! The store is exact because its statements are guarded, not because one
//! connection serialises every write: each test races a second store handle
//! (its own writer connections on the same database) against the server's
//! own, straight through the store port, past the batcher and the
//! admission tier — on SQLite and on PostgreSQL.

use crate::support::{config_for, spawn_app, Res, TestApp};
use chrono::Duration;
use hotdeal::adapters::postgres::{PgSettings, PgStore};
use hotdeal::adapters::sqlite::{Durability, SqliteStore};
use hotdeal::app::OpenStore;
use hotdeal::model::Order;
use hotdeal::ports::{
    CancelBy, Cancellation, Ledger, OrderWrite, Payment, Placement, Store, StoreError,
};
use hotdeal_domain::{DealId, OrderId, ProductId, StockKey, UserId};
use hyper::StatusCode;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The store port and the ledger port of one handle.
trait Books: Store + Ledger {}
impl<T: Store + Ledger> Books for T {}

/// The server's own handle.
fn own_writer(app: &TestApp) -> Arc<dyn Books> {
    match &app.store {
        OpenStore::Sqlite(s) => s.clone(),
        OpenStore::Postgres(s) => s.clone(),
    }
}

/// A second handle on the server's database: another writer.
async fn second_writer(app: &TestApp) -> Arc<dyn Books> {
    let config = config_for(&app.dir);
    match &config.database_schema {
        None => Arc::new(
            SqliteStore::open(config.database_url.expose(), Durability::Process)
                .await
                .expect("second handle"),
        ),
        Some(schema) => Arc::new(
            PgStore::open_shared(&PgSettings {
                url: config.database_url.expose().to_owned(),
                schema: Some(schema.clone()),
                pool_size: 4,
            })
            .await
            .expect("second handle"),
        ),
    }
}

/// A deal of `units` with an unpaid order of 1 unit per buyer on it.
async fn unpaid_deal_orders(app: &TestApp, buyers: usize) -> (String, String, Vec<OrderId>) {
    let (_, seller) = app.user("seller@x.co").await;
    let product = app.product(&seller, 1000, 100).await;
    let deal = app.deal(&seller, &product, 500, 50, None).await;
    let mut ids = Vec::new();
    for i in 0..buyers {
        let (_, buyer) = app.user(&format!("b{i}@x.co")).await;
        let r = app
            .order(
                &buyer,
                json!([{"product_id": product, "deal_id": deal, "quantity": 1}]),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let id = r.body["id"].as_str().expect("id");
        ids.push(OrderId(id.parse().expect("uuid")));
    }
    (product, deal, ids)
}

async fn deal_remaining<S: Store + ?Sized>(store: &S, deal: &str) -> i64 {
    let snapshot = store.snapshot().await.expect("snapshot");
    snapshot
        .deals
        .iter()
        .find(|d| d.id.0.to_string() == deal)
        .expect("deal")
        .remaining_stock
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_buyers_cancel_and_an_expiry_never_both_win() {
    let app = spawn_app().await;
    let (_, deal, ids) = unpaid_deal_orders(&app, 20).await;
    let (a, b) = (own_writer(&app), second_writer(&app).await);
    let late = app.clock_now() + Duration::minutes(11);
    let mut races = Vec::new();
    for id in ids.clone() {
        let (a, b) = (a.clone(), b.clone());
        races.push(tokio::spawn(async move {
            let (x, y) = tokio::join!(
                a.cancel_order(id, Some("changed my mind"), CancelBy::Buyer, late),
                b.cancel_order(id, None, CancelBy::Expiry, late),
            );
            let won = |c: &Cancellation| matches!(c, Cancellation::Cancelled { .. });
            u8::from(won(&x.expect("a"))) + u8::from(won(&y.expect("b")))
        }));
    }
    for race in races {
        assert_eq!(race.await.expect("race"), 1, "exactly one cancel wins");
    }
    assert_eq!(
        deal_remaining(&*b, &deal).await,
        50,
        "each unit came back exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payment_and_an_expiry_never_both_win() {
    let app = spawn_app().await;
    let (_, deal, ids) = unpaid_deal_orders(&app, 20).await;
    let (a, b) = (own_writer(&app), second_writer(&app).await);
    // Every buyer can pay; the clock is right at the deadline's edge for
    // the expiry and just inside it for the payment.
    let mut orders: Vec<Order> = Vec::new();
    for id in &ids {
        let o = a.order(*id).await.expect("read").expect("order");
        a.charge(o.user_id, o.total_amount, app.clock_now(), None)
            .await
            .expect("charge");
        orders.push(o);
    }
    let mut races = Vec::new();
    for o in orders {
        let (a, b) = (a.clone(), b.clone());
        let pay_by = o.pay_by.expect("deadline");
        races.push(tokio::spawn(async move {
            let (paid, expired) = tokio::join!(
                a.pay_order(o.id, o.user_id, pay_by - Duration::microseconds(1), None),
                b.cancel_order(o.id, None, CancelBy::Expiry, pay_by),
            );
            let paid = matches!(paid.expect("pay"), Payment::Paid(_));
            let expired = matches!(expired.expect("expire"), Cancellation::Cancelled { .. });
            (paid, expired, o.user_id)
        }));
    }
    let mut sold = 0;
    for race in races {
        let (paid, expired, user) = race.await.expect("race");
        assert!(paid != expired, "exactly one of payment and expiry wins");
        let balance = b
            .point_account(user)
            .await
            .expect("account")
            .expect("charged")
            .balance;
        // Paid: the points are spent. Expired: never taken.
        assert_eq!(balance, if paid { 0 } else { 500 });
        sold += i64::from(paid);
    }
    assert_eq!(deal_remaining(&*b, &deal).await, 50 - sold);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deal_is_settled_once_by_racing_settlers() {
    let app = spawn_app().await;
    let (product, _, _) = unpaid_deal_orders(&app, 3).await;
    let (a, b) = (own_writer(&app), second_writer(&app).await);
    let after = app.clock_now() + Duration::hours(2);
    let (x, y) = tokio::join!(a.settle_ended_deals(after), b.settle_ended_deals(after));
    let settled = x.expect("a").len() + y.expect("b").len();
    assert_eq!(settled, 1, "one deal, settled once");
    let p = b
        .product(product.parse().map(hotdeal_domain::ProductId).expect("id"))
        .await
        .expect("read")
        .expect("product");
    assert_eq!(
        p.stock,
        50 + 47,
        "free stock + the deal's unsold units, once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_charges_each_read_back_their_own_row() {
    let app = spawn_app().await;
    let (uid, _) = app.user("payer@x.co").await;
    let user = hotdeal_domain::UserId(uid.parse().expect("uuid"));
    let (a, b) = (own_writer(&app), second_writer(&app).await);
    let now = app.clock_now();
    let mut charges = Vec::new();
    for i in 1..=40i64 {
        let (a, b) = (a.clone(), b.clone());
        charges.push(tokio::spawn(async move {
            let charged = if i % 2 == 0 {
                a.charge(user, i, now, None).await
            } else {
                b.charge(user, i, now, None).await
            };
            charged.expect("charge")
        }));
    }
    let mut seen = Vec::new();
    for c in charges {
        seen.push(c.await.expect("charge"));
    }
    let total: i64 = (1..=40).sum();
    let history = b
        .point_history(user, hotdeal::model::Page { page: 1, size: 100 })
        .await
        .expect("history");
    assert_eq!(history.total, 40);
    for c in &seen {
        let row = history
            .items
            .iter()
            .find(|e| e.id == c.charge_id)
            .expect("the answered charge id is its own row");
        assert_eq!((row.amount, row.balance_after), (c.amount, c.balance));
    }
    let max = seen.iter().map(|c| c.balance).max();
    assert_eq!(max, Some(total), "balances are a running sum");
}

async fn product_stock<S: Store + ?Sized>(store: &S, product: &str) -> i64 {
    let snapshot = store.snapshot().await.expect("snapshot");
    snapshot
        .products
        .iter()
        .find(|p| p.id.0.to_string() == product)
        .expect("product")
        .stock
}

/// The order a 201 answered, as the store holds it.
async fn stored_order<S: Store + ?Sized>(store: &S, r: &Res) -> Order {
    let id = r.body["id"].as_str().expect("id").parse().expect("uuid");
    store
        .order(OrderId(id))
        .await
        .expect("read")
        .expect("order")
}

/// `template` again under new order and line ids: another order to write.
fn fresh_copy(template: &Order) -> Order {
    let mut order = template.clone();
    order.id = OrderId::new();
    for item in &mut order.items {
        item.id = uuid::Uuid::now_v7();
    }
    order
}

/// One order a batch cannot write — its buyer is not in the store (a
/// foreign key, which SQLite checks at `COMMIT`), or it wants more units
/// than are left — is refused alone: the batch's other orders are placed,
/// the refused ones take nothing, and the writer goes on writing.
#[tokio::test]
async fn one_bad_order_in_a_batch_is_refused_alone() {
    let app = spawn_app().await;
    let (_, seller) = app.user("seller@x.co").await;
    let (_, buyer) = app.user("buyer@x.co").await;
    let product = app.product(&seller, 1000, 10).await;
    let r = app
        .order(&buyer, json!([{"product_id": product, "quantity": 1}]))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let store = second_writer(&app).await;
    let template = stored_order(&*store, &r).await;
    let product_id = ProductId(product.parse().expect("uuid"));
    let write = |quantity: i64, buyer: Option<UserId>| {
        let mut order = fresh_copy(&template);
        for item in &mut order.items {
            item.quantity = quantity;
            item.subtotal = item.unit_price * quantity;
        }
        order.total_amount = template.items[0].unit_price * quantity;
        order.user_id = buyer.unwrap_or(template.user_id);
        order.created_at = app.clock_now();
        OrderWrite {
            order,
            demand: BTreeMap::from([(StockKey::Product(product_id), quantity)]),
            answer: None,
        }
    };
    let ghost = UserId(uuid::Uuid::now_v7());
    let outcomes = store
        .place_orders(&[write(1, None), write(1, Some(ghost)), write(2, None)])
        .await;
    assert!(matches!(outcomes[0], Ok(Placement::Placed)), "{outcomes:?}");
    assert!(
        matches!(outcomes[1], Err(StoreError::UnknownUser)),
        "{outcomes:?}"
    );
    assert!(matches!(outcomes[2], Ok(Placement::Placed)), "{outcomes:?}");
    assert_eq!(product_stock(&*store, &product).await, 10 - 1 - 1 - 2);

    let outcomes = store
        .place_orders(&[write(100, None), write(1, None)])
        .await;
    assert!(
        matches!(
            outcomes[0],
            Ok(Placement::Insufficient {
                requested: 100,
                available: 6,
                ..
            })
        ),
        "{outcomes:?}"
    );
    assert!(matches!(outcomes[1], Ok(Placement::Placed)), "{outcomes:?}");
    let outcomes = store.place_orders(&[write(1, None)]).await;
    assert!(matches!(outcomes[0], Ok(Placement::Placed)), "{outcomes:?}");
    assert_eq!(
        product_stock(&*store, &product).await,
        4,
        "refused orders took nothing"
    );
}

/// The batch path checks what the one-by-one path checks: a batch whose
/// orders together exceed a user's limit, or that is past the deal's end,
/// commits only what is allowed, even when nothing in front refused it.
#[tokio::test]
async fn the_batch_path_keeps_per_user_limits_and_deal_windows() {
    let app = spawn_app().await;
    let (_, seller) = app.user("seller@x.co").await;
    let (_, buyer) = app.user("buyer@x.co").await;
    let product = app.product(&seller, 1000, 100).await;
    let deal = app.deal(&seller, &product, 500, 50, Some(2)).await;
    let r = app
        .order(
            &buyer,
            json!([{"product_id": product, "deal_id": deal, "quantity": 1}]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let store = second_writer(&app).await;
    let template = stored_order(&*store, &r).await;
    let deal_id = DealId(deal.parse().expect("uuid"));
    let write = |at: chrono::DateTime<chrono::Utc>| {
        let mut order = fresh_copy(&template);
        order.created_at = at;
        OrderWrite {
            order,
            demand: BTreeMap::from([(StockKey::Deal(deal_id), 1)]),
            answer: None,
        }
    };
    let now = app.clock_now();
    let outcomes: Vec<Placement> = store
        .place_orders(&[write(now), write(now), write(now)])
        .await
        .into_iter()
        .map(|o| o.expect("placement"))
        .collect();
    assert_eq!(outcomes[0], Placement::Placed, "the second unit is allowed");
    for refused in &outcomes[1..] {
        assert!(
            matches!(refused, Placement::LimitExceeded { limit: 2, .. }),
            "{refused:?}"
        );
    }
    let ended = now + Duration::hours(2);
    let outcomes = store.place_orders(&[write(ended)]).await;
    assert!(
        matches!(outcomes[0], Ok(Placement::DealNotActive(_))),
        "{:?}",
        outcomes[0]
    );
    assert_eq!(
        deal_remaining(&*store, &deal).await,
        48,
        "two units sold, no more"
    );
}
