//! The edge of the server: what a client that sends slowly, sends nothing,
//! holds many connections or sends odd bytes can and cannot take. These
//! talk raw TCP where the client has to misbehave in ways an HTTP client
//! library would not.

use crate::support::{spawn_app_with, t0, TestApp};
use hotdeal::ports::ManualClock;
use hotdeal::Config;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest any single wait in these tests may take.
const PATIENCE: Duration = Duration::from_secs(2);

/// Small limits, and timeouts long enough to stay out of the way; each
/// test shortens the one it looks at.
fn tight(config: &mut Config) {
    config.max_in_flight = 8;
    config.max_connections = 100;
    config.header_timeout_ms = 10_000;
    config.body_timeout_ms = 10_000;
    config.idle_timeout_ms = 10_000;
}

async fn spawn(tune: impl FnOnce(&mut Config)) -> TestApp {
    let dir = std::env::temp_dir().join(format!("hotdeal-test-{}", uuid::Uuid::new_v4()));
    spawn_app_with(dir, Arc::new(ManualClock::new(t0())), |c| {
        tight(c);
        tune(c);
    })
    .await
}

async fn connect(app: &TestApp) -> TcpStream {
    let addr = app.base.trim_start_matches("http://");
    TcpStream::connect(addr).await.expect("connect")
}

/// What came back on a raw connection.
#[derive(Debug, PartialEq)]
enum Reply {
    Answer(u16, Value),
    /// The server closed the connection (or reset it) without an answer.
    Closed,
}

/// Reads one answer (head and `Content-Length` body), or `Closed`.
async fn read_reply(stream: &mut TcpStream) -> Reply {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Reply::Closed,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().expect("content-length"));
    while buf.len() < head_end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Reply::Closed,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = &buf[head_end..head_end + length];
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body)
            .unwrap_or_else(|_| panic!("non-JSON body: {}", String::from_utf8_lossy(body)))
    };
    Reply::Answer(status, body)
}

/// `read_reply`, failing the test if nothing happens within `PATIENCE`.
async fn reply_within(stream: &mut TcpStream) -> Reply {
    tokio::time::timeout(PATIENCE, read_reply(stream))
        .await
        .expect("the server neither answered nor closed the connection in time")
}

async fn get_on(stream: &mut TcpStream, path: &str) -> Reply {
    let req = format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("write");
    reply_within(stream).await
}

/// A `POST /auth/login` whose body never comes in full.
async fn stalled_login(app: &TestApp) -> TcpStream {
    let mut s = connect(app).await;
    s.write_all(
        b"POST /auth/login HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
          content-length: 100\r\n\r\n{\"email\":",
    )
    .await
    .expect("write");
    s
}

#[tokio::test]
async fn a_body_that_stalls_gets_408_in_the_error_body() {
    let app = spawn(|c| c.body_timeout_ms = 300).await;
    let mut s = stalled_login(&app).await;
    let started = Instant::now();
    let reply = reply_within(&mut s).await;
    assert_eq!(
        reply,
        Reply::Answer(
            408,
            json!({"error": "REQUEST_TIMEOUT", "message": "the request body was not received in time"})
        )
    );
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "not before the body timeout: {:?}",
        started.elapsed()
    );
    // The rest of that body can't be told from a next request: closed.
    assert_eq!(read_reply(&mut s).await, Reply::Closed);
}

