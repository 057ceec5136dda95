//! Configuration, layered: defaults → `hotdeal.toml` → `HOTDEAL_*`
//! environment → command-line flags. Each layer is a [`ConfigLayer`] of
//! optional values; later layers win. The environment is passed in as a
//! list of pairs, so tests never touch the process environment.

use crate::adapters::argon2::Argon2Params;
use crate::adapters::postgres::{valid_schema, PgSettings};
use crate::adapters::sqlite::Durability;
use anyhow::{bail, Context};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

mod cidr;
mod roles;
mod upstreams;
pub use cidr::Cidr;
pub use roles::{Role, Roles};
pub use upstreams::{UpstreamAddr, Upstreams};

/// A setting that must never reach logs, error text or `Debug` output: a
/// signing key, a connection URL that may carry a password.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

/// The admin listener's setting: an address, or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct AdminListen(pub Option<SocketAddr>);

impl std::str::FromStr for AdminListen {
    type Err = std::net::AddrParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(Self(None));
        }
        s.parse().map(|a| Self(Some(a)))
    }
}

impl TryFrom<String> for AdminListen {
    type Error = std::net::AddrParseError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// The shortest HS256 key accepted: 256 bits, the size of the hash.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// The resolved configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// What this process runs: every service (the default), the gateway,
    /// or some of the services (`--role product,order`).
    pub roles: Roles,
    /// Address of the HTTP listener.
    pub listen: SocketAddr,
    /// Where the product role serves gRPC (the product service, health,
    /// reflection). Defaults to 127.0.0.1:50051 in a split process with the
    /// product role; off in the all-in-one process unless set.
    pub grpc_listen: Option<SocketAddr>,
    /// The product service (`http://host:port`) an order role reaches over
    /// gRPC when the product role runs in another process.
    pub product_url: Option<String>,
    /// The deadline of every call to the product service (ms).
    pub product_deadline_ms: u64,
    /// Address of the admin listener (`/metrics`, `/ops`); `None` = off.
    pub admin_listen: Option<SocketAddr>,
    /// Where the embedded database and the generated JWT secret live.
    pub data_dir: PathBuf,
    /// Store URL; defaults to `sqlite://<data_dir>/hotdeal.db`. A
    /// `postgres://` URL stores in PostgreSQL (see [`StoreBackend`]).
    pub database_url: Secret,
    /// PostgreSQL only: the schema holding hotdeal's tables (created if
    /// missing), so several stores can share one database.
    pub database_schema: Option<String>,
    /// PostgreSQL only: pooled connections.
    pub database_pool: u32,
    /// HS256 key for access tokens (at least 32 bytes). When absent, it is
    /// read from `jwt_secret_file`, else generated once and kept in
    /// `<data_dir>/jwt-secret`.
    pub jwt_secret: Option<Secret>,
    /// A file holding the HS256 key, so it need not be on the command
    /// line (where `ps` shows it).
    pub jwt_secret_file: Option<PathBuf>,
    /// Redis for the shared hot tier (stock, limits, coupon holders,
    /// in-flight idempotency keys). Set together with `nats_url` and a
    /// `postgres://` store, it turns on the scaled mode.
    pub redis_url: Option<Secret>,
    /// Prefix of every Redis key, so several deployments (or tests) share
    /// one Redis.
    pub redis_prefix: String,
    /// NATS with JetStream, for the committed events.
    pub nats_url: Option<Secret>,
    /// Prefix of every NATS subject and of the stream's name.
    pub nats_prefix: String,
    /// Most bytes the event stream keeps (JetStream reserves them on its
    /// disk); older events go first.
    pub nats_stream_max_bytes: i64,
    /// How long a reservation in the shared tier may wait for its commit
    /// before the reconciler may abort it (seconds).
    pub reservation_ttl_secs: i64,
    pub argon2: Argon2Params,
    /// Threads of the async runtime (default: one per core). Several
    /// processes sharing a machine each want fewer: see README, "Decisions".
    pub workers: Option<usize>,
    /// Hashes running at once (default: the number of cores).
    pub hash_workers: usize,
    /// Hashes allowed to wait for a worker before sign-ups are refused.
    pub hash_queue: usize,
    pub durability: Durability,
    /// How often ended deals give their unsold units back.
    pub deal_sweep_ms: u64,
    /// Orders waiting for the writer before new ones get 503.
    pub order_queue: usize,
    /// Most orders committed in one transaction.
    pub max_batch: usize,
    /// Requests in flight before new ones get 503.
    pub max_in_flight: usize,
    /// How long cached pages may show stale stock counts (ms).
    pub read_cache_ms: u64,
    /// How long an unpaid order may hold deal stock (seconds).
    pub payment_window_secs: i64,
    /// Users admitted per second from a deal's waiting room, unless the
    /// deal sets its own rate. The default is about what the order path
    /// commits per second on a small machine (bench/RESULTS.md), so the
    /// admitted do not queue again at the writer.
    pub queue_admit_per_sec: u32,
    /// How long an admitted queue token may be used (seconds).
    pub queue_admitted_secs: i64,
    /// The fastest poll interval a queue answer asks for (ms).
    pub queue_poll_ms: u64,
    /// The slowest poll interval a queue answer asks for (ms).
    pub queue_poll_max_ms: u64,
    /// Most queue entries held across all deals (each about 100 bytes);
    /// past it, joins get 503.
    pub queue_max_users: u64,
    /// Open connections before new ones are refused (each costs a file
    /// descriptor and buffers; keep it well under `ulimit -n`).
    pub max_connections: usize,
    /// Time a client has to send a request head, counted from when the
    /// server starts waiting for it (ms).
    pub header_timeout_ms: u64,
    /// Time a client has to send a request body once its head is in (ms).
    pub body_timeout_ms: u64,
    /// A connection with no request running and no bytes moving for this
    /// long is closed (ms).
    pub idle_timeout_ms: u64,
    /// The gateway: the services' addresses, per role (see [`Upstreams`]).
    pub upstreams: Upstreams,
    /// The gateway: the most one upstream call may take, answer included;
    /// past it the client gets 503 `OVERLOADED` (ms).
    pub gateway_timeout_ms: u64,
    /// The gateway: the most opening a connection to an upstream may take
    /// (ms). Short: a refused or silent address is tried elsewhere.
    pub gateway_connect_timeout_ms: u64,
    /// The gateway: how long an address whose connection failed or timed
    /// out is skipped before it gets traffic again (ms).
    pub gateway_cooldown_ms: u64,
    /// How long the gateway answers a catalogue read from memory (ms; 0 =
    /// never). It adds to the services' `read_cache_ms`: together they stay
    /// within the contract's 100 ms for stock counts.
    pub gateway_cache_ms: u64,
    /// The gateway: requests per second allowed per user (the token's
    /// `sub`); 0 = no limit.
    pub rate_limit_user_per_sec: u32,
    /// The gateway: requests a user may send at once above the rate.
    pub rate_limit_user_burst: u32,
    /// The gateway: requests per second allowed per client IP; 0 = no
    /// limit (the default: behind a load balancer every client has its IP).
    pub rate_limit_ip_per_sec: u32,
    /// The gateway: requests one IP may send at once above the rate.
    pub rate_limit_ip_burst: u32,
    /// The gateway: proxies (load balancers) whose `X-Forwarded-For` names
    /// the client; the per-IP limit counts that client, not the proxy.
    /// Empty: the TCP peer is the client, whatever the header says.
    pub trusted_proxies: Vec<Cidr>,
}

