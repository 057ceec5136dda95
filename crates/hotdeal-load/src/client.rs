//! A lean HTTP/1.1 client: one keep-alive connection per VU, like k6.
//!
//! The generator shares the machine's two cores with the server it
//! measures, so every microsecond it spends is taken from the server. Hence:
//!
//! * `hyper::client::conn::http1` directly, not a pooled client: a VU owns
//!   its connection, so there is no pool lock, no checkout and no key hash.
//! * The connection future is polled *inline* by the task that sends the
//!   request (`select!` over the exchange and the connection) instead of by
//!   a spawned task: a request then costs no cross-task wake-up, and an idle
//!   VU costs nothing at all.
//! * Requests are assembled from pre-built parts ([`ReqHead`]: method, URI,
//!   header map with `Host`, `Content-Type` and the bearer token; the body a
//!   shared [`Bytes`]), so a request allocates only what hyper itself needs.
//!
//! Latency starts when the request is handed to the connection, or at the
//! *scheduled* start given by an open-model executor, so a late start counts
//! as latency (no coordinated omission).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Errors of the client itself (not HTTP statuses, which are answers).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("base URL `{url}` is not of the form http://HOST[:PORT][/PREFIX]: {why}")]
    BadBaseUrl { url: String, why: &'static str },
    #[error("no base URL given")]
    NoBaseUrl,
    #[error("cannot resolve `{host}`: {source}")]
    Resolve { host: String, source: io::Error },
    #[error("invalid request path `{0}`")]
    BadPath(String),
    #[error("invalid header value for {0}")]
    BadHeader(&'static str),
}

/// A base URL taken apart, before any name is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BaseUrl {
    /// `host[:port]` as written, for the `Host` header.
    authority: String,
    /// `host:port`, the port defaulted to 80, for the resolver.
    host_port: String,
    /// `""` or e.g. `/api`, without a trailing slash.
    prefix: String,
}

impl BaseUrl {
    /// Checks the form only — `http://HOST[:PORT][/PREFIX]` — so a typo in
    /// one of several URLs is refused while the command line is parsed,
    /// with the reason, instead of as a resolver error later.
    fn parse(url: &str) -> Result<Self, ClientError> {
        let bad = |why| ClientError::BadBaseUrl {
            url: url.to_string(),
            why,
        };
        if url.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(bad("it contains blanks"));
        }
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| bad("only http:// is supported"))?;
        if rest.contains(['?', '#']) {
            return Err(bad("a query or fragment has no place in a base URL"));
        }
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(bad("the host is missing"));
        }
        // `[v6]:port`, `[v6]`, `host:port` or `host`.
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            match v6.split_once(']') {
                Some((h, "")) => (h, None),
                Some((h, p)) => (
                    h,
                    Some(
                        p.strip_prefix(':')
                            .ok_or_else(|| bad("junk after the host"))?,
                    ),
                ),
                None => return Err(bad("unclosed `[` in the host")),
            }
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("the host is missing"));
        }
        let port = match port {
            None => 80,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?,
        };
        let host_port = if authority.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Ok(Self {
            authority: authority.to_string(),
            host_port,
            prefix: prefix.to_string(),
        })
    }
}

/// `--base-url` value parser: one URL or a comma-separated list, each
/// checked for form (not resolved).
pub fn parse_base_urls(input: &str) -> Result<BaseUrls, String> {
    let urls: Vec<String> = input
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            BaseUrl::parse(u)
                .map(|_| u.trim_end_matches('/').to_string())
                .map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    if urls.is_empty() {
        return Err(ClientError::NoBaseUrl.to_string());
    }
    Ok(BaseUrls(urls))
}

/// A parsed `--base-url` value: one or more URLs. A newtype, not a `Vec`,
/// so each occurrence of the flag is one value (clap collects repeated
/// flags into a `Vec<BaseUrls>`, which [`BaseUrls::flatten`] joins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrls(pub Vec<String>);

impl BaseUrls {
    /// All URLs of every occurrence of the flag, in order. The same URL may
    /// appear twice: listing one instance twice is how a single server is
    /// made to look like two behind a balancer.
    pub fn flatten(all: &[BaseUrls]) -> Vec<String> {
        all.iter().flat_map(|b| b.0.iter().cloned()).collect()
    }
}

