//! A counting HTTP stub for the integration tests: `GET /health` answers
//! 200; every other path answers like a server without that route
//! (404 `NOT_FOUND`). The test compares the generator's counts with it.

#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use clap::Parser;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use hotdeal_load::LoadArgs;

#[derive(Default)]
pub struct Stub {
    pub health: AtomicU64,
    pub other: AtomicU64,
}

impl Stub {
    pub fn health(&self) -> u64 {
        self.health.load(Ordering::SeqCst)
    }
}

pub async fn start() -> (SocketAddr, Arc<Stub>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stub = Arc::new(Stub::default());
    let st = stub.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let st = st.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let st = st.clone();
                    async move {
                        let resp = if req.uri().path() == "/health" {
                            st.health.fetch_add(1, Ordering::SeqCst);
                            Response::new(Full::new(Bytes::from_static(
                                br#"{"status":"healthy","service":"gateway"}"#,
                            )))
                        } else {
                            st.other.fetch_add(1, Ordering::SeqCst);
                            let mut r = Response::new(Full::new(Bytes::from_static(
                                br#"{"error":"NOT_FOUND","message":"no such route"}"#,
                            )));
                            *r.status_mut() = StatusCode::NOT_FOUND;
                            r
                        };
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, stub)
}

/// How the server binary embeds the arguments: as a subcommand's args.
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: LoadArgs,
}

pub fn args(list: &[&str]) -> LoadArgs {
    let mut v = vec!["hotdeal-load-test"];
    v.extend_from_slice(list);
    Cli::try_parse_from(v).expect("arguments parse").args
}

pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "hotdeal-load-{name}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

pub fn summary(dir: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("summary.json")).expect("summary.json written");
    serde_json::from_str(&text).expect("summary.json parses")
}
