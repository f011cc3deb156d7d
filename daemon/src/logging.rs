//! Log output: human-readable or JSON lines on stderr, filtered by `log.level` (or `RUST_LOG`).
//! The embedded libraries (ldk-node, BDK) log through the `log` facade; their records are
//! forwarded here, with the few that are routine on a healthy gateway lowered to DEBUG.

use tracing_log::{AsLog, LogTracer};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, TelemetryConfig};

/// Installs the global subscriber (with the OTLP span export when `telemetry` asks for it) and
/// the `log` bridge. Call once, first thing, before any async runtime.
pub fn init(log: &LogConfig, telemetry: &TelemetryConfig) -> Result<(), String> {
    let tracer = crate::telemetry::tracer(&telemetry.otlp_endpoint)?;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .map_err(|e| format!("log.level {:?}: {e}", log.level))?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // A log line that cannot be written (stderr on a full disk) is dropped: tracing-subscriber's
    // default reports it with `eprintln!`, which panics on the same full disk and took the
    // payment sagas, then senderod, down with it.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .log_internal_errors(false);
    let installed = match log.format.as_str() {
        "json" => tracing::subscriber::set_global_default(
            builder.json().with_current_span(true).finish().with(export(tracer)),
        ),
        _ => tracing::subscriber::set_global_default(builder.finish().with(export(tracer))),
    };
    installed.map_err(|e| e.to_string())?;
    log::set_boxed_logger(Box::new(Bridge(LogTracer::new()))).map_err(|e| e.to_string())?;
    log::set_max_level(tracing::level_filters::LevelFilter::current().as_log());
    Ok(())
}

/// The layer exporting spans through `tracer`, if any.
fn export<S>(
    tracer: Option<opentelemetry_sdk::trace::Tracer>,
) -> Option<tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracer.map(|t| tracing_opentelemetry::layer().with_tracer(t).with_tracked_inactivity(false))
}

/// Forwards `log` records to `tracing`, lowering [`routine`] ones to DEBUG.
struct Bridge(LogTracer);

impl log::Log for Bridge {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if record.level() > log::Level::Warn || !routine(record.target(), &record.args().to_string()) {
            return self.0.log(record);
        }
        let lowered = log::Record::builder()
            .args(*record.args())
            .level(log::Level::Debug)
            .target(record.target())
            .module_path(record.module_path())
            .file(record.file())
            .line(record.line())
            .build();
        if self.0.enabled(lowered.metadata()) {
            self.0.log(&lowered);
        }
    }

    fn flush(&self) {}
}

/// Whether an ERROR or WARN of an embedded library is the normal state of a healthy gateway, not
/// something an operator must fix: bitcoind with no fee estimate yet (regtest, or a node fresh
/// from its initial download) — ldk-node then uses its floor feerate and says so every few
/// seconds. A failure to reach bitcoind stays an ERROR.
fn routine(target: &str, message: &str) -> bool {
    target.starts_with("ldk_node::chain")
        && message.starts_with("Failed to retrieve fee rate estimates")
        && message.contains("Insufficient data or no feerate found")
}

#[cfg(test)]
mod tests {
    use super::routine;

    #[test]
    fn only_a_missing_fee_estimate_is_routine() {
        let no_data = "Failed to retrieve fee rate estimates: [\"Insufficient data or no feerate found\"]. Falling back to default of 1 sat/vb.";
        assert!(routine("ldk_node::chain::bitcoind", no_data));
        assert!(!routine("ldk_node::chain::bitcoind", "Failed to retrieve fee rate estimates: connection refused"));
        assert!(!routine("sendero::wallet", no_data));
    }
}
