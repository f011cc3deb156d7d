//! Log output: human-readable or JSON lines on stderr, filtered by `log.level` (or `RUST_LOG`).

use tracing_subscriber::EnvFilter;

use crate::config::LogConfig;

/// Installs the global subscriber. Call once, first thing.
pub fn init(log: &LogConfig) -> Result<(), String> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .map_err(|e| format!("log.level {:?}: {e}", log.level))?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let installed = match log.format.as_str() {
        "json" => builder.json().with_current_span(true).try_init(),
        _ => builder.try_init(),
    };
    installed.map_err(|e| e.to_string())
}
