//! Wiring: from a [`Config`] to a bound, ready-to-serve application.
//!
//! `App::build` opens the store named by the configuration (SQLite or
//! PostgreSQL, see [`StoreBackend`]), loads or creates the JWT secret, binds the
//! listener (port 0 works, so tests never race for ports) and assembles the
//! services; `App::serve` runs until the shutdown future resolves, then
//! drains in-flight requests and closes the store.

use crate::adapters::argon2::Argon2Hasher;
use crate::adapters::memory_admission::MemoryAdmission;
use crate::adapters::memory_queue::MemoryQueue;
use crate::adapters::nats::{NatsBus, StreamLimits};
use crate::adapters::postgres::PgStore;
use crate::adapters::product_grpc::ProductTierClient;
use crate::adapters::redis::{RedisQueue, RedisTier};
use crate::adapters::sqlite::SqliteStore;
use crate::config::{Config, Role, Roles, ScaledSettings, StoreBackend, MIN_JWT_SECRET_BYTES};
use crate::ports::{
    CatalogReads, Clock, CouponAdmission, PasswordHasher, QueueStore, RunningKeys, StockAdmission,
    SystemClock,
};
use crate::services::tokens::TokenKeys;
use crate::services::{
    Catalogue, Coupons, Engines, Events, Idempotency, InFlight, Ordering, QueueSettings,
    StoreParts, Storefront, WritePath, RELAY_EVERY,
};
use crate::transport::{admin, grpc, http};
use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand::RngCore;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

pub struct App {
    listener: TcpListener,
    /// The product service over gRPC, in a process with the product role
    /// that has a gRPC address.
    grpc: Option<TcpListener>,
    /// What this process runs.
    roles: Roles,
    /// `/metrics` and the ops page, when enabled.
    admin: Option<TcpListener>,
    storefront: Arc<Storefront>,
    store: OpenStore,
    deal_sweep: Duration,
    limits: http::HttpLimits,
    /// Committed events on NATS, in the scaled mode.
    events: Option<EventsOnNats>,
}

