//! OTLP export of the spans (`[telemetry] otlp_endpoint`, off by default): the `tracing` spans
//! (`request`, `route.select`, `fx.quote`, `ledger.debit`, `payment`, `rail.submit`,
//! `webhook.deliver`) go to an OpenTelemetry collector as OTLP/HTTP JSON, in batches from a
//! thread of their own. A request's spans belong to its W3C trace id, and a payout's saga and
//! webhook spans to the trace of the request that submitted it ([`continue_trace`]), so a
//! collector shows one trace per payout.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider};
use opentelemetry::Context;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, Tracer};
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// How often a batch of spans leaves.
const EXPORT_EVERY: Duration = Duration::from_secs(1);

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// The tracer exporting to `endpoint` (an OTLP/HTTP traces URL), or `None` when it is empty.
/// Call before any async runtime starts (the exporter's HTTP client blocks on its own thread).
pub fn tracer(endpoint: &str) -> Result<Option<Tracer>, String> {
    if endpoint.is_empty() {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(endpoint)
        .with_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| format!("telemetry.otlp_endpoint {endpoint:?}: {e}"))?;
    let batches = BatchConfigBuilder::default().with_scheduled_delay(EXPORT_EVERY).build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(exporter).with_batch_config(batches).build())
        .with_resource(Resource::builder().with_service_name("senderod").build())
        .build();
    let tracer = provider.tracer("sendero");
    PROVIDER.set(provider).map_err(|_| "telemetry started twice".to_owned())?;
    Ok(Some(tracer))
}

/// Makes `span` (and so its children) part of the trace `trace_id` (32 hex digits), when spans
/// are exported.
pub fn continue_trace(span: &tracing::Span, trace_id: &str) {
    if PROVIDER.get().is_none() {
        return;
    }
    let Ok(trace) = TraceId::from_hex(trace_id) else { return };
    // The remote parent: the client's (or the submitting request's) place in the trace.
    let parent = SpanId::from_bytes(rand::random::<u64>().max(1).to_be_bytes());
    let remote = SpanContext::new(trace, parent, TraceFlags::SAMPLED, true, TraceState::default());
    // A span the exporting layer does not see (filtered out) has no context to set.
    let _ = span.set_parent(Context::new().with_remote_span_context(remote));
}

/// Sends the spans still buffered (at shutdown).
pub fn flush() {
    if let Some(provider) = PROVIDER.get() {
        if let Err(e) = provider.shutdown() {
            tracing::warn!(error = %e, "the last spans were not exported");
        }
    }
}
