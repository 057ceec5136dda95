//! The process's log and trace pipeline, chosen at start: human-readable
//! lines (the default) or one JSON object per line (`--log-format json`),
//! filtered by `RUST_LOG`; and, in a build with the `otlp` feature, spans
//! exported over OTLP/HTTP to `--otlp-endpoint` (see [`super::otel`]),
//! filtered on their own by `HOTDEAL_OTLP_FILTER` (default `hotdeal=debug`:
//! the request, service, store and writer spans, whatever the log level).
//! A build without the feature refuses the setting rather than ignore it.

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
#[derive(Default)]
pub struct Guard {
    #[cfg(feature = "otlp")]
    // Held for its `Drop`, which flushes and shuts the exporter down.
    _exporter: Option<super::otel::Exporter>,
}

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
    match otlp_endpoint {
        None => {
            registry.try_init()?;
            Ok(Guard::default())
        }
        #[cfg(feature = "otlp")]
        Some(endpoint) => {
            let exporter = super::otel::Exporter::new(endpoint)?;
            let filter = EnvFilter::try_from_env("HOTDEAL_OTLP_FILTER")
                .unwrap_or_else(|_| EnvFilter::new("hotdeal=debug"));
            registry
                .with(exporter.layer().with_filter(filter))
                .try_init()?;
            Ok(Guard {
                _exporter: Some(exporter),
            })
        }
        #[cfg(not(feature = "otlp"))]
        Some(_) => anyhow::bail!(
            "--otlp-endpoint: this build has no OTLP exporter (build with `--features otlp`)"
        ),
    }
}