impl App {
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// As [`App::build`], with an injected clock (tests move time by hand).
    pub async fn build_with_clock(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        create_private_dir(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
        let backend = config.store_backend()?;
        let scaled = config.scaled()?;
        config.check_roles()?;
        if config.roles.is_gateway() {
            bail!("the gateway role runs no service: start it with `hotdeal serve --role gateway`");
        }
        let secret = jwt_secret(config)?;
        let store = open_store(&backend, scaled.is_some()).await?;
        // Only the auth role hashes passwords.
        let hasher: Option<Arc<dyn PasswordHasher>> = if config.roles.contains(Role::Auth) {
            let hasher = Argon2Hasher::new(config.argon2, config.hash_workers, config.hash_queue)
                .context("configuring Argon2")?;
            Some(Arc::new(hasher))
        } else {
            None
        };
        let mut tier = match &scaled {
            Some(s) => Tier::shared(s, clock.clone(), config.queue_max_users).await?,
            None => Tier::in_process(config.queue_max_users),
        };
        let mut remote_catalogue: Option<Arc<dyn CatalogReads>> = None;
        if let Some(url) = config
            .product_url
            .as_deref()
            .filter(|_| !config.roles.contains(Role::Product))
        {
            // The stock tier is the product service's: orders are admitted
            // over gRPC.
            let deadline = Duration::from_millis(config.product_deadline_ms);
            let product = Arc::new(ProductTierClient::new(url, deadline)?);
            tier.stock = product.clone();
            remote_catalogue = Some(product);
            tracing::info!("catalogue reads and stock admission: the product service over gRPC");
        }
        let engines = Engines {
            store: store.parts(),
            admission: tier.stock,
            remote_catalogue,
            coupon_admission: tier.coupons,
            running: tier.running,
            clock,
            hasher,
            queue: tier.queue,
        };
        let path = WritePath {
            queue: config.order_queue,
            max_batch: config.max_batch,
            payment_window: chrono::Duration::seconds(config.payment_window_secs),
            waiting_room: QueueSettings {
                admit_per_sec: config.queue_admit_per_sec,
                admitted_for: chrono::Duration::seconds(config.queue_admitted_secs),
                poll_min: chrono::Duration::milliseconds(config.queue_poll_ms as i64),
                poll_max: chrono::Duration::milliseconds(
                    config.queue_poll_max_ms.max(config.queue_poll_ms) as i64,
                ),
            },
        };
        // Before the catalogue loads: the follower starts after this point
        // of the stream, so no change committed after the load is missed.
        let events = match config.scaled()? {
            Some(scaled) => Some(EventsOnNats::connect(&scaled).await?),
            None => None,
        };
        let storefront = Storefront::start(engines, TokenKeys::new(&secret), path, config.roles)
            .await
            .context("loading the catalogue")?;
        let storefront = Arc::new(storefront);
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let grpc = match config
            .grpc_listen
            .filter(|_| config.roles.contains(Role::Product))
        {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding the gRPC listener {addr}"))?,
            ),
            None => None,
        };
        let admin = match config.admin_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding the admin listener {addr}"))?,
            ),
            None => None,
        };
        Ok(Self {
            listener,
            grpc,
            roles: config.roles,
            admin,
            storefront,
            store,
            events,
            deal_sweep: Duration::from_millis(config.deal_sweep_ms.max(10)),
            limits: http::HttpLimits {
                max_in_flight: config.max_in_flight,
                read_cache_max_age: Duration::from_millis(config.read_cache_ms),
                max_connections: config.max_connections,
                header_timeout: Duration::from_millis(config.header_timeout_ms),
                body_timeout: Duration::from_millis(config.body_timeout_ms),
                idle_timeout: Duration::from_millis(config.idle_timeout_ms),
            },
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// The gRPC listener's address (the product service), if any.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The admin listener's address (`/metrics`, `/ops`), if enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The store this process opened, for in-process callers (tests that
    /// race it against another handle).
    pub fn store(&self) -> &OpenStore {
        &self.store
    }

    /// The services of this process's roles, for in-process callers
    /// (tests, seeding).
    pub fn storefront(&self) -> Arc<Storefront> {
        self.storefront.clone()
    }

    /// Serves until `shutdown` resolves.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let sweeper = tokio::spawn(housekeeping(
            Jobs::of(self.roles, &self.storefront),
            self.deal_sweep,
        ));
        let event_tasks = self
            .events
            .as_ref()
            .map(|e| e.start(&self.storefront))
            .unwrap_or_default();
        let router = http::router(self.storefront.clone(), self.limits, self.roles);
        let (grpc_stop, grpc_stopping) = tokio::sync::oneshot::channel::<()>();
        // Bound only with the product role, which always has a catalogue.
        let catalogue = self.storefront.catalogue.clone();
        let grpc = self.grpc.zip(catalogue).map(|(listener, catalogue)| {
            let stopping = async {
                let _ = grpc_stopping.await;
            };
            tokio::spawn(grpc::serve(listener, catalogue, stopping))
        });
        let (admin_stop, admin_stopping) = tokio::sync::oneshot::channel::<()>();
        let admin = self.admin.map(|listener| {
            let stopping = async {
                let _ = admin_stopping.await;
            };
            tokio::spawn(admin::serve(listener, self.storefront.clone(), stopping))
        });
        let result = http::server::serve(self.listener, router, self.limits, shutdown).await;
        let _ = admin_stop.send(());
        // Order roles may still settle reservations while HTTP drains: the
        // product service stops after it.
        let _ = grpc_stop.send(());
        if let Some(task) = grpc {
            if let Ok(Err(e)) = task.await {
                tracing::warn!(error = %e, "the gRPC listener failed");
            }
        }
        if let Some(task) = admin {
            if let Ok(Err(e)) = task.await {
                tracing::warn!(error = %e, "the admin listener failed");
            }
        }
        sweeper.abort();
        for task in event_tasks {
            task.abort();
        }
        self.store.close().await;
        result.context("serving HTTP")
    }
}

/// An opened store, whichever backend it is.
#[derive(Clone, Debug)]
pub enum OpenStore {
    Sqlite(Arc<SqliteStore>),
    Postgres(Arc<PgStore>),
}

impl OpenStore {
    /// The store's parts, as the services hold them.
    pub fn parts(&self) -> StoreParts {
        match self {
            Self::Sqlite(s) => StoreParts::of(s.clone()),
            Self::Postgres(s) => StoreParts::of(s.clone()),
        }
    }

    /// Flushes and closes; for PostgreSQL this also releases the instance
    /// lock, so the next instance can start.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(s) => s.close().await,
            Self::Postgres(s) => s.close().await,
        }
    }
}

