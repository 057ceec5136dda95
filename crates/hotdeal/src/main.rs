//! The `hotdeal` command: `serve`, `seed demo`, `load <scenario>`.
//! It only parses arguments and calls the library.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use hotdeal::config::{AdminListen, Config, ConfigLayer, Roles, Secret, Upstreams};
use hotdeal::observability::logging::{self, LogFormat};
use hotdeal::transport::gateway::Gateway;
use hotdeal::{app, seed, App};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Allocation is a sixth of a scaled instance's CPU under glibc's malloc
/// (request and response buffers, JSON, batches moved between tasks on
/// different worker threads); mimalloc's per-thread free lists make it
/// markedly cheaper (`bench/RESULTS.md`, "Scaled mode").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "hotdeal", version, about = "Flash-sale commerce backend")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as `text` or one JSON object per line (`json`).
    #[arg(
        long,
        global = true,
        env = "HOTDEAL_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
    /// Export spans over OTLP/HTTP to this collector's traces URL (e.g.
    /// http://collector:4318/v1/traces). Needs a build with `--features
    /// otlp`; other builds refuse the setting rather than ignore it.
    #[arg(long, global = true, env = "HOTDEAL_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the storefront API (embedded SQLite by default).
    Serve {
        #[command(flatten)]
        settings: Settings,
        /// Load the demo catalogue first (skipped if already loaded).
        #[arg(long)]
        demo: bool,
    },
    /// Load data into the store.
    Seed {
        #[command(subcommand)]
        what: SeedWhat,
    },
    /// Replay a seed load-test scenario against a running hotdeal.
    Load(hotdeal_load::LoadArgs),
}

#[derive(Subcommand)]
enum SeedWhat {
    /// A seller, ~50 products and 20 deals (password `hotdeal-demo`).
    Demo {
        #[command(flatten)]
        settings: Settings,
    },
}

/// Settings that can also come from `hotdeal.toml` and `HOTDEAL_*`.
#[derive(Args)]
struct Settings {
    /// Configuration file (TOML); default `hotdeal.toml` if it exists.
    #[arg(long, default_value = "hotdeal.toml")]
    config: PathBuf,
    /// What this process runs: `all` services [default], `gateway`, or a
    /// list of services (`auth,product,order,coupon,point`).
    #[arg(long)]
    role: Option<Roles>,
    /// Listen address [default: 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// The product role's gRPC listener [default in a split process with
    /// the product role: 127.0.0.1:50051].
    #[arg(long)]
    grpc_listen: Option<SocketAddr>,
    /// The product service's gRPC address (http://HOST:PORT), for an order
    /// role whose product role runs in another process.
    #[arg(long)]
    product_url: Option<String>,
    /// Admin listener for /metrics and /ops, or `off` [default: 127.0.0.1:9090].
    #[arg(long)]
    admin_listen: Option<AdminListen>,
    /// Data directory [default: ./data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Store URL: sqlite://PATH or postgres://USER@HOST/DB
    /// [default: sqlite://<data-dir>/hotdeal.db]. A password in it is never
    /// logged; prefer HOTDEAL_DATABASE_URL (a command line is visible to
    /// other users of the machine).
    #[arg(long)]
    database_url: Option<String>,
    /// PostgreSQL: the schema for hotdeal's tables (created if missing).
    #[arg(long)]
    database_schema: Option<String>,
    /// HS256 secret for access tokens, at least 32 bytes [default: generated,
    /// kept in the data dir]. Prefer --jwt-secret-file or HOTDEAL_JWT_SECRET:
    /// other users of the machine can read a command line.
    #[arg(long)]
    jwt_secret: Option<String>,
    /// A file holding the HS256 secret (at least 32 bytes).
    #[arg(long)]
    jwt_secret_file: Option<PathBuf>,
    /// Redis for the shared hot tier (scaled mode, with --nats-url and a
    /// postgres:// store). Prefer HOTDEAL_REDIS_URL if it holds a password.
    #[arg(long)]
    redis_url: Option<String>,
    /// NATS with JetStream for committed events (scaled mode).
    #[arg(long)]
    nats_url: Option<String>,
    /// Threads of the async runtime [default: one per core]. Processes
    /// sharing a machine (several instances, the split roles) run best
    /// with cores ÷ processes each.
    #[arg(long)]
    workers: Option<usize>,
    /// Argon2id memory in KiB [default: 19456].
    #[arg(long)]
    argon2_memory_kib: Option<u32>,
    /// Argon2id passes [default: 2].
    #[arg(long)]
    argon2_iterations: Option<u32>,
    /// Argon2id lanes [default: 1].
    #[arg(long)]
    argon2_parallelism: Option<u32>,
    /// Gateway: the addresses of a role's processes, ROLE=http://HOST:PORT[,…]
    /// (ROLE: auth, product, order, coupon, point, or all for all-in-one
    /// processes). Repeat for each role.
    #[arg(long, value_parser = Upstreams::parse_entry)]
    upstream: Vec<Upstreams>,
}

