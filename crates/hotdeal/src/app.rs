//! Wiring: from a [`Config`] to a bound, ready-to-serve application.
//!
//! `App::build` opens the store, loads or creates the JWT secret, binds the
//! listener (port 0 works, so tests never race for ports) and assembles the
//! services; `App::serve` runs until the shutdown future resolves, then
//! drains in-flight requests and closes the store.

use crate::adapters::argon2::Argon2Hasher;
use crate::adapters::memory_admission::MemoryAdmission;
use crate::adapters::sqlite::SqliteStore;
use crate::config::Config;
use crate::ports::{Clock, SystemClock};
use crate::services::tokens::TokenKeys;
use crate::services::{Engines, Storefront, WritePath};
use crate::transport::http;
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
    storefront: Arc<Storefront>,
    store: Arc<SqliteStore>,
    deal_sweep: Duration,
    limits: http::HttpLimits,
}

impl App {
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// As [`App::build`], with an injected clock (tests move time by hand).
    pub async fn build_with_clock(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
        let secret = match &config.jwt_secret {
            Some(s) if s.len() >= 8 => s.clone().into_bytes(),
            Some(_) => bail!("the JWT secret must be at least 8 bytes"),
            None => load_or_create_secret(&config.data_dir)?,
        };
        let store = Arc::new(open_store(config).await?);
        let hasher = Argon2Hasher::new(config.argon2, config.hash_workers, config.hash_queue)
            .context("configuring Argon2")?;
        let admission = Arc::new(MemoryAdmission::new());
        let engines = Engines {
            store: store.clone(),
            ledger: store.clone(),
            admission: admission.clone(),
            coupon_admission: admission,
            clock,
            hasher: Arc::new(hasher),
        };
        let path = WritePath {
            queue: config.order_queue,
            max_batch: config.max_batch,
            payment_window: chrono::Duration::seconds(config.payment_window_secs),
        };
        let storefront = Storefront::start(engines, TokenKeys::new(&secret), path)
            .await
            .context("loading the catalogue")?;
        let storefront = Arc::new(storefront);
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        Ok(Self {
            listener,
            storefront,
            store,
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

    /// The services, for in-process callers (tests, seeding).
    pub fn storefront(&self) -> Arc<Storefront> {
        self.storefront.clone()
    }

    /// Serves until `shutdown` resolves.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let sweeper = tokio::spawn(housekeeping(self.storefront.clone(), self.deal_sweep));
        let router = http::router(self.storefront.clone(), self.limits);
        let result = http::server::serve(self.listener, router, self.limits, shutdown).await;
        sweeper.abort();
        self.store.close().await;
        result.context("serving HTTP")
    }
}

/// Opens the store named by the configuration's URL.
pub async fn open_store(config: &Config) -> anyhow::Result<SqliteStore> {
    if !config.database_url.starts_with("sqlite:") {
        bail!(
            "unsupported database URL {:?}: this build stores in SQLite (sqlite://PATH)",
            config.database_url
        );
    }
    SqliteStore::open(&config.database_url, config.durability)
        .await
        .with_context(|| format!("opening {}", config.database_url))
}

/// The housekeeping that runs every `every`: ended deals give their
/// unsold units back, unpaid orders past their window expire, committed
/// events are relayed, and old idempotency answers are forgotten.
async fn housekeeping(app: Arc<Storefront>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rounds: u64 = 0;
    loop {
        tick.tick().await;
        if let Err(e) = app.settle_ended_deals().await {
            tracing::warn!(error = %e, "settling ended deals failed; will retry");
        }
        if let Err(e) = app.expire_due_orders().await {
            tracing::warn!(error = %e, "expiring unpaid orders failed; will retry");
        }
        if let Err(e) = app.relay_events().await {
            tracing::warn!(error = %e, "relaying events failed; will retry");
        }
        rounds += 1;
        if rounds % 600 == 1 {
            if let Err(e) = app.prune().await {
                tracing::warn!(error = %e, "pruning failed; will retry");
            }
        }
    }
}

/// The JWT secret kept in the data dir, created on first start.
fn load_or_create_secret(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let path = dir.join("jwt-secret");
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        return B64
            .decode(text.trim())
            .with_context(|| format!("{} is not base64", path.display()));
    }
    let mut key = [0u8; 48];
    rand::rngs::OsRng.fill_bytes(&mut key);
    write_private(&path, B64.encode(key).as_bytes())?;
    tracing::info!(path = %path.display(), "generated a new JWT secret");
    Ok(key.to_vec())
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("creating {}", path.display()))
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
}