/// The admission tier, the running idempotency keys and the waiting
/// rooms' queues.
struct Tier {
    stock: Arc<dyn StockAdmission>,
    coupons: Arc<dyn CouponAdmission>,
    running: Arc<dyn RunningKeys>,
    queue: Arc<dyn QueueStore>,
}

impl Tier {
    /// One process owns every count and queue.
    fn in_process(queue_max_users: u64) -> Self {
        let memory = Arc::new(MemoryAdmission::new());
        Self {
            stock: memory.clone(),
            coupons: memory,
            running: Arc::new(InFlight::default()),
            queue: Arc::new(MemoryQueue::new(queue_max_users)),
        }
    }

    /// Counts and queues shared by every instance, in Redis.
    async fn shared(
        s: &ScaledSettings,
        clock: Arc<dyn Clock>,
        queue_max_users: u64,
    ) -> anyhow::Result<Self> {
        let redis = RedisTier::open(&s.redis_url, &s.redis_prefix, s.reservation_ttl, clock)
            .await
            .context("opening the shared tier")?;
        tracing::info!(prefix = %s.redis_prefix, "admission tier and waiting rooms: Redis (shared)");
        Ok(Self {
            stock: Arc::new(redis.clone()),
            coupons: Arc::new(redis.clone()),
            queue: Arc::new(RedisQueue::new(&redis, queue_max_users)),
            running: Arc::new(redis),
        })
    }
}

/// Opens the store of `backend`; `shared` when several instances write to
/// it (no instance lock). The URL may carry a password: it appears in no
/// message.
pub async fn open_store(backend: &StoreBackend, shared: bool) -> anyhow::Result<OpenStore> {
    Ok(match backend {
        StoreBackend::Sqlite { url, durability } => OpenStore::Sqlite(Arc::new(
            SqliteStore::open(url.expose(), *durability)
                .await
                .context("opening the SQLite store")?,
        )),
        StoreBackend::Postgres(settings) if shared => OpenStore::Postgres(Arc::new(
            PgStore::open_shared(settings)
                .await
                .context("opening the PostgreSQL store")?,
        )),
        StoreBackend::Postgres(settings) => OpenStore::Postgres(Arc::new(
            PgStore::open(settings)
                .await
                .context("opening the PostgreSQL store")?,
        )),
    })
}

/// The HS256 key: from the settings, from the secret file, or generated
/// once into the data dir. Anything shorter than 32 bytes is refused: an
/// empty or one-byte key lets anyone forge tokens.
pub(crate) fn jwt_secret(config: &Config) -> anyhow::Result<Vec<u8>> {
    let (secret, from) = match (&config.jwt_secret, &config.jwt_secret_file) {
        (Some(s), _) => (
            s.expose().as_bytes().to_vec(),
            "the JWT secret setting".to_owned(),
        ),
        (None, Some(path)) => {
            let text = std::fs::read(path)
                .with_context(|| format!("reading the JWT secret file {}", path.display()))?;
            // A trailing newline from `echo` or an editor is not key material.
            let end = text
                .iter()
                .rposition(|b| !matches!(b, b'\n' | b'\r'))
                .map_or(0, |i| i + 1);
            (text[..end].to_vec(), path.display().to_string())
        }
        (None, None) => return load_or_create_secret(&config.data_dir),
    };
    if secret.len() < MIN_JWT_SECRET_BYTES {
        bail!(
            "{from} holds {} bytes; the JWT secret must be at least {MIN_JWT_SECRET_BYTES} bytes \
             (e.g. `openssl rand -base64 48`)",
            secret.len()
        );
    }
    Ok(secret)
}

/// The housekeeping jobs a process runs, each holding the service whose
/// data it changes: a split deployment runs each job in the processes of
/// one role only (several of them are safe: the jobs are guarded in the
/// store and the tier). The all-in-one process runs them all.
struct Jobs {
    /// Deals that ended give their units back; the tier is audited (the
    /// product role).
    deals: Option<Arc<Catalogue>>,
    /// Unpaid orders expire; waiting rooms of ended deals are dropped (the
    /// order role).
    orders: Option<Arc<Ordering>>,
    /// Overdue reservations of the stock tier are settled from the store's
    /// fence: by the product role, whose tier it is, and the order role,
    /// which holds in it.
    stock_reservations: Option<Arc<Catalogue>>,
    /// Overdue coupon issues are settled likewise (the coupon role).
    issue_reservations: Option<Arc<Coupons>>,
    /// Committed events are relayed and old ones pruned: every role writes
    /// events (a sign-up, a charge, an order).
    events: Arc<Events>,
    /// Old idempotency answers are forgotten (every role).
    idempotency: Arc<Idempotency>,
}