impl Settings {
    fn resolve(self) -> anyhow::Result<Config> {
        let flags = ConfigLayer {
            roles: self.role,
            listen: self.listen,
            grpc_listen: self.grpc_listen,
            product_url: self.product_url,
            admin_listen: self.admin_listen,
            data_dir: self.data_dir,
            database_url: self.database_url.map(Secret::new),
            database_schema: self.database_schema,
            jwt_secret: self.jwt_secret.map(Secret::new),
            jwt_secret_file: self.jwt_secret_file,
            redis_url: self.redis_url.map(Secret::new),
            nats_url: self.nats_url.map(Secret::new),
            workers: self.workers,
            argon2_memory_kib: self.argon2_memory_kib,
            argon2_iterations: self.argon2_iterations,
            argon2_parallelism: self.argon2_parallelism,
            upstream: self.upstream.into_iter().reduce(Upstreams::merge),
            ..Default::default()
        };
        Config::load(Some(&self.config), std::env::vars(), flags)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _logging = match logging::init(cli.log_format, cli.otlp_endpoint.as_deref()) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    // The settings are read before the runtime starts: they say how many
    // threads it gets.
    let job = match Job::from(cli.command) {
        Ok(job) => job,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(workers) = job.workers() {
        runtime.worker_threads(workers);
    }
    let runtime = match runtime.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(job)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A command with its settings resolved.
enum Job {
    Serve { config: Config, demo: bool },
    SeedDemo { config: Config },
    Load(hotdeal_load::LoadArgs),
}

impl Job {
    fn from(command: Command) -> anyhow::Result<Self> {
        Ok(match command {
            Command::Serve { settings, demo } => Job::Serve {
                config: settings.resolve()?,
                demo,
            },
            Command::Seed {
                what: SeedWhat::Demo { settings },
            } => Job::SeedDemo {
                config: settings.resolve()?,
            },
            Command::Load(args) => Job::Load(args),
        })
    }

    fn workers(&self) -> Option<usize> {
        match self {
            Job::Serve { config, .. } | Job::SeedDemo { config } => config.workers,
            Job::Load(_) => None,
        }
    }
}

async fn run(job: Job) -> anyhow::Result<ExitCode> {
    match job {
        Job::Serve { config, demo } => {
            if config.roles.is_gateway() {
                let gateway = Gateway::build(&config).await?;
                tracing::info!(addr = %gateway.local_addr(), "hotdeal gateway listening");
                if let Some(admin) = gateway.admin_addr() {
                    tracing::info!(addr = %admin, "gateway metrics on /metrics");
                }
                gateway.serve(app::shutdown_signal()).await?;
                return Ok(ExitCode::SUCCESS);
            }
            let store = config.store_backend()?.name();
            let app = App::build(&config).await?;
            if demo && seed::demo(&app.storefront()).await? {
                tracing::info!(
                    "demo data loaded: log in as {} / {}",
                    seed::BUYER_EMAIL,
                    seed::DEMO_PASSWORD
                );
            }
            let roles = config.roles.to_string();
            tracing::info!(addr = %app.local_addr(), store, roles, "hotdeal listening");
            if let Some(grpc) = app.grpc_addr() {
                tracing::info!(addr = %grpc, "product service on gRPC (with health and reflection)");
            }
            if let Some(admin) = app.admin_addr() {
                tracing::info!(addr = %admin, "metrics on /metrics, live ops page on /ops");
            }
            app.serve(app::shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Job::SeedDemo { config } => {
            // The same wiring as `serve` on a throwaway port, so seeding
            // obeys every rule the API does.
            let app = App::build(&Config {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                admin_listen: None,
                ..config
            })
            .await
            .context("opening the store")?;
            let loaded = seed::demo(&app.storefront()).await?;
            println!(
                "{}",
                if loaded {
                    "demo data loaded"
                } else {
                    "demo data already present"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Job::Load(args) => {
            let code = hotdeal_load::run(args).await?;
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
        }
    }
}