/// The server under test: where to connect and what to put in `Host`.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub base_url: String,
    /// Position in the run's list of base URLs: which part of a
    /// multi-target [`ReqHead`] a connection to this target sends.
    pub index: usize,
    host: HeaderValue,
    /// Path prefix of the base URL (`""` or e.g. `/api`), prepended to
    /// every request path.
    prefix: String,
}

impl Target {
    /// Parses `http://host[:port][/prefix]` and resolves the host once, so
    /// no VU ever does a DNS lookup.
    pub async fn resolve(base_url: &str) -> Result<Self, ClientError> {
        let url = BaseUrl::parse(base_url)?;
        let authority = url.authority.as_str();
        let addr = tokio::net::lookup_host(&url.host_port)
            .await
            .map_err(|source| ClientError::Resolve {
                host: authority.to_string(),
                source,
            })?
            .next()
            .ok_or_else(|| ClientError::Resolve {
                host: authority.to_string(),
                source: io::Error::new(io::ErrorKind::NotFound, "no address"),
            })?;
        let host = HeaderValue::from_str(authority).map_err(|_| ClientError::BadHeader("Host"))?;
        Ok(Self {
            addr,
            base_url: base_url.trim_end_matches('/').to_string(),
            index: 0,
            host,
            prefix: url.prefix,
        })
    }

    fn part(&self, path: &str, token: Option<&str>, json: bool) -> Result<HeadPart, ClientError> {
        let full = format!("{}{}", self.prefix, path);
        let uri: Uri = full
            .parse()
            .map_err(|_| ClientError::BadPath(full.clone()))?;
        let mut headers = HeaderMap::with_capacity(4);
        headers.insert(HOST, self.host.clone());
        if json {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if let Some(t) = token {
            let v = HeaderValue::from_str(&format!("Bearer {t}"))
                .map_err(|_| ClientError::BadHeader("Authorization"))?;
            headers.insert(AUTHORIZATION, v);
        }
        Ok(HeadPart { uri, headers })
    }

    /// A request head for `path` (e.g. `/orders`) on this target only, with
    /// `Host`, a JSON content type when `json`, and the bearer token when
    /// given.
    pub fn head(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        json: bool,
    ) -> Result<ReqHead, ClientError> {
        Ok(ReqHead {
            method,
            first: self.part(path, token, json)?,
            rest: Vec::new(),
        })
    }
}

/// Every base URL of a run, resolved; never empty. The measured phase
/// spreads requests over all of them; setup and the books start at the
/// first.
#[derive(Debug, Clone)]
pub struct Targets {
    first: Arc<Target>,
    rest: Vec<Arc<Target>>,
}

impl Targets {
    pub async fn resolve(urls: &[String]) -> Result<Self, ClientError> {
        let mut all = Vec::with_capacity(urls.len());
        for (index, url) in urls.iter().enumerate() {
            let mut t = Target::resolve(url).await?;
            t.index = index;
            all.push(Arc::new(t));
        }
        let mut it = all.into_iter();
        let first = it.next().ok_or(ClientError::NoBaseUrl)?;
        Ok(Self {
            first,
            rest: it.collect(),
        })
    }

    pub fn first(&self) -> &Arc<Target> {
        &self.first
    }

    pub fn len(&self) -> usize {
        1 + self.rest.len()
    }

