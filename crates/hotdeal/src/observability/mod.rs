//! Observability: counters and histograms recorded on the hot path
//! ([`metrics`]), their Prometheus exposition ([`exposition`]), W3C trace
//! context on HTTP ([`trace_context`]) and the log / trace pipeline set up
//! by the binary ([`logging`]).
//!
//! Hooks for what does not exist yet: the scaled-out mode will add a
//! per-instance status family to the exposition and the ops page's
//! `instances` list; the waiting room sheds with [`metrics::Shed::WaitingRoom`].

pub mod exposition;
pub mod logging;
pub mod metrics;
#[cfg(feature = "otlp")]
pub mod otel;
pub mod trace_context;

pub use metrics::Metrics;