/// One layer of settings; `None` means "not set here".
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigLayer {
    pub roles: Option<Roles>,
    pub listen: Option<SocketAddr>,
    pub grpc_listen: Option<SocketAddr>,
    pub product_url: Option<String>,
    pub product_deadline_ms: Option<u64>,
    pub admin_listen: Option<AdminListen>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<Secret>,
    pub database_schema: Option<String>,
    pub database_pool: Option<u32>,
    pub jwt_secret: Option<Secret>,
    pub jwt_secret_file: Option<PathBuf>,
    pub redis_url: Option<Secret>,
    pub redis_prefix: Option<String>,
    pub nats_url: Option<Secret>,
    pub nats_prefix: Option<String>,
    pub nats_stream_max_bytes: Option<i64>,
    pub reservation_ttl_secs: Option<i64>,
    pub argon2_memory_kib: Option<u32>,
    pub argon2_iterations: Option<u32>,
    pub argon2_parallelism: Option<u32>,
    pub workers: Option<usize>,
    pub hash_workers: Option<usize>,
    pub hash_queue: Option<usize>,
    pub durability: Option<Durability>,
    pub deal_sweep_ms: Option<u64>,
    pub order_queue: Option<usize>,
    pub max_batch: Option<usize>,
    pub max_in_flight: Option<usize>,
    pub read_cache_ms: Option<u64>,
    pub payment_window_secs: Option<i64>,
    pub queue_admit_per_sec: Option<u32>,
    pub queue_admitted_secs: Option<i64>,
    pub queue_poll_ms: Option<u64>,
    pub queue_poll_max_ms: Option<u64>,
    pub queue_max_users: Option<u64>,
    pub max_connections: Option<usize>,
    pub header_timeout_ms: Option<u64>,
    pub body_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub upstream: Option<Upstreams>,
    pub gateway_timeout_ms: Option<u64>,
    pub gateway_connect_timeout_ms: Option<u64>,
    pub gateway_cooldown_ms: Option<u64>,
    pub gateway_cache_ms: Option<u64>,
    pub rate_limit_user_per_sec: Option<u32>,
    pub rate_limit_user_burst: Option<u32>,
    pub rate_limit_ip_per_sec: Option<u32>,
    pub rate_limit_ip_burst: Option<u32>,
    pub trusted_proxies: Option<Vec<Cidr>>,
}

