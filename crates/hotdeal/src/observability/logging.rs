//! The process's log and trace pipeline, chosen at start: human-readable
//! lines (the default) or one JSON object per line (`--log-format json`),
//! filtered by `RUST_LOG`. `--otlp-endpoint` is reserved for an OTLP span
//! exporter (to come behind a cargo feature, so the default build stays
//! lean); until then it is refused rather than silently ignored.

use std::io::IsTerminal;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(format!("`{s}` is not a log format (text or json)")),
        }
    }
}

/// Keeps the exporter alive; dropping it flushes the spans still queued.
#[must_use]
pub struct Guard {}

/// Installs the global subscriber: logs to stderr, spans to OTLP if asked.
pub fn init(format: LogFormat, otlp_endpoint: Option<&str>) -> anyhow::Result<Guard> {
    let filter =
        || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let logs = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_filter(filter())
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .with_filter(filter())
            .boxed(),
    };
    let registry = tracing_subscriber::registry().with(logs);
    if otlp_endpoint.is_some() {
        anyhow::bail!("--otlp-endpoint: this build has no OTLP exporter");
    }
    registry.try_init()?;
    Ok(Guard {})
}
