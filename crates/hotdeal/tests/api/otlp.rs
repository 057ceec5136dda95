//! OTLP export (`--features otlp`): the real binary sends the spans of a
//! request to a collector over OTLP/HTTP, in the caller's trace. The
//! collector here is a plain socket that records what it is sent.

use hyper::StatusCode;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the collector was sent: (request head, body) of each post.
type Posts = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// Accepts OTLP/HTTP posts and keeps each.
async fn collector() -> (String, Posts) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/v1/traces", listener.local_addr().expect("addr"));
    let posts: Posts = Arc::default();
    let kept = posts.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < end + 4 + length {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body = buf[end + 4..end + 4 + length].to_vec();
                    buf.drain(..end + 4 + length);
                    kept.lock().expect("lock").push((head, body));
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                    if stream.write_all(ok).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, posts)
}

// Multi-threaded: the collector must keep reading while the test waits for
// the server to exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_of_a_request_reach_the_collector_in_the_callers_trace() {
    let (endpoint, posts) = collector().await;
    let dir = std::env::temp_dir().join(format!("hotdeal-otlp-{}", uuid::Uuid::new_v4()));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hotdeal"))
        .args(["--otlp-endpoint", &endpoint, "serve", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(&dir)
        .env(
            "HOTDEAL_JWT_SECRET",
            "otlp-test-secret-of-at-least-32-bytes",
        )
        .env("HOTDEAL_ADMIN_LISTEN", "off")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn hotdeal");
    let client = crate::support::Client::new(&format!("http://127.0.0.1:{port}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if client.send("GET", "/health", None, None).await.is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller = format!("00-{trace}-00f067aa0ba902b7-01");
    let r = client
        .send_with("GET", "/products/deals", &[("traceparent", &caller)])
        .await
        .expect("up");
    assert_eq!(r.status, StatusCode::OK);
    let answered = r.headers["traceparent"].to_str().expect("ascii").to_owned();
    assert!(answered.starts_with(&format!("00-{trace}-")), "{answered}");

    // A graceful stop flushes the queued spans.
    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(stopped.success());
    tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");

    let posts = posts.lock().expect("lock").clone();
    assert!(!posts.is_empty(), "nothing reached the collector");
    let trace_bytes: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&trace[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    let span_id: Vec<u8> = (0..8)
        .map(|i| u8::from_str_radix(&answered[36 + 2 * i..38 + 2 * i], 16).expect("hex"))
        .collect();
    let all: Vec<u8> = posts.iter().flat_map(|(_, b)| b.clone()).collect();
    assert!(
        posts
            .iter()
            .all(|(head, _)| head.starts_with("post /v1/traces")
                && head.contains("application/x-protobuf")),
        "OTLP/HTTP protobuf posts"
    );
    let has = |needle: &[u8]| all.windows(needle.len()).any(|w| w == needle);
    assert!(has(&trace_bytes), "the caller's trace id was exported");
    assert!(has(&span_id), "the answered span id was exported");
    assert!(has(b"/products/deals"), "the request span names its route");
    assert!(has(b"hotdeal"), "the service name");
    std::fs::remove_dir_all(dir).ok();
}