impl ConfigLayer {
    /// Reads a TOML file.
    pub fn from_toml_file(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Reads the `HOTDEAL_*` variables among `vars`.
    pub fn from_env(vars: impl IntoIterator<Item = (String, String)>) -> anyhow::Result<Self> {
        let mut l = Self::default();
        for (k, v) in vars {
            let Some(key) = k.strip_prefix("HOTDEAL_") else {
                continue;
            };
            let bad = || format!("{k}={v} is not valid");
            match key {
                "ROLE" => l.roles = Some(v.parse().map_err(anyhow::Error::msg).with_context(bad)?),
                "LISTEN" => l.listen = Some(v.parse().with_context(bad)?),
                "GRPC_LISTEN" => l.grpc_listen = Some(v.parse().with_context(bad)?),
                "PRODUCT_URL" => l.product_url = Some(v),
                "PRODUCT_DEADLINE_MS" => l.product_deadline_ms = Some(v.parse().with_context(bad)?),
                "ADMIN_LISTEN" => l.admin_listen = Some(v.parse().with_context(bad)?),
                "DATA_DIR" => l.data_dir = Some(v.into()),
                "DATABASE_URL" => l.database_url = Some(Secret(v)),
                "DATABASE_SCHEMA" => l.database_schema = Some(v),
                "DATABASE_POOL" => l.database_pool = Some(v.parse().with_context(bad)?),
                "JWT_SECRET" => l.jwt_secret = Some(Secret(v)),
                "JWT_SECRET_FILE" => l.jwt_secret_file = Some(v.into()),
                "REDIS_URL" => l.redis_url = Some(Secret(v)),
                "REDIS_PREFIX" => l.redis_prefix = Some(v),
                "NATS_URL" => l.nats_url = Some(Secret(v)),
                "NATS_PREFIX" => l.nats_prefix = Some(v),
                "NATS_STREAM_MAX_BYTES" => {
                    l.nats_stream_max_bytes = Some(v.parse().with_context(bad)?)
                }
                "RESERVATION_TTL_SECS" => {
                    l.reservation_ttl_secs = Some(v.parse().with_context(bad)?)
                }
                "ARGON2_MEMORY_KIB" => l.argon2_memory_kib = Some(v.parse().with_context(bad)?),
                "ARGON2_ITERATIONS" => l.argon2_iterations = Some(v.parse().with_context(bad)?),
                "ARGON2_PARALLELISM" => l.argon2_parallelism = Some(v.parse().with_context(bad)?),
                "WORKERS" => l.workers = Some(v.parse().with_context(bad)?),
                "HASH_WORKERS" => l.hash_workers = Some(v.parse().with_context(bad)?),
                "HASH_QUEUE" => l.hash_queue = Some(v.parse().with_context(bad)?),
                "DURABILITY" => {
                    l.durability = Some(match v.as_str() {
                        "process" => Durability::Process,
                        "power" => Durability::Power,
                        _ => bail!("{k} must be `process` or `power`"),
                    })
                }
                "DEAL_SWEEP_MS" => l.deal_sweep_ms = Some(v.parse().with_context(bad)?),
                "ORDER_QUEUE" => l.order_queue = Some(v.parse().with_context(bad)?),
                "MAX_BATCH" => l.max_batch = Some(v.parse().with_context(bad)?),
                "MAX_IN_FLIGHT" => l.max_in_flight = Some(v.parse().with_context(bad)?),
                "READ_CACHE_MS" => l.read_cache_ms = Some(v.parse().with_context(bad)?),
                "PAYMENT_WINDOW_SECS" => l.payment_window_secs = Some(v.parse().with_context(bad)?),
                "QUEUE_ADMIT_PER_SEC" => l.queue_admit_per_sec = Some(v.parse().with_context(bad)?),
                "QUEUE_ADMITTED_SECS" => l.queue_admitted_secs = Some(v.parse().with_context(bad)?),
                "QUEUE_POLL_MS" => l.queue_poll_ms = Some(v.parse().with_context(bad)?),
                "QUEUE_POLL_MAX_MS" => l.queue_poll_max_ms = Some(v.parse().with_context(bad)?),
                "QUEUE_MAX_USERS" => l.queue_max_users = Some(v.parse().with_context(bad)?),
                "MAX_CONNECTIONS" => l.max_connections = Some(v.parse().with_context(bad)?),
                "HEADER_TIMEOUT_MS" => l.header_timeout_ms = Some(v.parse().with_context(bad)?),
                "BODY_TIMEOUT_MS" => l.body_timeout_ms = Some(v.parse().with_context(bad)?),
                "IDLE_TIMEOUT_MS" => l.idle_timeout_ms = Some(v.parse().with_context(bad)?),
                "GATEWAY_TIMEOUT_MS" => l.gateway_timeout_ms = Some(v.parse().with_context(bad)?),
                "GATEWAY_CONNECT_TIMEOUT_MS" => {
                    l.gateway_connect_timeout_ms = Some(v.parse().with_context(bad)?)
                }
                "GATEWAY_COOLDOWN_MS" => l.gateway_cooldown_ms = Some(v.parse().with_context(bad)?),
                "GATEWAY_CACHE_MS" => l.gateway_cache_ms = Some(v.parse().with_context(bad)?),
                "RATE_LIMIT_USER_PER_SEC" => {
                    l.rate_limit_user_per_sec = Some(v.parse().with_context(bad)?)
                }
                "RATE_LIMIT_USER_BURST" => {
                    l.rate_limit_user_burst = Some(v.parse().with_context(bad)?)
                }
                "RATE_LIMIT_IP_PER_SEC" => {
                    l.rate_limit_ip_per_sec = Some(v.parse().with_context(bad)?)
                }
                "RATE_LIMIT_IP_BURST" => l.rate_limit_ip_burst = Some(v.parse().with_context(bad)?),
                "TRUSTED_PROXIES" => {
                    l.trusted_proxies = Some(
                        v.split(',')
                            .filter(|p| !p.trim().is_empty())
                            .map(str::parse)
                            .collect::<Result<_, String>>()
                            .map_err(anyhow::Error::msg)
                            .with_context(bad)?,
                    )
                }
                // HOTDEAL_UPSTREAM_<ROLE>=http://a:1,http://b:2 (ROLE: ALL
                // or a service role).
                _ if key.starts_with("UPSTREAM_") => {
                    let role = &key["UPSTREAM_".len()..];
                    let ups = Upstreams::default()
                        .with(role, v.split(','))
                        .map_err(anyhow::Error::msg)
                        .with_context(|| format!("{k} is not valid"))?;
                    l.upstream = Some(l.upstream.take().unwrap_or_default().merge(ups));
                }
                _ => {}
            }
        }
        Ok(l)
    }

    /// `other`'s settings override ours.
    pub fn merge(self, other: Self) -> Self {
        Self {
            roles: other.roles.or(self.roles),
            listen: other.listen.or(self.listen),
            grpc_listen: other.grpc_listen.or(self.grpc_listen),
            product_url: other.product_url.or(self.product_url),
            product_deadline_ms: other.product_deadline_ms.or(self.product_deadline_ms),
            admin_listen: other.admin_listen.or(self.admin_listen),
            data_dir: other.data_dir.or(self.data_dir),
            database_url: other.database_url.or(self.database_url),
            database_schema: other.database_schema.or(self.database_schema),
            database_pool: other.database_pool.or(self.database_pool),
            jwt_secret: other.jwt_secret.or(self.jwt_secret),
            jwt_secret_file: other.jwt_secret_file.or(self.jwt_secret_file),
            redis_url: other.redis_url.or(self.redis_url),
            redis_prefix: other.redis_prefix.or(self.redis_prefix),
            nats_url: other.nats_url.or(self.nats_url),
            nats_prefix: other.nats_prefix.or(self.nats_prefix),
            nats_stream_max_bytes: other.nats_stream_max_bytes.or(self.nats_stream_max_bytes),
            reservation_ttl_secs: other.reservation_ttl_secs.or(self.reservation_ttl_secs),
            argon2_memory_kib: other.argon2_memory_kib.or(self.argon2_memory_kib),
            argon2_iterations: other.argon2_iterations.or(self.argon2_iterations),
            argon2_parallelism: other.argon2_parallelism.or(self.argon2_parallelism),
            workers: other.workers.or(self.workers),
            hash_workers: other.hash_workers.or(self.hash_workers),
            hash_queue: other.hash_queue.or(self.hash_queue),
            durability: other.durability.or(self.durability),
            deal_sweep_ms: other.deal_sweep_ms.or(self.deal_sweep_ms),
            order_queue: other.order_queue.or(self.order_queue),
            max_batch: other.max_batch.or(self.max_batch),
            max_in_flight: other.max_in_flight.or(self.max_in_flight),
            read_cache_ms: other.read_cache_ms.or(self.read_cache_ms),
            payment_window_secs: other.payment_window_secs.or(self.payment_window_secs),
            queue_admit_per_sec: other.queue_admit_per_sec.or(self.queue_admit_per_sec),
            queue_admitted_secs: other.queue_admitted_secs.or(self.queue_admitted_secs),
            queue_poll_ms: other.queue_poll_ms.or(self.queue_poll_ms),
            queue_poll_max_ms: other.queue_poll_max_ms.or(self.queue_poll_max_ms),
            queue_max_users: other.queue_max_users.or(self.queue_max_users),
            max_connections: other.max_connections.or(self.max_connections),
            header_timeout_ms: other.header_timeout_ms.or(self.header_timeout_ms),
            body_timeout_ms: other.body_timeout_ms.or(self.body_timeout_ms),
            idle_timeout_ms: other.idle_timeout_ms.or(self.idle_timeout_ms),
            upstream: match (self.upstream, other.upstream) {
                (Some(ours), Some(theirs)) => Some(ours.merge(theirs)),
                (ours, theirs) => theirs.or(ours),
            },
            gateway_timeout_ms: other.gateway_timeout_ms.or(self.gateway_timeout_ms),
            gateway_connect_timeout_ms: other
                .gateway_connect_timeout_ms
                .or(self.gateway_connect_timeout_ms),
            gateway_cooldown_ms: other.gateway_cooldown_ms.or(self.gateway_cooldown_ms),
            gateway_cache_ms: other.gateway_cache_ms.or(self.gateway_cache_ms),
            rate_limit_user_per_sec: other
                .rate_limit_user_per_sec
                .or(self.rate_limit_user_per_sec),
            rate_limit_user_burst: other.rate_limit_user_burst.or(self.rate_limit_user_burst),
            rate_limit_ip_per_sec: other.rate_limit_ip_per_sec.or(self.rate_limit_ip_per_sec),
            rate_limit_ip_burst: other.rate_limit_ip_burst.or(self.rate_limit_ip_burst),
            trusted_proxies: other.trusted_proxies.or(self.trusted_proxies),
        }
    }
}

/// Where the durable state lives, built and checked from a [`Config`]
/// before anything listens.
#[derive(Clone, Debug)]
pub enum StoreBackend {
    /// The embedded store: one SQLite file.
    Sqlite { url: Secret, durability: Durability },
    /// A PostgreSQL database (with the in-memory admission tier, one
    /// instance per database and schema).
    Postgres(PgSettings),
}

impl StoreBackend {
    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Sqlite { .. } => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

/// The shared services of the scaled mode: N instances of hotdeal on one
/// PostgreSQL, one Redis and one NATS JetStream.
#[derive(Clone, Debug)]
pub struct ScaledSettings {
    pub redis_url: Secret,
    pub redis_prefix: String,
    pub nats_url: Secret,
    pub nats_prefix: String,
    pub nats_stream_max_bytes: i64,
    pub reservation_ttl: chrono::Duration,
}

impl Config {
    /// The scaled mode's services, if configured, or why the configuration
    /// is not a valid scaled setup: it needs Redis and NATS together, a
    /// PostgreSQL store (every instance must see every write) and a JWT
    /// secret given to every instance (a generated one would differ per
    /// instance, and a token signed by one would be refused by the next).
    pub fn scaled(&self) -> anyhow::Result<Option<ScaledSettings>> {
        let (redis, nats) = match (&self.redis_url, &self.nats_url) {
            (None, None) => return Ok(None),
            (Some(r), Some(n)) => (r, n),
            (Some(_), None) => {
                bail!("redis_url is set but nats_url is not: the scaled mode needs both")
            }
            (None, Some(_)) => {
                bail!("nats_url is set but redis_url is not: the scaled mode needs both")
            }
        };
        if !matches!(self.store_backend()?, StoreBackend::Postgres(_)) {
            bail!("the scaled mode (Redis + NATS) needs a postgres:// database URL: every instance must share the store");
        }
        if self.jwt_secret.is_none() && self.jwt_secret_file.is_none() {
            bail!("the scaled mode needs a shared JWT secret (--jwt-secret-file or HOTDEAL_JWT_SECRET): a secret generated per instance would make every instance refuse the others' tokens");
        }
        // This build carries no TLS stack for Redis or NATS: run them on a
        // private network or behind a local TLS terminator.
        if !redis.expose().starts_with("redis://") {
            bail!("the Redis URL must start with redis:// (not shown: it may hold a password)");
        }
        if !nats.expose().starts_with("nats://") {
            bail!("the NATS URL must start with nats:// (not shown: it may hold a password)");
        }
        let token = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !token(&self.redis_prefix) {
            bail!("redis_prefix must be 1-64 characters of [A-Za-z0-9_-]");
        }
        if !token(&self.nats_prefix) {
            bail!("nats_prefix must be 1-64 characters of [A-Za-z0-9_-] (it names a stream and starts every subject)");
        }
        Ok(Some(ScaledSettings {
            redis_url: redis.clone(),
            redis_prefix: self.redis_prefix.clone(),
            nats_url: nats.clone(),
            nats_prefix: self.nats_prefix.clone(),
            nats_stream_max_bytes: self.nats_stream_max_bytes,
            reservation_ttl: chrono::Duration::seconds(self.reservation_ttl_secs),
        }))
    }
}

impl Config {
    /// Checks what a process of some of the services needs: the scaled
    /// mode's shared services (the roles share state only through them),
    /// and, for an order role without the product role, where the product
    /// service is. The gateway is checked by the gateway.
    pub fn check_roles(&self) -> anyhow::Result<()> {
        let roles = self.roles;
        if roles.is_all() || roles.is_gateway() {
            return Ok(());
        }
        if self.scaled()?.is_none() {
            bail!("--role {roles} runs part of hotdeal: the roles share state through PostgreSQL, Redis and NATS, so set --database-url postgres://…, --redis-url and --nats-url (or run all roles in one process with --role all)");
        }
        if roles.contains(Role::Order) && !roles.contains(Role::Product) {
            let Some(url) = &self.product_url else {
                bail!("the order role admits orders through the product service: set --product-url http://HOST:PORT (the product role's gRPC address) or add the product role to this process");
            };
            if !url.starts_with("http://") {
                bail!("--product-url must start with http:// (gRPC over plain HTTP/2)");
            }
        }
        Ok(())
    }