impl Jobs {
    fn of(roles: Roles, app: &Storefront) -> Self {
        let (product, order) = (roles.contains(Role::Product), roles.contains(Role::Order));
        Self {
            deals: app.catalogue.clone().filter(|_| product),
            orders: app.ordering.clone().filter(|_| order),
            stock_reservations: app.catalogue.clone().filter(|_| product || order),
            issue_reservations: app.coupons.clone().filter(|_| roles.contains(Role::Coupon)),
            events: app.events.clone(),
            idempotency: app.idempotency.clone(),
        }
    }
}

/// The housekeeping that runs every `every`: ended deals give their
/// unsold units back, unpaid orders past their window expire, committed
/// events are relayed, the queues of ended deals are dropped, and old
/// idempotency answers are forgotten — each where `jobs` says.
async fn housekeeping(jobs: Jobs, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rounds: u64 = 0;
    loop {
        tick.tick().await;
        if let Some(catalogue) = &jobs.deals {
            if let Err(e) = catalogue.settle_ended_deals().await {
                tracing::warn!(error = %e, "settling ended deals failed; will retry");
            }
        }
        if let Some(ordering) = &jobs.orders {
            if let Err(e) = ordering.expire_due_orders().await {
                tracing::warn!(error = %e, "expiring unpaid orders failed; will retry");
            }
        }
        // Reservations a dead instance (or a lost answer) left behind.
        if let Some(catalogue) = &jobs.stock_reservations {
            if let Err(e) = catalogue.reconcile().await {
                tracing::warn!(error = %e, "reconciling reservations failed; will retry");
            }
        }
        if let Some(coupons) = &jobs.issue_reservations {
            if let Err(e) = coupons.reconcile().await {
                tracing::warn!(error = %e, "reconciling reservations failed; will retry");
            }
        }
        if let Err(e) = jobs.events.relay_events().await {
            tracing::warn!(error = %e, "relaying events failed; will retry");
        }
        if let Some(ordering) = &jobs.orders {
            ordering.sweep_queues().await;
        }
        rounds += 1;
        if let Some(catalogue) = jobs.deals.as_ref().filter(|_| rounds % 10 == 1) {
            if let Err(e) = catalogue.audit_tier().await {
                tracing::debug!(error = %e, "auditing the tier failed; will retry");
            }
        }
        if rounds % 600 == 1 {
            let pruned = match jobs.idempotency.prune().await {
                Ok(()) => jobs.events.prune().await,
                Err(e) => Err(e),
            };
            if let Err(e) = pruned {
                tracing::warn!(error = %e, "pruning failed; will retry");
            }
        }
    }
}

/// The scaled mode's committed events: the NATS connection, and where in
/// the stream this instance's catalogue starts following.
struct EventsOnNats {
    bus: NatsBus,
    after: u64,
}

impl EventsOnNats {
    /// Connects and creates or updates the stream. The URL may carry a
    /// password: no message names it.
    async fn connect(scaled: &ScaledSettings) -> anyhow::Result<Self> {
        let bus = NatsBus::connect(&scaled.nats_url, &scaled.nats_prefix)
            .await
            .context("connecting to NATS for committed events")?;
        let limits = StreamLimits {
            max_bytes: scaled.nats_stream_max_bytes,
            ..StreamLimits::default()
        };
        bus.ensure_stream(limits)
            .await
            .context("setting up the NATS event stream")?;
        let after = bus
            .position()
            .await
            .context("reading the NATS event stream")?;
        Ok(Self { bus, after })
    }

    /// Starts the outbox relay and the catalogue follower.
    fn start(&self, app: &Arc<Storefront>) -> Vec<tokio::task::JoinHandle<()>> {
        vec![
            app.events
                .spawn_relay(Arc::new(self.bus.clone()), RELAY_EVERY),
            self.bus
                .follow(self.bus.catalogue_subjects(), self.after, app.clone()),
        ]
    }
}

