//! `kill -9` in the middle of a rush: after a restart every acknowledged
//! order is there and the units add up.

use hyper::StatusCode;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::Client;

/// The real `hotdeal serve` binary on a data dir and a free port.
pub struct Server {
    pub child: Child,
    pub base: String,
}

fn start(dir: &std::path::Path) -> Server {
    start_with(dir, store_env(dir))
}

/// The binary with `env` naming its store (and, for the scaled mode, its
/// Redis and NATS).
pub fn start_with(dir: &std::path::Path, env: Vec<(&'static str, String)>) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hotdeal"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir)
        .env(
            "HOTDEAL_JWT_SECRET",
            "crash-test-secret-of-at-least-32-bytes",
        )
        .env("HOTDEAL_ARGON2_MEMORY_KIB", "64")
        .env("HOTDEAL_ARGON2_ITERATIONS", "1")
        // Tests run side by side: no fixed admin port.
        .env("HOTDEAL_ADMIN_LISTEN", "off")
        .env("RUST_LOG", "info")
        .envs(env)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hotdeal");
    // Ready once it logs that it listens.
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    loop {
        let line = lines
            .next()
            .expect("server exited before listening")
            .expect("read");
        if line.contains("hotdeal listening") {
            break;
        }
    }
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

/// The store settings of the test run, for the child's environment.
fn store_env(dir: &std::path::Path) -> Vec<(&'static str, String)> {
    match crate::support::postgres_url() {
        Some(url) => vec![
            ("HOTDEAL_DATABASE_URL", url),
            ("HOTDEAL_DATABASE_SCHEMA", crate::support::schema_for(dir)),
        ],
        None => vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_mid_rush_loses_no_acknowledged_order() {
    let dir = std::env::temp_dir().join(format!("hotdeal-crash-{}", uuid::Uuid::new_v4()));
    let mut server = start(&dir);
    let c = Client::new(&server.base);

    let login = |email: String| {
        let c = &c;
        async move {
            c.ok(
                "POST",
                "/auth/register",
                None,
                Some(json!({"email": email, "password": "password123", "name": "Crash"})),
            )
            .await;
            let t = c
                .ok(
                    "POST",
                    "/auth/login",
                    None,
                    Some(json!({"email": email, "password": "password123"})),
                )
                .await;
            t["access_token"].as_str().expect("token").to_owned()
        }
    };
    let seller = login("seller@x.co".into()).await;
    let product = c
        .ok(
            "POST",
            "/products",
            Some(&seller),
            Some(json!({"name": "P", "price": 100, "stock": 100_000})),
        )
        .await;
    let product = product["id"].as_str().expect("id").to_owned();
    let now = chrono::Utc::now();
    let deal = c
        .ok("POST", "/products/deals", Some(&seller), Some(json!({
            "product_id": product, "deal_price": 50, "deal_stock": 20_000,
            "starts_at": now - chrono::Duration::minutes(1), "ends_at": now + chrono::Duration::hours(1)})))
        .await;
    let deal = deal["id"].as_str().expect("id").to_owned();
    let mut buyers = Vec::new();
    for i in 0..16 {
        buyers.push(login(format!("buyer{i}@x.co")).await);
    }

    // The rush: every buyer orders in a loop; acknowledged orders are noted.
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let c = Arc::new(c);
    let loops: Vec<_> = buyers
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let (c, t, acked) = (c.clone(), t.clone(), acked.clone());
            let (product, deal) = (product.clone(), deal.clone());
            tokio::spawn(async move {
                for n in 0.. {
                    let line = if (i + n) % 2 == 0 {
                        json!({"product_id": product, "quantity": 1 + n % 3})
                    } else {
                        json!({"product_id": product, "deal_id": deal, "quantity": 1})
                    };
                    match c
                        .send("POST", "/orders", Some(&t), Some(json!({"items": [line]})))
                        .await
                    {
                        Some(r) if r.status == StatusCode::CREATED => {
                            let id = r.body["id"].as_str().expect("id").to_owned();
                            acked.lock().expect("lock").push((id, t.clone()));
                        }
                        Some(r) => panic!("unexpected {}: {}", r.status, r.body),
                        None => return, // the server is gone
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("reap");
    for l in loops {
        l.await.expect("loop");
    }
    let acked = acked.lock().expect("lock").clone();
    assert!(
        acked.len() > 20,
        "the rush placed orders before the kill ({})",
        acked.len()
    );

    let mut server = start(&dir);
    let c = Client::new(&server.base);
    for (id, token) in &acked {
        let r = c
            .send("GET", &format!("/orders/{id}"), Some(token), None)
            .await
            .expect("up");
        assert_eq!(r.status, StatusCode::OK, "acknowledged order {id} lost");
    }
    // The books: every unit is on the shelf, in the deal, or in an order.
    let mut sold = 0;
    for t in &buyers {
        for page in 1.. {
            let list = c
                .ok(
                    "GET",
                    &format!("/orders?size=100&page={page}"),
                    Some(t),
                    None,
                )
                .await;
            let items = list["items"].as_array().expect("items");
            if items.is_empty() {
                break;
            }
            for o in items {
                sold += o["items"]
                    .as_array()
                    .expect("lines")
                    .iter()
                    .map(|l| l["quantity"].as_i64().expect("q"))
                    .sum::<i64>();
            }
        }
    }
    let stock = c
        .ok("GET", &format!("/products/{product}/stock"), None, None)
        .await["stock"]
        .as_i64()
        .expect("stock");
    let remaining = c
        .ok("GET", &format!("/products/deals/{deal}"), None, None)
        .await["remaining_stock"]
        .as_i64()
        .expect("r");
    assert_eq!(
        stock + remaining + sold,
        100_000,
        "stock {stock} + deal {remaining} + sold {sold}"
    );
    server.child.kill().ok();
    server.child.wait().ok();
    std::fs::remove_dir_all(&dir).ok();
    crate::support::drop_schema_of(&dir);
}