    /// The store this configuration names, or why it names none. Errors
    /// never quote the URL: it may carry a password.
    pub fn store_backend(&self) -> anyhow::Result<StoreBackend> {
        let url = self.database_url.expose();
        if url.starts_with("sqlite:") {
            if self.database_schema.is_some() {
                bail!("database_schema applies to PostgreSQL only; the database URL is sqlite://");
            }
            return Ok(StoreBackend::Sqlite {
                url: self.database_url.clone(),
                durability: self.durability,
            });
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            use std::str::FromStr;
            if sqlx::postgres::PgConnectOptions::from_str(url).is_err() {
                bail!("the database URL is not a valid postgres:// URL (not shown: it may hold a password)");
            }
            if let Some(schema) = &self.database_schema {
                if !valid_schema(schema) {
                    bail!("database_schema must be a lower-case identifier ([a-z_][a-z0-9_]*, at most 63 characters)");
                }
            }
            return Ok(StoreBackend::Postgres(PgSettings {
                url: url.to_owned(),
                schema: self.database_schema.clone(),
                pool_size: self.database_pool,
            }));
        }
        bail!(
            "unsupported database URL: use sqlite://PATH or postgres://USER@HOST/DB              (the URL is not shown: it may hold a password)"
        )
    }

    /// Fills every unset value with its default.
    pub fn resolve(l: ConfigLayer) -> Self {
        let data_dir = l.data_dir.unwrap_or_else(|| PathBuf::from("data"));
        let database_url = l.database_url.unwrap_or_else(|| {
            Secret(format!(
                "sqlite://{}",
                data_dir.join("hotdeal.db").display()
            ))
        });
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let d = Argon2Params::default();
        let roles = l.roles.unwrap_or_default();
        let split_product = roles.contains(Role::Product) && !roles.is_all();
        Self {
            roles,
            grpc_listen: l
                .grpc_listen
                .or_else(|| split_product.then(|| SocketAddr::from(([127, 0, 0, 1], 50051)))),
            product_url: l.product_url,
            product_deadline_ms: l.product_deadline_ms.unwrap_or(2_000).max(1),
            listen: l
                .listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            admin_listen: l
                .admin_listen
                .unwrap_or(AdminListen(Some(SocketAddr::from(([127, 0, 0, 1], 9090)))))
                .0,
            data_dir,
            database_url,
            database_schema: l.database_schema,
            // Enough for the batch writers, cancels and reads on a small
            // machine; PostgreSQL does best with few busy connections.
            database_pool: l.database_pool.unwrap_or(12).clamp(2, 1000),
            jwt_secret: l.jwt_secret,
            jwt_secret_file: l.jwt_secret_file,
            redis_url: l.redis_url,
            redis_prefix: l.redis_prefix.unwrap_or_else(|| "hotdeal".to_owned()),
            nats_url: l.nats_url,
            nats_prefix: l.nats_prefix.unwrap_or_else(|| "hotdeal".to_owned()),
            nats_stream_max_bytes: l.nats_stream_max_bytes.unwrap_or(1 << 30).max(1 << 20),
            reservation_ttl_secs: l.reservation_ttl_secs.unwrap_or(30).max(1),
            argon2: Argon2Params {
                memory_kib: l.argon2_memory_kib.unwrap_or(d.memory_kib),
                iterations: l.argon2_iterations.unwrap_or(d.iterations),
                parallelism: l.argon2_parallelism.unwrap_or(d.parallelism),
            },
            workers: l.workers.map(|n| n.max(1)),
            hash_workers: l.hash_workers.unwrap_or(cores),
            hash_queue: l.hash_queue.unwrap_or(cores * 8),
            durability: l.durability.unwrap_or(Durability::Process),
            deal_sweep_ms: l.deal_sweep_ms.unwrap_or(1000),
            order_queue: l.order_queue.unwrap_or(8192),
            max_batch: l.max_batch.unwrap_or(512),
            max_in_flight: l.max_in_flight.unwrap_or(4096),
            read_cache_ms: l.read_cache_ms.unwrap_or(100),
            payment_window_secs: l.payment_window_secs.unwrap_or(600).max(1),
            queue_admit_per_sec: l.queue_admit_per_sec.unwrap_or(10_000).max(1),
            queue_admitted_secs: l.queue_admitted_secs.unwrap_or(300).max(1),
            queue_poll_ms: l.queue_poll_ms.unwrap_or(500).max(1),
            queue_poll_max_ms: l.queue_poll_max_ms.unwrap_or(5_000).max(1),
            queue_max_users: l.queue_max_users.unwrap_or(5_000_000),
            max_connections: l.max_connections.unwrap_or(10_000).max(1),
            header_timeout_ms: l.header_timeout_ms.unwrap_or(10_000).max(1),
            body_timeout_ms: l.body_timeout_ms.unwrap_or(10_000).max(1),
            idle_timeout_ms: l.idle_timeout_ms.unwrap_or(5_000).max(1),
            upstreams: l.upstream.unwrap_or_default(),
            // Every answer of the services takes milliseconds; a call that
            // takes seconds is a service in trouble, and the client is
            // better told at once than kept waiting.
            gateway_timeout_ms: l.gateway_timeout_ms.unwrap_or(5_000).max(1),
            gateway_connect_timeout_ms: l.gateway_connect_timeout_ms.unwrap_or(500).max(1),
            gateway_cooldown_ms: l.gateway_cooldown_ms.unwrap_or(2_000).max(1),
            gateway_cache_ms: l.gateway_cache_ms.unwrap_or(50),
            rate_limit_user_per_sec: l.rate_limit_user_per_sec.unwrap_or(100),
            rate_limit_user_burst: l.rate_limit_user_burst.unwrap_or(200).max(1),
            rate_limit_ip_per_sec: l.rate_limit_ip_per_sec.unwrap_or(0),
            rate_limit_ip_burst: l.rate_limit_ip_burst.unwrap_or(1_000).max(1),
            trusted_proxies: l.trusted_proxies.unwrap_or_default(),
        }
    }

