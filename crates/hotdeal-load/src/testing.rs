//! A tiny counting HTTP server for the crate's own tests: it answers every
//! request, counts them and remembers their paths in arrival order, so a
//! test can compare what the generator reports with what a server saw —
//! without needing the hotdeal server.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

#[derive(Default)]
pub struct StubState {
    pub count: AtomicU64,
    pub paths: Mutex<Vec<String>>,
}

impl StubState {
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    pub fn paths(&self) -> Vec<String> {
        self.paths.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

/// Starts the stub on 127.0.0.1 port 0. `/slow…` paths answer after
/// `slow`; everything else at once.
pub async fn start_stub(slow: Duration) -> std::io::Result<(SocketAddr, Arc<StubState>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let state = Arc::new(StubState::default());
    let st = state.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let st = st.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let st = st.clone();
                    async move {
                        st.count.fetch_add(1, Ordering::SeqCst);
                        let path = req.uri().to_string();
                        if let Ok(mut p) = st.paths.lock() {
                            p.push(path.clone());
                        }
                        if path.starts_with("/slow") {
                            tokio::time::sleep(slow).await;
                        }
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                            br#"{"status":"healthy","service":"gateway"}"#,
                        ))))
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok((addr, state))
}