    /// Target `i`, wrapping around, so any index picks a target.
    pub fn get(&self, i: usize) -> &Arc<Target> {
        let i = i % self.len();
        if i == 0 {
            &self.first
        } else {
            self.rest.get(i - 1).unwrap_or(&self.first)
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Target>> {
        std::iter::once(&self.first).chain(self.rest.iter())
    }

    /// The base URLs as given, comma-separated (the flag's own syntax).
    pub fn base_urls(&self) -> String {
        self.iter()
            .map(|t| t.base_url.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A head for `path` with one part per target, so whichever target a
    /// VU's round robin picks gets its own `Host` and path prefix.
    pub fn head(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        json: bool,
    ) -> Result<ReqHead, ClientError> {
        Ok(ReqHead {
            method,
            first: self.first.part(path, token, json)?,
            rest: self
                .rest
                .iter()
                .map(|t| t.part(path, token, json))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// What differs between the targets of one request: URI (path prefix)
/// and headers (`Host`).
#[derive(Debug, Clone)]
struct HeadPart {
    uri: Uri,
    headers: HeaderMap,
}

/// A pre-built request head, one part per target; cloning its parts into a
/// request is cheap (`Uri` and `HeaderValue` are reference-counted byte
/// strings). `first` is separate so a head is never empty by construction.
#[derive(Debug, Clone)]
pub struct ReqHead {
    method: Method,
    first: HeadPart,
    rest: Vec<HeadPart>,
}

impl ReqHead {
    /// The same head with one more header (e.g. `Queue-Token`).
    pub fn with_header(mut self, name: &'static str, value: &str) -> Result<Self, ClientError> {
        let v = HeaderValue::from_str(value).map_err(|_| ClientError::BadHeader(name))?;
        for part in std::iter::once(&mut self.first).chain(self.rest.iter_mut()) {
            part.headers.insert(name, v.clone());
        }
        Ok(self)
    }

    /// The part for target `index`. A head built by [`Target::head`] has
    /// one part, valid for that target whatever its index, hence the
    /// fallback to the first.
    fn part(&self, index: usize) -> &HeadPart {
        match index {
            0 => &self.first,
            i => self.rest.get(i - 1).unwrap_or(&self.first),
        }
    }

    fn build(&self, index: usize, body: Bytes) -> Request<Full<Bytes>> {
        let part = self.part(index);
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = part.uri.clone();
        *req.headers_mut() = part.headers.clone();
        req
    }
}

/// How an exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A full response was received (any status).
    Response,
    /// No full response within the timeout; the request may have been
    /// processed by the server.
    Timeout,
    /// The TCP connection could not be opened: the request never left.
    ConnectFailed,
    /// The connection broke during the exchange; the request may have been
    /// processed by the server.
    Broken,
}

/// The answer to one request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub outcome: Outcome,
    /// HTTP status, 0 without a response (k6's convention).
    pub status: u16,
    pub body: Bytes,
    /// The `error` field of a JSON error body, as a slice of `body`.
    code: Option<Bytes>,
    /// From the (scheduled) start to the end of the body.
    pub latency: Duration,
    /// When the exchange ended.
    pub done: Instant,
}

impl Reply {
    pub(crate) fn failed(outcome: Outcome, start: Instant) -> Self {
        let done = Instant::now();
        Self {
            outcome,
            status: 0,
            body: Bytes::new(),
            code: None,
            latency: done - start,
            done,
        }
    }

    /// `error` of the contract's error body (`{"error": "CODE", …}`).
    pub fn error_code(&self) -> Option<&str> {
        self.code
            .as_deref()
            .and_then(|b| std::str::from_utf8(b).ok())
    }

    /// Whether the server may have acted on the request without us seeing
    /// the answer (a timeout or a broken connection): the books allow for it.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self.outcome, Outcome::Timeout | Outcome::Broken)
    }

    pub fn json<'a, T: serde::Deserialize<'a>>(&'a self) -> Option<T> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Extracts the `error` code of an error body without copying it.
fn error_code_of(body: &Bytes) -> Option<Bytes> {
    #[derive(serde::Deserialize)]
    struct ErrorBody<'a> {
        #[serde(borrow)]
        error: &'a str,
    }
    let parsed: ErrorBody<'_> = serde_json::from_slice(body).ok()?;
    // `&str` borrowed from the body only when it had no escapes: then it is
    // a sub-slice and can be shared; otherwise copy (never happens for
    // UPPER_SNAKE codes).
    let s = parsed.error.as_bytes();
    let inside = body.as_ptr() as usize <= s.as_ptr() as usize
        && s.as_ptr() as usize + s.len() <= body.as_ptr() as usize + body.len();
    Some(if inside {
        body.slice_ref(s)
    } else {
        Bytes::copy_from_slice(s)
    })
}

/// Signalled each time a request has been completely written and flushed
/// to the socket. Only the ordered (fifo) executor listens, to send user
/// *i*'s request strictly after user *i−1*'s left.
pub type WriteSignal = Arc<Notify>;

/// The socket, wrapped so a flush after a write can be signalled.
pub struct SignalIo {
    inner: TokioIo<TcpStream>,
    signal: Option<WriteSignal>,
    wrote: bool,
}

impl hyper::rt::Read for SignalIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for SignalIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.wrote = true;
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.wrote = true;
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        if matches!(r, Poll::Ready(Ok(()))) && this.wrote {
            this.wrote = false;
            if let Some(s) = &this.signal {
                s.notify_one();
            }
        }
        r
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// An open connection: the request sender and the connection future that
/// drives the socket (polled by whoever sends, see the module doc).
struct Live {
    sender: SendRequest<Full<Bytes>>,
    conn: Pin<Box<Connection<SignalIo, Full<Bytes>>>>,
}

/// Why an exchange on a live connection failed.
enum ExchangeError {
    /// The connection was found closed before the request was handed over
    /// (an idle keep-alive closed by the server): retry on a new one.
    Stale,
    /// It broke after the request was handed over.
    Broken,
}

impl Live {
    async fn open(addr: SocketAddr, signal: Option<WriteSignal>) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        // Requests are small and latency-bound: never wait for Nagle.
        stream.set_nodelay(true)?;
        let io = SignalIo {
            inner: TokioIo::new(stream),
            signal,
            wrote: false,
        };
        let (sender, conn) = http1::handshake(io).await.map_err(io::Error::other)?;
        Ok(Self {
            sender,
            conn: Box::pin(conn),
        })
    }

    /// Waits until the connection can take a request, driving it meanwhile.
    async fn ready(&mut self) -> Result<(), ExchangeError> {
        let Live { sender, conn } = self;
        tokio::select! {
            biased;
            // The connection first: a keep-alive the server closed while it
            // sat idle (hotdeal's idle timeout) shows its end of file here,
            // before a request is written into it. Asked first, the sender
            // says "ready" from its own state without reading the socket.
            _ = conn.as_mut() => Err(ExchangeError::Stale),
            r = sender.ready() => r.map_err(|_| ExchangeError::Stale),
        }
    }

    async fn exchange(
        &mut self,
        req: Request<Full<Bytes>>,
    ) -> Result<(u16, bool, Bytes), ExchangeError> {
        let Live { sender, conn } = self;
        let work = async {
            let resp = sender
                .send_request(req)
                .await
                .map_err(|_| ExchangeError::Broken)?;
            let status = resp.status().as_u16();
            let close = resp
                .headers()
                .get(hyper::header::CONNECTION)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|_| ExchangeError::Broken)?
                .to_bytes();
            Ok((status, close, body))
        };
        tokio::pin!(work);
        tokio::select! {
            biased;
            r = &mut work => r,
            _ = conn.as_mut() => {
                // The connection ended (e.g. the server closed after this
                // response): what it delivered is already in the channel, so
                // a short wait collects it; nothing more will come.
                match tokio::time::timeout(Duration::from_secs(1), work).await {
                    Ok(Ok((status, _, body))) => Ok((status, true, body)),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(ExchangeError::Broken),
                }
            }
        }
    }
}

/// A VU's connection to the target, re-opened on demand.
pub struct Conn {
    addr: SocketAddr,
    /// The target's index: which part of a [`ReqHead`] this connection sends.
    index: usize,
    live: Option<Live>,
    signal: Option<WriteSignal>,
}

impl Conn {
    pub fn new(target: &Target) -> Self {
        Self {
            addr: target.addr,
            index: target.index,
            live: None,
            signal: None,
        }
    }

    /// A connection that signals each completely written request.
    pub fn with_write_signal(target: &Target, signal: WriteSignal) -> Self {
        Self {
            addr: target.addr,
            index: target.index,
            live: None,
            signal: Some(signal),
        }
    }

    /// Opens the connection now (the ordered executor connects every VU
    /// before the first request, so connecting cannot reorder them).
    pub async fn connect(&mut self) -> io::Result<()> {
        if self.live.is_none() {
            self.live = Some(Live::open(self.addr, self.signal.clone()).await?);
        }
        Ok(())
    }

    /// Sends one request and reads the whole response.
    ///
    /// `scheduled`: the instant the iteration was due (open model); latency
    /// and the timeout then run from it. Otherwise they run from the moment
    /// the connection is ready, as k6's `http_req_duration` excludes
    /// connecting.
    pub async fn send(
        &mut self,
        head: &ReqHead,
        body: Bytes,
        timeout: Duration,
        scheduled: Option<Instant>,
    ) -> Reply {
        let outer_start = scheduled.unwrap_or_else(Instant::now);
        let deadline = outer_start + timeout;
        // One retry for a keep-alive connection the server closed while idle:
        // that is not a failure of the request, which was never sent.
        for attempt in 0..2 {
            if self.live.is_none() {
                match tokio::time::timeout_at(deadline, Live::open(self.addr, self.signal.clone()))
                    .await
                {
                    Ok(Ok(live)) => self.live = Some(live),
                    Ok(Err(_)) => return Reply::failed(Outcome::ConnectFailed, outer_start),
                    Err(_) => return Reply::failed(Outcome::Timeout, outer_start),
                }
            }
            let Some(live) = self.live.as_mut() else {
                continue;
            };
            match tokio::time::timeout_at(deadline, live.ready()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) if attempt == 0 => {
                    self.live = None;
                    continue;
                }
                Ok(Err(_)) => {
                    self.live = None;
                    return Reply::failed(Outcome::ConnectFailed, outer_start);
                }
                Err(_) => {
                    self.live = None;
                    return Reply::failed(Outcome::Timeout, outer_start);
                }
            }
            let start = scheduled.unwrap_or_else(Instant::now);
            let deadline = start + timeout;
            return match tokio::time::timeout_at(
                deadline,
                live.exchange(head.build(self.index, body)),
            )
            .await
            {
                Ok(Ok((status, close, body))) => {
                    if close {
                        self.live = None;
                    }
                    let code = if status >= 400 {
                        error_code_of(&body)
                    } else {
                        None
                    };
                    let done = Instant::now();
                    Reply {
                        outcome: Outcome::Response,
                        status,
                        body,
                        code,
                        latency: done - start,
                        done,
                    }
                }
                Ok(Err(ExchangeError::Stale)) | Ok(Err(ExchangeError::Broken)) => {
                    // A response may be half-read: the connection is unusable.
                    self.live = None;
                    Reply::failed(Outcome::Broken, start)
                }
                Err(_) => {
                    self.live = None;
                    Reply::failed(Outcome::Timeout, start)
                }
            };
        }
        Reply::failed(Outcome::ConnectFailed, outer_start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn base_urls() {
        let t = Target::resolve("http://127.0.0.1:18080")
            .await
            .expect("valid");
        assert_eq!(
            t.addr,
            "127.0.0.1:18080".parse::<SocketAddr>().expect("addr")
        );
        let h = t.head(Method::GET, "/health", None, false).expect("head");
        assert_eq!(h.first.uri.to_string(), "/health");
        assert_eq!(
            h.first.headers.get(HOST).map(|v| v.as_bytes()),
            Some(&b"127.0.0.1:18080"[..])
        );

        let t = Target::resolve("http://127.0.0.1:9/api/")
            .await
            .expect("valid");
        let h = t
            .head(Method::POST, "/orders", Some("tok"), true)
            .expect("head");
        assert_eq!(h.first.uri.to_string(), "/api/orders");
        assert_eq!(
            h.first.headers.get(AUTHORIZATION).map(|v| v.as_bytes()),
            Some(&b"Bearer tok"[..])
        );

        let t = Target::resolve("http://localhost").await.expect("valid");
        assert_eq!(t.addr.port(), 80);
        assert!(Target::resolve("https://127.0.0.1").await.is_err());
        assert!(Target::resolve("http://").await.is_err());
    }

    /// A server that closes a keep-alive connection once it has sat idle
    /// for a while, without saying so beforehand (as hotdeal's idle timeout
    /// does): the next request on that connection must go out on a new
    /// one, not fail.
    #[tokio::test]
    async fn a_keep_alive_closed_while_idle_is_replaced_not_reported() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await;
                    // Idle for a moment, then closed.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                });
            }
        });
        let target = Target::resolve(&format!("http://{addr}"))
            .await
            .expect("target");
        let head = target
            .head(Method::GET, "/health", None, false)
            .expect("head");
        let mut conn = Conn::new(&target);
        for round in 0..3 {
            let reply = conn
                .send(&head, Bytes::new(), Duration::from_secs(2), None)
                .await;
            assert_eq!(
                (reply.outcome, reply.status),
                (Outcome::Response, 200),
                "round {round}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    #[test]
    fn base_url_forms() {
        let u = BaseUrl::parse("http://127.0.0.1:18080/api/").expect("valid");
        assert_eq!(
            (
                u.authority.as_str(),
                u.host_port.as_str(),
                u.prefix.as_str()
            ),
            ("127.0.0.1:18080", "127.0.0.1:18080", "/api")
        );
        let u = BaseUrl::parse("http://[::1]:9").expect("valid");
        assert_eq!(u.host_port, "[::1]:9");
        let u = BaseUrl::parse("http://[::1]").expect("valid");
        assert_eq!(u.host_port, "[::1]:80");
        let u = BaseUrl::parse("http://example.com").expect("valid");
        assert_eq!(u.host_port, "example.com:80");
        for bad in [
            "127.0.0.1:8080",
            "http://a b",
            "http://[::1",
            "http://[::1]x",
            "http://h:99999",
            "http://user@h",
            "http://h#x",
        ] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_base_urls("http://a:1, http://b:2/,").map(|b| b.0),
            Ok(vec!["http://a:1".to_string(), "http://b:2".to_string()])
        );
        let err = parse_base_urls("http://a:1,ftp://b").expect_err("refused");
        assert!(
            err.contains("`ftp://b`") && err.contains("only http://"),
            "{err}"
        );
    }

    /// A head built for several targets carries each one's `Host` and
    /// prefix; a connection picks the part of its own target.
    #[tokio::test]
    async fn one_head_part_per_target() {
        let urls = [
            "http://127.0.0.1:18081".to_string(),
            "http://127.0.0.1:18082/api".to_string(),
        ];
        let targets = Targets::resolve(&urls).await.expect("targets");
        assert_eq!(targets.len(), 2);
        assert_eq!(targets.get(1).index, 1);
        assert_eq!(targets.get(2).index, 0, "indices wrap");
        assert_eq!(targets.base_urls(), urls.join(","));
        let head = targets
            .head(Method::POST, "/orders", Some("tok"), true)
            .expect("head")
            .with_header("queue-token", "q")
            .expect("header");
        let r0 = head.build(0, Bytes::new());
        let r1 = head.build(1, Bytes::new());
        assert_eq!(r0.uri().to_string(), "/orders");
        assert_eq!(r1.uri().to_string(), "/api/orders");
        assert_eq!(
            r1.headers().get(HOST).map(|v| v.as_bytes()),
            Some(&b"127.0.0.1:18082"[..])
        );
        for r in [&r0, &r1] {
            assert_eq!(
                r.headers().get("queue-token").map(|v| v.as_bytes()),
                Some(&b"q"[..])
            );
        }
        // A head of one target serves that target whatever its index.
        let single = targets
            .get(1)
            .head(Method::GET, "/x", None, false)
            .expect("head");
        assert_eq!(single.build(1, Bytes::new()).uri().to_string(), "/api/x");
        assert!(Targets::resolve(&[]).await.is_err());
    }

    #[test]
    fn error_codes_are_sliced_from_the_body() {
        let body = Bytes::from_static(br#"{"error":"COUPON_SOLD_OUT","message":"sold out"}"#);
        let code = error_code_of(&body).expect("code");
        assert_eq!(&code[..], b"COUPON_SOLD_OUT");
        assert!(error_code_of(&Bytes::from_static(b"not json")).is_none());
        assert!(error_code_of(&Bytes::from_static(br#"{"message":"x"}"#)).is_none());
    }
}