#[tokio::test]
async fn stalled_bodies_take_no_request_slots() {
    // The body timeout is long: every stalled body is still stalled while
    // we look.
    let app = spawn(|_| {}).await;
    let mut stalled = Vec::new();
    for _ in 0..32 {
        stalled.push(stalled_login(&app).await);
    }
    for _ in 0..20 {
        assert_eq!(app.get("/health", None).await.status, StatusCode::OK);
        let r = app.get("/products", None).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_is_never_shed() {
    let app = Arc::new(spawn(|c| c.max_in_flight = 2).await);
    let (_, buyer) = app.user("h@x.co").await;
    let user = app.storefront.auth.authenticate(&buyer).expect("token");
    // Stall the writer so two charges stay in flight and fill both slots.
    let mut side = app.probe().await;
    side.stall_writes().await;
    let auth = format!("Bearer {buyer}");
    let mut running = Vec::new();
    for key in ["k1", "k2"] {
        let (client, auth) = (app.clone(), auth.clone());
        running.push(tokio::spawn(async move {
            client
                .raw(
                    Method::POST,
                    "/points/charges",
                    &[
                        ("authorization", &auth),
                        ("content-type", "application/json"),
                        ("idempotency-key", key),
                    ],
                    json!({"amount": 100}).to_string(),
                )
                .await
        }));
        while !app.storefront.idempotency.is_running(user, key).await {
            tokio::task::yield_now().await;
        }
    }
    let r = app.get("/products", None).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "OVERLOADED"),
        "the slots are full"
    );
    for path in [
        "/health",
        "/auth/health",
        "/products/health",
        "/orders/health",
        "/coupons/health",
        "/points/health",
    ] {
        let r = app.get(path, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {:?}", r.body);
    }
    side.release().await;
    for r in running {
        assert_eq!(r.await.expect("join").status, StatusCode::CREATED);
    }
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed() {
    // The head timeout also runs while a kept-alive connection waits for
    // its next request; it stays long here, so this is the idle watchdog.
    let app = spawn(|c| c.idle_timeout_ms = 300).await;
    let mut s = connect(&app).await;
    assert!(matches!(
        get_on(&mut s, "/health").await,
        Reply::Answer(200, _)
    ));
    let started = Instant::now();
    assert_eq!(reply_within(&mut s).await, Reply::Closed);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "not before the idle timeout: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_head_that_never_ends_is_closed_without_an_answer() {
    let app = spawn(|c| c.header_timeout_ms = 300).await;
    let mut s = connect(&app).await;
    s.write_all(b"GET /health HTTP/1.1\r\nhost: te")
        .await
        .expect("write");
    // A byte now and then does not keep it open past the head timeout.
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.write_all(b"s").await.expect("write");
    assert_eq!(reply_within(&mut s).await, Reply::Closed);
}

#[tokio::test]
async fn connections_past_the_cap_are_refused_at_once() {
    let app = spawn(|c| c.max_connections = 20).await;
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut s = connect(&app).await;
        assert!(matches!(
            get_on(&mut s, "/health").await,
            Reply::Answer(200, _)
        ));
        held.push(s);
    }
    // The 21st is answered before it asks anything: a 503 in the error
    // body, then closed. (Had it sent a request first, the close could
    // reach it as a reset instead; refused at once all the same.)
    let mut extra = connect(&app).await;
    let started = Instant::now();
    let Reply::Answer(status, body) = reply_within(&mut extra).await else {
        panic!("closed without the 503");
    };
    assert_eq!((status, &body["error"]), (503, &json!("OVERLOADED")));
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "refused fast"
    );
    assert_eq!(read_reply(&mut extra).await, Reply::Closed);
    // The connections already open keep working.
    for s in held.iter_mut().take(3) {
        assert!(matches!(get_on(s, "/health").await, Reply::Answer(200, _)));
    }
    // Once they go, new connections are served again (the server notices a
    // closed connection a moment after the client closes it).
    drop(held);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut s = connect(&app).await;
        match get_on(&mut s, "/health").await {
            Reply::Answer(200, _) => break,
            other => assert!(Instant::now() < deadline, "still refused: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_head_too_large_is_refused_by_hyper_without_a_body() {
    let app = spawn(|_| {}).await;
    let mut s = connect(&app).await;
    let big = "x".repeat(20 * 1024);
    let req = format!("GET /health HTTP/1.1\r\nhost: test\r\nx-big: {big}\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    // hyper writes this answer itself, as a bare status line: it has no
    // hook for a body (see transport/http/server.rs).
    assert_eq!(reply_within(&mut s).await, Reply::Answer(431, Value::Null));
}

#[tokio::test]
async fn trailing_data_after_a_json_body_is_a_bad_request() {
    let app = spawn(|_| {}).await;
    let (_, token) = app.user("t@x.co").await;
    let auth = format!("Bearer {token}");
    for body in [
        r#"{"amount":5}{"amount":9999999}"#,
        r#"{"amount":5} x"#,
        r#"{"amount":5}]"#,
    ] {
        let r = app
            .raw(
                Method::POST,
                "/points/charges",
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                body,
            )
            .await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, "BAD_REQUEST"),
            "{body}"
        );
    }
    let r = app.get("/points", Some(&token)).await;
    assert_eq!(r.body["balance"], 0, "nothing was charged");
    // Whitespace after the value is still fine.
    let r = app
        .raw(
            Method::POST,
            "/points/charges",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            "{\"amount\":5}\n",
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
}

#[tokio::test]
async fn ids_that_do_not_decode_are_unknown_ids() {
    let app = spawn(|_| {}).await;
    let (_, token) = app.user("p@x.co").await;
    let gets = [
        "/products/%FF",
        "/products/%FF/stock",
        "/products/deals/%FF",
        "/orders/%FF",
        "/coupons/%FF",
    ];
    for path in gets {
        let r = app.get(path, Some(&token)).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::NOT_FOUND, "NOT_FOUND"),
            "{path}"
        );
    }
    for path in [
        "/orders/%FF/cancel",
        "/coupons/%FF/issue",
        "/products/%FF/hotdeal/start",
    ] {
        let r = app.post(path, Some(&token), json!({})).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::NOT_FOUND, "NOT_FOUND"),
            "{path}"
        );
    }
}
