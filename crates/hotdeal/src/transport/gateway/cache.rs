//! A micro-cache of the public catalogue reads at the edge. When a deal
//! opens, most requests are the same few pages (the running deals, one
//! deal, its product); answering them from the gateway's memory for a few
//! tens of milliseconds saves the hop to the product service and its HTTP/2
//! framing, which is most of what a read costs there.
//!
//! The contract allows exactly this much staleness and no more: stock
//! counts on product, stock and deal pages may trail orders by 100 ms, so
//! `POST /orders` leaves the cache alone; any other write answered 2xx
//! through this gateway that can change a catalogue page (a product or
//! stock edit, a new deal, a cancel or payment) empties it before the
//! answer leaves, so the writer's next read sees its change; a write
//! through another gateway is seen within the cache's age, far inside the
//! contract's 1 s between instances.

use axum::body::Body;
use axum::body::Bytes;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Pages kept at most: distinct URLs of the catalogue reads (pages and
/// ids); past it the cache starts over rather than grow with a crawl.
const MAX_ENTRIES: usize = 4096;

/// The catalogue reads: public and the same for every caller.
const CACHEABLE: [&str; 5] = [
    "/products",
    "/products/deals",
    "/products/deals/{deal_id}",
    "/products/{product_id}",
    "/products/{product_id}/stock",
];

struct Entry {
    at: Instant,
    generation: u64,
    content_type: Option<HeaderValue>,
    body: Bytes,
}

/// Answers of the catalogue reads, each kept for `ttl`.
pub struct MicroCache {
    ttl: Duration,
    /// Bumped by every write that can change a page: an entry of an older
    /// generation is never served, and an answer read before a write is
    /// not stored after it.
    generation: AtomicU64,
    /// A std Mutex: held for a lookup or an insert, never across an await.
    entries: Mutex<HashMap<String, Entry>>,
}

/// What the cache makes of one request.
pub enum Lookup {
    /// Not a cached kind of request.
    Pass,
    /// Served from memory.
    Hit(Response),
    /// A cacheable read not in the cache: forward it, then [`MicroCache::keep`]
    /// its answer under `key`, read at `generation`.
    Miss { key: String, generation: u64 },
}

impl MicroCache {
    /// A cache keeping answers for `ttl` (zero: off).
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            generation: AtomicU64::new(0),
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn lookup(&self, method: &Method, template: &str, path_and_query: &str) -> Lookup {
        if self.ttl.is_zero() || method != Method::GET || !CACHEABLE.contains(&template) {
            return Lookup::Pass;
        }
        let generation = self.generation.load(Ordering::Acquire);
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = entries.get(path_and_query) {
            if e.generation == generation && e.at.elapsed() < self.ttl {
                let mut res = Response::new(Body::from(e.body.clone()));
                if let Some(ct) = &e.content_type {
                    res.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
                }
                return Lookup::Hit(res);
            }
        }
        Lookup::Miss {
            key: path_and_query.to_owned(),
            generation,
        }
    }

    /// Keeps a 200 answer read at `generation`, unless a write came since.
    pub fn keep(
        &self,
        key: String,
        generation: u64,
        status: StatusCode,
        res: &Response,
        body: &Bytes,
    ) {
        if status != StatusCode::OK || self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
            entries.clear();
        }
        entries.insert(
            key,
            Entry {
                at: Instant::now(),
                generation,
                content_type: res.headers().get(header::CONTENT_TYPE).cloned(),
                body: body.clone(),
            },
        );
    }

    /// Whether a write answered `status` on `template` must empty the
    /// cache: anything but an order (whose stock effect may trail) that
    /// succeeded on a catalogue or order path.
    pub fn invalidated_by(method: &Method, template: &str, status: StatusCode) -> bool {
        status.is_success()
            && !matches!(*method, Method::GET | Method::HEAD)
            && !(method == Method::POST && template == "/orders")
            && (template.starts_with("/products") || template.starts_with("/orders"))
    }

    /// Every page read before now is stale.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &'static str) -> (Response, Bytes) {
        let mut res = Response::new(Body::empty());
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        (res, Bytes::from_static(body.as_bytes()))
    }

    fn miss(cache: &MicroCache, path: &str) -> (String, u64) {
        match cache.lookup(&Method::GET, "/products/deals", path) {
            Lookup::Miss { key, generation } => (key, generation),
            Lookup::Hit(_) => panic!("a hit for {path}"),
            Lookup::Pass => panic!("{path} passed"),
        }
    }

    #[test]
    fn catalogue_reads_are_served_until_they_age_or_a_write_passes() {
        let cache = MicroCache::new(Duration::from_secs(60));
        let (key, generation) = miss(&cache, "/products/deals?page=1");
        let (res, body) = ok("[1]");
        cache.keep(key, generation, StatusCode::OK, &res, &body);
        assert!(matches!(
            cache.lookup(&Method::GET, "/products/deals", "/products/deals?page=1"),
            Lookup::Hit(_)
        ));
        // Another query is another page.
        miss(&cache, "/products/deals?page=2");
        // An order leaves the pages alone; a cancel empties them.
        assert!(!MicroCache::invalidated_by(
            &Method::POST,
            "/orders",
            StatusCode::CREATED
        ));
        assert!(MicroCache::invalidated_by(
            &Method::POST,
            "/orders/{order_id}/cancel",
            StatusCode::OK
        ));
        assert!(!MicroCache::invalidated_by(
            &Method::POST,
            "/orders/{order_id}/cancel",
            StatusCode::CONFLICT
        ));
        cache.invalidate();
        let (key, stale) = miss(&cache, "/products/deals?page=1");
        // An answer read before a write is not kept after it.
        cache.invalidate();
        cache.keep(key, stale, StatusCode::OK, &res, &body);
        miss(&cache, "/products/deals?page=1");
    }

    #[test]
    fn only_successful_public_catalogue_gets_are_kept() {
        let cache = MicroCache::new(Duration::from_secs(60));
        assert!(matches!(
            cache.lookup(&Method::GET, "/orders", "/orders"),
            Lookup::Pass
        ));
        assert!(matches!(
            cache.lookup(&Method::POST, "/products", "/products"),
            Lookup::Pass
        ));
        let (key, generation) = miss(&cache, "/products/deals/x");
        let (res, body) = ok("{}");
        cache.keep(key, generation, StatusCode::NOT_FOUND, &res, &body);
        miss(&cache, "/products/deals/x");
        let off = MicroCache::new(Duration::ZERO);
        assert!(matches!(
            off.lookup(&Method::GET, "/products/deals", "/products/deals"),
            Lookup::Pass
        ));
    }
}
