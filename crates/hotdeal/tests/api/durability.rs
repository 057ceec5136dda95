use crate::support::{spawn_app, spawn_app_in};
use hyper::StatusCode;
use serde_json::json;

#[tokio::test]
async fn acknowledged_orders_survive_a_restart() {
    let app = spawn_app().await;
    let (_, seller) = app.user("s@x.co").await;
    let (_, buyer) = app.user("b@x.co").await;
    let product = app.product(&seller, 1000, 100).await;
    let deal = app.deal(&seller, &product, 500, 40, None).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let line = if i % 2 == 0 {
            json!([{"product_id": product, "quantity": 1}])
        } else {
            json!([{"product_id": product, "deal_id": deal, "quantity": 2}])
        };
        let r = app.order(&buyer, line).await;
        assert_eq!(r.status, StatusCode::CREATED);
        ids.push(r.body["id"].as_str().expect("id").to_owned());
    }
    let (stock, remaining) = (app.stock(&product).await, app.remaining(&deal).await);
    assert_eq!((stock, remaining), (50, 20));

    let (dir, clock) = app.stop().await;
    let app = spawn_app_in(dir, clock).await;
    // Same secret, same clock: the old token still works.
    for id in &ids {
        let r = app.get(&format!("/orders/{id}"), Some(&buyer)).await;
        assert_eq!(r.status, StatusCode::OK, "order {id} lost");
        assert_eq!(r.body["status"], "confirmed");
    }
    assert_eq!(
        app.get("/orders?size=100", Some(&buyer)).await.body["total"],
        20
    );
    assert_eq!(
        (app.stock(&product).await, app.remaining(&deal).await),
        (stock, remaining)
    );
}