    /// The usual stack: `file` (if it exists), then `env`, then `flags`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: ConfigLayer,
    ) -> anyhow::Result<Self> {
        let mut layer = ConfigLayer::default();
        if let Some(f) = file.filter(|f| f.exists()) {
            layer = layer.merge(ConfigLayer::from_toml_file(f)?);
        }
        layer = layer.merge(ConfigLayer::from_env(env)?).merge(flags);
        Ok(Self::resolve(layer))
    }

    /// For tests: a data dir, an ephemeral port and cheap password hashing.
    pub fn for_tests(data_dir: &Path) -> Self {
        Self::resolve(ConfigLayer {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            admin_listen: Some(AdminListen(Some(SocketAddr::from(([127, 0, 0, 1], 0))))),
            data_dir: Some(data_dir.to_owned()),
            jwt_secret: Some(Secret::new("test-secret-of-at-least-32-bytes")),
            argon2_memory_kib: Some(64),
            argon2_iterations: Some(1),
            // Tests sign up hundreds of users at once; refusing them is
            // tested on the hasher itself.
            hash_queue: Some(100_000),
            // Tests read right after writing; no staleness allowed.
            read_cache_ms: Some(0),
            gateway_cache_ms: Some(0),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_the_embedded_setup() {
        let c = Config::load(None, env(&[]), ConfigLayer::default()).expect("config");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url.expose(), "sqlite://data/hotdeal.db");
        assert!(c.jwt_secret.is_none());
        assert_eq!(c.argon2, Argon2Params::default());
        assert_eq!(c.max_connections, 10_000);
        assert_eq!(
            c.admin_listen,
            Some("127.0.0.1:9090".parse().expect("addr"))
        );
    }

    #[test]
    fn the_admin_listener_can_move_or_be_turned_off() {
        let c = Config::load(
            None,
            env(&[("HOTDEAL_ADMIN_LISTEN", "0.0.0.0:9100")]),
            ConfigLayer::default(),
        )
        .expect("config");
        assert_eq!(c.admin_listen, Some("0.0.0.0:9100".parse().expect("addr")));
        let off: ConfigLayer = toml::from_str("admin_listen = \"off\"").expect("toml");
        assert_eq!(Config::resolve(off).admin_listen, None);
        assert!(ConfigLayer::from_env(env(&[("HOTDEAL_ADMIN_LISTEN", "nope")])).is_err());
    }

    #[test]
    fn connection_limits_come_from_the_environment() {
        let c = Config::load(
            None,
            env(&[
                ("HOTDEAL_MAX_CONNECTIONS", "20"),
                ("HOTDEAL_HEADER_TIMEOUT_MS", "1500"),
                ("HOTDEAL_BODY_TIMEOUT_MS", "2500"),
                ("HOTDEAL_IDLE_TIMEOUT_MS", "3500"),
            ]),
            ConfigLayer::default(),
        )
        .expect("config");
        assert_eq!(
            (
                c.max_connections,
                c.header_timeout_ms,
                c.body_timeout_ms,
                c.idle_timeout_ms
            ),
            (20, 1500, 2500, 3500)
        );
        assert!(ConfigLayer::from_env(env(&[("HOTDEAL_MAX_CONNECTIONS", "-1")])).is_err());
    }

    #[test]
    fn later_layers_win() {
        let dir = std::env::temp_dir().join(format!("hotdeal-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("hotdeal.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\ndata_dir = \"/from-file\"\nargon2_iterations = 3\n",
        )
        .expect("write");
        let c = Config::load(
            Some(&file),
            env(&[
                ("HOTDEAL_DATA_DIR", "/from-env"),
                ("HOTDEAL_LISTEN", "127.0.0.1:9001"),
                ("OTHER", "x"),
            ]),
            ConfigLayer {
                listen: Some("127.0.0.1:9002".parse().expect("addr")),
                ..Default::default()
            },
        )
        .expect("config");
        assert_eq!(c.listen.to_string(), "127.0.0.1:9002");
        assert_eq!(c.data_dir, PathBuf::from("/from-env"));
        assert_eq!(c.argon2.iterations, 3);
        assert_eq!(c.database_url.expose(), "sqlite:///from-env/hotdeal.db");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn debug_output_hides_secrets_and_urls() {
        let c = Config::load(
            None,
            env(&[
                ("HOTDEAL_JWT_SECRET", "jwt-secret-value-0123456789abcdefgh"),
                (
                    "HOTDEAL_DATABASE_URL",
                    "postgres://app:pa55word-value@db.internal/hotdeal",
                ),
            ]),
            ConfigLayer::default(),
        )
        .expect("config");
        let shown = format!(
            "{c:?} {:?}",
            ConfigLayer::default().merge(ConfigLayer {
                jwt_secret: c.jwt_secret.clone(),
                database_url: Some(c.database_url.clone()),
                ..Default::default()
            })
        );
        assert!(!shown.contains("jwt-secret-value"), "{shown}");
        assert!(!shown.contains("pa55word-value"), "{shown}");
        assert!(!shown.contains("db.internal"), "{shown}");
    }

    #[test]
    fn the_store_backend_comes_from_the_url() {
        let load = |pairs: &[(&str, &str)]| {
            Config::load(None, env(pairs), ConfigLayer::default()).expect("config")
        };
        let c = load(&[]);
        assert!(matches!(
            c.store_backend().expect("sqlite"),
            StoreBackend::Sqlite { .. }
        ));
        let c = load(&[
            (
                "HOTDEAL_DATABASE_URL",
                "postgres://app:pa55word-value@db.internal/hotdeal",
            ),
            ("HOTDEAL_DATABASE_SCHEMA", "shop_1"),
            ("HOTDEAL_DATABASE_POOL", "9"),
        ]);
        let StoreBackend::Postgres(pg) = c.store_backend().expect("postgres") else {
            panic!("not postgres");
        };
        assert_eq!((pg.schema.as_deref(), pg.pool_size), (Some("shop_1"), 9));
        let shown = format!("{:?} {:?}", c.store_backend().expect("postgres"), pg);
        assert!(!shown.contains("pa55word-value"), "{shown}");
        assert!(!shown.contains("db.internal"), "{shown}");
        for bad in [
            vec![("HOTDEAL_DATABASE_URL", "mysql://u:pa55word-value@h/db")],
            vec![("HOTDEAL_DATABASE_SCHEMA", "shop")],
            vec![
                ("HOTDEAL_DATABASE_URL", "postgres://u:pa55word-value@h/db"),
                ("HOTDEAL_DATABASE_SCHEMA", "Robert'); DROP"),
            ],
        ] {
            let err = format!("{:#}", load(&bad).store_backend().expect_err("refused"));
            assert!(!err.contains("pa55word-value"), "{err}");
        }
    }

    #[test]
    fn the_scaled_mode_needs_all_of_its_parts() {
        let layer = |pairs: &[(&str, &str)]| {
            Config::resolve(ConfigLayer::from_env(env(pairs)).expect("layer"))
        };
        let pg = ("HOTDEAL_DATABASE_URL", "postgres://u:pw-in-url@db/shop");
        let redis = ("HOTDEAL_REDIS_URL", "redis://:redis-pw@cache:6379");
        let nats = ("HOTDEAL_NATS_URL", "nats://bus:4222");
        let secret = ("HOTDEAL_JWT_SECRET", "a-shared-secret-of-at-least-32-bytes");
        assert!(layer(&[pg]).scaled().expect("plain").is_none());
        let s = layer(&[pg, redis, nats, secret, ("HOTDEAL_REDIS_PREFIX", "shop")])
            .scaled()
            .expect("valid")
            .expect("scaled");
        assert_eq!(
            (s.redis_prefix.as_str(), s.nats_prefix.as_str()),
            ("shop", "hotdeal")
        );
        assert_eq!(s.reservation_ttl, chrono::Duration::seconds(30));
        let refused = |pairs: &[(&str, &str)], why: &str| {
            let e = layer(pairs).scaled().expect_err(why).to_string();
            assert!(e.contains(why), "{e}");
            for secret in ["pw-in-url", "redis-pw", "bus:4222"] {
                assert!(!e.contains(secret), "the error quotes a URL: {e}");
            }
        };
        refused(&[pg, redis, secret], "nats_url is not");
        refused(&[pg, nats, secret], "redis_url is not");
        refused(&[redis, nats, secret], "postgres://");
        refused(&[pg, redis, nats], "shared JWT secret");
        refused(
            &[pg, ("HOTDEAL_REDIS_URL", "rediss://cache"), nats, secret],
            "redis://",
        );
        refused(
            &[pg, redis, nats, secret, ("HOTDEAL_NATS_PREFIX", "a.b")],
            "nats_prefix",
        );
        // Nothing of the URLs in the settings' Debug output either.
        let shown = format!("{:?}", layer(&[pg, redis, nats, secret]));
        assert!(
            !shown.contains("redis-pw") && !shown.contains("bus:4222"),
            "{shown}"
        );
    }

    #[test]
    fn gateway_settings_layer_per_role() {
        let dir = std::env::temp_dir().join(format!("hotdeal-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("hotdeal.toml");
        std::fs::write(
            &file,
            "gateway_timeout_ms = 900\n[upstream]\nall = \"http://a:1\"\norder = [\"http://b:2\"]\n",
        )
        .expect("write");
        let c = Config::load(
            Some(&file),
            env(&[
                ("HOTDEAL_UPSTREAM_ORDER", "http://c:3,http://d:4"),
                ("HOTDEAL_RATE_LIMIT_USER_PER_SEC", "7"),
            ]),
            ConfigLayer {
                upstream: Some(Upstreams::parse_entry("point=http://e:5").expect("flag")),
                ..Default::default()
            },
        )
        .expect("config");
        let names = |r| {
            c.upstreams
                .for_role(r)
                .iter()
                .map(|a| a.authority().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(Role::Order), ["c:3", "d:4"]);
        assert_eq!(names(Role::Point), ["e:5"]);
        assert_eq!(names(Role::Auth), ["a:1"]);
        assert_eq!((c.gateway_timeout_ms, c.rate_limit_user_per_sec), (900, 7));
        assert!(ConfigLayer::from_env(env(&[("HOTDEAL_UPSTREAM_SHOP", "http://a:1")])).is_err());
        let proxies = ConfigLayer::from_env(env(&[("HOTDEAL_TRUSTED_PROXIES", "10.0.0.0/8, ::1")]))
            .expect("proxies");
        assert_eq!(proxies.trusted_proxies.map(|p| p.len()), Some(2));
        assert!(ConfigLayer::from_env(env(&[("HOTDEAL_TRUSTED_PROXIES", "10.0.0.0/99")])).is_err());
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn bad_values_are_reported() {
        assert!(ConfigLayer::from_env(env(&[("HOTDEAL_LISTEN", "nope")])).is_err());
        assert!(ConfigLayer::from_env(env(&[("HOTDEAL_DURABILITY", "maybe")])).is_err());
    }
}
