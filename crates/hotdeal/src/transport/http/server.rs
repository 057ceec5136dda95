//! The accept loop: HTTP/1.1 with keep-alive, and HTTP/2 over cleartext
//! with prior knowledge (h2c, what the gateway speaks to the services: one
//! multiplexed connection instead of a pool), told apart by the first
//! bytes of the connection. Bounded in every way a client can hold the
//! server's resources.
//!
//! - **Connections** are capped (`max_connections`, a `Semaphore` as in
//!   mini-redis). Past the cap a new connection gets a canned 503
//!   `OVERLOADED` written straight to the socket and is closed at once: no
//!   task, no hyper state, so a flood of connections costs a file
//!   descriptor for a moment and nothing more, while the connections
//!   already open keep working.
//! - **Request heads** must arrive within `header_timeout`. This is hyper's
//!   own `header_read_timeout` (it needs a timer, hence `TokioTimer`). In
//!   hyper 1.12 the timer starts as soon as the connection waits for a
//!   head — on accept, and again after each response on a kept-alive
//!   connection — not at the first byte; when it fires hyper closes the
//!   connection without an answer (there is no 408 for a head that never
//!   came). So it also bounds how long an idle kept-alive connection lives.
//!   HTTP/2 has no such timer; its heads arrive in frames, and the idle
//!   watchdog below covers a peer that goes quiet. Its header block is
//!   capped at the same `MAX_HEADER_BYTES`.
//! - **Idle connections** — no request running and no byte read or written
//!   for `idle_timeout` — are closed by a per-connection watchdog. It is what
//!   ends a kept-alive connection that sits idle (when shorter than the head
//!   timeout), a stalled half-sent head, and a client that stopped reading
//!   its response (hyper has no write timeout).
//! - **Request bodies** are bounded by the router (`buffer_body` in the
//!   parent module): read within `body_timeout` or 408, before the request
//!   takes an in-flight slot.
//! - **Transport-level refusals** (400 for bytes that are not HTTP, 414,
//!   431 for a head over `MAX_HEADER_BYTES`) are written by hyper itself as
//!   a bare status line: hyper 1.12 answers parse errors from
//!   `role::Server::on_error` with a head and no body, and offers no hook to
//!   supply one, so those answers cannot carry the contract's JSON error
//!   body. Everything that reaches the router does.
//!
//! Shutdown stops accepting, lets every open connection finish the request
//! it is running (idle ones close at once) and returns when all are gone.

use super::HttpLimits;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioExecutor;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// The largest request head (request line and headers) hyper will read;
/// past it hyper answers 431 and closes. Bearer tokens and the few headers
/// of this API fit many times over, and a small cap keeps the per-connection
/// read buffer small when thousands of connections are open.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Streams one HTTP/2 connection may run at once.
pub const H2_MAX_STREAMS: u32 = 1024;

/// How long the accept loop pauses after an error that is not about one
/// connection (e.g. out of file descriptors), so it does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // The auto builder has no `max_header_size`: capping the read
        // buffer caps the head the same way (hyper answers 431 when a head
        // does not fit), and bodies stream through it in pieces.
        .max_buf_size(MAX_HEADER_BYTES)
        .keep_alive(true);
    // A gateway sends all its clients' calls over one connection per
    // address, so hyper's default of 200 streams would cap a service at 200
    // calls in flight from each gateway; `max_in_flight` is what bounds the
    // work, whichever connections it arrives on.
    http.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .max_concurrent_streams(H2_MAX_STREAMS);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; pausing");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    }
                }
            },
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            refuse(stream);
            continue;
        };
        // Answers are small and written whole; don't let Nagle hold them.
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Tracked {
            inner: stream,
            activity: activity.clone(),
        });
        let service = Counted {
            router: TowerToHyperService::new(router.clone()),
            activity: activity.clone(),
            peer,
        };
        let conn = graceful.watch(http.serve_connection(io, service).into_owned());
        let idle = limits.idle_timeout;
        tokio::spawn(async move {
            tokio::select! {
                result = conn => {
                    if let Err(e) = result {
                        // Header timeouts, resets, bytes that are not HTTP:
                        // the client's problem, not worth more than debug.
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
                () = activity.idle_for(idle) => {
                    tracing::debug!("closing an idle connection");
                }
            }
            drop(permit);
        });
    }
    // Dropping the listener makes the kernel refuse new connections while
    // the open ones drain.
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// The canned answer to a connection past the cap.
static REFUSAL: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let body = r#"{"error":"OVERLOADED","message":"too many open connections; retry shortly"}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: {}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        super::error::RETRY_AFTER_SECS,
        body.len()
    )
    .into_bytes()
});

/// Writes the 503 without waiting (a fresh socket's send buffer is empty,
/// so one non-blocking write takes it whole) and closes the connection.
/// If the client already sent its request, the close may reach it as a
/// reset instead; either way it learns at once that it was refused.
fn refuse(stream: TcpStream) {
    if let Ok(mut socket) = stream.into_std() {
        let _ = io::Write::write(&mut socket, &REFUSAL);
    }
}

/// Errors of one connection that say nothing about the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// The router as a hyper service that tells `activity` while a request is
/// being handled, so the idle watchdog never cuts a request short.
#[derive(Clone)]
struct Counted {
    router: TowerToHyperService<Router>,
    activity: Arc<Activity>,
    /// The client's address, handed to handlers as axum's `ConnectInfo`
    /// (the gateway limits rates per IP).
    peer: SocketAddr,
}

impl hyper::service::Service<hyper::Request<Incoming>> for Counted {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, mut req: hyper::Request<Incoming>) -> Self::Future {
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(self.peer));
        let running = Running::start(self.activity.clone());
        let answer = self.router.call(req);
        Box::pin(async move {
            let res = answer.await;
            drop(running);
            res
        })
    }
}

/// What the idle watchdog of one connection knows about it.
struct Activity {
    /// The connection's start; `last` counts from here.
    epoch: Instant,
    /// Milliseconds from `epoch` to the last byte read or written, or the
    /// last request's end. An atomic because reads and writes happen in
    /// the connection's task while the watchdog only looks.
    last: AtomicU64,
    /// Requests being handled (more than one only when pipelined).
    running: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            last: AtomicU64::new(0),
            running: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(now, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }

    /// Resolves once the connection has had no request running and no
    /// bytes moving for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let quiet = self.quiet_for();
            let busy = self.running.load(Ordering::Acquire) > 0;
            if !busy && quiet >= limit {
                return;
            }
            let wait = if busy { limit } else { limit - quiet };
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
    }
}

/// Marks one request as running for as long as it lives.
struct Running(Arc<Activity>);

impl Running {
    fn start(activity: Arc<Activity>) -> Self {
        activity.running.fetch_add(1, Ordering::AcqRel);
        Self(activity)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.touch();
        self.0.running.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A socket that records when bytes last moved through it.
struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.touch();
        }
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        res
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
