//! OTLP span export (the `otlp` feature): the tracing spans of a request —
//! the request span keyed on its route template, and the service, store
//! and writer spans inside it — go to an OpenTelemetry collector over
//! OTLP/HTTP (protobuf), batched on the exporter's own thread.
//!
//! A request's spans join the caller's trace: an incoming `traceparent`
//! becomes the remote parent of the request span, and the `traceparent`
//! answered names the exported span, so a client, the collector and the
//! logs agree on one trace id.

use super::trace_context::TraceParent;
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::registry::LookupSpan;

/// The exporter pipeline; dropping it flushes what is queued.
pub struct Exporter {
    provider: SdkTracerProvider,
}

impl Exporter {
    /// Exports to `endpoint`, the collector's traces URL (e.g.
    /// `http://collector:4318/v1/traces`).
    pub fn new(endpoint: &str) -> anyhow::Result<Self> {
        let exporter = SpanExporter::builder()
            .with_http()
            .with_endpoint(endpoint)
            .build()?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name("hotdeal").build())
            .build();
        Ok(Self { provider })
    }

    /// The tracing layer that turns spans into OpenTelemetry spans.
    pub fn layer<S>(&self) -> impl tracing_subscriber::Layer<S>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        tracing_opentelemetry::layer().with_tracer(self.provider.tracer("hotdeal"))
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("flushing spans to the OTLP endpoint failed: {e}");
        }
    }
}

/// Makes `incoming` (a caller's `traceparent`) the remote parent of
/// `span`, and returns this hop as exported, if the span is exported.
pub fn join(span: &tracing::Span, incoming: Option<TraceParent>) -> Option<TraceParent> {
    if let Some(parent) = incoming {
        let remote = SpanContext::new(
            TraceId::from_bytes(parent.trace_id),
            SpanId::from_bytes(parent.span_id),
            TraceFlags::new(parent.flags),
            true,
            TraceState::default(),
        );
        let cx = opentelemetry::Context::new().with_remote_span_context(remote);
        span.set_parent(cx).ok()?;
    }
    let context = span.context();
    let own = context.span();
    let own = own.span_context();
    own.is_valid().then(|| TraceParent {
        trace_id: own.trace_id().to_bytes(),
        span_id: own.span_id().to_bytes(),
        flags: own.trace_flags().to_u8(),
    })
}