/// The JWT secret kept in the data dir, created on first start. A file
/// that holds less than a full key (left by an old version, or edited by
/// hand) is refused rather than used.
fn load_or_create_secret(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let path = dir.join("jwt-secret");
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let key = B64
            .decode(text.trim())
            .with_context(|| format!("{} is not base64", path.display()))?;
        if key.len() < MIN_JWT_SECRET_BYTES {
            bail!(
                "{} holds a {}-byte key; at least {MIN_JWT_SECRET_BYTES} bytes are required. \
                 Delete the file to generate a new key (signed-in users will log in again)",
                path.display(),
                key.len()
            );
        }
        return Ok(key);
    }
    let mut key = [0u8; 48];
    rand::rngs::OsRng.fill_bytes(&mut key);
    write_atomically(&path, B64.encode(key).as_bytes())?;
    tracing::info!(path = %path.display(), "generated a new JWT secret");
    Ok(key.to_vec())
}

/// Writes `bytes` to `path` so that `path` either does not exist or holds
/// all of them, readable by the owner only: a temporary file, fsync,
/// rename, fsync of the directory. A crash or a full disk never leaves a
/// short file behind under the real name.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        let mut f = private_file(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.with_context(|| format!("writing {}", path.display()))
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::create(path)
}

/// Creates the data dir (and missing parents) readable by the owner only:
/// it holds password hashes and the signing key.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_secret_is_kept_and_private() {
        let dir = std::env::temp_dir().join(format!("hotdeal-secret-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let first = load_or_create_secret(&dir).expect("create");
        assert_eq!(first.len(), 48);
        assert_eq!(
            load_or_create_secret(&dir).expect("load"),
            first,
            "same secret after restart"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("jwt-secret"))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = std::env::temp_dir().join(format!("hotdeal-secret-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&other).expect("dir");
        assert_ne!(
            load_or_create_secret(&other).expect("create"),
            first,
            "never a fixed secret"
        );
        std::fs::remove_dir_all(dir).ok();
        std::fs::remove_dir_all(other).ok();
    }

    fn temp_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("hotdeal-secret-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }

    fn config_in(dir: &Path) -> Config {
        let mut config = Config::for_tests(dir);
        config.jwt_secret = None;
        config
    }

    #[test]
    fn short_secrets_are_refused_from_every_source() {
        let dir = temp_dir();
        let mut config = config_in(&dir);
        for short in ["", "x", "0123456789abcdef0123456789abcde"] {
            config.jwt_secret = Some(crate::config::Secret::new(short));
            let err = jwt_secret(&config).expect_err("short setting").to_string();
            assert!(err.contains("at least 32 bytes"), "{err}");
        }
        config.jwt_secret = None;
        let file = dir.join("given-secret");
        // Trailing newlines are not key material: 31 bytes + "\n" is short.
        std::fs::write(&file, "0123456789abcdef0123456789abcde\n").expect("write");
        config.jwt_secret_file = Some(file.clone());
        assert!(jwt_secret(&config).is_err(), "short file");
        std::fs::write(&file, "0123456789abcdef0123456789abcdef\n").expect("write");
        assert_eq!(
            jwt_secret(&config).expect("32 bytes"),
            b"0123456789abcdef0123456789abcdef"
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn an_empty_or_short_generated_secret_file_is_refused_not_used() {
        // What a first start on a full disk used to leave behind.
        for content in ["", "eA==", "MDEyMzQ1Njc4OWFiY2RlZg=="] {
            let dir = temp_dir();
            std::fs::write(dir.join("jwt-secret"), content).expect("write");
            let err = jwt_secret(&config_in(&dir)).expect_err("refused");
            assert!(err.to_string().contains("Delete the file"), "{err}");
            std::fs::remove_dir_all(dir).ok();
        }
    }

    #[test]
    fn a_failed_secret_write_leaves_no_file_behind() {
        let dir = temp_dir();
        // A directory where the file should go makes the rename fail.
        let path = dir.join("jwt-secret");
        std::fs::create_dir(&path).expect("blocker");
        assert!(write_atomically(&path, b"secret").is_err());
        let left: Vec<_> = std::fs::read_dir(&dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(
            left,
            vec![std::ffi::OsString::from("jwt-secret")],
            "no temp file left"
        );
        std::fs::remove_dir_all(dir).ok();
    }
}
